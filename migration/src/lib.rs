//! UltraCore schema migrations.
//!
//! Each migration is one concern written as plain SQL (`sql/NNNN_name.up.sql` and
//! `.down.sql`): row-level security, triggers and grants read best as the SQL PostgreSQL
//! will run, and a reviewer can diff them against the policy text in DESIGN.md.
//! Every `down` undoes exactly its `up`, except that cluster-wide roles are only revoked,
//! never dropped (another database on the cluster may use them).

pub use sea_orm_migration::prelude::*;

/// Name of the role the gateway serves as. Created by migration 0009.
pub const APP_ROLE: &str = "ultracore_app";

/// A migration defined by two SQL scripts, run as the migrating (owner) connection.
struct SqlMigration {
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

impl MigrationName for SqlMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SqlMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.up).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.down).await?;
        Ok(())
    }
}

macro_rules! sql_migration {
    ($name:literal) => {
        Box::new(SqlMigration {
            name: $name,
            up: include_str!(concat!("sql/", $name, ".up.sql")),
            down: include_str!(concat!("sql/", $name, ".down.sql")),
        }) as Box<dyn MigrationTrait>
    };
}

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            sql_migration!("0001_tenants"),
            sql_migration!("0002_users"),
            sql_migration!("0003_credentials"),
            sql_migration!("0004_security_events"),
            sql_migration!("0005_threats_and_incidents"),
            sql_migration!("0006_threat_intelligence"),
            sql_migration!("0007_rate_limit_entries"),
            sql_migration!("0008_audit_log"),
            sql_migration!("0009_app_role"),
            sql_migration!("0010_row_level_security"),
            sql_migration!("0011_authentication"),
            sql_migration!("0012_device_trust"),
            sql_migration!("0013_notification_retry"),
            sql_migration!("0014_login_throttle"),
            sql_migration!("0015_intel_matching"),
            sql_migration!("0016_live_feed"),
            sql_migration!("0017_analytics"),
            sql_migration!("0018_rate_limits"),
            sql_migration!("0019_trusted_documents"),
            sql_migration!("0020_by_id_lookups"),
            sql_migration!("0021_data_lifecycle"),
            sql_migration!("0022_partition_bounds"),
            sql_migration!("0023_audit_chain_cost"),
        ]
    }
}
