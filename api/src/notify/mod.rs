//! Messages to users (password reset, email verification, security alerts) through the
//! `notification_outbox` table.
//!
//! A message is written in the same transaction as its cause ([`enqueue`]), so it exists
//! if and only if the cause committed; a sender delivers it afterwards. The body can
//! hold a secret (a reset link), so it is stored encrypted under the data key, bound to
//! the notification's id; only the sender decrypts it.
//!
//! Delivery: [`worker`] claims due messages tenant by tenant and hands them to a
//! [`sender::Sender`] (files in development, SMTP in production).

pub mod sender;
pub mod worker;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

use crate::auth::crypto::KeyRing;

/// One message to queue.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    /// An email address.
    pub recipient: &'a str,
    pub subject: &'a str,
    /// Plain text; may contain a secret (it is encrypted before it is stored).
    pub body: &'a str,
}

/// Queues `message` on `txn`; returns the notification id.
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    keys: &KeyRing,
    message: NewNotification<'_>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    let sealed_body = keys.encrypt(message.body.as_bytes(), id.as_bytes());
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into notification_outbox (notification_id, tenant_id, user_id, recipient, subject, body) \
         values ($1, $2, $3, $4, $5, $6)",
        [
            id.into(),
            message.tenant_id.into(),
            message.user_id.into(),
            message.recipient.into(),
            message.subject.into(),
            sealed_body.into(),
        ],
    ))
    .await?;
    Ok(id)
}
