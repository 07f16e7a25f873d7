//! Queries over sessions and trusted devices.

use async_graphql::{Context, Enum, InputObject, Object};
use chrono::Utc;
use entity::{refresh_tokens, trusted_devices};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

use super::super::connection::*;
use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::filters::{TimeRange, in_network, time_range};
use super::super::guards::Scope;
use super::super::lists::{Paging, by_id, page};
use super::super::pagination::{Ordering, SortKey};
use super::super::scalars::Cidr;
use super::super::types::enums::{DbEnum, DeviceType};
use super::super::types::{Session, TrustedDevice};
use crate::auth::permissions::{Permission, Principal};

#[derive(InputObject, Default)]
pub struct SessionFilter {
    pub user_id: Option<Uuid>,
    /// true: neither revoked nor expired; false: revoked or expired.
    pub active: Option<bool>,
    pub ip_address: Option<Cidr>,
    pub created_at: Option<TimeRange>,
    /// Also list the tokens each rotation replaced (default: one row per session).
    pub include_rotated: Option<bool>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionOrder {
    #[default]
    CreatedAtDesc,
    CreatedAtAsc,
}

fn session_ordering(order: SessionOrder) -> Ordering<refresh_tokens::Entity> {
    let descending = order == SessionOrder::CreatedAtDesc;
    Ordering::<refresh_tokens::Entity>::new(
        "SESSIONS_CREATED_AT",
        descending,
        refresh_tokens::Column::CreatedAt,
        refresh_tokens::Column::TokenId,
        |m| (SortKey::Time(m.created_at), m.token_id),
    )
}

fn scoped_sessions(principal: &Principal) -> Select<refresh_tokens::Entity> {
    match Scope::own_or(principal, Permission::SessionsRead) {
        Scope::Tenant => refresh_tokens::Entity::find(),
        Scope::Own(me) => refresh_tokens::Entity::find().filter(refresh_tokens::Column::UserId.eq(me)),
    }
}

fn session_condition(filter: SessionFilter) -> Result<Condition, ApiError> {
    let mut cond = Condition::all();
    if filter.include_rotated != Some(true) {
        cond = cond.add(refresh_tokens::Column::ReplacedBy.is_null());
    }
    if let Some(user) = filter.user_id {
        cond = cond.add(refresh_tokens::Column::UserId.eq(user));
    }
    match filter.active {
        Some(true) => {
            cond = cond
                .add(refresh_tokens::Column::RevokedAt.is_null())
                .add(refresh_tokens::Column::ExpiresAt.gt(Utc::now()));
        }
        Some(false) => {
            cond = cond.add(
                Condition::any()
                    .add(refresh_tokens::Column::RevokedAt.is_not_null())
                    .add(refresh_tokens::Column::ExpiresAt.lte(Utc::now())),
            );
        }
        None => {}
    }
    if let Some(net) = &filter.ip_address {
        cond = cond.add(in_network("ip_address", net));
    }
    time_range(cond, refresh_tokens::Column::CreatedAt, &filter.created_at)
}

#[derive(InputObject, Default)]
pub struct TrustedDeviceFilter {
    pub user_id: Option<Uuid>,
    pub is_trusted: Option<bool>,
    pub device_type: Option<DeviceType>,
    pub last_seen_at: Option<TimeRange>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustedDeviceOrder {
    #[default]
    LastSeenAtDesc,
    LastSeenAtAsc,
}

fn device_ordering(order: TrustedDeviceOrder) -> Ordering<trusted_devices::Entity> {
    let descending = order == TrustedDeviceOrder::LastSeenAtDesc;
    Ordering::<trusted_devices::Entity>::new(
        "DEVICES_LAST_SEEN",
        descending,
        trusted_devices::Column::LastSeenAt,
        trusted_devices::Column::DeviceId,
        |m| (SortKey::Time(m.last_seen_at), m.device_id),
    )
}

fn scoped_devices(principal: &Principal) -> Select<trusted_devices::Entity> {
    match Scope::own_or(principal, Permission::DevicesRead) {
        Scope::Tenant => trusted_devices::Entity::find(),
        Scope::Own(me) => trusted_devices::Entity::find().filter(trusted_devices::Column::UserId.eq(me)),
    }
}

fn device_condition(filter: TrustedDeviceFilter) -> Result<Condition, ApiError> {
    let mut cond = Condition::all();
    if let Some(user) = filter.user_id {
        cond = cond.add(trusted_devices::Column::UserId.eq(user));
    }
    if let Some(trusted) = filter.is_trusted {
        cond = cond.add(trusted_devices::Column::IsTrusted.eq(trusted));
    }
    if let Some(kind) = filter.device_type {
        cond = cond.add(trusted_devices::Column::DeviceType.eq(kind.as_db()));
    }
    time_range(cond, trusted_devices::Column::LastSeenAt, &filter.last_seen_at)
}

#[derive(Default)]
pub struct SessionsQuery;

#[Object]
impl SessionsQuery {
    /// Sessions of the tenant (sessions:read; without it, the caller's own).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<SessionFilter>,
        order_by: Option<SessionOrder>,
    ) -> ApiResult<SessionConnection> {
        let req = request(ctx);
        let select = scoped_sessions(req.principal()?).filter(session_condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page(
            req.db()?,
            select,
            session_ordering(order_by.unwrap_or_default()),
            paging,
            Session,
        )
        .await
    }

    async fn session(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Session>> {
        let req = request(ctx);
        let select = scoped_sessions(req.principal()?);
        Ok(by_id(req.db()?, select, refresh_tokens::Column::TokenId, id)
            .await?
            .map(Session))
    }

    /// Devices of the tenant (devices:read; without it, the caller's own).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn trusted_devices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<TrustedDeviceFilter>,
        order_by: Option<TrustedDeviceOrder>,
    ) -> ApiResult<TrustedDeviceConnection> {
        let req = request(ctx);
        let select = scoped_devices(req.principal()?).filter(device_condition(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page(
            req.db()?,
            select,
            device_ordering(order_by.unwrap_or_default()),
            paging,
            TrustedDevice,
        )
        .await
    }

    async fn trusted_device(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<TrustedDevice>> {
        let req = request(ctx);
        let select = scoped_devices(req.principal()?);
        Ok(by_id(req.db()?, select, trusted_devices::Column::DeviceId, id)
            .await?
            .map(TrustedDevice))
    }
}
