//! Sign-in.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::execute::Services;
use super::super::types::User;
use crate::auth::login::{self, LoginAttempt, LoginError, LoginSettings};

#[derive(InputObject)]
pub struct LoginInput {
    /// The tenant's slug.
    pub tenant: String,
    /// Username or email (case-insensitive).
    pub username: String,
    pub password: String,
    /// Completes a sign-in that answered mfaRequired (arrives with MFA).
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
    /// The access token can only change the password.
    pub password_expired: bool,
    pub user: Option<User>,
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
        };
        let attempt = LoginAttempt {
            tenant: input.tenant,
            username: input.username,
            password: input.password,
            device_fingerprint: fingerprint,
            ip: client.ip,
            user_agent: client.user_agent.clone(),
        };
        match login::login(&services.db, &settings, attempt).await {
            Ok(ok) => Ok(AuthPayload {
                access_token: ok.access_token,
                refresh_token: ok.refresh_token,
                expires_at: ok.expires_at,
                mfa_required: ok.mfa_required,
                password_expired: ok.password_expired,
                user: Some(User::signed_in(ok.user)),
            }),
            Err(LoginError::Refused(reason)) => {
                tracing::info!(reason, "login refused");
                Err(ApiError::login_failed().into())
            }
            Err(LoginError::Internal(cause)) => Err(ApiError::internal(cause).into()),
        }
    }
}
