//! Users, and the per-user lists reachable from one.

use async_graphql::{Context, Object};
use chrono::{DateTime, Utc};
use entity::users;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::connection::{
    AuditEntryConnection, PagedConnection, SecurityEventConnection, SessionConnection, TotalCount,
    TrustedDeviceConnection,
};
use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::guards::can_see_user;
use super::super::loaders::{ListCountKey, Loaders, UserList, UserOwned, UserPageKey};
use super::super::pagination::{PageArgs, into_page};
use super::super::scalars::IpAddress;
use super::enums::{DbEnum, UserRole};
use super::{AuditEntry, SecurityEvent, Session, TrustedDevice, forbidden};
use crate::auth::permissions::Permission;

/// A user of the caller's tenant. Personal and security details are visible to the user
/// themselves and to holders of users:read; others who reach a user (through an event,
/// say) see only its id, username and role.
pub struct User {
    pub model: users::Model,
    /// Shown to the user themselves outside a request principal (the login payload).
    signed_in: bool,
}

impl User {
    pub fn new(model: users::Model) -> User {
        User {
            model,
            signed_in: false,
        }
    }

    /// The user who has just signed in, as the login payload shows them to themselves.
    pub fn signed_in(model: users::Model) -> User {
        User {
            model,
            signed_in: true,
        }
    }

    fn personal(&self, ctx: &Context<'_>) -> ApiResult<()> {
        if self.signed_in {
            return Ok(());
        }
        let principal = request(ctx).principal()?;
        if can_see_user(principal, self.model.user_id) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> Uuid {
        self.model.user_id
    }
    async fn username(&self) -> &str {
        &self.model.username
    }
    async fn role(&self) -> ApiResult<UserRole> {
        Ok(UserRole::from_db(&self.model.role)?)
    }
    async fn email(&self, ctx: &Context<'_>) -> ApiResult<&str> {
        self.personal(ctx)?;
        Ok(&self.model.email)
    }
    async fn first_name(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        self.personal(ctx)?;
        Ok(self.model.first_name.as_deref())
    }
    async fn last_name(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        self.personal(ctx)?;
        Ok(self.model.last_name.as_deref())
    }
    async fn phone_number(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        self.personal(ctx)?;
        Ok(self.model.phone_number.as_deref())
    }
    /// Permission strings granted beyond the role.
    async fn permissions(&self, ctx: &Context<'_>) -> ApiResult<&[String]> {
        self.personal(ctx)?;
        Ok(&self.model.permissions)
    }
    async fn is_active(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        self.personal(ctx)?;
        Ok(self.model.is_active)
    }
    async fn is_locked(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        self.personal(ctx)?;
        Ok(self.model.is_locked)
    }
    async fn is_verified(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        self.personal(ctx)?;
        Ok(self.model.is_verified)
    }
    async fn mfa_enabled(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        self.personal(ctx)?;
        Ok(self.model.mfa_enabled)
    }
    async fn password_changed_at(&self, ctx: &Context<'_>) -> ApiResult<DateTime<Utc>> {
        self.personal(ctx)?;
        Ok(self.model.password_changed_at)
    }
    async fn password_expires_at(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        self.personal(ctx)?;
        Ok(self.model.password_expires_at)
    }
    async fn failed_login_attempts(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        self.personal(ctx)?;
        Ok(self.model.failed_login_attempts)
    }
    async fn locked_until(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        self.personal(ctx)?;
        Ok(self.model.locked_until)
    }
    /// 0 to 100: how much the user's history earns trust.
    async fn trust_score(&self, ctx: &Context<'_>) -> ApiResult<Decimal> {
        self.personal(ctx)?;
        Ok(self.model.trust_score)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
    async fn last_login_at(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        self.personal(ctx)?;
        Ok(self.model.last_login_at)
    }
    async fn last_login_ip(&self, ctx: &Context<'_>) -> ApiResult<Option<IpAddress>> {
        self.personal(ctx)?;
        Ok(self.model.last_login_ip.map(IpAddress::from))
    }
    /// Unused MFA backup codes (the codes themselves are never shown again).
    async fn backup_codes_remaining(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        self.personal(ctx)?;
        let key = ListCountKey {
            list: UserList::UnusedBackupCodes,
            user_id: self.model.user_id,
        };
        Ok(ctx
            .data_unchecked::<Loaders>()
            .list_counts
            .load_one(key)
            .await?
            .unwrap_or(0))
    }

    /// The user's security events, newest first (themselves, or events:read).
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn security_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<SecurityEventConnection> {
        self.guard(ctx, Permission::EventsRead)?;
        let loader = &ctx.data_unchecked::<Loaders>().user_events;
        user_page(
            self.model.user_id,
            loader,
            PageArgsIn {
                first,
                after,
                last,
                before,
            },
            SecurityEvent,
        )
        .await
    }

    /// The user's sessions, newest first (themselves, or sessions:read).
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<SessionConnection> {
        self.guard(ctx, Permission::SessionsRead)?;
        let loader = &ctx.data_unchecked::<Loaders>().user_sessions;
        user_page(
            self.model.user_id,
            loader,
            PageArgsIn {
                first,
                after,
                last,
                before,
            },
            Session,
        )
        .await
    }

    /// The user's devices, most recently seen first (themselves, or devices:read).
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn trusted_devices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<TrustedDeviceConnection> {
        self.guard(ctx, Permission::DevicesRead)?;
        let loader = &ctx.data_unchecked::<Loaders>().user_devices;
        user_page(
            self.model.user_id,
            loader,
            PageArgsIn {
                first,
                after,
                last,
                before,
            },
            TrustedDevice,
        )
        .await
    }

    /// Audit entries the user made, newest first (audit:read).
    #[graphql(complexity = "super::super::pagination::page_complexity(first, last, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<AuditEntryConnection> {
        let principal = request(ctx).principal()?;
        if !principal.can(Permission::AuditRead) {
            return Err(forbidden());
        }
        let loader = &ctx.data_unchecked::<Loaders>().user_audit;
        user_page(
            self.model.user_id,
            loader,
            PageArgsIn {
                first,
                after,
                last,
                before,
            },
            AuditEntry,
        )
        .await
    }
}

impl User {
    /// A per-user list is visible to the user themselves, or with `permission`.
    fn guard(&self, ctx: &Context<'_>, permission: Permission) -> ApiResult<()> {
        let principal = request(ctx).principal()?;
        if principal.user_id == self.model.user_id || principal.can(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden.into())
        }
    }
}

/// Raw paging arguments of a field.
pub struct PageArgsIn {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

async fn user_page<E, P>(
    user_id: Uuid,
    loader: &super::super::batcher::Batcher<UserPageKey, super::super::loaders::UserPageLoader<E>>,
    raw: PageArgsIn,
    wrap: fn(E::Model) -> P::Node,
) -> ApiResult<P>
where
    E: UserOwned + Send + Sync + 'static,
    E::Model: sea_orm::FromQueryResult + Send + Sync + Clone + 'static,
    P: PagedConnection,
{
    let tag = E::LIST.order_tag();
    let args = PageArgs::new(raw.first, raw.after, raw.last, raw.before, tag)?;
    let rows = loader
        .load_one(UserPageKey {
            user_id,
            args: args.clone(),
        })
        .await?
        .unwrap_or_default();
    let page = into_page(rows, tag, E::key_of, &args);
    let count = TotalCount::Grouped(ListCountKey {
        list: E::LIST,
        user_id,
    });
    Ok(P::assemble(page.map(wrap), count))
}
