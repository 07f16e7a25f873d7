//! The incident workflow: open, assign, investigate, resolve, close; priority; links to
//! threats and events.

use chrono::Utc;
use entity::{security_events, security_incidents, threat_events, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde_json::json;
use uuid::Uuid;

use super::threats::{check_ids, check_label, check_long_text};
use super::{Actor, DomainError};

/// Allowed moves: open → investigating → resolved → closed, resolving straight from
/// open, and reopening a resolved incident. Closed is final.
pub fn incident_transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("open", "investigating" | "resolved")
            | ("investigating", "resolved" | "open")
            | ("resolved", "closed" | "investigating")
    )
}

#[derive(Debug, Clone)]
pub struct NewIncident {
    pub incident_type: String,
    pub severity: &'static str,
    pub priority: &'static str,
    pub title: String,
    pub description: Option<String>,
    pub assigned_to: Option<Uuid>,
    pub related_threat_ids: Vec<Uuid>,
    pub related_event_ids: Vec<Uuid>,
}

pub fn snapshot(i: &security_incidents::Model) -> serde_json::Value {
    json!({
        "incident_type": i.incident_type,
        "severity": i.severity,
        "status": i.status,
        "priority": i.priority,
        "title": i.title,
        "description": i.description,
        "assigned_to": i.assigned_to,
        "related_threat_ids": i.related_threat_ids,
        "related_event_ids": i.related_event_ids,
    })
}

async fn count_visible<C, E>(txn: &C, column: E::Column, ids: &[Uuid]) -> Result<usize, DomainError>
where
    C: ConnectionTrait,
    E: EntityTrait,
{
    if ids.is_empty() {
        return Ok(0);
    }
    let n = E::find()
        .filter(column.is_in(ids.iter().copied()))
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .into_tuple::<i64>()
        .one(txn)
        .await?
        .unwrap_or(0);
    Ok(n as usize)
}

fn distinct(ids: &[Uuid]) -> Vec<Uuid> {
    let mut v = ids.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Threats and events to link must exist in the tenant (another tenant's id is as
/// unknown as a made-up one).
async fn check_links<C: ConnectionTrait>(
    txn: &C,
    threats: &[Uuid],
    events: &[Uuid],
) -> Result<(), DomainError> {
    check_ids("relatedThreatIds", threats)?;
    check_ids("relatedEventIds", events)?;
    let threats = distinct(threats);
    let events = distinct(events);
    if count_visible::<C, threat_events::Entity>(txn, threat_events::Column::ThreatId, &threats).await?
        != threats.len()
    {
        return Err(DomainError::Invalid(
            "a related threat id is not a threat of this tenant".into(),
        ));
    }
    if count_visible::<C, security_events::Entity>(txn, security_events::Column::EventId, &events).await?
        != events.len()
    {
        return Err(DomainError::Invalid(
            "a related event id is not an event of this tenant".into(),
        ));
    }
    Ok(())
}

/// An assignee must be an active staff member (not a customer) of the tenant.
async fn check_assignee<C: ConnectionTrait>(txn: &C, user_id: Uuid) -> Result<(), DomainError> {
    let user = users::Entity::find_by_id(user_id).one(txn).await?;
    match user {
        Some(u) if u.is_active && u.role != "customer" => Ok(()),
        _ => Err(DomainError::Invalid(
            "the assignee must be an active staff user of this tenant".into(),
        )),
    }
}

pub async fn open<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    incident: NewIncident,
) -> Result<security_incidents::Model, DomainError> {
    check_label("incident type", &incident.incident_type, 100)?;
    check_label("title", &incident.title, 500)?;
    check_long_text("description", &incident.description, 10_000)?;
    check_links(txn, &incident.related_threat_ids, &incident.related_event_ids).await?;
    if let Some(assignee) = incident.assigned_to {
        check_assignee(txn, assignee).await?;
    }
    let incident_id = Uuid::now_v7();
    let inserted = security_incidents::ActiveModel {
        incident_id: Set(incident_id),
        tenant_id: Set(actor.tenant_id),
        incident_type: Set(incident.incident_type),
        severity: Set(incident.severity.to_string()),
        status: Set("open".into()),
        priority: Set(incident.priority.to_string()),
        title: Set(incident.title),
        description: Set(incident.description),
        assigned_to: Set(incident.assigned_to),
        related_threat_ids: Set(distinct(&incident.related_threat_ids)),
        related_event_ids: Set(distinct(&incident.related_event_ids)),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    actor
        .audit(
            txn,
            "incident.open",
            "security_incident",
            incident_id,
            None,
            Some(snapshot(&inserted)),
        )
        .await?;
    Ok(inserted)
}

async fn lock_incident<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
) -> Result<security_incidents::Model, DomainError> {
    security_incidents::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound("no such incident".into()))
}

async fn save<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    action: &str,
    before: &security_incidents::Model,
    active: security_incidents::ActiveModel,
) -> Result<security_incidents::Model, DomainError> {
    let updated = active.update(txn).await?;
    actor
        .audit(
            txn,
            action,
            "security_incident",
            updated.incident_id,
            Some(snapshot(before)),
            Some(snapshot(&updated)),
        )
        .await?;
    Ok(updated)
}

/// Assigns (or, with None, unassigns) an incident.
pub async fn assign<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    id: Uuid,
    assignee: Option<Uuid>,
) -> Result<security_incidents::Model, DomainError> {
    let incident = lock_incident(txn, id).await?;
    if incident.status == "closed" {
        return Err(DomainError::Invalid(
            "a closed incident cannot be reassigned".into(),
        ));
    }
    if let Some(user) = assignee {
        check_assignee(txn, user).await?;
    }
    let mut active: security_incidents::ActiveModel = incident.clone().into();
    active.assigned_to = Set(assignee);
    save(txn, actor, "incident.assign", &incident, active).await
}

pub async fn change_status<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    id: Uuid,
    status: &'static str,
) -> Result<security_incidents::Model, DomainError> {
    let incident = lock_incident(txn, id).await?;
    if !incident_transition_allowed(&incident.status, status) {
        return Err(DomainError::Invalid(format!(
            "an incident cannot go from {} to {status}",
            incident.status
        )));
    }
    let now = Utc::now();
    let mut active: security_incidents::ActiveModel = incident.clone().into();
    active.status = Set(status.to_string());
    match status {
        "resolved" => active.resolved_at = Set(Some(now)),
        "closed" => active.closed_at = Set(Some(now)),
        "investigating" | "open" => active.resolved_at = Set(None),
        _ => {}
    }
    save(txn, actor, "incident.change_status", &incident, active).await
}

pub async fn change_priority<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    id: Uuid,
    priority: &'static str,
) -> Result<security_incidents::Model, DomainError> {
    let incident = lock_incident(txn, id).await?;
    if incident.status == "closed" {
        return Err(DomainError::Invalid("a closed incident cannot change".into()));
    }
    let mut active: security_incidents::ActiveModel = incident.clone().into();
    active.priority = Set(priority.to_string());
    save(txn, actor, "incident.change_priority", &incident, active).await
}

/// Adds links to threats and events (existing links stay).
pub async fn link<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    id: Uuid,
    threat_ids: &[Uuid],
    event_ids: &[Uuid],
) -> Result<security_incidents::Model, DomainError> {
    let incident = lock_incident(txn, id).await?;
    if incident.status == "closed" {
        return Err(DomainError::Invalid("a closed incident cannot change".into()));
    }
    check_links(txn, threat_ids, event_ids).await?;
    let threats = distinct(&[incident.related_threat_ids.as_slice(), threat_ids].concat());
    let events = distinct(&[incident.related_event_ids.as_slice(), event_ids].concat());
    check_ids("relatedThreatIds", &threats)?;
    check_ids("relatedEventIds", &events)?;
    let mut active: security_incidents::ActiveModel = incident.clone().into();
    active.related_threat_ids = Set(threats);
    active.related_event_ids = Set(events);
    save(txn, actor, "incident.link", &incident, active).await
}
