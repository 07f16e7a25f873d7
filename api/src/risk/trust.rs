//! Trust scores (0-100, default 50) move with history, so the risk engine can lean on
//! them: a user who keeps signing in with MFA from known devices earns trust; failures
//! and threats cost it. README ("Risk engine") lists the steps.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

/// A successful sign-in that passed a second factor.
pub const MFA_SIGN_IN: f64 = 2.0;
/// A successful sign-in with the password alone.
pub const PASSWORD_SIGN_IN: f64 = 0.5;
/// A device the user signs in from again (after a second factor: twice this).
pub const DEVICE_SIGN_IN: f64 = 2.5;
/// A failed sign-in on the account.
pub const FAILURE: f64 = -1.0;
/// A threat naming the user (brute force on the account, token reuse ...).
pub const THREAT: f64 = -5.0;

/// Moves the user's trust by `delta`, within 0-100.
pub async fn adjust_user<C: ConnectionTrait>(txn: &C, user_id: Uuid, delta: f64) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "update users set trust_score = least(100, greatest(0, trust_score + $2::numeric)) where user_id = $1",
        [user_id.into(), delta.into()],
    ))
    .await?;
    Ok(())
}

/// Moves the trust of the user's device with `fingerprint` by `delta`, within 0-100.
pub async fn adjust_device<C: ConnectionTrait>(
    txn: &C,
    user_id: Uuid,
    fingerprint: &str,
    delta: f64,
) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "update trusted_devices set trust_score = least(100, greatest(0, trust_score + $3::numeric)) \
          where user_id = $1 and device_fingerprint = $2",
        [user_id.into(), fingerprint.into(), delta.into()],
    ))
    .await?;
    Ok(())
}
