//! Migrations roll back completely and apply again, through the library and through
//! `ultracore migrate up|down [N]|status|fresh`.

mod support;

use std::path::Path;

use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use support::sql::{self, count};
use support::{TempDir, cli};

/// Every table the migrations create.
const TABLES: [&str; 14] = [
    "account_tokens",
    "audit_log",
    "feed_changes",
    "mfa_backup_codes",
    "notification_outbox",
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

/// The tables 0001..0008 create (what remains when 0009 and later are rolled back).
const TABLES_BEFORE_0011: [&str; 11] = [
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

const MIGRATIONS: [&str; 23] = [
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
    "0011_authentication",
    "0012_device_trust",
    "0013_notification_retry",
    "0014_login_throttle",
    "0015_intel_matching",
    "0016_live_feed",
    "0017_analytics",
    "0018_rate_limits",
    "0019_trusted_documents",
    "0020_by_id_lookups",
    "0021_data_lifecycle",
    "0022_partition_bounds",
    "0023_audit_chain_cost",
];

/// How many migrations there are: "all applied".
const ALL: usize = MIGRATIONS.len();

/// What 0015 creates besides canonical values: the functions matching and the trigger use.
const INTEL_MATCHING_FUNCTIONS: [&str; 4] = [
    "ultracore_intel_canonical",
    "ultracore_intel_canonical_ip",
    "ultracore_intel_canonical_value",
    "ultracore_intel_ip_supernets",
];

/// Whether 0015 is applied (its functions and trigger all exist) or rolled back (none).
async fn assert_intel_matching(owner: &DatabaseConnection, applied: bool) {
    let functions = our_functions(owner).await;
    for function in INTEL_MATCHING_FUNCTIONS {
        assert_eq!(
            functions.iter().any(|f| f == function),
            applied,
            "{function} exists: {applied}"
        );
    }
    assert_eq!(
        count(
            owner,
            "select count(*) from pg_trigger where tgrelid = 'threat_intelligence'::regclass \
               and tgname = 'threat_intelligence_canonical_value' and not tgisinternal"
        )
        .await,
        i64::from(applied),
        "the canonical-value trigger exists: {applied}"
    );
}

async fn our_functions(owner: &DatabaseConnection) -> Vec<String> {
    sql::strings(
        owner,
        "select p.proname::text as v from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
          where n.nspname = 'public' and (p.proname like 'ultracore\\_%' or p.proname like 'audit\\_%' \
                                          or p.proname like 'feed\\_%' \
                                          or p.proname in ('refresh_tokens_default_family', \
                                                           'trusted_devices_track_trust')) \
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
              where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname <> 'seaql_migrations' \
                and c.relrowsecurity and c.relforcerowsecurity",
        )
        .await,
        14,
        "RLS is enabled and forced on every table"
    );
    assert_eq!(
        policy_count(owner).await,
        19,
        "13 tenant_isolation + tenant_resolver_lookup + 4 threat_intelligence + outbox_scanner_lookup"
    );
    for (table, policies) in [
        ("account_tokens", "tenant_isolation"),
        // The scanner's policy only ever serves its SECURITY DEFINER function (0013).
        ("notification_outbox", "outbox_scanner_lookup,tenant_isolation"),
    ] {
        assert_eq!(
            sql::scalar(
                owner,
                &format!(
                    "select string_agg(polname::text, ',' order by polname) from pg_policy \
                      where polrelid = '{table}'::regclass"
                )
            )
            .await
            .as_deref(),
            Some(policies),
            "{table} has exactly these policies"
        );
    }
    assert_authentication_schema(owner).await;
    assert_intel_matching(owner, true).await;
    assert_eq!(
        count(
            owner,
            "select count(*) from pg_trigger where tgrelid = 'audit_log'::regclass and not tgisinternal"
        )
        .await,
        4,
        "the chain trigger, the head-advancing statement trigger and the two refusing triggers"
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
        ("account_tokens", "SELECT", true),
        ("account_tokens", "INSERT", true),
        ("account_tokens", "UPDATE", true),
        ("account_tokens", "DELETE", false),
        ("account_tokens", "TRUNCATE", false),
        ("notification_outbox", "SELECT", true),
        ("notification_outbox", "INSERT", true),
        ("notification_outbox", "UPDATE", true),
        ("notification_outbox", "DELETE", false),
        ("notification_outbox", "TRUNCATE", false),
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

/// Columns `table` has, by name.
async fn columns(owner: &DatabaseConnection, table: &str) -> Vec<String> {
    sql::strings(
        owner,
        &format!(
            "select column_name::text as v from information_schema.columns \
              where table_schema = 'public' and table_name = '{table}' order by 1"
        ),
    )
    .await
}

/// What 0011 adds besides its two tables: the refresh-token family columns and the
/// trigger that starts a family, and the users columns for TOTP replay and lockouts.
async fn assert_authentication_schema(owner: &DatabaseConnection) {
    let refresh = columns(owner, "refresh_tokens").await;
    for column in ["family_id", "replaced_by", "last_used_at"] {
        assert!(
            refresh.iter().any(|c| c == column),
            "refresh_tokens.{column} exists: {refresh:?}"
        );
    }
    let users = columns(owner, "users").await;
    for column in ["totp_last_step", "mfa_secret_key_id", "lockout_count"] {
        assert!(
            users.iter().any(|c| c == column),
            "users.{column} exists: {users:?}"
        );
    }
    assert_eq!(
        sql::scalar(
            owner,
            "select is_nullable from information_schema.columns \
              where table_name = 'refresh_tokens' and column_name = 'family_id'"
        )
        .await
        .as_deref(),
        Some("NO"),
        "refresh_tokens.family_id is NOT NULL"
    );
    assert_eq!(
        count(
            owner,
            "select count(*) from pg_trigger where tgrelid = 'refresh_tokens'::regclass \
               and tgname = 'refresh_tokens_default_family' and not tgisinternal"
        )
        .await,
        1,
        "the trigger that starts a family exists"
    );
}

/// Asserts that 0012's columns are gone while 0011's tables stay.
async fn assert_device_trust_rolled_back(owner: &DatabaseConnection) {
    assert!(
        !our_functions(owner)
            .await
            .iter()
            .any(|f| f == "trusted_devices_track_trust"),
        "the trust trigger function is gone"
    );
    assert!(
        !columns(owner, "trusted_devices")
            .await
            .iter()
            .any(|c| c == "trusted_at")
    );
    assert!(
        !columns(owner, "refresh_tokens")
            .await
            .iter()
            .any(|c| c == "mfa_verified_at")
    );
    assert!(
        columns(owner, "refresh_tokens")
            .await
            .iter()
            .any(|c| c == "family_id"),
        "0011 stays applied"
    );
}

/// Asserts that 0011 is rolled back completely while 0001..0010 stay.
async fn assert_authentication_rolled_back(owner: &DatabaseConnection) {
    assert_eq!(
        sql::public_tables(owner).await,
        TABLES_BEFORE_0011.map(String::from).to_vec(),
        "account_tokens and notification_outbox are gone, the rest stays"
    );
    let refresh = columns(owner, "refresh_tokens").await;
    for column in ["family_id", "replaced_by", "last_used_at"] {
        assert!(
            !refresh.iter().any(|c| c == column),
            "refresh_tokens.{column} is gone: {refresh:?}"
        );
    }
    let users = columns(owner, "users").await;
    for column in ["totp_last_step", "mfa_secret_key_id", "lockout_count"] {
        assert!(
            !users.iter().any(|c| c == column),
            "users.{column} is gone: {users:?}"
        );
    }
    assert!(
        !our_functions(owner)
            .await
            .iter()
            .any(|f| f == "refresh_tokens_default_family"),
        "the family trigger function is gone"
    );
    assert_eq!(
        policy_count(owner).await,
        15,
        "0010's policies remain, 0011's are gone"
    );
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
    assert_eq!(
        count(&owner, "select count(*) from seaql_migrations").await,
        ALL as i64
    );

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

/// A tenant, user and session written while 0011 is rolled back.
const OLD_TENANT: &str = "00000000-0000-7000-8000-0000000000a1";
const OLD_USER: &str = "00000000-0000-7000-8000-0000000000a2";
const OLD_TOKEN: &str = "00000000-0000-7000-8000-0000000000a3";
/// An argon2id PHC string the users table accepts.
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

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

    assert_eq!(status(&url, dir.path()), expected_status(ALL), "all applied");

    migrate(&url, dir.path(), &["down"]);
    assert_eq!(
        status(&url, dir.path()),
        expected_status(ALL - 1),
        "down without N rolls back the last one"
    );
    // Down to 0014: the migrations after it are rolled back, 0015's functions with them.
    if ALL - 1 > 14 {
        migrate(&url, dir.path(), &["down", &(ALL - 1 - 14).to_string()]);
    }
    assert_eq!(status(&url, dir.path()), expected_status(14));
    assert_intel_matching(&owner, false).await;
    migrate(&url, dir.path(), &["down"]);
    assert_eq!(status(&url, dir.path()), expected_status(13));
    assert_eq!(
        count(
            &owner,
            "select count(*) from pg_indexes where indexname = 'rate_limit_entries_ip_window_key'"
        )
        .await,
        0,
        "0014's window key is gone"
    );
    migrate(&url, dir.path(), &["down", "2"]);
    assert_eq!(status(&url, dir.path()), expected_status(11));
    assert!(
        !columns(&owner, "notification_outbox")
            .await
            .iter()
            .any(|c| c == "next_attempt_at"),
        "0013's retry column is gone"
    );
    assert_device_trust_rolled_back(&owner).await;
    migrate(&url, dir.path(), &["down"]);
    assert_eq!(status(&url, dir.path()), expected_status(10));
    assert_authentication_rolled_back(&owner).await;

    // A session stored without families (before 0011) becomes a family of its own when
    // 0011 is applied again: family_id is backfilled from token_id.
    sql::exec(
        &owner,
        &format!(
            "insert into tenants (tenant_id, slug, name) values ('{OLD_TENANT}', 'pre-0011', 'Pre 0011'); \
             insert into users (user_id, tenant_id, username, email, password_hash) \
             values ('{OLD_USER}', '{OLD_TENANT}', 'old', 'old@example.test', '{PASSWORD_HASH}'); \
             insert into refresh_tokens (token_id, tenant_id, user_id, token_hash, expires_at) \
             values ('{OLD_TOKEN}', '{OLD_TENANT}', '{OLD_USER}', 'pre-0011-token', now() + interval '1 day')"
        ),
    )
    .await;
    migrate(&url, dir.path(), &["up"]);
    assert_eq!(status(&url, dir.path()), expected_status(ALL));
    assert_eq!(
        sql::scalar(
            &owner,
            &format!("select family_id from refresh_tokens where token_id = '{OLD_TOKEN}'")
        )
        .await,
        Some(OLD_TOKEN.to_string()),
        "the pre-0011 session is its own family"
    );
    migrate(&url, dir.path(), &["down", &(ALL - 10).to_string()]);
    assert_authentication_rolled_back(&owner).await;

    migrate(&url, dir.path(), &["down", "2"]);
    assert_eq!(
        status(&url, dir.path()),
        expected_status(8),
        "all after 0008 are pending"
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
    assert_eq!(status(&url, dir.path()), expected_status(ALL));
    assert_fully_migrated(&owner).await;

    // Data written before `migrate fresh` is gone after it.
    sql::exec(&owner, "insert into tenants (slug, name) values ('acme', 'Acme')").await;
    assert_eq!(
        count(&owner, "select count(*) from tenants").await,
        2,
        "acme and the pre-0011 tenant"
    );

    migrate(&url, dir.path(), &["fresh"]);
    assert_eq!(status(&url, dir.path()), expected_status(ALL));
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
