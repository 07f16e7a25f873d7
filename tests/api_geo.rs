//! Geolocation and impossible travel: locations come from a MaxMind-format database or
//! from a trusted proxy's headers (never from anyone else's), are stored with the
//! sign-in's security event, and a sign-in further away than anyone can travel since the
//! previous one is scored (`impossible_travel`, weight 40), raises a threat and opens an
//! incident. A normal traveller, and a gateway told nothing about geography, stay quiet.

mod support;

use std::path::PathBuf;

use api::config::Config;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};
use support::TestDb;
use support::fixture::{A, Fixture, PASSWORD};
use support::gateway::{TestGateway, parse_body};
use support::sql::count;
use uuid::Uuid;

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken mfaRequired } }";

const FRANKFURT: (&str, &str, &str, &str) = ("50.1109", "8.6821", "DE", "Frankfurt");
const OFFENBACH: (&str, &str, &str, &str) = ("50.0956", "8.7761", "DE", "Offenbach");
const SINGAPORE: (&str, &str, &str, &str) = ("1.3521", "103.8198", "SG", "Singapore");

/// A gateway that trusts the loopback as its proxy and reads the proxy's location headers.
fn behind_a_locating_proxy(config: &mut Config) {
    config.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    config.geo.latitude_header = Some("x-client-latitude".into());
    config.geo.longitude_header = Some("x-client-longitude".into());
    config.geo.country_header = Some("x-client-country".into());
    config.geo.city_header = Some("x-client-city".into());
}

/// Signs `username` in with `headers`; the response body.
async fn sign_in(gw: &TestGateway, username: &str, headers: &[(&str, &str)]) -> Value {
    let body = json!({
        "query": LOGIN,
        "variables": { "input": { "tenant": A, "username": username, "password": PASSWORD } },
    })
    .to_string();
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let (status, text) = gw.post(&all, body).await;
    assert_eq!(status, 200, "{text}");
    let body = parse_body(&text);
    assert!(
        body["data"]["login"]["accessToken"].is_string(),
        "{username} signs in: {body:#}"
    );
    body
}

async fn sign_in_at(gw: &TestGateway, username: &str, place: (&str, &str, &str, &str)) -> Value {
    let (lat, lon, country, city) = place;
    sign_in(
        gw,
        username,
        &[
            ("x-client-latitude", lat),
            ("x-client-longitude", lon),
            ("x-client-country", country),
            ("x-client-city", city),
        ],
    )
    .await
}

/// The user's latest login_success event as JSON.
async fn last_sign_in(owner: &DatabaseConnection, user: Uuid) -> Value {
    support::sql::user_events(owner, user, "login_success")
        .await
        .pop()
        .expect("a login_success event")
}

fn travel_factor(event: &Value) -> Option<Value> {
    event["metadata"]["risk"]["factors"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == "impossible_travel")
        .cloned()
}

async fn travel_threats(owner: &DatabaseConnection, user: Uuid) -> i64 {
    count(
        owner,
        &format!(
            "select count(*) as n from threat_events where threat_type = 'impossible_travel' \
               and '{user}' = any(affected_user_ids)"
        ),
    )
    .await
}

#[tokio::test]
async fn a_sign_in_from_across_the_world_minutes_later_is_impossible_travel() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, behind_a_locating_proxy).await;
    let owner = db.owner().await;
    let officer = fixture.a.user("officer");

    sign_in_at(&gw, "officer", FRANKFURT).await;
    let first = last_sign_in(&owner, officer).await;
    assert_eq!(first["geolocation"]["country"], "DE", "{first:#}");
    assert_eq!(first["geolocation"]["source"], "proxy", "{first:#}");
    assert!(travel_factor(&first).is_none(), "nothing to compare with yet");

    sign_in_at(&gw, "officer", SINGAPORE).await;
    let second = last_sign_in(&owner, officer).await;
    assert_eq!(second["geolocation"]["city"], "Singapore", "{second:#}");
    let factor = travel_factor(&second).unwrap_or_else(|| panic!("scored as travel: {second:#}"));
    assert_eq!(factor["weight"].as_f64(), Some(40.0), "{factor}");
    assert_eq!(factor["contribution"].as_f64(), Some(40.0), "{factor}");
    let speed = factor["observed"].as_f64().expect("km/h observed");
    assert!(speed > 100_000.0, "10,000 km in under a minute: {speed} km/h");

    // The threat, its response as the sign-in carried it out (no MFA to demand), and
    // the incident a high threat opens.
    let threat = count(
        &owner,
        &format!(
            "select count(*) as n from threat_events t where threat_type = 'impossible_travel' \
               and severity = 'high' and '{officer}' = any(affected_user_ids) \
               and response_action = 'alert' and response_status = 'executed' \
               and 'geo:Singapore, SG' = any(indicators) and 'geo:Frankfurt, DE' = any(indicators) \
               and exists (select 1 from security_incidents i where t.threat_id = any(i.related_threat_ids) \
                            and i.incident_type = 'impossible_travel')"
        ),
    )
    .await;
    assert_eq!(threat, 1, "one impossible_travel threat with its incident");
}

#[tokio::test]
async fn a_normal_traveller_is_not_flagged() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, behind_a_locating_proxy).await;
    let owner = db.owner().await;
    let manager = fixture.a.user("manager");

    // Next-door cities are within GeoIP's error: not travel at all.
    sign_in_at(&gw, "manager", FRANKFURT).await;
    sign_in_at(&gw, "manager", OFFENBACH).await;
    assert!(travel_factor(&last_sign_in(&owner, manager).await).is_none());

    // A day's flight: the previous sign-in was 20 hours ago (about 513 km/h). The log is
    // append-only (0021), so the test ages it the way only a superuser could: with the
    // guarding triggers off.
    let txn = owner.begin().await.expect("begin");
    txn.execute_unprepared("set local session_replication_role = replica")
        .await
        .expect("replica mode");
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "update security_events set \"timestamp\" = \"timestamp\" - interval '20 hours' where user_id = $1",
        [manager.into()],
    ))
    .await
    .expect("age the history");
    txn.commit().await.expect("commit");
    sign_in_at(&gw, "manager", SINGAPORE).await;
    assert!(travel_factor(&last_sign_in(&owner, manager).await).is_none());
    assert_eq!(travel_threats(&owner, manager).await, 0);
}

#[tokio::test]
async fn location_headers_from_an_untrusted_peer_are_ignored() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, |config| {
        behind_a_locating_proxy(config);
        config.http.trusted_proxies.clear();
    })
    .await;
    let owner = db.owner().await;
    let officer = fixture.a.user("officer");
    sign_in_at(&gw, "officer", FRANKFURT).await;
    sign_in_at(&gw, "officer", SINGAPORE).await;
    let event = last_sign_in(&owner, officer).await;
    assert!(event["geolocation"].is_null(), "{event:#}");
    assert!(travel_factor(&event).is_none());
    assert_eq!(travel_threats(&owner, officer).await, 0);
}

fn test_city_database() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo/test-city.mmdb")
}

#[tokio::test]
async fn a_maxmind_database_locates_the_client_address() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, |config| {
        config.http.trusted_proxies = vec!["127.0.0.1/32".into()];
        config.geo.database = Some(test_city_database());
    })
    .await;
    let owner = db.owner().await;
    let officer = fixture.a.user("officer");
    // The proxy names the client; the database places it.
    sign_in(&gw, "officer", &[("x-forwarded-for", "198.51.100.7")]).await;
    let first = last_sign_in(&owner, officer).await;
    assert_eq!(first["geolocation"]["city"], "Frankfurt", "{first:#}");
    assert_eq!(first["geolocation"]["source"], "database", "{first:#}");
    sign_in(&gw, "officer", &[("x-forwarded-for", "203.0.113.9")]).await;
    let second = last_sign_in(&owner, officer).await;
    assert_eq!(second["geolocation"]["country"], "SG", "{second:#}");
    assert!(travel_factor(&second).is_some(), "{second:#}");
    assert_eq!(travel_threats(&owner, officer).await, 1);
    // An address the database does not hold is simply not located.
    sign_in(&gw, "officer", &[("x-forwarded-for", "192.0.2.77")]).await;
    assert!(last_sign_in(&owner, officer).await["geolocation"].is_null());
}

#[test]
fn serve_refuses_to_start_with_an_unreadable_geoip_database() {
    let dir = support::TempDir::new("ultracore-geo");
    let output = support::cli::ultracore(dir.path())
        .env("ULTRACORE_DATA_DIR", dir.path())
        .env(
            "ULTRACORE_APP_DATABASE_URL",
            "postgres://ultracore_app:x@127.0.0.1:1/none",
        )
        .env(
            "ULTRACORE_JWT_SECRET",
            "a-test-secret-of-at-least-32-bytes-0123456789",
        )
        .env("ULTRACORE_DATA_KEY", support::gateway::TEST_DATA_KEY)
        .env("ULTRACORE_GEO__DATABASE", dir.path().join("missing.mmdb"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run ultracore serve");
    assert!(
        !output.status.success(),
        "serve started without its GeoIP database"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GeoIP database"), "{stderr}");
}
