//! HTTP hardening: security headers on every answer, CORS only for configured origins,
//! gzip for large answers, and a bound on each request's time.

mod support;

use serde_json::json;
use support::TestDb;
use support::gateway::TestGateway;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let db = TestDb::new().await;
    let gw = TestGateway::start_with(&db, |c| c.http.hsts = true).await;
    for path in ["/graphql", "/healthz", "/nowhere"] {
        let response = if path == "/graphql" {
            client()
                .post(format!("{}{path}", gw.url()))
                .header("content-type", "application/json")
                .body(json!({ "query": "{ __typename }" }).to_string())
                .send()
                .await
        } else {
            client().get(format!("{}{path}", gw.url())).send().await
        }
        .expect("request");
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
            ("strict-transport-security", "max-age=31536000; includeSubDomains"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{path}: {name}"
            );
        }
    }
    // The console keeps its own, stricter policy.
    let console = client()
        .get(format!("{}/console", gw.url()))
        .send()
        .await
        .expect("console");
    assert!(
        console.headers().get("content-security-policy").is_some(),
        "the console's CSP is kept"
    );
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let db = TestDb::new().await;
    let gw = TestGateway::start_with(&db, |c| {
        c.http.allowed_origins = vec!["https://console.bank.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", gw.url()))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = preflight("https://console.bank.example")
        .await
        .expect("preflight");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://console.bank.example")
    );
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(
        other.headers().get("access-control-allow-origin").is_none(),
        "no CORS grant for an unlisted origin"
    );
    let none = TestGateway::start(&db).await;
    let plain = client()
        .post(format!("{}/graphql", none.url()))
        .header("origin", "https://console.bank.example")
        .header("content-type", "application/json")
        .body(json!({ "query": "{ __typename }" }).to_string())
        .send()
        .await
        .expect("post");
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_accept_it() {
    let db = TestDb::new().await;
    let gw = TestGateway::start(&db).await;
    // The development schema's introspection is a large answer.
    let response = client()
        .post(format!("{}/graphql", gw.url()))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .body(json!({ "query": "{ __schema { types { name fields { name } } } }" }).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
}

#[tokio::test]
async fn a_request_past_its_time_bound_is_cut_off() {
    let db = TestDb::new().await;
    support::fixture::Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, |c| c.http.request_timeout_ms = 1).await;
    // A sign-in costs an Argon2 verification: far more than a millisecond.
    let (status, body) = gw
        .gql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            json!({ "input": { "tenant": "acme", "username": "officer", "password": "whatever it is" } }),
        )
        .await;
    assert_eq!(status, 408);
    assert_eq!(
        support::gateway::first_error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "a coded error: {body:#}"
    );
}
