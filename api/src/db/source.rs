//! Where the two database connections come from: the operator's `DATABASE_URL`, or the
//! embedded cluster when it is unset.

use std::path::Path;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;

use super::embedded::{self, ClusterOptions, EmbeddedCluster};
use super::pool::{self, DbError};
use crate::config::Config;

/// The owner's URL and the serving role's URL, plus the embedded cluster when we run one.
pub struct DatabaseSource {
    pub owner_url: String,
    pub app_url: String,
    /// Password to set on `ultracore_app` when migrating (None: leave it as it is).
    pub app_password: Option<String>,
    /// The embedded cluster, and whether this process started it (and so must stop it).
    pub embedded: Option<(EmbeddedCluster, bool)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl DatabaseSource {
    /// Resolves the URLs from config. With no `DATABASE_URL`, starts (or reuses) the
    /// embedded cluster under the data directory and creates its database.
    pub async fn resolve(config: &Config) -> Result<DatabaseSource, SourceError> {
        let db = &config.database;
        if let Some(owner_url) = &db.url {
            let parsed = pool::validate_url(owner_url, "DATABASE_URL")?;
            let app_url = match &db.app_url {
                Some(url) => url.clone(),
                None => derive_app_url(&parsed, db.app_password.as_deref()),
            };
            return Ok(DatabaseSource {
                owner_url: owner_url.clone(),
                app_url,
                app_password: db.app_password.clone(),
                embedded: None,
            });
        }
        // initdb and pg_ctl block for seconds: keep them off the async workers.
        let data_dir = config.data_dir.clone();
        let (cluster, started) = tokio::task::spawn_blocking(move || start_embedded(&data_dir))
            .await
            .map_err(|e| embedded::EmbeddedError::Io(format!("start-up task failed: {e}")))??;
        let app_password = embedded_app_password(&config.data_dir, db.app_password.as_deref())?;
        create_database_if_missing(&cluster, &db.embedded_database).await?;
        Ok(DatabaseSource {
            owner_url: cluster.superuser_url(&db.embedded_database),
            app_url: cluster.url_for(migration::APP_ROLE, &app_password, &db.embedded_database),
            app_password: Some(app_password),
            embedded: Some((cluster, started)),
        })
    }

    /// Applies pending migrations as the owner, then sets the serving role's password.
    pub async fn migrate_up(&self, steps: Option<u32>) -> Result<(), SourceError> {
        let owner = pool::connect_owner(&self.owner_url).await?;
        migration::Migrator::up(&owner, steps)
            .await
            .map_err(|e| SourceError::Migration(e.to_string()))?;
        if let Some(password) = &self.app_password {
            set_app_password(&owner, password).await?;
        }
        owner.close().await.map_err(DbError::from)?;
        Ok(())
    }

    /// Stops the embedded cluster if this process started it.
    pub fn shutdown(&self) {
        if let Some((cluster, true)) = &self.embedded
            && let Err(e) = cluster.stop()
        {
            tracing::warn!(error = %e, "embedded PostgreSQL did not stop cleanly");
        }
    }
}

/// Sets the serving role's password. ALTER ROLE takes no bind parameters, so the
/// password goes in as a transaction-local setting and `format(%L)` quotes it inside the
/// server: it never appears in SQL text, and the setting dies with the transaction.
pub async fn set_app_password(owner: &sea_orm::DatabaseConnection, password: &str) -> Result<(), DbError> {
    use sea_orm::TransactionTrait;
    let txn = owner.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select set_config('ultracore.new_app_password', $1, true)",
        [password.into()],
    ))
    .await?;
    txn.execute_unprepared(
        "do $$ begin execute format('alter role ultracore_app password %L', \
         current_setting('ultracore.new_app_password')); end $$",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

fn start_embedded(data_dir: &Path) -> Result<(EmbeddedCluster, bool), embedded::EmbeddedError> {
    EmbeddedCluster::start(data_dir, &ClusterOptions::default())
}

/// The serving role's password for the embedded cluster: configured, or generated once
/// and kept (mode 0600) in the data directory.
fn embedded_app_password(
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<String, embedded::EmbeddedError> {
    if let Some(p) = configured {
        return Ok(p.to_string());
    }
    let path = data_dir.join("app-db.password");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let password = embedded::random_secret();
    embedded::write_private(&path, &password)?;
    Ok(password)
}

async fn create_database_if_missing(cluster: &EmbeddedCluster, name: &str) -> Result<(), DbError> {
    let admin = pool::connect_owner(&cluster.superuser_url("postgres")).await?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select 1 from pg_database where datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("create database {}", quote_ident(name)))
            .await?;
    }
    admin.close().await?;
    Ok(())
}

/// `DATABASE_URL` with the serving role's name and password in place of the owner's.
fn derive_app_url(owner: &url::Url, password: Option<&str>) -> String {
    let mut url = owner.clone();
    // Both setters only fail for URLs that cannot have credentials, which
    // validate_url has already excluded.
    let _ = url.set_username(migration::APP_ROLE);
    let _ = url.set_password(password);
    url.to_string()
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
