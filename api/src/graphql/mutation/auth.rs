//! Sign-in.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::execute::Services;
use super::super::types::User;
use uuid::Uuid;

use super::super::types::Session;
use crate::auth::hashing::Saturated;
use crate::auth::login::{self, LoginAttempt, LoginError, LoginSettings};
use crate::auth::mfa_policy::DeviceTrustPolicy;
use crate::auth::sessions::{self, ClientContext, RefreshError, RefreshSettings};
use crate::domain;

#[derive(InputObject)]
pub struct LoginInput {
    /// The tenant's slug.
    pub tenant: String,
    /// Username or email (case-insensitive).
    pub username: String,
    pub password: String,
    /// Completes a sign-in that answered mfaRequired.
    pub totp_code: Option<String>,
    pub backup_code: Option<String>,
    pub device_fingerprint: Option<String>,
}

/// The result of a sign-in.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for `Authorization: Bearer ...`; short-lived.
    pub access_token: Option<String>,
    /// Opaque; stored only as a hash.
    pub refresh_token: Option<String>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// A second factor is needed: call login again with totpCode or backupCode.
    pub mfa_required: bool,
    /// The access token can only change the password (no refresh token is issued).
    pub password_expired: bool,
    pub user: Option<User>,
    /// The device this sign-in came from, when a deviceFingerprint was given.
    pub device_id: Option<Uuid>,
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Signs in. Every failure, whatever its cause, is the same UNAUTHENTICATED error.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> ApiResult<AuthPayload> {
        let services = ctx.data_unchecked::<std::sync::Arc<Services>>();
        let client = &request(ctx).client;
        let fingerprint = input
            .device_fingerprint
            .map(|f| f.chars().filter(|c| !c.is_control()).take(255).collect());
        let settings = LoginSettings {
            keys: &services.keys,
            access_ttl_secs: services.config.auth.access_ttl_secs,
            refresh_ttl_secs: services.config.auth.refresh_ttl_secs,
            statement_timeout_ms: services.config.database.statement_timeout_ms,
            dummy_hash: &services.dummy_hash,
            data_keys: &services.data_keys,
            mfa_policy: &DeviceTrustPolicy,
            risk_model: &crate::risk::RulesModel,
        };
        let attempt = LoginAttempt {
            tenant: input.tenant,
            username: input.username,
            password: input.password,
            totp_code: input.totp_code,
            backup_code: input.backup_code,
            device_fingerprint: fingerprint,
            ip: client.ip,
            user_agent: client.user_agent.clone(),
            geo: client.geo.clone(),
        };
        let result = login::login(&services.db, &settings, attempt).await;
        let outcome = match &result {
            Ok(ok) if ok.mfa_required => "mfa_required",
            Ok(ok) if ok.password_expired => "password_expired",
            Ok(_) => "success",
            Err(LoginError::Refused(_)) => "refused",
            Err(LoginError::Throttled { .. }) | Err(LoginError::Busy) => "rate_limited",
            Err(LoginError::Internal(_)) => "error",
        };
        metrics::counter!("ultracore_logins_total", "outcome" => outcome).increment(1);
        match result {
            Ok(ok) => Ok(AuthPayload {
                access_token: ok.access_token,
                refresh_token: ok.refresh_token,
                expires_at: ok.expires_at,
                mfa_required: ok.mfa_required,
                password_expired: ok.password_expired,
                // The password alone (MFA still pending) earns no view of the account.
                user: (!ok.mfa_required).then(|| User::signed_in(ok.user)),
                device_id: ok.device_id,
            }),
            Err(LoginError::Refused(reason)) => {
                tracing::info!(reason, "login refused");
                Err(ApiError::login_failed().into())
            }
            Err(LoginError::Throttled { retry_after_secs }) => {
                tracing::info!("login refused: address throttled");
                Err(ApiError::RateLimited { retry_after_secs }.into())
            }
            Err(LoginError::Busy) => Err(ApiError::RateLimited {
                retry_after_secs: Saturated::RETRY_AFTER.as_secs(),
            }
            .into()),
            Err(LoginError::Internal(cause)) => Err(ApiError::internal(cause).into()),
        }
    }

    /// Exchanges a refresh token for a new access token and a new refresh token (the old
    /// one stops working). Presenting a refresh token twice ends the whole session.
    async fn refresh_session(&self, ctx: &Context<'_>, refresh_token: String) -> ApiResult<AuthPayload> {
        let services = ctx.data_unchecked::<std::sync::Arc<Services>>();
        let client = &request(ctx).client;
        let settings = RefreshSettings {
            keys: &services.keys,
            risk_model: &crate::risk::RulesModel,
            access_ttl_secs: services.config.auth.access_ttl_secs,
            idle_secs: services.config.auth.refresh_idle_secs,
            statement_timeout_ms: services.config.database.statement_timeout_ms,
        };
        let context = ClientContext {
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            geo: client.geo.clone(),
        };
        match sessions::refresh(&services.db, &settings, &refresh_token, &context).await {
            Ok(ok) => Ok(AuthPayload {
                access_token: Some(ok.access_token),
                refresh_token: Some(ok.refresh_token),
                expires_at: ok.expires_at,
                mfa_required: false,
                password_expired: false,
                user: Some(User::signed_in(ok.user)),
                device_id: None,
            }),
            Err(RefreshError::Refused(reason)) => {
                tracing::info!(reason, "refresh refused");
                Err(ApiError::Unauthenticated("invalid or expired refresh token").into())
            }
            Err(RefreshError::Internal(cause)) => Err(ApiError::internal(cause).into()),
        }
    }

    /// Ends the caller's current session; its access and refresh tokens stop working.
    async fn logout(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let req = request(ctx);
        domain::sessions::logout(req.db()?, &req.actor()?, req.principal()?)
            .await
            .map_err(ApiError::from)?;
        Ok(true)
    }

    /// Ends one session: one's own, or (users:manage) one of a user ranked below.
    async fn revoke_session(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<Session> {
        let req = request(ctx);
        let token = domain::sessions::revoke_session(req.db()?, &req.actor()?, req.principal()?, id)
            .await
            .map_err(ApiError::from)?;
        Ok(Session(token))
    }

    /// Ends all of the caller's sessions (or all but the current one); returns how many
    /// tokens were revoked.
    async fn revoke_all_sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] keep_current: bool,
    ) -> ApiResult<i64> {
        let req = request(ctx);
        let revoked =
            domain::sessions::revoke_all_mine(req.db()?, &req.actor()?, req.principal()?, keep_current)
                .await
                .map_err(ApiError::from)?;
        Ok(revoked as i64)
    }
}
