//! Per-IP throttling of failed sign-ins, so the account lockout cannot be turned into a
//! cheap way to lock everyone out, and password spraying from one address stalls.
//!
//! Design (README, "Login throttling"):
//! - Failed sign-ins from one client IP are counted per tenant in fixed 15-minute
//!   windows, in `rate_limit_entries` (endpoint `login`), so every gateway copy shares
//!   the count. Every failure counts: wrong password, unknown user, wrong second factor,
//!   attempts on locked accounts.
//! - At the tenant's `login_failures_per_ip` (default 30) the IP is blocked for the rest
//!   of the window: its sign-ins answer RATE_LIMITED with a retry-after before any
//!   password is checked, so they neither reveal nor lock anything. The account lock
//!   needs 5 failures on one account; locking N accounts then needs N / 6 windows per
//!   address, and an attacker with many addresses is what the threat detectors (credential
//!   stuffing, password spraying) look for.
//! - A successful sign-in does not reset the IP's count (a sprayer who guesses one
//!   password must not earn a fresh budget).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

/// The endpoint name of sign-in windows.
pub const LOGIN: &str = "login";
/// Length of a counting window.
pub const WINDOW_SECS: i64 = 15 * 60;

/// Seconds until `ip` may try to sign in to the tenant again, when it is blocked now.
pub async fn login_retry_after<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    ip: &str,
) -> Result<Option<u64>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select ceil(extract(epoch from max(blocked_until) - now()))::bigint as retry_after \
               from rate_limit_entries \
              where tenant_id = $1 and ip_address = $2::inet and endpoint = $3 and user_id is null \
                and is_blocked and blocked_until > now()",
            [tenant_id.into(), ip.into(), LOGIN.into()],
        ))
        .await?;
    let retry_after: Option<i64> = match row {
        Some(row) => row.try_get("", "retry_after")?,
        None => None,
    };
    Ok(retry_after.map(|secs| secs.max(1) as u64))
}

/// Counts one failed sign-in from `ip` (one atomic upsert on the window's row) and
/// blocks the IP for the rest of the window when the count reaches `limit`. Returns
/// whether this failure blocked it.
pub async fn count_login_failure<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    ip: &str,
    limit: i64,
) -> Result<bool, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "with w as (select to_timestamp(floor(extract(epoch from now()) / $4) * $4) as start) \
             insert into rate_limit_entries (tenant_id, ip_address, endpoint, request_count, window_start, \
                                             window_end, base_limit, adaptive_limit, is_blocked, blocked_until) \
             select $1, $2::inet, $3, 1, w.start, w.start + make_interval(secs => $4), $5, $5, \
                    1 >= $5, case when 1 >= $5 then w.start + make_interval(secs => $4) end \
               from w \
             on conflict (tenant_id, ip_address, endpoint, window_start) where user_id is null do update set \
                request_count = rate_limit_entries.request_count + 1, \
                is_blocked = rate_limit_entries.is_blocked \
                             or rate_limit_entries.request_count + 1 >= rate_limit_entries.adaptive_limit, \
                blocked_until = case when rate_limit_entries.request_count + 1 >= rate_limit_entries.adaptive_limit \
                                     then rate_limit_entries.window_end \
                                     else rate_limit_entries.blocked_until end \
             returning is_blocked and request_count = adaptive_limit as blocked_now",
            [
                tenant_id.into(),
                ip.into(),
                LOGIN.into(),
                (WINDOW_SECS as f64).into(),
                (limit.clamp(1, i32::MAX as i64) as i32).into(),
            ],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<bool>("", "blocked_now"))
        .transpose()?
        .unwrap_or(false))
}

/// Blocks `ip` from signing in to the tenant for the rest of the current window (the
/// response of the stuffing and spraying detectors).
pub async fn block_login<C: ConnectionTrait>(txn: &C, tenant_id: Uuid, ip: &str) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "with w as (select to_timestamp(floor(extract(epoch from now()) / $4) * $4) as start) \
         insert into rate_limit_entries (tenant_id, ip_address, endpoint, request_count, window_start, \
                                         window_end, base_limit, adaptive_limit, is_blocked, blocked_until) \
         select $1, $2::inet, $3, 0, w.start, w.start + make_interval(secs => $4), 0, 0, true, \
                w.start + make_interval(secs => $4) \
           from w \
         on conflict (tenant_id, ip_address, endpoint, window_start) where user_id is null do update set \
            is_blocked = true, blocked_until = rate_limit_entries.window_end",
        [
            tenant_id.into(),
            ip.into(),
            LOGIN.into(),
            (WINDOW_SECS as f64).into(),
        ],
    ))
    .await?;
    Ok(())
}
