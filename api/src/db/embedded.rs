//! A private PostgreSQL cluster run from the machine's own PostgreSQL server binaries.
//!
//! This is what makes `ultracore serve` work with nothing configured, and what the test
//! harness uses for one throwaway cluster per test run. The cluster listens on 127.0.0.1
//! only (no Unix socket, so no path-length or permission surprises), with SCRAM password
//! authentication: other local users cannot walk in as superuser.
//!
//! PostgreSQL refuses to run as root. When we are root, every PostgreSQL process runs as
//! the `postgres` OS user (set directly on the child process, no `su`/`runuser` needed),
//! and the cluster's directory is handed to that user.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::RngCore;

/// The bootstrap superuser of an embedded cluster. Migrations and admin commands use it.
pub const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH, via \
         `pg_config --bindir`, or under /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; macOS: \
         `brew install postgresql@16`), or set DATABASE_URL to use an existing server"
    )]
    BinariesNotFound,
    #[error(
        "running as root, but there is no `postgres` OS user to run PostgreSQL as (initdb \
         refuses root): create one (`useradd --system postgres`) or run as an ordinary user"
    )]
    NoPostgresUser,
    #[error(
        "the OS user `postgres` cannot reach {0}: every parent directory needs execute \
         permission for it. Set ULTRACORE_DATA_DIR to a directory it can reach (e.g. under /var/lib or /tmp)"
    )]
    Unreachable(PathBuf),
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("embedded PostgreSQL: {0}")]
    Io(String),
}

fn io_err(context: &str, path: &Path, e: std::io::Error) -> EmbeddedError {
    EmbeddedError::Io(format!("{context} {}: {e}", path.display()))
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bindir: PathBuf,
}

impl PgBinaries {
    /// Finds the server binaries: PATH first (what the operator chose), then
    /// `pg_config --bindir`, then the newest `/usr/lib/postgresql/<major>/bin` (Debian keeps
    /// the server binaries off PATH).
    pub fn locate() -> Result<Self, EmbeddedError> {
        let has_server = |dir: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
        };
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                // PATH often holds symlinks (/usr/local/bin/initdb): use the real directory,
                // since `postgres` itself usually is not linked beside them.
                if let Ok(real) = fs::canonicalize(dir.join("initdb"))
                    && let Some(parent) = real.parent()
                {
                    candidates.push(parent.to_path_buf());
                }
                candidates.push(dir);
            }
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
            && out.status.success()
        {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
        let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versioned.into_iter().map(|(_, p)| p));
        candidates
            .into_iter()
            .find(|dir| has_server(dir))
            .map(|bindir| PgBinaries { bindir })
            .ok_or(EmbeddedError::BinariesNotFound)
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// The OS identity PostgreSQL processes run under.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

impl RunAs {
    /// `None` when we may run PostgreSQL as ourselves; the `postgres` user when root.
    fn for_current_process() -> Result<Option<RunAs>, EmbeddedError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or(EmbeddedError::NoPostgresUser)?;
        Ok(Some(RunAs {
            uid: user.uid,
            gid: user.gid,
        }))
    }
}

/// Tuning for a cluster; tests trade durability for speed.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Load pg_stat_statements (tests count statements with it).
    pub stat_statements: bool,
    /// fsync off and friends: only for throwaway clusters.
    pub disposable: bool,
}

/// A running (or startable) cluster under one directory.
///
/// Layout: `<root>/pg/data` is PGDATA and `<root>/pg/server.log` the server log, both
/// owned by the user PostgreSQL runs as; `<root>/superuser.password` (mode 0600, owned by
/// us) holds the bootstrap superuser's generated password.
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    root: PathBuf,
    bin: PgBinaries,
    run_as: Option<RunAs>,
    password: String,
    port: u16,
}

impl EmbeddedCluster {
    /// Initialises the cluster on first use, then starts it unless it already runs (a
    /// previous process may have left it running; it is reused, not started twice).
    /// Returns the cluster and whether this call started it.
    pub fn start(root: &Path, options: &ClusterOptions) -> Result<(Self, bool), EmbeddedError> {
        let bin = PgBinaries::locate()?;
        let run_as = RunAs::for_current_process()?;
        fs::create_dir_all(root).map_err(|e| io_err("cannot create", root, e))?;
        let root = fs::canonicalize(root).map_err(|e| io_err("cannot resolve", root, e))?;
        let pg_dir = root.join("pg");
        fs::create_dir_all(&pg_dir).map_err(|e| io_err("cannot create", &pg_dir, e))?;
        fs::set_permissions(&pg_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("cannot set permissions on", &pg_dir, e))?;
        if let Some(user) = run_as {
            nix::unistd::chown(&pg_dir, Some(user.uid), Some(user.gid)).map_err(|e| {
                EmbeddedError::Io(format!("cannot hand {} to postgres: {e}", pg_dir.display()))
            })?;
        }
        let mut cluster = EmbeddedCluster {
            root,
            bin,
            run_as,
            password: String::new(),
            port: 0,
        };
        cluster.check_reachable()?;
        cluster.password = cluster.superuser_password()?;
        if !cluster.data_dir().join("PG_VERSION").is_file() {
            cluster.initdb(options)?;
        }
        if let Some(port) = cluster.running_port() {
            cluster.port = port;
            // Left running by a process that has since died (killed before it could stop
            // it): adopt it, so it is stopped when we stop. A live owner keeps it.
            let adopt = !cluster.owner_is_alive();
            if adopt {
                cluster.record_owner()?;
            }
            return Ok((cluster, adopt));
        }
        cluster.port = free_port()?;
        cluster.pg_ctl_start()?;
        cluster.record_owner()?;
        Ok((cluster, true))
    }

    /// Records this process as the one responsible for stopping the server.
    fn record_owner(&self) -> Result<(), EmbeddedError> {
        write_private(&self.root.join("cluster.owner"), &std::process::id().to_string())
    }

    /// Whether the process recorded as responsible for the server still runs.
    fn owner_is_alive(&self) -> bool {
        let Some(pid) = fs::read_to_string(self.root.join("cluster.owner"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        else {
            return false;
        };
        pid as u32 == std::process::id()
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("pg").join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join("pg").join("server.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL of the bootstrap superuser (the owner) for `database`.
    pub fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// URL for another role on this cluster.
    pub fn url_for(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast shutdown: running transactions are rolled back, data is safe).
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        let out = self.run(
            self.pg_ctl()
                .arg("stop")
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "-t", "60"]),
        )?;
        check(out, "pg_ctl stop")
    }

    fn pg_ctl(&self) -> Command {
        Command::new(self.bin.tool("pg_ctl"))
    }

    /// Runs a PostgreSQL tool as the right OS user, from a directory it can read.
    fn run(&self, cmd: &mut Command) -> Result<Output, EmbeddedError> {
        cmd.current_dir(self.root.join("pg"))
            .env("LC_ALL", "C")
            .env_remove("PGDATA");
        if let Some(user) = self.run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        cmd.output().map_err(|e| EmbeddedError::Command {
            what: format!("{:?}", cmd.get_program()),
            detail: e.to_string(),
        })
    }

    fn check_reachable(&self) -> Result<(), EmbeddedError> {
        if self.run_as.is_none() {
            return Ok(());
        }
        let pg_dir = self.root.join("pg");
        let out = self.run(
            Command::new("test")
                .arg("-w")
                .arg(&pg_dir)
                .arg("-a")
                .arg("-x")
                .arg(&pg_dir),
        );
        match out {
            Ok(o) if o.status.success() => Ok(()),
            _ => Err(EmbeddedError::Unreachable(pg_dir)),
        }
    }

    /// Reads the superuser password, generating it (256 random bits) on first use.
    fn superuser_password(&self) -> Result<String, EmbeddedError> {
        let path = self.root.join("superuser.password");
        if let Ok(existing) = fs::read_to_string(&path) {
            return Ok(existing.trim().to_string());
        }
        let password = random_secret();
        write_private(&path, &password)?;
        Ok(password)
    }

    fn initdb(&self, options: &ClusterOptions) -> Result<(), EmbeddedError> {
        let pg_dir = self.root.join("pg");
        // initdb reads the password from a file that the postgres user must be able to
        // read; it lives inside the private pg/ directory only for the duration of initdb.
        let pwfile = pg_dir.join("initdb.pw");
        write_private(&pwfile, &self.password)?;
        if let Some(user) = self.run_as {
            nix::unistd::chown(&pwfile, Some(user.uid), Some(user.gid)).map_err(|e| {
                EmbeddedError::Io(format!("cannot hand {} to postgres: {e}", pwfile.display()))
            })?;
        }
        let mut pwfile_arg = OsString::from("--pwfile=");
        pwfile_arg.push(&pwfile);
        let out = self.run(
            Command::new(self.bin.tool("initdb"))
                .arg("-D")
                .arg(self.data_dir())
                .args([
                    "-U",
                    SUPERUSER,
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-instructions",
                ])
                .arg(pwfile_arg),
        );
        let _ = fs::remove_file(&pwfile);
        check(out?, "initdb")?;

        let mut settings = String::from(
            "\n# Added by ultracore: loopback TCP only, no Unix socket.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n\
             password_encryption = 'scram-sha-256'\n\
             max_connections = 200\n",
        );
        if options.stat_statements {
            settings.push_str(
                "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n",
            );
        }
        if options.disposable {
            // A short authentication_timeout: a test that drops its database while a
            // client of it (a pool refilling, the feed's listener reconnecting) is halfway
            // through the SCRAM handshake on a runtime that the drop itself blocks left a
            // backend in authentication; such a backend cannot acknowledge DROP DATABASE's
            // ProcSignalBarrier, so every such drop waited the default 60 s for the
            // handshake to time out.
            settings.push_str(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nauthentication_timeout = 3s\n",
            );
        }
        let conf = self.data_dir().join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| io_err("cannot open", &conf, e))?;
        file.write_all(settings.as_bytes())
            .map_err(|e| io_err("cannot write", &conf, e))?;
        Ok(())
    }

    /// The port of a server already running on this data directory, if any.
    fn running_port(&self) -> Option<u16> {
        let status = self
            .run(self.pg_ctl().arg("status").arg("-D").arg(self.data_dir()))
            .ok()?;
        if !status.status.success() {
            return None;
        }
        // postmaster.pid line 4 is the port (see PostgreSQL's pidfile.h).
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().nth(3)?.trim().parse().ok()
    }

    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let out = self.run(
            self.pg_ctl()
                .arg("start")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_file())
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {}", self.port)),
        )?;
        check(out, "pg_ctl start").map_err(|e| match e {
            EmbeddedError::Command { what, detail } => EmbeddedError::Command {
                what,
                detail: format!("{detail} (server log: {})", self.log_file().display()),
            },
            other => other,
        })
    }
}

fn check(out: Output, what: &str) -> Result<(), EmbeddedError> {
    if out.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    Err(EmbeddedError::Command {
        what: what.to_string(),
        detail,
    })
}

/// 256 random bits, hex: used for generated database passwords.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG reseeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes a secret readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<(), EmbeddedError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("cannot write", path, e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| io_err("cannot write", path, e))
}

/// A port that is free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16, EmbeddedError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| EmbeddedError::Io(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| EmbeddedError::Io(format!("no free port: {e}")))
}
