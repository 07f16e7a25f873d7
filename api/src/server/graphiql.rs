//! GraphiQL that works with no internet access. With `graphql.graphiql_assets` set to a
//! directory holding the npm packages `graphiql@3`, `react@18` and `react-dom@18` (a
//! `node_modules` directory), GET /graphql serves our own page, which loads those files
//! from the gateway itself under a strict Content-Security-Policy; without it, the
//! async-graphql page that loads them from a CDN.
//!
//! Only four files of that directory are ever served, by fixed names: nothing else in
//! it (or outside it) can be reached through /graphiql/assets.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::graphql::Gateway;

/// The files served from the assets directory: URL name, path inside the directory,
/// content type.
const VENDOR_FILES: [(&str, &str, &str); 4] = [
    (
        "react.js",
        "react/umd/react.production.min.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "react-dom.js",
        "react-dom/umd/react-dom.production.min.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "graphiql.js",
        "graphiql/graphiql.min.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "graphiql.css",
        "graphiql/graphiql.min.css",
        "text/css; charset=utf-8",
    ),
];

const INDEX: &str = include_str!("graphiql/index.html");
const PAGE_JS: &str = include_str!("graphiql/page.js");
const PAGE_CSS: &str = include_str!("graphiql/page.css");

/// GraphiQL's styles are partly inline (CodeMirror, React), its fonts data: URIs; no
/// script but the gateway's own files runs, and nothing connects anywhere else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The vendor files, read once when the router is built.
#[derive(Clone, Default)]
pub struct LocalAssets {
    files: Arc<Vec<(&'static str, &'static str, Vec<u8>)>>,
}

impl LocalAssets {
    /// Reads the four files from `dir`; the error names the first one missing.
    pub fn load(dir: &Path) -> Result<LocalAssets, String> {
        let mut files = Vec::with_capacity(VENDOR_FILES.len());
        for (name, relative, content_type) in VENDOR_FILES {
            let path = dir.join(relative);
            let body = std::fs::read(&path).map_err(|e| {
                format!(
                    "graphql.graphiql_assets: cannot read {} ({e}); install graphiql@3, react@18 and \
                     react-dom@18 with npm into that directory's parent",
                    path.display()
                )
            })?;
            files.push((name, content_type, body));
        }
        Ok(LocalAssets {
            files: Arc::new(files),
        })
    }

    fn get(&self, name: &str) -> Option<(&'static str, &[u8])> {
        self.files
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, content_type, body)| (*content_type, body.as_slice()))
    }
}

/// The routes of the local GraphiQL (its page is GET /graphql, routed by the caller).
pub fn routes(assets: Option<LocalAssets>) -> Router<Gateway> {
    let assets = assets.unwrap_or_default();
    Router::new()
        .route(
            "/graphiql/page.js",
            get(|| async { file("text/javascript; charset=utf-8", PAGE_JS.as_bytes().to_vec()) }),
        )
        .route(
            "/graphiql/page.css",
            get(|| async { file("text/css; charset=utf-8", PAGE_CSS.as_bytes().to_vec()) }),
        )
        .route(
            "/graphiql/assets/{name}",
            get(
                move |State(gateway): State<Gateway>, UrlPath(name): UrlPath<String>| {
                    let assets = assets.clone();
                    async move {
                        if !gateway.services.config.graphiql_enabled() {
                            return StatusCode::NOT_FOUND.into_response();
                        }
                        match assets.get(&name) {
                            Some((content_type, body)) => file(content_type, body.to_vec()),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                },
            ),
        )
}

/// The local page, under its CSP.
pub fn page() -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}

fn file(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}
