//! Security events.

use async_graphql::{Context, Json, Object};
use chrono::{DateTime, Utc};
use entity::security_events;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::errors::ApiResult;
use super::super::scalars::IpAddress;
use super::enums::{ActionTaken, DbEnum, EventCategory, Severity};
use super::{User, load_user};

/// Something security-relevant that happened, with the scores the risk engine gave it.
pub struct SecurityEvent(pub security_events::Model);

#[Object]
impl SecurityEvent {
    async fn id(&self) -> Uuid {
        self.0.event_id
    }
    async fn user_id(&self) -> Option<Uuid> {
        self.0.user_id
    }
    async fn user(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        load_user(ctx, self.0.user_id).await
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn event_category(&self) -> ApiResult<EventCategory> {
        Ok(EventCategory::from_db(&self.0.event_category)?)
    }
    async fn severity(&self) -> ApiResult<Severity> {
        Ok(Severity::from_db(&self.0.severity)?)
    }
    async fn ip_address(&self) -> Option<IpAddress> {
        self.0.ip_address.map(IpAddress::from)
    }
    async fn device_fingerprint(&self) -> Option<&str> {
        self.0.device_fingerprint.as_deref()
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
    /// {latitude, longitude, city, country} when known.
    async fn geolocation(&self) -> Option<Json<serde_json::Value>> {
        self.0.geolocation.clone().map(Json)
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn metadata(&self) -> Json<serde_json::Value> {
        Json(self.0.metadata.clone())
    }
    /// 0 to 100.
    async fn risk_score(&self) -> Option<Decimal> {
        self.0.risk_score
    }
    /// 0 to 1.
    async fn fraud_score(&self) -> Option<Decimal> {
        self.0.fraud_score
    }
    /// 0 to 1.
    async fn anomaly_score(&self) -> Option<Decimal> {
        self.0.anomaly_score
    }
    async fn action_taken(&self) -> ApiResult<Option<ActionTaken>> {
        Ok(self
            .0
            .action_taken
            .as_deref()
            .map(ActionTaken::from_db)
            .transpose()?)
    }
    async fn timestamp(&self) -> DateTime<Utc> {
        self.0.timestamp
    }
}
