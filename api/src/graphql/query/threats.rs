//! Queries over threats and incidents.

use async_graphql::{Context, Enum, InputObject, Object};
use entity::{security_incidents, threat_events};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::super::connection::*;
use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::filters::{ScoreRange, TimeRange, check_in, contains, score_range, time_range};
use super::super::guards::require;
use super::super::lists::{Paging, by_id, page};
use super::super::pagination::{Ordering, SortKey};
use super::super::types::enums::{
    DbEnum, DetectionMethod, IncidentStatus, Priority, Severity, ThreatStatus, db_values,
};
use super::super::types::{SecurityIncident, ThreatEvent};
use crate::auth::permissions::Permission;

#[derive(InputObject, Default)]
pub struct ThreatEventFilter {
    pub threat_type: Option<String>,
    pub severity: Option<Severity>,
    pub severities: Option<Vec<Severity>>,
    pub status: Option<ThreatStatus>,
    pub statuses: Option<Vec<ThreatStatus>>,
    pub detection_method: Option<DetectionMethod>,
    /// Threats listing this user among the affected.
    pub affected_user_id: Option<Uuid>,
    pub detected_at: Option<TimeRange>,
    pub confidence: Option<ScoreRange>,
    pub description_contains: Option<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThreatEventOrder {
    #[default]
    DetectedAtDesc,
    DetectedAtAsc,
}

fn threat_ordering(order: ThreatEventOrder) -> Ordering<threat_events::Entity> {
    let descending = order == ThreatEventOrder::DetectedAtDesc;
    Ordering::<threat_events::Entity>::new(
        "THREATS_DETECTED_AT",
        descending,
        threat_events::Column::DetectedAt,
        threat_events::Column::ThreatId,
        |m| (SortKey::Time(m.detected_at), m.threat_id),
    )
}

fn threat_condition(filter: ThreatEventFilter) -> Result<Condition, ApiError> {
    use threat_events::Column as C;
    let mut cond = Condition::all();
    if let Some(t) = filter.threat_type {
        cond = cond.add(C::ThreatType.eq(t));
    }
    if let Some(s) = filter.severity {
        cond = cond.add(C::Severity.eq(s.as_db()));
    }
    if let Some(list) = &filter.severities {
        check_in(list, "severities")?;
        cond = cond.add(C::Severity.is_in(db_values(list)));
    }
    if let Some(s) = filter.status {
        cond = cond.add(C::Status.eq(s.as_db()));
    }
    if let Some(list) = &filter.statuses {
        check_in(list, "statuses")?;
        cond = cond.add(C::Status.is_in(db_values(list)));
    }
    if let Some(m) = filter.detection_method {
        cond = cond.add(C::DetectionMethod.eq(m.as_db()));
    }
    if let Some(user) = filter.affected_user_id {
        cond = cond.add(Expr::cust_with_values("$1 = any(affected_user_ids)", [user]));
    }
    if let Some(text) = &filter.description_contains {
        cond = cond.add(contains("description", text)?);
    }
    cond = time_range(cond, C::DetectedAt, &filter.detected_at)?;
    score_range(cond, C::Confidence, &filter.confidence, Decimal::ONE_HUNDRED)
}

#[derive(InputObject, Default)]
pub struct SecurityIncidentFilter {
    pub incident_type: Option<String>,
    pub severity: Option<Severity>,
    pub status: Option<IncidentStatus>,
    pub statuses: Option<Vec<IncidentStatus>>,
    pub priority: Option<Priority>,
    pub assigned_to: Option<Uuid>,
    pub unassigned: Option<bool>,
    pub created_at: Option<TimeRange>,
    pub title_contains: Option<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityIncidentOrder {
    #[default]
    CreatedAtDesc,
    CreatedAtAsc,
}

fn incident_ordering(order: SecurityIncidentOrder) -> Ordering<security_incidents::Entity> {
    let descending = order == SecurityIncidentOrder::CreatedAtDesc;
    Ordering::<security_incidents::Entity>::new(
        "INCIDENTS_CREATED_AT",
        descending,
        security_incidents::Column::CreatedAt,
        security_incidents::Column::IncidentId,
        |m| (SortKey::Time(m.created_at), m.incident_id),
    )
}

fn incident_condition(filter: SecurityIncidentFilter) -> Result<Condition, ApiError> {
    use security_incidents::Column as C;
    let mut cond = Condition::all();
    if let Some(t) = filter.incident_type {
        cond = cond.add(C::IncidentType.eq(t));
    }
    if let Some(s) = filter.severity {
        cond = cond.add(C::Severity.eq(s.as_db()));
    }
    if let Some(s) = filter.status {
        cond = cond.add(C::Status.eq(s.as_db()));
    }
    if let Some(list) = &filter.statuses {
        check_in(list, "statuses")?;
        cond = cond.add(C::Status.is_in(db_values(list)));
    }
    if let Some(p) = filter.priority {
        cond = cond.add(C::Priority.eq(p.as_db()));
    }
    if let Some(user) = filter.assigned_to {
        cond = cond.add(C::AssignedTo.eq(user));
    }
    match filter.unassigned {
        Some(true) => cond = cond.add(C::AssignedTo.is_null()),
        Some(false) => cond = cond.add(C::AssignedTo.is_not_null()),
        None => {}
    }
    if let Some(text) = &filter.title_contains {
        cond = cond.add(contains("title", text)?);
    }
    time_range(cond, C::CreatedAt, &filter.created_at)
}

#[derive(Default)]
pub struct ThreatsQuery;

#[Object]
impl ThreatsQuery {
    /// Detected threats (threats:read).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn threat_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ThreatEventFilter>,
        order_by: Option<ThreatEventOrder>,
    ) -> ApiResult<ThreatEventConnection> {
        let req = request(ctx);
        require(req.principal()?, Permission::ThreatsRead)?;
        let select = threat_events::Entity::find().filter(threat_condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page(
            req.db()?,
            select,
            threat_ordering(order_by.unwrap_or_default()),
            paging,
            ThreatEvent,
        )
        .await
    }

    async fn threat_event(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<ThreatEvent>> {
        let req = request(ctx);
        require(req.principal()?, Permission::ThreatsRead)?;
        let select = threat_events::Entity::find();
        Ok(by_id(req.db()?, select, threat_events::Column::ThreatId, id)
            .await?
            .map(ThreatEvent))
    }

    /// Incidents (incidents:read).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn security_incidents(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<SecurityIncidentFilter>,
        order_by: Option<SecurityIncidentOrder>,
    ) -> ApiResult<SecurityIncidentConnection> {
        let req = request(ctx);
        require(req.principal()?, Permission::IncidentsRead)?;
        let select =
            security_incidents::Entity::find().filter(incident_condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page(
            req.db()?,
            select,
            incident_ordering(order_by.unwrap_or_default()),
            paging,
            SecurityIncident,
        )
        .await
    }

    async fn security_incident(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<SecurityIncident>> {
        let req = request(ctx);
        require(req.principal()?, Permission::IncidentsRead)?;
        let select = security_incidents::Entity::find();
        Ok(
            by_id(req.db()?, select, security_incidents::Column::IncidentId, id)
                .await?
                .map(SecurityIncident),
        )
    }
}
