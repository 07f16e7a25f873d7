//! The mutation root, merged from one object per domain.

pub mod auth;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(auth::AuthMutation);
