//! Threat intelligence indicators: the tenant's own and the global ones.

use async_graphql::{Json, Object};
use chrono::{DateTime, Utc};
use entity::threat_intelligence;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::errors::ApiResult;
use super::enums::{DbEnum, IndicatorType, Severity};

/// An indicator of compromise (an IP or network, domain, email or file hash).
pub struct ThreatIndicator(pub threat_intelligence::Model);

#[Object]
impl ThreatIndicator {
    async fn id(&self) -> Uuid {
        self.0.intel_id
    }
    /// Shared by every tenant (maintained by the platform), rather than the tenant's own.
    async fn is_global(&self) -> bool {
        self.0.tenant_id.is_none()
    }
    async fn indicator_type(&self) -> ApiResult<IndicatorType> {
        Ok(IndicatorType::from_db(&self.0.indicator_type)?)
    }
    async fn indicator_value(&self) -> &str {
        &self.0.indicator_value
    }
    async fn threat_type(&self) -> Option<&str> {
        self.0.threat_type.as_deref()
    }
    async fn severity(&self) -> ApiResult<Severity> {
        Ok(Severity::from_db(&self.0.severity)?)
    }
    /// 0 to 100.
    async fn confidence(&self) -> Option<Decimal> {
        self.0.confidence
    }
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn source_url(&self) -> Option<&str> {
        self.0.source_url.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn metadata(&self) -> Json<serde_json::Value> {
        Json(self.0.metadata.clone())
    }
    async fn first_seen(&self) -> DateTime<Utc> {
        self.0.first_seen
    }
    async fn last_seen(&self) -> DateTime<Utc> {
        self.0.last_seen
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}
