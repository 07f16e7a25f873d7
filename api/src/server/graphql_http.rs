//! POST /graphql (JSON only, single or batch), GET /graphql (GraphiQL), and the
//! WebSocket endpoint /graphql/ws (graphql-transport-ws and legacy graphql-ws).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse, Data, Executor, Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response as HttpResponse};
use futures::stream::BoxStream;

use super::request_id::RequestId;
use crate::auth::permissions::Principal;
use crate::graphql::Gateway;
use crate::graphql::context::ClientInfo;
use crate::graphql::errors::ApiError;
use crate::graphql::execute::error_response;
use axum::Extension;

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn refuse(status: StatusCode, err: ApiError) -> HttpResponse {
    json_response(status, &error_response(err))
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthenticated(
            "Authorization must be `Bearer <token>`",
        )),
    }
}

fn client_info(
    peer: SocketAddr,
    headers: &HeaderMap,
    gateway: &Gateway,
    request_id: Option<Extension<RequestId>>,
) -> ClientInfo {
    // Entries were checked when serving started; an invalid one trusts nobody.
    let trusted =
        super::client_ip::parse_all(&gateway.services.config.http.trusted_proxies).unwrap_or_default();
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = super::client_ip::client_ip(peer.ip(), forwarded, &trusted);
    let via_trusted_proxy = trusted.iter().any(|network| network.contains(peer.ip()));
    let geo = gateway.services.geo.locate(client, headers, via_trusted_proxy);
    ClientInfo::new(
        Some(client),
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()),
    )
    .with_geo(geo)
    .with_request_id(request_id.map(|Extension(RequestId(id))| id))
}

/// POST /graphql. Only `application/json` bodies: a form or text/plain POST (what a
/// cross-site page can send without CORS) is refused, so mutations cannot be forged.
pub async fn post_graphql(
    State(gateway): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> HttpResponse {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let limit = gateway.services.config.graphql.max_body_bytes;
            return refuse(
                rejection.status(),
                ApiError::BadUserInput(format!(
                    "the request body is too large or unreadable (limit {limit} bytes)"
                )),
            );
        }
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadUserInput("send the operation as application/json".into()),
        );
    }
    // Decide single or batch by the first byte: async-graphql's untagged BatchRequest
    // would read `[]` as one empty request.
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_batch {
        serde_json::from_slice::<Vec<Request>>(&body).map(BatchRequest::Batch)
    } else {
        serde_json::from_slice::<Request>(&body).map(BatchRequest::Single)
    };
    let Ok(batch) = parsed else {
        return refuse(
            StatusCode::BAD_REQUEST,
            ApiError::BadUserInput("the body is not a GraphQL request".into()),
        );
    };
    let max_batch = gateway.services.config.graphql.max_batch;
    if let BatchRequest::Batch(requests) = &batch
        && (requests.is_empty() || requests.len() > max_batch)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            ApiError::BadUserInput(format!("a batch holds 1 to {max_batch} operations")),
        );
    }
    let principal = match bearer(&headers).and_then(|token| gateway.authenticate(token)) {
        Ok(principal) => principal,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e),
    };
    let client = client_info(peer, &headers, &gateway, request_id);
    let response = match batch {
        BatchRequest::Single(request) => {
            BatchResponse::Single(gateway.execute(principal, client, request).await)
        }
        BatchRequest::Batch(requests) => {
            // One after another, each in its own transaction: a batch cannot hold more
            // than one pooled connection at a time.
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(gateway.execute(principal.clone(), client.clone(), request).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    json_response(StatusCode::OK, &response)
}

/// GET /graphql: GraphiQL, when enabled.
pub async fn graphiql(State(gateway): State<Gateway>) -> HttpResponse {
    if !gateway.services.config.graphiql_enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if gateway.services.config.graphql.graphiql_assets.is_some() {
        return super::graphiql::page();
    }
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
    .into_response()
}

/// The executor of one WebSocket connection: the principal comes from connection_init.
#[derive(Clone)]
struct ConnectionExecutor {
    gateway: Gateway,
    client: ClientInfo,
    principal: Arc<OnceLock<Option<Principal>>>,
}

impl Executor for ConnectionExecutor {
    async fn execute(&self, request: Request) -> Response {
        let principal = self.principal.get().cloned().flatten();
        self.gateway
            .execute(principal, self.client.clone(), request)
            .await
    }

    fn execute_stream(&self, request: Request, _session: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        let principal = self.principal.get().cloned().flatten();
        self.gateway
            .execute_stream(principal, self.client.clone(), request)
    }
}

/// Whether a browser page from `Origin` may open the socket: same host as the gateway,
/// or listed in `http.allowed_origins`. Non-browser clients send no Origin.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// GET /graphql/ws.
pub async fn websocket(
    State(gateway): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request_id: Option<Extension<RequestId>>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    if !origin_allowed(&headers, &gateway.services.config.http.allowed_origins) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let principal = Arc::new(OnceLock::new());
    let executor = ConnectionExecutor {
        gateway: gateway.clone(),
        client: client_info(peer, &headers, &gateway, request_id),
        principal: principal.clone(),
    };
    let max_message = gateway.services.config.graphql.max_body_bytes;
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(max_message)
        // tungstenite's defaults reserve 128 KiB to read and 128 KiB to write per socket:
        // ~155 KB per subscriber measured at 10,000 (bench/README.md). Subscription
        // traffic is small messages: read in 4 KiB chunks, write each message at once.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let connection = GraphQLWebSocket::new(socket, executor, protocol)
                .on_connection_init(move |payload| async move {
                    let token = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                    let verified = match token.as_deref() {
                        None => None,
                        Some(value) => {
                            let token = value
                                .strip_prefix("Bearer ")
                                .or_else(|| value.strip_prefix("bearer "))
                                .ok_or_else(|| {
                                    async_graphql::Error::new("Authorization must be `Bearer <token>`")
                                })?;
                            gateway
                                .authenticate(Some(token))
                                .map_err(async_graphql::Error::from)?
                        }
                    };
                    let _ = principal.set(verified);
                    Ok(Data::default())
                })
                .serve();
            async move {
                let open = metrics::gauge!("ultracore_websocket_connections");
                open.increment(1.0);
                connection.await;
                open.decrement(1.0);
            }
        })
}
