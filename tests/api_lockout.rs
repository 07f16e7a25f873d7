//! Account lockout and the sameness of failed sign-ins (ASVS 6.1.1, 6.3.1, 6.3.8, 6.2.1),
//! attacked through the HTTP API of an in-process gateway over a real database:
//!
//! - wrong passwords are counted per account, atomically, also when sent as aliases of
//!   one document or entries of one batch; at the threshold (5, or the tenant's
//!   `lockout_threshold`) the account locks for 300 s, each further lock twice as long
//!   (at most a day); a successful sign-in resets the progression; admins unlock;
//! - attempts on a locked account are not counted and do not extend the lock;
//! - unknown user, wrong password and locked account get byte-identical replies, and an
//!   unknown user costs a real Argon2 verification;
//! - long passwords work, a huge one is refused before hashing.

mod support;

use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use support::fixture::{A, B, Fixture, PASSWORD};
use support::gateway::{TestGateway, first_error_code};
use support::sessions::{LOGIN, events_of, login_vars, sign_in};
use support::{TestDb, sql};
use uuid::Uuid;

const WRONG: &str = "not the right password 123 xyz";
struct World {
    gw: TestGateway,
    owner: DatabaseConnection,
    fx: Fixture,
    /// What a sign-in to a tenant that does not exist answers, byte for byte: every
    /// failed sign-in must answer exactly this.
    failed: String,
    _db: TestDb,
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut api::config::Config)) -> World {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, tweak).await;
    let owner = db.owner().await;
    // These tests are about the account lockout and send far more failures from
    // 127.0.0.1 than the per-IP throttle allows; its own test lowers it again.
    sql::exec(
        &owner,
        "update tenants set settings = settings || '{\"login_failures_per_ip\": 100000}'::jsonb",
    )
    .await;
    let body =
        json!({ "query": LOGIN, "variables": login_vars("no-such-tenant", "nobody", WRONG) }).to_string();
    let (status, failed) = gw.post_raw("application/json", body, None).await;
    assert_eq!(status, 200, "{failed}");
    let parsed: Value = serde_json::from_str(&failed).expect("json");
    assert_eq!(
        first_error_code(&parsed).as_deref(),
        Some("UNAUTHENTICATED"),
        "{failed}"
    );
    assert_eq!(parsed["errors"][0]["message"], "invalid credentials", "{failed}");
    assert!(parsed["data"].is_null(), "{failed}");
    World {
        gw,
        owner,
        fx,
        failed,
        _db: db,
    }
}

/// The lock state of a user, as the owner sees it.
#[derive(Debug, Clone, PartialEq)]
struct LockState {
    failed: i64,
    lockouts: i64,
    /// Seconds from now until locked_until (None: not set).
    locked_for: Option<f64>,
    /// locked_until as text (microseconds), to compare exactly.
    locked_until: Option<String>,
}

impl World {
    /// POSTs the login mutation for tenant A; the raw status and body text.
    async fn login_text(&self, username: &str, password: &str) -> (u16, String) {
        self.login_text_in(A, username, password).await
    }

    async fn login_text_in(&self, tenant: &str, username: &str, password: &str) -> (u16, String) {
        let body = json!({ "query": LOGIN, "variables": login_vars(tenant, username, password) }).to_string();
        self.gw.post_raw("application/json", body, None).await
    }

    /// A sign-in that must fail with the generic error; returns the body text.
    async fn fail_login(&self, username: &str, password: &str) -> String {
        let (status, text) = self.login_text(username, password).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(text, self.failed, "login {username}: the generic failure");
        text
    }

    async fn lock_state(&self, user: Uuid) -> LockState {
        let v = |expr: &str| {
            let sql = format!("select {expr} from users where user_id = '{user}'");
            let owner = &self.owner;
            async move { sql::scalar(owner, &sql).await }
        };
        LockState {
            failed: v("failed_login_attempts")
                .await
                .expect("failed")
                .parse()
                .expect("int"),
            lockouts: v("lockout_count").await.expect("lockouts").parse().expect("int"),
            locked_for: v("extract(epoch from locked_until - now())")
                .await
                .map(|s| s.parse().expect("seconds")),
            locked_until: v("to_char(locked_until at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')").await,
        }
    }

    async fn set_threshold(&self, tenant: Uuid, threshold: i64) {
        sql::exec(
            &self.owner,
            &format!(
                "update tenants set settings = settings || '{{\"lockout_threshold\": {threshold}}}'::jsonb \
                  where tenant_id = '{tenant}'"
            ),
        )
        .await;
    }

    async fn admin_unlocks(&self, admin_token: &str, user: Uuid) {
        let data = self
            .gw
            .data(
                Some(admin_token),
                "mutation($id: UUID!) { unlockUser(id: $id) { id isLocked } }",
                json!({ "id": user }),
            )
            .await;
        assert_eq!(data["unlockUser"]["isLocked"], false, "{data}");
    }
}

/// Asserts a lock of about `secs` seconds from now.
fn assert_locked_for(state: &LockState, secs: f64, what: &str) {
    let left = state
        .locked_for
        .unwrap_or_else(|| panic!("{what}: not locked: {state:?}"));
    assert!(
        left > secs - 30.0 && left <= secs + 1.0,
        "{what}: locked for {left:.0} s, expected about {secs} s: {state:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Locking
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_with_a_growing_lock_that_admins_lift() {
    let w = world().await;
    let customer = w.fx.a.user("customer");
    let admin = w.fx.login(&w.gw, A, "admin").await;

    for i in 1..=4 {
        w.fail_login("customer", WRONG).await;
        let state = w.lock_state(customer).await;
        assert_eq!(
            (state.failed, state.lockouts, state.locked_for),
            (i, 0, None),
            "after {i}"
        );
    }
    w.fail_login("customer", WRONG).await;
    let state = w.lock_state(customer).await;
    assert_locked_for(&state, 300.0, "the first lock");
    assert_eq!(state.lockouts, 1, "{state:?}");
    // The right password is now refused exactly like a wrong one.
    let right = w.fail_login("customer", PASSWORD).await;
    let wrong = w.fail_login("customer2", WRONG).await;
    assert_eq!(right, wrong, "a locked account answers like a wrong password");
    let events = events_of(&w.owner, customer, "account_locked").await;
    assert_eq!(
        events,
        vec![("high".to_string(), "lock".to_string())],
        "one lock event"
    );
    assert!(
        events_of(&w.owner, customer, "login_failure").await.len() >= 6,
        "every failure is recorded"
    );

    // An admin unlocks: the count of lockouts stays, so the next lock is longer.
    w.admin_unlocks(&admin, customer).await;
    let state = w.lock_state(customer).await;
    assert_eq!(
        (state.failed, state.lockouts, state.locked_for),
        (0, 1, None),
        "unlocked"
    );
    for _ in 0..5 {
        w.fail_login("customer", WRONG).await;
    }
    let state = w.lock_state(customer).await;
    assert_locked_for(&state, 600.0, "the second lock");
    assert_eq!(state.lockouts, 2, "{state:?}");

    // Unlocked again, the user signs in, which resets the progression: the next lock is
    // the first again.
    w.admin_unlocks(&admin, customer).await;
    let session = sign_in(&w.gw, A, "customer", PASSWORD).await;
    assert_eq!(session.user_id, customer);
    let state = w.lock_state(customer).await;
    assert_eq!(
        (state.failed, state.lockouts),
        (0, 0),
        "a sign-in resets: {state:?}"
    );
    for _ in 0..5 {
        w.fail_login("customer", WRONG).await;
    }
    assert_locked_for(&w.lock_state(customer).await, 300.0, "a lock after a sign-in");
}

#[tokio::test]
async fn a_successful_sign_in_resets_the_failure_count() {
    let w = world().await;
    let customer = w.fx.a.user("customer");
    for _ in 0..4 {
        w.fail_login("customer", WRONG).await;
    }
    assert_eq!(w.lock_state(customer).await.failed, 4);
    sign_in(&w.gw, A, "customer", PASSWORD).await;
    assert_eq!(w.lock_state(customer).await.failed, 0);
    for _ in 0..4 {
        w.fail_login("customer", WRONG).await;
    }
    let state = w.lock_state(customer).await;
    assert_eq!(
        (state.failed, state.locked_for),
        (4, None),
        "4 + 4 failures around a sign-in do not lock"
    );
    sign_in(&w.gw, A, "customer", PASSWORD).await;
}

#[tokio::test]
async fn the_lock_doubles_each_time_but_never_exceeds_a_day() {
    let w = world().await;
    let customer = w.fx.a.user("customer");
    for (lockouts_before, expected) in [(2, 1200.0), (5, 9600.0), (9, 86400.0), (40, 86400.0)] {
        sql::exec(
            &w.owner,
            &format!(
                "update users set lockout_count = {lockouts_before}, locked_until = null, \
                        failed_login_attempts = 0 where user_id = '{customer}'"
            ),
        )
        .await;
        for _ in 0..5 {
            w.fail_login("customer", WRONG).await;
        }
        let state = w.lock_state(customer).await;
        assert_locked_for(
            &state,
            expected,
            &format!("after {lockouts_before} earlier lockouts"),
        );
        assert_eq!(state.lockouts, lockouts_before + 1);
    }
}

#[tokio::test]
async fn a_tenant_lockout_threshold_of_three_locks_after_three_in_that_tenant_only() {
    let w = world().await;
    w.set_threshold(w.fx.a.tenant_id, 3).await;
    let a_customer = w.fx.a.user("customer");
    let b_customer = w.fx.b.user("customer");
    for _ in 0..2 {
        w.fail_login("customer", WRONG).await;
    }
    assert_eq!(
        w.lock_state(a_customer).await.locked_for,
        None,
        "not locked after 2"
    );
    w.fail_login("customer", WRONG).await;
    assert_locked_for(&w.lock_state(a_customer).await, 300.0, "locked after 3");

    // B keeps the default of 5.
    for _ in 0..3 {
        let (_, text) = w.login_text_in(B, "customer", WRONG).await;
        assert_eq!(text, w.failed);
    }
    let state = w.lock_state(b_customer).await;
    assert_eq!(
        (state.failed, state.locked_for),
        (3, None),
        "B's customer is not locked after 3"
    );
    sign_in(&w.gw, B, "customer", PASSWORD).await;
}

/// A document of `n` aliased login mutations for A's customer with a wrong password.
fn aliased_logins(n: usize) -> String {
    let fields: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "a{i}: login(input: {{tenant: \"{A}\", username: \"customer\", password: \"{WRONG}\"}}) {{ accessToken }}"
            )
        })
        .collect();
    json!({ "query": format!("mutation {{ {} }}", fields.join(" ")) }).to_string()
}

/// A batch of `n` login operations for A's customer with a wrong password.
fn batched_logins(n: usize) -> String {
    let one = json!({ "query": LOGIN, "variables": login_vars(A, "customer", WRONG) });
    Value::Array(vec![one; n]).to_string()
}

#[tokio::test]
async fn aliased_and_batched_attempts_each_count_and_oversized_ones_count_nothing() {
    let w = world().await;
    w.set_threshold(w.fx.a.tenant_id, 100).await;
    let customer = w.fx.a.user("customer");

    // 30 aliases (the limit) in one document: 30 attempts.
    let (status, text) = w.gw.post_raw("application/json", aliased_logins(30), None).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 30, "every alias failed on its own: {body:#}");
    assert!(
        errors
            .iter()
            .all(|e| e["extensions"]["code"] == "UNAUTHENTICATED")
    );
    assert_eq!(w.lock_state(customer).await.failed, 30, "each alias counted");

    // 10 operations (the limit) in one batch: 10 more.
    let (status, text) = w.gw.post_raw("application/json", batched_logins(10), None).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body.as_array().map(Vec::len), Some(10), "{body:#}");
    assert_eq!(
        w.lock_state(customer).await.failed,
        40,
        "each batch entry counted"
    );

    // Over the limits: refused outright with a coded error, and nothing counted.
    for (case, body) in [
        ("31 aliases", aliased_logins(31)),
        ("100 aliases", aliased_logins(100)),
        ("a batch of 11", batched_logins(11)),
        ("a batch of 100", batched_logins(100)),
    ] {
        let (_, text) = w.gw.post_raw("application/json", body, None).await;
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{case}: {e}: {text}"));
        assert_eq!(
            first_error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{case}: {body:#}"
        );
        assert!(body.get("data").is_none_or(Value::is_null), "{case}: {body:#}");
        assert_eq!(w.lock_state(customer).await.failed, 40, "{case}: nothing counted");
    }
}

#[tokio::test]
async fn one_burst_of_aliased_attempts_locks_the_account_once() {
    let w = world().await;
    let customer = w.fx.a.user("customer");
    let (status, _) = w.gw.post_raw("application/json", aliased_logins(30), None).await;
    assert_eq!(status, 200);
    let state = w.lock_state(customer).await;
    assert_locked_for(
        &state,
        300.0,
        "30 aliased attempts with the default threshold of 5",
    );
    assert_eq!(
        state.lockouts, 1,
        "the 25 attempts after the lock are not counted, so the account locks once: {state:?}"
    );
    assert_eq!(events_of(&w.owner, customer, "account_locked").await.len(), 1);
}

#[tokio::test]
async fn wrong_passwords_against_a_locked_account_neither_count_nor_extend_the_lock() {
    let w = world().await;
    let customer = w.fx.a.user("customer");
    for _ in 0..5 {
        w.fail_login("customer", WRONG).await;
    }
    let locked = w.lock_state(customer).await;
    assert_locked_for(&locked, 300.0, "the first lock");
    for _ in 0..12 {
        w.fail_login("customer", WRONG).await;
        w.fail_login("customer", PASSWORD).await;
    }
    let after = w.lock_state(customer).await;
    assert_eq!(
        (&after.locked_until, after.failed, after.lockouts),
        (&locked.locked_until, locked.failed, locked.lockouts),
        "attempts on a locked account changed its lock: before {locked:?}, after {after:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Sameness
// ---------------------------------------------------------------------------------------

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn unknown_user_wrong_password_and_locked_account_answer_identically_and_in_comparable_time() {
    let w = world().await;
    w.set_threshold(w.fx.a.tenant_id, 1000).await;
    let locked = w.fx.a.user("customer2");
    sql::exec(
        &w.owner,
        &format!("update users set locked_until = now() + interval '1 hour' where user_id = '{locked}'"),
    )
    .await;
    // Warm up connections and the blocking pool.
    w.fail_login("nobody-at-all", WRONG).await;
    w.fail_login("customer", WRONG).await;

    let cases = [
        ("unknown user", "nobody-at-all", WRONG),
        ("wrong password", "customer", WRONG),
        ("locked account", "customer2", PASSWORD),
    ];
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut bodies: Vec<String> = vec![];
    for _ in 0..30 {
        for (i, (_, username, password)) in cases.iter().enumerate() {
            let start = Instant::now();
            let (status, text) = w.login_text(username, password).await;
            times[i].push(start.elapsed());
            assert_eq!(status, 200);
            bodies.push(text);
        }
    }
    let first = &bodies[0];
    assert_eq!(first, &w.failed);
    assert!(
        bodies.iter().all(|b| b == first),
        "every reply is byte-identical: {:?}",
        bodies.iter().filter(|b| *b != first).take(3).collect::<Vec<_>>()
    );
    let [unknown, wrong, locked_times] = times.map(median);
    println!(
        "median latency: unknown user {unknown:?}, wrong password {wrong:?}, locked account {locked_times:?}"
    );
    assert!(
        unknown * 2 >= wrong,
        "an unknown user ({unknown:?}) must cost at least half a wrong password ({wrong:?}): the dummy verify runs"
    );
    assert!(
        locked_times * 2 >= wrong,
        "a locked account ({locked_times:?}) must cost at least half a wrong password ({wrong:?})"
    );
    // Nothing was counted against the locked account, 30 (+1) against the customer.
    assert_eq!(w.lock_state(locked).await.failed, 0);
    assert_eq!(w.lock_state(w.fx.a.user("customer")).await.failed, 31);
}

// ---------------------------------------------------------------------------------------
// Password length
// ---------------------------------------------------------------------------------------

/// 64 characters a strength estimator accepts.
const LONG_PASSWORD: &str = "Velvet kestrels orbit 9 quiet harbours while copper lanterns hum";

#[tokio::test]
async fn a_64_character_password_works_and_is_never_truncated() {
    assert_eq!(LONG_PASSWORD.chars().count(), 64);
    let w = world().await;
    let admin = w.fx.login(&w.gw, A, "admin").await;
    let data =
        w.gw.data(
            Some(&admin),
            "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
            json!({ "input": { "username": "longpass", "email": "longpass@acme.example",
                               "password": LONG_PASSWORD, "role": "CUSTOMER" } }),
        )
        .await;
    let user = Uuid::parse_str(data["createUser"]["id"].as_str().expect("id")).expect("uuid");
    let session = sign_in(&w.gw, A, "longpass", LONG_PASSWORD).await;
    assert_eq!(session.user_id, user);
    // Only the whole password opens the account.
    let last_changed = format!("{}x", &LONG_PASSWORD[..63]);
    for (case, password) in [
        ("without the last character", &LONG_PASSWORD[..63]),
        ("the first 32 characters", &LONG_PASSWORD[..32]),
        ("the last character changed", last_changed.as_str()),
        ("upper-cased", &LONG_PASSWORD.to_uppercase()),
    ] {
        let (_, text) = w.login_text("longpass", password).await;
        assert_eq!(text, w.failed, "{case}");
    }
}

#[tokio::test]
async fn a_one_megabyte_password_is_refused_before_hashing() {
    let megabyte = "p".repeat(1 << 20);
    // With the default body limit it never reaches the resolver: a coded refusal.
    let w = world().await;
    let (status, text) = w.login_text("customer", &megabyte).await;
    assert!(status >= 400, "refused by the body limit: {status}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        first_error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{body:#}"
    );
    drop(w);

    // With a body limit large enough, login itself refuses it, faster than one Argon2
    // verification and with the generic error.
    let w = world_with(|c| c.graphql.max_body_bytes = 4 << 20).await;
    w.set_threshold(w.fx.a.tenant_id, 100).await;
    let customer = w.fx.a.user("customer");
    w.fail_login("customer", WRONG).await;
    let mut wrong = vec![];
    let mut huge = vec![];
    // Serialised once, outside the timed part.
    let huge_body = json!({ "query": LOGIN, "variables": login_vars(A, "customer", &megabyte) }).to_string();
    for _ in 0..5 {
        let start = Instant::now();
        w.fail_login("customer", WRONG).await;
        wrong.push(start.elapsed());
        let start = Instant::now();
        let (status, text) = w.gw.post_raw("application/json", huge_body.clone(), None).await;
        huge.push(start.elapsed());
        assert_eq!(status, 200);
        assert_eq!(text, w.failed, "the 1 MB password gets the generic failure");
    }
    let (wrong, huge) = (median(wrong), median(huge));
    println!("median latency: wrong password {wrong:?}, 1 MB password {huge:?}");
    assert!(
        huge < wrong,
        "the 1 MB password ({huge:?}) is refused before hashing (wrong password: {wrong:?})"
    );
    assert_eq!(
        w.lock_state(customer).await.failed,
        6,
        "only the wrong passwords counted"
    );
    // Also for an unknown user.
    let (_, text) = w.login_text("nobody-at-all", &megabyte).await;
    assert_eq!(text, w.failed);
}

#[tokio::test]
async fn failures_from_one_address_throttle_it_before_any_account_locks_and_reveal_nothing() {
    let w = world().await;
    let tenant = w.fx.a.tenant_id;
    sql::exec(
        &w.owner,
        &format!(
            "update tenants set settings = settings || '{{\"login_failures_per_ip\": 4}}'::jsonb \
              where tenant_id = '{tenant}'"
        ),
    )
    .await;
    // A spray: one wrong password each for three accounts and an unknown name.
    for username in ["customer", "customer2", "officer", "nobody-here"] {
        let text = w.fail_login(username, WRONG).await;
        assert_eq!(text, w.failed, "{username}: the usual generic failure");
    }
    // The address is now refused before any password is checked: even the right
    // password of an untouched account, and an unknown user, get RATE_LIMITED alike.
    for (username, password) in [("manager", PASSWORD), ("nobody-at-all", WRONG)] {
        let (status, text) = w.login_text(username, password).await;
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(first_error_code(&body).as_deref(), Some("RATE_LIMITED"), "{text}");
        let retry = body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .expect("retryAfter");
        assert!((1..=900).contains(&retry), "retry after {retry} s");
        assert!(body["data"].is_null(), "{text}");
    }
    // No account reached its own lockout: one failure each.
    for username in ["customer", "customer2", "officer"] {
        let state = w.lock_state(w.fx.a.user(username)).await;
        assert_eq!(state.failed, 1, "{username}: {state:?}");
        assert_eq!(state.locked_for, None, "{username}: {state:?}");
    }
    let throttled = sql::scalar(
        &w.owner,
        &format!(
            "select count(*) from security_events where tenant_id = '{tenant}' \
               and event_type = 'login_ip_throttled' and ip_address = '127.0.0.1'"
        ),
    )
    .await;
    assert_eq!(
        throttled.as_deref(),
        Some("1"),
        "one event when the address was blocked"
    );
    let window = sql::scalar(
        &w.owner,
        &format!(
            "select request_count || ' ' || is_blocked from rate_limit_entries \
              where tenant_id = '{tenant}' and endpoint = 'login' and user_id is null"
        ),
    )
    .await;
    assert_eq!(
        window.as_deref(),
        Some("4 true"),
        "one shared window row, blocked"
    );
    // The other tenant's window is its own (cross-tenant throttling is the rate
    // limiter's, see README).
    let (_, text) = w.login_text_in(B, "customer", PASSWORD).await;
    let body: Value = serde_json::from_str(&text).expect("json");
    assert!(first_error_code(&body).is_none(), "{text}");
}
