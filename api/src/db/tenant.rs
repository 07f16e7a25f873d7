//! The tenant transaction: the only way request work touches the database.
//!
//! `BEGIN` (READ ONLY for queries), then one statement that sets `app.tenant_id`,
//! `app.user_id` and `statement_timeout` *for this transaction only*
//! (`set_config(..., true)`). Every later statement of the operation runs on it, and RLS
//! policies read the tenant from it. Session-level settings (`SET`, `set_config(..., false)`)
//! are never used: sqlx does not reset a connection when it returns to the pool, so they
//! would carry one tenant into the next request. When the transaction ends, PostgreSQL
//! drops the local settings and the policies see `''`, which they treat as "no tenant".

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
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

/// Opens a transaction scoped to one tenant. Commit or roll it back; dropping it rolls
/// back.
pub async fn begin_tenant_transaction(
    db: &DatabaseConnection,
    scope: TenantScope,
    access: Access,
    statement_timeout_ms: u64,
) -> Result<DatabaseTransaction, DbErr> {
    let mode = match access {
        Access::ReadOnly => AccessMode::ReadOnly,
        Access::ReadWrite => AccessMode::ReadWrite,
    };
    let txn = db.begin_with_config(None, Some(mode)).await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select set_config('app.tenant_id', $1, true), \
                set_config('app.user_id', $2, true), \
                set_config('statement_timeout', $3, true)",
        [
            scope.tenant_id.to_string().into(),
            scope.user_id.map(|u| u.to_string()).unwrap_or_default().into(),
            format!("{statement_timeout_ms}ms").into(),
        ],
    ))
    .await?;
    Ok(txn)
}
