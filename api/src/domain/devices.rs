//! Trusted devices: renaming and revoking trust (the owner, or devices:manage).

use entity::trusted_devices;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QuerySelect, Set};
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
