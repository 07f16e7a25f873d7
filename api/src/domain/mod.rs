//! Domain operations. Each takes the connection or transaction it must run on and does
//! one thing; the CLI and (later) GraphQL resolvers only parse input and call these.

pub mod actor;
pub mod devices;
pub mod incidents;
pub mod intel;
pub mod mfa;
pub mod sessions;
pub mod tenants;
pub mod threats;
pub mod users;

pub use actor::Actor;

use crate::auth::password::PasswordError;

/// Why a domain operation refused or failed. The messages are written for the person
/// who asked, and never contain SQL or another tenant's data.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("you are not allowed to do this")]
    Forbidden,
    /// A second-factor code that is wrong, expired or already used.
    #[error("the code is wrong, expired or already used")]
    WrongCode,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
}
