//! One typed configuration, layered: defaults < `ultracore.toml` < environment < flags.
//!
//! Environment variables are `ULTRACORE_*`, with `__` for nesting
//! (`ULTRACORE_DATABASE__POOL_SIZE=32`). A few names are fixed by the contract and mapped
//! by hand: `DATABASE_URL` (the owner's connection), `ULTRACORE_APP_DATABASE_URL` and
//! `ULTRACORE_APP_DB_PASSWORD` (the serving role's connection).

pub mod rate_limits;
pub mod secrets;
pub mod telemetry;

pub use rate_limits::RateLimitConfig;
pub use telemetry::TelemetryConfig;

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
    pub auth: AuthConfig,
    pub graphql: GraphqlConfig,
    pub http: HttpConfig,
    /// HMAC key for access tokens (at least 32 bytes). `ULTRACORE_JWT_SECRET`.
    pub jwt_secret: Option<String>,
    /// File holding the key instead (`ULTRACORE_JWT_SECRET_FILE`).
    pub jwt_secret_file: Option<PathBuf>,
    /// Earlier keys, still accepted for verification until their tokens expire
    /// (`ULTRACORE_JWT_PREVIOUS_SECRETS`, comma-separated).
    pub jwt_previous_secrets: Option<String>,
    /// AES-256 key for secrets at rest, base64 of 32 bytes (`ULTRACORE_DATA_KEY`).
    pub data_key: Option<String>,
    /// File holding the data key instead (`ULTRACORE_DATA_KEY_FILE`).
    pub data_key_file: Option<PathBuf>,
    /// Earlier data keys, still used to decrypt (`ULTRACORE_DATA_PREVIOUS_KEYS`, comma-separated).
    pub data_previous_keys: Option<String>,
    /// Delivery of the notification outbox (reset links, verification links, alerts).
    pub notifications: NotificationConfig,
    /// Adaptive rate limits (see `crate::security::rate_limit`).
    pub rate_limits: RateLimitConfig,
    /// Where clients are, for impossible travel (see `crate::geo`).
    pub geo: crate::geo::GeoConfig,
    /// Trace export over OTLP (see `telemetry`; needs the `otlp` cargo feature).
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// `iss` of our tokens.
    pub issuer: String,
    /// `aud` of our tokens.
    pub audience: String,
    /// Lifetime of an access token.
    pub access_ttl_secs: u64,
    /// Absolute lifetime of a session (refresh token family).
    pub refresh_ttl_secs: u64,
    /// A session unused for this long ends (its refresh token is refused).
    pub refresh_idle_secs: u64,
    /// Clock skew tolerated on exp/nbf.
    pub leeway_secs: u64,
    /// Argon2id computations running at once (default: the number of cores).
    pub hash_workers: Option<usize>,
    /// Callers allowed to wait for a hashing worker; beyond them, RATE_LIMITED
    /// (default: 8 per worker).
    pub hash_queue: Option<usize>,
    /// Lifetime of a password-reset token.
    pub reset_token_ttl_secs: u64,
    /// Lifetime of an email-verification token.
    pub verification_token_ttl_secs: u64,
    /// Base of the links put in reset and verification messages; the token is appended
    /// (`<base>?token=...`). Unset: the message carries the bare token.
    pub link_base_url: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "ultracore".into(),
            audience: "ultracore-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            refresh_idle_secs: 7 * 24 * 3600,
            leeway_secs: 5,
            hash_workers: None,
            hash_queue: None,
            reset_token_ttl_secs: 30 * 60,
            verification_token_ttl_secs: 48 * 3600,
            link_base_url: None,
        }
    }
}

/// HTTP-level settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Browser origins (e.g. `https://console.bank.example`) allowed to open the
    /// WebSocket besides the gateway's own host.
    pub allowed_origins: Vec<String>,
    /// The analyst console at /console (a static page holding no data: it signs in and
    /// reads through the API like any client). Default: on, in every profile.
    pub console: bool,
    /// Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` names the client;
    /// from anyone else the header is ignored (see server::client_ip).
    pub trusted_proxies: Vec<String>,
    /// Prometheus metrics at /metrics.
    pub metrics: bool,
    /// When set, /metrics answers only `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    /// Bound on one HTTP request (a WebSocket only until it is upgraded): 408 past it.
    pub request_timeout_ms: u64,
    /// Send Strict-Transport-Security (when clients reach the gateway over HTTPS).
    pub hsts: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first) and `tls_key`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            console: true,
            metrics: true,
            metrics_token: None,
            request_timeout_ms: 30_000,
            hsts: false,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Limits and developer conveniences of the GraphQL endpoint (OWASP GraphQL cheat sheet).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphqlConfig {
    /// GraphiQL on GET /graphql. Default: on in development, off in production.
    pub graphiql: Option<bool>,
    /// A `node_modules` directory holding graphiql@3, react@18 and react-dom@18: GraphiQL
    /// then loads them from the gateway instead of a CDN (air-gapped networks).
    pub graphiql_assets: Option<PathBuf>,
    /// Schema introspection. Default: on in development, off in production.
    pub introspection: Option<bool>,
    /// Deepest field nesting accepted.
    pub max_depth: usize,
    /// Highest complexity accepted (each field 1, lists multiplied by their page size).
    pub max_complexity: usize,
    /// Most aliases in one document.
    pub max_aliases: usize,
    /// Most operations in one batch (a JSON array body).
    pub max_batch: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Run only documents registered with `ultracore documents register` (see
    /// `graphql::persisted`). Automatic persisted queries work either way.
    pub trusted_documents: bool,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        GraphqlConfig {
            graphiql: None,
            graphiql_assets: None,
            introspection: None,
            max_depth: 15,
            max_complexity: 5_000,
            max_aliases: 30,
            max_batch: 10,
            max_body_bytes: 256 * 1024,
            trusted_documents: false,
        }
    }
}

impl AuthConfig {
    /// The shape of the password-hashing pool (defaults fill what is unset).
    pub fn hash_pool(&self) -> crate::auth::hashing::PoolSize {
        let defaults = crate::auth::hashing::PoolSize::default();
        let workers = self.hash_workers.unwrap_or(defaults.workers).max(1);
        crate::auth::hashing::PoolSize {
            workers,
            queue: self.hash_queue.unwrap_or(workers * 8),
        }
    }
}

impl Config {
    /// Whether GraphiQL is served (explicit setting, else on only in development).
    pub fn graphiql_enabled(&self) -> bool {
        self.graphql
            .graphiql
            .unwrap_or(self.profile == Profile::Development)
    }

    /// Whether introspection is allowed (explicit setting, else on only in development).
    pub fn introspection_enabled(&self) -> bool {
        self.graphql
            .introspection
            .unwrap_or(self.profile == Profile::Development)
    }
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
            auth: AuthConfig::default(),
            graphql: GraphqlConfig::default(),
            http: HttpConfig::default(),
            jwt_secret: None,
            jwt_secret_file: None,
            jwt_previous_secrets: None,
            data_key: None,
            data_key_file: None,
            data_previous_keys: None,
            notifications: NotificationConfig::default(),
            rate_limits: RateLimitConfig::default(),
            geo: crate::geo::GeoConfig::default(),
            telemetry: TelemetryConfig::default(),
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

impl ConfigError {
    pub fn new(message: &str) -> ConfigError {
        ConfigError(message.to_string())
    }
}

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

/// How queued notifications leave the gateway (see `crate::notify`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationConfig {
    /// `file` or `smtp`. Unset: `file` in development, `smtp` in production, so a
    /// production gateway never writes reset links to its disk unless told to.
    pub sender: Option<SenderKind>,
    /// Where the file sender writes one `<notification id>.eml` per message. Unset:
    /// `<data_dir>/outbox`.
    pub file_dir: Option<PathBuf>,
    /// Pause between delivery passes when the last one found nothing more to do.
    pub interval_ms: u64,
    /// Most messages of one tenant sent per pass (the other tenants' turn comes first).
    pub batch_size: u32,
    /// Attempts before a message is marked `failed`.
    pub max_attempts: u32,
    /// Wait before the first retry; it doubles with each further attempt (at most an hour).
    pub retry_backoff_ms: u64,
    /// Bound on one message's delivery, so a hung relay cannot stall the queue.
    pub send_timeout_ms: u64,
    pub smtp: SmtpConfig,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            sender: None,
            file_dir: None,
            interval_ms: 5_000,
            batch_size: 50,
            max_attempts: 5,
            retry_backoff_ms: 30_000,
            send_timeout_ms: 30_000,
            smtp: SmtpConfig::default(),
        }
    }
}

/// Which sender delivers notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderKind {
    /// Files in a directory (development).
    File,
    /// An SMTP relay.
    Smtp,
}

/// The SMTP relay notifications go through.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SmtpConfig {
    pub host: Option<String>,
    /// Unset: 25 with `tls = none`, 587 with `starttls`, 465 with `tls`.
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// File holding the password instead (container secrets).
    pub password_file: Option<PathBuf>,
    /// The sender address (`From:`), e.g. `UltraCore <no-reply@bank.example>`.
    pub from: Option<String>,
    pub tls: SmtpTls,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or a trusted private network.
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (implicit TLS, "SMTPS").
    Tls,
}
