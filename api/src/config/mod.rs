//! One typed configuration, layered: defaults < `ultracore.toml` < environment < flags.
//!
//! Environment variables are `ULTRACORE_*`, with `__` for nesting
//! (`ULTRACORE_DATABASE__POOL_SIZE=32`). A few names are fixed by the contract and mapped
//! by hand: `DATABASE_URL` (the owner's connection), `ULTRACORE_APP_DATABASE_URL` and
//! `ULTRACORE_APP_DB_PASSWORD` (the serving role's connection).

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Which defaults apply. Production is strict (see README, "Configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub profile: Profile,
    /// Address `serve` listens on.
    pub listen: SocketAddr,
    /// Where the embedded PostgreSQL cluster and generated secrets live.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// The owner's connection (migrations, admin commands). Unset: embedded PostgreSQL.
    pub url: Option<String>,
    /// The serving role's connection. Unset: `url` with user `ultracore_app` and
    /// `app_password`.
    pub app_url: Option<String>,
    /// Password of `ultracore_app`; `migrate up` sets it on the role when given.
    pub app_password: Option<String>,
    /// Name of the database the embedded cluster serves.
    pub embedded_database: String,
    /// Connections in the serving pool.
    pub pool_size: u32,
    /// Upper bound of every statement in a request transaction.
    pub statement_timeout_ms: u64,
    /// How long a request waits for a pooled connection before failing.
    pub acquire_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: Profile::Development,
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from(".ultracore"),
            database: DatabaseConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            app_url: None,
            app_password: None,
            embedded_database: "ultracore".into(),
            pool_size: 16,
            statement_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `ultracore.toml` (or the file named by `ULTRACORE_CONFIG`),
    /// then the environment. Command-line flags are merged by the caller with
    /// [`Config::with_override`], so they win.
    pub fn load() -> Result<Config, ConfigError> {
        Self::figment().extract().map_err(|e| ConfigError(e.to_string()))
    }

    fn figment() -> Figment {
        let file = std::env::var("ULTRACORE_CONFIG").unwrap_or_else(|_| "ultracore.toml".into());
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(
                Env::prefixed("ULTRACORE_")
                    .ignore(&["CONFIG", "APP_DATABASE_URL", "APP_DB_PASSWORD"])
                    .split("__"),
            )
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()))
            .merge(
                Env::raw()
                    .only(&["ULTRACORE_APP_DATABASE_URL", "ULTRACORE_APP_DB_PASSWORD"])
                    .map(|key| {
                        if key == "ultracore_app_database_url" {
                            "database.app_url".into()
                        } else {
                            "database.app_password".into()
                        }
                    }),
            )
    }

    /// Applies one setting given on the command line (a dotted key and its value).
    pub fn with_override<T: Serialize>(self, key: &str, value: T) -> Result<Config, ConfigError> {
        Figment::from(Serialized::defaults(self))
            .merge(Serialized::default(key, value))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }
}
