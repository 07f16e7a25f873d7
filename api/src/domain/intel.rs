//! Tenant-local threat intelligence. Global indicators (tenant_id NULL) are the
//! platform's: RLS lets no tenant write them, and these functions never try.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use entity::threat_intelligence;
use rust_decimal::Decimal;
use sea_orm::prelude::IpNetwork;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde_json::json;
use uuid::Uuid;

use super::threats::{check_label, check_long_text};
use super::{Actor, DomainError};
use crate::db::errors::is_unique_violation;

#[derive(Debug, Clone)]
pub struct NewIndicator {
    pub indicator_type: &'static str,
    pub indicator_value: String,
    pub threat_type: Option<String>,
    pub severity: &'static str,
    pub confidence: Option<Decimal>,
    pub source: Option<String>,
    pub source_url: Option<String>,
    pub description: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub fn snapshot(i: &threat_intelligence::Model) -> serde_json::Value {
    json!({
        "indicator_type": i.indicator_type,
        "indicator_value": i.indicator_value,
        "threat_type": i.threat_type,
        "severity": i.severity,
        "confidence": i.confidence,
        "source": i.source,
        "is_active": i.is_active,
        "expires_at": i.expires_at,
    })
}

/// Checks an indicator's value against its type and returns its canonical form
/// (lowercase domains, emails and hashes; normalised networks).
pub fn normalise_indicator(kind: &str, value: &str) -> Result<String, DomainError> {
    let value = value.trim();
    let invalid = |what: &str| DomainError::Invalid(format!("{value:?} is not {what}"));
    match kind {
        "ip" => IpNetwork::from_str(value)
            .map(|n| n.to_string())
            .map_err(|_| invalid("an IP address or CIDR network")),
        "domain" => {
            let lower = value.trim_end_matches('.').to_lowercase();
            let ok = lower.len() <= 253
                && lower.contains('.')
                && lower.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if ok {
                Ok(lower)
            } else {
                Err(invalid("a domain name"))
            }
        }
        "email" => {
            let lower = value.to_lowercase();
            let ok = lower.len() <= 254
                && lower
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
                && !lower.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(lower)
            } else {
                Err(invalid("an email address"))
            }
        }
        "hash" => {
            let lower = value.to_lowercase();
            let ok =
                matches!(lower.len(), 32 | 40 | 64 | 128) && lower.bytes().all(|b| b.is_ascii_hexdigit());
            if ok {
                Ok(lower)
            } else {
                Err(invalid("an MD5, SHA-1, SHA-256 or SHA-512 hex digest"))
            }
        }
        _ => Err(DomainError::Invalid(format!("unknown indicator type {kind:?}"))),
    }
}

pub async fn add<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    new: NewIndicator,
) -> Result<threat_intelligence::Model, DomainError> {
    let value = normalise_indicator(new.indicator_type, &new.indicator_value)?;
    if let Some(t) = &new.threat_type {
        check_label("threat type", t, 100)?;
    }
    if let Some(s) = &new.source {
        check_label("source", s, 100)?;
    }
    check_long_text("source URL", &new.source_url, 2_000)?;
    check_long_text("description", &new.description, 10_000)?;
    if new.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(DomainError::Invalid("expiresAt must be in the future".into()));
    }
    let intel_id = Uuid::now_v7();
    let now = Utc::now();
    let inserted = threat_intelligence::ActiveModel {
        intel_id: Set(intel_id),
        tenant_id: Set(Some(actor.tenant_id)),
        indicator_type: Set(new.indicator_type.to_string()),
        indicator_value: Set(value.clone()),
        threat_type: Set(new.threat_type),
        severity: Set(new.severity.to_string()),
        confidence: Set(new.confidence),
        source: Set(new.source.unwrap_or_else(|| "internal".into())),
        source_url: Set(new.source_url),
        description: Set(new.description),
        first_seen: Set(now),
        last_seen: Set(now),
        expires_at: Set(new.expires_at),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            DomainError::Conflict(format!(
                "the indicator {value:?} is already listed for this tenant"
            ))
        } else {
            e.into()
        }
    })?;
    actor
        .audit(
            txn,
            "intel.add",
            "threat_intelligence",
            intel_id,
            None,
            Some(snapshot(&inserted)),
        )
        .await?;
    Ok(inserted)
}

/// Deactivates one of the tenant's own indicators. A global indicator, or another
/// tenant's, is NOT_FOUND: the tenant cannot change it.
pub async fn deactivate<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    id: Uuid,
) -> Result<threat_intelligence::Model, DomainError> {
    let indicator = threat_intelligence::Entity::find_by_id(id)
        .filter(threat_intelligence::Column::TenantId.eq(actor.tenant_id))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound("no such indicator of this tenant".into()))?;
    let old = snapshot(&indicator);
    let mut active: threat_intelligence::ActiveModel = indicator.into();
    active.is_active = Set(false);
    let updated = active.update(txn).await?;
    actor
        .audit(
            txn,
            "intel.deactivate",
            "threat_intelligence",
            id,
            Some(old),
            Some(snapshot(&updated)),
        )
        .await?;
    Ok(updated)
}
