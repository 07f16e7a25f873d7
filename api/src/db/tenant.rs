//! The tenant transaction: the only way request work touches the database.
//!
//! `BEGIN`, then one statement that sets `app.tenant_id`, `app.user_id`,
//! `statement_timeout` and, for queries, `transaction_read_only` and `plan_cache_mode`
//! *for this transaction only* (`set_config(..., true)`). Every later statement of the
//! operation runs on it, and RLS policies read the tenant from it. Session-level
//! settings (`SET`, `set_config(..., false)`) are never used: sqlx does not reset a
//! connection when it returns to the pool, so they would carry one tenant into the next
//! request. When the transaction ends, PostgreSQL drops the local settings and the
//! policies see `''`, which they treat as "no tenant".
//!
//! `set_config('transaction_read_only', 'on', true)` is what `SET TRANSACTION READ ONLY`
//! does (PostgreSQL implements the latter as the former), sent in the statement that sets
//! the tenant instead of as a round trip of its own. Going read-only is allowed at any
//! point of a transaction; every statement after this one is refused any write (SQLSTATE
//! 25006), and the statement itself only reads.
//!
//! [`begin_tenant_transaction_checked`] also folds the operation's first query (the
//! gateway's session check) into that statement, as a scalar subquery evaluated after the
//! settings (see there): an operation costs `BEGIN`, that one statement, its own
//! statements and `COMMIT`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult, Statement,
    TransactionTrait, Value,
};
use uuid::Uuid;

/// Who a transaction acts for: the tenant, and the user when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope {
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
}

impl TenantScope {
    pub fn tenant(tenant_id: Uuid) -> Self {
        TenantScope {
            tenant_id,
            user_id: None,
        }
    }

    pub fn user(tenant_id: Uuid, user_id: Uuid) -> Self {
        TenantScope {
            tenant_id,
            user_id: Some(user_id),
        }
    }
}

/// Queries run READ ONLY, so even a resolver bug cannot write during a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// The settings statement; `$1` .. `$4` are its parameters (see [`settings_values`]).
/// `transaction_read_only` is set to `off` for read-write transactions: a no-op (a
/// transaction starts read-write, `default_transaction_read_only` being off for the
/// serving role), which keeps one statement text for both kinds.
///
/// Queries also run with `plan_cache_mode = force_generic_plan`. Every list binds its
/// page size as a parameter (`LIMIT $n`), and PostgreSQL costs a reusable plan with an
/// unknown limit as if it read a tenth of the table, so it planned the events list
/// afresh on every request: across seven partitions and their indexes that planning was
/// most of PostgreSQL's CPU per request (perf: 57 % in `pg_plan_query`), while the
/// reusable plan is the same ordered Append (bench/README.md, "What the results say").
/// Forcing it took PostgreSQL's CPU per events request from 1.77 to 0.53 ms. The plans stay correct for
/// any parameter: partitions are pruned when execution starts, and the tenant comes from
/// the RLS policies' InitPlan, never from the plan. Writes keep PostgreSQL's default.
const SETTINGS: &str = "select set_config('app.tenant_id', $1, true), \
                               set_config('app.user_id', $2, true), \
                               set_config('statement_timeout', $3, true), \
                               set_config('transaction_read_only', $4, true), \
                               set_config('plan_cache_mode', \
                                          case $4 when 'on' then 'force_generic_plan' else 'auto' end, true)";

fn settings_values(scope: TenantScope, access: Access, statement_timeout_ms: u64) -> Vec<Value> {
    vec![
        scope.tenant_id.to_string().into(),
        scope.user_id.map(|u| u.to_string()).unwrap_or_default().into(),
        format!("{statement_timeout_ms}ms").into(),
        match access {
            Access::ReadOnly => "on",
            Access::ReadWrite => "off",
        }
        .into(),
    ]
}

/// Operations waiting right now for a pooled connection (and its BEGIN): `/metrics`
/// reports it as `ultracore_db_pool_connections{state="waiting"}`.
static WAITING: AtomicI64 = AtomicI64::new(0);

/// How many operations are waiting for a pooled connection.
pub fn waiting_for_connection() -> i64 {
    WAITING.load(Ordering::Relaxed).max(0)
}

/// Counts a wait from creation to drop, so a cancelled wait is uncounted too.
struct Waiting;

impl Waiting {
    fn start() -> Waiting {
        WAITING.fetch_add(1, Ordering::Relaxed);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `db.begin()`, counted as a wait for the pool and timed
/// (`ultracore_db_acquire_seconds`).
async fn begin_counted(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let started = Instant::now();
    let waiting = Waiting::start();
    let txn = db.begin().await;
    drop(waiting);
    metrics::histogram!("ultracore_db_acquire_seconds").record(started.elapsed());
    txn
}

/// Opens a transaction scoped to one tenant. Commit or roll it back; dropping it rolls
/// back.
pub async fn begin_tenant_transaction(
    db: &DatabaseConnection,
    scope: TenantScope,
    access: Access,
    statement_timeout_ms: u64,
) -> Result<DatabaseTransaction, DbErr> {
    let txn = begin_counted(db).await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SETTINGS,
        settings_values(scope, access, statement_timeout_ms),
    ))
    .await?;
    Ok(txn)
}

/// A query to fold into the settings statement: `sql` is a scalar subquery (one column,
/// at most one row, in parentheses) whose parameters are numbered from `$5`; its value
/// comes back as the column `checked` (NULL when it found no row).
pub struct FoldedQuery {
    pub sql: &'static str,
    pub values: Vec<Value>,
}

/// [`begin_tenant_transaction`], with `check` answered by the same statement: one round
/// trip fewer for an operation whose first statement is always the same (the gateway's
/// session check).
///
/// The subquery runs after the settings are in place: it is uncorrelated, so PostgreSQL
/// makes it an InitPlan, which it evaluates when the target list first needs its value,
/// after the `set_config` calls before it (target entries are evaluated in order, and
/// `set_config` is volatile and parallel-unsafe: never pre-evaluated, never in a worker).
/// The RLS policies' own InitPlans inside it read `app.tenant_id` when its scans start.
/// Were it ever evaluated first, the policies would see no tenant and the check would
/// find nothing: it fails closed, never open.
pub async fn begin_tenant_transaction_checked(
    db: &DatabaseConnection,
    scope: TenantScope,
    access: Access,
    statement_timeout_ms: u64,
    check: FoldedQuery,
) -> Result<(DatabaseTransaction, QueryResult), DbErr> {
    let txn = begin_counted(db).await?;
    let mut values = settings_values(scope, access, statement_timeout_ms);
    values.extend(check.values);
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("{SETTINGS}, {} as checked", check.sql),
            values,
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("the settings statement returned no row".into()))?;
    Ok((txn, row))
}
