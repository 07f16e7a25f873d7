//! The `ultracore` command line (DESIGN.md, "Interfaces"). Operator mistakes end in one
//! clear line on stderr and a non-zero exit, never a backtrace.

mod commands;
mod demo;
mod documents;
mod intel;
mod keys;
mod lifecycle;

pub use demo::DemoAction;
pub use documents::DocumentsAction;
pub use intel::{EXIT_SKIPPED, IntelAction};
pub use lifecycle::LifecycleAction;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ultracore",
    version,
    about = "UltraCore: a multi-tenant GraphQL security gateway"
)]
pub struct Cli {
    /// What to do; with none, `serve` (so `cargo run --release` starts the gateway).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gateway (embedded PostgreSQL when DATABASE_URL is unset).
    Serve {
        /// Address to listen on (default 127.0.0.1:8000; env ULTRACORE_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply, roll back or inspect schema migrations (as the owner, DATABASE_URL).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Verify or export a tenant's audit hash chain.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Rotate the data key that encrypts secrets at rest, or make a new one.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Import threat-intelligence indicators (CSV, JSON, STIX 2.1) into a tenant or globally.
    Intel {
        #[command(subcommand)]
        action: IntelAction,
    },
    /// Register or list trusted documents (persisted operations).
    Documents {
        #[command(subcommand)]
        action: DocumentsAction,
    },
    /// Seed two demo tenants, or replay a credential-stuffing attack against a gateway.
    Demo {
        #[command(subcommand)]
        action: DemoAction,
    },
    /// Partitions and retention of security_events and audit_log (as the owner).
    Lifecycle {
        #[command(subcommand)]
        action: LifecycleAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations (all, or the next N).
    Up { steps: Option<u32> },
    /// Roll back the last N applied migrations (default 1).
    Down { steps: Option<u32> },
    /// List migrations and whether each is applied.
    Status,
    /// Roll back every applied migration, then apply all again.
    Fresh,
}

#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Register a tenant; prints its id.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user; the password is read from stdin (one trailing newline is dropped,
    /// nothing else); prints the user id.
    Create {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// super_admin, admin, manager, officer or customer.
        #[arg(long)]
        role: String,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Erase a user's personal data for a privacy request: names, email, phone, addresses,
    /// devices and credentials go from every table; the account id, its history and the
    /// audit chain stay (the chain still verifies). Irreversible: needs --yes.
    Erase {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Username or user id.
        #[arg(long)]
        user: String,
        /// Confirm that the erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check a tenant's chain; with --head, also that it still reaches an exported head.
    /// Exits 0 when intact, 3 when broken (the first broken row is printed).
    Verify {
        #[arg(long)]
        tenant: String,
        /// A head written earlier by `ultracore audit head`.
        #[arg(long)]
        head: Option<PathBuf>,
    },
    /// Print the chain head as JSON, to keep in a separate system.
    Head {
        #[arg(long)]
        tenant: String,
    },
    /// Write the tenant's whole chain as JSON Lines (header, one line per entry with its
    /// canonical encoding, then the head) for an external archive, which can check it
    /// with SHA-256 alone.
    Export {
        #[arg(long)]
        tenant: String,
        /// Write here (atomically) instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Re-encrypt every value stored under an older data key (MFA secrets, notification
    /// bodies) with the current one (`data_key`); the old keys must be in
    /// `data_previous_keys`. Exits 4, leaving them as they are, when some values decrypt
    /// with no configured key.
    RotateDataKey {
        /// Count what would be rewritten; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this tenant (slug; repeatable). Without it, every tenant: that needs an
        /// owner who is not bound by RLS (a superuser or BYPASSRLS).
        #[arg(long = "tenant", value_name = "SLUG")]
        tenants: Vec<String>,
        /// Rows re-encrypted per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
    },
    /// Print a new random data key (base64 of 32 bytes) for `ULTRACORE_DATA_KEY`.
    GenerateDataKey,
}

/// Exit code for "the audit chain is broken" (distinct from operator errors, 1).
pub const EXIT_CHAIN_BROKEN: u8 = 3;

/// Exit code for "some stored values decrypt with no configured data key".
pub const EXIT_UNDECRYPTABLE: u8 = 4;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(
        cli.command.unwrap_or(Command::Serve { listen: None }),
    )) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of causes joined, newlines folded.
            let message = format!("{e:#}").replace(['\n', '\r'], " ");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: JSON lines in production (or with `ULTRACORE_LOG_FORMAT=json`),
/// readable text otherwise. Set before the configuration is read (so its own errors are
/// logged), hence from the environment alone. Both formats escape what they print: a
/// value holding CR/LF cannot forge a line. With the `otlp` feature the subscriber also
/// holds a slot that `serve` fills with the OpenTelemetry layer (`telemetry::otlp`).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let format = std::env::var("ULTRACORE_LOG_FORMAT").unwrap_or_default();
    let production = std::env::var("ULTRACORE_PROFILE").is_ok_and(|p| p.eq_ignore_ascii_case("production"));
    let json = format.eq_ignore_ascii_case("json") || (production && !format.eq_ignore_ascii_case("text"));
    #[cfg(feature = "otlp")]
    crate::telemetry::otlp::init_subscriber(filter, json);
    #[cfg(not(feature = "otlp"))]
    {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = if json {
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .try_init()
        } else {
            builder.with_ansi(false).try_init()
        };
    }
}
