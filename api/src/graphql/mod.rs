//! The GraphQL schema. Until the API lands this is the minimal query root; `ultracore
//! schema` prints its SDL, and schema.graphql in the repository must equal it.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The gateway's version (the `ultracore` package version).
    async fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}

pub type GatewaySchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// Builds the schema with its production limits.
pub fn build_schema() -> GatewaySchema {
    Schema::build(QueryRoot, EmptyMutation, EmptySubscription).finish()
}

/// The SDL that `ultracore schema` prints.
pub fn sdl() -> String {
    build_schema().sdl()
}
