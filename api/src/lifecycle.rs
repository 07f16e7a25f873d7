//! Data lifecycle (README "Data lifecycle"): monthly partitions of the two logs that grow
//! without bound, retention by dropping expired partitions, and erasure of one user's
//! personal data. The rules live next to the data in SQL (migrations 0021 and 0022),
//! where the triggers that refuse every other kind of change are; this module runs them
//! for the owner's commands and reports what they did.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait, Value};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{self, Access, TenantScope};

/// The two partitioned logs, in the order retention visits them.
pub const PARTITIONED_TABLES: [&str; 2] = ["security_events", "audit_log"];

/// How long each log is kept, and how far ahead partitions are prepared.
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    pub security_events_days: u32,
    pub audit_log_days: u32,
    pub months_ahead: u32,
}

impl RetentionPolicy {
    fn days_for(&self, table: &str) -> u32 {
        if table == "audit_log" {
            self.audit_log_days
        } else {
            self.security_events_days
        }
    }
}

/// One partition that retention dropped (or, in a dry run, would drop).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DroppedPartition {
    pub table: String,
    pub partition: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: i64,
}

/// What one `lifecycle run` did.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleReport {
    pub dry_run: bool,
    /// Partitions created ahead of time.
    pub created: Vec<String>,
    pub dropped: Vec<DroppedPartition>,
}

/// Prepares the partitions of this month and `months_ahead` more, then drops every
/// partition past its table's retention. Each table's drops commit in their own
/// transaction: a drop locks its parent table until commit, so the lock is held for one
/// table at a time. The SQL records each drop (data_lifecycle_log, the affected tenants'
/// audit chains, and the chain anchors).
pub async fn run(
    owner: &DatabaseConnection,
    policy: RetentionPolicy,
    dry_run: bool,
) -> Result<LifecycleReport, DbErr> {
    let mut report = LifecycleReport {
        dry_run,
        created: Vec::new(),
        dropped: Vec::new(),
    };
    if !dry_run {
        let txn = owner.begin().await?;
        for row in txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select p as name from ultracore_ensure_partitions(now(), now() + make_interval(months => $1)) p",
                [i32::try_from(policy.months_ahead).unwrap_or(i32::MAX).into()],
            ))
            .await?
        {
            report.created.push(row.try_get("", "name")?);
        }
        txn.commit().await?;
    }
    for table in PARTITIONED_TABLES {
        let txn = owner.begin().await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select partition_name, range_from, range_to, rows_dropped \
                   from ultracore_drop_expired_partitions($1, now() - make_interval(days => $2), $3)",
                [
                    table.into(),
                    i32::try_from(policy.days_for(table)).unwrap_or(i32::MAX).into(),
                    dry_run.into(),
                ],
            ))
            .await?;
        for row in rows {
            report.dropped.push(DroppedPartition {
                table: table.to_string(),
                partition: row.try_get("", "partition_name")?,
                from: row.try_get("", "range_from")?,
                to: row.try_get("", "range_to")?,
                rows: row.try_get("", "rows_dropped")?,
            });
        }
        txn.commit().await?;
    }
    Ok(report)
}

/// Creates the monthly partitions covering `from`..`to`, e.g. before loading history.
pub async fn ensure_partitions(
    owner: &DatabaseConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    let rows = owner
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select p as name from ultracore_ensure_partitions($1, $2) p",
            [from.into(), to.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "name")).collect()
}

/// One partition of a log, as `lifecycle status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub table: String,
    pub partition: String,
    /// The partition's bounds as PostgreSQL states them (MINVALUE or MAXVALUE for the
    /// two catch-alls).
    pub bounds: String,
    /// Exact for the catch-alls (which should stay empty), estimated otherwise.
    pub rows: i64,
}

/// The partitions of both logs, oldest first: `<log>_before`, the months, `<log>_after`.
pub async fn status(owner: &DatabaseConnection) -> Result<Vec<PartitionStatus>, DbErr> {
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "select p.relname::text as parent, c.relname::text as partition, \
                    pg_get_expr(c.relpartbound, c.oid) as bounds, \
                    greatest(c.reltuples, 0)::bigint as estimate \
               from pg_inherits i \
               join pg_class c on c.oid = i.inhrelid \
               join pg_class p on p.oid = i.inhparent \
               join pg_namespace n on n.oid = p.relnamespace \
              where n.nspname = 'public' and p.relname in ('security_events', 'audit_log') \
              order by p.relname desc, \
                       case when c.relname like '%\\_before' then 0 when c.relname like '%\\_after' then 2 else 1 end, \
                       c.relname",
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let table: String = row.try_get("", "parent")?;
        let partition: String = row.try_get("", "partition")?;
        let mut count: i64 = row.try_get("", "estimate")?;
        if is_catch_all(&partition) {
            // Rows here were written while no month covered them: worth an exact number.
            // The count goes through the partition itself: owner-only, outside any
            // tenant's row-level security.
            count = owner
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("select count(*) as n from ultracore_partitions.\"{partition}\""),
                ))
                .await?
                .map(|r| r.try_get("", "n"))
                .transpose()?
                .unwrap_or(0);
        }
        out.push(PartitionStatus {
            table,
            partition,
            bounds: row.try_get("", "bounds")?,
            rows: count,
        });
    }
    Ok(out)
}

/// `<log>_before` and `<log>_after` (migration 0022) hold the rows outside the months.
fn is_catch_all(partition: &str) -> bool {
    partition.ends_with("_before") || partition.ends_with("_after")
}

/// Finds a user of `tenant_id` by id or username.
pub async fn find_user(
    owner: &DatabaseConnection,
    tenant_id: Uuid,
    user: &str,
) -> Result<Option<Uuid>, DbErr> {
    // The tenant is named in the query too: the owner may be a superuser, whom row-level
    // security does not bind.
    let txn =
        db::begin_tenant_transaction(owner, TenantScope::tenant(tenant_id), Access::ReadOnly, 10_000).await?;
    let by_id = Uuid::parse_str(user).ok();
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select user_id from users where tenant_id = $1 and (user_id = $2 or lower(username) = lower($3))",
            [tenant_id.into(), by_id.into(), Value::from(user.to_string())],
        ))
        .await?;
    txn.commit().await?;
    row.map(|r| r.try_get("", "user_id")).transpose()
}

/// Pseudonymises one user of a tenant (ultracore_erase_user in migration 0021) and
/// returns how many rows of each table changed. Irreversible; the erasure is recorded in
/// the tenant's audit chain, which still verifies afterwards.
pub async fn erase_user(
    owner: &DatabaseConnection,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<serde_json::Value, DbErr> {
    // No statement timeout: erasure scans the tenant's logs for quotes of the user.
    let txn =
        db::begin_tenant_transaction(owner, TenantScope::tenant(tenant_id), Access::ReadWrite, 0).await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select ultracore_erase_user($1)::text as counts",
            [user_id.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("ultracore_erase_user returned no row".into()))?;
    let counts: String = row.try_get("", "counts")?;
    txn.commit().await?;
    serde_json::from_str(&counts).map_err(|e| DbErr::Custom(format!("erasure counts: {e}")))
}
