//! HTTP hardening applied to every route: security headers (unless a route set its own,
//! as the console does with its strict CSP), CORS for the configured browser origins
//! only, a bound on each request's time, and gzip for large responses.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::HttpConfig;

/// Wraps `router` in the layers `config` asks for.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>, config: &HttpConfig) -> Router<S> {
    let mut router =
        router
            .layer(CompressionLayer::new().gzip(true))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(config.request_timeout_ms.max(1)),
                time_bound,
            ));
    for (name, value) in security_headers(config) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    if let Some(cors) = cors(config) {
        router = router.layer(cors);
    }
    router
}

/// Answers a request that outlives its time bound with a coded GraphQL error (408). A
/// GraphQL operation already running is not cut off mid-protocol: it runs on a task of
/// its own (`Gateway::execute`) and still ends its transaction, each statement bounded
/// by `database.statement_timeout_ms`.
async fn time_bound(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "errors": [{
                    "message": format!("the request took longer than {} ms and was cancelled", limit.as_millis()),
                    "extensions": { "code": "BAD_USER_INPUT" }
                }]
            })
            .to_string(),
        )
            .into_response(),
    }
}

fn security_headers(config: &HttpConfig) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // API answers hold account data: never kept by a shared cache.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    if config.hsts {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    headers
}

/// CORS for `http.allowed_origins` only (exact origins); none configured, none sent, so
/// browsers keep other sites' pages from reading our answers.
fn cors(config: &HttpConfig) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}
