//! User administration.

use async_graphql::{Context, InputObject, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::guards::require;
use super::super::types::User;
use super::super::types::enums::UserRole;
use crate::auth::permissions::Permission;
use crate::auth::roles::Role;
use crate::domain::users::{self, NewUser, ProfileChange};

#[derive(InputObject)]
pub struct CreateUserInput {
    pub username: String,
    pub email: String,
    pub password: String,
    pub role: UserRole,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    /// Extra permission strings (needs users:roles, and only ones the caller holds).
    #[graphql(default)]
    pub permissions: Vec<String>,
}

#[derive(InputObject)]
pub struct UpdateUserProfileInput {
    pub email: Option<String>,
    /// An empty string clears the field.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
}

#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Creates a user (users:manage) with a role below the caller's own (a super admin
    /// may create any role).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> ApiResult<User> {
        let req = request(ctx);
        let principal = req.principal()?;
        require(principal, Permission::UsersManage)?;
        let role: Role = input.role.into();
        if !principal.outranks(role) {
            return Err(ApiError::Forbidden.into());
        }
        if !input.permissions.is_empty() {
            require(principal, Permission::UsersRoles)?;
            if input
                .permissions
                .iter()
                .filter_map(|p| Permission::parse(p))
                .any(|p| !principal.can(p))
            {
                return Err(ApiError::Forbidden.into());
            }
        }
        let new_user = NewUser {
            username: input.username,
            email: input.email,
            role,
            password: input.password,
            first_name: input.first_name,
            last_name: input.last_name,
            phone_number: input.phone_number,
            permissions: input.permissions,
        };
        let user = users::create_user(req.db()?, &req.actor()?, new_user)
            .await
            .map_err(ApiError::from)?;
        Ok(User::new(user))
    }

    /// Changes profile fields: one's own, or (users:manage) those of a user one outranks.
    async fn update_user_profile(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateUserProfileInput,
    ) -> ApiResult<User> {
        let req = request(ctx);
        let change = ProfileChange {
            email: input.email,
            first_name: input.first_name,
            last_name: input.last_name,
            phone_number: input.phone_number,
        };
        let user = users::update_profile(req.db()?, &req.actor()?, req.principal()?, id, change)
            .await
            .map_err(ApiError::from)?;
        Ok(User::new(user))
    }

    /// Changes a user's role and extra permissions (users:roles); ends their sessions.
    async fn change_user_role(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        role: UserRole,
        #[graphql(default)] permissions: Vec<String>,
    ) -> ApiResult<User> {
        let req = request(ctx);
        let user = users::change_role(
            req.db()?,
            &req.actor()?,
            req.principal()?,
            id,
            role.into(),
            permissions,
        )
        .await
        .map_err(ApiError::from)?;
        Ok(User::new(user))
    }

    /// Locks a user (users:manage), until a time or until unlocked; ends their sessions.
    async fn lock_user(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        until: Option<DateTime<Utc>>,
        reason: Option<String>,
    ) -> ApiResult<User> {
        let req = request(ctx);
        let user = users::lock(req.db()?, &req.actor()?, req.principal()?, id, until, reason)
            .await
            .map_err(ApiError::from)?;
        Ok(User::new(user))
    }

    /// Unlocks a user and clears their failed-login count (users:manage).
    async fn unlock_user(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<User> {
        let req = request(ctx);
        let user = users::unlock(req.db()?, &req.actor()?, req.principal()?, id)
            .await
            .map_err(ApiError::from)?;
        Ok(User::new(user))
    }

    /// Deactivates a user (users:manage); ends their sessions. Users are never deleted.
    async fn deactivate_user(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<User> {
        let req = request(ctx);
        let user = users::deactivate(req.db()?, &req.actor()?, req.principal()?, id)
            .await
            .map_err(ApiError::from)?;
        Ok(User::new(user))
    }
}
