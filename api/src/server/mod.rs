//! The HTTP server: routes, limits, and a graceful shutdown that lets in-flight requests
//! finish.

pub mod client_ip;
mod console;
pub mod graphiql;
mod graphql_http;
mod hardening;
mod health;
mod metrics_route;
pub mod request_id;
pub mod tls;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::graphql::Gateway;

/// Every route of the gateway.
pub fn router(gateway: Gateway) -> Router {
    let body_limit = gateway.services.config.graphql.max_body_bytes;
    let http = gateway.services.config.http.clone();
    // Checked at start by `serve` (a clear error); here a missing file only logs.
    let local_graphiql = gateway
        .services
        .config
        .graphql
        .graphiql_assets
        .as_deref()
        .and_then(|dir| {
            graphiql::LocalAssets::load(dir)
                .map_err(|e| tracing::error!(error = %e, "local GraphiQL assets"))
                .ok()
        });
    let routes = Router::new()
        .route(
            "/graphql",
            get(graphql_http::graphiql).post(graphql_http::post_graphql),
        )
        .route("/graphql/ws", get(graphql_http::websocket))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics_route::metrics))
        .merge(console::routes())
        .merge(graphiql::routes(local_graphiql))
        .layer(DefaultBodyLimit::max(body_limit));
    // The request id is outermost, so even a timed-out request is logged with its id.
    hardening::apply(routes, &http)
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(gateway)
}

/// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests.
pub async fn serve<F>(listener: TcpListener, app: Router, shutdown: F) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
/// Serves over TLS (see `tls`) until `shutdown` resolves, like [`serve`].
pub async fn serve_tls<F>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    use axum::serve::ListenerExt;
    // `tap_io` only so that axum hands handlers the peer address (ConnectInfo), as it
    // does for a plain TcpListener.
    let listener = tls::TlsListener::new(listener, acceptor)?.tap_io(|_| {});
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// SIGTERM/SIGINT, caught from the moment the process starts serving rather than from
/// the moment it listens: a signal during start-up (starting the embedded cluster,
/// migrating) must still lead to a clean stop of everything already started, instead of
/// killing the process and orphaning PostgreSQL.
#[derive(Clone)]
pub struct ShutdownSignal {
    requested: tokio::sync::watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// Installs the handlers now (from then on the signals no longer kill the process).
    pub fn install() -> std::io::Result<ShutdownSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received: shutting down"),
            }
            let _ = tx.send(true);
        });
        Ok(ShutdownSignal { requested: rx })
    }

    /// Whether a shutdown has been asked for.
    pub fn requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once a shutdown is asked for.
    pub async fn wait(mut self) {
        let _ = self.requested.wait_for(|stop| *stop).await;
    }
}
