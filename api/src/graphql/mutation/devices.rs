//! Trusted devices.

use async_graphql::{Context, Object};
use uuid::Uuid;

use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::types::TrustedDevice;
use crate::domain::devices;

#[derive(Default)]
pub struct DevicesMutation;

#[Object]
impl DevicesMutation {
    /// Renames a device: one's own, or any with devices:manage.
    async fn rename_trusted_device(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        name: String,
    ) -> ApiResult<TrustedDevice> {
        let req = request(ctx);
        let device = devices::rename(req.db()?, &req.actor()?, req.principal()?, id, name)
            .await
            .map_err(ApiError::from)?;
        Ok(TrustedDevice(device))
    }

    /// Trusts the device this session signed in from (it must have signed in with a
    /// second factor and a deviceFingerprint), optionally naming it. Where the tenant
    /// allows it, sign-ins from a trusted device skip the second factor for a while.
    async fn trust_device(&self, ctx: &Context<'_>, name: Option<String>) -> ApiResult<TrustedDevice> {
        let req = request(ctx);
        let device = devices::trust_current(req.db()?, &req.actor()?, req.principal()?, name)
            .await
            .map_err(ApiError::from)?;
        Ok(TrustedDevice(device))
    }

    /// Stops trusting a device: one's own, or any with devices:manage.
    async fn revoke_device_trust(&self, ctx: &Context<'_>, id: Uuid) -> ApiResult<TrustedDevice> {
        let req = request(ctx);
        let device = devices::revoke_trust(req.db()?, &req.actor()?, req.principal()?, id)
            .await
            .map_err(ApiError::from)?;
        Ok(TrustedDevice(device))
    }
}
