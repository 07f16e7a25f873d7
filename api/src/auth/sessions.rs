//! Sessions: refresh-token rotation with reuse detection (RFC 9700 §4.14.2), idle and
//! absolute expiry, logout and revocation.
//!
//! A session is a family of refresh tokens. Each use of the family's current token
//! replaces it (one atomic UPDATE: of two concurrent uses only one can win). Presenting
//! a token that was already replaced means two parties hold the family (a stolen
//! token, or its owner after the thief): the whole family is revoked, which also kills
//! the access tokens tied to it (their `sid`), and a security event records it.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, Statement};
use uuid::Uuid;

use super::jwt::{JwtKeys, TokenSubject, TokenType};
use super::tokens;
use crate::db::{Access, TenantScope, begin_tenant_transaction};

/// Settings the refresh needs.
pub struct RefreshSettings<'a> {
    pub keys: &'a JwtKeys,
    /// Scores the refresh (recorded with its event).
    pub risk_model: &'a dyn crate::risk::RiskModel,
    pub access_ttl_secs: u64,
    pub idle_secs: u64,
    pub statement_timeout_ms: u64,
}

/// A successful refresh: a new access token and the family's new refresh token.
pub struct Refreshed {
    pub user: users::Model,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a refresh failed (all of them reach the client as one generic error).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("refresh refused: {0}")]
    Refused(&'static str),
    #[error("refresh error: {0}")]
    Internal(String),
}

impl From<DbErr> for RefreshError {
    fn from(e: DbErr) -> Self {
        RefreshError::Internal(e.to_string())
    }
}

/// A session to open at sign-in (or after an expired password was changed).
pub struct NewSession<'a> {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub lifetime_secs: u64,
    pub device_fingerprint: Option<&'a str>,
    pub ip: Option<String>,
    pub user_agent: Option<&'a str>,
    /// When the sign-in passed a second factor.
    pub mfa_verified_at: Option<DateTime<Utc>>,
}

/// Opens a session: the first refresh token of a new family. Returns the session id
/// (the family id, an access token's `sid`) and the refresh token.
pub async fn open<C: ConnectionTrait>(txn: &C, session: NewSession<'_>) -> Result<(Uuid, String), DbErr> {
    let session_id = Uuid::now_v7();
    let refresh_token = tokens::new_tenant_token(session.tenant_id);
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into refresh_tokens (token_id, family_id, tenant_id, user_id, token_hash, expires_at, \
                                     device_fingerprint, ip_address, user_agent, mfa_verified_at) \
         values ($1, $1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7::inet, $8, $9)",
        [
            session_id.into(),
            session.tenant_id.into(),
            session.user_id.into(),
            tokens::token_hash(&refresh_token).into(),
            (session.lifetime_secs as f64).into(),
            session.device_fingerprint.map(str::to_owned).into(),
            session.ip.into(),
            session.user_agent.map(str::to_owned).into(),
            session.mfa_verified_at.into(),
        ],
    ))
    .await?;
    Ok((session_id, refresh_token))
}

/// Where the request came from, for the new token's row and for security events.
pub struct ClientContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub geo: Option<crate::geo::GeoPoint>,
}

pub async fn refresh(
    db: &DatabaseConnection,
    settings: &RefreshSettings<'_>,
    token: &str,
    client: &ClientContext,
) -> Result<Refreshed, RefreshError> {
    let tenant_id = tokens::tenant_of_token(token).ok_or(RefreshError::Refused("malformed token"))?;
    let hash = tokens::token_hash(token);
    let txn = begin_tenant_transaction(
        db,
        TenantScope::tenant(tenant_id),
        Access::ReadWrite,
        settings.statement_timeout_ms,
    )
    .await?;
    let new_id = Uuid::now_v7();
    // The rotation itself: only a current, unexpired, recently used token matches, and
    // the row lock makes concurrent uses of one token queue here; after the winner
    // commits, the others no longer match.
    let rotated = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update refresh_tokens set revoked_at = now(), last_used_at = now(), replaced_by = $1 \
              where token_hash = $2 and revoked_at is null and expires_at > now() \
                and created_at > now() - make_interval(secs => $3) \
              returning family_id, user_id, expires_at, device_fingerprint, mfa_verified_at",
            [
                new_id.into(),
                hash.clone().into(),
                (settings.idle_secs as f64).into(),
            ],
        ))
        .await?;
    let Some(row) = rotated else {
        drop(txn);
        detect_reuse(db, settings, tenant_id, &hash, client).await;
        return Err(RefreshError::Refused(
            "unknown, expired, idle or already used token",
        ));
    };
    let family_id: Uuid = row.try_get("", "family_id")?;
    let user_id: Uuid = row.try_get("", "user_id")?;
    let expires_at: DateTime<Utc> = row.try_get("", "expires_at")?;
    let fingerprint: Option<String> = row.try_get("", "device_fingerprint")?;
    let mfa_verified_at: Option<DateTime<Utc>> = row.try_get("", "mfa_verified_at")?;

    let user = users::Entity::find_by_id(user_id).one(&txn).await?;
    let usable = user.as_ref().is_some_and(|u| {
        u.is_active && !u.is_locked && u.locked_until.is_none_or(|until| until <= Utc::now())
    });
    let Some(user) = user.filter(|_| usable) else {
        revoke_family(&txn, family_id).await?;
        txn.commit().await?;
        return Err(RefreshError::Refused("user deactivated or locked"));
    };

    // The family keeps its absolute expiry: rotation never extends a session.
    let refresh_token = tokens::new_tenant_token(tenant_id);
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into refresh_tokens (token_id, family_id, tenant_id, user_id, token_hash, expires_at, \
                                     device_fingerprint, ip_address, user_agent, mfa_verified_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8::inet, $9, $10)",
        [
            new_id.into(),
            family_id.into(),
            tenant_id.into(),
            user_id.into(),
            tokens::token_hash(&refresh_token).into(),
            expires_at.into(),
            fingerprint.into(),
            client.ip.clone().into(),
            client.user_agent.clone().into(),
            mfa_verified_at.into(),
        ],
    ))
    .await?;
    // Scored like a sign-in (the explanation is recorded; a refresh is not refused on
    // risk alone: the session already passed sign-in, and revocation is the tool for it).
    let signals = crate::risk::signals::gather(
        &txn,
        &crate::risk::signals::Attempt {
            tenant_id,
            user_id: Some(user_id),
            email: Some(&user.email),
            ip: client.ip.as_deref().and_then(|ip| ip.parse().ok()),
            device_fingerprint: None,
            user_agent: client.user_agent.as_deref(),
            geo: client.geo.as_ref(),
            user_trust: user.trust_score.to_string().parse().ok(),
            now: Utc::now(),
            failed_as: None,
        },
    )
    .await?;
    let policy = crate::domain::tenants::policy(&txn, tenant_id).await?;
    let assessment = settings.risk_model.assess(&signals, &policy.risk);
    crate::security::events::record(
        &txn,
        crate::security::events::NewSecurityEvent {
            tenant_id,
            user_id: Some(user_id),
            event_type: "token_refresh",
            category: "session",
            severity: "low",
            action: "allow",
            description: "session refreshed",
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            risk: Some(&assessment),
            ..Default::default()
        },
    )
    .await?;
    txn.commit().await?;

    let (access_token, claims) = settings
        .keys
        .issue(
            TokenSubject {
                user_id,
                tenant_id,
                role: user.role.clone(),
                permissions: user.permissions.clone(),
                session_id: family_id,
            },
            TokenType::Access,
            settings.access_ttl_secs,
        )
        .map_err(|e| RefreshError::Internal(e.to_string()))?;
    Ok(Refreshed {
        user,
        access_token,
        refresh_token,
        expires_at: DateTime::from_timestamp(claims.exp as i64, 0),
    })
}

/// A token that exists but was already replaced is being replayed: revoke its family
/// and record it, in a transaction of its own that commits although the refresh fails.
async fn detect_reuse(
    db: &DatabaseConnection,
    settings: &RefreshSettings<'_>,
    tenant_id: Uuid,
    hash: &str,
    client: &ClientContext,
) {
    let result: Result<(), DbErr> = async {
        let txn =
            begin_tenant_transaction(db, TenantScope::tenant(tenant_id), Access::ReadWrite, settings.statement_timeout_ms)
                .await?;
        let replayed = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select family_id, user_id from refresh_tokens where token_hash = $1 and replaced_by is not null",
                [hash.into()],
            ))
            .await?;
        if let Some(row) = replayed {
            let family_id: Uuid = row.try_get("", "family_id")?;
            let user_id: Uuid = row.try_get("", "user_id")?;
            let revoked = revoke_family(&txn, family_id).await?;
            let description = format!("a rotated refresh token was presented again: session revoked ({revoked} token(s))");
            record_event(&txn, tenant_id, user_id, "refresh_token_reuse", "high", "block", &description, client).await?;
            crate::risk::detectors::token_reuse(&txn, tenant_id, user_id, client.ip.as_deref()).await?;
        }
        txn.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not handle a replayed refresh token");
    }
}

/// Revokes every live token of a session; returns how many.
pub async fn revoke_family<C: ConnectionTrait>(txn: &C, family_id: Uuid) -> Result<u64, DbErr> {
    let result = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null",
            [family_id.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Revokes every session of a user, optionally keeping one; returns the families ended.
pub async fn revoke_user_sessions<C: ConnectionTrait>(
    txn: &C,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, DbErr> {
    let result = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update refresh_tokens set revoked_at = now() \
              where user_id = $1 and revoked_at is null and ($2::uuid is null or family_id <> $2)",
            [user_id.into(), keep.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Records an authentication event on `txn`.
#[allow(clippy::too_many_arguments)]
pub async fn record_event<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    event_type: &str,
    severity: &str,
    action: &str,
    description: &str,
    client: &ClientContext,
) -> Result<(), DbErr> {
    crate::security::events::record(
        txn,
        crate::security::events::NewSecurityEvent {
            tenant_id,
            user_id: Some(user_id),
            event_type,
            category: "session",
            severity,
            action,
            description,
            ip: client.ip.clone(),
            device_fingerprint: None,
            user_agent: client.user_agent.clone(),
            ..Default::default()
        },
    )
    .await
}
