//! Two real `ultracore serve` processes over one database, as behind a load balancer:
//! an access token issued by one copy is honoured by the other, and whatever ends it on
//! one copy (logout, a lock, a role change) ends it on the other at its next request.
//!
//! In-process gateways (tests/api_sessions.rs) share one address space, so a cache they
//! both read would hide itself; separate processes share nothing but PostgreSQL and the
//! configured secrets. Each case first uses the token on B, so a copy that cached what it
//! had verified would be caught answering from that cache.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use api::auth::roles::Role;
use api::domain::Actor;
use api::domain::users::{NewUser, create_user};
use serde_json::{Value, json};
use support::TestDb;
use support::fixture::{PASSWORD, tenant_txn};
use support::gateway::first_error_code;
use support::serve::ServeProcess;
use uuid::Uuid;

const TENANT: &str = "acme";

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";
const ME: &str = "{ me { id role } }";
const LOGOUT: &str = "mutation { logout }";
const LOCK: &str = "mutation($id: UUID!) { lockUser(id: $id) { id isLocked } }";
const CHANGE_ROLE: &str =
    "mutation($id: UUID!, $role: UserRole!) { changeUserRole(id: $id, role: $role) { id role } }";

// ---------------------------------------------------------------------------------------
// One `ultracore serve` process
// ---------------------------------------------------------------------------------------

type Gateway = ServeProcess;

/// What these cases ask of a copy.
impl ServeProcess {
    /// Signs `username` in; returns the access token.
    async fn login(&self, username: &str) -> String {
        let data = self
            .data(
                None,
                LOGIN,
                json!({ "input": { "tenant": TENANT, "username": username, "password": PASSWORD } }),
            )
            .await;
        data["login"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("login {username} on {}: no token: {data:#}", self.name))
            .to_string()
    }

    /// `me` as `token`: (id, role), which must succeed.
    async fn me(&self, token: &str) -> (String, String) {
        let data = self.data(Some(token), ME, json!({})).await;
        (
            data["me"]["id"].as_str().unwrap_or_default().to_string(),
            data["me"]["role"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Asserts `token` is refused (UNAUTHENTICATED, no data) on this copy.
    async fn assert_refused(&self, token: &str, what: &str) {
        let body = self.gql(Some(token), ME, json!({})).await;
        assert_eq!(
            first_error_code(&body).as_deref(),
            Some("UNAUTHENTICATED"),
            "{what}: {} should refuse the token: {body:#}",
            self.name
        );
        assert!(body["data"].is_null(), "{what}: {body:#}");
    }
}

// ---------------------------------------------------------------------------------------
// The world: one database, one tenant, two copies
// ---------------------------------------------------------------------------------------

/// Users of the tenant (password [`PASSWORD`]): who may lock (admin), who may change
/// roles (super_admin), and one customer per case, so no case sees another's changes.
const USERS: [(&str, Role); 6] = [
    ("super_admin", Role::SuperAdmin),
    ("admin", Role::Admin),
    ("logs_out", Role::Customer),
    ("gets_locked", Role::Customer),
    ("gets_promoted", Role::Customer),
    ("changes_password", Role::Customer),
];

struct World {
    a: Gateway,
    b: Gateway,
    users: HashMap<&'static str, Uuid>,
    // Dropped after the gateways (fields drop in order): they are stopped before the
    // database is.
    _db: TestDb,
}

impl World {
    /// Two copies whose rate limits no case reaches (the feed case reports dozens of
    /// threats in a minute).
    async fn start() -> World {
        let relaxed = [
            ("ULTRACORE_RATE_LIMITS__MUTATION_LIMIT", "100000"),
            ("ULTRACORE_RATE_LIMITS__READ_LIMIT", "1000000"),
            ("ULTRACORE_RATE_LIMITS__ENDPOINTS__LOGIN", "100000"),
            ("ULTRACORE_RATE_LIMITS__ENDPOINTS__CHANGEPASSWORD", "100000"),
        ];
        World::start_with(&relaxed).await
    }

    /// Two copies with the same extra environment.
    async fn start_with(env: &[(&str, &str)]) -> World {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let db = TestDb::new().await;
        let users = seed(&db).await;
        let (a, b) = tokio::join!(Gateway::start("A", &db, &env), Gateway::start("B", &db, &env));
        World { a, b, users, _db: db }
    }

    fn user(&self, username: &str) -> Uuid {
        self.users[username]
    }

    /// Signs `username` in through A and checks B honours the token; returns it.
    async fn login_on_a_used_on_b(&self, username: &str) -> String {
        let token = self.a.login(username).await;
        let (id, _) = self.b.me(&token).await;
        assert_eq!(
            id,
            self.user(username).to_string(),
            "B answers `me` with A's token"
        );
        token
    }

    fn stop(self) {
        self.a.stop();
        self.b.stop();
    }
}

/// The tenant and its users, through the domain functions the CLI uses.
async fn seed(db: &TestDb) -> HashMap<&'static str, Uuid> {
    let owner = db.owner().await;
    let tenant = api::domain::tenants::create_tenant(&owner, TENANT, "Acme Bank")
        .await
        .expect("create the tenant");
    let txn = tenant_txn(&owner, tenant).await;
    let mut users = HashMap::new();
    for (username, role) in USERS {
        let user = create_user(
            &txn,
            &Actor::cli(tenant),
            NewUser {
                username: username.to_string(),
                email: format!("{username}@{TENANT}.example"),
                role,
                password: PASSWORD.to_string(),
                first_name: None,
                last_name: None,
                phone_number: None,
                permissions: vec![],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create user {username}: {e}"));
        users.insert(username, user.user_id);
    }
    txn.commit().await.expect("commit the users");
    owner.close().await.ok();
    users
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_issued_by_one_process_works_on_the_other_until_logout_on_the_first() {
    let w = World::start().await;
    let token = w.login_on_a_used_on_b("logs_out").await;
    // And the other way round: neither copy owns the session.
    let from_b = w.b.login("logs_out").await;
    assert_eq!(w.a.me(&from_b).await.0, w.user("logs_out").to_string());

    let data = w.a.data(Some(&token), LOGOUT, json!({})).await;
    assert_eq!(data["logout"], true, "{data:#}");
    w.b.assert_refused(&token, "logged out through A").await;
    w.a.assert_refused(&token, "logged out through A").await;
    // Only that session ended.
    assert_eq!(w.b.me(&from_b).await.0, w.user("logs_out").to_string());
    w.stop();
}

#[tokio::test]
async fn a_user_locked_through_one_process_is_refused_by_the_other() {
    let w = World::start().await;
    let admin = w.a.login("admin").await;
    let token = w.login_on_a_used_on_b("gets_locked").await;

    let data =
        w.a.data(Some(&admin), LOCK, json!({ "id": w.user("gets_locked") }))
            .await;
    assert_eq!(data["lockUser"]["isLocked"], true, "{data:#}");
    w.b.assert_refused(&token, "locked through A").await;
    // Nor can the locked user sign in again on B.
    let body =
        w.b.gql(
            None,
            LOGIN,
            json!({ "input": { "tenant": TENANT, "username": "gets_locked", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(
        first_error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "a locked user signing in on B: {body:#}"
    );
    // The admin's own session is untouched.
    assert_eq!(w.b.me(&admin).await.0, w.user("admin").to_string());
    w.stop();
}

#[tokio::test]
async fn a_role_changed_through_one_process_applies_on_the_other_at_the_next_request() {
    let w = World::start().await;
    let super_admin = w.a.login("super_admin").await;
    let token = w.login_on_a_used_on_b("gets_promoted").await;
    assert_eq!(w.b.me(&token).await.1, "CUSTOMER");

    let data =
        w.a.data(
            Some(&super_admin),
            CHANGE_ROLE,
            json!({ "id": w.user("gets_promoted"), "role": "OFFICER" }),
        )
        .await;
    assert_eq!(data["changeUserRole"]["role"], "OFFICER", "{data:#}");
    // A role change ends the user's sessions: B must not keep serving the old token
    // with the old role.
    w.b.assert_refused(&token, "role changed through A").await;
    // Signed in again (through A), B sees the new role.
    let fresh = w.a.login("gets_promoted").await;
    assert_eq!(w.b.me(&fresh).await.1, "OFFICER");
    w.stop();
}

// ---------------------------------------------------------------------------------------
// Password change
// ---------------------------------------------------------------------------------------

const CHANGE_PASSWORD: &str =
    "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { endedSessions } }";

#[tokio::test]
async fn a_password_changed_through_one_process_ends_the_other_sessions_on_the_other() {
    let w = World::start().await;
    // Two sessions of one user: one used on B, one that changes the password on A.
    let other = w.login_on_a_used_on_b("changes_password").await;
    let changer = w.a.login("changes_password").await;
    let data =
        w.a.data(
            Some(&changer),
            CHANGE_PASSWORD,
            json!({ "input": { "currentPassword": PASSWORD, "newPassword": "seven quiet herons fold 42 maps" } }),
        )
        .await;
    assert_eq!(data["changePassword"]["endedSessions"], 1, "{data:#}");
    w.b.assert_refused(&other, "password changed through A").await;
    // The session that changed it lives on, on both copies.
    assert_eq!(w.b.me(&changer).await.0, w.user("changes_password").to_string());
    w.stop();
}

// ---------------------------------------------------------------------------------------
// Live feed
// ---------------------------------------------------------------------------------------

const THREATS: &str = "subscription { threatDetected { cursor threat { threatType } } }";
const REPORT: &str = "mutation($t: String!) { reportThreat(input: {threatType: $t, severity: HIGH}) { id } }";

#[tokio::test]
async fn a_threat_reported_through_one_process_reaches_a_subscriber_of_the_other() {
    let w = World::start().await;
    let admin = w.a.login("admin").await;
    let mut ws =
        support::ws::WsClient::connect_to(&format!("http://127.0.0.1:{}", w.b.port), Some(&admin)).await;
    ws.subscribe("t", THREATS, json!({})).await;
    // The subscription registers asynchronously: report through A until B delivers.
    let mut delivered = None;
    // Generous: another test's DROP DATABASE can hold back the feed's horizon for a minute.
    for attempt in 0..80 {
        let data =
            w.a.data(
                Some(&admin),
                REPORT,
                json!({ "t": format!("through-a-{attempt}") }),
            )
            .await;
        assert!(data["reportThreat"]["id"].is_string(), "{data:#}");
        if let Some(payload) = ws.next_payload("t", std::time::Duration::from_millis(1500)).await {
            delivered = Some(payload);
            break;
        }
    }
    let payload = delivered.expect("B's subscriber received a threat reported through A");
    let kind = payload["data"]["threatDetected"]["threat"]["threatType"]
        .as_str()
        .unwrap_or_default();
    assert!(kind.starts_with("through-a-"), "{payload}");
    ws.close().await;
    w.stop();
}

// ---------------------------------------------------------------------------------------
// Rate limits are shared through PostgreSQL
// ---------------------------------------------------------------------------------------

/// Length of the rate-limit window in the case below: long enough for the requests of a
/// window to land in it, short enough to wait one out.
const WINDOW_SECS: u64 = 8;

/// Sleeps until a fresh fixed window has just begun (windows are aligned to the epoch).
async fn wait_for_window_start() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let into_window = now.as_millis() as u64 % (WINDOW_SECS * 1000);
    tokio::time::sleep(Duration::from_millis(WINDOW_SECS * 1000 - into_window + 100)).await;
}

fn rate_limited_after(body: &Value) -> Option<u64> {
    (first_error_code(body).as_deref() == Some("RATE_LIMITED"))
        .then(|| body["errors"][0]["extensions"]["retryAfter"].as_u64())
        .flatten()
}

#[tokio::test]
async fn rate_limits_hold_across_two_gateway_processes_and_reset_after_their_window() {
    let window = WINDOW_SECS.to_string();
    let w = World::start_with(&[
        ("ULTRACORE_RATE_LIMITS__WINDOW_SECS", window.as_str()),
        ("ULTRACORE_RATE_LIMITS__ENDPOINTS__LOGIN", "4"),
        ("ULTRACORE_RATE_LIMITS__MUTATION_LIMIT", "3"),
    ])
    .await;
    let wrong =
        json!({ "input": { "tenant": TENANT, "username": "nobody", "password": "wrong password 1" } });

    // Sign-ins: four per window from this address, whichever copy they reach.
    wait_for_window_start().await;
    for gateway in [&w.a, &w.b, &w.a, &w.b] {
        let body = gateway.gql(None, LOGIN, wrong.clone()).await;
        assert_eq!(
            first_error_code(&body).as_deref(),
            Some("UNAUTHENTICATED"),
            "within the limit, a wrong password is just refused: {body:#}"
        );
    }
    for gateway in [&w.a, &w.b] {
        let body = gateway.gql(None, LOGIN, wrong.clone()).await;
        let retry_after = rate_limited_after(&body)
            .unwrap_or_else(|| panic!("the fifth sign-in in the window, on {}: {body:#}", gateway.name));
        assert!(
            (1..=WINDOW_SECS).contains(&retry_after),
            "retryAfter {retry_after}"
        );
    }
    // The next window admits sign-ins again.
    wait_for_window_start().await;
    let admin = w.b.login("admin").await;

    // Writes of one user: three per window, counted by both copies together.
    for gateway in [&w.a, &w.b, &w.a] {
        gateway
            .data(Some(&admin), REPORT, json!({ "t": "counted" }))
            .await;
    }
    let body =
        w.b.gql(Some(&admin), REPORT, json!({ "t": "one too many" }))
            .await;
    assert!(rate_limited_after(&body).is_some(), "the fourth report: {body:#}");
    // Reads do not share that budget.
    w.a.me(&admin).await;
    wait_for_window_start().await;
    w.a.data(Some(&admin), REPORT, json!({ "t": "next window" }))
        .await;
    w.stop();
}
