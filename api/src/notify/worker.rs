//! Delivery of the notification outbox: find the tenants with a message due, then, in
//! that tenant's own transaction, claim one message at a time, decrypt it, send it and
//! record the outcome.
//!
//! Claiming is `FOR UPDATE SKIP LOCKED` inside the transaction that later records the
//! outcome, so any number of gateway copies can run passes at once and each message is
//! sent by one of them. One message per transaction keeps the only duplicate case small:
//! a crash (or lost database) after the relay accepted a message but before the commit
//! sends that one message again on a later pass (its SMTP Message-ID stays the same).
//!
//! The serving role is under forced RLS and cannot list tenants; the SECURITY DEFINER
//! function `ultracore_tenants_with_due_notifications()` (migration 0013) names the
//! tenants with work and reveals nothing else.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement};
use uuid::Uuid;

use super::sender::{OutgoingMessage, SendError, Sender};
use crate::auth::crypto::{CryptoError, KeyRing};
use crate::config::Config;
use crate::db::{Access, TenantScope, begin_tenant_transaction};

/// The longest wait between two attempts of one message, however many it has had.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// `last_error` is for an operator's eyes; a relay's long reply is cut here.
const MAX_ERROR_CHARS: usize = 500;

/// How the delivery loop behaves (from `notifications.*` and the database settings).
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Pause between passes that left nothing due.
    pub interval: Duration,
    /// Most messages of one tenant per pass.
    pub batch_size: u32,
    /// Attempts before a message is marked `failed`.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled for each further one (capped at an hour).
    pub retry_backoff: Duration,
    /// Bound on one send.
    pub send_timeout: Duration,
    /// `statement_timeout` of the delivery transactions.
    pub statement_timeout_ms: u64,
}

impl DeliverySettings {
    pub fn from_config(config: &Config) -> DeliverySettings {
        let n = &config.notifications;
        DeliverySettings {
            interval: Duration::from_millis(n.interval_ms.max(1)),
            batch_size: n.batch_size.max(1),
            max_attempts: n.max_attempts.max(1),
            retry_backoff: Duration::from_millis(n.retry_backoff_ms),
            send_timeout: Duration::from_millis(n.send_timeout_ms.max(1)),
            statement_timeout_ms: config.database.statement_timeout_ms,
        }
    }

    /// Wait after the `attempts`-th failed attempt (1 for the first).
    fn backoff_after(&self, attempts: i32) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
        self.retry_backoff
            .saturating_mul(1u32 << doublings)
            .min(MAX_BACKOFF)
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Tenants that had a message due.
    pub tenants: usize,
    pub sent: usize,
    /// Attempts that failed and will be retried.
    pub retrying: usize,
    /// Messages given up on in this pass (status `failed`).
    pub failed: usize,
    /// Tenants whose pass stopped on a database error (logged; retried next pass).
    pub tenant_errors: usize,
    /// Some tenant used its whole batch: more may be due right now.
    pub more: bool,
}

/// Runs passes until `shutdown` resolves: immediately again when a tenant had more than a
/// batch, otherwise every `settings.interval`. When the signal comes during a pass, the
/// message being sent is finished and recorded (its send is bounded by `send_timeout`)
/// and the pass ends there: stopping never leaves a sent message unrecorded, and never
/// waits for a whole pass.
pub async fn run_delivery(
    db: DatabaseConnection,
    keys: Arc<KeyRing>,
    sender: Arc<dyn Sender>,
    settings: DeliverySettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(
        interval_ms = settings.interval.as_millis() as u64,
        "notification delivery started"
    );
    let stop = AtomicBool::new(false);
    loop {
        let pass = deliver(&db, &keys, sender.as_ref(), &settings, &stop);
        let mut pass = std::pin::pin!(pass);
        let result = tokio::select! {
            biased;
            result = &mut pass => result,
            () = &mut shutdown => {
                stop.store(true, Ordering::Relaxed);
                pass.await
            }
        };
        let more = match result {
            Ok(report) => {
                if report.sent + report.retrying + report.failed > 0 {
                    tracing::info!(
                        sent = report.sent,
                        retrying = report.retrying,
                        failed = report.failed,
                        "notification delivery pass"
                    );
                }
                report.more
            }
            Err(e) => {
                tracing::warn!(error = %e, "notification delivery pass failed; retrying after the interval");
                false
            }
        };
        // `shutdown` has completed and must not be polled again.
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let pause = if more { Duration::ZERO } else { settings.interval };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("notification delivery stopped");
}

/// One pass over every tenant with a message due; at most `settings.batch_size` messages
/// per tenant. An error in one tenant's work is logged and counted, and the other tenants
/// still get their turn; only failing to list the tenants is an error of the pass.
pub async fn deliver_pending(
    db: &DatabaseConnection,
    keys: &KeyRing,
    sender: &dyn Sender,
    settings: &DeliverySettings,
) -> Result<DeliveryReport, DbErr> {
    deliver(db, keys, sender, settings, &AtomicBool::new(false)).await
}

/// [`deliver_pending`], ending early (between two messages) once `stop` is set.
async fn deliver(
    db: &DatabaseConnection,
    keys: &KeyRing,
    sender: &dyn Sender,
    settings: &DeliverySettings,
    stop: &AtomicBool,
) -> Result<DeliveryReport, DbErr> {
    let tenants = due_tenants(db).await?;
    let mut report = DeliveryReport {
        tenants: tenants.len(),
        ..DeliveryReport::default()
    };
    for tenant_id in tenants {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Err(e) = deliver_for_tenant(db, keys, sender, settings, tenant_id, stop, &mut report).await {
            tracing::warn!(%tenant_id, error = %e, "notification delivery for a tenant failed");
            report.tenant_errors += 1;
        }
    }
    Ok(report)
}

async fn due_tenants(db: &DatabaseConnection) -> Result<Vec<Uuid>, DbErr> {
    db.query_all_raw(Statement::from_string(
        DbBackend::Postgres,
        "select t as tenant_id from ultracore_tenants_with_due_notifications() as t",
    ))
    .await?
    .iter()
    .map(|row| row.try_get::<Uuid>("", "tenant_id"))
    .collect()
}

/// A claimed row, body still sealed.
struct Claimed {
    notification_id: Uuid,
    recipient: String,
    subject: String,
    sealed_body: String,
    attempts: i32,
    created_at: DateTime<Utc>,
}

impl Claimed {
    fn from_row(row: &QueryResult) -> Result<Claimed, DbErr> {
        Ok(Claimed {
            notification_id: row.try_get("", "notification_id")?,
            recipient: row.try_get("", "recipient")?,
            subject: row.try_get("", "subject")?,
            sealed_body: row.try_get("", "body")?,
            attempts: row.try_get("", "attempts")?,
            created_at: row.try_get("", "created_at")?,
        })
    }
}

async fn deliver_for_tenant(
    db: &DatabaseConnection,
    keys: &KeyRing,
    sender: &dyn Sender,
    settings: &DeliverySettings,
    tenant_id: Uuid,
    stop: &AtomicBool,
    report: &mut DeliveryReport,
) -> Result<(), DbErr> {
    // Times are written with clock_timestamp(), not now() (the transaction's start): a
    // slow send must not shorten the backoff that follows it.
    //
    // A message that failed in this pass waits for the next one, even with no backoff:
    // one pass must not spend all of a message's attempts.
    let mut attempted: Vec<Uuid> = Vec::new();
    for _ in 0..settings.batch_size {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let txn = begin_tenant_transaction(
            db,
            TenantScope::tenant(tenant_id),
            Access::ReadWrite,
            settings.statement_timeout_ms,
        )
        .await?;
        // RLS limits this to the transaction's tenant. A suspended tenant's messages wait
        // (pending) until it is active again. A row another copy holds is skipped, not
        // waited for.
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select o.notification_id, o.recipient, o.subject, o.body, o.attempts, o.created_at \
                   from notification_outbox o \
                  where o.status = 'pending' and o.next_attempt_at <= now() \
                    and o.notification_id <> all($1) \
                    and exists (select 1 from tenants t where t.tenant_id = o.tenant_id and t.status = 'active') \
                  order by o.created_at, o.notification_id \
                  limit 1 \
                    for update of o skip locked",
                [attempted.clone().into()],
            ))
            .await?;
        let Some(row) = row else {
            txn.commit().await?;
            return Ok(());
        };
        let claimed = Claimed::from_row(&row)?;
        attempted.push(claimed.notification_id);
        match send_one(keys, sender, settings, tenant_id, &claimed).await {
            Ok(()) => {
                txn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "update notification_outbox \
                        set status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1, last_error = null \
                      where notification_id = $1",
                    [claimed.notification_id.into()],
                ))
                .await?;
                txn.commit().await?;
                metrics::counter!("ultracore_notifications_total", "outcome" => "sent").increment(1);
                report.sent += 1;
            }
            Err(error) => {
                let attempts = claimed.attempts.saturating_add(1);
                let max_attempts = i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
                let give_up = error.is_permanent() || attempts >= max_attempts;
                metrics::counter!(
                    "ultracore_notifications_total",
                    "outcome" => if give_up { "failed" } else { "retry" }
                )
                .increment(1);
                let backoff_ms = settings.backoff_after(attempts).as_millis() as i64;
                txn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "update notification_outbox \
                        set attempts = attempts + 1, last_error = $2, \
                            status = case when $3 then 'failed' else 'pending' end, \
                            next_attempt_at = clock_timestamp() + $4 * interval '1 millisecond' \
                      where notification_id = $1",
                    [
                        claimed.notification_id.into(),
                        truncate(&error.to_string()).into(),
                        give_up.into(),
                        backoff_ms.into(),
                    ],
                ))
                .await?;
                txn.commit().await?;
                let notification_id = claimed.notification_id;
                if give_up {
                    report.failed += 1;
                    tracing::warn!(%notification_id, %tenant_id, attempts, %error, "notification not delivered; giving up");
                } else {
                    report.retrying += 1;
                    tracing::warn!(
                        %notification_id, %tenant_id, attempts, %error, retry_in_ms = backoff_ms,
                        "notification not delivered; will retry"
                    );
                }
            }
        }
    }
    report.more = true;
    Ok(())
}

/// Decrypts and sends one claimed message; the plaintext body lives only in here.
async fn send_one(
    keys: &KeyRing,
    sender: &dyn Sender,
    settings: &DeliverySettings,
    tenant_id: Uuid,
    claimed: &Claimed,
) -> Result<(), SendError> {
    let body = keys
        .decrypt(&claimed.sealed_body, claimed.notification_id.as_bytes())
        .map_err(|e| match e {
            // The operator can still add the missing key to data_previous_keys.
            CryptoError::UnknownKey(_) => SendError::Transient(format!("cannot decrypt the body: {e}")),
            _ => SendError::Permanent(format!("cannot decrypt the body: {e}")),
        })?;
    let body = String::from_utf8(body)
        .map_err(|_| SendError::Permanent("the decrypted body is not UTF-8".into()))?;
    let message = OutgoingMessage {
        notification_id: claimed.notification_id,
        tenant_id,
        recipient: claimed.recipient.clone(),
        subject: claimed.subject.clone(),
        body,
        created_at: claimed.created_at,
    };
    match tokio::time::timeout(settings.send_timeout, sender.send(&message)).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Transient(format!(
            "no answer within {} ms",
            settings.send_timeout.as_millis()
        ))),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}
