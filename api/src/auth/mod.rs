//! Authentication: password hashing and policy (more arrives with the login issue).

pub mod account;
pub mod account_tokens;
pub mod crypto;
pub mod devices;
pub mod hashing;
pub mod jwt;
pub mod login;
pub mod mfa;
pub mod mfa_policy;
pub mod password;
pub mod permissions;
pub mod roles;
pub mod sessions;
pub mod throttle;
pub mod tokens;
