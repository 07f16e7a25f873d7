//! Trace export over OTLP (the `otlp` cargo feature, off by default). A build without it
//! refuses to serve when an endpoint is configured, before anything starts. With it
//! (`cargo nextest run --features otlp --test otlp`), a gateway pointed at a small local
//! OTLP/HTTP collector posts the request spans of a GraphQL query to `/v1/traces`, the
//! ones still queued when it stops included, and never those of its health checks.

mod support;

use std::process::Output;

use support::TempDir;
use support::cli::{describe, ultracore};

/// `ultracore serve` with `env`, against an address where no database listens: a
/// refusal must come before connecting.
fn serve_with(dir: &TempDir, env: &[(&str, &str)]) -> Output {
    let mut cmd = ultracore(dir.path());
    cmd.env("ULTRACORE_DATA_DIR", dir.path())
        .env(
            "ULTRACORE_APP_DATABASE_URL",
            "postgres://ultracore_app:x@127.0.0.1:1/ultracore",
        )
        .args(["serve", "--listen", "127.0.0.1:0"]);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run ultracore serve")
}

/// One `error:` line on stderr, exit 1, and nothing started (not even the development
/// secrets generated).
fn refused(dir: &TempDir, output: &Output, reasons: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    assert_eq!(stderr.lines().count(), 1, "one line: {}", describe(output));
    assert!(stderr.starts_with("error: "), "{}", describe(output));
    for reason in reasons {
        assert!(
            stderr.contains(reason),
            "expected {reason:?}: {}",
            describe(output)
        );
    }
    assert!(
        !dir.path().join("jwt.secret").exists(),
        "refused before start-up work: {}",
        describe(output)
    );
}

#[cfg(not(feature = "otlp"))]
#[test]
fn an_endpoint_without_otlp_support_is_refused_not_ignored() {
    let dir = TempDir::new("ultracore-otlp-off");
    for endpoint in ["http://127.0.0.1:4318", "not even a URL"] {
        let output = serve_with(&dir, &[("ULTRACORE_TELEMETRY__OTLP_ENDPOINT", endpoint)]);
        refused(
            &dir,
            &output,
            &[
                "telemetry.otlp_endpoint",
                "this build has no OTLP support",
                "--features otlp",
            ],
        );
    }
}

#[cfg(feature = "otlp")]
#[test]
fn a_malformed_endpoint_or_ratio_is_refused() {
    let dir = TempDir::new("ultracore-otlp-bad");
    let output = serve_with(&dir, &[("ULTRACORE_TELEMETRY__OTLP_ENDPOINT", "collector:4318")]);
    refused(
        &dir,
        &output,
        &["telemetry.otlp_endpoint", "is not an http:// or https:// URL"],
    );
    let output = serve_with(
        &dir,
        &[
            ("ULTRACORE_TELEMETRY__OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("ULTRACORE_TELEMETRY__SAMPLE_RATIO", "2"),
        ],
    );
    refused(&dir, &output, &["telemetry.sample_ratio"]);
}

#[cfg(feature = "otlp")]
mod collector {
    //! Just enough of an OTLP/HTTP collector: HTTP/1.1 with keep-alive, every request
    //! recorded and answered with an empty (fully successful) export response. Plain
    //! threads, so it keeps answering while the test blocks waiting for the gateway.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone)]
    pub struct Received {
        pub request_line: String,
        pub content_type: String,
        pub body: Vec<u8>,
    }

    pub struct Collector {
        pub port: u16,
        received: Arc<Mutex<Vec<Received>>>,
    }

    impl Collector {
        pub fn start() -> Collector {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind the collector");
            let port = listener.local_addr().expect("collector address").port();
            let received = Arc::new(Mutex::new(Vec::new()));
            let sink = received.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let sink = sink.clone();
                    std::thread::spawn(move || answer(stream, &sink));
                }
            });
            Collector { port, received }
        }

        pub fn received(&self) -> Vec<Received> {
            self.received.lock().expect("collector lock").clone()
        }
    }

    fn answer(stream: TcpStream, sink: &Mutex<Vec<Received>>) {
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let (mut length, mut content_type) = (0, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    match name.trim().to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "content-type" => content_type = value.trim().to_string(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            sink.lock().expect("collector lock").push(Received {
                request_line: request_line.trim_end().to_string(),
                content_type,
                body,
            });
            let reply =
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

#[cfg(feature = "otlp")]
#[tokio::test]
async fn a_query_is_exported_to_the_collector_and_probes_are_not() {
    use support::TestDb;
    use support::serve::ServeProcess;

    fn holds(body: &[u8], text: &str) -> bool {
        body.windows(text.len()).any(|w| w == text.as_bytes())
    }

    let db = TestDb::new().await;
    let collector = collector::Collector::start();
    let env = [
        (
            "ULTRACORE_TELEMETRY__OTLP_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{}", collector.port),
        ),
        (
            "ULTRACORE_TELEMETRY__SERVICE_NAME".to_string(),
            "ultracore-otlp-test".to_string(),
        ),
    ];
    // Started once /readyz answers: the probes before it must not be exported.
    let mut serve = ServeProcess::start("otlp", &db, &env).await;
    assert!(
        serve.log().contains("exporting traces over OTLP"),
        "{}",
        serve.log()
    );
    let response = reqwest::Client::new()
        .post(serve.url("/graphql"))
        .header("x-request-id", "otlp-probe-7")
        .json(&serde_json::json!({ "query": "query OtlpProbe { __typename }", "operationName": "OtlpProbe" }))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);
    // SIGTERM: the spans still queued (the batch waits 5 s) are sent before it exits.
    let stopped = serve.terminate();
    let log = serve.log();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "exits cleanly on SIGTERM ({stopped:?}):\n{log}"
    );

    let exports = collector.received();
    assert!(!exports.is_empty(), "no export reached the collector:\n{log}");
    for export in &exports {
        assert_eq!(export.request_line, "POST /v1/traces HTTP/1.1", "{export:?}");
        assert_eq!(export.content_type, "application/x-protobuf", "{export:?}");
    }
    let body: Vec<u8> = exports.iter().flat_map(|e| e.body.clone()).collect();
    for expected in [
        "ultracore-otlp-test",
        "request",
        "/graphql",
        "otlp-probe-7",
        "POST",
        "request finished",
    ] {
        assert!(
            holds(&body, expected),
            "{expected:?} missing from the exported spans:\n{log}"
        );
    }
    for probe in ["/readyz", "/healthz"] {
        assert!(!holds(&body, probe), "a {probe} probe was exported");
    }
}
