//! Threats and incidents.

use async_graphql::{Context, Object};
use chrono::{DateTime, Utc};
use entity::{security_incidents, threat_events};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::context::request;
use super::super::errors::ApiResult;
use super::super::loaders;
use super::enums::{
    DbEnum, DetectionMethod, IncidentStatus, Priority, ResponseStatus, Severity, ThreatStatus,
};
use super::{SecurityEvent, User, forbidden, load_user, load_users};
use crate::auth::permissions::Permission;

/// A detected threat and the response to it.
pub struct ThreatEvent(pub threat_events::Model);

#[Object]
impl ThreatEvent {
    async fn id(&self) -> Uuid {
        self.0.threat_id
    }
    async fn threat_type(&self) -> &str {
        &self.0.threat_type
    }
    async fn severity(&self) -> ApiResult<Severity> {
        Ok(Severity::from_db(&self.0.severity)?)
    }
    async fn status(&self) -> ApiResult<ThreatStatus> {
        Ok(ThreatStatus::from_db(&self.0.status)?)
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn indicators(&self) -> &[String] {
        &self.0.indicators
    }
    async fn affected_user_ids(&self) -> &[Uuid] {
        &self.0.affected_user_ids
    }
    /// The affected users still visible (all in the caller's tenant).
    async fn affected_users(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        load_users(ctx, &self.0.affected_user_ids).await
    }
    async fn affected_account_ids(&self) -> &[Uuid] {
        &self.0.affected_account_ids
    }
    async fn affected_transaction_ids(&self) -> &[Uuid] {
        &self.0.affected_transaction_ids
    }
    async fn detection_method(&self) -> ApiResult<DetectionMethod> {
        Ok(DetectionMethod::from_db(&self.0.detection_method)?)
    }
    /// 0 to 100.
    async fn confidence(&self) -> Option<Decimal> {
        self.0.confidence
    }
    async fn response_action(&self) -> Option<&str> {
        self.0.response_action.as_deref()
    }
    async fn response_status(&self) -> ApiResult<Option<ResponseStatus>> {
        Ok(self
            .0
            .response_status
            .as_deref()
            .map(ResponseStatus::from_db)
            .transpose()?)
    }
    async fn detected_at(&self) -> DateTime<Utc> {
        self.0.detected_at
    }
    async fn mitigated_at(&self) -> Option<DateTime<Utc>> {
        self.0.mitigated_at
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
}

/// An incident under investigation.
pub struct SecurityIncident(pub security_incidents::Model);

#[Object]
impl SecurityIncident {
    async fn id(&self) -> Uuid {
        self.0.incident_id
    }
    async fn incident_type(&self) -> &str {
        &self.0.incident_type
    }
    async fn severity(&self) -> ApiResult<Severity> {
        Ok(Severity::from_db(&self.0.severity)?)
    }
    async fn status(&self) -> ApiResult<IncidentStatus> {
        Ok(IncidentStatus::from_db(&self.0.status)?)
    }
    async fn priority(&self) -> ApiResult<Priority> {
        Ok(Priority::from_db(&self.0.priority)?)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn assigned_to(&self) -> Option<Uuid> {
        self.0.assigned_to
    }
    async fn assignee(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        load_user(ctx, self.0.assigned_to).await
    }
    async fn related_threat_ids(&self) -> &[Uuid] {
        &self.0.related_threat_ids
    }
    /// Linked threats (threats:read).
    async fn related_threats(&self, ctx: &Context<'_>) -> ApiResult<Vec<ThreatEvent>> {
        if !request(ctx).principal()?.can(Permission::ThreatsRead) {
            return Err(forbidden());
        }
        let ids = &self.0.related_threat_ids;
        let found = loaders::of(ctx)?.threats.load_many(ids.iter().copied()).await?;
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).cloned().map(ThreatEvent))
            .collect())
    }
    async fn related_event_ids(&self) -> &[Uuid] {
        &self.0.related_event_ids
    }
    /// Linked security events (events:read).
    async fn related_events(&self, ctx: &Context<'_>) -> ApiResult<Vec<SecurityEvent>> {
        if !request(ctx).principal()?.can(Permission::EventsRead) {
            return Err(forbidden());
        }
        let ids = &self.0.related_event_ids;
        let found = loaders::of(ctx)?.events.load_many(ids.iter().copied()).await?;
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).cloned().map(SecurityEvent::new))
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
}
