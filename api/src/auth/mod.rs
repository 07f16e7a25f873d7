//! Authentication: password hashing and policy (more arrives with the login issue).

pub mod password;
pub mod roles;
