//! Request ids and the access log. Every response carries `x-request-id`: the client's,
//! when it sent a plain one, or a new UUIDv7. The id is on every log line of the request
//! (a tracing span) and on the operation's log line, so an operator can follow one
//! request across the gateway's logs and a client can quote it.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header carrying the id both ways.
pub const HEADER: &str = "x-request-id";

/// The id of the request being served (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client's id is kept when it is 1 to 128 characters of letters, digits, `-`, `_`,
/// `.` or `:`; anything else (CR/LF for log injection, say) is replaced by a fresh id.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The routes the access log and metrics name; any other path is `other`, so probing
/// random URLs cannot grow the metric series.
fn route_label(path: &str) -> &'static str {
    match path {
        "/graphql" => "/graphql",
        "/graphql/ws" => "/graphql/ws",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        p if p == "/console" || p.starts_with("/console/") => "/console",
        _ => "other",
    }
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let route = route_label(request.uri().path());
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if matches!(route, "/healthz" | "/readyz" | "/metrics") {
            tracing::debug!(status, elapsed_ms, "request finished");
        } else {
            tracing::info!(status, elapsed_ms, "request finished");
        }
    });
    metrics::counter!(
        "ultracore_http_requests_total",
        "route" => route,
        "status" => format!("{}xx", status / 100)
    )
    .increment(1);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_kept() {
        assert!(acceptable("3f2c-01:abc.DEF_9"));
        assert!(!acceptable(""));
        assert!(!acceptable("abc\r\nforged: line"));
        assert!(!acceptable("with space"));
        assert!(!acceptable(&"a".repeat(129)));
    }
}
