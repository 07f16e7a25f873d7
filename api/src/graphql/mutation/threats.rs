//! Threats, incidents and threat intelligence.

use async_graphql::{Context, InputObject, Object};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::filters::check_score;
use super::super::guards::require;
use super::super::types::enums::{DbEnum, IncidentStatus, IndicatorType, Priority, Severity, ThreatStatus};
use super::super::types::{SecurityIncident, ThreatEvent, ThreatIndicator};
use crate::auth::permissions::Permission;
use crate::domain::{incidents, intel, threats};

#[derive(InputObject)]
pub struct ReportThreatInput {
    pub threat_type: String,
    pub severity: Severity,
    pub description: Option<String>,
    #[graphql(default)]
    pub indicators: Vec<String>,
    #[graphql(default)]
    pub affected_user_ids: Vec<Uuid>,
    #[graphql(default)]
    pub affected_account_ids: Vec<Uuid>,
    #[graphql(default)]
    pub affected_transaction_ids: Vec<Uuid>,
    /// 0 to 100.
    pub confidence: Option<Decimal>,
    /// What should be done (block, lock, alert, escalate ...); recorded as pending.
    pub response_action: Option<String>,
}

#[derive(InputObject)]
pub struct OpenIncidentInput {
    pub incident_type: String,
    pub severity: Severity,
    #[graphql(default_with = "Priority::Medium")]
    pub priority: Priority,
    pub title: String,
    pub description: Option<String>,
    /// Needs incidents:assign.
    pub assigned_to: Option<Uuid>,
    #[graphql(default)]
    pub related_threat_ids: Vec<Uuid>,
    #[graphql(default)]
    pub related_event_ids: Vec<Uuid>,
}

#[derive(InputObject)]
pub struct AddThreatIndicatorInput {
    pub indicator_type: IndicatorType,
    pub indicator_value: String,
    pub threat_type: Option<String>,
    #[graphql(default_with = "Severity::Medium")]
    pub severity: Severity,
    /// 0 to 100.
    pub confidence: Option<Decimal>,
    pub source: Option<String>,
    pub source_url: Option<String>,
    pub description: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct ThreatsMutation;

#[Object]
impl ThreatsMutation {
    /// Reports a threat by hand (threats:write).
    async fn report_threat(&self, ctx: &Context<'_>, input: ReportThreatInput) -> ApiResult<ThreatEvent> {
        let req = request(ctx);
        require(req.principal()?, Permission::ThreatsWrite)?;
        let confidence = input
            .confidence
            .map(|c| check_score(c, Decimal::ONE_HUNDRED))
            .transpose()?;
        let threat = threats::NewThreat {
            threat_type: input.threat_type,
            severity: input.severity.as_db(),
            description: input.description,
            indicators: input.indicators,
            affected_user_ids: input.affected_user_ids,
            affected_account_ids: input.affected_account_ids,
            affected_transaction_ids: input.affected_transaction_ids,
            confidence,
            response_action: input.response_action,
        };
        Ok(ThreatEvent(
            threats::report(req.db()?, &req.actor()?, threat)
                .await
                .map_err(ApiError::from)?,
        ))
    }

    /// Moves a threat through detected → investigating → mitigated → resolved (threats:write).
    async fn change_threat_status(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        status: ThreatStatus,
    ) -> ApiResult<ThreatEvent> {
        let req = request(ctx);
        require(req.principal()?, Permission::ThreatsWrite)?;
        let threat = threats::change_status(req.db()?, &req.actor()?, id, status.as_db())
            .await
            .map_err(ApiError::from)?;
        Ok(ThreatEvent(threat))
    }

    /// Opens an incident (incidents:write; incidents:assign to assign it at once).
    async fn open_incident(
        &self,
        ctx: &Context<'_>,
        input: OpenIncidentInput,
    ) -> ApiResult<SecurityIncident> {
        let req = request(ctx);
        let principal = req.principal()?;
        require(principal, Permission::IncidentsWrite)?;
        if input.assigned_to.is_some() {
            require(principal, Permission::IncidentsAssign)?;
        }
        let incident = incidents::NewIncident {
            incident_type: input.incident_type,
            severity: input.severity.as_db(),
            priority: input.priority.as_db(),
            title: input.title,
            description: input.description,
            assigned_to: input.assigned_to,
            related_threat_ids: input.related_threat_ids,
            related_event_ids: input.related_event_ids,
        };
        Ok(SecurityIncident(
            incidents::open(req.db()?, &req.actor()?, incident)
                .await
                .map_err(ApiError::from)?,
        ))
    }

    /// Assigns an incident to a staff user, or unassigns it with null (incidents:assign).
    async fn assign_incident(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        user_id: Option<Uuid>,
    ) -> ApiResult<SecurityIncident> {
        let req = request(ctx);
        require(req.principal()?, Permission::IncidentsAssign)?;
        let incident = incidents::assign(req.db()?, &req.actor()?, id, user_id)
            .await
            .map_err(ApiError::from)?;
        Ok(SecurityIncident(incident))
    }

    /// Moves an incident through open → investigating → resolved → closed (incidents:write).
    async fn change_incident_status(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        status: IncidentStatus,
    ) -> ApiResult<SecurityIncident> {
        let req = request(ctx);
        require(req.principal()?, Permission::IncidentsWrite)?;
        let incident = incidents::change_status(req.db()?, &req.actor()?, id, status.as_db())
            .await
            .map_err(ApiError::from)?;
        Ok(SecurityIncident(incident))
    }

    /// Changes an incident's priority (incidents:write).
    async fn change_incident_priority(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        priority: Priority,
    ) -> ApiResult<SecurityIncident> {
        let req = request(ctx);
        require(req.principal()?, Permission::IncidentsWrite)?;
        let incident = incidents::change_priority(req.db()?, &req.actor()?, id, priority.as_db())
            .await
            .map_err(ApiError::from)?;
        Ok(SecurityIncident(incident))
    }

    /// Links threats and events to an incident (incidents:write).
    async fn link_incident(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        #[graphql(default)] threat_ids: Vec<Uuid>,
        #[graphql(default)] event_ids: Vec<Uuid>,
    ) -> ApiResult<SecurityIncident> {
        let req = request(ctx);
        require(req.principal()?, Permission::IncidentsWrite)?;
        let incident = incidents::link(req.db()?, &req.actor()?, id, &threat_ids, &event_ids)
            .await
            .map_err(ApiError::from)?;
        Ok(SecurityIncident(incident))
    }

    /// Adds an indicator for this tenant (intel:write). Global indicators come only from
    /// the platform's CLI.
    async fn add_threat_indicator(
        &self,
        ctx: &Context<'_>,
        input: AddThreatIndicatorInput,
    ) -> ApiResult<ThreatIndicator> {
        let req = request(ctx);
        require(req.principal()?, Permission::IntelWrite)?;
        let confidence = input
            .confidence
            .map(|c| check_score(c, Decimal::ONE_HUNDRED))
            .transpose()?;
        let indicator = intel::NewIndicator {
            indicator_type: input.indicator_type.as_db(),
            indicator_value: input.indicator_value,
            threat_type: input.threat_type,
            severity: input.severity.as_db(),
            confidence,
            source: input.source,
            source_url: input.source_url,
            description: input.description,
            expires_at: input.expires_at,
        };
        Ok(ThreatIndicator(
            intel::add(req.db()?, &req.actor()?, indicator)
                .await
                .map_err(ApiError::from)?,
        ))
    }

    /// Deactivates one of this tenant's indicators (intel:write).
    async fn deactivate_threat_indicator(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<ThreatIndicator> {
        let req = request(ctx);
        require(req.principal()?, Permission::IntelWrite)?;
        Ok(ThreatIndicator(
            intel::deactivate(req.db()?, &req.actor()?, id)
                .await
                .map_err(ApiError::from)?,
        ))
    }
}
