//! GraphiQL with no internet access: the npm packages graphiql@3, react@18 and
//! react-dom@18 are installed into a temporary directory, the gateway serves them
//! (`graphql.graphiql_assets`), and headless Chromium opens GraphiQL, runs a query with
//! the bearer token from the headers editor, sees the answer, runs a subscription and
//! sees a threat arrive, and asks no host but the gateway for anything.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::chromium::{Page, chromium_binary};
use support::fixture::{A, Fixture};
use support::gateway::TestGateway;
use support::{TempDir, TestDb};

/// Installs the three packages with npm into a fresh directory; its `node_modules`.
fn install_graphiql(dir: &std::path::Path) -> std::path::PathBuf {
    let output = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "graphiql@3",
            "react@18",
            "react-dom@18",
        ])
        .current_dir(dir)
        .output()
        .expect("run npm (Node.js and npm are needed for this test)");
    assert!(
        output.status.success(),
        "npm install: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join("node_modules")
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Every URL the browser requested or opened a socket to.
fn requested_urls(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event["method"].as_str() {
            Some("Network.requestWillBeSent") => event["params"]["request"]["url"].as_str(),
            Some("Network.webSocketCreated") => event["params"]["url"].as_str(),
            _ => None,
        })
        .map(str::to_string)
        .collect()
}

/// The text GraphiQL shows in its response pane.
const RESPONSE: &str = "(document.querySelector('.graphiql-response')?.innerText ?? '')";

async fn open(page: &mut Page, base: &str, query: &str, headers: &str) {
    let url = format!(
        "{base}/graphql?query={}&headers={}",
        encode(query),
        encode(headers)
    );
    let result = page.call("Page.navigate", json!({ "url": url })).await;
    assert!(result.get("errorText").is_none(), "{result}");
    page.wait_for(
        "GraphiQL renders its editors",
        "!!document.querySelector('.graphiql-execute-button')",
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test]
async fn graphiql_runs_offline_with_the_token_from_its_headers_editor() {
    chromium_binary(); // before anything else: no Chromium is a clear failure
    let packages = TempDir::new("ultracore-graphiql");
    let node_modules = tokio::task::spawn_blocking({
        let dir = packages.path().to_path_buf();
        move || install_graphiql(&dir)
    })
    .await
    .expect("npm task");
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, |c| c.graphql.graphiql_assets = Some(node_modules)).await;
    let token = fixture.login(&gw, A, "officer").await;
    let headers = json!({ "Authorization": format!("Bearer {token}") }).to_string();

    let mut page = Page::new().await;
    page.describe = RESPONSE;
    open(
        &mut page,
        &gw.url(),
        "query Me { me { username role } }",
        &headers,
    )
    .await;
    page.eval("document.querySelector('.graphiql-execute-button').click(), true")
        .await;
    let shown = page
        .wait_for(
            "the query's answer is shown",
            &format!("{RESPONSE}.includes('\"officer\"') && {RESPONSE}"),
            Duration::from_secs(30),
        )
        .await;
    assert!(shown.to_string().contains("OFFICER"), "{shown}");

    // A subscription from GraphiQL: the token goes in connection_init.
    open(
        &mut page,
        &gw.url(),
        "subscription Feed { threatDetected { threat { threatType } } }",
        &headers,
    )
    .await;
    page.eval("document.querySelector('.graphiql-execute-button').click(), true")
        .await;
    let admin = fixture.login(&gw, A, "admin").await;
    let mut arrived = false;
    for _ in 0..60 {
        gw.data(
            Some(&admin),
            "mutation { reportThreat(input: {threatType: \"from_graphiql_feed\", severity: HIGH}) { id } }",
            json!({}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        if page
            .eval(&format!("{RESPONSE}.includes('from_graphiql_feed')"))
            .await
            == json!(true)
        {
            arrived = true;
            break;
        }
    }
    let state = page.eval(RESPONSE).await;
    assert!(arrived, "the subscription shows a reported threat: {state}");

    let authority = gw.url().trim_start_matches("http://").to_string();
    let foreign: Vec<String> = requested_urls(&page.events)
        .into_iter()
        .filter(|u| {
            !(u.starts_with(&format!("http://{authority}/")) || u.starts_with(&format!("ws://{authority}/")))
        })
        .filter(|u| !u.starts_with("data:"))
        .collect();
    assert!(foreign.is_empty(), "the browser asked other hosts: {foreign:?}");
    let requested = requested_urls(&page.events);
    assert!(
        requested
            .iter()
            .any(|u| u.ends_with("/graphiql/assets/graphiql.js")),
        "GraphiQL came from the gateway: {requested:?}"
    );
}
