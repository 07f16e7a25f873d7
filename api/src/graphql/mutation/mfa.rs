//! The signed-in user's second factor.

use async_graphql::{Context, Object, SimpleObject};

use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::execute::Services;
use crate::domain::mfa;

/// What an authenticator app needs: scan the QR code, or type the secret.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// Base32 secret, for typing in by hand. Shown only now.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as an SVG QR code, as a data: URI for an `<img src>`.
    pub qr_code: String,
}

#[derive(Default)]
pub struct MfaMutation;

#[Object]
impl MfaMutation {
    /// Starts TOTP enrolment; confirm with confirmTotp.
    async fn enroll_totp(&self, ctx: &Context<'_>) -> ApiResult<TotpEnrollment> {
        let req = request(ctx);
        let services = ctx.data_unchecked::<std::sync::Arc<Services>>();
        let issuer = "UltraCore";
        let e = mfa::enroll_totp(
            req.db()?,
            &req.actor()?,
            req.principal()?,
            &services.data_keys,
            issuer,
        )
        .await
        .map_err(ApiError::from)?;
        Ok(TotpEnrollment {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
            qr_code: e.qr_svg_data_uri,
        })
    }

    /// Turns TOTP on with a code from the app. A wrong code counts toward the lockout.
    async fn confirm_totp(&self, ctx: &Context<'_>, code: String) -> ApiResult<bool> {
        let req = request(ctx);
        let services = ctx.data_unchecked::<std::sync::Arc<Services>>();
        let result = mfa::confirm_totp(
            req.db()?,
            &req.actor()?,
            req.principal()?,
            &services.data_keys,
            &code,
        )
        .await;
        settle(ctx, result).await
    }

    /// Turns TOTP off; needs a fresh code (a wrong one counts toward the lockout).
    /// Backup codes are deleted with it.
    async fn disable_totp(&self, ctx: &Context<'_>, code: String) -> ApiResult<bool> {
        let req = request(ctx);
        let services = ctx.data_unchecked::<std::sync::Arc<Services>>();
        let result = mfa::disable_totp(
            req.db()?,
            &req.actor()?,
            req.principal()?,
            &services.data_keys,
            &code,
        )
        .await;
        settle(ctx, result).await
    }

    /// Ten single-use backup codes, shown only now; any earlier set stops working.
    async fn generate_backup_codes(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        let req = request(ctx);
        Ok(
            mfa::generate_backup_codes(req.db()?, &req.actor()?, req.principal()?)
                .await
                .map_err(ApiError::from)?,
        )
    }
}

/// Turns a code check's result into the reply, recording a wrong code first (in its own
/// transaction: the operation itself rolls back).
async fn settle(ctx: &Context<'_>, result: Result<(), crate::domain::DomainError>) -> ApiResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(crate::domain::DomainError::WrongCode) => {
            let req = request(ctx);
            let services = ctx.data_unchecked::<std::sync::Arc<Services>>();
            let principal = req.principal()?;
            crate::auth::login::record_reauthentication_failure(
                &services.db,
                services.config.database.statement_timeout_ms,
                principal.tenant_id,
                principal.user_id,
                crate::auth::login::Reauthentication::MfaCode,
                req.client.ip,
                req.client.user_agent.clone(),
            )
            .await;
            Err(ApiError::from(crate::domain::DomainError::WrongCode).into())
        }
        Err(other) => Err(ApiError::from(other).into()),
    }
}
