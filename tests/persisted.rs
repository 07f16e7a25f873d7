//! Persisted operations: automatic persisted queries (hash first, the document once),
//! and trusted-documents mode, where only documents registered with `ultracore documents
//! register` run, over HTTP and WebSocket, on every copy.

mod support;

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::cli::{run, ultracore_with_database};
use support::fixture::{A, Fixture};
use support::gateway::{TestGateway, first_error_code};
use support::{TempDir, TestDb};

const ME: &str = "query Me { me { id } }";

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn send(gw: &TestGateway, token: &str, query: Option<&str>, hash: Option<&str>) -> Value {
    let mut body = json!({});
    if let Some(query) = query {
        body["query"] = json!(query);
    }
    if let Some(hash) = hash {
        body["extensions"] = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    }
    let (status, text) = gw
        .post_raw("application/json", body.to_string(), Some(token))
        .await;
    assert_eq!(status, 200, "{text}");
    support::gateway::parse_body(&text)
}

#[tokio::test]
async fn automatic_persisted_queries_learn_a_document_once() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let token = fixture.login(&gw, A, "officer").await;
    let hash = sha256(ME);

    let unknown = send(&gw, &token, None, Some(&hash)).await;
    assert_eq!(
        first_error_code(&unknown).as_deref(),
        Some("PERSISTED_QUERY_NOT_FOUND")
    );
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");

    let wrong = send(&gw, &token, Some(ME), Some(&sha256("{ other }"))).await;
    assert_eq!(
        first_error_code(&wrong).as_deref(),
        Some("BAD_USER_INPUT"),
        "{wrong:#}"
    );

    let learned = send(&gw, &token, Some(ME), Some(&hash)).await;
    assert!(learned["data"]["me"]["id"].is_string(), "{learned:#}");
    let by_hash = send(&gw, &token, None, Some(&hash)).await;
    assert_eq!(by_hash["data"], learned["data"], "{by_hash:#}");
}

#[tokio::test]
async fn trusted_documents_mode_runs_only_registered_documents() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let dir = TempDir::new("ultracore-documents");
    let file = dir.path().join("me.graphql");
    std::fs::write(&file, ME).expect("write the document");
    let bad = dir.path().join("bad.graphql");
    std::fs::write(&bad, "query { me { id }").expect("write a broken document");

    // One broken file registers nothing.
    let refused = run(ultracore_with_database(&db.owner_url(), dir.path()).args([
        "documents",
        "register",
        file.to_str().expect("path"),
        bad.to_str().expect("path"),
    ]));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a GraphQL document"));
    let owner = db.owner().await;
    assert_eq!(
        support::sql::count(
            &owner,
            "select count(*) as n from ultracore_registry.trusted_documents"
        )
        .await,
        0
    );

    // The client's sign-in document is registered too: in this mode nothing else runs.
    let login = dir.path().join("login.graphql");
    std::fs::write(&login, support::fixture::LOGIN_DOCUMENT).expect("write the login document");
    let registered = run(ultracore_with_database(&db.owner_url(), dir.path()).args([
        "documents",
        "register",
        file.to_str().expect("path"),
        login.to_str().expect("path"),
    ]));
    let printed = String::from_utf8_lossy(&registered.stdout);
    assert!(registered.status.success(), "{printed}");
    let hash = sha256(ME);
    assert!(printed.starts_with(&hash), "the hash is printed: {printed}");

    let gw = TestGateway::start_with(&db, |c| c.graphql.trusted_documents = true).await;
    let token = fixture.login(&gw, A, "officer").await;
    let by_text = send(&gw, &token, Some(ME), None).await;
    assert!(by_text["data"]["me"]["id"].is_string(), "{by_text:#}");
    let by_hash = send(&gw, &token, None, Some(&hash)).await;
    assert!(by_hash["data"]["me"]["id"].is_string(), "{by_hash:#}");

    for (what, query, hash) in [
        ("another document", Some("{ me { id email } }"), None),
        (
            "the same with other spacing",
            Some("query Me { me { id  } }"),
            None,
        ),
        (
            "an APQ registration",
            Some("{ tenant { id } }"),
            Some(sha256("{ tenant { id } }")),
        ),
        ("an unknown hash", None, Some("0".repeat(64))),
    ] {
        let body = send(&gw, &token, query, hash.as_deref()).await;
        assert_eq!(
            first_error_code(&body).as_deref(),
            Some("PERSISTED_QUERY_NOT_ALLOWED"),
            "{what}: {body:#}"
        );
        assert!(body["data"].is_null(), "{what}: {body:#}");
    }

    // The same holds on the WebSocket.
    let mut ws = support::ws::WsClient::connect(&gw, Some(&token)).await;
    ws.subscribe(
        "t",
        "subscription { threatDetected { threat { id } } }",
        json!({}),
    )
    .await;
    let answer = ws.next_message(Duration::from_secs(10)).await.expect("an answer");
    assert!(
        answer.to_string().contains("PERSISTED_QUERY_NOT_ALLOWED"),
        "{answer}"
    );
    ws.close().await;

    // The serving role reads the registry but cannot add to it, and no row can map a
    // hash to another document.
    let app = db.app().await;
    let insert = app
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "insert into ultracore_registry.trusted_documents (sha256, document) values ('{}', '{{ x }}')",
                sha256("{ x }")
            ),
        ))
        .await;
    support::sql::expect_sqlstate(insert, "42501", "ultracore_app registers a document");
    let forged = owner
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "insert into ultracore_registry.trusted_documents (sha256, document) values ('{hash}', '{{ evil }}')"
            ),
        ))
        .await;
    support::sql::expect_sqlstate(forged, "23514", "a hash naming another document");
}
