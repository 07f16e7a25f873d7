//! The GraphQL API: schema assembly and limits, the per-operation executor, errors,
//! pagination, loaders, guards, and the query/mutation/type modules by domain.

pub mod batcher;
pub mod connection;
pub mod context;
pub mod document;
pub mod errors;
pub mod execute;
pub mod filters;
pub mod guards;
pub mod lists;
pub mod loaders;
pub mod mutation;
pub mod pagination;
pub mod parsed;
pub mod persisted;
pub mod query;
pub mod scalars;
pub mod subscription;
pub mod types;

use std::sync::Arc;

use async_graphql::Schema;

use crate::config::Config;
pub use execute::{Gateway, Services};

pub type GatewaySchema = Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// Builds the schema with the limits of `config` (OWASP GraphQL cheat sheet): depth,
/// complexity, and introspection and suggestions off unless enabled.
pub fn build_schema(
    config: &Config,
    services: Option<Arc<Services>>,
    feed: Option<crate::feed::FeedHub>,
) -> GatewaySchema {
    let limits = &config.graphql;
    let mut builder = Schema::build(
        query::QueryRoot::default(),
        mutation::MutationRoot::default(),
        subscription::SubscriptionRoot,
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(limits.max_depth.max(32))
    .limit_directives(10);
    if !config.introspection_enabled() {
        builder = builder.disable_introspection();
    }
    if config.profile == crate::config::Profile::Production {
        builder = builder.disable_suggestions();
    }
    if let Some(services) = services {
        builder = builder.data(services);
    }
    if let Some(feed) = feed {
        builder = builder.data(feed);
    }
    builder.finish()
}

/// The SDL that `ultracore schema` prints (introspection settings do not change it).
pub fn sdl() -> String {
    build_schema(&Config::default(), None, None).sdl()
}
