//! Live feeds over the WebSocket (graphql-transport-ws): what a subscriber receives, and
//! what it never does.
//!
//! - a threat committed in tenant A reaches A's subscribers, never B's;
//! - a client that reconnects with its last cursor receives everything committed since,
//!   once and in order, including a transaction that inserted before a later one but
//!   committed after it (the feed follows commit order, not insert order);
//! - a customer sees only their own security events, cannot subscribe to threats, and
//!   an anonymous client cannot subscribe at all;
//! - a subscription ends when its session is revoked.

mod support;

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use support::TestDb;
use support::fixture::{A, B, Fixture, tenant_txn};
use support::gateway::TestGateway;
use support::ws::WsClient;
use uuid::Uuid;

const THREATS: &str = "subscription($after: String, $min: Severity) { \
    threatDetected(after: $after, minSeverity: $min) { cursor threat { id threatType severity } } }";
const EVENTS: &str = "subscription($after: String) { \
    securityEventRecorded(after: $after) { cursor event { id eventType userId } } }";
/// Generous: in the shared test cluster, another test's DROP DATABASE can hold back the
/// cluster's oldest running transaction (the feed's horizon) for up to a minute.
const WAIT: Duration = Duration::from_secs(90);
const QUIET: Duration = Duration::from_millis(1500);

/// Fields drop in order: the gateway (and its feed hub) before the database.
struct World {
    gw: TestGateway,
    owner: DatabaseConnection,
    fx: Fixture,
    _db: TestDb,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    World {
        _db: db,
        fx,
        gw,
        owner,
    }
}

impl World {
    fn tenant_id(&self, slug: &str) -> Uuid {
        self.fx.tenant(slug).tenant_id
    }

    /// Inserts and commits a threat of `threat_type` in `slug`'s tenant.
    async fn threat(&self, slug: &str, threat_type: impl Into<String>, severity: &str) {
        let threat_type = threat_type.into();
        let txn = tenant_txn(&self.owner, self.tenant_id(slug)).await;
        insert_threat(&txn, self.tenant_id(slug), &threat_type, severity).await;
        txn.commit().await.expect("commit the threat");
    }

    /// Inserts and commits a security event of `event_type` for `user` in `slug`.
    async fn event(&self, slug: &str, event_type: impl Into<String>, user: Option<Uuid>) {
        let event_type: String = event_type.into();
        let tenant = self.tenant_id(slug);
        let txn = tenant_txn(&self.owner, tenant).await;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into security_events (tenant_id, user_id, event_type, event_category, severity) \
             values ($1, $2, $3, 'authentication', 'low')",
            [tenant.into(), user.into(), event_type.clone().into()],
        ))
        .await
        .expect("insert an event");
        txn.commit().await.expect("commit the event");
    }

    async fn login(&self, slug: &str, username: &str) -> String {
        self.fx.login(&self.gw, slug, username).await
    }
}

async fn insert_threat<C: ConnectionTrait>(txn: &C, tenant: Uuid, threat_type: &str, severity: &str) {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into threat_events (tenant_id, threat_type, severity, description) values ($1, $2, $3, 'feed test')",
        [tenant.into(), threat_type.into(), severity.into()],
    ))
    .await
    .expect("insert a threat");
}

/// Subscribes and waits until the subscription demonstrably receives: `probe` is called
/// until an item arrives (the subscription registers asynchronously). Returns the last
/// cursor received.
async fn live<F, Fut>(ws: &mut WsClient, id: &str, field: &str, mut probe: F) -> String
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for attempt in 0..120 {
        probe(attempt).await;
        if let Some(payload) = next_payload_of(ws, id, Duration::from_millis(1000)).await {
            // Drain the other probes that may still arrive.
            let mut last = payload;
            while let Some(more) = next_payload_of(ws, id, Duration::from_millis(700)).await {
                last = more;
            }
            return last["data"][field]["cursor"]
                .as_str()
                .expect("a cursor")
                .to_string();
        }
    }
    panic!("the subscription never became live");
}

/// The next `next` payload of subscription `id`, passing over what other subscriptions
/// of the same socket receive meanwhile (on a socket with every feed, the sign-in that
/// opened it can be delivered on the events feed while the threat feed goes live).
async fn next_payload_of(ws: &mut WsClient, id: &str, wait: Duration) -> Option<Value> {
    loop {
        let message = ws.next_message(wait).await?;
        if message["id"] == id {
            assert_eq!(message["type"], "next", "{message}");
            return Some(message["payload"].clone());
        }
    }
}

/// The next payload that is not a late probe from [`live`] (a probe can arrive after the
/// subscription went live: delivery waits for older transactions anywhere in the cluster).
async fn next_real(ws: &mut WsClient, id: &str, field: &str, kind: &str, wait: Duration) -> Option<Value> {
    loop {
        let payload = ws.next_payload(id, wait).await?;
        let name = payload["data"][field][kind]["threatType"]
            .as_str()
            .or_else(|| payload["data"][field][kind]["eventType"].as_str())
            .unwrap_or_default();
        // Probes and the officers' own sign-ins (delivered whenever the feed reaches
        // them) are not what the test writes.
        if !name.starts_with("probe-") && name != "login_success" {
            return Some(payload);
        }
    }
}

/// Receives `expected` real items (each within [`WAIT`]: delivery may wait for a long
/// transaction elsewhere in the cluster), then keeps listening for [`QUIET`] so that any
/// extra item is caught too. Returns the item names in arrival order.
async fn collect(ws: &mut WsClient, id: &str, field: &str, kind: &str, expected: usize) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let wait = if names.len() < expected { WAIT } else { QUIET };
        let Some(payload) = next_real(ws, id, field, kind, wait).await else {
            break;
        };
        let item = &payload["data"][field][kind];
        let name = item["threatType"]
            .as_str()
            .or(item["eventType"].as_str())
            .unwrap_or_default();
        names.push(name.to_string());
    }
    names
}

fn threat_type(payload: &Value) -> String {
    payload["data"]["threatDetected"]["threat"]["threatType"]
        .as_str()
        .unwrap_or_else(|| panic!("a threat: {payload}"))
        .to_string()
}

#[tokio::test]
async fn a_threat_committed_in_one_tenant_reaches_only_that_tenants_subscribers() {
    let w = world().await;
    let mut a = WsClient::connect(&w.gw, Some(&w.login(A, "officer").await)).await;
    let mut b = WsClient::connect(&w.gw, Some(&w.login(B, "officer").await)).await;
    a.subscribe("a", THREATS, json!({})).await;
    b.subscribe("b", THREATS, json!({})).await;
    live(&mut a, "a", "threatDetected", |i| {
        w.threat(A, format!("probe-a-{i}"), "low")
    })
    .await;
    live(&mut b, "b", "threatDetected", |i| {
        w.threat(B, format!("probe-b-{i}"), "low")
    })
    .await;

    w.threat(B, "b-only", "critical").await;
    w.threat(A, "a-only", "critical").await;
    let got = next_real(&mut a, "a", "threatDetected", "threat", WAIT)
        .await
        .expect("A's threat");
    assert_eq!(
        threat_type(&got),
        "a-only",
        "A receives its own threat, and nothing of B's first"
    );
    let got = next_real(&mut b, "b", "threatDetected", "threat", WAIT)
        .await
        .expect("B's threat");
    assert_eq!(threat_type(&got), "b-only");
    assert!(
        next_real(&mut a, "a", "threatDetected", "threat", QUIET)
            .await
            .is_none(),
        "nothing more reaches A"
    );
    assert!(
        next_real(&mut b, "b", "threatDetected", "threat", QUIET)
            .await
            .is_none(),
        "nothing of A reaches B"
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn min_severity_filters_threats() {
    let w = world().await;
    let mut a = WsClient::connect(&w.gw, Some(&w.login(A, "officer").await)).await;
    a.subscribe("a", THREATS, json!({ "min": "HIGH" })).await;
    live(&mut a, "a", "threatDetected", |i| {
        w.threat(A, format!("probe-{i}"), "critical")
    })
    .await;
    w.threat(A, "medium-one", "medium").await;
    w.threat(A, "high-one", "high").await;
    let got = next_real(&mut a, "a", "threatDetected", "threat", WAIT)
        .await
        .expect("the high threat");
    assert_eq!(threat_type(&got), "high-one");
}

#[tokio::test]
async fn a_client_that_reconnects_with_its_cursor_receives_everything_since_once_in_order() {
    let w = world().await;
    let token = w.login(A, "officer").await;
    let mut ws = WsClient::connect(&w.gw, Some(&token)).await;
    ws.subscribe("e", EVENTS, json!({})).await;
    let cursor = live(&mut ws, "e", "securityEventRecorded", |i| {
        w.event(A, format!("probe-{i}"), None)
    })
    .await;
    ws.close().await;

    for i in 0..20 {
        w.event(A, format!("burst-{i:02}"), None).await;
    }
    let mut ws = WsClient::connect(&w.gw, Some(&token)).await;
    ws.subscribe("e", EVENTS, json!({ "after": cursor })).await;
    let received = collect(&mut ws, "e", "securityEventRecorded", "event", 20).await;
    let expected: Vec<String> = (0..20).map(|i| format!("burst-{i:02}")).collect();
    assert_eq!(received, expected, "all 20, once, in commit order");
}

#[tokio::test]
async fn a_transaction_that_commits_late_still_reaches_a_client_that_reconnected_in_between() {
    let w = world().await;
    let token = w.login(A, "officer").await;
    let mut ws = WsClient::connect(&w.gw, Some(&token)).await;
    ws.subscribe("t", THREATS, json!({})).await;
    let cursor = live(&mut ws, "t", "threatDetected", |i| {
        w.threat(A, format!("probe-{i}"), "low")
    })
    .await;

    // T1 inserts first and stays open; T2 inserts later and commits first.
    let tenant = w.tenant_id(A);
    let late = tenant_txn(&w.owner, tenant).await;
    insert_threat(&late, tenant, "inserted-first-committed-last", "high").await;
    w.threat(A, "inserted-last-committed-first", "high").await;
    // The client drops and comes back with its cursor while T1 is still open.
    ws.close().await;
    let mut ws = WsClient::connect(&w.gw, Some(&token)).await;
    ws.subscribe("t", THREATS, json!({ "after": cursor })).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    late.commit().await.expect("commit T1");

    let mut received = collect(&mut ws, "t", "threatDetected", "threat", 2).await;
    received.sort();
    assert_eq!(
        received,
        ["inserted-first-committed-last", "inserted-last-committed-first"],
        "both threats, each once"
    );
}

#[tokio::test]
async fn customers_see_their_own_events_only_and_cannot_subscribe_to_threats() {
    let w = world().await;
    let me = w.fx.a.user("customer");
    let other = w.fx.a.user("customer2");
    let token = w.login(A, "customer").await;
    let mut ws = WsClient::connect(&w.gw, Some(&token)).await;
    ws.subscribe("e", EVENTS, json!({})).await;
    live(&mut ws, "e", "securityEventRecorded", |i| {
        w.event(A, format!("probe-{i}"), Some(me))
    })
    .await;
    w.event(A, "someone-elses", Some(other)).await;
    w.event(A, "mine", Some(me)).await;
    let got = next_real(&mut ws, "e", "securityEventRecorded", "event", WAIT)
        .await
        .expect("my event");
    assert_eq!(
        got["data"]["securityEventRecorded"]["event"]["eventType"], "mine",
        "{got}"
    );
    assert_eq!(
        got["data"]["securityEventRecorded"]["event"]["userId"],
        me.to_string()
    );

    ws.subscribe("t", THREATS, json!({})).await;
    let refused = loop {
        let message = ws.next_message(WAIT).await.expect("a reply");
        if message["id"] == "t" {
            break message;
        }
    };
    assert!(refused.to_string().contains("FORBIDDEN"), "{refused}");

    let mut anonymous = WsClient::connect(&w.gw, None).await;
    anonymous.subscribe("x", EVENTS, json!({})).await;
    let refused = anonymous.next_message(WAIT).await.expect("a reply");
    assert!(refused.to_string().contains("UNAUTHENTICATED"), "{refused}");
}

/// A subscription has no loaders (it reads each change once per tenant, with no
/// transaction per subscriber): selecting a related row answers a coded error in the
/// payload, the event's own fields still arrive, and so does the next event.
#[tokio::test]
async fn a_related_row_selected_in_a_subscription_is_refused_with_a_code_and_the_event_still_arrives() {
    const WITH_USER: &str = "subscription { securityEventRecorded { cursor event { eventType userId \
        user { username } } } }";
    let w = world().await;
    let customer = w.fx.a.user("customer");
    let mut ws = WsClient::connect(&w.gw, Some(&w.login(A, "officer").await)).await;
    ws.subscribe("e", WITH_USER, json!({})).await;
    live(&mut ws, "e", "securityEventRecorded", |i| {
        w.event(A, format!("probe-{i}"), Some(customer))
    })
    .await;
    for name in ["first", "second"] {
        w.event(A, name, Some(customer)).await;
        let got = next_real(&mut ws, "e", "securityEventRecorded", "event", WAIT)
            .await
            .unwrap_or_else(|| panic!("the {name} event"));
        let event = &got["data"]["securityEventRecorded"]["event"];
        assert_eq!(event["eventType"], name, "{got}");
        assert_eq!(event["userId"], customer.to_string(), "{got}");
        assert!(event["user"].is_null(), "no user is loaded: {got}");
        let error = &got["errors"][0];
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{got}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot be selected in a subscription")),
            "{got}"
        );
    }
}

#[tokio::test]
async fn a_subscription_ends_when_its_session_is_revoked() {
    let w = world().await;
    let token = w.login(A, "officer").await;
    let mut ws = WsClient::connect(&w.gw, Some(&token)).await;
    ws.subscribe("t", THREATS, json!({})).await;
    live(&mut ws, "t", "threatDetected", |i| {
        w.threat(A, format!("probe-{i}"), "low")
    })
    .await;
    let data = w.gw.data(Some(&token), "mutation { logout }", json!({})).await;
    assert_eq!(data["logout"], true);
    // The hub checks sessions every few seconds.
    // Skip late probes; the stream must end with UNAUTHENTICATED.
    loop {
        let message = ws
            .next_message(Duration::from_secs(15))
            .await
            .expect("the stream ends");
        if message.to_string().contains("probe-") {
            continue;
        }
        assert!(message.to_string().contains("UNAUTHENTICATED"), "{message}");
        break;
    }
}

const ALL_FEEDS: [(&str, &str); 3] = [
    (
        "t",
        "subscription { threatDetected { cursor threat { id threatType } } }",
    ),
    (
        "e",
        "subscription { securityEventRecorded { cursor event { id eventType } } }",
    ),
    (
        "i",
        "subscription { incidentUpdated { cursor operation incident { id title } } }",
    ),
];

/// Collects `expected` payloads (each within [`WAIT`]), then any more until the socket
/// is quiet, as "id:name" strings (probes dropped).
async fn drain(ws: &mut WsClient, expected: usize) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let wait = if seen.len() < expected { WAIT } else { QUIET };
        let Some(message) = ws.next_message(wait).await else {
            break;
        };
        let data = &message["payload"]["data"];
        let name = data["threatDetected"]["threat"]["threatType"]
            .as_str()
            .or(data["securityEventRecorded"]["event"]["eventType"].as_str())
            .or(data["incidentUpdated"]["incident"]["title"].as_str())
            .unwrap_or_else(|| panic!("an item: {message}"))
            .to_string();
        // Probes and the officers' own sign-ins (delivered whenever the feed reaches
        // them) are not what the test writes.
        if !name.starts_with("probe-") && name != "login_success" {
            seen.push(format!("{}:{name}", message["id"].as_str().unwrap_or_default()));
        }
    }
    seen.sort();
    seen
}

#[tokio::test]
async fn every_feed_delivers_a_tenants_rows_to_that_tenant_only() {
    let w = world().await;
    let mut sockets = Vec::new();
    for slug in [A, B] {
        let mut ws = WsClient::connect(&w.gw, Some(&w.login(slug, "officer").await)).await;
        for (id, query) in ALL_FEEDS {
            ws.subscribe(id, query, json!({})).await;
        }
        live(&mut ws, "t", "threatDetected", |i| {
            w.threat(slug, format!("probe-{slug}-{i}"), "low")
        })
        .await;
        sockets.push(ws);
    }
    for slug in [A, B] {
        let tenant = w.tenant_id(slug);
        w.threat(slug, format!("threat-of-{slug}"), "high").await;
        w.event(slug, format!("event-of-{slug}"), None).await;
        let txn = tenant_txn(&w.owner, tenant).await;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into security_incidents (tenant_id, incident_type, severity, title) \
             values ($1, 'account_takeover', 'high', $2)",
            [tenant.into(), format!("incident-of-{slug}").into()],
        ))
        .await
        .expect("open an incident");
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update security_incidents set status = 'investigating' where title = $1",
            [format!("incident-of-{slug}").into()],
        ))
        .await
        .expect("change it");
        txn.commit().await.expect("commit");
    }
    for (ws, slug) in sockets.iter_mut().zip([A, B]) {
        let seen = drain(ws, 4).await;
        let expected = vec![
            format!("e:event-of-{slug}"),
            format!("i:incident-of-{slug}"),
            format!("i:incident-of-{slug}"),
            format!("t:threat-of-{slug}"),
        ];
        assert_eq!(
            seen, expected,
            "{slug} sees its own rows (the incident opened and changed), nothing else"
        );
    }
}

/// What a PostgreSQL restart does to a gateway: every connection of the database dies,
/// the listener's included. The listener reconnects by itself and the hub backfills by
/// cursor, so threats committed while it was cut off still arrive, once.
#[tokio::test]
async fn the_stream_resumes_after_every_database_connection_is_killed() {
    let w = world().await;
    let token = w.login(A, "officer").await;
    let mut ws = WsClient::connect(&w.gw, Some(&token)).await;
    ws.subscribe("t", THREATS, json!({})).await;
    live(&mut ws, "t", "threatDetected", |i| {
        w.threat(A, format!("probe-{i}"), "low")
    })
    .await;

    let killed = support::sql::scalar(
        &w.owner,
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
          where datname = current_database() and pid <> pg_backend_pid()",
    )
    .await;
    assert!(
        killed.is_some_and(|n| n != "0"),
        "the gateway's connections were killed"
    );
    for i in 0..5 {
        w.threat(A, format!("while-reconnecting-{i}"), "high").await;
    }
    let received = collect(&mut ws, "t", "threatDetected", "threat", 5).await;
    let expected: Vec<String> = (0..5).map(|i| format!("while-reconnecting-{i}")).collect();
    assert_eq!(received, expected, "every threat, once, in order");
}
