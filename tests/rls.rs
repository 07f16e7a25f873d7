//! Row-level security attacked through the serving role `ultracore_app`.
//!
//! Every table of schema public (relkind r or p; only `seaql_migrations`, which the app role may only read, is set apart, and
//! the app role must have no privilege on it) is attacked, found from the catalog, so a
//! table added without a policy, or without a fixture here, fails these tests. Two tenants
//! A and B are seeded as the owner (a superuser here, so RLS does not apply to it), with a
//! user each and one row per table per tenant, plus one global threat-intelligence row
//! (tenant_id NULL). The attacks then run as ultracore_app inside tenant transactions
//! (`api::db::begin_tenant_transaction`, i.e. `set_config('app.tenant_id', $1, true)`).

mod support;

use api::db::errors::sqlstate;
use api::db::{Access, TenantScope, begin_tenant_transaction};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult, RuntimeErr,
    Statement, TransactionTrait, Value,
};
use support::{assert_no_findings, sql};
use uuid::Uuid;

/// An argon2id PHC string the users table accepts.
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
const STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Tables whose rows with tenant_id NULL are global and readable by every tenant.
const GLOBAL_ROWS: &[&str] = &["threat_intelligence"];

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn lit(tenant: Option<Uuid>) -> String {
    match tenant {
        Some(t) => format!("'{t}'::uuid"),
        None => "null".into(),
    }
}

/// An INSERT of one row of `table` for `tenant` (None: a global row, where the table has
/// them), belonging to `user` where the table references users (for `users`: the user's
/// own id). Unique values are fresh on every call.
fn fixture(table: &str, tenant: Option<Uuid>, user: Uuid) -> String {
    let t = lit(tenant);
    let tag = Uuid::new_v4().simple().to_string();
    match table {
        "tenants" => format!(
            "insert into tenants (tenant_id, slug, name) values ({t}, 'tenant-{}', 'Tenant {tag}')",
            &tag[..12]
        ),
        "users" => format!(
            "insert into users (user_id, tenant_id, username, email, password_hash) \
             values ('{user}', {t}, 'user-{tag}', 'user-{tag}@example.test', '{PASSWORD_HASH}')"
        ),
        "mfa_backup_codes" => format!(
            "insert into mfa_backup_codes (tenant_id, user_id, code_hash) values ({t}, '{user}', 'code-{tag}')"
        ),
        "refresh_tokens" => format!(
            "insert into refresh_tokens (tenant_id, user_id, token_hash, expires_at, ip_address) \
             values ({t}, '{user}', 'token-{tag}', now() + interval '1 day', '198.51.100.7')"
        ),
        "trusted_devices" => format!(
            "insert into trusted_devices (tenant_id, user_id, device_fingerprint, device_type) \
             values ({t}, '{user}', 'fp-{tag}', 'mobile')"
        ),
        "security_events" => format!(
            "insert into security_events (tenant_id, user_id, event_type, event_category, severity, ip_address) \
             values ({t}, '{user}', 'login_attempt', 'authentication', 'low', '198.51.100.7')"
        ),
        "threat_events" => format!(
            "insert into threat_events (tenant_id, threat_type, severity, description) \
             values ({t}, 'brute_force', 'high', 'threat {tag}')"
        ),
        "security_incidents" => format!(
            "insert into security_incidents (tenant_id, incident_type, severity, title, assigned_to) \
             values ({t}, 'account_takeover', 'high', 'Incident {tag}', '{user}')"
        ),
        "threat_intelligence" => format!(
            "insert into threat_intelligence (tenant_id, indicator_type, indicator_value, severity) \
             values ({t}, 'domain', 'bad-{tag}.example.test', 'high')"
        ),
        "rate_limit_entries" => format!(
            "insert into rate_limit_entries \
             (tenant_id, user_id, endpoint, window_start, window_end, base_limit, adaptive_limit) \
             values ({t}, '{user}', '/graphql', now(), now() + interval '1 minute', 100, 100)"
        ),
        "audit_log" => format!(
            "insert into audit_log (tenant_id, user_id, action, entity_type, entity_id) \
             values ({t}, '{user}', 'user.update', 'user', '{user}')"
        ),
        "account_tokens" => format!(
            "insert into account_tokens (tenant_id, user_id, purpose, token_hash, expires_at) \
             values ({t}, '{user}', 'password_reset', 'reset-{tag}', now() + interval '1 hour')"
        ),
        "notification_outbox" => format!(
            "insert into notification_outbox (tenant_id, user_id, recipient, subject, body) \
             values ({t}, '{user}', 'user-{tag}@example.test', 'Reset your password', 'link {tag}')"
        ),
        // Triggers also add rows here for every event, threat and incident.
        "feed_changes" => format!(
            "insert into feed_changes (tenant_id, kind, entity_id, operation) \
             values ({t}, 'threat', '{user}', 'insert')"
        ),
        other => panic!("add an RLS fixture for table {other} (tests/rls.rs, fn fixture)"),
    }
}

#[derive(Debug, Clone, Copy)]
struct Tenant {
    id: Uuid,
    user: Uuid,
}

impl Tenant {
    fn new() -> Tenant {
        Tenant {
            id: Uuid::new_v4(),
            user: Uuid::new_v4(),
        }
    }

    /// The user a row of `table` carries when the row is an attack: for `users` a fresh id
    /// (so nothing but RLS can refuse it), elsewhere this tenant's real user (so a foreign
    /// key would accept it).
    fn user_for_new_row(&self, table: &str) -> Uuid {
        if table == "users" {
            Uuid::new_v4()
        } else {
            self.user
        }
    }
}

struct World {
    db: support::TestDb,
    owner: DatabaseConnection,
    app: DatabaseConnection,
    a: Tenant,
    b: Tenant,
    /// Every table of schema public but seaql_migrations.
    tables: Vec<String>,
}

/// A migrated database with nothing seeded, for the catalog-only checks.
struct Catalog {
    _db: support::TestDb,
    owner: DatabaseConnection,
    app: DatabaseConnection,
}

impl Catalog {
    async fn new() -> Catalog {
        let db = support::TestDb::new().await;
        let (owner, app) = (db.owner().await, db.app().await);
        Catalog { _db: db, owner, app }
    }
}

/// A fresh database with tenants A and B, a user each, one row per table per tenant and
/// one global threat-intelligence row, all written as the owner.
async fn world() -> World {
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tables = sql::public_tables(&owner).await;
    for needed in ["tenants", "users"] {
        assert!(
            tables.iter().any(|t| t == needed),
            "table {needed} is missing from schema public"
        );
    }
    let (a, b) = (Tenant::new(), Tenant::new());
    let ordered = ["tenants", "users"].into_iter().chain(
        tables
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "tenants" && *t != "users"),
    );
    for table in ordered {
        for t in [a, b] {
            let sql = fixture(table, Some(t.id), t.user);
            owner
                .execute_unprepared(&sql)
                .await
                .unwrap_or_else(|e| panic!("seed {table}: {e}\n{sql}"));
        }
        if GLOBAL_ROWS.contains(&table) {
            let sql = fixture(table, None, a.user);
            owner
                .execute_unprepared(&sql)
                .await
                .unwrap_or_else(|e| panic!("seed global {table}: {e}\n{sql}"));
        }
    }
    World {
        db,
        owner,
        app,
        a,
        b,
        tables,
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn all<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, DbErr> {
    c.query_all_raw(stmt(sql, values)).await
}

async fn one<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Result<QueryResult, DbErr> {
    c.query_one_raw(stmt(sql, values))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("no row from {sql}")))
}

async fn count<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Result<i64, DbErr> {
    one(c, sql, values)
        .await?
        .try_get::<i64>("", "n")
        .map_err(|e| DbErr::Custom(e.to_string()))
}

/// A tenant transaction of `t` on the app pool, read-write.
async fn as_tenant(app: &DatabaseConnection, t: Tenant) -> DatabaseTransaction {
    tenant_transaction(app, t, Access::ReadWrite).await
}

/// A tenant transaction of `t` on the app pool, read-only (as a query runs).
async fn as_tenant_read_only(app: &DatabaseConnection, t: Tenant) -> DatabaseTransaction {
    tenant_transaction(app, t, Access::ReadOnly).await
}

async fn tenant_transaction(app: &DatabaseConnection, t: Tenant, access: Access) -> DatabaseTransaction {
    begin_tenant_transaction(app, TenantScope::user(t.id, t.user), access, STATEMENT_TIMEOUT_MS)
        .await
        .expect("begin tenant transaction")
}

/// (user_id, tenant_id) of every user `conn` sees.
async fn visible_users<C: ConnectionTrait>(conn: &C) -> Vec<(String, String)> {
    all(
        conn,
        "select user_id::text as u, tenant_id::text as t from users",
        vec![],
    )
    .await
    .expect("users")
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "u").expect("u"),
            r.try_get::<String>("", "t").expect("t"),
        )
    })
    .collect()
}

/// Records a finding for `table` unless `rows`, the count a SELECT gave `when` ..., is 0.
fn expect_zero_rows(findings: &mut Vec<String>, table: &str, when: &str, rows: Result<i64, DbErr>) {
    match rows {
        Ok(0) => {}
        Ok(n) => findings.push(format!("{table}: {when}, SELECT sees {n} rows")),
        Err(e) => findings.push(format!("{table}: {when}, SELECT failed: {e}")),
    }
}

/// What happened to one attempted write.
#[derive(Debug)]
enum Outcome {
    Rows(u64),
    Refused { sqlstate: String, message: String },
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Rows(n) => format!("succeeded, {n} row(s) affected"),
            Outcome::Refused { sqlstate, message } => format!("refused with {sqlstate}: {message}"),
        }
    }

    fn is_refused_with(&self, code: &str) -> bool {
        matches!(self, Outcome::Refused { sqlstate, .. } if sqlstate == code)
    }
}

fn refused(err: &DbErr) -> Outcome {
    Outcome::Refused {
        sqlstate: sqlstate(err).unwrap_or_else(|| "none".into()),
        message: err.to_string(),
    }
}

/// Runs `sql` as tenant `t` in a transaction of its own; commits when `commit` and the
/// statement succeeded, rolls back otherwise.
async fn attempt(app: &DatabaseConnection, t: Tenant, sql: &str, commit: bool) -> Outcome {
    let txn = as_tenant(app, t).await;
    match txn.execute_unprepared(sql).await {
        Ok(res) => {
            if commit {
                txn.commit().await.expect("commit");
            } else {
                txn.rollback().await.expect("rollback");
            }
            Outcome::Rows(res.rows_affected())
        }
        Err(e) => {
            txn.rollback().await.expect("rollback after an error");
            refused(&e)
        }
    }
}

/// Count and md5 of the text of a tenant's rows of `table` (None: the global rows), read
/// as the owner: equal fingerprints mean byte-for-byte equal rows.
async fn fingerprint(owner: &DatabaseConnection, table: &str, tenant: Option<Uuid>) -> (i64, String) {
    let filter = tenant_filter(tenant);
    let row = one(
        owner,
        &format!(
            "select count(*) as n, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as h \
             from {table} t where {filter}"
        ),
        vec![],
    )
    .await
    .unwrap_or_else(|e| panic!("fingerprint {table}: {e}"));
    (
        row.try_get::<i64>("", "n").expect("n"),
        row.try_get::<String>("", "h").expect("h"),
    )
}

/// A condition on `t.tenant_id` that selects a tenant's rows (None: the global rows).
fn tenant_filter(tenant: Option<Uuid>) -> String {
    match tenant {
        Some(t) => format!("t.tenant_id = '{t}'::uuid"),
        None => "t.tenant_id is null".into(),
    }
}

/// (indicator_type, indicator_value) of the threat-intelligence row of `tenant` (None: the
/// global row), read as the owner.
async fn indicator(owner: &DatabaseConnection, tenant: Option<Uuid>) -> (String, String) {
    let row = one(
        owner,
        &format!(
            "select indicator_type::text as ty, indicator_value::text as val from threat_intelligence t \
             where {}",
            tenant_filter(tenant)
        ),
        vec![],
    )
    .await
    .unwrap_or_else(|e| panic!("the indicator of {tenant:?}: {e}"));
    (
        row.try_get::<String>("", "ty").expect("ty"),
        row.try_get::<String>("", "val").expect("val"),
    )
}

/// Fingerprints of B's rows in every table plus the global rows: what no attack by A may
/// change.
async fn snapshot(w: &World) -> Vec<(String, (i64, String))> {
    let mut out = Vec::new();
    for table in &w.tables {
        out.push((
            format!("{table} (tenant B)"),
            fingerprint(&w.owner, table, Some(w.b.id)).await,
        ));
        if GLOBAL_ROWS.contains(&table.as_str()) {
            out.push((
                format!("{table} (global)"),
                fingerprint(&w.owner, table, None).await,
            ));
        }
    }
    out
}

fn compare_snapshots(
    before: &[(String, (i64, String))],
    after: &[(String, (i64, String))],
    findings: &mut Vec<String>,
) {
    for ((what, b), (_, a)) in before.iter().zip(after) {
        if b != a {
            findings.push(format!(
                "{what}: rows changed ({} rows, md5 {} -> {} rows, md5 {})",
                b.0, b.1, a.0, a.1
            ));
        }
    }
}

async fn app_has_privilege(owner: &DatabaseConnection, table: &str, privilege: &str) -> bool {
    one(
        owner,
        "select has_table_privilege('ultracore_app', $1, $2) as v",
        vec![format!("public.{table}").into(), privilege.into()],
    )
    .await
    .expect("has_table_privilege")
    .try_get::<bool>("", "v")
    .expect("v")
}

/// Replaces every UUID in `text` by `<uuid>`.
fn mask_uuids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len()
            && text.is_char_boundary(i + 36)
            && text.is_char_boundary(i)
            && Uuid::try_parse(&text[i..i + 36]).is_ok()
            && bytes[i + 8] == b'-'
        {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = text[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The PostgreSQL DETAIL of a failed statement.
fn error_detail(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::Database(db) => db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail().map(str::to_owned)),
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Catalog properties
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_table_enables_and_forces_row_level_security_and_has_a_policy() {
    // Catalog only, no fixtures needed: a new table without a policy fails here on its own.
    let w = Catalog::new().await;
    let mut findings = Vec::new();
    for table in &sql::public_tables(&w.owner).await {
        let row = one(
            &w.owner,
            "select c.relrowsecurity as enabled, c.relforcerowsecurity as forced, \
                    (select count(*) from pg_policy p where p.polrelid = c.oid) as policies \
             from pg_class c where c.oid = $1::regclass",
            vec![format!("public.{table}").into()],
        )
        .await
        .expect("pg_class");
        if !row.try_get::<bool>("", "enabled").expect("enabled") {
            findings.push(format!("{table}: row level security is not ENABLEd"));
        }
        if !row.try_get::<bool>("", "forced").expect("forced") {
            findings.push(format!("{table}: row level security is not FORCEd"));
        }
        if row.try_get::<i64>("", "policies").expect("policies") < 1 {
            findings.push(format!("{table}: has no policy"));
        }
    }
    assert_no_findings("RLS enabled, forced and with a policy", &findings);
}

#[tokio::test]
async fn the_app_role_may_only_read_seaql_migrations() {
    let w = Catalog::new().await;
    let exists = count(
        &w.owner,
        "select count(*) as n from pg_class where oid = 'public.seaql_migrations'::regclass",
        vec![],
    )
    .await
    .expect("seaql_migrations exists");
    assert_eq!(exists, 1, "seaql_migrations should exist after migrating");
    let mut findings = Vec::new();
    // /readyz compares the applied migrations with the binary's: reading is all it needs.
    for privilege in ["INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"] {
        if app_has_privilege(&w.owner, "seaql_migrations", privilege).await {
            findings.push(format!("ultracore_app has {privilege} on seaql_migrations"));
        }
    }
    for privilege in ["INSERT", "UPDATE", "REFERENCES"] {
        let any = one(
            &w.owner,
            "select has_any_column_privilege('ultracore_app', 'public.seaql_migrations', $1) as v",
            vec![privilege.into()],
        )
        .await
        .expect("has_any_column_privilege")
        .try_get::<bool>("", "v")
        .expect("v");
        if any {
            findings.push(format!(
                "ultracore_app has column {privilege} on seaql_migrations"
            ));
        }
    }
    if let Err(e) = w
        .app
        .execute_unprepared("select version from seaql_migrations")
        .await
    {
        findings.push(format!("ultracore_app cannot read seaql_migrations: {e}"));
    }
    match w.app.execute_unprepared("delete from seaql_migrations").await {
        Ok(_) => findings.push("ultracore_app can delete from seaql_migrations".into()),
        Err(e) if sqlstate(&e).as_deref() == Some("42501") => {}
        Err(e) => findings.push(format!(
            "deleting from seaql_migrations failed, but not with 42501: {e}"
        )),
    }
    assert_no_findings("seaql_migrations privileges", &findings);
}

#[tokio::test]
async fn the_app_role_is_no_superuser_cannot_bypass_rls_and_owns_no_table() {
    let w = Catalog::new().await;
    let row = one(
        &w.owner,
        "select rolsuper, rolbypassrls, \
                (select count(*) from pg_class c where c.relowner = r.oid) as owned \
         from pg_roles r where rolname = 'ultracore_app'",
        vec![],
    )
    .await
    .expect("ultracore_app exists");
    assert!(
        !row.try_get::<bool>("", "rolsuper").expect("rolsuper"),
        "ultracore_app is a superuser"
    );
    assert!(
        !row.try_get::<bool>("", "rolbypassrls").expect("rolbypassrls"),
        "ultracore_app has BYPASSRLS"
    );
    assert_eq!(
        row.try_get::<i64>("", "owned").expect("owned"),
        0,
        "ultracore_app owns relations"
    );
}

// ---------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_tenant_reads_only_its_own_rows_and_global_intel_in_every_table() {
    let w = world().await;
    let mut findings = Vec::new();
    for table in &w.tables {
        let (own, _) = fingerprint(&w.owner, table, Some(w.a.id)).await;
        let global = if GLOBAL_ROWS.contains(&table.as_str()) {
            fingerprint(&w.owner, table, None).await.0
        } else {
            0
        };
        assert!(own >= 1, "{table}: the fixture gave tenant A no row");
        let txn = as_tenant_read_only(&w.app, w.a).await;
        let rows = all(&txn, &format!("select tenant_id::text as v from {table}"), vec![])
            .await
            .unwrap_or_else(|e| panic!("{table}: select as tenant A failed: {e}"));
        let seen: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.try_get::<Option<String>>("", "v").expect("v"))
            .collect();
        let a_id = w.a.id.to_string();
        let seen_own = seen
            .iter()
            .filter(|v| v.as_deref() == Some(a_id.as_str()))
            .count() as i64;
        let seen_global = seen.iter().filter(|v| v.is_none()).count() as i64;
        let foreign: Vec<&Option<String>> = seen
            .iter()
            .filter(|v| v.is_some() && v.as_deref() != Some(a_id.as_str()))
            .collect();
        if !foreign.is_empty() {
            findings.push(format!(
                "{table}: tenant A sees rows of other tenants: {foreign:?}"
            ));
        }
        if seen_own != own {
            findings.push(format!("{table}: tenant A sees {seen_own} of its {own} rows"));
        }
        if seen_global != global {
            findings.push(format!(
                "{table}: tenant A sees {seen_global} global rows, expected {global}"
            ));
        }
        let total = count(&txn, &format!("select count(*) as n from {table}"), vec![])
            .await
            .expect("count");
        if total != seen.len() as i64 || total != own + global {
            findings.push(format!(
                "{table}: count(*) is {total}, rows returned {}, expected {}",
                seen.len(),
                own + global
            ));
        }
        let of_b = count(
            &txn,
            &format!("select count(*) as n from {table} where tenant_id = $1"),
            vec![w.b.id.into()],
        )
        .await
        .expect("count B");
        if of_b != 0 {
            findings.push(format!("{table}: tenant A counts {of_b} rows with tenant_id = B"));
        }
        txn.rollback().await.expect("rollback");
    }
    assert_no_findings("tenant A's reads", &findings);
}

#[tokio::test]
async fn an_unset_or_empty_tenant_setting_reads_zero_rows_in_every_table() {
    let w = world().await;
    // A connection of its own on which app.tenant_id has never been set.
    let fresh = w.db.app_pool(1, 1).await;
    assert_eq!(
        setting_outside_transactions(&fresh).await,
        None,
        "app.tenant_id should never have been set on a fresh connection"
    );

    let mut findings = Vec::new();
    // Never set: a plain transaction (all tables first, while the setting is still unset).
    for table in &w.tables {
        let txn = fresh.begin().await.expect("begin");
        let rows = count(&txn, &format!("select count(*) as n from {table}"), vec![]).await;
        expect_zero_rows(&mut findings, table, "with app.tenant_id never set", rows);
        txn.rollback().await.expect("rollback");
    }
    assert_eq!(
        setting_outside_transactions(&fresh).await,
        None,
        "app.tenant_id should still be unset after the plain transactions"
    );
    for table in &w.tables {
        let select = format!("select count(*) as n from {table}");
        // Set to '' for the transaction.
        let txn = fresh.begin().await.expect("begin");
        sql::set_tenant_setting(&txn, "").await;
        let rows = count(&txn, &select, vec![]).await;
        expect_zero_rows(&mut findings, table, "with app.tenant_id = ''", rows);
        txn.rollback().await.expect("rollback");
        // Outside any transaction, after one that set it locally: ''.
        let rows = count(&fresh, &select, vec![]).await;
        expect_zero_rows(
            &mut findings,
            table,
            "outside a transaction, after a local setting ended",
            rows,
        );
    }
    assert_no_findings("no tenant set", &findings);
}

#[tokio::test]
async fn a_malformed_tenant_setting_errors_or_reads_zero_rows_never_another_tenants() {
    let w = world().await;
    let mut findings = Vec::new();
    for table in &w.tables {
        let txn = w.app.begin().await.expect("begin");
        sql::set_tenant_setting(&txn, "not-a-uuid").await;
        match all(&txn, &format!("select tenant_id::text as v from {table}"), vec![]).await {
            Ok(rows) if rows.is_empty() => {}
            Ok(rows) => {
                let seen: Vec<Option<String>> = rows
                    .iter()
                    .map(|r| r.try_get::<Option<String>>("", "v").expect("v"))
                    .collect();
                findings.push(format!(
                    "{table}: with app.tenant_id = 'not-a-uuid', SELECT returned {seen:?}"
                ));
            }
            Err(e) if sqlstate(&e).as_deref() == Some("22P02") => {}
            Err(e) => findings.push(format!(
                "{table}: with app.tenant_id = 'not-a-uuid', unexpected error: {e}"
            )),
        }
        txn.rollback().await.expect("rollback");
    }
    assert_no_findings("malformed tenant setting", &findings);
}

// ---------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn update_and_delete_without_where_touch_only_own_rows_or_are_refused() {
    let w = world().await;
    // The documented append-only and read-only grants (DESIGN.md, 0009_app_role).
    for (table, privilege) in [
        ("audit_log", "UPDATE"),
        ("audit_log", "DELETE"),
        ("security_events", "UPDATE"),
        ("security_events", "DELETE"),
        ("tenants", "INSERT"),
        ("tenants", "UPDATE"),
        ("tenants", "DELETE"),
    ] {
        assert!(
            !app_has_privilege(&w.owner, table, privilege).await,
            "ultracore_app must not have {privilege} on {table}"
        );
    }
    let mut findings = Vec::new();
    for table in &w.tables {
        for (verb, sql) in [
            ("UPDATE", format!("update {table} set tenant_id = tenant_id")),
            ("DELETE", format!("delete from {table}")),
        ] {
            let own = fingerprint(&w.owner, table, Some(w.a.id)).await.0;
            let granted = app_has_privilege(&w.owner, table, verb).await;
            let before = snapshot(&w).await;
            // Committed when it succeeds, so the owner's view afterwards is the real one.
            let outcome = attempt(&w.app, w.a, &sql, true).await;
            match &outcome {
                Outcome::Rows(n) if granted && *n as i64 == own => {}
                Outcome::Refused { sqlstate, .. } if sqlstate == "42501" => {}
                other => findings.push(format!(
                    "{table}: {verb} without WHERE as tenant A ({} the grant) {}; expected {}",
                    if granted { "with" } else { "without" },
                    other.describe(),
                    if granted {
                        format!("{own} row(s), tenant A's")
                    } else {
                        "42501 permission denied".into()
                    }
                )),
            }
            let after = snapshot(&w).await;
            let mut changed = Vec::new();
            compare_snapshots(&before, &after, &mut changed);
            for c in changed {
                findings.push(format!("{table}: {verb} as tenant A changed {c}"));
            }
        }
    }
    assert_no_findings("UPDATE/DELETE without WHERE", &findings);
}

#[tokio::test]
async fn rows_cannot_be_inserted_into_or_moved_to_another_tenant() {
    let w = world().await;
    let before = snapshot(&w).await;
    let mut findings = Vec::new();
    for table in &w.tables {
        let insert = fixture(table, Some(w.b.id), w.b.user_for_new_row(table));
        let outcome = attempt(&w.app, w.a, &insert, true).await;
        if !outcome.is_refused_with("42501") {
            findings.push(format!(
                "{table}: INSERT of a row with tenant B's tenant_id as tenant A {}; expected 42501",
                outcome.describe()
            ));
        }
        let update = format!("update {table} set tenant_id = '{}'::uuid", w.b.id);
        let outcome = attempt(&w.app, w.a, &update, true).await;
        if !outcome.is_refused_with("42501") {
            findings.push(format!(
                "{table}: UPDATE setting tenant_id to tenant B as tenant A {}; expected 42501",
                outcome.describe()
            ));
        }
    }
    compare_snapshots(&before, &snapshot(&w).await, &mut findings);
    assert_no_findings("writes into another tenant", &findings);
}

#[tokio::test]
async fn global_threat_intelligence_cannot_be_written_by_the_app_role() {
    let w = world().await;
    let table = "threat_intelligence";
    assert!(
        w.tables.iter().any(|t| t == table),
        "threat_intelligence is missing"
    );
    let global_before = fingerprint(&w.owner, table, None).await;
    assert_eq!(global_before.0, 1, "one global indicator is seeded");
    let (ty, val) = indicator(&w.owner, None).await;
    let mut findings = Vec::new();
    let insert = fixture(table, None, w.a.user);
    let outcome = attempt(&w.app, w.a, &insert, true).await;
    if !outcome.is_refused_with("42501") {
        findings.push(format!(
            "INSERT of a global indicator as tenant A {}",
            outcome.describe()
        ));
    }
    let upsert = format!(
        "insert into threat_intelligence (tenant_id, indicator_type, indicator_value) values (null, '{ty}', '{val}') \
         on conflict (tenant_id, indicator_type, indicator_value) do update set severity = 'low', is_active = false"
    );
    let outcome = attempt(&w.app, w.a, &upsert, true).await;
    if !outcome.is_refused_with("42501") {
        findings.push(format!(
            "upsert onto the global indicator as tenant A {}",
            outcome.describe()
        ));
    }
    for (verb, sql) in [
        (
            "UPDATE",
            "update threat_intelligence set is_active = false, severity = 'low' where tenant_id is null",
        ),
        ("UPDATE", "update threat_intelligence set tenant_id = tenant_id"),
        (
            "DELETE",
            "delete from threat_intelligence where tenant_id is null",
        ),
    ] {
        let outcome = attempt(&w.app, w.a, sql, true).await;
        let ok = match &outcome {
            Outcome::Rows(n) if sql.contains("where tenant_id is null") => *n == 0,
            // The unfiltered update may touch tenant A's own indicator, never the global one.
            Outcome::Rows(n) => *n <= 1,
            Outcome::Refused { sqlstate, .. } => sqlstate == "42501",
        };
        if !ok {
            findings.push(format!("{verb} `{sql}` as tenant A {}", outcome.describe()));
        }
    }
    // Nor with no tenant at all.
    for sql in [
        insert.as_str(),
        "update threat_intelligence set is_active = false where tenant_id is null",
    ] {
        let txn = w.app.begin().await.expect("begin");
        match txn.execute_unprepared(sql).await {
            Ok(res) if res.rows_affected() == 0 => txn.rollback().await.expect("rollback"),
            Ok(res) => {
                findings.push(format!(
                    "`{sql}` with no tenant set affected {} rows",
                    res.rows_affected()
                ));
                txn.commit().await.expect("commit");
            }
            Err(e) if sqlstate(&e).as_deref() == Some("42501") => txn.rollback().await.expect("rollback"),
            Err(e) => {
                findings.push(format!("`{sql}` with no tenant set failed unexpectedly: {e}"));
                txn.rollback().await.expect("rollback");
            }
        }
    }
    let global_after = fingerprint(&w.owner, table, None).await;
    if global_after != global_before {
        findings.push(format!(
            "the global indicator changed: {global_before:?} -> {global_after:?}"
        ));
    }
    assert_no_findings("global threat intelligence", &findings);
}

// ---------------------------------------------------------------------------------------
// Constraint oracles
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_foreign_key_into_another_tenant_fails_exactly_like_a_missing_row() {
    let w = world().await;
    // (Tables of `public`: the monthly partitions of the two logs carry copies of their
    // parents' foreign keys and are reached only through them.)
    let referencing = sql::strings(
        &w.owner,
        "select distinct c.relname::text as v from pg_constraint k join pg_class c on c.oid = k.conrelid \
           join pg_namespace n on n.oid = c.relnamespace \
         where k.contype = 'f' and k.confrelid = 'public.users'::regclass and k.conrelid <> k.confrelid \
           and n.nspname = 'public' \
         order by 1",
    )
    .await;
    for needed in [
        "trusted_devices",
        "mfa_backup_codes",
        "account_tokens",
        "notification_outbox",
    ] {
        assert!(
            referencing.iter().any(|t| t == needed),
            "{needed} should reference users: {referencing:?}"
        );
    }
    let mut findings = Vec::new();
    for table in &referencing {
        let mut seen = Vec::new();
        for (label, user) in [
            ("tenant B's user", w.b.user),
            ("a nonexistent user", Uuid::new_v4()),
        ] {
            let txn = as_tenant(&w.app, w.a).await;
            let result = txn.execute_unprepared(&fixture(table, Some(w.a.id), user)).await;
            txn.rollback().await.expect("rollback");
            match result {
                Ok(_) => findings.push(format!("{table}: tenant A inserted a row pointing at {label}")),
                Err(e) => seen.push((
                    label,
                    sqlstate(&e),
                    api::db::errors::violated_constraint(&e),
                    mask_uuids(&e.to_string()),
                    error_detail(&e).map(|d| mask_uuids(&d)),
                )),
            }
        }
        if let [b_user, missing] = seen.as_slice() {
            if b_user.1.as_deref() != Some("23503") || missing.1.as_deref() != Some("23503") {
                findings.push(format!(
                    "{table}: expected 23503 for both, got {:?} (B's user) and {:?} (missing user)",
                    b_user.1, missing.1
                ));
            }
            if (&b_user.1, &b_user.2, &b_user.3, &b_user.4)
                != (&missing.1, &missing.2, &missing.3, &missing.4)
            {
                findings.push(format!(
                    "{table}: the error for B's user differs from the error for a missing user:\n      {b_user:?}\n      {missing:?}"
                ));
            }
        }
    }
    assert_no_findings("foreign keys across tenants", &findings);
}

#[tokio::test]
async fn another_tenants_usernames_emails_and_unique_values_do_not_clash() {
    let w = world().await;
    let b_user = one(
        &w.owner,
        "select username::text as username, email::text as email from users where user_id = $1",
        vec![w.b.user.into()],
    )
    .await
    .expect("B's user");
    let username = b_user.try_get::<String>("", "username").expect("username");
    let email = b_user.try_get::<String>("", "email").expect("email");
    let b_token = one(
        &w.owner,
        "select token_hash::text as v from refresh_tokens where tenant_id = $1",
        vec![w.b.id.into()],
    )
    .await
    .expect("B's token")
    .try_get::<String>("", "v")
    .expect("v");
    let b_account_token = one(
        &w.owner,
        "select token_hash::text as v from account_tokens where tenant_id = $1",
        vec![w.b.id.into()],
    )
    .await
    .expect("B's account token")
    .try_get::<String>("", "v")
    .expect("v");
    let (ty, val) = indicator(&w.owner, Some(w.b.id)).await;
    let before = snapshot(&w).await;

    let txn = as_tenant(&w.app, w.a).await;
    let new_user = Uuid::new_v4();
    txn.execute_raw(stmt(
        "insert into users (user_id, tenant_id, username, email, password_hash) values ($1, $2, $3, $4, $5)",
        vec![
            new_user.into(),
            w.a.id.into(),
            username.clone().into(),
            email.clone().into(),
            PASSWORD_HASH.into(),
        ],
    ))
    .await
    .unwrap_or_else(|e| {
        panic!("tenant A could not create a user named like tenant B's ({username}, {email}): {e}")
    });
    txn.execute_raw(stmt(
        "insert into refresh_tokens (tenant_id, user_id, token_hash, expires_at) \
         values ($1, $2, $3, now() + interval '1 day')",
        vec![w.a.id.into(), new_user.into(), b_token.clone().into()],
    ))
    .await
    .unwrap_or_else(|e| panic!("tenant A could not store a token hash equal to tenant B's: {e}"));
    txn.execute_raw(stmt(
        "insert into account_tokens (tenant_id, user_id, purpose, token_hash, expires_at) \
         values ($1, $2, 'password_reset', $3, now() + interval '1 hour')",
        vec![w.a.id.into(), new_user.into(), b_account_token.clone().into()],
    ))
    .await
    .unwrap_or_else(|e| panic!("tenant A could not store an account token hash equal to tenant B's: {e}"));
    txn.execute_raw(stmt(
        "insert into threat_intelligence (tenant_id, indicator_type, indicator_value) values ($1, $2, $3)",
        vec![w.a.id.into(), ty.into(), val.into()],
    ))
    .await
    .unwrap_or_else(|e| panic!("tenant A could not store an indicator equal to tenant B's: {e}"));
    let visible = count(
        &txn,
        "select count(*) as n from users where username = $1 and email = $2",
        vec![username.clone().into(), email.clone().into()],
    )
    .await
    .expect("count");
    assert_eq!(
        visible, 1,
        "tenant A should see exactly its own user named {username}"
    );
    txn.commit().await.expect("commit");

    let mut findings = Vec::new();
    compare_snapshots(&before, &snapshot(&w).await, &mut findings);
    assert_no_findings(
        "tenant B's rows after tenant A reused its unique values",
        &findings,
    );
}

// ---------------------------------------------------------------------------------------
// Pooled connections
// ---------------------------------------------------------------------------------------

/// app.tenant_id as a statement outside any transaction sees it.
async fn setting_outside_transactions(pool: &DatabaseConnection) -> Option<String> {
    one(pool, "select current_setting('app.tenant_id', true) as v", vec![])
        .await
        .expect("current_setting")
        .try_get::<Option<String>>("", "v")
        .expect("v")
}

async fn backend_pid(pool: &DatabaseConnection) -> i32 {
    one(pool, "select pg_backend_pid() as v", vec![])
        .await
        .expect("pid")
        .try_get::<i32>("", "v")
        .expect("v")
}

async fn assert_no_tenant_carried(pool: &DatabaseConnection, pid: i32, after: &str) {
    let setting = setting_outside_transactions(pool).await;
    assert!(
        setting.as_deref().unwrap_or_default().is_empty(),
        "after {after}, app.tenant_id on the pooled connection is {setting:?}"
    );
    let users = count(pool, "select count(*) as n from users", vec![])
        .await
        .expect("count users");
    assert_eq!(
        users, 0,
        "after {after}, a query outside any tenant transaction sees {users} users"
    );
    assert_eq!(
        backend_pid(pool).await,
        pid,
        "the one-connection pool should reuse the same backend"
    );
}

#[tokio::test]
async fn a_single_connection_pool_carries_no_tenant_from_one_transaction_to_the_next() {
    let w = world().await;
    let pool = w.db.app_pool(1, 1).await;
    let pid = backend_pid(&pool).await;
    assert_no_tenant_carried(&pool, pid, "connecting").await;
    let events_before = fingerprint(&w.owner, "security_events", Some(w.a.id)).await;

    for i in 0..20 {
        let (me, other) = if i % 2 == 0 { (w.a, w.b) } else { (w.b, w.a) };
        let txn = as_tenant_read_only(&pool, me).await;
        assert_eq!(
            visible_users(&txn).await,
            vec![(me.user.to_string(), me.id.to_string())],
            "iteration {i}: the tenant transaction should see exactly its own user (other tenant {})",
            other.id
        );
        txn.commit().await.expect("commit");
        assert_no_tenant_carried(&pool, pid, &format!("iteration {i}'s committed transaction")).await;

        if i % 5 == 2 {
            // A transaction that fails on purpose after a write, then is rolled back
            // explicitly (even iterations) or by being dropped (odd ones).
            let txn = as_tenant(&pool, w.a).await;
            txn.execute_unprepared(&fixture("security_events", Some(w.a.id), w.a.user))
                .await
                .expect("insert inside the failing transaction");
            sql::expect_sqlstate(
                txn.execute_unprepared("select 1 / 0").await,
                "22012",
                "the failure should be division by zero",
            );
            if i % 2 == 0 {
                txn.rollback().await.expect("rollback");
            } else {
                drop(txn);
            }
            assert_no_tenant_carried(&pool, pid, &format!("iteration {i}'s failed transaction")).await;
            assert_eq!(
                fingerprint(&w.owner, "security_events", Some(w.a.id)).await,
                events_before,
                "the failed transaction's insert should have been rolled back"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transactions_of_two_tenants_never_see_each_others_rows() {
    let w = world().await;
    let pool = w.db.app_pool(8, 0).await;
    let mut tasks = Vec::new();
    for task in 0..16 {
        let me = if task % 2 == 0 { w.a } else { w.b };
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let me_id = me.id.to_string();
            let me_user = me.user.to_string();
            for round in 0..40 {
                let txn = as_tenant_read_only(&pool, me).await;
                let users = visible_users(&txn).await;
                assert_eq!(users.len(), 1, "task {task} round {round}: expected one user");
                for (u, t) in users {
                    assert!(
                        t == me_id && u == me_user,
                        "task {task} round {round} (tenant {me_id}) saw user {u} of tenant {t}"
                    );
                }
                let events = all(&txn, "select tenant_id::text as t from security_events", vec![])
                    .await
                    .expect("security_events");
                assert!(
                    !events.is_empty(),
                    "task {task} round {round}: expected its own security events"
                );
                for r in &events {
                    let t = r.try_get::<String>("", "t").expect("t");
                    assert_eq!(
                        t, me_id,
                        "task {task} round {round} saw a security event of tenant {t}"
                    );
                }
                txn.commit().await.expect("commit");
                if round % 4 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for (i, result) in futures::future::join_all(tasks).await.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("task {i} failed: {e}"));
    }
}

async fn plan_cache_mode<C: ConnectionTrait>(conn: &C) -> String {
    one(conn, "select current_setting('plan_cache_mode') as v", vec![])
        .await
        .expect("plan_cache_mode")
        .try_get::<String>("", "v")
        .expect("v")
}

#[tokio::test]
async fn queries_use_generic_plans_for_their_own_transaction_only() {
    let w = world().await;
    let read = as_tenant_read_only(&w.app, w.a).await;
    assert_eq!(plan_cache_mode(&read).await, "force_generic_plan");
    // The plan is shared by every tenant, and the policies still bind it to this one.
    let users = visible_users(&read).await;
    assert!(!users.is_empty(), "tenant A sees its users");
    assert!(users.iter().all(|(_, t)| *t == w.a.id.to_string()), "{users:?}");
    read.commit().await.expect("commit");

    let write = as_tenant(&w.app, w.a).await;
    assert_eq!(
        plan_cache_mode(&write).await,
        "auto",
        "writes keep PostgreSQL's default"
    );
    write.commit().await.expect("commit");

    // Nothing carries over to the pooled connection once the transaction ends.
    let read = as_tenant_read_only(&w.app, w.b).await;
    read.rollback().await.expect("rollback");
    assert_eq!(plan_cache_mode(&w.app).await, "auto");
}
