//! Queries over security events.

use async_graphql::{Context, Enum, InputObject, Object};
use entity::security_events;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

use super::super::connection::*;
use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::filters::{ScoreRange, TimeRange, check_in, contains, in_network, score_range, time_range};
use super::super::guards::Scope;
use super::super::lists::{Paging, by_id, page, page_as};
use super::super::pagination::{Ordering, SortKey};
use super::super::scalars::Cidr;
use super::super::types::SecurityEvent;
use super::super::types::enums::{ActionTaken, DbEnum, EventCategory, Severity, db_values};
use super::super::types::events::EventSummary;
use crate::auth::permissions::{Permission, Principal};

#[derive(InputObject, Default)]
pub struct SecurityEventFilter {
    pub user_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub event_category: Option<EventCategory>,
    pub severity: Option<Severity>,
    pub severities: Option<Vec<Severity>>,
    pub action_taken: Option<ActionTaken>,
    /// Events from addresses inside this network (or equal to this address).
    pub ip_address: Option<Cidr>,
    pub timestamp: Option<TimeRange>,
    pub risk_score: Option<ScoreRange>,
    pub fraud_score: Option<ScoreRange>,
    pub anomaly_score: Option<ScoreRange>,
    pub description_contains: Option<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityEventOrder {
    #[default]
    TimestampDesc,
    TimestampAsc,
}

fn ordering(order: SecurityEventOrder) -> Ordering<security_events::Entity> {
    let descending = order == SecurityEventOrder::TimestampDesc;
    Ordering::<security_events::Entity>::new(
        "EVENTS_TIMESTAMP",
        descending,
        security_events::Column::Timestamp,
        security_events::Column::EventId,
        |m| (SortKey::Time(m.timestamp), m.event_id),
    )
}

fn scoped(principal: &Principal) -> Select<security_events::Entity> {
    match Scope::own_or(principal, Permission::EventsRead) {
        Scope::Tenant => security_events::Entity::find(),
        Scope::Own(me) => security_events::Entity::find().filter(security_events::Column::UserId.eq(me)),
    }
}

fn condition(filter: SecurityEventFilter) -> Result<Condition, ApiError> {
    use security_events::Column as C;
    let mut cond = Condition::all();
    if let Some(user) = filter.user_id {
        cond = cond.add(C::UserId.eq(user));
    }
    if let Some(t) = filter.event_type {
        cond = cond.add(C::EventType.eq(t));
    }
    if let Some(types) = filter.event_types {
        check_in(&types, "eventTypes")?;
        cond = cond.add(C::EventType.is_in(types));
    }
    if let Some(category) = filter.event_category {
        cond = cond.add(C::EventCategory.eq(category.as_db()));
    }
    if let Some(severity) = filter.severity {
        cond = cond.add(C::Severity.eq(severity.as_db()));
    }
    if let Some(severities) = &filter.severities {
        check_in(severities, "severities")?;
        cond = cond.add(C::Severity.is_in(db_values(severities)));
    }
    if let Some(action) = filter.action_taken {
        cond = cond.add(C::ActionTaken.eq(action.as_db()));
    }
    if let Some(net) = &filter.ip_address {
        cond = cond.add(in_network("ip_address", net));
    }
    if let Some(text) = &filter.description_contains {
        cond = cond.add(contains("description", text)?);
    }
    cond = time_range(cond, C::Timestamp, &filter.timestamp)?;
    cond = score_range(cond, C::RiskScore, &filter.risk_score, Decimal::ONE_HUNDRED)?;
    cond = score_range(cond, C::FraudScore, &filter.fraud_score, Decimal::ONE)?;
    score_range(cond, C::AnomalyScore, &filter.anomaly_score, Decimal::ONE)
}

/// Whether the nodes of the list being resolved select a field of the event's details
/// (its free text and JSON): the list reads the summary columns only when they do not.
fn wants_details(ctx: &Context<'_>) -> bool {
    ctx.look_ahead()
        .field("edges")
        .field("node")
        .selection_fields()
        .iter()
        .flat_map(|node| node.selection_set())
        .any(|field| SecurityEvent::DETAIL_FIELDS.contains(&field.name()))
}

#[derive(Default)]
pub struct EventsQuery;

#[Object]
impl EventsQuery {
    /// Security events of the tenant, newest first (events:read; without it, the caller's own).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn security_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<SecurityEventFilter>,
        order_by: Option<SecurityEventOrder>,
    ) -> ApiResult<SecurityEventConnection> {
        let req = request(ctx);
        let select = scoped(req.principal()?).filter(condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        let ordering = ordering(order_by.unwrap_or_default());
        if wants_details(ctx) {
            page(req.db()?, select, ordering, paging, SecurityEvent::new).await
        } else {
            page_as(
                req.db()?,
                select,
                ordering,
                |e: &EventSummary| (SortKey::Time(e.timestamp), e.event_id),
                paging,
                SecurityEvent::summary,
            )
            .await
        }
    }

    async fn security_event(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<SecurityEvent>> {
        let req = request(ctx);
        let select = scoped(req.principal()?);
        Ok(by_id(req.db()?, select, security_events::Column::EventId, id)
            .await?
            .map(SecurityEvent::new))
    }
}
