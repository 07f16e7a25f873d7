//! The client's address: the socket peer, unless the peer is a configured trusted proxy.
//! A spoofed `X-Forwarded-For` from anyone else changes nothing (not the recorded
//! address, not what the throttles and the risk engine count).

mod support;

use serde_json::json;
use support::fixture::{A, Fixture, PASSWORD};
use support::gateway::TestGateway;
use support::sessions::LOGIN;
use support::{TestDb, sql};

async fn login_through(gw: &TestGateway, forwarded_for: &str, username: &str) {
    let body = json!({
        "query": LOGIN,
        "variables": { "input": { "tenant": A, "username": username, "password": PASSWORD } }
    })
    .to_string();
    let (status, text) = gw
        .post(
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", forwarded_for),
            ],
            body,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("accessToken"), "{text}");
}

async fn recorded_ip(db: &TestDb, username: &str) -> Option<String> {
    let owner = db.owner().await;
    sql::scalar(
        &owner,
        &format!(
            "select host(e.ip_address) from security_events e join users u on u.user_id = e.user_id \
              where u.username = '{username}' and e.event_type = 'login_success' \
              order by e.\"timestamp\" desc limit 1"
        ),
    )
    .await
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let db = TestDb::new().await;
    let _fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    login_through(&gw, "203.0.113.77", "customer").await;
    assert_eq!(recorded_ip(&db, "customer").await.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_a_client_cannot_prepend_past_it() {
    let db = TestDb::new().await;
    let _fx = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, |c| c.http.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    // The client wrote 6.6.6.6 itself; the proxy appended the address it saw.
    login_through(&gw, "6.6.6.6, 198.51.100.7", "customer").await;
    assert_eq!(
        recorded_ip(&db, "customer").await.as_deref(),
        Some("198.51.100.7")
    );
}
