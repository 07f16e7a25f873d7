//! `ultracore lifecycle`, `ultracore user erase` and `ultracore audit export`: the owner's
//! commands of the data lifecycle (README "Data lifecycle").

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use sea_orm::DatabaseConnection;

use crate::audit::export;
use crate::db::{self, Access, TenantScope};
use crate::domain::tenants;
use crate::lifecycle::{self, RetentionPolicy};

#[derive(Debug, Subcommand)]
pub enum LifecycleAction {
    /// Prepare the coming months' partitions and drop every partition past retention
    /// (the only way rows leave security_events and audit_log). Run it daily, e.g. from
    /// cron or a Kubernetes CronJob. Prints what it did as JSON.
    Run {
        /// Keep security events this many days (whole months are dropped once every day
        /// of the month is past this age).
        #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        security_events_days: u32,
        /// Keep audit entries this many days (default: ten years).
        #[arg(long, default_value_t = 3_653, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        audit_log_days: u32,
        /// Prepare partitions for this many months after the current one. (One is
        /// enough when the run is daily; rows past the last month wait in the catch-all
        /// and move into their month when it is created. Every partition costs each
        /// query plan a little, so fewer empty months ahead are faster.)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=120))]
        months_ahead: u32,
        /// Report what would be dropped; create and drop nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create the monthly partitions covering FROM..TO (YYYY-MM-DD), e.g. before
    /// importing history. The months stay contiguous: those between the existing
    /// months and FROM..TO are created too, and rows that a catch-all partition held
    /// for a new month move into it.
    Prepare {
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
    },
    /// List the partitions of both logs with their bounds and row counts, as JSON.
    Status,
}

pub async fn run(owner: &DatabaseConnection, action: LifecycleAction) -> anyhow::Result<ExitCode> {
    match action {
        LifecycleAction::Run {
            security_events_days,
            audit_log_days,
            months_ahead,
            dry_run,
        } => {
            let policy = RetentionPolicy {
                security_events_days,
                audit_log_days,
                months_ahead,
            };
            let report = lifecycle::run(owner, policy, dry_run).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        LifecycleAction::Prepare { from, to } => {
            if to < from {
                bail!("--to {to} is before --from {from}");
            }
            let created = lifecycle::ensure_partitions(owner, start_of(from), start_of(to)).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "created": created }))?
            );
        }
        LifecycleAction::Status => {
            let partitions = lifecycle::status(owner).await?;
            println!("{}", serde_json::to_string_pretty(&partitions)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// `ultracore user erase`: irreversible, so it asks for `--yes`.
pub async fn erase_user(
    owner: &DatabaseConnection,
    tenant: &str,
    user: &str,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    let tenant_id = tenants::tenant_id_by_slug(owner, tenant).await?;
    let Some(user_id) = lifecycle::find_user(owner, tenant_id, user).await? else {
        bail!("tenant {tenant:?} has no user {user:?}");
    };
    if !yes {
        bail!("erasing {user:?} cannot be undone: run again with --yes");
    }
    let counts = lifecycle::erase_user(owner, tenant_id, user_id).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "user_id": user_id, "rows": counts }))?
    );
    Ok(ExitCode::SUCCESS)
}

/// `ultracore audit export`: to a file (written whole, then renamed into place, so an
/// archive never picks up half an export) or to stdout.
pub async fn export_audit(
    owner: &DatabaseConnection,
    tenant: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let tenant_id = tenants::tenant_id_by_slug(owner, tenant).await?;
    // A long chain takes a while: no statement timeout.
    let txn =
        db::begin_tenant_transaction(owner, TenantScope::tenant(tenant_id), Access::ReadOnly, 0).await?;
    let head = match &out {
        Some(path) => {
            let partial = path.with_extension("partial");
            let file =
                File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
            let mut writer = BufWriter::new(file);
            let head = export::export_chain(&txn, tenant_id, &mut writer).await?;
            writer
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot move the export to {}", path.display()))?;
            head
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            let head = export::export_chain(&txn, tenant_id, &mut lock).await?;
            lock.flush()?;
            head
        }
    };
    txn.commit().await?;
    if out.is_some() {
        match head {
            Some(head) => eprintln!("exported the chain up to chain_seq {}", head.chain_seq),
            None => eprintln!("the tenant has no audit entries: the export holds its header only"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
