//! Writing security events: one insert for every authentication, session and MFA event.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

/// One security event to record. Text fields come from our own code or are already
/// sanitised (user agents and fingerprints lose control characters at the edge).
#[derive(Debug, Clone, Default)]
pub struct NewSecurityEvent<'a> {
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    pub event_type: &'a str,
    /// authentication, authorization, account, session, threat, incident or rate_limit.
    pub category: &'a str,
    /// low, medium, high or critical.
    pub severity: &'a str,
    /// allow, deny, challenge, block or lock.
    pub action: &'a str,
    pub description: &'a str,
    pub ip: Option<String>,
    pub device_fingerprint: Option<String>,
    pub user_agent: Option<String>,
    /// The risk engine's assessment: fills risk, fraud and anomaly scores and the
    /// explanation in `metadata.risk`.
    pub risk: Option<&'a crate::risk::Assessment>,
    /// Further details (merged into `metadata`).
    pub details: Option<serde_json::Value>,
    /// Where the client was (`geolocation`).
    pub geolocation: Option<serde_json::Value>,
}

/// Inserts the event on `txn`, so it commits with (or, for bookkeeping transactions,
/// independently of) the change it describes.
pub async fn record<C: ConnectionTrait>(txn: &C, event: NewSecurityEvent<'_>) -> Result<(), DbErr> {
    let metadata = metadata(&event);
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into security_events (event_id, tenant_id, user_id, event_type, event_category, severity, \
                                      ip_address, device_fingerprint, user_agent, description, action_taken, \
                                      risk_score, fraud_score, anomaly_score, metadata, geolocation) \
         values ($1, $2, $3, $4, $5, $6, $7::inet, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        [
            Uuid::now_v7().into(),
            event.tenant_id.into(),
            event.user_id.into(),
            event.event_type.into(),
            event.category.into(),
            event.severity.into(),
            event.ip.into(),
            event.device_fingerprint.into(),
            event.user_agent.into(),
            event.description.into(),
            event.action.into(),
            event.risk.map(|r| decimal(r.risk_score)).into(),
            event.risk.map(|r| decimal(r.fraud_score)).into(),
            event.risk.map(|r| decimal(r.anomaly_score)).into(),
            metadata.into(),
            event.geolocation.into(),
        ],
    ))
    .await?;
    Ok(())
}

fn decimal(v: f64) -> rust_decimal::Decimal {
    rust_decimal::Decimal::from_f64_retain(v)
        .unwrap_or_default()
        .round_dp(2)
}

/// `metadata`: the details, plus the risk explanation under `risk`.
fn metadata(event: &NewSecurityEvent<'_>) -> serde_json::Value {
    let mut metadata = match &event.details {
        Some(serde_json::Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(risk) = event.risk {
        metadata.insert("risk".into(), risk.explanation());
    }
    serde_json::Value::Object(metadata)
}
