//! Storing parsed indicators: batched upserts on the scope key, into one tenant or into
//! the global scope (tenant_id NULL).
//!
//! Each batch is its own short transaction (a gateway adding or deactivating an indicator
//! meanwhile waits for one batch, not for the file), so a failure part-way leaves the
//! batches before it committed; the import is idempotent, and running it again finishes
//! the job. A tenant import runs in that tenant's transaction and writes one `intel.import`
//! audit entry per batch, in the batch's transaction. A global import belongs to no
//! tenant's audit chain, so it writes none: the CLI prints the file's SHA-256 for the
//! operator's own records.
//!
//! Global rows can only be written by a connection RLS does not bind: the policies let a
//! tenant transaction write only its own rows, and outside one there is no row at all.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
    Value,
};
use serde_json::json;
use uuid::Uuid;

use super::parse::{Format, Indicator};
use crate::db::{self, Access, TenantScope};
use crate::domain::Actor;

/// Indicators per INSERT (and per transaction): 11 parameters each keeps a batch far below
/// PostgreSQL's 65,535 bind parameters, and a batch short enough not to hold locks long.
pub const BATCH_SIZE: usize = 1_000;

/// Bound on each batch transaction.
const BATCH_TIMEOUT_MS: u64 = 60_000;

/// Where indicators go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant(Uuid),
    /// tenant_id NULL: every tenant reads them.
    Global,
}

/// What the audit entries say about the file.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file's name (not its directory).
    pub file: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    pub format: Format,
}

/// Rows written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub inserted: u64,
    pub updated: u64,
    pub batches: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "this connection is bound by row-level security, so it cannot write global indicators: \
         run `intel import --global` as an owner that is a superuser or has BYPASSRLS"
    )]
    GlobalNeedsBypass,
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// Whether `conn`'s role escapes RLS (superuser or BYPASSRLS): only such a role can write
/// global rows.
pub async fn bypasses_rls<C: ConnectionTrait>(conn: &C) -> Result<bool, DbErr> {
    Ok(conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select (rolsuper or rolbypassrls) as bypasses from pg_roles where rolname = current_user",
        ))
        .await?
        .and_then(|r| r.try_get::<bool>("", "bypasses").ok())
        .unwrap_or(false))
}

/// Upserts `indicators` into `scope`. Fails with [`ImportError::GlobalNeedsBypass`]
/// before writing anything when a global import runs on a connection RLS binds.
pub async fn import(
    owner: &DatabaseConnection,
    scope: Scope,
    indicators: &[Indicator],
    source: &Source,
) -> Result<Written, ImportError> {
    if scope == Scope::Global && !bypasses_rls(owner).await? {
        return Err(ImportError::GlobalNeedsBypass);
    }
    let mut written = Written::default();
    for (n, batch) in indicators.chunks(BATCH_SIZE).enumerate() {
        let txn = begin(owner, scope).await?;
        let (inserted, updated) = upsert(&txn, scope, batch).await?;
        if let Scope::Tenant(tenant_id) = scope {
            // In the batch's transaction: the entry exists if and only if the batch does.
            Actor::cli(tenant_id)
                .audit(
                    &txn,
                    "intel.import",
                    "tenant",
                    tenant_id,
                    None,
                    Some(json!({
                        "file": source.file,
                        "sha256": source.sha256,
                        "format": source.format.as_str(),
                        "batch": n + 1,
                        "indicators": batch.len(),
                        "inserted": inserted,
                        "updated": updated,
                    })),
                )
                .await?;
        }
        txn.commit().await?;
        written.inserted += inserted;
        written.updated += updated;
        written.batches += 1;
    }
    Ok(written)
}

async fn begin(owner: &DatabaseConnection, scope: Scope) -> Result<DatabaseTransaction, DbErr> {
    match scope {
        Scope::Tenant(tenant_id) => {
            db::begin_tenant_transaction(
                owner,
                TenantScope::tenant(tenant_id),
                Access::ReadWrite,
                BATCH_TIMEOUT_MS,
            )
            .await
        }
        Scope::Global => {
            // No tenant: RLS is not in play for this role (checked by the caller), and
            // app.tenant_id stays unset so nothing here can pass for a tenant's write.
            let txn = owner.begin().await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select set_config('statement_timeout', $1, true)",
                [format!("{BATCH_TIMEOUT_MS}ms").into()],
            ))
            .await?;
            Ok(txn)
        }
    }
}

/// One multi-row upsert; returns (inserted, updated).
///
/// On a re-import the file's view wins for what it always states (severity, expiry,
/// whether the indicator is active, source); what it leaves out (threat type, confidence,
/// description) keeps the stored value; first_seen keeps the earliest; last_seen is now;
/// metadata is merged.
async fn upsert<C: ConnectionTrait>(txn: &C, scope: Scope, batch: &[Indicator]) -> Result<(u64, u64), DbErr> {
    const PER_ROW: usize = 11;
    let tenant_id = match scope {
        Scope::Tenant(id) => Some(id),
        Scope::Global => None,
    };
    let mut values: Vec<Value> = Vec::with_capacity(1 + batch.len() * PER_ROW);
    values.push(tenant_id.into());
    let mut rows = Vec::with_capacity(batch.len());
    for indicator in batch {
        let base = values.len();
        let p = |i: usize| format!("${}", base + i);
        rows.push(format!(
            "($1, {}, {}, {}, {}, {}, {}, {}, {}::jsonb, coalesce({}, now()), now(), {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11)
        ));
        values.extend([
            indicator.indicator_type.into(),
            indicator.value.clone().into(),
            indicator.threat_type.clone().into(),
            indicator.severity.into(),
            indicator.confidence.into(),
            indicator.source.clone().into(),
            indicator.description.clone().into(),
            Value::Json(Some(Box::new(indicator.metadata.clone()))),
            indicator.first_seen.into(),
            indicator.expires_at.into(),
            indicator.is_active.into(),
        ]);
    }
    let sql = format!(
        "insert into threat_intelligence as t \
           (tenant_id, indicator_type, indicator_value, threat_type, severity, confidence, source, \
            description, metadata, first_seen, last_seen, expires_at, is_active) \
         values {} \
         on conflict on constraint threat_intelligence_scope_indicator_key do update set \
           threat_type = coalesce(excluded.threat_type, t.threat_type), \
           severity = excluded.severity, \
           confidence = coalesce(excluded.confidence, t.confidence), \
           source = excluded.source, \
           description = coalesce(excluded.description, t.description), \
           metadata = t.metadata || excluded.metadata, \
           first_seen = least(t.first_seen, excluded.first_seen), \
           last_seen = now(), \
           expires_at = excluded.expires_at, \
           is_active = excluded.is_active \
         returning (xmax = 0) as inserted",
        rows.join(", ")
    );
    // xmax is 0 on a freshly inserted row version and the updating transaction on one
    // that ON CONFLICT updated: the usual way to tell the two apart in one statement.
    let result = txn
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await?;
    let mut inserted = 0;
    for row in &result {
        if row.try_get::<bool>("", "inserted")? {
            inserted += 1;
        }
    }
    Ok((inserted, result.len() as u64 - inserted))
}
