//! `ultracore audit export`: a tenant's whole chain as JSON Lines, for an external archive
//! (a WORM bucket, the bank's SIEM) that must be able to prove the chain without our
//! database or our code.
//!
//! Line 1 is a header: the format, the tenant, where the chain starts (its retention
//! anchor, or the genesis hash). Then one line per row, in chain order, with every column
//! and the row's canonical encoding: `row_hash = sha256(prev_hash || utf8(canonical))`
//! and each row's `prev_hash` is the previous row's `row_hash`, so any SHA-256 tool can
//! check the file. The last line is the chain head, the same object `ultracore audit
//! head` prints. The encoding itself stays defined in one place (audit_log_canonical in
//! SQL); the export only carries its output.

use std::io::Write;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::Serialize;
use uuid::Uuid;

use super::ChainHead;

/// The first line of an export.
#[derive(Debug, Serialize)]
pub struct ExportHeader {
    pub format: &'static str,
    pub tenant_id: Uuid,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// The `prev_hash` the first exported row must carry (hex): the retention anchor's
    /// hash when older rows were dropped, the tenant's genesis hash otherwise.
    pub starts_after_hash: String,
    /// The position of that anchor (0 for the genesis).
    pub starts_after_seq: i64,
}

/// The format name on line 1; bumped with the encoding.
pub const EXPORT_FORMAT: &str = "ultracore.audit.export.v2";

/// Rows fetched per round trip.
const PAGE: i64 = 2_000;

/// Writes the export of `tenant_id`'s chain to `out` on `conn`, which must be a
/// transaction of that tenant (RLS). Returns the head written on the last line, or None
/// for an empty chain (the header and an empty head line `null` are still written).
pub async fn export_chain<C: ConnectionTrait, W: Write>(
    conn: &C,
    tenant_id: Uuid,
    out: &mut W,
) -> anyhow::Result<Option<ChainHead>> {
    let start = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select coalesce(b.anchor_seq, 0) as seq, \
                    encode(coalesce(b.anchor_hash, audit_chain_genesis($1)), 'hex') as hash, \
                    now() as exported_at \
               from (select 1) one left join audit_chain_bounds($1) b on true",
            [tenant_id.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the chain bounds query returned no row"))?;
    let header = ExportHeader {
        format: EXPORT_FORMAT,
        tenant_id,
        exported_at: start.try_get("", "exported_at")?,
        starts_after_hash: start.try_get("", "hash")?,
        starts_after_seq: start.try_get("", "seq")?,
    };
    serde_json::to_writer(&mut *out, &header)?;
    out.write_all(b"\n")?;

    let mut after: i64 = header.starts_after_seq;
    let mut head: Option<ChainHead> = None;
    loop {
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select jsonb_build_object(\
                        'audit_id', a.audit_id, 'chain_seq', a.chain_seq, \
                        'timestamp', to_char(a.\"timestamp\" at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                        'user_id', a.user_id, 'action', a.action, 'entity_type', a.entity_type, \
                        'entity_id', a.entity_id, 'old_values', a.old_values, 'new_values', a.new_values, \
                        'ip_address', host(a.ip_address), 'user_agent', a.user_agent, \
                        'erased_at', a.erased_at, 'pii_salt', encode(a.pii_salt, 'hex'), \
                        'pii_digests', a.pii_digests, \
                        'prev_hash', encode(a.prev_hash, 'hex'), 'row_hash', encode(a.row_hash, 'hex'), \
                        'canonical', audit_log_canonical(a))::text as line, \
                        a.chain_seq, a.audit_id, encode(a.row_hash, 'hex') as row_hash, a.\"timestamp\" \
                   from audit_log a \
                  where a.tenant_id = $1 and a.chain_seq > $2 \
                  order by a.chain_seq \
                  limit $3",
                [tenant_id.into(), after.into(), PAGE.into()],
            ))
            .await?;
        let fetched = rows.len();
        for row in rows {
            let line: String = row.try_get("", "line")?;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            let chain_seq: i64 = row.try_get("", "chain_seq")?;
            after = chain_seq;
            head = Some(ChainHead {
                tenant_id,
                chain_seq,
                audit_id: row.try_get("", "audit_id")?,
                row_hash: row.try_get("", "row_hash")?,
                timestamp: row.try_get("", "timestamp")?,
            });
        }
        if fetched < PAGE as usize {
            break;
        }
    }
    serde_json::to_writer(&mut *out, &serde_json::json!({ "head": head }))?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(head)
}
