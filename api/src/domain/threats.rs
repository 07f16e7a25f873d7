//! Threats reported by analysts (detectors add their own with the detection issue) and
//! their status workflow.

use chrono::Utc;
use entity::threat_events;
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QuerySelect, Set};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, DomainError};

/// The statuses of a threat, in workflow order.
pub const STATUSES: [&str; 4] = ["detected", "investigating", "mitigated", "resolved"];

/// Allowed moves: forward through the workflow, plus reopening a mitigated or resolved
/// threat for investigation.
pub fn threat_transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("detected", "investigating" | "mitigated" | "resolved")
            | ("investigating", "mitigated" | "resolved")
            | ("mitigated", "resolved" | "investigating")
            | ("resolved", "investigating")
    )
}

/// A threat as an analyst reports it.
#[derive(Debug, Clone)]
pub struct NewThreat {
    pub threat_type: String,
    pub severity: &'static str,
    pub description: Option<String>,
    pub indicators: Vec<String>,
    pub affected_user_ids: Vec<Uuid>,
    pub affected_account_ids: Vec<Uuid>,
    pub affected_transaction_ids: Vec<Uuid>,
    pub confidence: Option<Decimal>,
    pub response_action: Option<String>,
}

pub fn snapshot(t: &threat_events::Model) -> serde_json::Value {
    json!({
        "threat_type": t.threat_type,
        "severity": t.severity,
        "status": t.status,
        "description": t.description,
        "indicators": t.indicators,
        "affected_user_ids": t.affected_user_ids,
        "affected_account_ids": t.affected_account_ids,
        "affected_transaction_ids": t.affected_transaction_ids,
        "detection_method": t.detection_method,
        "confidence": t.confidence,
        "response_action": t.response_action,
        "response_status": t.response_status,
    })
}

pub(crate) fn check_label(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!(
            "{field} must be 1 to {max} printable characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_long_text(field: &str, value: &Option<String>, max: usize) -> Result<(), DomainError> {
    if let Some(v) = value
        && v.chars().count() > max
    {
        return Err(DomainError::Invalid(format!(
            "{field} is limited to {max} characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_ids(field: &str, ids: &[Uuid]) -> Result<(), DomainError> {
    if ids.len() > 1000 {
        return Err(DomainError::Invalid(format!("{field} holds at most 1000 ids")));
    }
    Ok(())
}

pub async fn report<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    threat: NewThreat,
) -> Result<threat_events::Model, DomainError> {
    check_label("threat type", &threat.threat_type, 100)?;
    check_long_text("description", &threat.description, 10_000)?;
    if threat.indicators.len() > 100 || threat.indicators.iter().any(|i| i.chars().count() > 500) {
        return Err(DomainError::Invalid(
            "at most 100 indicators of at most 500 characters".into(),
        ));
    }
    check_ids("affectedUserIds", &threat.affected_user_ids)?;
    check_ids("affectedAccountIds", &threat.affected_account_ids)?;
    check_ids("affectedTransactionIds", &threat.affected_transaction_ids)?;
    if let Some(action) = &threat.response_action {
        check_label("response action", action, 100)?;
    }
    if !super::users::all_exist(txn, &threat.affected_user_ids).await? {
        return Err(DomainError::Invalid(
            "an affected user id is not a user of this tenant".into(),
        ));
    }
    let threat_id = Uuid::now_v7();
    let has_response = threat.response_action.is_some();
    let inserted = threat_events::ActiveModel {
        threat_id: Set(threat_id),
        tenant_id: Set(actor.tenant_id),
        threat_type: Set(threat.threat_type),
        severity: Set(threat.severity.to_string()),
        status: Set("detected".into()),
        description: Set(threat.description),
        indicators: Set(threat.indicators),
        affected_user_ids: Set(threat.affected_user_ids),
        affected_account_ids: Set(threat.affected_account_ids),
        affected_transaction_ids: Set(threat.affected_transaction_ids),
        detection_method: Set("manual".into()),
        confidence: Set(threat.confidence),
        response_action: Set(threat.response_action),
        response_status: Set(has_response.then(|| "pending".to_string())),
        detected_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    actor
        .audit(
            txn,
            "threat.report",
            "threat_event",
            threat_id,
            None,
            Some(snapshot(&inserted)),
        )
        .await?;
    Ok(inserted)
}

/// Moves a threat along its workflow, stamping mitigated_at / resolved_at.
pub async fn change_status<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    id: Uuid,
    status: &'static str,
) -> Result<threat_events::Model, DomainError> {
    let threat = threat_events::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound("no such threat".into()))?;
    if !threat_transition_allowed(&threat.status, status) {
        return Err(DomainError::Invalid(format!(
            "a threat cannot go from {} to {status}",
            threat.status
        )));
    }
    let old = snapshot(&threat);
    let now = Utc::now();
    let mut active: threat_events::ActiveModel = threat.clone().into();
    active.status = Set(status.to_string());
    match status {
        "mitigated" => active.mitigated_at = Set(Some(now)),
        "resolved" => {
            active.resolved_at = Set(Some(now));
            if threat.mitigated_at.is_none() {
                active.mitigated_at = Set(Some(now));
            }
        }
        // Reopened: it is no longer resolved.
        "investigating" => active.resolved_at = Set(None),
        _ => {}
    }
    let updated = active.update(txn).await?;
    actor
        .audit(
            txn,
            "threat.change_status",
            "threat_event",
            id,
            Some(old),
            Some(snapshot(&updated)),
        )
        .await?;
    Ok(updated)
}
