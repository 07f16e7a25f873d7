//! Queries over threat intelligence, rate limits and the audit log.

use async_graphql::{Context, Enum, InputObject, Object};
use entity::{audit_log, rate_limit_entries, threat_intelligence};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::super::connection::*;
use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::filters::{ScoreRange, TimeRange, in_network, score_range, time_range};
use super::super::guards::require;
use super::super::lists::{Paging, by_id, page};
use super::super::pagination::{Ordering, SortKey};
use super::super::scalars::Cidr;
use super::super::types::enums::{DbEnum, IndicatorType, Severity};
use super::super::types::{AuditEntry, RateLimitEntry, ThreatIndicator};
use crate::auth::permissions::Permission;

/// Whose indicators to list.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum IndicatorScope {
    /// The platform's, shared by every tenant.
    Global,
    /// The tenant's own.
    Tenant,
}

#[derive(InputObject, Default)]
pub struct ThreatIndicatorFilter {
    pub indicator_type: Option<IndicatorType>,
    pub indicator_value: Option<String>,
    pub severity: Option<Severity>,
    pub is_active: Option<bool>,
    pub source: Option<String>,
    pub scope: Option<IndicatorScope>,
    pub confidence: Option<ScoreRange>,
    pub expires_at: Option<TimeRange>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThreatIndicatorOrder {
    #[default]
    CreatedAtDesc,
    CreatedAtAsc,
}

fn intel_ordering(order: ThreatIndicatorOrder) -> Ordering<threat_intelligence::Entity> {
    let descending = order == ThreatIndicatorOrder::CreatedAtDesc;
    Ordering::<threat_intelligence::Entity>::new(
        "INTEL_CREATED_AT",
        descending,
        threat_intelligence::Column::CreatedAt,
        threat_intelligence::Column::IntelId,
        |m| (SortKey::Time(m.created_at), m.intel_id),
    )
}

fn intel_condition(filter: ThreatIndicatorFilter) -> Result<Condition, ApiError> {
    use threat_intelligence::Column as C;
    let mut cond = Condition::all();
    if let Some(t) = filter.indicator_type {
        cond = cond.add(C::IndicatorType.eq(t.as_db()));
    }
    if let Some(v) = filter.indicator_value {
        cond = cond.add(C::IndicatorValue.eq(v));
    }
    if let Some(s) = filter.severity {
        cond = cond.add(C::Severity.eq(s.as_db()));
    }
    if let Some(active) = filter.is_active {
        cond = cond.add(C::IsActive.eq(active));
    }
    if let Some(source) = filter.source {
        cond = cond.add(C::Source.eq(source));
    }
    match filter.scope {
        Some(IndicatorScope::Global) => cond = cond.add(C::TenantId.is_null()),
        Some(IndicatorScope::Tenant) => cond = cond.add(C::TenantId.is_not_null()),
        None => {}
    }
    cond = time_range(cond, C::ExpiresAt, &filter.expires_at)?;
    score_range(cond, C::Confidence, &filter.confidence, Decimal::ONE_HUNDRED)
}

#[derive(InputObject, Default)]
pub struct RateLimitEntryFilter {
    pub user_id: Option<Uuid>,
    pub ip_address: Option<Cidr>,
    pub endpoint: Option<String>,
    pub is_blocked: Option<bool>,
    pub window_start: Option<TimeRange>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimitEntryOrder {
    #[default]
    WindowStartDesc,
    WindowStartAsc,
}

fn rate_ordering(order: RateLimitEntryOrder) -> Ordering<rate_limit_entries::Entity> {
    let descending = order == RateLimitEntryOrder::WindowStartDesc;
    Ordering::<rate_limit_entries::Entity>::new(
        "RATE_LIMITS_WINDOW",
        descending,
        rate_limit_entries::Column::WindowStart,
        rate_limit_entries::Column::EntryId,
        |m| (SortKey::Time(m.window_start), m.entry_id),
    )
}

fn rate_condition(filter: RateLimitEntryFilter) -> Result<Condition, ApiError> {
    use rate_limit_entries::Column as C;
    let mut cond = Condition::all();
    if let Some(user) = filter.user_id {
        cond = cond.add(C::UserId.eq(user));
    }
    if let Some(net) = &filter.ip_address {
        cond = cond.add(in_network("ip_address", net));
    }
    if let Some(endpoint) = filter.endpoint {
        cond = cond.add(C::Endpoint.eq(endpoint));
    }
    if let Some(blocked) = filter.is_blocked {
        cond = cond.add(C::IsBlocked.eq(blocked));
    }
    time_range(cond, C::WindowStart, &filter.window_start)
}

#[derive(InputObject, Default)]
pub struct AuditEntryFilter {
    pub user_id: Option<Uuid>,
    pub action: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<Uuid>,
    pub timestamp: Option<TimeRange>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditEntryOrder {
    #[default]
    TimestampDesc,
    TimestampAsc,
}

fn audit_ordering(order: AuditEntryOrder) -> Ordering<audit_log::Entity> {
    let descending = order == AuditEntryOrder::TimestampDesc;
    Ordering::<audit_log::Entity>::new(
        "AUDIT_TIMESTAMP",
        descending,
        audit_log::Column::Timestamp,
        audit_log::Column::AuditId,
        |m| (SortKey::Time(m.timestamp), m.audit_id),
    )
}

fn audit_condition(filter: AuditEntryFilter) -> Result<Condition, ApiError> {
    use audit_log::Column as C;
    let mut cond = Condition::all();
    if let Some(user) = filter.user_id {
        cond = cond.add(C::UserId.eq(user));
    }
    if let Some(action) = filter.action {
        cond = cond.add(C::Action.eq(action));
    }
    if let Some(t) = filter.entity_type {
        cond = cond.add(C::EntityType.eq(t));
    }
    if let Some(id) = filter.entity_id {
        cond = cond.add(C::EntityId.eq(id));
    }
    time_range(cond, C::Timestamp, &filter.timestamp)
}

#[derive(Default)]
pub struct IntelQuery;

#[Object]
impl IntelQuery {
    /// Indicators: the tenant's own and the global ones (intel:read).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn threat_intelligence(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ThreatIndicatorFilter>,
        order_by: Option<ThreatIndicatorOrder>,
    ) -> ApiResult<ThreatIndicatorConnection> {
        let req = request(ctx);
        require(req.principal()?, Permission::IntelRead)?;
        let select = threat_intelligence::Entity::find().filter(intel_condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page(
            req.db()?,
            select,
            intel_ordering(order_by.unwrap_or_default()),
            paging,
            ThreatIndicator,
        )
        .await
    }

    async fn threat_indicator(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<ThreatIndicator>> {
        let req = request(ctx);
        require(req.principal()?, Permission::IntelRead)?;
        let select = threat_intelligence::Entity::find();
        Ok(by_id(req.db()?, select, threat_intelligence::Column::IntelId, id)
            .await?
            .map(ThreatIndicator))
    }

    /// Rate-limit windows (rate_limits:read).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn rate_limit_entries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<RateLimitEntryFilter>,
        order_by: Option<RateLimitEntryOrder>,
    ) -> ApiResult<RateLimitEntryConnection> {
        let req = request(ctx);
        require(req.principal()?, Permission::RateLimitsRead)?;
        let select = rate_limit_entries::Entity::find().filter(rate_condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page(
            req.db()?,
            select,
            rate_ordering(order_by.unwrap_or_default()),
            paging,
            RateLimitEntry,
        )
        .await
    }

    async fn rate_limit_entry(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<RateLimitEntry>> {
        let req = request(ctx);
        require(req.principal()?, Permission::RateLimitsRead)?;
        let select = rate_limit_entries::Entity::find();
        Ok(by_id(req.db()?, select, rate_limit_entries::Column::EntryId, id)
            .await?
            .map(RateLimitEntry))
    }

    /// The audit log, newest first (audit:read).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<AuditEntryFilter>,
        order_by: Option<AuditEntryOrder>,
    ) -> ApiResult<AuditEntryConnection> {
        let req = request(ctx);
        require(req.principal()?, Permission::AuditRead)?;
        let select = audit_log::Entity::find().filter(audit_condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page(
            req.db()?,
            select,
            audit_ordering(order_by.unwrap_or_default()),
            paging,
            AuditEntry,
        )
        .await
    }

    async fn audit_entry(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<AuditEntry>> {
        let req = request(ctx);
        require(req.principal()?, Permission::AuditRead)?;
        let select = audit_log::Entity::find();
        Ok(by_id(req.db()?, select, audit_log::Column::AuditId, id)
            .await?
            .map(AuditEntry))
    }
}
