//! Signing in: one generic failure for every cause, the same work whether or not the
//! user exists, and bookkeeping of failures that survives the failed operation.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Statement,
};
use uuid::Uuid;

use super::crypto::KeyRing;
use super::devices;
use super::jwt::{JwtKeys, TokenSubject, TokenType};
use super::mfa::{self, SecondFactor};
use super::mfa_policy::{MfaDemand, MfaPolicy, SignInSignals};
use super::password::{self, MAX_CHARS};
use super::sessions::{self, NewSession};
use super::throttle;
use super::tokens;
use crate::db::{Access, TenantScope, begin_tenant_transaction};
use crate::risk;
use crate::security::events::NewSecurityEvent;

/// What the client sent.
pub struct LoginAttempt {
    pub tenant: String,
    pub username: String,
    pub password: String,
    /// A TOTP code, to complete a sign-in that needs the second factor.
    pub totp_code: Option<String>,
    /// A backup code instead of the TOTP code.
    pub backup_code: Option<String>,
    pub device_fingerprint: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// Where the client is, when known (`crate::geo`).
    pub geo: Option<crate::geo::GeoPoint>,
}

/// A successful sign-in.
pub struct LoginSuccess {
    pub user: users::Model,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user must complete sign-in with a second factor; no tokens were issued.
    pub mfa_required: bool,
    /// The password has expired: the access token can only change it.
    pub password_expired: bool,
    /// The device the client identified itself as (with a fingerprint).
    pub device_id: Option<Uuid>,
}

/// Why sign-in failed. Callers turn every variant into the same generic reply; the
/// variant is only for logs and security events.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("login failed: {0}")]
    Refused(&'static str),
    /// Too many failed sign-ins from the client's address (RATE_LIMITED).
    #[error("address throttled")]
    Throttled { retry_after_secs: u64 },
    /// The password-hashing pool is saturated: try again shortly (RATE_LIMITED).
    #[error("password hashing saturated")]
    Busy,
    #[error("login error: {0}")]
    Internal(String),
}

impl From<DbErr> for LoginError {
    fn from(e: DbErr) -> Self {
        LoginError::Internal(e.to_string())
    }
}

/// Settings login needs.
pub struct LoginSettings<'a> {
    pub keys: &'a JwtKeys,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub statement_timeout_ms: u64,
    /// A hash of a random password, verified against when the user does not exist.
    pub dummy_hash: &'a str,
    /// Decrypts MFA secrets.
    pub data_keys: &'a KeyRing,
    /// Decides when the second factor is demanded.
    pub mfa_policy: &'a dyn MfaPolicy,
    /// Scores every attempt.
    pub risk_model: &'a dyn risk::RiskModel,
}

/// Why a sign-in with the right password was refused: the risk engine's verdict.
const RISK_DENIED: &str = "refused by the risk engine";

/// The attempt as the risk engine sees it.
fn risk_attempt<'a>(
    tenant_id: Uuid,
    user: Option<&'a users::Model>,
    attempt: &'a LoginAttempt,
    now: DateTime<Utc>,
) -> risk::signals::Attempt<'a> {
    risk::signals::Attempt {
        tenant_id,
        user_id: user.map(|u| u.user_id),
        email: user.map(|u| u.email.as_str()),
        ip: attempt.ip,
        device_fingerprint: attempt.device_fingerprint.as_deref(),
        user_agent: attempt.user_agent.as_deref(),
        geo: attempt.geo.as_ref(),
        user_trust: user.and_then(|u| u.trust_score.to_string().parse().ok()),
        now,
        failed_as: None,
    }
}

/// How long a session opened with an expired password lasts: long enough to choose a
/// new password, no longer.
pub const PASSWORD_CHANGE_TTL_SECS: u64 = 600;

const WRONG_SECOND_FACTOR: &str = "wrong or reused second factor";

/// Verifies a password on the bounded hashing pool; a saturated pool refuses the
/// attempt as RATE_LIMITED (it is not a failed password and is not counted).
async fn verify_password(password: String, hash: String) -> Result<bool, LoginError> {
    password::verify_password(password, hash)
        .await
        .map_err(|_| LoginError::Busy)
}

/// A hash to verify against for unknown users, so they cost the same time as known ones.
pub fn make_dummy_hash() -> Result<String, password::PasswordError> {
    password::hash_password_blocking(&tokens::new_token())
}

pub async fn login(
    db: &DatabaseConnection,
    settings: &LoginSettings<'_>,
    attempt: LoginAttempt,
) -> Result<LoginSuccess, LoginError> {
    // A password over the limit is refused before any hashing (its length alone says
    // nothing about whether the account exists).
    if attempt.password.len() > MAX_CHARS * 4 || attempt.password.chars().count() > MAX_CHARS {
        return Err(LoginError::Refused("password over the length limit"));
    }
    let malformed = |s: &str| s.chars().any(char::is_control);
    if attempt.username.is_empty()
        || attempt.username.chars().count() > 255
        || attempt.tenant.len() > 63
        || malformed(&attempt.username)
        || malformed(&attempt.tenant)
    {
        return Err(LoginError::Refused("malformed identifier"));
    }
    let tenant_id = crate::domain::tenants::find_active_by_slug(db, &attempt.tenant).await?;
    let Some(tenant_id) = tenant_id else {
        verify_password(attempt.password.clone(), settings.dummy_hash.to_string()).await?;
        return Err(LoginError::Refused("unknown tenant"));
    };

    // The address and the account are looked up in a short read-only transaction that
    // ends before the password is verified: a sign-in must not hold a pooled connection
    // while it waits for and runs Argon2 (tens of ms), or a storm of sign-ins leaves
    // every other request waiting for a connection (bench/README.md, "login storm").
    let lookup = begin_tenant_transaction(
        db,
        TenantScope::tenant(tenant_id),
        Access::ReadOnly,
        settings.statement_timeout_ms,
    )
    .await?;
    // A throttled address is refused before any password is checked (auth::throttle).
    if let Some(ip) = attempt.ip
        && let Some(retry_after_secs) =
            throttle::login_retry_after(&lookup, tenant_id, &ip.to_string()).await?
    {
        lookup.rollback().await?;
        return Err(LoginError::Throttled { retry_after_secs });
    }
    let found = find_user(&lookup, &attempt.username).await?;
    lookup.commit().await?;
    let hash = found
        .as_ref()
        .map_or_else(|| settings.dummy_hash.to_string(), |u| u.password_hash.clone());
    let password_ok = verify_password(attempt.password.clone(), hash.clone()).await?;
    // Known or not, the same statements follow (an unknown name looks up the nil id), so
    // the time of a refusal does not tell whether the account exists.
    let found_id = found.as_ref().map_or(Uuid::nil(), |u| u.user_id);
    let txn = begin_tenant_transaction(
        db,
        TenantScope::tenant(tenant_id),
        Access::ReadWrite,
        settings.statement_timeout_ms,
    )
    .await?;
    // The account as it is now: a lock, a deactivation or a new password may have
    // landed while the hash was being verified. A password verified against a hash
    // that has since been replaced proves nothing.
    let Some(user) = users::Entity::find()
        .filter(users::Column::UserId.eq(found_id))
        .one(&txn)
        .await?
    else {
        txn.rollback().await?;
        record_failure(db, settings, tenant_id, None, "unknown user", &attempt).await;
        return Err(LoginError::Refused("unknown user"));
    };
    let password_ok = password_ok && user.password_hash == hash;
    let now = Utc::now();
    // The account's state comes first: a wrong password on a locked or deactivated
    // account is not a countable failure (it must not extend or renew the lock). The
    // password was verified all the same, so every refusal costs the same time.
    let refusal = if !user.is_active {
        Some("account deactivated")
    } else if user.is_locked || user.locked_until.is_some_and(|until| until > now) {
        Some("account locked")
    } else if !password_ok {
        Some("wrong password")
    } else {
        None
    };
    if let Some(reason) = refusal {
        txn.rollback().await?;
        record_failure(db, settings, tenant_id, Some(&user), reason, &attempt).await;
        return Err(LoginError::Refused(reason));
    }

    let policy = crate::domain::tenants::policy(&txn, tenant_id).await?;
    let device = match &attempt.device_fingerprint {
        Some(fingerprint) => devices::find(&txn, user.user_id, fingerprint).await?,
        None => None,
    };
    // The risk engine scores the attempt (README, "Risk engine"): a high score refuses
    // it even with the right password, a raised one demands the second factor.
    let signals = risk::signals::gather(&txn, &risk_attempt(tenant_id, Some(&user), &attempt, now)).await?;
    let assessment = settings.risk_model.assess(&signals, &policy.risk);
    if assessment.action >= risk::Action::Deny {
        txn.rollback().await?;
        record_failure(db, settings, tenant_id, Some(&user), RISK_DENIED, &attempt).await;
        return Err(LoginError::Refused(RISK_DENIED));
    }
    let demand = settings.mfa_policy.demand(&SignInSignals {
        mfa_enrolled: user.mfa_enabled,
        device: device.as_ref(),
        policy: &policy,
        now,
        risk_demands_mfa: assessment.action == risk::Action::Challenge,
    });
    // A code offered where none is demanded is still checked: a wrong one is a failure,
    // a right one makes the session MFA-verified (so the device can be trusted).
    let offered_code = attempt.totp_code.is_some() || attempt.backup_code.is_some();
    let mut mfa_verified = false;
    if user.mfa_enabled && (demand == MfaDemand::Required || offered_code) {
        let offered = mfa::check_second_factor(
            &txn,
            settings.data_keys,
            &user,
            attempt.totp_code.as_deref(),
            attempt.backup_code.as_deref(),
            now.timestamp().max(0) as u64,
        )
        .await?;
        match offered {
            SecondFactor::Verified => mfa_verified = true,
            SecondFactor::Missing => {
                txn.rollback().await?;
                return Ok(LoginSuccess {
                    user,
                    access_token: None,
                    refresh_token: None,
                    expires_at: None,
                    mfa_required: true,
                    password_expired: false,
                    device_id: None,
                });
            }
            SecondFactor::Wrong => {
                txn.rollback().await?;
                record_failure(
                    db,
                    settings,
                    tenant_id,
                    Some(&user),
                    WRONG_SECOND_FACTOR,
                    &attempt,
                )
                .await;
                return Err(LoginError::Refused(WRONG_SECOND_FACTOR));
            }
        }
    }

    // An expired password still opens a session (so it can be revoked and checked like
    // any other), but a short one whose refresh token is never handed out, and whose
    // access token can only change the password.
    let password_expired = user.password_expires_at.is_some_and(|at| at <= now);
    let session_ttl = if password_expired {
        PASSWORD_CHANGE_TTL_SECS
    } else {
        settings.refresh_ttl_secs
    };
    let (session_id, refresh_token) = sessions::open(
        &txn,
        NewSession {
            tenant_id,
            user_id: user.user_id,
            lifetime_secs: session_ttl,
            device_fingerprint: attempt.device_fingerprint.as_deref(),
            ip: attempt.ip.map(|ip| ip.to_string()),
            user_agent: attempt.user_agent.as_deref(),
            mfa_verified_at: mfa_verified.then_some(now),
        },
    )
    .await?;
    let refresh_token = (!password_expired).then_some(refresh_token);
    let device_id = match &attempt.device_fingerprint {
        Some(fingerprint) => Some(
            devices::record_sign_in(
                &txn,
                tenant_id,
                user.user_id,
                fingerprint,
                attempt.ip.map(|ip| ip.to_string()),
                attempt.user_agent.as_deref(),
            )
            .await?,
        ),
        None => None,
    };
    users::Entity::update_many()
        .col_expr(users::Column::FailedLoginAttempts, Expr::value(0))
        .col_expr(users::Column::LockoutCount, Expr::value(0))
        .col_expr(users::Column::LastLoginAt, Expr::value(now))
        .col_expr(
            users::Column::LastLoginIp,
            Expr::cust_with_values("$1::inet", [attempt.ip.map(|ip| ip.to_string())]),
        )
        .filter(users::Column::UserId.eq(user.user_id))
        .exec(&txn)
        .await?;
    let ip_text = attempt.ip.map(|ip| ip.to_string());
    risk::detectors::intel_hit(
        &txn,
        tenant_id,
        Some(user.user_id),
        ip_text.as_deref(),
        &signals,
        if mfa_verified { "demand_mfa" } else { "alert" },
    )
    .await?;
    risk::detectors::impossible_travel(
        &txn,
        tenant_id,
        user.user_id,
        ip_text.as_deref(),
        &signals,
        policy.risk.weights.max_travel_kmh,
        if mfa_verified { "demand_mfa" } else { "alert" },
    )
    .await?;
    let trust_step = if mfa_verified {
        risk::trust::MFA_SIGN_IN
    } else {
        risk::trust::PASSWORD_SIGN_IN
    };
    risk::trust::adjust_user(&txn, user.user_id, trust_step).await?;
    if let (Some(fingerprint), Some(_known)) = (&attempt.device_fingerprint, &device) {
        let step = risk::trust::DEVICE_SIGN_IN * if mfa_verified { 2.0 } else { 1.0 };
        risk::trust::adjust_device(&txn, user.user_id, fingerprint, step).await?;
    }
    record_risk_event(
        &txn,
        tenant_id,
        Some(user.user_id),
        "login_success",
        "low",
        if assessment.action == risk::Action::Challenge {
            "challenge"
        } else {
            "allow"
        },
        match (password_expired, mfa_verified) {
            (true, _) => "signed in with an expired password: limited to changing it",
            (false, true) => "signed in with password and second factor",
            (false, false) => "signed in with password",
        },
        &attempt,
        Some(&assessment),
        None,
    )
    .await?;
    txn.commit().await?;

    let typ = if password_expired {
        TokenType::PasswordChange
    } else {
        TokenType::Access
    };
    let ttl = if password_expired {
        PASSWORD_CHANGE_TTL_SECS
    } else {
        settings.access_ttl_secs
    };
    let (access_token, claims) = settings
        .keys
        .issue(
            TokenSubject {
                user_id: user.user_id,
                tenant_id,
                role: user.role.clone(),
                permissions: user.permissions.clone(),
                session_id,
            },
            typ,
            ttl,
        )
        .map_err(|e| LoginError::Internal(e.to_string()))?;
    Ok(LoginSuccess {
        expires_at: DateTime::from_timestamp(claims.exp as i64, 0),
        user,
        access_token: Some(access_token),
        refresh_token,
        mfa_required: false,
        password_expired,
        device_id,
    })
}

/// The user named by username or email, case-insensitively (username first).
async fn find_user<C: ConnectionTrait>(txn: &C, login: &str) -> Result<Option<users::Model>, DbErr> {
    let lowered = login.to_lowercase();
    users::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(Expr::cust_with_values("lower(username) = $1", [lowered.clone()]))
                .add(Expr::cust_with_values("lower(email) = $1", [lowered.clone()])),
        )
        .order_by_desc(Expr::cust_with_values("lower(username) = $1", [lowered]))
        .one(txn)
        .await
}

/// Failed sign-ins before an account locks, unless the tenant's settings say otherwise
/// (`lockout_threshold`).
pub const DEFAULT_LOCKOUT_THRESHOLD: i64 = 5;
/// The first lock lasts this long; each further one twice as long as the previous, up to
/// [`MAX_LOCK_SECS`]. A successful sign-in resets the progression.
pub const BASE_LOCK_SECS: i64 = 300;
pub const MAX_LOCK_SECS: i64 = 24 * 3600;

/// Counts one failed password atomically (one UPDATE, so concurrent attempts, aliases
/// and batch entries are all counted) and locks the account when the count reaches the
/// tenant's threshold. Returns whether this attempt locked it.
async fn count_failure<C: ConnectionTrait>(txn: &C, tenant_id: Uuid, user_id: Uuid) -> Result<bool, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "with policy as ( \
                 select coalesce((settings->>'lockout_threshold')::int, $3) as threshold \
                   from tenants where tenant_id = $2) \
             update users u set \
                 failed_login_attempts = case when u.failed_login_attempts + 1 >= p.threshold \
                                              then 0 else u.failed_login_attempts + 1 end, \
                 lockout_count = case when u.failed_login_attempts + 1 >= p.threshold \
                                      then u.lockout_count + 1 else u.lockout_count end, \
                 locked_until = case when u.failed_login_attempts + 1 >= p.threshold \
                                     then now() + make_interval(secs => least($5, $4 * power(2, least(u.lockout_count, 20)))) \
                                     else u.locked_until end \
               from policy p \
              where u.user_id = $1 and u.is_active and not u.is_locked \
                and (u.locked_until is null or u.locked_until <= now()) \
              returning (u.locked_until is not null and u.locked_until > now()) as locked_now",
            [
                user_id.into(),
                tenant_id.into(),
                (DEFAULT_LOCKOUT_THRESHOLD as i32).into(),
                (BASE_LOCK_SECS as f64).into(),
                (MAX_LOCK_SECS as f64).into(),
            ],
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<bool>("", "locked_now").ok())
        .unwrap_or(false))
}

/// What a signed-in user got wrong when asked to prove themselves again.
#[derive(Debug, Clone, Copy)]
pub enum Reauthentication {
    /// A TOTP code to confirm or disable MFA.
    MfaCode,
    /// The current password, to change it.
    Password,
    /// The second factor given with a password reset.
    ResetSecondFactor,
}

/// A wrong TOTP code (to confirm or disable MFA) or a wrong current password (to change
/// it) from a signed-in user: counted toward the account's lockout like a failed sign-in,
/// and recorded, in a transaction of its own that commits although the operation fails.
/// Without this, a stolen session could guess freely (30 aliases per document).
pub async fn record_reauthentication_failure(
    db: &DatabaseConnection,
    statement_timeout_ms: u64,
    tenant_id: Uuid,
    user_id: Uuid,
    what: Reauthentication,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
) {
    let attempt = LoginAttempt {
        tenant: String::new(),
        username: String::new(),
        password: String::new(),
        totp_code: None,
        backup_code: None,
        device_fingerprint: None,
        ip,
        user_agent,
        geo: None,
    };
    let (event_type, description) = match what {
        Reauthentication::MfaCode => ("mfa_failure", "wrong or reused TOTP code to change MFA settings"),
        Reauthentication::Password => ("password_check_failure", "wrong current password to change it"),
        Reauthentication::ResetSecondFactor => (
            "mfa_failure",
            "wrong or reused second factor with a password reset",
        ),
    };
    let result: Result<(), DbErr> = async {
        let txn = begin_tenant_transaction(
            db,
            TenantScope::tenant(tenant_id),
            Access::ReadWrite,
            statement_timeout_ms,
        )
        .await?;
        let locked_now = count_failure(&txn, tenant_id, user_id).await?;
        if locked_now {
            let ip = attempt.ip.map(|ip| ip.to_string());
            risk::detectors::account_locked(&txn, tenant_id, user_id, ip.as_deref(), None).await?;
        }
        record_event(
            &txn,
            tenant_id,
            Some(user_id),
            event_type,
            "medium",
            "deny",
            description,
            &attempt,
        )
        .await?;
        if locked_now {
            let text = "too many failed checks: account locked for a growing period";
            record_event(
                &txn,
                tenant_id,
                Some(user_id),
                "account_locked",
                "high",
                "lock",
                text,
                &attempt,
            )
            .await?;
        }
        txn.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record a failed re-authentication");
    }
}

/// Counts a failure and records it, in a transaction of its own that commits although
/// the login itself failed (DESIGN.md: security bookkeeping survives).
async fn record_failure(
    db: &DatabaseConnection,
    settings: &LoginSettings<'_>,
    tenant_id: Uuid,
    user: Option<&users::Model>,
    reason: &'static str,
    attempt: &LoginAttempt,
) {
    let user_id = user.map(|u| u.user_id);
    let result: Result<(), DbErr> = async {
        let txn = begin_tenant_transaction(
            db,
            TenantScope::tenant(tenant_id),
            Access::ReadWrite,
            settings.statement_timeout_ms,
        )
        .await?;
        // A wrong password counts against the account; attempts on an account already
        // locked or deactivated do not, so nobody can keep extending someone's lock.
        let locked_now = match user_id {
            Some(id) if reason == "wrong password" || reason == WRONG_SECOND_FACTOR => {
                count_failure(&txn, tenant_id, id).await?
            }
            _ => false,
        };
        // Every failure counts against the address it came from (auth::throttle).
        let ip = attempt.ip.map(|ip| ip.to_string());
        let policy = crate::domain::tenants::policy(&txn, tenant_id).await?;
        let ip_blocked_now = match &ip {
            Some(ip) => throttle::count_login_failure(&txn, tenant_id, ip, policy.login_failures_per_ip).await?,
            None => false,
        };
        // Scored with this failure counted (its event is written next), so the
        // explanation and the detectors see the attempt itself.
        // Unknown names are told apart by a hash (never stored in clear: people type
        // passwords into the username field).
        let username_hash = tokens::token_hash(&attempt.username.to_lowercase())[..16].to_string();
        let identity = user_id.map_or_else(|| username_hash.clone(), |id| id.to_string());
        let mut scored = risk_attempt(tenant_id, user, attempt, Utc::now());
        scored.failed_as = Some(identity);
        let signals = risk::signals::gather(&txn, &scored).await?;
        let assessment = settings.risk_model.assess(&signals, &policy.risk);
        let details = user_id
            .is_none()
            .then(|| serde_json::json!({ "username_hash": username_hash }));
        record_risk_event(
            &txn,
            tenant_id,
            user_id,
            "login_failure",
            "medium",
            "deny",
            reason,
            attempt,
            Some(&assessment),
            details,
        )
        .await?;
        let counted = reason == "wrong password" || reason == WRONG_SECOND_FACTOR;
        risk::detectors::after_failure(
            &txn,
            tenant_id,
            user_id.filter(|_| counted),
            ip.as_deref(),
            &signals,
            locked_now,
        )
        .await?;
        if locked_now {
            record_event(
                &txn,
                tenant_id,
                user_id,
                "account_locked",
                "high",
                "lock",
                "too many failed sign-ins: account locked for a growing period",
                attempt,
            )
            .await?;
        }
        if ip_blocked_now {
            crate::security::events::record(
                &txn,
                NewSecurityEvent {
                    tenant_id,
                    user_id: None,
                    event_type: "login_ip_throttled",
                    category: "rate_limit",
                    severity: "high",
                    action: "block",
                    description: "too many failed sign-ins from this address: blocked for the rest of the window",
                    ip,
                    device_fingerprint: attempt.device_fingerprint.clone(),
                    user_agent: attempt.user_agent.clone(),
                    ..Default::default()
                },
            )
            .await?;
        }
        txn.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record a failed login");
    }
}

#[allow(clippy::too_many_arguments)]
async fn record_event<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Option<Uuid>,
    event_type: &str,
    severity: &str,
    action: &str,
    description: &str,
    attempt: &LoginAttempt,
) -> Result<(), DbErr> {
    record_risk_event(
        txn,
        tenant_id,
        user_id,
        event_type,
        severity,
        action,
        description,
        attempt,
        None,
        None,
    )
    .await
}

/// Records an authentication event with the risk engine's assessment and details.
#[allow(clippy::too_many_arguments)]
async fn record_risk_event<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Option<Uuid>,
    event_type: &str,
    severity: &str,
    action: &str,
    description: &str,
    attempt: &LoginAttempt,
    risk: Option<&risk::Assessment>,
    details: Option<serde_json::Value>,
) -> Result<(), DbErr> {
    crate::security::events::record(
        txn,
        NewSecurityEvent {
            tenant_id,
            user_id,
            event_type,
            category: "authentication",
            severity,
            action,
            description,
            ip: attempt.ip.map(|ip| ip.to_string()),
            device_fingerprint: attempt.device_fingerprint.clone(),
            user_agent: attempt.user_agent.clone(),
            risk,
            details,
            geolocation: attempt.geo.as_ref().map(crate::geo::GeoPoint::to_json),
        },
    )
    .await
}
