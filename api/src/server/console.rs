//! The analyst console: one static page at /console, its script and its style sheet,
//! embedded in the binary and served with no external asset, so it works offline and
//! under a strict Content-Security-Policy (no inline script or style, no other origin).
//!
//! The page holds no data and no secret: it signs in through the `login` mutation, keeps
//! the access token in memory, reads through POST /graphql and follows the live threat
//! feed on /graphql/ws, like any other client. `http.console = false` turns it off.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::graphql::Gateway;

/// One embedded file.
struct Asset {
    content_type: &'static str,
    body: &'static str,
    /// Strong validator of `body`, computed at compile time.
    etag: u64,
}

impl Asset {
    const fn new(content_type: &'static str, body: &'static str) -> Asset {
        Asset {
            content_type,
            body,
            etag: fnv1a(body.as_bytes()),
        }
    }
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart for caching.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const INDEX: Asset = Asset::new("text/html; charset=utf-8", include_str!("console/index.html"));
const APP_JS: Asset = Asset::new("text/javascript; charset=utf-8", include_str!("console/app.js"));
const APP_CSS: Asset = Asset::new("text/css; charset=utf-8", include_str!("console/app.css"));
const ICON: Asset = Asset::new("image/svg+xml", include_str!("console/icon.svg"));

/// The files under /console/, by name.
fn asset_named(name: &str) -> Option<&'static Asset> {
    match name {
        "app.js" => Some(&APP_JS),
        "app.css" => Some(&APP_CSS),
        "icon.svg" => Some(&ICON),
        _ => None,
    }
}

/// The console's routes: /console (and /console/) and /console/<file>.
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{file}", get(file))
}

async fn index(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    serve(&gateway, &headers, Some(&INDEX))
}

async fn file(State(gateway): State<Gateway>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&gateway, &headers, asset_named(&name))
}

fn serve(gateway: &Gateway, request: &HeaderMap, asset: Option<&'static Asset>) -> Response {
    let csp = content_security_policy(request);
    let asset = asset.filter(|_| gateway.services.config.http.console);
    let Some(asset) = asset else {
        let mut response = (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found\n",
        )
            .into_response();
        secure(response.headers_mut(), &csp, "no-store");
        return response;
    };
    let etag = format!("\"{:016x}\"", asset.etag);
    let mut response = if not_modified(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    // Revalidated on every use (a cheap 304), so a new binary's page is never mixed
    // with an older cached script.
    secure(response.headers_mut(), &csp, "no-cache");
    response
}

/// Whether the client's `If-None-Match` already names `etag`.
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// The security headers of every console response, 404s included.
fn secure(headers: &mut HeaderMap, csp: &str, cache_control: &'static str) {
    let fixed: [(HeaderName, &'static str); 8] = [
        (header::CACHE_CONTROL, cache_control),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ),
        (header::VARY, "Host"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Only this origin's files, no inline code, no frames, no forms posted anywhere, and
/// no HTML built from strings (Trusted Types with no policy). The WebSocket may reach
/// this host only: `ws://` and `wss://` of the request's own `Host` (both, since a TLS
/// proxy may sit in front), when that host is a plain host[:port].
fn content_security_policy(request: &HeaderMap) -> String {
    let host = request
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| plain_host(h));
    let connect = match host {
        Some(h) => format!("'self' ws://{h} wss://{h}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
         require-trusted-types-for 'script'; trusted-types 'none'"
    )
}

/// A host name, IPv4 or bracketed IPv6 address, with an optional port: nothing that
/// could end or add a CSP directive.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_source_is_the_request_host_or_self_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8000"));
        let csp = content_security_policy(&headers);
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:8000 wss://127.0.0.1:8000;"),
            "{csp}"
        );
        for hostile in ["evil.example; script-src *", "a b", "x/y", ""] {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(hostile).expect("header"));
            let csp = content_security_policy(&headers);
            assert!(csp.contains("connect-src 'self';"), "{hostile:?}: {csp}");
            assert!(!csp.contains("evil"), "{csp}");
        }
    }

    #[test]
    fn if_none_match_lists_and_wildcards() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(not_modified(&headers, "\"b\""));
        assert!(!not_modified(&headers, "\"c\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&headers, "\"c\""));
        assert!(!not_modified(&HeaderMap::new(), "\"c\""));
    }

    #[test]
    fn the_page_has_no_inline_code_and_no_external_reference() {
        let page = INDEX.body;
        for inline in ["<style", "style=", "onclick", "onload", "onsubmit", "javascript:"] {
            assert!(!page.contains(inline), "inline {inline:?} in index.html");
        }
        assert!(!page.contains("<script>"), "inline script in index.html");
        for asset in [INDEX.body, APP_JS.body, APP_CSS.body, ICON.body] {
            // The SVG namespace is a name, not a request.
            let text = asset.replace("http://www.w3.org/2000/svg", "");
            for external in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(external), "{external:?} in a console asset");
            }
        }
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "localStorage",
            "sessionStorage",
        ] {
            assert!(!APP_JS.body.contains(banned), "app.js uses {banned}");
        }
    }
}
