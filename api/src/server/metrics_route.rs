//! GET /metrics: the Prometheus text exposition. Off with `http.metrics = false`; with
//! `http.metrics_token` set, only a scraper presenting it as a bearer token is answered
//! (the figures name no tenant or user, but operation names and volumes are still
//! nobody else's business).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::graphql::Gateway;

pub async fn metrics(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    let http = &gateway.services.config.http;
    if !http.metrics {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(expected) = http.metrics_token.as_deref() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    match crate::telemetry::render(&gateway.services.db) {
        Some(text) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
