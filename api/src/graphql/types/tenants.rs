//! The caller's tenant.

use async_graphql::Object;
use chrono::{DateTime, Utc};
use entity::tenants;
use uuid::Uuid;

use super::super::errors::ApiResult;
use super::enums::{DbEnum, TenantStatus};

/// The bank or fintech the caller belongs to.
pub struct Tenant(pub tenants::Model);

#[Object]
impl Tenant {
    async fn id(&self) -> Uuid {
        self.0.tenant_id
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn status(&self) -> ApiResult<TenantStatus> {
        Ok(TenantStatus::from_db(&self.0.status)?)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}
