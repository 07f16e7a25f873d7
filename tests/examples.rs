//! The client examples under `examples/` work against a live gateway: every document
//! parses, the curl walkthrough runs end to end, and the Node script (graphql-ws from
//! npm, installed into a temporary directory) receives a threat reported while it
//! listens.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::fixture::{A, Fixture, PASSWORD};
use support::gateway::TestGateway;
use support::{TempDir, TestDb};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[tokio::test]
async fn every_example_document_registers_as_a_trusted_document() {
    // `documents register` parses every file before writing any.
    let db = TestDb::new().await;
    let dir = TempDir::new("ultracore-example-documents");
    let files: Vec<PathBuf> = std::fs::read_dir(examples().join("graphql"))
        .expect("examples/graphql")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(files.len() >= 7, "the documents are there: {files:?}");
    let output = support::cli::run(
        support::cli::ultracore_with_database(&db.owner_url(), dir.path())
            .args(["documents", "register"])
            .args(&files),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with("registered")).count(),
        files.len()
    );
}

#[tokio::test]
async fn the_curl_walkthrough_runs_end_to_end() {
    let db = TestDb::new().await;
    Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let url = gw.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(examples().join("walkthrough.sh"))
            .env("GATEWAY", url)
            .env("TENANT", A)
            .env("USERNAME", "admin")
            .env("PASSWORD", PASSWORD)
            .output()
            .expect("run the walkthrough")
    })
    .await
    .expect("walkthrough task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "signed in as admin",
        "me: ",
        "latest events: ",
        "reported threat ",
        "events per hour",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}\n{stderr}");
    }
}

/// Copies `from` into `to` (the example files only, not node_modules).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_name() == "node_modules" {
            continue;
        }
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test]
async fn the_node_script_follows_the_threat_feed() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let admin = fixture.login(&gw, A, "admin").await;

    let dir = TempDir::new("ultracore-examples");
    copy_tree(&examples(), dir.path());
    let node_dir = dir.path().join("node");
    let install = tokio::task::spawn_blocking({
        let node_dir = node_dir.clone();
        move || {
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&node_dir)
                .output()
                .expect("run npm install (Node.js and npm are needed for this test)")
        }
    })
    .await
    .expect("npm task");
    assert!(
        install.status.success(),
        "npm install: {}",
        String::from_utf8_lossy(&install.stderr)
    );

    let mut child = Command::new("node")
        .args(["threat-feed.mjs", "--count", "1"])
        .current_dir(&node_dir)
        .env("GATEWAY", gw.url())
        .env("TENANT", A)
        .env("USERNAME", "officer")
        .env("PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let stderr = child.stderr.take().expect("stderr");
    let subscribed = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("subscribed"))
    });
    assert!(subscribed.await.expect("stderr task"), "the script subscribed");

    // Report until the script has printed one (the subscription registers asynchronously).
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        gw.data(
            Some(&admin),
            "mutation($input: ReportThreatInput!) { reportThreat(input: $input) { id } }",
            json!({ "input": { "threatType": "example_feed", "severity": "HIGH" } }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        if let Some(status) = child.try_wait().expect("poll node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the script received no threat in 120 s");
        }
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout).expect("read");
    assert!(status.success(), "node exited with {status}: {stdout}");
    let threat: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("one line")).expect("JSON line");
    assert_eq!(threat["threatType"], "example_feed", "{stdout}");
}
