//! Migrations roll back completely and apply again, through the library and through
//! `ultracore migrate up|down [N]|status|fresh`.

mod support;

use std::path::Path;

use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use support::sql::{self, count};
use support::{TempDir, cli};

/// Every table the migrations create.
const TABLES: [&str; 11] = [
    "audit_log",
    "mfa_backup_codes",
    "rate_limit_entries",
    "refresh_tokens",
    "security_events",
    "security_incidents",
    "tenants",
    "threat_events",
    "threat_intelligence",
    "trusted_devices",
    "users",
];

const MIGRATIONS: [&str; 10] = [
    "0001_tenants",
    "0002_users",
    "0003_credentials",
    "0004_security_events",
    "0005_threats_and_incidents",
    "0006_threat_intelligence",
    "0007_rate_limit_entries",
    "0008_audit_log",
    "0009_app_role",
    "0010_row_level_security",
];

async fn our_functions(owner: &DatabaseConnection) -> Vec<String> {
    sql::strings(
        owner,
        "select p.proname::text as v from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
          where n.nspname = 'public' and (p.proname like 'ultracore\\_%' or p.proname like 'audit\\_%') \
          order by 1",
    )
    .await
}

async fn idx_index_count(owner: &DatabaseConnection) -> i64 {
    count(
        owner,
        "select count(*) from pg_indexes where schemaname = 'public' and indexname like 'idx\\_%'",
    )
    .await
}

async fn policy_count(owner: &DatabaseConnection) -> i64 {
    count(
        owner,
        "select count(*) from pg_policies where schemaname = 'public'",
    )
    .await
}

async fn app_table_privileges(owner: &DatabaseConnection) -> i64 {
    count(
        owner,
        "select count(*) from information_schema.role_table_grants \
          where grantee = 'ultracore_app' and table_schema = 'public'",
    )
    .await
}

/// Asserts the complete schema is there: tables, indexes, RLS forced with its policies,
/// the audit triggers, and the app role's grants.
async fn assert_fully_migrated(owner: &DatabaseConnection) {
    assert_eq!(sql::public_tables(owner).await, TABLES.map(String::from).to_vec());
    assert_eq!(idx_index_count(owner).await, 57, "every idx_ index exists");
    assert_eq!(
        count(
            owner,
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
              where n.nspname = 'public' and c.relkind = 'r' and c.relname <> 'seaql_migrations' \
                and c.relrowsecurity and c.relforcerowsecurity",
        )
        .await,
        11,
        "RLS is enabled and forced on every table"
    );
    assert_eq!(
        policy_count(owner).await,
        15,
        "10 tenant_isolation + tenant_resolver_lookup + 4 threat_intelligence policies"
    );
    assert_eq!(
        count(
            owner,
            "select count(*) from pg_trigger where tgrelid = 'audit_log'::regclass and not tgisinternal"
        )
        .await,
        3,
        "the chain trigger and the two refusing triggers"
    );
    for function in [
        "audit_chain_verify",
        "audit_log_row_hash",
        "ultracore_tenant_id_for_login",
        "ultracore_uuid_v7",
    ] {
        assert!(
            our_functions(owner).await.iter().any(|f| f == function),
            "{function} exists"
        );
    }
    for (table, privilege, granted) in [
        ("audit_log", "INSERT", true),
        ("audit_log", "UPDATE", false),
        ("audit_log", "DELETE", false),
        ("users", "UPDATE", true),
        ("tenants", "INSERT", false),
    ] {
        assert_eq!(
            sql::scalar(
                owner,
                &format!("select has_table_privilege('ultracore_app', '{table}', '{privilege}')")
            )
            .await
            .as_deref(),
            Some(if granted { "true" } else { "false" }),
            "ultracore_app {privilege} on {table}"
        );
    }
}

#[tokio::test]
async fn migrator_down_removes_everything_but_the_role_and_up_restores_it() {
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    assert_fully_migrated(&owner).await;

    migration::Migrator::down(&owner, None)
        .await
        .expect("roll back every migration");

    assert_eq!(
        sql::public_tables(&owner).await,
        Vec::<String>::new(),
        "no table of ours remains"
    );
    assert_eq!(
        our_functions(&owner).await,
        Vec::<String>::new(),
        "no ultracore_/audit_ function remains"
    );
    assert_eq!(idx_index_count(&owner).await, 0);
    assert_eq!(policy_count(&owner).await, 0);
    assert_eq!(
        count(&owner, "select count(*) from seaql_migrations").await,
        0,
        "no migration is recorded as applied"
    );
    assert_eq!(
        sql::scalar(
            &owner,
            "select rolname from pg_roles where rolname = 'ultracore_app'"
        )
        .await
        .as_deref(),
        Some("ultracore_app"),
        "roles are cluster-wide: down revokes but never drops"
    );
    assert_eq!(
        app_table_privileges(&owner).await,
        0,
        "the role keeps no table privilege here"
    );
    assert_eq!(
        sql::scalar(
            &owner,
            "select rolsuper or rolbypassrls from pg_roles where rolname = 'ultracore_app'"
        )
        .await
        .as_deref(),
        Some("false")
    );

    migration::Migrator::up(&owner, None)
        .await
        .expect("apply every migration again");
    assert_fully_migrated(&owner).await;
    assert_eq!(count(&owner, "select count(*) from seaql_migrations").await, 10);

    // RLS works again for the serving role: a row the owner wrote is invisible without a tenant.
    sql::exec(&owner, "insert into tenants (slug, name) values ('acme', 'Acme')").await;
    let app = db.app().await;
    assert_eq!(count(&app, "select count(*) from tenants").await, 0);
}

// ---------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------

/// Runs `ultracore migrate <args>` against `url` from `dir`, asserts that it succeeded and
/// returns its stdout.
fn migrate(url: &str, dir: &Path, args: &[&str]) -> String {
    let out = cli::run(cli::ultracore_with_database(url, dir).arg("migrate").args(args));
    assert!(out.status.success(), "{}", cli::describe(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs `ultracore migrate status` and returns (state, name) per line.
fn status(url: &str, dir: &Path) -> Vec<(String, String)> {
    migrate(url, dir, &["status"])
        .lines()
        .map(|line| {
            let mut parts = line.split_whitespace();
            let state = parts.next().unwrap_or_default().to_string();
            let name = parts.next().unwrap_or_default().to_string();
            (state, name)
        })
        .collect()
}

fn expected_status(pending_from: usize) -> Vec<(String, String)> {
    MIGRATIONS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let state = if i < pending_from { "applied" } else { "pending" };
            (state.to_string(), name.to_string())
        })
        .collect()
}

#[tokio::test]
async fn migrate_cli_status_down_up_and_fresh_round_trip() {
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    let url = db.owner_url();
    let dir = TempDir::new("ultracore-migrate-cli");

    assert_eq!(status(&url, dir.path()), expected_status(10), "all 10 applied");

    migrate(&url, dir.path(), &["down", "2"]);
    assert_eq!(
        status(&url, dir.path()),
        expected_status(8),
        "the last 2 are pending"
    );
    assert_eq!(
        app_table_privileges(&owner).await,
        0,
        "0009 rolled back: no grants"
    );
    assert_eq!(policy_count(&owner).await, 0);
    assert_eq!(
        sql::public_tables(&owner).await.len(),
        11,
        "0001..0008 still applied"
    );

    migrate(&url, dir.path(), &["up"]);
    assert_eq!(status(&url, dir.path()), expected_status(10));
    assert_fully_migrated(&owner).await;

    // Data written before `migrate fresh` is gone after it.
    sql::exec(&owner, "insert into tenants (slug, name) values ('acme', 'Acme')").await;
    assert_eq!(count(&owner, "select count(*) from tenants").await, 1);

    migrate(&url, dir.path(), &["fresh"]);
    assert_eq!(status(&url, dir.path()), expected_status(10));
    assert_fully_migrated(&owner).await;
    assert_eq!(
        count(&owner, "select count(*) from tenants").await,
        0,
        "fresh starts empty"
    );

    // The serving role works on the fresh schema.
    let app = db.app().await;
    assert_eq!(count(&app, "select count(*) from users").await, 0);
}
