//! Single-use, short-lived tokens sent to a user by email: password reset and email
//! verification (ASVS 6.4.1: random, time-limited, single use, stored only as a hash).
//!
//! A token is `<tenant id>.<256 random bits>` like a refresh token: the tenant part tells
//! the gateway which tenant transaction to look in; only the SHA-256 of the whole token
//! is stored. Spending one is a conditional UPDATE, so of two concurrent uses only one
//! can succeed.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

use super::tokens;

/// What a token is for; a token of one purpose never works for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    EmailVerification,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "password_reset",
            Purpose::EmailVerification => "email_verification",
        }
    }
}

/// At most this many unexpired tokens of one purpose per user: beyond them, a request
/// sends nothing (it cannot be used to flood someone's mailbox).
pub const MAX_OUTSTANDING: i64 = 3;

/// Issues a token for `user_id`, unless the user already has [`MAX_OUTSTANDING`] live
/// ones (then None).
pub async fn issue<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    purpose: Purpose,
    ttl_secs: u64,
) -> Result<Option<(String, DateTime<Utc>)>, DbErr> {
    let token = tokens::new_tenant_token(tenant_id);
    // Concurrent requests for one user queue here, so the count below is exact.
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select 1 from users where user_id = $1 for update",
        [user_id.into()],
    ))
    .await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into account_tokens (tenant_id, user_id, purpose, token_hash, expires_at) \
             select $1, $2, $3, $4, now() + make_interval(secs => $5) \
              where (select count(*) from account_tokens \
                      where tenant_id = $1 and user_id = $2 and purpose = $3 \
                        and used_at is null and expires_at > now()) < $6 \
             returning expires_at",
            [
                tenant_id.into(),
                user_id.into(),
                purpose.as_str().into(),
                tokens::token_hash(&token).into(),
                (ttl_secs as f64).into(),
                MAX_OUTSTANDING.into(),
            ],
        ))
        .await?;
    match row {
        Some(row) => Ok(Some((token, row.try_get("", "expires_at")?))),
        None => Ok(None),
    }
}

/// The user a live, unused token of `purpose` belongs to, without spending it (the row
/// is locked until the transaction ends, so a concurrent use waits and then fails).
pub async fn peek<C: ConnectionTrait>(txn: &C, token: &str, purpose: Purpose) -> Result<Option<Uuid>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select user_id from account_tokens \
              where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now() \
              for update",
            [tokens::token_hash(token).into(), purpose.as_str().into()],
        ))
        .await?;
    row.map(|r| r.try_get("", "user_id")).transpose()
}

/// Spends the token: returns its user when it was live and unused, and marks every other
/// outstanding token of the user for the same purpose used too (one reset ends them all).
pub async fn spend<C: ConnectionTrait>(
    txn: &C,
    token: &str,
    purpose: Purpose,
) -> Result<Option<Uuid>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update account_tokens set used_at = now() \
              where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now() \
              returning user_id",
            [tokens::token_hash(token).into(), purpose.as_str().into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let user_id: Uuid = row.try_get("", "user_id")?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "update account_tokens set used_at = now() \
          where user_id = $1 and purpose = $2 and used_at is null",
        [user_id.into(), purpose.as_str().into()],
    ))
    .await?;
    Ok(Some(user_id))
}

/// Ends every outstanding token of the user (its email address changed: the links went
/// to the old one).
pub async fn revoke_all<C: ConnectionTrait>(txn: &C, user_id: Uuid) -> Result<u64, DbErr> {
    let result = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update account_tokens set used_at = now() where user_id = $1 and used_at is null",
            [user_id.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}
