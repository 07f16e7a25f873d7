//! Security events.

use async_graphql::{Context, Json, Object};
use chrono::{DateTime, Utc};
use entity::security_events;
use ipnetwork::IpNetwork;
use rust_decimal::Decimal;
use sea_orm::DerivePartialModel;
use uuid::Uuid;

use super::super::errors::{ApiError, ApiResult};
use super::super::scalars::IpAddress;
use super::enums::{ActionTaken, DbEnum, EventCategory, Severity};
use super::{User, load_user};

/// The columns of an event a list reads when its selection asks for none of the details
/// (see [`SecurityEvent::DETAIL_FIELDS`]).
#[derive(Clone, Debug, DerivePartialModel)]
#[sea_orm(entity = "security_events::Entity")]
pub struct EventSummary {
    pub event_id: Uuid,
    pub user_id: Option<Uuid>,
    pub event_type: String,
    pub event_category: String,
    pub severity: String,
    pub ip_address: Option<IpNetwork>,
    pub risk_score: Option<Decimal>,
    pub fraud_score: Option<Decimal>,
    pub anomaly_score: Option<Decimal>,
    pub action_taken: Option<String>,
    pub timestamp: DateTime<Utc>,
}

/// The rest of an event: free text and JSON, the costliest columns to read and decode.
#[derive(Clone, Debug)]
struct EventDetails {
    device_fingerprint: Option<String>,
    user_agent: Option<String>,
    geolocation: Option<serde_json::Value>,
    description: Option<String>,
    metadata: serde_json::Value,
}

/// Something security-relevant that happened, with the scores the risk engine gave it.
pub struct SecurityEvent {
    summary: EventSummary,
    /// None when read as a summary: the details' fields are then unreachable, since a list
    /// reads summaries only when its selection has none of them.
    details: Option<EventDetails>,
}

impl SecurityEvent {
    /// The fields served from [`EventDetails`]. A list whose selection has one of them
    /// (or may have: fragments count) reads whole rows.
    pub const DETAIL_FIELDS: &'static [&'static str] = &[
        "deviceFingerprint",
        "userAgent",
        "geolocation",
        "description",
        "metadata",
    ];

    pub fn new(m: security_events::Model) -> SecurityEvent {
        SecurityEvent {
            summary: EventSummary {
                event_id: m.event_id,
                user_id: m.user_id,
                event_type: m.event_type,
                event_category: m.event_category,
                severity: m.severity,
                ip_address: m.ip_address,
                risk_score: m.risk_score,
                fraud_score: m.fraud_score,
                anomaly_score: m.anomaly_score,
                action_taken: m.action_taken,
                timestamp: m.timestamp,
            },
            details: Some(EventDetails {
                device_fingerprint: m.device_fingerprint,
                user_agent: m.user_agent,
                geolocation: m.geolocation,
                description: m.description,
                metadata: m.metadata,
            }),
        }
    }

    pub fn summary(summary: EventSummary) -> SecurityEvent {
        SecurityEvent {
            summary,
            details: None,
        }
    }

    fn details(&self) -> ApiResult<&EventDetails> {
        self.details
            .as_ref()
            .ok_or_else(|| ApiError::internal("event details selected but not loaded").into())
    }
}

#[Object]
impl SecurityEvent {
    async fn id(&self) -> Uuid {
        self.summary.event_id
    }
    async fn user_id(&self) -> Option<Uuid> {
        self.summary.user_id
    }
    async fn user(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        load_user(ctx, self.summary.user_id).await
    }
    async fn event_type(&self) -> &str {
        &self.summary.event_type
    }
    async fn event_category(&self) -> ApiResult<EventCategory> {
        Ok(EventCategory::from_db(&self.summary.event_category)?)
    }
    async fn severity(&self) -> ApiResult<Severity> {
        Ok(Severity::from_db(&self.summary.severity)?)
    }
    async fn ip_address(&self) -> Option<IpAddress> {
        self.summary.ip_address.map(IpAddress::from)
    }
    async fn device_fingerprint(&self) -> ApiResult<Option<&str>> {
        Ok(self.details()?.device_fingerprint.as_deref())
    }
    async fn user_agent(&self) -> ApiResult<Option<&str>> {
        Ok(self.details()?.user_agent.as_deref())
    }
    /// {latitude, longitude, city, country} when known.
    async fn geolocation(&self) -> ApiResult<Option<Json<serde_json::Value>>> {
        Ok(self.details()?.geolocation.clone().map(Json))
    }
    async fn description(&self) -> ApiResult<Option<&str>> {
        Ok(self.details()?.description.as_deref())
    }
    async fn metadata(&self) -> ApiResult<Json<serde_json::Value>> {
        Ok(Json(self.details()?.metadata.clone()))
    }
    /// 0 to 100.
    async fn risk_score(&self) -> Option<Decimal> {
        self.summary.risk_score
    }
    /// 0 to 1.
    async fn fraud_score(&self) -> Option<Decimal> {
        self.summary.fraud_score
    }
    /// 0 to 1.
    async fn anomaly_score(&self) -> Option<Decimal> {
        self.summary.anomaly_score
    }
    async fn action_taken(&self) -> ApiResult<Option<ActionTaken>> {
        Ok(self
            .summary
            .action_taken
            .as_deref()
            .map(ActionTaken::from_db)
            .transpose()?)
    }
    async fn timestamp(&self) -> DateTime<Utc> {
        self.summary.timestamp
    }
}
