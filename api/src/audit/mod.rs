//! The audit log: writing entries and proving the hash chain intact.
//!
//! Rows are placed in their tenant's chain by a trigger (migration 0008), which also
//! serialises concurrent writers of one tenant; this module only inserts them, reads the
//! chain head for export, and runs the verifier that lives next to the encoding in SQL.

pub mod export;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One entry to append. `old_values`/`new_values` must never contain secrets.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub user_id: Option<Uuid>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub old_values: Option<serde_json::Value>,
    pub new_values: Option<serde_json::Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// Appends an entry on the caller's transaction, so it commits or rolls back with the
/// change it describes. Returns the new row's id.
pub async fn record<C: ConnectionTrait>(conn: &C, tenant_id: Uuid, entry: AuditEntry) -> Result<Uuid, DbErr> {
    let audit_id = Uuid::now_v7();
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into audit_log (audit_id, tenant_id, user_id, action, entity_type, entity_id, \
                                old_values, new_values, ip_address, user_agent) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10)",
        [
            audit_id.into(),
            tenant_id.into(),
            entry.user_id.into(),
            entry.action.into(),
            entry.entity_type.into(),
            entry.entity_id.into(),
            Value::Json(entry.old_values.map(Box::new)),
            Value::Json(entry.new_values.map(Box::new)),
            entry.ip_address.into(),
            entry.user_agent.into(),
        ],
    ))
    .await?;
    Ok(audit_id)
}

/// The last link of a tenant's chain: what to keep in a separate system so that a
/// deleted tail can be proven later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub tenant_id: Uuid,
    pub chain_seq: i64,
    pub audit_id: Uuid,
    /// SHA-256, lowercase hex.
    pub row_hash: String,
    pub timestamp: DateTime<Utc>,
}

/// Reads the current head of a tenant's chain (None when the tenant has no entries).
pub async fn chain_head<C: ConnectionTrait>(conn: &C, tenant_id: Uuid) -> Result<Option<ChainHead>, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select chain_seq, audit_id, encode(row_hash, 'hex') as row_hash, \"timestamp\" \
               from audit_log where tenant_id = $1 order by chain_seq desc limit 1",
            [tenant_id.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(ChainHead {
            tenant_id,
            chain_seq: r.try_get("", "chain_seq")?,
            audit_id: r.try_get("", "audit_id")?,
            row_hash: r.try_get("", "row_hash")?,
            timestamp: r.try_get("", "timestamp")?,
        })
    })
    .transpose()
}

/// What the verifier found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// None when the chain is intact (and reaches the exported head, if one was given).
    pub problem: Option<String>,
    /// The first row found broken (None when intact, or when the broken row is a missing
    /// tail row, which no longer exists).
    pub broken_audit_id: Option<Uuid>,
    /// Chain position of the first break.
    pub broken_seq: Option<i64>,
    /// Rows checked and found sound before the break (all rows when intact).
    pub rows_checked: i64,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Walks a tenant's chain with the SQL verifier (which shares the one canonical encoding
/// with the insert trigger). With an exported head, also proves the tail is still there.
pub async fn verify_chain<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    exported: Option<&ChainHead>,
) -> Result<Verification, DbErr> {
    let head_hash: Option<Vec<u8>> = match exported {
        Some(head) => Some(
            hex::decode(&head.row_hash)
                .map_err(|_| DbErr::Custom("the exported head's row_hash is not hexadecimal".into()))?,
        ),
        None => None,
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select problem, broken_audit_id, broken_seq, rows_checked from audit_chain_verify($1, $2, $3)",
            [
                tenant_id.into(),
                exported.map(|h| h.chain_seq).into(),
                head_hash.into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("audit_chain_verify returned no row".into()))?;
    Ok(Verification {
        problem: row.try_get("", "problem")?,
        broken_audit_id: row.try_get("", "broken_audit_id")?,
        broken_seq: row.try_get("", "broken_seq")?,
        rows_checked: row.try_get("", "rows_checked")?,
    })
}
