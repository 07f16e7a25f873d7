//! A real `ultracore serve` process over a test database, as an operator runs it: only
//! the serving role's URL, the shared test secrets, its own data directory and log file.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::cli::ultracore;
use super::gateway::{TEST_DATA_KEY, TEST_SECRET};
use super::{TempDir, TestDb};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `ultracore serve`, stopped when dropped (also when the test panics): SIGTERM,
/// then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
pub struct ServeProcess {
    pub name: &'static str,
    child: Child,
    pub port: u16,
    log: PathBuf,
    client: reqwest::Client,
    // Declared last: dropped after the process is stopped.
    _dir: TempDir,
}

impl ServeProcess {
    /// Starts a copy serving `db` as `ultracore_app` only (no owner URL: it neither
    /// migrates nor holds the owner's credentials), with the shared test secrets, and
    /// waits until /readyz answers 200.
    pub async fn start(name: &'static str, db: &TestDb, env: &[(String, String)]) -> ServeProcess {
        // The port is chosen by binding :0 and released before the child binds it; another
        // process may take it in between, so a copy that cannot listen gets another port.
        for _ in 0..5 {
            let mut gateway = ServeProcess::spawn(name, db, env);
            match gateway.wait_ready().await {
                Ok(()) => return gateway,
                Err(log) if log.contains("cannot listen") => continue,
                Err(log) => panic!("gateway {name} did not become ready:\n{log}"),
            }
        }
        panic!("gateway {name}: no free port after 5 tries");
    }

    pub fn spawn(name: &'static str, db: &TestDb, env: &[(String, String)]) -> ServeProcess {
        let dir = TempDir::new(&format!("ultracore-multiprocess-{name}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.path().join("serve.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = ultracore(dir.path());
        cmd.env("ULTRACORE_APP_DATABASE_URL", db.app_url())
            .env(
                "ULTRACORE_JWT_SECRET",
                std::str::from_utf8(TEST_SECRET).expect("utf-8 secret"),
            )
            .env("ULTRACORE_DATA_KEY", TEST_DATA_KEY)
            .env("ULTRACORE_DATA_DIR", dir.path())
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().expect("spawn ultracore serve");
        ServeProcess {
            name,
            child,
            port,
            log,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls /readyz until 200; on failure, the process's log.
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no 200 on /readyz within {START_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs one GraphQL operation as `token`'s bearer (anonymous without one).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /graphql to {}: {e}\n{}", self.name, self.log()));
        let status = response.status();
        let text = response.text().await.expect("response body");
        assert_eq!(status, 200, "{} answered {status}: {text}", self.name);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} answered non-JSON ({e}): {text}", self.name))
    }

    /// An operation that must succeed; its `data`.
    pub async fn data(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "{query} on {}: unexpected errors: {body:#}",
            self.name
        );
        body["data"].clone()
    }

    /// SIGTERM, and asserts the copy was still running and exits cleanly.
    pub fn stop(mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "{} died during the test:\n{}",
            self.name,
            self.log()
        );
        let status = self.terminate();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} exits cleanly on SIGTERM ({status:?}):\n{}",
            self.name,
            self.log()
        );
    }

    pub fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}
