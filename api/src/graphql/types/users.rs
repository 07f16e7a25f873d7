//! Users, and the per-user lists reachable from one.

use std::sync::Arc;

use async_graphql::{Context, Object};
use chrono::{DateTime, Utc};
use entity::users;
use ipnetwork::IpNetwork;
use rust_decimal::Decimal;
use sea_orm::DerivePartialModel;
use uuid::Uuid;

use super::super::connection::{
    AuditEntryConnection, PagedConnection, SecurityEventConnection, SessionConnection, TotalCount,
    TrustedDeviceConnection,
};
use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::guards::can_see_user;
use super::super::loaders::{self, ListCountKey, UserList, UserOwned, UserPageKey};
use super::super::pagination::{PageArgs, into_page};
use super::super::scalars::IpAddress;
use super::enums::{DbEnum, UserRole};
use super::{AuditEntry, SecurityEvent, Session, TrustedDevice, forbidden};
use crate::auth::permissions::Permission;

/// A user's row as the API serves it: every column but the secrets (`password_hash`,
/// `mfa_secret` and `mfa_secret_key_id`, `totp_last_step`) and `lockout_count`. Queries
/// select these columns only, so the secrets never leave PostgreSQL to answer one.
#[derive(Clone, Debug, DerivePartialModel)]
#[sea_orm(entity = "users::Entity")]
pub struct UserRow {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub username: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub role: String,
    pub permissions: Vec<String>,
    pub is_active: bool,
    pub is_locked: bool,
    pub is_verified: bool,
    pub mfa_enabled: bool,
    pub password_changed_at: DateTime<Utc>,
    pub password_expires_at: Option<DateTime<Utc>>,
    pub failed_login_attempts: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub trust_score: Decimal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_login_ip: Option<IpNetwork>,
}

impl From<users::Model> for UserRow {
    fn from(m: users::Model) -> UserRow {
        UserRow {
            user_id: m.user_id,
            tenant_id: m.tenant_id,
            username: m.username,
            email: m.email,
            first_name: m.first_name,
            last_name: m.last_name,
            phone_number: m.phone_number,
            role: m.role,
            permissions: m.permissions,
            is_active: m.is_active,
            is_locked: m.is_locked,
            is_verified: m.is_verified,
            mfa_enabled: m.mfa_enabled,
            password_changed_at: m.password_changed_at,
            password_expires_at: m.password_expires_at,
            failed_login_attempts: m.failed_login_attempts,
            locked_until: m.locked_until,
            trust_score: m.trust_score,
            created_at: m.created_at,
            updated_at: m.updated_at,
            last_login_at: m.last_login_at,
            last_login_ip: m.last_login_ip,
        }
    }
}

/// The columns of a user that anyone who reaches the user sees: what the users loader
/// reads when the selection asks for nothing else (see [`User::BRIEF_FIELDS`]).
#[derive(Clone, Debug, DerivePartialModel)]
#[sea_orm(entity = "users::Entity")]
pub struct UserBrief {
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What was read of a user.
#[derive(Clone, Debug)]
enum Columns {
    Brief(Arc<UserBrief>),
    Full(Arc<UserRow>),
}

/// A user of the caller's tenant. Personal and security details are visible to the user
/// themselves and to holders of users:read; others who reach a user (through an event,
/// say) see only its id, username and role.
pub struct User {
    columns: Columns,
    /// Shown to the user themselves outside a request principal (the login payload).
    signed_in: bool,
}

impl User {
    /// The fields served from [`UserBrief`] alone: a selection of nothing else lets the
    /// loader read those five columns (the per-user lists need only the id). Any other
    /// field, including one added later and not listed here, reads the whole row.
    pub const BRIEF_FIELDS: &'static [&'static str] = &[
        "__typename",
        "id",
        "username",
        "role",
        "createdAt",
        "updatedAt",
        "securityEvents",
        "sessions",
        "trustedDevices",
        "auditLog",
        "backupCodesRemaining",
    ];

    pub fn new(model: users::Model) -> User {
        User::full(Arc::new(model.into()))
    }

    pub fn full(row: Arc<UserRow>) -> User {
        User {
            columns: Columns::Full(row),
            signed_in: false,
        }
    }

    pub fn brief(row: Arc<UserBrief>) -> User {
        User {
            columns: Columns::Brief(row),
            signed_in: false,
        }
    }

    /// The user who has just signed in, as the login payload shows them to themselves.
    pub fn signed_in(model: users::Model) -> User {
        User {
            columns: Columns::Full(Arc::new(model.into())),
            signed_in: true,
        }
    }

    pub fn user_id(&self) -> Uuid {
        match &self.columns {
            Columns::Brief(b) => b.user_id,
            Columns::Full(f) => f.user_id,
        }
    }

    /// Whether the caller may see the user's personal and security details.
    fn allowed(&self, ctx: &Context<'_>) -> ApiResult<()> {
        if self.signed_in {
            return Ok(());
        }
        let principal = request(ctx).principal()?;
        if can_see_user(principal, self.user_id()) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    /// The personal details, once the caller may see them.
    fn personal(&self, ctx: &Context<'_>) -> ApiResult<&UserRow> {
        self.allowed(ctx)?;
        match &self.columns {
            Columns::Full(row) => Ok(row),
            // The loader reads the whole row whenever the selection has a field outside
            // BRIEF_FIELDS; getting here means that list is wrong.
            Columns::Brief(_) => Err(ApiError::internal("user details selected but not loaded").into()),
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> Uuid {
        self.user_id()
    }
    async fn username(&self) -> &str {
        match &self.columns {
            Columns::Brief(b) => &b.username,
            Columns::Full(f) => &f.username,
        }
    }
    async fn role(&self) -> ApiResult<UserRole> {
        let role = match &self.columns {
            Columns::Brief(b) => &b.role,
            Columns::Full(f) => &f.role,
        };
        Ok(UserRole::from_db(role)?)
    }
    async fn email(&self, ctx: &Context<'_>) -> ApiResult<&str> {
        let row = self.personal(ctx)?;
        Ok(&row.email)
    }
    async fn first_name(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        let row = self.personal(ctx)?;
        Ok(row.first_name.as_deref())
    }
    async fn last_name(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        let row = self.personal(ctx)?;
        Ok(row.last_name.as_deref())
    }
    async fn phone_number(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        let row = self.personal(ctx)?;
        Ok(row.phone_number.as_deref())
    }
    /// Permission strings granted beyond the role.
    async fn permissions(&self, ctx: &Context<'_>) -> ApiResult<&[String]> {
        let row = self.personal(ctx)?;
        Ok(&row.permissions)
    }
    async fn is_active(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let row = self.personal(ctx)?;
        Ok(row.is_active)
    }
    async fn is_locked(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let row = self.personal(ctx)?;
        Ok(row.is_locked)
    }
    async fn is_verified(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let row = self.personal(ctx)?;
        Ok(row.is_verified)
    }
    async fn mfa_enabled(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let row = self.personal(ctx)?;
        Ok(row.mfa_enabled)
    }
    async fn password_changed_at(&self, ctx: &Context<'_>) -> ApiResult<DateTime<Utc>> {
        let row = self.personal(ctx)?;
        Ok(row.password_changed_at)
    }
    async fn password_expires_at(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        let row = self.personal(ctx)?;
        Ok(row.password_expires_at)
    }
    async fn failed_login_attempts(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        let row = self.personal(ctx)?;
        Ok(row.failed_login_attempts)
    }
    async fn locked_until(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        let row = self.personal(ctx)?;
        Ok(row.locked_until)
    }
    /// 0 to 100: how much the user's history earns trust.
    async fn trust_score(&self, ctx: &Context<'_>) -> ApiResult<Decimal> {
        let row = self.personal(ctx)?;
        Ok(row.trust_score)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        match &self.columns {
            Columns::Brief(b) => b.created_at,
            Columns::Full(f) => f.created_at,
        }
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        match &self.columns {
            Columns::Brief(b) => b.updated_at,
            Columns::Full(f) => f.updated_at,
        }
    }
    async fn last_login_at(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        let row = self.personal(ctx)?;
        Ok(row.last_login_at)
    }
    async fn last_login_ip(&self, ctx: &Context<'_>) -> ApiResult<Option<IpAddress>> {
        let row = self.personal(ctx)?;
        Ok(row.last_login_ip.map(IpAddress::from))
    }
    /// Unused MFA backup codes (the codes themselves are never shown again).
    async fn backup_codes_remaining(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        self.allowed(ctx)?;
        let key = ListCountKey {
            list: UserList::UnusedBackupCodes,
            user_id: self.user_id(),
        };
        Ok(loaders::of(ctx)?.list_counts.load_one(key).await?.unwrap_or(0))
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
        let loader = &loaders::of(ctx)?.user_events;
        user_page(
            self.user_id(),
            loader,
            PageArgsIn {
                first,
                after,
                last,
                before,
            },
            SecurityEvent::new,
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
        let loader = &loaders::of(ctx)?.user_sessions;
        user_page(
            self.user_id(),
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
        let loader = &loaders::of(ctx)?.user_devices;
        user_page(
            self.user_id(),
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
        let loader = &loaders::of(ctx)?.user_audit;
        user_page(
            self.user_id(),
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
        if principal.user_id == self.user_id() || principal.can(permission) {
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
