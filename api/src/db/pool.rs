//! Connection pools for the two roles, and the start-up check on the serving role.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::config::DatabaseConfig;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error(
        "refusing to serve: database role `{role}` {reason}. Row-level security would not \
         protect tenants from each other. Connect as `ultracore_app` (NOSUPERUSER, NOBYPASSRLS, owning nothing)"
    )]
    UnsafeRole { role: String, reason: String },
    #[error(transparent)]
    Query(#[from] sea_orm::DbErr),
}

/// Where a URL points, without its password: safe to print in errors and logs.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}@{}:{}/{}",
            u.username(),
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432),
            u.path().trim_start_matches('/')
        ),
        Err(_) => "<unparseable URL>".into(),
    }
}

/// Checks that a URL is a PostgreSQL URL before any connection attempt, so an operator
/// gets "not a PostgreSQL URL" rather than a driver error.
pub fn validate_url(url: &str, name: &str) -> Result<url::Url, DbError> {
    let parsed =
        url::Url::parse(url).map_err(|e| DbError::InvalidUrl(format!("{name} is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(DbError::InvalidUrl(format!(
            "{name} must start with postgres:// or postgresql://, not {}://",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(DbError::InvalidUrl(format!("{name} has no host")));
    }
    Ok(parsed)
}

async fn connect(url: &str, name: &str, max: u32, acquire: Duration) -> Result<DatabaseConnection, DbError> {
    validate_url(url, name)?;
    probe(url, acquire).await?;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max)
        .min_connections(0)
        .connect_timeout(acquire)
        .acquire_timeout(acquire)
        .sqlx_logging(false);
    let db = Database::connect(options).await.map_err(|e| DbError::Connect {
        target: describe_url(url),
        reason: short_reason(&e),
    })?;
    // sqlx connects lazily for some errors; make a failure show up here, not on first use.
    db.ping().await.map_err(|e| DbError::Connect {
        target: describe_url(url),
        reason: short_reason(&e),
    })?;
    Ok(db)
}

/// One direct connection attempt, because a pool reports every failure as "timed out"
/// while the operator needs "connection refused" or "password authentication failed".
async fn probe(url: &str, timeout: Duration) -> Result<(), DbError> {
    use sqlx::Connection;
    let failed = |reason: String| DbError::Connect {
        target: describe_url(url),
        reason,
    };
    match tokio::time::timeout(timeout, sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!("no answer within {} ms", timeout.as_millis()))),
    }
}

/// The driver's message without the noise of nested error wrappers.
fn short_reason(e: &sea_orm::DbErr) -> String {
    let text = e.to_string();
    text.rsplit(": ").next().unwrap_or(&text).to_string()
}

/// The owner's connection: migrations and admin commands. Small: it does little at once.
pub async fn connect_owner(url: &str) -> Result<DatabaseConnection, DbError> {
    connect(url, "DATABASE_URL", 4, Duration::from_secs(10)).await
}

/// The serving role's pool.
pub async fn connect_app(url: &str, cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbError> {
    connect(
        url,
        "the ultracore_app database URL",
        cfg.pool_size,
        Duration::from_millis(cfg.acquire_timeout_ms),
    )
    .await
}

/// Refuses a serving role that RLS would not bind: a superuser, a BYPASSRLS role, or a
/// role that owns tables (an owner can turn RLS off). PostgreSQL's own rules, checked
/// once at start so a misconfigured deployment fails loudly instead of leaking.
pub async fn ensure_role_cannot_bypass_rls(db: &DatabaseConnection) -> Result<(), DbError> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select current_user::text as role, r.rolsuper, r.rolbypassrls, \
                    (select count(*) from pg_class c where c.relowner = r.oid) as owned \
               from pg_roles r where r.rolname = current_user",
        ))
        .await?
        .ok_or_else(|| DbError::UnsafeRole {
            role: "?".into(),
            reason: "is not in pg_roles".into(),
        })?;
    let role: String = row.try_get("", "role")?;
    let superuser: bool = row.try_get("", "rolsuper")?;
    let bypass: bool = row.try_get("", "rolbypassrls")?;
    let owned: i64 = row.try_get("", "owned")?;
    let reason = if superuser {
        Some("is a superuser".to_string())
    } else if bypass {
        Some("has BYPASSRLS".to_string())
    } else if owned > 0 {
        Some(format!("owns {owned} relation(s)"))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DbError::UnsafeRole { role, reason }),
        None => Ok(()),
    }
}
