//! Trusted devices: trusting the current one after MFA, renaming and revoking trust
//! (the owner, or devices:manage).

use entity::trusted_devices;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde_json::json;
use uuid::Uuid;

use super::threats::check_label;
use super::{Actor, DomainError};
use crate::auth::permissions::{Permission, Principal};

pub fn snapshot(d: &trusted_devices::Model) -> serde_json::Value {
    json!({
        "user_id": d.user_id,
        "device_name": d.device_name,
        "device_type": d.device_type,
        "is_trusted": d.is_trusted,
        "trusted_at": d.trusted_at,
        "trust_score": d.trust_score,
    })
}

/// The device, locked, if the caller may change it: their own, or with devices:manage.
/// Otherwise NOT_FOUND, so a customer cannot learn which device ids exist.
async fn lock_device<C: ConnectionTrait>(
    txn: &C,
    by: &Principal,
    id: Uuid,
) -> Result<trusted_devices::Model, DomainError> {
    let device = trusted_devices::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?;
    match device {
        Some(d) if d.user_id == by.user_id || by.can(Permission::DevicesManage) => Ok(d),
        _ => Err(DomainError::NotFound("no such device".into())),
    }
}

pub async fn rename<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
    name: String,
) -> Result<trusted_devices::Model, DomainError> {
    check_label("device name", &name, 255)?;
    let device = lock_device(txn, by, id).await?;
    let old = snapshot(&device);
    let mut active: trusted_devices::ActiveModel = device.into();
    active.device_name = Set(Some(name.trim().to_string()));
    let updated = active.update(txn).await?;
    actor
        .audit(
            txn,
            "device.rename",
            "trusted_device",
            id,
            Some(old),
            Some(snapshot(&updated)),
        )
        .await?;
    Ok(updated)
}

/// The device is no longer trusted: the next sign-in from it is treated as new.
pub async fn revoke_trust<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
) -> Result<trusted_devices::Model, DomainError> {
    let device = lock_device(txn, by, id).await?;
    let old = snapshot(&device);
    let mut active: trusted_devices::ActiveModel = device.into();
    active.is_trusted = Set(false);
    active.trusted_at = Set(None);
    let updated = active.update(txn).await?;
    actor
        .audit(
            txn,
            "device.revoke_trust",
            "trusted_device",
            id,
            Some(old),
            Some(snapshot(&updated)),
        )
        .await?;
    Ok(updated)
}

/// Trusts the device the caller's session signed in from. Only a session whose sign-in
/// passed a second factor may do it (a stolen password alone must not make a device
/// trusted), and only for the caller's own device.
pub async fn trust_current<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    name: Option<String>,
) -> Result<trusted_devices::Model, DomainError> {
    if let Some(name) = &name {
        check_label("device name", name, 255)?;
    }
    let session = txn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "select device_fingerprint, mfa_verified_at is not null as mfa_verified from refresh_tokens \
              where family_id = $1 and user_id = $2 and revoked_at is null and expires_at > now() \
              order by created_at desc limit 1",
            [by.session_id.into(), by.user_id.into()],
        ))
        .await?
        .ok_or_else(|| DomainError::NotFound("the session has ended".into()))?;
    if !session.try_get::<bool>("", "mfa_verified")? {
        return Err(DomainError::Invalid(
            "only a session that signed in with a second factor can trust its device".into(),
        ));
    }
    let fingerprint: Option<String> = session.try_get("", "device_fingerprint")?;
    let fingerprint = fingerprint.ok_or_else(|| {
        DomainError::Invalid(
            "this session signed in without a deviceFingerprint: there is no device to trust".into(),
        )
    })?;
    let device = trusted_devices::Entity::find()
        .filter(trusted_devices::Column::UserId.eq(by.user_id))
        .filter(trusted_devices::Column::DeviceFingerprint.eq(fingerprint))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound("no such device".into()))?;
    let id = device.device_id;
    let old = snapshot(&device);
    let mut active: trusted_devices::ActiveModel = device.into();
    active.is_trusted = Set(true);
    active.trusted_at = Set(Some(chrono::Utc::now()));
    if let Some(name) = name {
        active.device_name = Set(Some(name.trim().to_string()));
    }
    let updated = active.update(txn).await?;
    actor
        .audit(
            txn,
            "device.trust",
            "trusted_device",
            id,
            Some(old),
            Some(snapshot(&updated)),
        )
        .await?;
    crate::security::events::record(
        txn,
        crate::security::events::NewSecurityEvent {
            tenant_id: by.tenant_id,
            user_id: Some(by.user_id),
            event_type: "device_trusted",
            category: "authentication",
            severity: "low",
            action: "allow",
            description: "the user trusted the device of a session that passed MFA",
            ip: actor.ip.clone(),
            device_fingerprint: Some(updated.device_fingerprint.clone()),
            user_agent: actor.user_agent.clone(),
            ..Default::default()
        },
    )
    .await?;
    Ok(updated)
}
