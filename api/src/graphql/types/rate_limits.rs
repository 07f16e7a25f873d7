//! Rate-limit windows.

use async_graphql::{Context, Object};
use chrono::{DateTime, Utc};
use entity::rate_limit_entries;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::errors::ApiResult;
use super::super::scalars::IpAddress;
use super::{User, load_user};

/// One rate-limit window for a user or an IP on one endpoint.
pub struct RateLimitEntry(pub rate_limit_entries::Model);

#[Object]
impl RateLimitEntry {
    async fn id(&self) -> Uuid {
        self.0.entry_id
    }
    async fn user_id(&self) -> Option<Uuid> {
        self.0.user_id
    }
    async fn user(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        load_user(ctx, self.0.user_id).await
    }
    async fn ip_address(&self) -> Option<IpAddress> {
        self.0.ip_address.map(IpAddress::from)
    }
    async fn endpoint(&self) -> &str {
        &self.0.endpoint
    }
    async fn request_count(&self) -> i32 {
        self.0.request_count
    }
    async fn window_start(&self) -> DateTime<Utc> {
        self.0.window_start
    }
    async fn window_end(&self) -> DateTime<Utc> {
        self.0.window_end
    }
    async fn base_limit(&self) -> i32 {
        self.0.base_limit
    }
    async fn adaptive_limit(&self) -> i32 {
        self.0.adaptive_limit
    }
    async fn trust_multiplier(&self) -> Decimal {
        self.0.trust_multiplier
    }
    async fn is_blocked(&self) -> bool {
        self.0.is_blocked
    }
    async fn blocked_until(&self) -> Option<DateTime<Utc>> {
        self.0.blocked_until
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}
