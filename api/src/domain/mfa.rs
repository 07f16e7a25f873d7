//! MFA management for the signed-in user: enrol TOTP, confirm it, disable it, and
//! (re)generate backup codes. Every step is audited and recorded as a security event.

use chrono::Utc;
use entity::users;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, Set, Statement};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, DomainError};
use crate::auth::crypto::KeyRing;
use crate::auth::mfa;
use crate::auth::permissions::Principal;

/// What an authenticator app needs to enrol.
pub struct Enrollment {
    /// Base32, for typing in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg_data_uri: String,
}

/// The caller's row, refused once the account is locked: wrong codes count toward the
/// lockout, and the next alias of the same document must not guess again. Not locked
/// FOR UPDATE: a wrong code is recorded by a separate transaction that must be able to
/// update this row while the operation is still open (the step itself is spent by a
/// conditional UPDATE, which is what makes concurrent checks safe).
async fn me<C: ConnectionTrait>(txn: &C, by: &Principal) -> Result<users::Model, DomainError> {
    let user = users::Entity::find_by_id(by.user_id)
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound("no such user".into()))?;
    if user.is_locked || user.locked_until.is_some_and(|until| until > Utc::now()) {
        return Err(DomainError::Forbidden);
    }
    Ok(user)
}

async fn event<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    user_id: Uuid,
    kind: &str,
    severity: &str,
    text: &str,
) -> Result<(), DomainError> {
    crate::security::events::record(
        txn,
        crate::security::events::NewSecurityEvent {
            tenant_id: actor.tenant_id,
            user_id: Some(user_id),
            event_type: kind,
            category: "authentication",
            severity,
            action: "allow",
            description: text,
            ip: actor.ip.clone(),
            device_fingerprint: None,
            user_agent: actor.user_agent.clone(),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Starts TOTP enrolment: a new secret, stored encrypted and not yet active. Enrolling
/// again before confirming replaces the pending secret.
pub async fn enroll_totp<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    keys: &KeyRing,
    issuer: &str,
) -> Result<Enrollment, DomainError> {
    let user = me(txn, by).await?;
    if user.mfa_enabled {
        return Err(DomainError::Invalid(
            "TOTP is already on: disable it first".into(),
        ));
    }
    let secret = mfa::new_secret();
    let uri = mfa::otpauth_uri(&secret, issuer, &user.username)
        .ok_or_else(|| DomainError::Invalid("cannot build the enrolment URI".into()))?;
    let qr =
        mfa::qr_svg_data_uri(&uri).ok_or_else(|| DomainError::Invalid("cannot draw the QR code".into()))?;
    let mut active: users::ActiveModel = user.into();
    active.mfa_secret = Set(Some(keys.encrypt(secret.as_bytes(), by.user_id.as_bytes())));
    active.mfa_secret_key_id = Set(Some(keys.current_id().to_string()));
    active.totp_last_step = Set(None);
    active.update(txn).await?;
    actor
        .audit(
            txn,
            "mfa.enroll",
            "user",
            by.user_id,
            None,
            Some(json!({ "method": "totp" })),
        )
        .await?;
    event(
        txn,
        actor,
        by.user_id,
        "mfa_enroll_started",
        "low",
        "TOTP enrolment started",
    )
    .await?;
    Ok(Enrollment {
        secret,
        otpauth_uri: uri,
        qr_svg_data_uri: qr,
    })
}

fn pending_secret(user: &users::Model, keys: &KeyRing) -> Result<String, DomainError> {
    let stored = user
        .mfa_secret
        .as_deref()
        .ok_or_else(|| DomainError::Invalid("enrol TOTP first".into()))?;
    let bytes = keys
        .decrypt(stored, user.user_id.as_bytes())
        .map_err(|e| DomainError::Invalid(format!("the stored TOTP secret cannot be read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| DomainError::Invalid("the stored TOTP secret is not text".into()))
}

/// Checks `code` against the user's secret and spends its step; false if wrong or reused.
async fn check_code<C: ConnectionTrait>(
    txn: &C,
    user: &users::Model,
    keys: &KeyRing,
    code: &str,
) -> Result<bool, DomainError> {
    let secret = pending_secret(user, keys)?;
    let now = Utc::now().timestamp().max(0) as u64;
    match mfa::matching_step(&secret, code, now) {
        Some(step) => Ok(mfa::accept_step(txn, user.user_id, step).await?),
        None => Ok(false),
    }
}

/// Turns TOTP on once the user proves their app produces the right codes.
pub async fn confirm_totp<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    keys: &KeyRing,
    code: &str,
) -> Result<(), DomainError> {
    let user = me(txn, by).await?;
    if user.mfa_enabled {
        return Err(DomainError::Invalid("TOTP is already on".into()));
    }
    if !check_code(txn, &user, keys, code).await? {
        return Err(DomainError::WrongCode);
    }
    users::Entity::update(users::ActiveModel {
        user_id: Set(by.user_id),
        mfa_enabled: Set(true),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    actor
        .audit(
            txn,
            "mfa.confirm",
            "user",
            by.user_id,
            Some(json!({ "mfa_enabled": false })),
            Some(json!({ "mfa_enabled": true })),
        )
        .await?;
    event(txn, actor, by.user_id, "mfa_enabled", "medium", "TOTP turned on").await
}

/// Turns TOTP off; needs a fresh code, so a stolen session alone cannot remove MFA.
pub async fn disable_totp<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    keys: &KeyRing,
    code: &str,
) -> Result<(), DomainError> {
    let user = me(txn, by).await?;
    if !user.mfa_enabled {
        return Err(DomainError::Invalid("TOTP is not on".into()));
    }
    if !check_code(txn, &user, keys, code).await? {
        return Err(DomainError::WrongCode);
    }
    let mut active: users::ActiveModel = user.into();
    active.mfa_enabled = Set(false);
    active.mfa_secret = Set(None);
    active.mfa_secret_key_id = Set(None);
    active.update(txn).await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "delete from mfa_backup_codes where user_id = $1",
        [by.user_id.into()],
    ))
    .await?;
    actor
        .audit(
            txn,
            "mfa.disable",
            "user",
            by.user_id,
            Some(json!({ "mfa_enabled": true })),
            Some(json!({ "mfa_enabled": false })),
        )
        .await?;
    event(txn, actor, by.user_id, "mfa_disabled", "high", "TOTP turned off").await
}

/// A new set of backup codes, shown this once; the previous set stops working.
pub async fn generate_backup_codes<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
) -> Result<Vec<String>, DomainError> {
    let user = me(txn, by).await?;
    if !user.mfa_enabled {
        return Err(DomainError::Invalid(
            "turn TOTP on before generating backup codes".into(),
        ));
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "delete from mfa_backup_codes where user_id = $1",
        [by.user_id.into()],
    ))
    .await?;
    let codes = mfa::new_backup_codes();
    for code in &codes {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into mfa_backup_codes (code_id, tenant_id, user_id, code_hash) values ($1, $2, $3, $4)",
            [
                Uuid::now_v7().into(),
                by.tenant_id.into(),
                by.user_id.into(),
                mfa::backup_code_hash(by.user_id, code).into(),
            ],
        ))
        .await?;
    }
    actor
        .audit(
            txn,
            "mfa.backup_codes",
            "user",
            by.user_id,
            None,
            Some(json!({ "codes": codes.len() })),
        )
        .await?;
    event(
        txn,
        actor,
        by.user_id,
        "mfa_backup_codes_generated",
        "medium",
        "backup codes regenerated",
    )
    .await?;
    Ok(codes)
}
