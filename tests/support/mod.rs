//! Shared test support: one throwaway PostgreSQL cluster per test run, one migrated
//! template database, and a fresh database per test cloned from it.
//!
//! nextest runs every test in its own process, so the cluster cannot live in a static:
//! the first process of a run starts it (under a file lock) and every later process of
//! the same run finds it running. The run is identified by NEXTEST_RUN_ID, or by the
//! runner's pid under `cargo test`. The first process also leaves a small reaper behind
//! that stops the cluster and deletes it once the runner exits, so nothing survives the
//! run. With ULTRACORE_TEST_DATABASE_URL (a superuser URL of an existing server) that
//! server is used instead, and each test database is dropped when its test ends.
//!
//! The template is named after a hash of the migrations, so a changed migration gets a
//! new template and an unchanged one is built once.

#![allow(dead_code)]

pub mod certs;
pub mod chromium;
pub mod cli;
pub mod fixture;
pub mod gateway;
pub mod serve;
pub mod sessions;
pub mod sql;
pub mod tokens;
pub mod totp;
pub mod walk;
pub mod ws;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use api::db::embedded::{ClusterOptions, EmbeddedCluster};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use sha2::{Digest, Sha256};

/// Password the test template gives the `ultracore_app` role.
pub const APP_PASSWORD: &str = "ultracore-test-app-password";

/// A PostgreSQL server for the tests: how to reach it as superuser and as the app role.
#[derive(Debug, Clone)]
pub struct TestServer {
    host: String,
    port: u16,
    superuser: String,
    superuser_password: String,
    template: String,
}

impl TestServer {
    fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@{}:{}/{database}",
            self.host, self.port
        )
    }

    pub fn superuser_url(&self, database: &str) -> String {
        self.url(&self.superuser, &self.superuser_password, database)
    }

    pub fn app_url(&self, database: &str) -> String {
        self.url("ultracore_app", APP_PASSWORD, database)
    }
}

static SERVER: OnceLock<TestServer> = OnceLock::new();

/// The run's server, started and templated on first use in this process.
pub fn server() -> &'static TestServer {
    SERVER.get_or_init(|| {
        // Set up on a separate thread with its own runtime: this may be called from
        // inside a test's runtime, where blocking on another runtime is not allowed.
        std::thread::spawn(setup_server)
            .join()
            .expect("test server setup panicked")
    })
}

fn migrations_hash() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migration/src/sql");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("migration/src/sql")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.file_name().expect("name").as_encoded_bytes());
        hasher.update(fs::read(&f).expect("read migration"));
    }
    hex::encode(&hasher.finalize()[..6])
}

fn run_key() -> String {
    match std::env::var("NEXTEST_RUN_ID") {
        Ok(id) => id,
        Err(_) => format!("cargo-{}", nix::unistd::getppid()),
    }
}

fn setup_server() -> TestServer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let template = format!("ultracore_tpl_{}", migrations_hash());
    if let Ok(url) = std::env::var("ULTRACORE_TEST_DATABASE_URL") {
        let parsed = url::Url::parse(&url).expect("ULTRACORE_TEST_DATABASE_URL is not a URL");
        let server = TestServer {
            host: parsed.host_str().unwrap_or("127.0.0.1").to_string(),
            port: parsed.port().unwrap_or(5432),
            superuser: parsed.username().to_string(),
            superuser_password: parsed.password().unwrap_or("").to_string(),
            template,
        };
        let lock =
            lock_file(&std::env::temp_dir().join(format!("ultracore-test-{}.lock", migrations_hash())));
        runtime.block_on(ensure_template(&server));
        drop(lock);
        return server;
    }

    let root = std::env::temp_dir().join(format!("ultracore-test-{}", run_key()));
    let lock = lock_file(&root.with_extension("lock"));
    let options = ClusterOptions {
        stat_statements: true,
        disposable: true,
    };
    let (cluster, _) = EmbeddedCluster::start(&root, &options).expect("start the test cluster");
    // One reaper per run, whichever test process got here first.
    let reaper_marker = root.join("reaper.started");
    if !reaper_marker.exists() {
        spawn_reaper(&root);
        fs::write(&reaper_marker, b"").expect("write the reaper marker");
    }
    let password = fs::read_to_string(root.join("superuser.password")).expect("superuser password");
    let server = TestServer {
        host: "127.0.0.1".into(),
        port: cluster.port(),
        superuser: api::db::embedded::SUPERUSER.into(),
        superuser_password: password.trim().to_string(),
        template,
    };
    runtime.block_on(ensure_template(&server));
    drop(lock);
    server
}

fn lock_file(path: &std::path::Path) -> File {
    let file = File::create(path).expect("create lock file");
    file.lock().expect("lock");
    file
}

/// Stops and deletes the cluster once the test runner (our parent) exits.
// The reaper must outlive this process, so it is deliberately never waited for.
#[allow(clippy::zombie_processes)]
fn spawn_reaper(root: &std::path::Path) {
    let runner = nix::unistd::getppid();
    let script = format!(
        r#"while kill -0 {runner} 2>/dev/null; do sleep 1; done
pid=$(head -n 1 '{data}/postmaster.pid' 2>/dev/null)
if [ -n "$pid" ]; then kill -INT "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; fi
rm -rf '{root}' '{root}.lock'"#,
        data = root.join("pg/data").display(),
        root = root.display(),
    );
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the cluster reaper");
}

async fn ensure_template(server: &TestServer) {
    let admin = Database::connect(server.superuser_url("postgres"))
        .await
        .expect("connect as superuser");
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select 1 from pg_database where datname = $1",
            [server.template.clone().into()],
        ))
        .await
        .expect("query pg_database")
        .is_some();
    if !exists {
        let building = format!("{}_building", server.template);
        admin
            .execute_unprepared(&format!("drop database if exists {building} with (force)"))
            .await
            .expect("drop");
        admin
            .execute_unprepared(&format!("create database {building}"))
            .await
            .expect("create template");
        let db = Database::connect(server.superuser_url(&building))
            .await
            .expect("connect template");
        db.execute_unprepared("create extension if not exists pg_stat_statements")
            .await
            .expect("pg_stat_statements");
        use sea_orm_migration::MigratorTrait;
        migration::Migrator::up(&db, None)
            .await
            .expect("migrate the template");
        api::db::source::set_app_password(&db, APP_PASSWORD)
            .await
            .expect("set app password");
        db.close().await.expect("close template");
        // Renamed only once complete, so a crash mid-build never leaves a half template.
        admin
            .execute_unprepared(&format!(
                "alter database {building} rename to {}",
                server.template
            ))
            .await
            .expect("rename template");
    }
    admin.close().await.expect("close admin");
}

/// A fresh, migrated database for one test, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    server: &'static TestServer,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let server = server();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(server.superuser_url("postgres"))
            .await
            .expect("connect as superuser");
        admin
            .execute_unprepared(&format!("create database {name} template {}", server.template))
            .await
            .expect("clone the template");
        admin.close().await.expect("close");
        TestDb { name, server }
    }

    /// URL of the owner (a superuser here, as in the embedded default).
    pub fn owner_url(&self) -> String {
        self.server.superuser_url(&self.name)
    }

    /// URL of the serving role.
    pub fn app_url(&self) -> String {
        self.server.app_url(&self.name)
    }

    pub async fn owner(&self) -> DatabaseConnection {
        Database::connect(self.owner_url())
            .await
            .expect("connect as owner")
    }

    pub async fn app(&self) -> DatabaseConnection {
        Database::connect(self.app_url())
            .await
            .expect("connect as ultracore_app")
    }

    /// A pool of the serving role's connections: at most `max`, kept open at least `min`.
    pub async fn app_pool(&self, max: u32, min: u32) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.app_url());
        options
            .max_connections(max)
            .min_connections(min)
            .sqlx_logging(false);
        Database::connect(options)
            .await
            .unwrap_or_else(|e| panic!("connect a pool of {max} ultracore_app connections: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.server.superuser_url("postgres");
        let name = self.name.clone();
        // Drop runs inside a test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let admin = Database::connect(url).await.ok()?;
                admin
                    .execute_unprepared(&format!("drop database if exists {name} with (force)"))
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Fails once with every finding of a check that collects them all, or passes when
/// there are none.
pub fn assert_no_findings(what: &str, findings: &[String]) {
    assert!(
        findings.is_empty(),
        "{what}: {} finding(s):\n  - {}",
        findings.len(),
        findings.join("\n  - ")
    );
}
