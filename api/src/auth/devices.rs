//! The devices a user signs in from, as the login path sees them: looked up before the
//! second-factor decision, recorded (first seen, last seen, last IP) on every sign-in.
//!
//! A fingerprint is whatever stable identifier the client sends (an app instance id, a
//! browser's stored random id). It is a claim, not a proof: it only ever relaxes the
//! second factor for a device the user trusted from a session that passed MFA, and
//! only when the tenant opts in (README, "Trusted devices").

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

/// What the login path knows of a device before deciding on the second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub device_id: Uuid,
    pub is_trusted: bool,
    pub trusted_at: Option<DateTime<Utc>>,
}

/// The user's device with this fingerprint, if they have signed in from it before.
pub async fn find<C: ConnectionTrait>(
    txn: &C,
    user_id: Uuid,
    fingerprint: &str,
) -> Result<Option<KnownDevice>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select device_id, is_trusted, trusted_at from trusted_devices \
              where user_id = $1 and device_fingerprint = $2",
            [user_id.into(), fingerprint.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(KnownDevice {
            device_id: r.try_get("", "device_id")?,
            is_trusted: r.try_get("", "is_trusted")?,
            trusted_at: r.try_get("", "trusted_at")?,
        })
    })
    .transpose()
}

/// Records a sign-in from the device: created on first sight, otherwise its last-seen
/// time and IP move. One statement, so concurrent sign-ins from a new device make one row.
pub async fn record_sign_in<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    fingerprint: &str,
    ip: Option<String>,
    user_agent: Option<&str>,
) -> Result<Uuid, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into trusted_devices (tenant_id, user_id, device_fingerprint, device_type, last_ip_address) \
             values ($1, $2, $3, $4, $5::inet) \
             on conflict (tenant_id, user_id, device_fingerprint) do update \
                set last_seen_at = now(), last_ip_address = excluded.last_ip_address \
             returning device_id",
            [
                tenant_id.into(),
                user_id.into(),
                fingerprint.into(),
                user_agent.map(device_type).into(),
                ip.into(),
            ],
        ))
        .await?;
    let row = row.ok_or_else(|| DbErr::RecordNotInserted)?;
    row.try_get("", "device_id")
}

/// A rough device type from the user agent, for the user's device list only (nothing
/// decides on it).
pub fn device_type(user_agent: &str) -> &'static str {
    let ua = user_agent.to_ascii_lowercase();
    if ua.contains("ipad") || ua.contains("tablet") {
        "tablet"
    } else if ua.contains("mobile") || ua.contains("iphone") || ua.contains("android") {
        "mobile"
    } else if ua.contains("windows") || ua.contains("macintosh") || ua.contains("x11") || ua.contains("linux")
    {
        "desktop"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::device_type;

    #[test]
    fn user_agents_map_to_device_types() {
        assert_eq!(
            device_type("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"),
            "mobile"
        );
        assert_eq!(device_type("Mozilla/5.0 (iPad; CPU OS 17_0)"), "tablet");
        assert_eq!(
            device_type("Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
            "desktop"
        );
        assert_eq!(device_type("curl/8.5.0"), "other");
    }
}
