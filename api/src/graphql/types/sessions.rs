//! Sessions (refresh tokens) and trusted devices. The token itself is never exposed:
//! only its row.

use async_graphql::{Context, Object};
use chrono::{DateTime, Utc};
use entity::{refresh_tokens, trusted_devices};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::errors::ApiResult;
use super::super::scalars::IpAddress;
use super::enums::{DbEnum, DeviceType};
use super::{User, load_user};

/// One session: a refresh-token family of one user on one device.
pub struct Session(pub refresh_tokens::Model);

#[Object]
impl Session {
    async fn id(&self) -> Uuid {
        self.0.token_id
    }
    async fn user_id(&self) -> Uuid {
        self.0.user_id
    }
    async fn user(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        load_user(ctx, Some(self.0.user_id)).await
    }
    /// The session this token belongs to (every rotation keeps it); the `sid` of its
    /// access tokens.
    async fn family_id(&self) -> Uuid {
        self.0.family_id
    }
    /// When this token was last exchanged (null for the current token of a session).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// Neither revoked nor expired.
    async fn is_active(&self) -> bool {
        self.0.revoked_at.is_none() && self.0.expires_at > Utc::now()
    }
    /// When this session's sign-in passed a second factor (null: password only).
    async fn mfa_verified_at(&self) -> Option<DateTime<Utc>> {
        self.0.mfa_verified_at
    }
    /// Shown to the session's own user only (see TrustedDevice.deviceFingerprint).
    async fn device_fingerprint(&self, ctx: &Context<'_>) -> Option<&str> {
        own_only(ctx, self.0.user_id, self.0.device_fingerprint.as_deref())
    }
    async fn ip_address(&self) -> Option<IpAddress> {
        self.0.ip_address.map(IpAddress::from)
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A device a user signs in from, with how far it is trusted.
pub struct TrustedDevice(pub trusted_devices::Model);

#[Object]
impl TrustedDevice {
    async fn id(&self) -> Uuid {
        self.0.device_id
    }
    async fn user_id(&self) -> Uuid {
        self.0.user_id
    }
    async fn user(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        load_user(ctx, Some(self.0.user_id)).await
    }
    /// Shown to the device's own user only: where a tenant lets trusted devices skip
    /// the second factor, a fingerprint plus a password would be enough to sign in, so
    /// staff who list devices must not learn it.
    async fn device_fingerprint(&self, ctx: &Context<'_>) -> Option<&str> {
        own_only(ctx, self.0.user_id, Some(self.0.device_fingerprint.as_str()))
    }
    async fn device_name(&self) -> Option<&str> {
        self.0.device_name.as_deref()
    }
    async fn device_type(&self) -> ApiResult<Option<DeviceType>> {
        Ok(self
            .0
            .device_type
            .as_deref()
            .map(DeviceType::from_db)
            .transpose()?)
    }
    /// 0 to 100.
    async fn trust_score(&self) -> Decimal {
        self.0.trust_score
    }
    async fn is_trusted(&self) -> bool {
        self.0.is_trusted
    }
    /// When the user trusted the device (null when not trusted).
    async fn trusted_at(&self) -> Option<DateTime<Utc>> {
        self.0.trusted_at
    }
    async fn first_seen_at(&self) -> DateTime<Utc> {
        self.0.first_seen_at
    }
    async fn last_seen_at(&self) -> DateTime<Utc> {
        self.0.last_seen_at
    }
    async fn last_ip_address(&self) -> Option<IpAddress> {
        self.0.last_ip_address.map(IpAddress::from)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// `value` when the caller is `owner`, otherwise None.
fn own_only<'a>(ctx: &Context<'_>, owner: Uuid, value: Option<&'a str>) -> Option<&'a str> {
    let caller = super::super::context::request(ctx).principal().ok()?.user_id;
    value.filter(|_| caller == owner)
}
