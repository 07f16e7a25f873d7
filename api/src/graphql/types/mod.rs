//! GraphQL object types, one module per domain. Each wraps its SeaORM model; secrets
//! (password_hash, mfa_secret, code_hash, token_hash) have no field at all.

pub mod audit;
pub mod enums;
pub mod events;
pub mod intel;
pub mod rate_limits;
pub mod sessions;
pub mod tenants;
pub mod threats;
pub mod users;

pub use audit::AuditEntry;
pub use events::SecurityEvent;
pub use intel::ThreatIndicator;
pub use rate_limits::RateLimitEntry;
pub use sessions::{Session, TrustedDevice};
pub use tenants::Tenant;
pub use threats::{SecurityIncident, ThreatEvent};
pub use users::User;

use async_graphql::Context;
use uuid::Uuid;

use super::context::request;
use super::errors::{ApiError, ApiResult};
use super::loaders;

/// Whether the selection of the field being resolved (a User, or a list of them) asks
/// for more than `User::BRIEF_FIELDS`. Fragments count with their fields.
fn wants_user_details(ctx: &Context<'_>) -> bool {
    ctx.field()
        .selection_set()
        .any(|field| !User::BRIEF_FIELDS.contains(&field.name()))
}

/// Loads users by id through the operation's loader (one statement for all of them),
/// reading the brief columns only when the selection needs nothing else.
pub async fn load_user(ctx: &Context<'_>, id: Option<Uuid>) -> ApiResult<Option<User>> {
    let Some(id) = id else { return Ok(None) };
    request(ctx).principal()?;
    let loaders = loaders::of(ctx)?;
    Ok(if wants_user_details(ctx) {
        loaders.users.load_one(id).await?.map(User::full)
    } else {
        loaders.user_briefs.load_one(id).await?.map(User::brief)
    })
}

/// Loads many users by id, keeping the given order and dropping ids not visible.
pub async fn load_users(ctx: &Context<'_>, ids: &[Uuid]) -> ApiResult<Vec<User>> {
    request(ctx).principal()?;
    let loaders = loaders::of(ctx)?;
    Ok(if wants_user_details(ctx) {
        let found = loaders.users.load_many(ids.iter().copied()).await?;
        ids.iter()
            .filter_map(|id| found.get(id).cloned().map(User::full))
            .collect()
    } else {
        let found = loaders.user_briefs.load_many(ids.iter().copied()).await?;
        ids.iter()
            .filter_map(|id| found.get(id).cloned().map(User::brief))
            .collect()
    })
}

/// FORBIDDEN as a GraphQL error.
pub fn forbidden() -> async_graphql::Error {
    ApiError::Forbidden.into()
}
