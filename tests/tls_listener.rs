//! The optional TLS listener: with `http.tls_cert` and `http.tls_key` the gateway answers
//! HTTPS (checked with curl against the test CA), plain HTTP on that port gets no
//! answer, a client that never finishes its handshake does not block others, and a
//! certificate without its key stops `serve` at start.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::certs::make_certificates;
use support::{TempDir, TestDb};

fn curl(args: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("run curl");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn the_gateway_serves_https_with_its_certificate() {
    let db = TestDb::new().await;
    let certs = TempDir::new("ultracore-https-certs");
    make_certificates(certs.path());
    let dir = TempDir::new("ultracore-https");
    let port = api::db::embedded::free_port().expect("a free port");
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
    let mut serve = support::cli::ultracore(dir.path())
        .env("ULTRACORE_APP_DATABASE_URL", db.app_url())
        .env("ULTRACORE_DATA_DIR", dir.path())
        .env("ULTRACORE_HTTP__TLS_CERT", certs.path().join("server.crt"))
        .env("ULTRACORE_HTTP__TLS_KEY", certs.path().join("server.key"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn serve");
    let ca = certs.path().join("ca.crt");
    let ca = ca.to_str().expect("path");
    let https = format!("https://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = (false, String::new());
    while Instant::now() < deadline {
        answered = curl(&["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", &https]);
        if answered.0 && answered.1.contains("200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A client stuck before its handshake, held open meanwhile, must not block this one.
    let stuck = std::net::TcpStream::connect(("127.0.0.1", port));
    let again = curl(&["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", &https]);
    let plain = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{port}/healthz"),
    ]);
    let untrusted = curl(&["-o", "/dev/null", &https]);
    drop(stuck);
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(
        answered.0 && answered.1.contains("200"),
        "HTTPS /healthz: {}",
        answered.1
    );
    assert!(
        again.0 && again.1.contains("200"),
        "with a stalled handshake open: {}",
        again.1
    );
    assert!(
        !plain.1.starts_with("200"),
        "plain HTTP on the TLS port: {}",
        plain.1
    );
    assert!(
        !untrusted.0,
        "a client without the CA must refuse the certificate"
    );
}

#[test]
fn a_certificate_without_its_key_stops_serve_at_start() {
    let certs = TempDir::new("ultracore-https-half");
    make_certificates(certs.path());
    let dir = TempDir::new("ultracore-https-half-run");
    let output = support::cli::ultracore(dir.path())
        .env("ULTRACORE_DATA_DIR", dir.path())
        .env(
            "ULTRACORE_APP_DATABASE_URL",
            "postgres://ultracore_app:x@127.0.0.1:1/none",
        )
        .env("ULTRACORE_HTTP__TLS_CERT", certs.path().join("server.crt"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("http.tls_cert and http.tls_key go together"),
        "{stderr}"
    );
    let _ = std::io::stderr().flush();
}
