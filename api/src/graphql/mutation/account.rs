//! The password lifecycle and the account's email (see `auth::account`).

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::super::context::{RequestContext, request};
use super::super::errors::{ApiError, ApiResult};
use super::super::execute::Services;
use crate::auth::account::{
    self, AccountError, AccountSettings, Origin, PasswordChange, PasswordReset, Registration,
};
use crate::auth::jwt::{TokenSubject, TokenType};
use crate::auth::login::{Reauthentication, record_reauthentication_failure};
use crate::auth::sessions::{self, NewSession};

fn settings(services: &Services) -> AccountSettings<'_> {
    let auth = &services.config.auth;
    AccountSettings {
        data_keys: &services.data_keys,
        statement_timeout_ms: services.config.database.statement_timeout_ms,
        reset_token_ttl_secs: auth.reset_token_ttl_secs,
        verification_token_ttl_secs: auth.verification_token_ttl_secs,
        link_base_url: auth.link_base_url.as_deref(),
    }
}

fn origin(req: &RequestContext) -> Origin {
    Origin {
        ip: req.client.ip.map(|ip| ip.to_string()),
        user_agent: req.client.user_agent.clone(),
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::WrongPassword | AccountError::BadToken | AccountError::WrongSecondFactor => {
                ApiError::BadUserInput(err.to_string())
            }
            AccountError::SecondFactorRequired => ApiError::MfaRequired,
            AccountError::RegistrationClosed => ApiError::Forbidden,
            AccountError::Domain(e) => e.into(),
            AccountError::Password(e) => crate::domain::DomainError::Password(e).into(),
            AccountError::Db(e) => e.into(),
        }
    }
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
}

/// The result of a password change.
#[derive(SimpleObject)]
pub struct PasswordChangePayload {
    /// How many other sessions were signed out.
    pub ended_sessions: i64,
    /// Set only when the change left the limited session of an expired password: a new
    /// full session, so the client need not sign in again.
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token from the reset message.
    pub token: String,
    pub new_password: String,
    /// Required when the account has two-factor authentication.
    pub totp_code: Option<String>,
    pub backup_code: Option<String>,
}

#[derive(InputObject)]
pub struct RegisterInput {
    /// The tenant's slug.
    pub tenant: String,
    pub username: String,
    pub email: String,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Changes the caller's password; needs the current one (a wrong one counts toward
    /// the lockout). Every other session is signed out. The only operation a caller
    /// whose password expired may run.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> ApiResult<PasswordChangePayload> {
        let req = request(ctx);
        let services = ctx.data_unchecked::<Arc<Services>>();
        let principal = req.principal()?;
        let txn = req.db()?;
        let leaving_expired = principal.password_change_only;
        let change = PasswordChange {
            user_id: principal.user_id,
            session_id: principal.session_id,
            keep_session: !leaving_expired,
            current_password: &input.current_password,
            new_password: &input.new_password,
        };
        let ended = match account::change_password(txn, &settings(services), change, &origin(req)).await {
            Ok(ended) => ended,
            Err(AccountError::WrongPassword) => {
                record_reauthentication_failure(
                    &services.db,
                    services.config.database.statement_timeout_ms,
                    principal.tenant_id,
                    principal.user_id,
                    Reauthentication::Password,
                    req.client.ip,
                    req.client.user_agent.clone(),
                )
                .await;
                return Err(ApiError::from(AccountError::WrongPassword).into());
            }
            Err(other) => return Err(ApiError::from(other).into()),
        };
        let mut payload = PasswordChangePayload {
            ended_sessions: ended as i64,
            access_token: None,
            refresh_token: None,
            expires_at: None,
        };
        if leaving_expired {
            let config = &services.config.auth;
            let (session_id, refresh_token) = sessions::open(
                txn,
                NewSession {
                    tenant_id: principal.tenant_id,
                    user_id: principal.user_id,
                    lifetime_secs: config.refresh_ttl_secs,
                    device_fingerprint: None,
                    ip: req.client.ip.map(|ip| ip.to_string()),
                    user_agent: req.client.user_agent.as_deref(),
                    mfa_verified_at: None,
                },
            )
            .await
            .map_err(ApiError::from)?;
            let (access_token, claims) = services
                .keys
                .issue(
                    TokenSubject {
                        user_id: principal.user_id,
                        tenant_id: principal.tenant_id,
                        // Claims only: every request re-reads role and permissions.
                        role: principal.role.as_str().to_string(),
                        permissions: Vec::new(),
                        session_id,
                    },
                    TokenType::Access,
                    config.access_ttl_secs,
                )
                .map_err(ApiError::internal)?;
            payload.access_token = Some(access_token);
            payload.refresh_token = Some(refresh_token);
            payload.expires_at = DateTime::from_timestamp(claims.exp as i64, 0);
        }
        Ok(payload)
    }

    /// Sends a password-reset link to the address if it belongs to an active user of
    /// the tenant. Always answers true: the reply reveals nothing about the address.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        email: String,
    ) -> ApiResult<bool> {
        let services = ctx.data_unchecked::<Arc<Services>>();
        account::request_password_reset(
            &services.db,
            &settings(services),
            &tenant,
            &email,
            &origin(request(ctx)),
        )
        .await
        .map_err(ApiError::from)?;
        Ok(true)
    }

    /// Sets a new password with the token from a reset message (once, before it
    /// expires). An account with two-factor authentication must also give a code
    /// (MFA_REQUIRED otherwise). Every session is signed out.
    async fn reset_password(&self, ctx: &Context<'_>, input: ResetPasswordInput) -> ApiResult<bool> {
        let services = ctx.data_unchecked::<Arc<Services>>();
        let reset = PasswordReset {
            token: &input.token,
            new_password: &input.new_password,
            totp_code: input.totp_code.as_deref(),
            backup_code: input.backup_code.as_deref(),
        };
        account::reset_password(&services.db, &settings(services), reset, &origin(request(ctx)))
            .await
            .map_err(ApiError::from)?;
        Ok(true)
    }

    /// Sends a link to confirm the caller's email address. False when the address is
    /// already verified or enough links are on their way.
    async fn request_email_verification(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let req = request(ctx);
        let services = ctx.data_unchecked::<Arc<Services>>();
        let sent =
            account::request_email_verification(req.db()?, &settings(services), req.principal()?.user_id)
                .await
                .map_err(ApiError::from)?;
        Ok(sent)
    }

    /// Confirms an email address with the token from the verification message.
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> ApiResult<bool> {
        let services = ctx.data_unchecked::<Arc<Services>>();
        account::verify_email(&services.db, &settings(services), &token, &origin(request(ctx)))
            .await
            .map_err(ApiError::from)?;
        Ok(true)
    }

    /// Opens a customer account in a tenant that allows self-service registration, and
    /// sends a link to confirm the email address. FORBIDDEN where registration is off.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> ApiResult<bool> {
        let services = ctx.data_unchecked::<Arc<Services>>();
        let registration = Registration {
            tenant: &input.tenant,
            username: &input.username,
            email: &input.email,
            password: &input.password,
            first_name: input.first_name.as_deref(),
            last_name: input.last_name.as_deref(),
        };
        account::register(
            &services.db,
            &settings(services),
            registration,
            &origin(request(ctx)),
        )
        .await
        .map_err(ApiError::from)?;
        Ok(true)
    }
}
