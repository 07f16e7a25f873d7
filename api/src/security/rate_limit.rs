//! Adaptive rate limiting, checked before an operation touches its tenant transaction.
//!
//! - **Writes** (mutations) count in PostgreSQL, so every gateway copy shares one budget:
//!   - public endpoints (`login`, `refreshSession`, `register`, password reset, email
//!     verification), and any mutation sent without a session, count per client address
//!     and root field *across tenants* (`ultracore_count_address_requests`: naming another
//!     tenant's slug buys no fresh budget);
//!   - every other mutation counts per user and root field, and per address and root field
//!     inside the tenant, in `rate_limit_entries` (`ultracore_count_requests`). The user's
//!     limit is the endpoint's base limit times a trust multiplier (0.5 at trust 0, 1.0 at
//!     50, 1.5 at 100) fixed when the window opens.
//!
//!   The counting runs in its own short transaction and commits before the operation
//!   starts, so a mutation that fails (and rolls back) still counts. Refused requests count
//!   too: a client that keeps sending past `offender_factor` times its limit is blocked for
//!   `offender_block_secs` rather than until the window ends.
//! - **Reads** (queries, subscription starts) count in memory, per user (per address when
//!   anonymous) and per copy: a read never pays a database write.
//!
//! A refusal is `RATE_LIMITED` with `retryAfter` in seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_graphql::parser::types::OperationType;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use uuid::Uuid;

use crate::auth::permissions::Principal;
use crate::config::RateLimitConfig;
use crate::db::{Access, TenantScope, begin_tenant_transaction};
use crate::graphql::errors::ApiError;

/// The gateway's limiter: the settings plus this copy's read windows.
pub struct RateLimiter {
    config: RateLimitConfig,
    statement_timeout_ms: u64,
    reads: ReadWindows,
}

/// Who a read is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ReadSubject {
    User(Uuid),
    Address(IpAddr),
}

/// Fixed in-memory windows: subject → (window number, reads in it).
struct ReadWindows {
    windows: Mutex<HashMap<ReadSubject, (u64, u32)>>,
}

/// Subjects kept before stale windows are swept out (bounds memory under address churn).
const MAX_READ_SUBJECTS: usize = 100_000;

impl RateLimiter {
    pub fn new(config: RateLimitConfig, statement_timeout_ms: u64) -> RateLimiter {
        RateLimiter {
            config,
            statement_timeout_ms,
            reads: ReadWindows {
                windows: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Admits or refuses one operation of `kind` selecting `root_fields` (name and times
    /// selected). `principal` is the caller the token claims (checked later against the
    /// database); `ip` the client address, when there is a socket.
    pub async fn admit(
        &self,
        db: &DatabaseConnection,
        principal: Option<&Principal>,
        ip: Option<IpAddr>,
        kind: OperationType,
        root_fields: &[(String, u32)],
    ) -> Result<(), ApiError> {
        if !self.config.enabled || root_fields.is_empty() {
            return Ok(());
        }
        match kind {
            OperationType::Mutation => self.admit_writes(db, principal, ip, root_fields).await,
            OperationType::Query | OperationType::Subscription => {
                let subject = match (principal, ip) {
                    (Some(p), _) => ReadSubject::User(p.user_id),
                    (None, Some(ip)) => ReadSubject::Address(ip),
                    (None, None) => return Ok(()),
                };
                self.reads.admit(subject, &self.config)
            }
        }
    }

    async fn admit_writes(
        &self,
        db: &DatabaseConnection,
        principal: Option<&Principal>,
        ip: Option<IpAddr>,
        root_fields: &[(String, u32)],
    ) -> Result<(), ApiError> {
        let c = &self.config;
        let mut wait: Option<u32> = None;
        let (by_address, by_user): (Vec<_>, Vec<_>) = root_fields
            .iter()
            .partition(|(field, _)| principal.is_none() || RateLimitConfig::is_public(field));

        if let Some(ip) = ip {
            for (field, hits) in &by_address {
                let row = db
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "select ultracore_count_address_requests($1::inet, $2, $3, $4, $5, $6, $7, $8) as wait",
                        [
                            ip.to_string().into(),
                            field.as_str().into(),
                            clamp(*hits).into(),
                            clamp(c.window_secs.max(1)).into(),
                            clamp(c.base_limit(field)).into(),
                            clamp(c.offender_factor.max(1)).into(),
                            clamp(c.offender_block_secs).into(),
                            clamp(c.retention_secs).into(),
                        ],
                    ))
                    .await
                    .map_err(ApiError::internal)?;
                wait = wait.max(seconds_to_wait(row).map_err(ApiError::internal)?);
            }
        }

        if let (Some(principal), false) = (principal, by_user.is_empty()) {
            let counted = async {
                let txn = begin_tenant_transaction(
                    db,
                    TenantScope::user(principal.tenant_id, principal.user_id),
                    Access::ReadWrite,
                    self.statement_timeout_ms,
                )
                .await?;
                let mut wait: Option<u32> = None;
                for (field, hits) in &by_user {
                    let base = c.base_limit(field);
                    let row = txn
                        .query_one_raw(Statement::from_sql_and_values(
                            DbBackend::Postgres,
                            "select ultracore_count_requests($1, $2, $3::inet, $4, $5, $6, $7, $8, $9, $10, $11) as wait",
                            [
                                principal.tenant_id.into(),
                                principal.user_id.into(),
                                ip.map(|ip| ip.to_string()).into(),
                                field.as_str().into(),
                                clamp(*hits).into(),
                                clamp(c.window_secs.max(1)).into(),
                                clamp(base).into(),
                                clamp(base.saturating_mul(c.address_factor.max(1))).into(),
                                clamp(c.offender_factor.max(1)).into(),
                                clamp(c.offender_block_secs).into(),
                                clamp(c.retention_secs).into(),
                            ],
                        ))
                        .await?;
                    wait = wait.max(seconds_to_wait(row)?);
                }
                txn.commit().await?;
                Ok::<_, DbErr>(wait)
            }
            .await;
            match counted {
                Ok(w) => wait = wait.max(w),
                // The token names a user the database does not have (a foreign key
                // refuses the window): the session check that follows answers it.
                Err(e) if is_foreign_key_violation(&e) => {}
                Err(e) => return Err(ApiError::internal(e)),
            }
        }

        match wait {
            Some(secs) => Err(ApiError::RateLimited {
                retry_after_secs: u64::from(secs),
            }),
            None => Ok(()),
        }
    }
}

impl ReadWindows {
    fn admit(&self, subject: ReadSubject, config: &RateLimitConfig) -> Result<(), ApiError> {
        let window_secs = u64::from(config.window_secs.max(1));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let window = now / window_secs;
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= MAX_READ_SUBJECTS {
            windows.retain(|_, (w, _)| *w == window);
        }
        let entry = windows.entry(subject).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > config.read_limit.max(1) {
            let retry_after_secs = ((window + 1) * window_secs).saturating_sub(now).max(1);
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        Ok(())
    }
}

/// Settings are u32; the SQL functions take integer.
fn clamp(value: u32) -> i32 {
    value.min(i32::MAX as u32) as i32
}

fn seconds_to_wait(row: Option<sea_orm::QueryResult>) -> Result<Option<u32>, DbErr> {
    let Some(row) = row else { return Ok(None) };
    let wait: Option<i32> = row.try_get("", "wait")?;
    Ok(wait.map(|secs| secs.max(1) as u32))
}

fn is_foreign_key_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_limit_are_refused_until_the_window_turns() {
        let config = RateLimitConfig {
            read_limit: 3,
            window_secs: 3600,
            ..Default::default()
        };
        let windows = ReadWindows {
            windows: Mutex::new(HashMap::new()),
        };
        let alice = ReadSubject::User(Uuid::from_u128(1));
        let bob = ReadSubject::User(Uuid::from_u128(2));
        for _ in 0..3 {
            windows.admit(alice, &config).expect("within the limit");
        }
        match windows.admit(alice, &config) {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=3600).contains(&retry_after_secs))
            }
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
        windows
            .admit(bob, &config)
            .expect("another subject has its own window");
        // An old window no longer counts.
        windows
            .windows
            .lock()
            .expect("lock")
            .get_mut(&alice)
            .expect("alice")
            .0 -= 1;
        windows.admit(alice, &config).expect("a new window");
    }
}
