//! The mutation root, merged from one object per domain. Every mutation runs in the
//! operation's read-write tenant transaction and writes its audit row on it.

pub mod account;
pub mod auth;
pub mod devices;
pub mod mfa;
pub mod threats;
pub mod users;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    auth::AuthMutation,
    account::AccountMutation,
    mfa::MfaMutation,
    users::UsersMutation,
    threats::ThreatsMutation,
    devices::DevicesMutation,
);
