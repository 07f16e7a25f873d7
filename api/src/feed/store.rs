//! Reading a tenant's feed: the changes after a cursor, and the rows they name.

use std::collections::HashMap;

use entity::{security_events, security_incidents, threat_events};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement};
use uuid::Uuid;

use super::FeedCursor;

/// A row the feed announces.
#[derive(Debug, Clone)]
pub enum FeedEntity {
    SecurityEvent(security_events::Model),
    Threat(threat_events::Model),
    Incident(security_incidents::Model),
}

/// One change of a tenant's feed, with the row as it was read.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub cursor: FeedCursor,
    /// `insert` or `update`.
    pub operation: String,
    pub entity: FeedEntity,
}

/// The last change of the tenant whose transaction is already finished: a subscriber
/// starting now continues after it.
pub async fn current<C: ConnectionTrait>(txn: &C, tenant_id: Uuid) -> Result<FeedCursor, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select tx_id::text as tx, position from feed_changes \
              where tenant_id = $1 and tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
              order by tx_id desc, position desc limit 1",
            [tenant_id.into()],
        ))
        .await?;
    match row {
        Some(row) => cursor_of(&row),
        None => Ok(FeedCursor::default()),
    }
}

fn cursor_of(row: &sea_orm::QueryResult) -> Result<FeedCursor, DbErr> {
    let tx: String = row.try_get("", "tx")?;
    Ok(FeedCursor {
        tx_id: tx.parse().map_err(|_| DbErr::Custom(format!("bad xid8 {tx}")))?,
        position: row.try_get("", "position")?,
    })
}

/// Up to `limit` changes of the tenant after `after`, in feed order, with their rows.
/// Only changes of finished transactions are read (see [`super::cursor`]); a change
/// whose row is no longer visible is skipped, but still advances the returned cursor.
/// Returns the items and the cursor of the last change read (`after` when none).
pub async fn read_after<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    after: FeedCursor,
    limit: u64,
) -> Result<(Vec<FeedItem>, FeedCursor), DbErr> {
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select tx_id::text as tx, position, kind, entity_id, operation from feed_changes \
              where tenant_id = $1 and (tx_id, position) > ($2::text::xid8, $3) \
                and tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
              order by tx_id, position limit $4",
            [
                tenant_id.into(),
                after.tx_id.to_string().into(),
                after.position.into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("", "kind")?;
        let entity_id: Uuid = row.try_get("", "entity_id")?;
        let operation: String = row.try_get("", "operation")?;
        changes.push((cursor_of(row)?, kind, entity_id, operation));
    }
    let last = changes.last().map_or(after, |c| c.0);
    let ids = |kind: &str| -> Vec<Uuid> { changes.iter().filter(|c| c.1 == kind).map(|c| c.2).collect() };
    let (event_ids, threat_ids, incident_ids) = (ids("security_event"), ids("threat"), ids("incident"));
    let mut events: HashMap<Uuid, security_events::Model> = HashMap::new();
    if !event_ids.is_empty() {
        for e in security_events::Entity::find()
            .filter(security_events::Column::EventId.is_in(event_ids))
            .all(txn)
            .await?
        {
            events.insert(e.event_id, e);
        }
    }
    let mut threats: HashMap<Uuid, threat_events::Model> = HashMap::new();
    if !threat_ids.is_empty() {
        for t in threat_events::Entity::find()
            .filter(threat_events::Column::ThreatId.is_in(threat_ids))
            .all(txn)
            .await?
        {
            threats.insert(t.threat_id, t);
        }
    }
    let mut incidents: HashMap<Uuid, security_incidents::Model> = HashMap::new();
    if !incident_ids.is_empty() {
        for i in security_incidents::Entity::find()
            .filter(security_incidents::Column::IncidentId.is_in(incident_ids))
            .all(txn)
            .await?
        {
            incidents.insert(i.incident_id, i);
        }
    }
    let items = changes
        .into_iter()
        .filter_map(|(cursor, kind, id, operation)| {
            // An incident updated twice is announced twice, each time as it is now.
            let entity = match kind.as_str() {
                "security_event" => FeedEntity::SecurityEvent(events.get(&id)?.clone()),
                "threat" => FeedEntity::Threat(threats.get(&id)?.clone()),
                _ => FeedEntity::Incident(incidents.get(&id)?.clone()),
            };
            Some(FeedItem {
                cursor,
                operation,
                entity,
            })
        })
        .collect();
    Ok((items, last))
}
