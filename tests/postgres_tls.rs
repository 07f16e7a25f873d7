//! The gateway talks to a PostgreSQL that accepts only TLS: with `sslmode=verify-full`
//! and the server's CA (`sslrootcert`) in the URLs it migrates and serves; without the
//! CA it refuses the server (the certificate is really verified); and a plain
//! connection is refused by the server.
//!
//! The server is a cluster of this test's own (the embedded module's), given a CA and a
//! certificate for 127.0.0.1 made with `openssl`, and a pg_hba.conf of `hostssl` lines
//! only.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use api::db::embedded::{ClusterOptions, EmbeddedCluster};
use sea_orm::{ConnectionTrait, Database};
use support::TempDir;
use support::certs::make_certificates;
use support::cli::{run, ultracore_with_database};

/// Copies the server's key and certificate into PGDATA, owned like PGDATA (the server
/// refuses a key anyone else can read).
fn install_server_certificate(certs: &Path, data: &Path) {
    let owner = std::fs::metadata(data).expect("PGDATA");
    for (file, mode) in [("server.crt", 0o644), ("server.key", 0o600)] {
        let target = data.join(file);
        std::fs::copy(certs.join(file), &target).expect("copy into PGDATA");
        std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid())).expect("chown");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// Only TLS connections from now on: every `host` line becomes `hostssl`.
fn require_tls(data: &Path) {
    let hba = data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    let rewritten: String = text
        .lines()
        .map(|line| match line.strip_prefix("host ") {
            Some(rest) => format!("hostssl {rest}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&hba, rewritten).expect("write pg_hba.conf");
}

struct Stopped(EmbeddedCluster);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

#[tokio::test]
async fn the_gateway_connects_to_a_tls_only_postgresql_given_its_ca() {
    let root = TempDir::new("ultracore-tls");
    let certs = TempDir::new("ultracore-tls-certs");
    make_certificates(certs.path());
    let options = ClusterOptions {
        stat_statements: false,
        disposable: true,
    };
    let (cluster, _) = EmbeddedCluster::start(root.path(), &options).expect("start a cluster");
    let cluster = Stopped(cluster);
    let data = cluster.0.data_dir();
    install_server_certificate(certs.path(), &data);
    require_tls(&data);
    let admin = Database::connect(cluster.0.superuser_url("postgres"))
        .await
        .expect("connect");
    for setting in [
        "alter system set ssl = on",
        "alter system set ssl_cert_file = 'server.crt'",
        "alter system set ssl_key_file = 'server.key'",
        "create database ultracore",
    ] {
        admin
            .execute_unprepared(setting)
            .await
            .unwrap_or_else(|e| panic!("{setting}: {e}"));
    }
    admin
        .execute_unprepared("select pg_reload_conf()")
        .await
        .expect("reload");
    admin.close().await.ok();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ca = certs.path().join("ca.crt");
    let base = cluster.0.superuser_url("ultracore");
    let verified = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());

    // Plain text is refused by the server.
    let plain = Database::connect(format!("{base}?sslmode=disable")).await;
    let refused = plain.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        refused.contains("no encryption") || refused.contains("pg_hba"),
        "plain connection: {refused}"
    );

    // Without the CA the server's certificate is not trusted.
    let dir = TempDir::new("ultracore-tls-cli");
    let untrusted = run(
        ultracore_with_database(&format!("{base}?sslmode=verify-full"), dir.path())
            .args(["migrate", "status"]),
    );
    assert!(
        !untrusted.status.success(),
        "verify-full without the CA must fail"
    );

    // With it: migrations, then a serving gateway whose /readyz says the database answers.
    let migrated = run(ultracore_with_database(&verified, dir.path())
        .env("ULTRACORE_APP_DB_PASSWORD", "tls-test-app-password")
        .args(["migrate", "up"]));
    assert!(
        migrated.status.success(),
        "migrate over TLS: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let port = api::db::embedded::free_port().expect("a free port");
    let mut serve = ultracore_with_database(&verified, dir.path())
        .env("ULTRACORE_APP_DB_PASSWORD", "tls-test-app-password")
        .env("ULTRACORE_DATA_DIR", dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && response.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(ready, "the gateway became ready over TLS");

    // Its connections really are encrypted.
    let check = Database::connect(verified.clone())
        .await
        .expect("verified connection");
    let row = check
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        ))
        .await
        .expect("pg_stat_ssl")
        .expect("a row");
    assert!(
        row.try_get::<bool>("", "ssl").expect("ssl"),
        "the connection uses TLS"
    );
}
