//! Scoring of sensitive mutations: the operations a hijacked session would use to take
//! an account over for good (change the password or email, turn MFA off, mint backup
//! codes, trust a device, raise a role, create or unlock users).
//!
//! Before such a mutation runs, its caller's signals are gathered and scored like a
//! sign-in's (new address or network, intelligence hits, impossible travel, user agent,
//! trust; device and failures as the session knows them), and a `sensitive_action`
//! security event records the assessment in a transaction of its own, so it survives the
//! mutation failing. The decision:
//! - deny or block: the mutation is refused (`FORBIDDEN`);
//! - challenge: a session that did not pass MFA at sign-in, of a user who has MFA, is
//!   refused with `MFA_REQUIRED` (sign in again with the second factor); otherwise allowed;
//! - allow: runs.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::{Action, RiskModel, signals};
use crate::auth::permissions::Principal;
use crate::db::{Access, TenantScope, begin_tenant_transaction};
use crate::graphql::context::ClientInfo;
use crate::graphql::errors::ApiError;
use crate::security::events::{NewSecurityEvent, record};

/// Root fields scored before they run.
pub const SENSITIVE_FIELDS: &[&str] = &[
    "changePassword",
    "updateUserProfile",
    "disableTotp",
    "generateBackupCodes",
    "trustDevice",
    "changeUserRole",
    "createUser",
    "unlockUser",
    "revokeDeviceTrust",
];

/// The sensitive fields among an operation's root fields.
pub fn sensitive_fields(root_fields: &[(String, u32)]) -> Vec<&str> {
    root_fields
        .iter()
        .map(|(field, _)| field.as_str())
        .filter(|field| SENSITIVE_FIELDS.contains(field))
        .collect()
}

/// Scores the caller's sensitive mutation and records the assessment; an error refuses it.
/// Runs before the operation's transaction opens, so one request never holds two pooled
/// connections at once.
pub async fn assess(
    db: &DatabaseConnection,
    statement_timeout_ms: u64,
    model: &dyn RiskModel,
    principal: &Principal,
    client: &ClientInfo,
    fields: &[&str],
) -> Result<(), ApiError> {
    let decision = async {
        let txn = begin_tenant_transaction(
            db,
            TenantScope::user(principal.tenant_id, principal.user_id),
            Access::ReadWrite,
            statement_timeout_ms,
        )
        .await?;
        let caller = caller(&txn, principal).await?;
        let Some(caller) = caller else {
            // No live session: the operation's own session check refuses it.
            txn.rollback().await?;
            return Ok(None);
        };
        let signals = signals::gather(
            &txn,
            &signals::Attempt {
                tenant_id: principal.tenant_id,
                user_id: Some(principal.user_id),
                email: Some(&caller.email),
                ip: client.ip,
                device_fingerprint: caller.device_fingerprint.as_deref(),
                user_agent: client.user_agent.as_deref(),
                geo: client.geo.as_ref(),
                user_trust: Some(caller.trust),
                now: Utc::now(),
                failed_as: None,
            },
        )
        .await?;
        let policy = crate::domain::tenants::policy(&txn, principal.tenant_id).await?;
        let assessment = model.assess(&signals, &policy.risk);
        let refusal = match assessment.action {
            Action::Allow => None,
            Action::Challenge if caller.session_passed_mfa || !caller.mfa_enabled => None,
            Action::Challenge => Some(ApiError::MfaRequired),
            _ => Some(ApiError::Forbidden),
        };
        let action = match (&refusal, assessment.action) {
            (None, Action::Challenge) => "allow",
            (Some(ApiError::MfaRequired), _) => "challenge",
            (Some(_), _) => "deny",
            (None, _) => "allow",
        };
        let description = format!(
            "{} {}",
            fields.join(", "),
            if refusal.is_some() {
                "refused by the risk engine"
            } else {
                "scored"
            }
        );
        record(
            &txn,
            NewSecurityEvent {
                tenant_id: principal.tenant_id,
                user_id: Some(principal.user_id),
                event_type: "sensitive_action",
                category: "account",
                severity: if refusal.is_some() { "medium" } else { "low" },
                action,
                description: &description,
                ip: client.ip.map(|ip| ip.to_string()),
                user_agent: client.user_agent.clone(),
                risk: Some(&assessment),
                details: Some(serde_json::json!({ "fields": fields })),
                geolocation: client.geo.as_ref().map(crate::geo::GeoPoint::to_json),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        Ok::<_, DbErr>(refusal)
    }
    .await
    .map_err(ApiError::internal)?;
    match decision {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

/// What the assessment needs to know about the caller and their session.
struct Caller {
    email: String,
    trust: f64,
    mfa_enabled: bool,
    session_passed_mfa: bool,
    device_fingerprint: Option<String>,
}

async fn caller<C: ConnectionTrait>(txn: &C, principal: &Principal) -> Result<Option<Caller>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select u.email, u.trust_score::float8 as trust, u.mfa_enabled, \
                    (select bool_or(r.mfa_verified_at is not null) from refresh_tokens r \
                      where r.family_id = $2 and r.user_id = u.user_id) as passed_mfa, \
                    (select r.device_fingerprint from refresh_tokens r \
                      where r.family_id = $2 and r.user_id = u.user_id \
                      order by r.created_at desc limit 1) as device_fingerprint \
               from users u where u.user_id = $1 \
                and exists (select 1 from refresh_tokens r \
                             where r.family_id = $2 and r.user_id = u.user_id \
                               and r.revoked_at is null and r.expires_at > now())",
            [principal.user_id.into(), principal.session_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Caller {
        email: row.try_get("", "email")?,
        trust: row.try_get("", "trust")?,
        mfa_enabled: row.try_get("", "mfa_enabled")?,
        session_passed_mfa: row.try_get::<Option<bool>>("", "passed_mfa")?.unwrap_or(false),
        device_fingerprint: row.try_get("", "device_fingerprint")?,
    }))
}
