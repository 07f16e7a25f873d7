//! No N+1: a page of 100 rows with nested relations costs the gateway as many SQL
//! statements as a page of 5. The counts come from PostgreSQL itself
//! (pg_stat_statements, restricted to this test's database and to the serving role), not
//! from any counter of ours.
//!
//! The counts themselves are fixed too. Every operation with a principal costs `BEGIN`,
//! one statement that sets the transaction's tenant, user, statement timeout and (for a
//! query) `transaction_read_only` and also re-checks the session and the user, its own
//! statements, and `COMMIT`: so a query costs 3 + one statement per list or loader it
//! reaches (pg_stat_statements counts `BEGIN` and `COMMIT`). Before the settings and the
//! session check shared a statement, and `SET TRANSACTION READ ONLY` (which
//! pg_stat_statements does not count) was a round trip of its own, each count was one
//! higher.
//!
//! The gateway runs with a pool of one connection, and each query is run once before it
//! is measured: what is compared is the steady state of a connection (the first use of a
//! connection may add the driver's one-off catalog lookups, which are not per-row work).
//! The tests run on a multi-threaded runtime, as `ultracore serve` does.

mod support;

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use support::TestDb;
use support::fixture::{A, Fixture, run, tenant_txn};
use support::gateway::TestGateway;
use support::sql;

/// Statements of the serving role in the current database, as pg_stat_statements sums
/// them (its own queries excluded).
const COUNT: &str = "select coalesce(sum(calls), 0)::bigint from pg_stat_statements \
     where dbid = (select oid from pg_database where datname = current_database()) \
       and userid = (select oid from pg_roles where rolname = 'ultracore_app') \
       and query not like '%pg_stat_statements%'";

/// The same statements, one line each, for assertion messages.
const BREAKDOWN: &str = "select string_agg(calls || ' x ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 160), \
                                E'\\n' order by query) from pg_stat_statements \
     where dbid = (select oid from pg_database where datname = current_database()) \
       and userid = (select oid from pg_roles where rolname = 'ultracore_app') \
       and query not like '%pg_stat_statements%'";

/// Forgets the statistics of this test's database only (other tests run concurrently in
/// other databases of the same cluster, and keep theirs).
const RESET: &str = "select pg_stat_statements_reset(0::oid, \
     (select oid from pg_database where datname = current_database()), 0::bigint)";

const EVENTS: &str = "query($first: Int!) { securityEvents(first: $first) { edges { node { id \
    user { username trustedDevices(first: 5) { edges { node { deviceName } } } } } } } }";

const INCIDENTS: &str = "query($first: Int!) { securityIncidents(first: $first) { edges { node { id \
    relatedThreats { id affectedUsers { username \
        trustedDevices(first: 5) { edges { node { deviceName } } } } } } } } }";

/// A placeholder argon2id PHC string: the bulk users never sign in.
const BULK_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$YnVsa3NhbHRidWxrc2FsdA$YnVsa2hhc2hidWxraGFzaGJ1bGtoYXNoYnVsa2g";

struct Measured {
    statements: i64,
    data: Value,
    breakdown: String,
}

async fn measure(
    owner: &DatabaseConnection,
    gw: &TestGateway,
    token: &str,
    query: &str,
    first: i64,
) -> Measured {
    owner
        .execute_unprepared(RESET)
        .await
        .expect("reset pg_stat_statements");
    let data = gw.data(Some(token), query, json!({ "first": first })).await;
    let statements = sql::count(owner, COUNT).await;
    let breakdown = sql::scalar(owner, BREAKDOWN).await.unwrap_or_default();
    Measured {
        statements,
        data,
        breakdown,
    }
}

/// Twenty more customers of A, two devices each, and 120 events over them, newer than
/// the fixture's (so the first 100 events belong to all twenty).
async fn seed_bulk_events(owner: &DatabaseConnection, tenant_id: uuid::Uuid) {
    let txn = tenant_txn(owner, tenant_id).await;
    run(
        &txn,
        &format!(
            "insert into users (tenant_id, username, email, password_hash, role) \
             select $1, 'bulk' || g, 'bulk' || g || '@acme.example', '{BULK_HASH}', 'customer' \
               from generate_series(1, 20) g"
        ),
        vec![tenant_id.into()],
    )
    .await;
    run(
        &txn,
        "insert into trusted_devices (tenant_id, user_id, device_fingerprint, device_name, device_type) \
         select $1, u.user_id, 'bulk-fp-' || d, u.username || ' device ' || d, 'mobile' \
           from users u cross join generate_series(1, 2) d \
          where u.tenant_id = $1 and u.username like 'bulk%'",
        vec![tenant_id.into()],
    )
    .await;
    run(
        &txn,
        "with u as (select array_agg(user_id order by username) as ids from users \
                     where tenant_id = $1 and username like 'bulk%') \
         insert into security_events (tenant_id, user_id, event_type, event_category, severity, ip_address, \
                                      description, \"timestamp\") \
         select $1, u.ids[1 + g % 20], 'bulk_event', 'authentication', 'low', \
                ('10.9.' || (g / 200) || '.' || (g % 200 + 1))::inet, 'bulk event ' || g, \
                now() + make_interval(secs => 120 - g) \
           from u, generate_series(1, 120) g",
        vec![tenant_id.into()],
    )
    .await;
    txn.commit().await.expect("commit bulk events");
}

/// Ten threats affecting three bulk users each, and fifty incidents linking two threats
/// each, newer than the fixture's.
async fn seed_bulk_incidents(owner: &DatabaseConnection, tenant_id: uuid::Uuid) {
    let txn = tenant_txn(owner, tenant_id).await;
    run(
        &txn,
        "with u as (select array_agg(user_id order by username) as ids from users \
                     where tenant_id = $1 and username like 'bulk%') \
         insert into threat_events (tenant_id, threat_type, severity, affected_user_ids, detected_at) \
         select $1, 'bulk_threat', 'medium', \
                array[u.ids[1 + (3 * g) % 20], u.ids[1 + (3 * g + 1) % 20], u.ids[1 + (3 * g + 2) % 20]], \
                now() - make_interval(secs => g) \
           from u, generate_series(1, 10) g",
        vec![tenant_id.into()],
    )
    .await;
    run(
        &txn,
        "with t as (select array_agg(threat_id order by threat_id) as ids from threat_events \
                     where tenant_id = $1 and threat_type = 'bulk_threat') \
         insert into security_incidents (tenant_id, incident_type, severity, title, related_threat_ids, \
                                         created_at) \
         select $1, 'bulk', 'low', 'bulk incident ' || g, array[t.ids[1 + g % 10], t.ids[1 + (g + 1) % 10]], \
                now() + make_interval(secs => 60 - g) \
           from t, generate_series(1, 50) g",
        vec![tenant_id.into()],
    )
    .await;
    txn.commit().await.expect("commit bulk incidents");
}

async fn setup() -> (TestDb, Fixture, TestGateway, DatabaseConnection, String) {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, |config| config.database.pool_size = 1).await;
    let owner = db.owner().await;
    let token = fx.login(&gw, A, "admin").await;
    (db, fx, gw, owner, token)
}

fn edges<'a>(data: &'a Value, list: &str) -> &'a Vec<Value> {
    data[list]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}.edges: {data}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_5_or_100_events_with_users_and_devices_issues_the_same_number_of_statements() {
    let (_db, fx, gw, owner, token) = setup().await;
    seed_bulk_events(&owner, fx.a.tenant_id).await;
    // Warm the connection with both shapes.
    for first in [5, 100] {
        gw.data(Some(&token), EVENTS, json!({ "first": first })).await;
    }

    let small = measure(&owner, &gw, &token, EVENTS, 5).await;
    let large = measure(&owner, &gw, &token, EVENTS, 100).await;
    println!(
        "events: first 5 -> {} statements, first 100 -> {} statements",
        small.statements, large.statements
    );

    assert_eq!(edges(&small.data, "securityEvents").len(), 5);
    let rows = edges(&large.data, "securityEvents");
    assert_eq!(rows.len(), 100);
    let users: BTreeSet<&str> = rows
        .iter()
        .filter_map(|e| e["node"]["user"]["username"].as_str())
        .collect();
    assert!(users.len() >= 20, "100 events span {} users", users.len());
    let devices: usize = rows
        .iter()
        .map(|e| {
            e["node"]["user"]["trustedDevices"]["edges"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(devices, 200, "each event's user shows its two devices");
    assert!(small.statements > 0, "pg_stat_statements saw nothing");
    assert_eq!(
        small.statements, large.statements,
        "statements for 5 events:\n{}\nstatements for 100 events:\n{}",
        small.breakdown, large.breakdown
    );
    // BEGIN, settings + session check, the events, their users, the users' devices, COMMIT.
    assert_eq!(
        small.statements, 6,
        "statements for 5 events:\n{}",
        small.breakdown
    );
    // `user { username ... }` reads the users' brief columns, never their secrets.
    assert!(
        !large.breakdown.contains("password_hash") && !large.breakdown.contains("mfa_secret"),
        "statements for 100 events:\n{}",
        large.breakdown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_2_or_50_incidents_with_threats_users_and_devices_issues_the_same_number_of_statements() {
    let (_db, fx, gw, owner, token) = setup().await;
    seed_bulk_events(&owner, fx.a.tenant_id).await;
    seed_bulk_incidents(&owner, fx.a.tenant_id).await;
    for first in [2, 50] {
        gw.data(Some(&token), INCIDENTS, json!({ "first": first })).await;
    }

    let small = measure(&owner, &gw, &token, INCIDENTS, 2).await;
    let large = measure(&owner, &gw, &token, INCIDENTS, 50).await;
    println!(
        "incidents: first 2 -> {} statements, first 50 -> {} statements",
        small.statements, large.statements
    );

    assert_eq!(edges(&small.data, "securityIncidents").len(), 2);
    let rows = edges(&large.data, "securityIncidents");
    assert_eq!(rows.len(), 50);
    let users: BTreeSet<String> = rows
        .iter()
        .flat_map(|e| {
            e["node"]["relatedThreats"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|t| t["affectedUsers"].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u["username"].as_str().map(str::to_string))
        .collect();
    assert!(users.len() >= 20, "50 incidents reach {} users", users.len());
    assert!(small.statements > 0, "pg_stat_statements saw nothing");
    assert_eq!(
        small.statements, large.statements,
        "statements for 2 incidents:\n{}\nstatements for 50 incidents:\n{}",
        small.breakdown, large.breakdown
    );
    // BEGIN, settings + session check, the incidents, their threats, the threats' users,
    // the users' devices, COMMIT.
    assert_eq!(
        small.statements, 7,
        "statements for 2 incidents:\n{}",
        small.breakdown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statement_counts_are_read_from_postgresql_and_see_every_request() {
    // The measuring method itself: two runs of the same request count twice one run, so
    // equal counts above are not an artefact of statistics that miss requests.
    let (_db, _fx, gw, owner, token) = setup().await;
    let query = "{ me { id } }";
    gw.data(Some(&token), query, json!({})).await;
    owner.execute_unprepared(RESET).await.expect("reset");
    gw.data(Some(&token), query, json!({})).await;
    let once = sql::count(&owner, COUNT).await;
    owner.execute_unprepared(RESET).await.expect("reset");
    gw.data(Some(&token), query, json!({})).await;
    gw.data(Some(&token), query, json!({})).await;
    let twice = sql::count(&owner, COUNT).await;
    println!("me: one request -> {once} statements, two -> {twice}");
    assert!(once > 0, "pg_stat_statements saw nothing");
    assert_eq!(twice, 2 * once);
    // BEGIN, settings + session check, the user, COMMIT.
    assert_eq!(once, 4);
}

/// The full text of every statement the serving role ran since the last reset.
const TEXTS: &str = "select query as v from pg_stat_statements \
     where dbid = (select oid from pg_database where datname = current_database()) \
       and userid = (select oid from pg_roles where rolname = 'ultracore_app') \
       and query not like '%pg_stat_statements%'";

/// The statement of the texts that reads `table` (its FROM clause as SeaORM writes it).
fn reading<'a>(texts: &'a [String], table: &str) -> &'a str {
    let from = format!("FROM \"{table}\"");
    texts
        .iter()
        .find(|t| t.contains(&from))
        .unwrap_or_else(|| panic!("no statement reads {table}: {texts:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_read_only_the_columns_their_selection_needs_and_serve_every_field_either_way() {
    let (_db, fx, gw, owner, token) = setup().await;
    seed_bulk_events(&owner, fx.a.tenant_id).await;
    // What anyone who reaches an event's user sees, and nothing of the event's details.
    let brief = "{ securityEvents(first: 10) { edges { cursor node { id eventType severity timestamp \
                 user { id username role createdAt } } } } }";
    // The details through a fragment, and the user's personal fields.
    let full = "{ securityEvents(first: 10) { edges { cursor node { id ...Details \
                user { id username role createdAt email isActive } } } } } \
                fragment Details on SecurityEvent { eventType severity timestamp description metadata userAgent }";

    owner.execute_unprepared(RESET).await.expect("reset");
    let a = gw.data(Some(&token), brief, json!({})).await;
    let texts = sql::strings(&owner, TEXTS).await;
    let events = reading(&texts, "security_events");
    let users = reading(&texts, "users");
    for column in [
        "description",
        "metadata",
        "user_agent",
        "geolocation",
        "device_fingerprint",
    ] {
        assert!(!events.contains(column), "{column} read for a summary: {events}");
    }
    for column in [
        "password_hash",
        "mfa_secret",
        "totp_last_step",
        "email",
        "permissions",
    ] {
        assert!(!users.contains(column), "{column} read for a brief user: {users}");
    }

    owner.execute_unprepared(RESET).await.expect("reset");
    let b = gw.data(Some(&token), full, json!({})).await;
    let texts = sql::strings(&owner, TEXTS).await;
    assert!(reading(&texts, "security_events").contains("description"));
    let users = reading(&texts, "users");
    assert!(users.contains("email"), "{users}");
    for secret in ["password_hash", "mfa_secret", "totp_last_step"] {
        assert!(!users.contains(secret), "{secret} read for the API: {users}");
    }

    // The same rows and cursors either way, and the details as stored.
    let (a, b) = (edges(&a, "securityEvents"), edges(&b, "securityEvents"));
    assert_eq!(a.len(), 10);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["cursor"], y["cursor"]);
        for field in ["id", "eventType", "severity", "timestamp"] {
            assert_eq!(x["node"][field], y["node"][field], "{field}");
        }
        for field in ["id", "username", "role", "createdAt"] {
            assert_eq!(x["node"]["user"][field], y["node"]["user"][field], "user.{field}");
        }
        assert!(
            y["node"]["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("bulk event ")),
            "{y}"
        );
        assert!(y["node"]["metadata"].is_object(), "{y}");
        assert!(
            y["node"]["user"]["email"]
                .as_str()
                .is_some_and(|e| e.contains('@')),
            "{y}"
        );
    }
}
