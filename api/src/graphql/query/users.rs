//! Queries over users: `me`, `users`, `user(id)`, and the caller's `tenant`.

use async_graphql::{Context, Enum, InputObject, Object};
use entity::{tenants, users};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

use super::super::connection::*;
use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::filters::{ScoreRange, TimeRange, check_in, contains, score_range, time_range};
use super::super::guards::Scope;
use super::super::lists::{Paging, by_id, by_id_as, page_as};
use super::super::pagination::{Ordering, SortKey};
use super::super::types::enums::{UserRole, db_values};
use super::super::types::users::UserRow;
use super::super::types::{Tenant, User};
use crate::auth::permissions::{Permission, Principal};

#[derive(InputObject, Default)]
pub struct UserFilter {
    pub role: Option<UserRole>,
    pub roles: Option<Vec<UserRole>>,
    pub is_active: Option<bool>,
    pub is_locked: Option<bool>,
    /// Case-insensitive text in the username or email.
    pub search: Option<String>,
    pub created_at: Option<TimeRange>,
    pub trust_score: Option<ScoreRange>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserOrder {
    #[default]
    CreatedAtDesc,
    CreatedAtAsc,
}

fn ordering(order: UserOrder) -> Ordering<users::Entity> {
    let descending = order == UserOrder::CreatedAtDesc;
    Ordering::<users::Entity>::new(
        "USERS_CREATED_AT",
        descending,
        users::Column::CreatedAt,
        users::Column::UserId,
        |m| (SortKey::Time(m.created_at), m.user_id),
    )
}

/// The users a caller may list: all of the tenant with users:read, else only themselves.
fn scoped(principal: &Principal) -> Select<users::Entity> {
    match Scope::own_or(principal, Permission::UsersRead) {
        Scope::Tenant => users::Entity::find(),
        Scope::Own(me) => users::Entity::find().filter(users::Column::UserId.eq(me)),
    }
}

fn apply(filter: UserFilter) -> Result<Condition, ApiError> {
    let mut cond = Condition::all();
    if let Some(role) = filter.role {
        cond = cond.add(users::Column::Role.eq(role_db(role)));
    }
    if let Some(roles) = &filter.roles {
        check_in(roles, "roles")?;
        cond = cond.add(users::Column::Role.is_in(db_values(roles)));
    }
    if let Some(active) = filter.is_active {
        cond = cond.add(users::Column::IsActive.eq(active));
    }
    if let Some(locked) = filter.is_locked {
        cond = cond.add(users::Column::IsLocked.eq(locked));
    }
    if let Some(text) = &filter.search {
        cond = cond.add(
            Condition::any()
                .add(contains("username", text)?)
                .add(contains("email", text)?),
        );
    }
    cond = time_range(cond, users::Column::CreatedAt, &filter.created_at)?;
    score_range(
        cond,
        users::Column::TrustScore,
        &filter.trust_score,
        Decimal::ONE_HUNDRED,
    )
}

fn user(row: UserRow) -> User {
    User::full(std::sync::Arc::new(row))
}

fn role_db(role: UserRole) -> &'static str {
    use super::super::types::enums::DbEnum;
    role.as_db()
}

#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        let req = request(ctx);
        let me = req.principal()?.user_id;
        Ok(
            by_id_as::<_, UserRow, _>(req.db()?, users::Entity::find(), users::Column::UserId, me)
                .await?
                .map(user),
        )
    }

    /// The caller's tenant.
    async fn tenant(&self, ctx: &Context<'_>) -> ApiResult<Option<Tenant>> {
        let req = request(ctx);
        let tenant_id = req.principal()?.tenant_id;
        Ok(by_id(
            req.db()?,
            tenants::Entity::find(),
            tenants::Column::TenantId,
            tenant_id,
        )
        .await?
        .map(Tenant))
    }

    /// Users of the tenant (users:read; without it, only the caller).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<UserFilter>,
        order_by: Option<UserOrder>,
    ) -> ApiResult<UserConnection> {
        let req = request(ctx);
        let select = scoped(req.principal()?).filter(apply(filter.unwrap_or_default())?);
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        page_as(
            req.db()?,
            select,
            ordering(order_by.unwrap_or_default()),
            |r: &UserRow| (SortKey::Time(r.created_at), r.user_id),
            paging,
            user,
        )
        .await
    }

    /// One user by id; null when not visible to the caller.
    async fn user(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<User>> {
        let req = request(ctx);
        Ok(
            by_id_as::<_, UserRow, _>(req.db()?, scoped(req.principal()?), users::Column::UserId, id)
                .await?
                .map(user),
        )
    }
}
