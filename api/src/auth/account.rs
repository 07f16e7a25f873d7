//! The password lifecycle and the account's email: changing a password, resetting a
//! forgotten one, verifying the email address, and self-service registration.
//!
//! - A change needs the current password and ends every other session (ASVS 6.2.3,
//!   7.4.3). A wrong current password counts toward the lockout (the caller records it).
//! - A reset is requested by email address and always answers the same way, whether or
//!   not the address belongs to anyone (no enumeration). The token is single-use,
//!   short-lived and stored as a hash; using it still demands the second factor of an
//!   MFA user (a mailbox alone must not be enough), ends every session, and clears a
//!   timed lockout (the user proved both factors) but never an administrator's lock.
//! - Every change is recorded as a security event in its own transaction, and the user
//!   is told by email (through the outbox, so only committed changes are announced).

use chrono::Utc;
use entity::users;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::account_tokens::{self, Purpose};
use super::crypto::KeyRing;
use super::mfa::{self, SecondFactor};
use super::password::{self, PasswordError, PasswordOwner};
use super::sessions;
use crate::db::{Access, TenantScope, begin_tenant_transaction};
use crate::domain::tenants;
use crate::notify::{self, NewNotification};
use crate::security::events::{self, NewSecurityEvent};

/// What these flows need from configuration.
pub struct AccountSettings<'a> {
    pub data_keys: &'a KeyRing,
    pub statement_timeout_ms: u64,
    pub reset_token_ttl_secs: u64,
    pub verification_token_ttl_secs: u64,
    /// `<base>?token=...` in messages; None: the bare token.
    pub link_base_url: Option<&'a str>,
}

impl AccountSettings<'_> {
    fn link(&self, token: &str) -> String {
        match self.link_base_url {
            Some(base) => format!("{base}?token={token}"),
            None => format!("token: {token}"),
        }
    }
}

/// Where a request came from, for events and the audit log.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The current password given to change it is wrong (counts toward the lockout).
    #[error("the current password is wrong")]
    WrongPassword,
    /// The token is unknown, expired or already used.
    #[error("the token is invalid, expired or already used")]
    BadToken,
    /// The account has MFA: the reset needs a TOTP or backup code.
    #[error("this account has two-factor authentication: give totpCode or backupCode")]
    SecondFactorRequired,
    /// The second factor given with a reset is wrong (counts toward the lockout).
    #[error("the second-factor code is wrong, expired or already used")]
    WrongSecondFactor,
    /// Self-service registration is off for the tenant (or there is no such tenant).
    #[error("self-service registration is not available")]
    RegistrationClosed,
    #[error(transparent)]
    Domain(#[from] crate::domain::DomainError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn owner_of(user: &users::Model) -> PasswordOwner<'_> {
    PasswordOwner {
        username: &user.username,
        email: &user.email,
        first_name: user.first_name.as_deref(),
        last_name: user.last_name.as_deref(),
    }
}

/// Checks and hashes a new password for `user`.
async fn new_password_hash(user: &users::Model, new_password: &str) -> Result<String, AccountError> {
    password::check_policy(new_password, &owner_of(user))?;
    Ok(password::hash_password(new_password.to_string()).await?)
}

/// Stores a new password hash and restarts its age under the tenant's policy.
async fn store_password<C: ConnectionTrait>(
    txn: &C,
    user: &users::Model,
    hash: String,
    clear_timed_lock: bool,
) -> Result<(), DbErr> {
    let policy = tenants::policy(txn, user.tenant_id).await?;
    let now = Utc::now();
    let mut update = users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(hash))
        .col_expr(users::Column::PasswordChangedAt, Expr::value(now))
        .col_expr(
            users::Column::PasswordExpiresAt,
            Expr::value(policy.password_expiry_from(now)),
        );
    if clear_timed_lock {
        update = update
            .col_expr(users::Column::FailedLoginAttempts, Expr::value(0))
            .col_expr(
                users::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            );
    }
    update
        .filter(users::Column::UserId.eq(user.user_id))
        .exec(txn)
        .await?;
    Ok(())
}

async fn record<C: ConnectionTrait>(
    txn: &C,
    user: &users::Model,
    event_type: &str,
    severity: &str,
    description: &str,
    origin: &Origin,
) -> Result<(), DbErr> {
    events::record(
        txn,
        NewSecurityEvent {
            tenant_id: user.tenant_id,
            user_id: Some(user.user_id),
            event_type,
            category: "account",
            severity,
            action: "allow",
            description,
            ip: origin.ip.clone(),
            device_fingerprint: None,
            user_agent: origin.user_agent.clone(),
            ..Default::default()
        },
    )
    .await
}

async fn tell<C: ConnectionTrait>(
    txn: &C,
    keys: &KeyRing,
    user: &users::Model,
    subject: &str,
    body: &str,
) -> Result<(), DbErr> {
    notify::enqueue(
        txn,
        keys,
        NewNotification {
            tenant_id: user.tenant_id,
            user_id: Some(user.user_id),
            recipient: &user.email,
            subject,
            body,
        },
    )
    .await
    .map(|_| ())
}

/// A password change by the signed-in user, on the request's transaction.
pub struct PasswordChange<'a> {
    pub user_id: Uuid,
    /// The caller's session: kept, unless it is the limited session of an expired
    /// password (then it ends too, and the caller signs in again with the new one).
    pub session_id: Uuid,
    pub keep_session: bool,
    pub current_password: &'a str,
    pub new_password: &'a str,
}

/// Changes the password; returns how many other sessions were ended.
pub async fn change_password<C: ConnectionTrait>(
    txn: &C,
    settings: &AccountSettings<'_>,
    change: PasswordChange<'_>,
    origin: &Origin,
) -> Result<u64, AccountError> {
    // Not locked: a wrong current password is recorded by the caller in a transaction of
    // its own, which must not wait behind a lock this (failing) transaction holds.
    let user = users::Entity::find_by_id(change.user_id)
        .one(txn)
        .await?
        .ok_or(AccountError::BadToken)?;
    // Refused before any hashing: the length limit, and a new password equal to the old.
    if change.current_password.len() > password::MAX_CHARS * 4 {
        return Err(AccountError::WrongPassword);
    }
    if change.new_password == change.current_password {
        return Err(PasswordError::Weak(": the new password must differ from the current one".into()).into());
    }
    password::check_policy(change.new_password, &owner_of(&user))?;
    if !password::verify_password(change.current_password.to_string(), user.password_hash.clone()).await? {
        return Err(AccountError::WrongPassword);
    }
    let hash = new_password_hash(&user, change.new_password).await?;
    store_password(txn, &user, hash, false).await?;
    let keep = change.keep_session.then_some(change.session_id);
    let ended = sessions::revoke_user_sessions(txn, user.user_id, keep).await?;
    record(
        txn,
        &user,
        "password_changed",
        "medium",
        "password changed; other sessions ended",
        origin,
    )
    .await?;
    crate::domain::Actor {
        tenant_id: user.tenant_id,
        user_id: Some(user.user_id),
        ip: origin.ip.clone(),
        user_agent: origin.user_agent.clone(),
    }
    .audit(txn, "user.password_change", "user", user.user_id, None, None)
    .await?;
    tell(
        txn,
        settings.data_keys,
        &user,
        "Your password was changed",
        "The password of your account was just changed, and your other sessions were signed out.\n\
         If this was not you, reset your password at once and contact your bank.",
    )
    .await?;
    Ok(ended)
}

/// Opens a transaction in the tenant a token names (None: not one of our tokens).
async fn token_transaction(
    db: &DatabaseConnection,
    token: &str,
    statement_timeout_ms: u64,
) -> Result<Option<sea_orm::DatabaseTransaction>, DbErr> {
    let Some(tenant_id) = super::tokens::tenant_of_token(token) else {
        return Ok(None);
    };
    Ok(Some(
        begin_tenant_transaction(
            db,
            TenantScope::tenant(tenant_id),
            Access::ReadWrite,
            statement_timeout_ms,
        )
        .await?,
    ))
}

/// Sends a reset link to `email` in tenant `tenant_slug` if it belongs to an active
/// user; answers the same either way.
pub async fn request_password_reset(
    db: &DatabaseConnection,
    settings: &AccountSettings<'_>,
    tenant_slug: &str,
    email: &str,
    origin: &Origin,
) -> Result<(), AccountError> {
    if email.len() > 255 || tenant_slug.len() > 63 {
        return Ok(());
    }
    let Some(tenant_id) = tenants::find_active_by_slug(db, tenant_slug).await? else {
        return Ok(());
    };
    let txn = begin_tenant_transaction(
        db,
        TenantScope::tenant(tenant_id),
        Access::ReadWrite,
        settings.statement_timeout_ms,
    )
    .await?;
    let user = users::Entity::find()
        .filter(Expr::cust_with_values(
            "lower(email) = $1",
            [email.to_lowercase()],
        ))
        .filter(users::Column::IsActive.eq(true))
        .one(&txn)
        .await?;
    let Some(user) = user else {
        txn.rollback().await?;
        return Ok(());
    };
    let issued = account_tokens::issue(
        &txn,
        tenant_id,
        user.user_id,
        Purpose::PasswordReset,
        settings.reset_token_ttl_secs,
    )
    .await?;
    let Some((token, expires_at)) = issued else {
        // Enough links are already on their way; send no more.
        txn.rollback().await?;
        return Ok(());
    };
    let body = format!(
        "Someone asked to reset the password of your account {}.\n\
         To choose a new password, use this link before {} UTC; it works once:\n\n{}\n\n\
         If you did not ask for this, ignore this message: your password stays as it is.",
        user.username,
        expires_at.format("%Y-%m-%d %H:%M"),
        settings.link(&token),
    );
    tell(&txn, settings.data_keys, &user, "Reset your password", &body).await?;
    record(
        &txn,
        &user,
        "password_reset_requested",
        "low",
        "password reset link sent",
        origin,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// What a reset needs.
pub struct PasswordReset<'a> {
    pub token: &'a str,
    pub new_password: &'a str,
    pub totp_code: Option<&'a str>,
    pub backup_code: Option<&'a str>,
}

/// Resets a password with a token from a reset message. A wrong second factor is
/// recorded and counted toward the lockout before the error returns; the token then
/// stays usable until it expires (the lockout bounds the guesses).
pub async fn reset_password(
    db: &DatabaseConnection,
    settings: &AccountSettings<'_>,
    reset: PasswordReset<'_>,
    origin: &Origin,
) -> Result<(), AccountError> {
    let Some(txn) = token_transaction(db, reset.token, settings.statement_timeout_ms).await? else {
        return Err(AccountError::BadToken);
    };
    let Some(user_id) = account_tokens::peek(&txn, reset.token, Purpose::PasswordReset).await? else {
        return Err(AccountError::BadToken);
    };
    let user = users::Entity::find_by_id(user_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(AccountError::BadToken)?;
    // An administrator's lock and a deactivation stand; the token is useless then.
    if !user.is_active || user.is_locked {
        return Err(AccountError::BadToken);
    }
    password::check_policy(reset.new_password, &owner_of(&user))?;
    if user.mfa_enabled {
        // A timed lockout stops second-factor guessing through resets as it does at login.
        if user.locked_until.is_some_and(|until| until > Utc::now()) {
            return Err(AccountError::WrongSecondFactor);
        }
        let now = Utc::now().timestamp().max(0) as u64;
        match mfa::check_second_factor(
            &txn,
            settings.data_keys,
            &user,
            reset.totp_code,
            reset.backup_code,
            now,
        )
        .await?
        {
            SecondFactor::Verified => {}
            SecondFactor::Missing => return Err(AccountError::SecondFactorRequired),
            SecondFactor::Wrong => {
                txn.rollback().await?;
                super::login::record_reauthentication_failure(
                    db,
                    settings.statement_timeout_ms,
                    user.tenant_id,
                    user.user_id,
                    super::login::Reauthentication::ResetSecondFactor,
                    origin.ip.as_deref().and_then(|ip| ip.parse().ok()),
                    origin.user_agent.clone(),
                )
                .await;
                return Err(AccountError::WrongSecondFactor);
            }
        }
    }
    let hash = new_password_hash(&user, reset.new_password).await?;
    if account_tokens::spend(&txn, reset.token, Purpose::PasswordReset)
        .await?
        .is_none()
    {
        return Err(AccountError::BadToken);
    }
    store_password(&txn, &user, hash, true).await?;
    // The link reached the mailbox: the address is the user's.
    users::Entity::update_many()
        .col_expr(users::Column::IsVerified, Expr::value(true))
        .filter(users::Column::UserId.eq(user.user_id))
        .exec(&txn)
        .await?;
    sessions::revoke_user_sessions(&txn, user.user_id, None).await?;
    record(
        &txn,
        &user,
        "password_reset",
        "medium",
        "password reset with an emailed token; all sessions ended",
        origin,
    )
    .await?;
    crate::domain::Actor {
        tenant_id: user.tenant_id,
        user_id: Some(user.user_id),
        ip: origin.ip.clone(),
        user_agent: origin.user_agent.clone(),
    }
    .audit(&txn, "user.password_reset", "user", user.user_id, None, None)
    .await?;
    tell(
        &txn,
        settings.data_keys,
        &user,
        "Your password was reset",
        "The password of your account was just reset, and every session was signed out.\n\
         If this was not you, contact your bank at once.",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Sends a verification link to the user's email (signed in; on the request's
/// transaction). Returns false when enough links are already outstanding or the address
/// is verified.
pub async fn request_email_verification<C: ConnectionTrait>(
    txn: &C,
    settings: &AccountSettings<'_>,
    user_id: Uuid,
) -> Result<bool, AccountError> {
    let user = users::Entity::find_by_id(user_id)
        .one(txn)
        .await?
        .ok_or(AccountError::BadToken)?;
    if user.is_verified {
        return Ok(false);
    }
    send_verification(txn, settings, &user).await
}

async fn send_verification<C: ConnectionTrait>(
    txn: &C,
    settings: &AccountSettings<'_>,
    user: &users::Model,
) -> Result<bool, AccountError> {
    let issued = account_tokens::issue(
        txn,
        user.tenant_id,
        user.user_id,
        Purpose::EmailVerification,
        settings.verification_token_ttl_secs,
    )
    .await?;
    let Some((token, expires_at)) = issued else {
        return Ok(false);
    };
    let body = format!(
        "Confirm that {} is your email address for the account {} with this link, before {} UTC:\n\n{}\n",
        user.email,
        user.username,
        expires_at.format("%Y-%m-%d %H:%M"),
        settings.link(&token),
    );
    tell(txn, settings.data_keys, user, "Confirm your email address", &body).await?;
    Ok(true)
}

/// Marks the email of the token's user verified (the token is the credential).
pub async fn verify_email(
    db: &DatabaseConnection,
    settings: &AccountSettings<'_>,
    token: &str,
    origin: &Origin,
) -> Result<(), AccountError> {
    let Some(txn) = token_transaction(db, token, settings.statement_timeout_ms).await? else {
        return Err(AccountError::BadToken);
    };
    let Some(user_id) = account_tokens::spend(&txn, token, Purpose::EmailVerification).await? else {
        return Err(AccountError::BadToken);
    };
    let user = users::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or(AccountError::BadToken)?;
    users::Entity::update_many()
        .col_expr(users::Column::IsVerified, Expr::value(true))
        .filter(users::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    record(
        &txn,
        &user,
        "email_verified",
        "low",
        "email address verified",
        origin,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

const REGISTRATION_NOTICE: &str = "Someone tried to register with your address";

/// Whether the user was sent a message with `subject` in the last day (the user's row is
/// locked first, so concurrent callers see each other's message).
async fn told_recently<C: ConnectionTrait>(txn: &C, user_id: Uuid, subject: &str) -> Result<bool, DbErr> {
    use sea_orm::{DbBackend, Statement};
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select 1 from users where user_id = $1 for update",
        [user_id.into()],
    ))
    .await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select exists (select 1 from notification_outbox \
                             where user_id = $1 and subject = $2 and created_at > now() - interval '1 day') as told",
            [user_id.into(), subject.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<bool>("", "told"))
        .transpose()?
        .unwrap_or(false))
}

/// What a newcomer gives to register.
pub struct Registration<'a> {
    pub tenant: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
}

/// Creates a customer account in a tenant that allows self-service, and sends a
/// verification link. An email already registered is not revealed: the call answers as
/// if it worked, and the address's owner is told someone tried.
pub async fn register(
    db: &DatabaseConnection,
    settings: &AccountSettings<'_>,
    registration: Registration<'_>,
    origin: &Origin,
) -> Result<(), AccountError> {
    if registration.tenant.len() > 63 {
        return Err(AccountError::RegistrationClosed);
    }
    let Some(tenant_id) = tenants::find_active_by_slug(db, registration.tenant).await? else {
        return Err(AccountError::RegistrationClosed);
    };
    let txn = begin_tenant_transaction(
        db,
        TenantScope::tenant(tenant_id),
        Access::ReadWrite,
        settings.statement_timeout_ms,
    )
    .await?;
    if !tenants::policy(&txn, tenant_id).await?.self_registration {
        return Err(AccountError::RegistrationClosed);
    }
    let taken = users::Entity::find()
        .filter(Expr::cust_with_values(
            "lower(email) = $1",
            [registration.email.to_lowercase()],
        ))
        .one(&txn)
        .await?;
    if let Some(existing) = taken {
        // At most one notice a day, so registering someone's address over and over
        // cannot flood their mailbox.
        if !told_recently(&txn, existing.user_id, REGISTRATION_NOTICE).await? {
            tell(
                &txn,
                settings.data_keys,
                &existing,
                REGISTRATION_NOTICE,
                "Someone tried to open an account with this email address, which already has one.\n\
                 If it was you, sign in or reset your password instead.",
            )
            .await?;
        }
        txn.commit().await?;
        return Ok(());
    }
    let actor = crate::domain::Actor {
        tenant_id,
        user_id: None,
        ip: origin.ip.clone(),
        user_agent: origin.user_agent.clone(),
    };
    let user = crate::domain::users::create_user(
        &txn,
        &actor,
        crate::domain::users::NewUser {
            username: registration.username.to_string(),
            email: registration.email.to_string(),
            role: super::roles::Role::Customer,
            password: registration.password.to_string(),
            first_name: registration.first_name.map(str::to_owned),
            last_name: registration.last_name.map(str::to_owned),
            phone_number: None,
            permissions: Vec::new(),
        },
    )
    .await?;
    record(
        &txn,
        &user,
        "user_registered",
        "low",
        "self-service registration",
        origin,
    )
    .await?;
    send_verification(&txn, settings, &user).await?;
    txn.commit().await?;
    Ok(())
}
