//! A small graphql-transport-ws client for subscription tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::gateway::TestGateway;

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Opens /graphql/ws and completes connection_init with `token` (if any).
    pub async fn connect(gw: &TestGateway, token: Option<&str>) -> WsClient {
        WsClient::connect_to(&gw.url(), token).await
    }

    /// The same against any gateway at `base` (`http://host:port`).
    pub async fn connect_to(base: &str, token: Option<&str>) -> WsClient {
        let url = format!("{}/graphql/ws", base.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("ws request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect the WebSocket");
        let mut client = WsClient { socket };
        let payload = match token {
            Some(t) => json!({ "Authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let ack = client
            .next_message(Duration::from_secs(10))
            .await
            .expect("connection_ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send on the WebSocket");
    }

    /// Starts a subscription with id `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
        )
        .await;
    }

    /// The next protocol message (pings answered), or None after `wait`.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(wait, self.socket.next()).await.ok()??;
            match frame.ok()? {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");
                    if value["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(value);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next `next` payload of subscription `id` (panics on anything else).
    pub async fn next_payload(&mut self, id: &str, wait: Duration) -> Option<Value> {
        let message = self.next_message(wait).await?;
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(message["type"], "next", "{message}");
        Some(message["payload"].clone())
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
