//! Adaptive rate limits, attacked from one client address: sign-ins share one budget
//! across tenants, aliases and refused or failing requests all count, a user's trust
//! scales their limit, persistent offenders are blocked past the window, reads are
//! limited in memory without a database write, and a spoofed `X-Forwarded-For` buys
//! nothing. (Two gateway processes sharing the budget, and a window resetting, are in
//! tests/api_multiprocess.rs.)

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::config::Config;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use support::TestDb;
use support::fixture::{A, B, Fixture, PASSWORD, login, run};
use support::gateway::{TestGateway, first_error_code};
use support::sql::count;
use uuid::Uuid;

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";
const LOCK: &str = "mutation($id: UUID!) { lockUser(id: $id) { id } }";
const ME: &str = "{ me { id } }";

/// A window far longer than any case, so a case never straddles two.
const LONG_WINDOW_SECS: u32 = 3600;

/// Waits out the last seconds of a long window, so a case's requests all land in one.
async fn clear_of_window_edge() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let left = u64::from(LONG_WINDOW_SECS) - now % u64::from(LONG_WINDOW_SECS);
    if left < 60 {
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}

/// A gateway whose limits are the defaults with `tweak` applied (not the relaxed ones
/// other test files use), over a seeded database.
async fn gateway_with(tweak: impl FnOnce(&mut Config)) -> (TestDb, Fixture, TestGateway) {
    clear_of_window_edge().await;
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gateway = TestGateway::start_with(&db, |config| {
        config.rate_limits = Default::default();
        config.rate_limits.window_secs = LONG_WINDOW_SECS;
        tweak(config);
    })
    .await;
    (db, fixture, gateway)
}

fn sign_in(tenant: &str, username: &str, password: &str) -> Value {
    json!({ "input": { "tenant": tenant, "username": username, "password": password } })
}

/// The `retryAfter` of a RATE_LIMITED reply; panics on any other reply.
fn retry_after(body: &Value, what: &str) -> u64 {
    assert_eq!(
        first_error_code(body).as_deref(),
        Some("RATE_LIMITED"),
        "{what}: {body:#}"
    );
    body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: RATE_LIMITED without retryAfter: {body:#}"))
}

fn not_rate_limited(body: &Value, what: &str) {
    assert_ne!(
        first_error_code(body).as_deref(),
        Some("RATE_LIMITED"),
        "{what}: {body:#}"
    );
}

#[tokio::test]
async fn sign_ins_from_one_address_share_one_budget_across_tenants() {
    let (db, _fixture, gw) = gateway_with(|c| {
        c.rate_limits.endpoints.insert("login".into(), 3);
    })
    .await;
    login(&gw, A, "admin", PASSWORD).await;
    login(&gw, B, "admin", PASSWORD).await;
    let (_, body) = gw.gql(None, LOGIN, sign_in(A, "nobody", "wrong password")).await;
    assert_eq!(
        first_error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body:#}"
    );

    // A fourth sign-in, to a tenant this address has not tried yet in this window.
    let (_, body) = gw.gql(None, LOGIN, sign_in(B, "manager", PASSWORD)).await;
    let wait = retry_after(&body, "the fourth sign-in");
    assert!(
        (1..=u64::from(LONG_WINDOW_SECS)).contains(&wait),
        "retryAfter {wait}"
    );
    assert!(body["data"]["login"].is_null(), "no token when refused: {body:#}");

    // Another public endpoint has its own budget.
    let (_, body) = gw
        .gql(
            None,
            "mutation { requestPasswordReset(input: {tenant: \"acme\", email: \"x@example.test\"}) }",
            json!({}),
        )
        .await;
    not_rate_limited(&body, "a password reset request");

    // The serving role cannot even name the address windows; the owner sees one row.
    let app = db.app().await;
    let denied = app
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "select count(*) from ultracore_private.address_windows",
        ))
        .await;
    support::sql::expect_sqlstate(denied, "42501", "ultracore_app reads the address windows");
    let owner = db.owner().await;
    let counted = count(
        &owner,
        "select request_count::bigint as n from ultracore_private.address_windows \
          where endpoint = 'login' and ip_address = '127.0.0.1' and is_blocked",
    )
    .await;
    assert_eq!(counted, 4, "every sign-in counted, the refused one too");
}

#[tokio::test]
async fn each_aliased_sign_in_counts() {
    let (_db, _fixture, gw) = gateway_with(|c| {
        c.rate_limits.endpoints.insert("login".into(), 2);
    })
    .await;
    let aliased = format!(
        "mutation {{ {} }}",
        (0..3)
            .map(|i| format!(
                "a{i}: login(input: {{tenant: \"acme\", username: \"admin\", password: \"guess {i}\"}}) {{ accessToken }}"
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (_, body) = gw.gql(None, &aliased, json!({})).await;
    retry_after(&body, "three aliased sign-ins against a limit of two");
    assert!(body["data"].is_null(), "nothing ran: {body:#}");
}

#[tokio::test]
async fn a_failing_mutation_uses_its_budget_and_the_window_is_recorded() {
    let (db, fixture, gw) = gateway_with(|c| {
        c.rate_limits.mutation_limit = 2;
    })
    .await;
    let admin = fixture.login(&gw, A, "admin").await;
    // Signing in raised the admin's trust a little; pin it to the neutral 50 (multiplier 1).
    let owner = db.owner().await;
    run(
        &owner,
        "update users set trust_score = 50 where user_id = $1",
        vec![fixture.a.user("admin").into()],
    )
    .await;
    for attempt in 0..2 {
        let (_, body) = gw.gql(Some(&admin), LOCK, json!({ "id": Uuid::now_v7() })).await;
        assert_eq!(
            first_error_code(&body).as_deref(),
            Some("NOT_FOUND"),
            "attempt {attempt}: {body:#}"
        );
    }
    let (_, body) = gw
        .gql(Some(&admin), LOCK, json!({ "id": fixture.a.user("customer") }))
        .await;
    retry_after(&body, "the third lockUser");
    // The refused lock did not happen.
    let locked = count(
        &owner,
        &format!(
            "select count(*) as n from users where user_id = '{}' and is_locked",
            fixture.a.user("customer")
        ),
    )
    .await;
    assert_eq!(locked, 0, "a refused mutation must not run");

    let user_window = format!(
        "select count(*) as n from rate_limit_entries where tenant_id = '{}' and user_id = '{}' \
           and endpoint = 'lockUser' and request_count = 3 and base_limit = 2 and adaptive_limit = 2 \
           and trust_multiplier = 1.00 and is_blocked and blocked_until = window_end \
           and ip_address = '127.0.0.1'",
        fixture.a.tenant_id,
        fixture.a.user("admin")
    );
    assert_eq!(
        count(&owner, &user_window).await,
        1,
        "the user's window as recorded"
    );
    let address_window = format!(
        "select count(*) as n from rate_limit_entries where tenant_id = '{}' and user_id is null \
           and ip_address = '127.0.0.1' and endpoint = 'lockUser' and request_count = 3 \
           and adaptive_limit = 8 and not is_blocked",
        fixture.a.tenant_id
    );
    assert_eq!(
        count(&owner, &address_window).await,
        1,
        "the address's window inside the tenant"
    );

    // Other root fields have their own windows; reads are not limited by writes.
    let data = gw
        .data(
            Some(&admin),
            "mutation { reportThreat(input: {threatType: \"other budget\", severity: LOW}) { id } }",
            json!({}),
        )
        .await;
    assert!(data["reportThreat"]["id"].is_string());
    gw.data(Some(&admin), ME, json!({})).await;
}

#[tokio::test]
async fn trust_scales_a_users_limit() {
    let (db, fixture, gw) = gateway_with(|c| {
        c.rate_limits.mutation_limit = 4;
    })
    .await;
    let owner = db.owner().await;
    // Counted before permissions are checked: FORBIDDEN replies use the budget too.
    for (username, score, admitted, multiplier) in [("officer", 100, 6, "1.50"), ("customer", 0, 2, "0.50")] {
        let token = fixture.login(&gw, A, username).await;
        // Set after signing in (which moves trust a little).
        run(
            &owner,
            "update users set trust_score = $2 where user_id = $1",
            vec![
                fixture.a.user(username).into(),
                rust_decimal::Decimal::from(score).into(),
            ],
        )
        .await;
        for attempt in 0..admitted {
            let (_, body) = gw.gql(Some(&token), LOCK, json!({ "id": Uuid::now_v7() })).await;
            not_rate_limited(&body, &format!("{username}, attempt {attempt}"));
        }
        let (_, body) = gw.gql(Some(&token), LOCK, json!({ "id": Uuid::now_v7() })).await;
        retry_after(&body, &format!("{username} past {admitted}"));
        let row = count(
            &owner,
            &format!(
                "select count(*) as n from rate_limit_entries where user_id = '{}' and endpoint = 'lockUser' \
                   and trust_multiplier = {multiplier} and adaptive_limit = {admitted}",
                fixture.a.user(username)
            ),
        )
        .await;
        assert_eq!(row, 1, "{username}'s window has multiplier {multiplier}");
    }
}

#[tokio::test]
async fn a_persistent_offender_is_blocked_past_the_window() {
    let (_db, fixture, gw) = gateway_with(|c| {
        c.rate_limits.window_secs = 60;
        c.rate_limits.mutation_limit = 1;
        c.rate_limits.offender_factor = 2;
        c.rate_limits.offender_block_secs = 7200;
    })
    .await;
    let admin = fixture.login(&gw, A, "admin").await;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let (_, body) = gw.gql(Some(&admin), LOCK, json!({ "id": Uuid::now_v7() })).await;
        if first_error_code(&body).as_deref() == Some("RATE_LIMITED") {
            waits.push(retry_after(&body, "refused"));
        }
    }
    assert_eq!(waits.len(), 3, "only the first was admitted: {waits:?}");
    assert!(waits[0] <= 60, "the second waits for the window: {waits:?}");
    assert!(
        waits[1] > 7000,
        "past twice the limit the block outlasts the window: {waits:?}"
    );
}

#[tokio::test]
async fn reads_are_limited_in_memory_and_write_nothing() {
    let (db, fixture, gw) = gateway_with(|c| {
        c.rate_limits.read_limit = 3;
    })
    .await;
    let officer = fixture.login(&gw, A, "officer").await;
    let manager = fixture.login(&gw, A, "manager").await;
    for _ in 0..3 {
        gw.data(Some(&officer), ME, json!({})).await;
    }
    let (_, body) = gw.gql(Some(&officer), ME, json!({})).await;
    retry_after(&body, "the fourth read");
    // A subscription start is a read too.
    let mut ws = support::ws::WsClient::connect(&gw, Some(&officer)).await;
    ws.subscribe(
        "t",
        "subscription { threatDetected { threat { id } } }",
        json!({}),
    )
    .await;
    let refused = ws
        .next_message(Duration::from_secs(10))
        .await
        .expect("an answer to the subscription");
    assert!(refused.to_string().contains("RATE_LIMITED"), "{refused}");
    ws.close().await;
    gw.data(Some(&manager), ME, json!({})).await;

    let owner = db.owner().await;
    let rows = count(
        &owner,
        &format!(
            "select count(*) as n from rate_limit_entries where user_id = '{}'",
            fixture.a.user("officer")
        ),
    )
    .await;
    assert_eq!(rows, 0, "reads wrote no window");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_buys_no_budget() {
    let (_db, _fixture, gw) = gateway_with(|c| {
        c.rate_limits.endpoints.insert("login".into(), 2);
    })
    .await;
    let mut last = Value::Null;
    for i in 0..3 {
        let forwarded = format!("203.0.113.{i}");
        let body = json!({ "query": LOGIN, "variables": sign_in(A, "nobody", "wrong password") }).to_string();
        let (_, text) = gw
            .post(
                &[
                    ("content-type", "application/json"),
                    ("x-forwarded-for", forwarded.as_str()),
                ],
                body,
            )
            .await;
        last = support::gateway::parse_body(&text);
    }
    retry_after(&last, "the third sign-in, each claiming another address");
}

#[tokio::test]
async fn limits_switched_off_admit_everything() {
    let (_db, _fixture, gw) = gateway_with(|c| {
        c.rate_limits.enabled = false;
        c.rate_limits.endpoints.insert("login".into(), 1);
        c.rate_limits.read_limit = 1;
    })
    .await;
    let token = login(&gw, A, "admin", PASSWORD).await;
    login(&gw, A, "admin", PASSWORD).await;
    for _ in 0..3 {
        gw.data(Some(&token), ME, json!({})).await;
    }
}
