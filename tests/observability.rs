//! What an operator sees: request ids round-trip, one log line per operation that never
//! holds a password or a token, and Prometheus metrics at /metrics that count queries
//! and failed sign-ins (behind a bearer token when one is configured).

mod support;

use serde_json::json;
use support::TestDb;
use support::fixture::{A, Fixture, PASSWORD};
use support::gateway::TestGateway;
use support::serve::ServeProcess;

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";

async fn post_with(gw: &TestGateway, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/graphql", gw.url()))
        .header("content-type", "application/json")
        .body(json!({ "query": "{ __typename }" }).to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("POST /graphql")
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("every response carries x-request-id")
        .to_string()
}

#[tokio::test]
async fn request_ids_round_trip_and_bad_ones_are_replaced() {
    let db = TestDb::new().await;
    let gw = TestGateway::start(&db).await;
    let echoed = post_with(&gw, &[("x-request-id", "client-7f3a.42")]).await;
    assert_eq!(request_id(&echoed), "client-7f3a.42");
    let generated = request_id(&post_with(&gw, &[]).await);
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "a UUID: {generated}");
    let replaced = request_id(&post_with(&gw, &[("x-request-id", "has spaces; and=more")]).await);
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "replaced: {replaced}");
    // Health checks and unknown paths carry one too.
    let health = reqwest::get(format!("{}/healthz", gw.url()))
        .await
        .expect("healthz");
    request_id(&health);
}

async fn scrape(gw: &TestGateway, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", gw.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET /metrics");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The value of the series whose line starts with `series` (0 when absent).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_a_query_and_a_failed_login() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let token = fixture.login(&gw, A, "officer").await;
    let query = r#"ultracore_graphql_operations_total{kind="query",operation="WhoAmI",outcome="ok"}"#;
    let refused = r#"ultracore_logins_total{outcome="refused"}"#;
    let (status, before) = scrape(&gw, None).await;
    assert_eq!(status, 200, "{before}");

    let body = json!({ "query": "query WhoAmI { me { id } }", "operationName": "WhoAmI" }).to_string();
    let (status, _) = gw.post_raw("application/json", body, Some(&token)).await;
    assert_eq!(status, 200);
    let (_, reply) = gw
        .gql(
            None,
            LOGIN,
            json!({ "input": { "tenant": A, "username": "officer", "password": "not the password" } }),
        )
        .await;
    assert_eq!(
        support::gateway::first_error_code(&reply).as_deref(),
        Some("UNAUTHENTICATED")
    );

    let (_, after) = scrape(&gw, None).await;
    assert_eq!(value(&after, query) - value(&before, query), 1.0, "{after}");
    assert_eq!(value(&after, refused) - value(&before, refused), 1.0, "{after}");
    for family in [
        "ultracore_graphql_operation_duration_seconds_bucket",
        "ultracore_db_transaction_duration_seconds_bucket",
        "ultracore_db_pool_connections{state=\"in_use\"}",
        "ultracore_db_pool_connections{state=\"waiting\"} 0",
        "ultracore_db_acquire_seconds_bucket",
        "ultracore_http_requests_total{route=\"/graphql\"",
    ] {
        assert!(after.contains(family), "{family} missing:\n{after}");
    }
}

#[tokio::test]
async fn metrics_behind_a_token_refuse_anyone_without_it() {
    let db = TestDb::new().await;
    let gw = TestGateway::start_with(&db, |config| {
        config.http.metrics_token = Some("scraper-secret-0123456789".into());
    })
    .await;
    assert_eq!(scrape(&gw, None).await.0, 401);
    assert_eq!(scrape(&gw, Some("wrong")).await.0, 401);
    assert_eq!(scrape(&gw, Some("scraper-secret-0123456789")).await.0, 200);
    let off = TestGateway::start_with(&db, |config| config.http.metrics = false).await;
    assert_eq!(scrape(&off, None).await.0, 404);
}

#[tokio::test]
async fn the_log_holds_each_operation_with_its_request_id_and_never_the_password() {
    let db = TestDb::new().await;
    let _fixture = Fixture::seed(&db).await;
    let serve = ServeProcess::start("logs", &db, &[]).await;
    let secret_password = "Very-Secret-Passw0rd-That-Must-Not-Leak";
    let response = reqwest::Client::new()
        .post(serve.url("/graphql"))
        .header("x-request-id", "trace-me-123")
        .json(&json!({
            "query": LOGIN,
            "operationName": null,
            "variables": { "input": { "tenant": A, "username": "officer", "password": secret_password } },
        }))
        .send()
        .await
        .expect("login");
    assert_eq!(request_id_of(&response), "trace-me-123");
    let good = serve
        .data(
            None,
            LOGIN,
            json!({ "input": { "tenant": A, "username": "officer", "password": PASSWORD } }),
        )
        .await;
    let token = good["login"]["accessToken"].as_str().expect("token").to_string();
    // A forged operation name with a line break must not forge a log line.
    let forged = reqwest::Client::new()
        .post(serve.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "query Q { me { id } }", "operationName": "Q\nINFO forged line" }))
        .send()
        .await
        .expect("forged name");
    assert_eq!(forged.status(), 200);
    // Let the process flush its log.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = serve.log();
    assert!(
        !log.contains(secret_password),
        "the password reached the log:\n{log}"
    );
    assert!(!log.contains(&token), "the access token reached the log:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("graphql operation") && l.contains("trace-me-123"))
        .unwrap_or_else(|| panic!("the operation's line with its request id:\n{log}"));
    assert!(line.contains("UNAUTHENTICATED"), "its outcome: {line}");
    assert!(
        !log.lines().any(|l| l.starts_with("INFO forged line")),
        "a line break in input forged a log line:\n{log}"
    );
    serve.stop();
}

fn request_id_of(response: &reqwest::Response) -> String {
    request_id(response)
}
