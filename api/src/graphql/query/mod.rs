//! The query root, merged from one object per domain.

pub mod analytics;
pub mod events;
pub mod intel;
pub mod sessions;
pub mod threats;
pub mod users;

use async_graphql::{MergedObject, Object};

/// Fields that need no caller.
#[derive(Default)]
pub struct MetaQuery;

#[Object]
impl MetaQuery {
    /// The gateway's version (the `ultracore` package version).
    async fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    MetaQuery,
    users::UsersQuery,
    sessions::SessionsQuery,
    events::EventsQuery,
    threats::ThreatsQuery,
    intel::IntelQuery,
    analytics::AnalyticsQuery,
);
