//! UltraCore: a multi-tenant GraphQL security gateway over PostgreSQL row-level security.
//!
//! Everything that runs lives here; the `ultracore` binary only calls [`cli::main`].

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod feed;
pub mod geo;
pub mod graphql;
pub mod intel;
pub mod lifecycle;
pub mod notify;
pub mod risk;
pub mod security;
pub mod server;
pub mod telemetry;
