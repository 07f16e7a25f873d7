//! Authentication: password hashing and policy (more arrives with the login issue).

pub mod crypto;
pub mod jwt;
pub mod login;
pub mod mfa;
pub mod password;
pub mod permissions;
pub mod roles;
pub mod sessions;
pub mod tokens;
