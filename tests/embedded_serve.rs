//! `ultracore serve`: with nothing configured it runs its own PostgreSQL cluster under
//! ULTRACORE_DATA_DIR, stops it on SIGTERM and starts again on the same data; with
//! DATABASE_URL it refuses an app role that could bypass RLS.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::cli::{describe, ultracore, ultracore_with_database};
use uuid::Uuid;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh directory under /tmp, mode 0755 so the `postgres` OS user can reach the
/// cluster inside it when the tests run as root. On drop: stops any cluster still running
/// in it (a failed test must not leave a postmaster behind) and removes it.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> DataDir {
        let dir = PathBuf::from("/tmp").join(format!("ultracore-embedded-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create data dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        DataDir(dir)
    }

    fn pid_file(&self) -> PathBuf {
        self.0.join("pg/data/postmaster.pid")
    }

    /// (pid, port) of the running postmaster, from postmaster.pid.
    fn postmaster(&self) -> Option<(i32, u16)> {
        postmaster_of(&self.0)
    }
}

/// (pid, port) of the postmaster running on the cluster under `data_dir`.
fn postmaster_of(data_dir: &Path) -> Option<(i32, u16)> {
    let text = std::fs::read_to_string(data_dir.join("pg/data/postmaster.pid")).ok()?;
    let mut lines = text.lines();
    // initdb's single-user backend writes its pid negated: only a postmaster counts.
    let pid = lines.next()?.trim().parse().ok().filter(|pid: &i32| *pid > 0)?;
    let port = lines.nth(2)?.trim().parse().ok()?;
    Some((pid, port))
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if let Some((pid, _)) = self.postmaster() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while process_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `ultracore serve`; SIGTERMed (then killed) on drop if still running.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        wait_for_exit(&mut self.child, STOP_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "serve did not stop within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                self.log()
            )
        })
    }

    /// SIGTERM, and asserts a clean exit.
    fn terminate_cleanly(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "serve exits cleanly on SIGTERM: {status}\n{}",
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            if wait_for_exit(&mut self.child, STOP_TIMEOUT).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Alive and not a zombie (a daemonised postmaster is reparented, and its new parent may
/// be slow to reap it).
fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts `ultracore serve --listen 127.0.0.1:<free port>` with output going to `log`.
fn spawn_serve(mut cmd: Command, log: PathBuf) -> Server {
    let port = free_port();
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = cmd
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn ultracore serve");
    Server { child, port, log }
}

/// Starts `ultracore serve` with the test database's owner URL as DATABASE_URL and the
/// setting `name` = `value`, logging to serve.log in `dir`.
fn spawn_serve_on(db: &support::TestDb, dir: &DataDir, name: &str, value: &str) -> Server {
    let mut cmd = ultracore_with_database(&db.owner_url(), &dir.0);
    cmd.env(name, value);
    spawn_serve(cmd, dir.0.join("serve.log"))
}

/// Polls GET /healthz until it answers 200 (up to START_TIMEOUT), and checks the body.
async fn wait_healthy(server: &mut Server) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "serve exited with {status} before answering /healthz:\n{}",
                server.log()
            );
        }
        if let Ok(response) = reqwest::get(server.url("/healthz")).await {
            assert_eq!(response.status(), 200, "{}", server.log());
            let body: serde_json::Value = response.json().await.expect("/healthz answers JSON");
            assert_eq!(body, serde_json::json!({ "status": "ok" }));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no answer on /healthz within {START_TIMEOUT:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_pid_file_removed(data: &DataDir, server: &Server) {
    assert!(
        !data.pid_file().exists(),
        "postmaster.pid is removed:\n{}",
        server.log()
    );
}

fn port_accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

// ---------------------------------------------------------------------------------------
// The embedded default
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_serve_creates_its_cluster_stops_on_sigterm_and_restarts_on_the_same_data() {
    let data = DataDir::new();
    let embedded = |args: &[&str]| {
        let mut cmd = ultracore(&data.0);
        cmd.env("ULTRACORE_DATA_DIR", &data.0).args(args);
        cmd
    };

    // First start: creates the cluster, serves.
    let mut server = spawn_serve(embedded(&[]), data.0.join("serve-1.log"));
    wait_healthy(&mut server).await;
    assert!(
        data.0.join("pg/data/PG_VERSION").is_file(),
        "the cluster lives in ULTRACORE_DATA_DIR"
    );
    let (postmaster, pg_port) = data.postmaster().expect("a postmaster runs while serving");
    assert!(process_alive(postmaster));

    // SIGTERM: clean exit, and the cluster it started is stopped.
    server.terminate_cleanly();
    assert_pid_file_removed(&data, &server);
    assert!(!process_alive(postmaster), "the postmaster is gone");
    assert!(
        !port_accepts(pg_port),
        "nothing listens on the cluster's port any more"
    );
    assert!(
        !port_accepts(server.port),
        "nothing listens on the HTTP port any more"
    );
    drop(server);

    // In between, an admin command on the same data dir (it starts and stops the cluster).
    let out = embedded(&[
        "tenant",
        "create",
        "--slug",
        "embedded-acme",
        "--name",
        "Embedded Acme",
    ])
    .output()
    .expect("tenant create");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    Uuid::parse_str(String::from_utf8_lossy(&out.stdout).trim()).expect("prints the tenant id");
    assert!(!data.pid_file().exists(), "the CLI stops the cluster it started");

    // Second start on the same data.
    let mut server = spawn_serve(embedded(&[]), data.0.join("serve-2.log"));
    wait_healthy(&mut server).await;

    // The tenant created in between is still there: the same slug is a duplicate now.
    // (This CLI finds the server's cluster running, uses it, and leaves it running.)
    let out = embedded(&["tenant", "create", "--slug", "embedded-acme", "--name", "Again"])
        .output()
        .expect("tenant create");
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("embedded-acme") && stderr.contains("already exists"),
        "{}",
        describe(&out)
    );
    assert!(data.postmaster().is_some(), "the server's cluster keeps running");
    wait_healthy(&mut server).await;

    server.terminate_cleanly();
    assert_pid_file_removed(&data, &server);
}

// ---------------------------------------------------------------------------------------
// The serving role's safety check
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn serve_refuses_a_superuser_app_role_with_one_line_naming_it() {
    let db = support::TestDb::new().await;
    let dir = DataDir::new();
    let mut server = spawn_serve_on(&db, &dir, "ULTRACORE_APP_DATABASE_URL", &db.owner_url());

    let status = wait_for_exit(&mut server.child, START_TIMEOUT)
        .unwrap_or_else(|| panic!("serve kept running with a superuser app role:\n{}", server.log()));
    assert!(!status.success(), "{status}");
    assert!(!port_accepts(server.port), "it never listened");

    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line:\n{log}");
    let role = url::Url::parse(&db.owner_url())
        .expect("url")
        .username()
        .to_string();
    assert!(lines[0].starts_with("error:"), "{log}");
    assert!(
        lines[0].contains(&format!("`{role}`")),
        "names the role {role}: {log}"
    );
    assert!(lines[0].contains("superuser"), "{log}");
    assert!(
        !log.contains(
            url::Url::parse(&db.owner_url())
                .expect("url")
                .password()
                .unwrap_or("?")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_the_app_role_url_answers_healthz_and_stops_on_sigterm() {
    let db = support::TestDb::new().await;
    let dir = DataDir::new();
    let mut server = spawn_serve_on(&db, &dir, "ULTRACORE_APP_DATABASE_URL", &db.app_url());
    wait_healthy(&mut server).await;
    server.terminate_cleanly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_derives_the_app_role_url_from_database_url_and_the_app_password() {
    let db = support::TestDb::new().await;
    let dir = DataDir::new();
    let mut server = spawn_serve_on(&db, &dir, "ULTRACORE_APP_DB_PASSWORD", support::APP_PASSWORD);
    wait_healthy(&mut server).await;
    server.terminate_cleanly();
}

/// An orchestrator may stop the gateway while it is still starting (first start runs
/// initdb and migrations). The embedded cluster it started must not outlive it: an
/// orphaned postmaster is never stopped by a later `serve`, which finds it running and
/// treats it as someone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_embedded_startup_still_stops_the_cluster() {
    let data = DataDir::new();
    let mut cmd = ultracore(&data.0);
    cmd.env("ULTRACORE_DATA_DIR", &data.0);
    let mut server = spawn_serve(cmd, data.0.join("serve.log"));

    // The moment the cluster exists, the gateway is still starting (migrations, pools).
    let deadline = Instant::now() + START_TIMEOUT;
    let postmaster = loop {
        if let Some((pid, _)) = data.postmaster().filter(|(pid, _)| process_alive(*pid)) {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "no cluster within {START_TIMEOUT:?}:\n{}",
            server.log()
        );
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "serve exited with {status} before starting its cluster:\n{}",
                server.log()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = wait_for_exit(&mut server.child, STOP_TIMEOUT)
        .unwrap_or_else(|| panic!("serve did not stop within {STOP_TIMEOUT:?}:\n{}", server.log()));

    // Let a pg_ctl that was mid-start finish, then look.
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(postmaster) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !process_alive(postmaster),
        "serve exited ({status}) but left its postmaster {postmaster} running:\n{}",
        server.log()
    );
    assert_pid_file_removed(&data, &server);
}

/// As root, the embedded cluster runs as the `postgres` OS user; as anyone else, as that
/// user itself. This runs the binary as an ordinary user (`nobody` when the tests run as
/// root; the current user otherwise) and checks the cluster is created, owned by and run
/// as that user, serves /healthz, and stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_serve_works_as_an_ordinary_user() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;

    let data = DataDir::new();
    let ordinary = if nix::unistd::geteuid().is_root() {
        Some(
            nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .expect("a `nobody` OS user"),
        )
    } else {
        None
    };
    let expected_uid = ordinary
        .as_ref()
        .map_or(nix::unistd::geteuid().as_raw(), |u| u.uid.as_raw());
    // The test binary's directory may not be reachable by `nobody` (e.g. a clone under
    // /root): run a copy from the data directory instead.
    let binary = data.0.join("ultracore-bin");
    std::fs::copy(env!("CARGO_BIN_EXE_ultracore"), &binary).expect("copy the binary");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod binary");
    let home = data.0.join("home");
    std::fs::create_dir_all(&home).expect("data subdir");
    if let Some(user) = &ordinary {
        nix::unistd::chown(&home, Some(user.uid), Some(user.gid)).expect("chown data dir");
    }

    let mut cmd = ultracore(&home);
    cmd.env("ULTRACORE_DATA_DIR", &home);
    let cmd = {
        let mut as_user = Command::new(&binary);
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => as_user.env(key, v),
                None => as_user.env_remove(key),
            };
        }
        as_user.current_dir(&home).stdin(Stdio::null());
        if let Some(user) = &ordinary {
            as_user.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        as_user
    };
    let mut server = spawn_serve(cmd, data.0.join("serve.log"));
    wait_healthy(&mut server).await;

    let cluster = home.join("pg/data");
    let owner = std::fs::metadata(&cluster).expect("cluster directory").uid();
    assert_eq!(
        owner, expected_uid,
        "the cluster belongs to the user who ran serve"
    );
    let (postmaster, _) = postmaster_of(&home).expect("a running postmaster");
    let proc_uid = std::fs::metadata(format!("/proc/{postmaster}"))
        .expect("postmaster proc")
        .uid();
    assert_eq!(
        proc_uid, expected_uid,
        "PostgreSQL runs as the user who ran serve"
    );

    server.terminate_cleanly();
    assert!(!process_alive(postmaster), "the postmaster stopped with serve");
}
