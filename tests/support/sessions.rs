//! Sign-ins that keep both tokens, refreshes, and what the database holds about a
//! session (its refresh-token rows, its family), for the session and lockout tests.

#![allow(dead_code)]

use api::auth::jwt::TokenType;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use super::gateway::{TestGateway, first_error_code};

/// The login mutation, selecting both tokens and the user.
pub const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken \
    expiresAt user { id username } } }";
/// The refresh mutation, selecting both new tokens and the user.
pub const REFRESH: &str = "mutation($token: String!) { refreshSession(refreshToken: $token) { accessToken \
    refreshToken expiresAt user { id } } }";
/// A query any signed-in user may run.
pub const ME: &str = "{ me { id username } }";

/// One signed-in session: both tokens, the user and the session (`sid`, the family id).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub access: String,
    pub refresh: String,
    pub user_id: Uuid,
    pub sid: Uuid,
}

/// The login variables.
pub fn login_vars(tenant: &str, username: &str, password: &str) -> Value {
    json!({ "input": { "tenant": tenant, "username": username, "password": password } })
}

/// Signs in through the `login` mutation (panics unless it succeeds with both tokens).
pub async fn sign_in(gw: &TestGateway, tenant: &str, username: &str, password: &str) -> SignedIn {
    let data = gw.data(None, LOGIN, login_vars(tenant, username, password)).await;
    let payload = &data["login"];
    let access = payload["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("login {tenant}/{username}: no access token: {data:#}"))
        .to_string();
    let refresh = payload["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("login {tenant}/{username}: no refresh token: {data:#}"))
        .to_string();
    let user_id = payload["user"]["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("login user id");
    let sid = sid_of(gw, &access);
    SignedIn {
        access,
        refresh,
        user_id,
        sid,
    }
}

/// The `sid` (session, i.e. refresh-token family) an access token names, read with the
/// gateway's own keys.
pub fn sid_of(gw: &TestGateway, access: &str) -> Uuid {
    gw.gateway
        .services
        .keys
        .verify(access, TokenType::Access)
        .expect("a valid access token")
        .sid
}

/// Sends `refreshSession(refreshToken: token)` anonymously; the status and body.
pub async fn refresh(gw: &TestGateway, token: &str) -> (u16, Value) {
    gw.gql(None, REFRESH, json!({ "token": token })).await
}

/// A refresh that must succeed; the new session tokens (same user and session).
pub async fn refresh_ok(gw: &TestGateway, token: &str) -> SignedIn {
    let (status, body) = refresh(gw, token).await;
    assert_eq!(status, 200, "refresh: {body:#}");
    let payload = &body["data"]["refreshSession"];
    let access = payload["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("refresh gave no access token: {body:#}"))
        .to_string();
    let refresh = payload["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("refresh gave no refresh token: {body:#}"))
        .to_string();
    let user_id = payload["user"]["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("refresh user id");
    let sid = sid_of(gw, &access);
    SignedIn {
        access,
        refresh,
        user_id,
        sid,
    }
}

/// Asserts a refresh was refused with the generic UNAUTHENTICATED error and no data.
pub fn assert_refresh_refused(body: &Value, what: &str) {
    assert_eq!(
        first_error_code(body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{what}: expected UNAUTHENTICATED: {body:#}"
    );
    assert!(body["data"].is_null(), "{what}: no data: {body:#}");
    assert_eq!(
        body["errors"][0]["message"], "invalid or expired refresh token",
        "{what}: {body:#}"
    );
}

/// Asserts a request with `access` is refused because its session ended.
pub async fn assert_session_ended(gw: &TestGateway, access: &str, what: &str) {
    let (status, body) = gw.gql(Some(access), ME, json!({})).await;
    assert_eq!(status, 200, "{what}: {body:#}");
    assert_eq!(
        first_error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{what}: the access token should be refused: {body:#}"
    );
    assert_eq!(
        body["errors"][0]["message"], "the session has ended",
        "{what}: {body:#}"
    );
    assert!(body["data"].is_null(), "{what}: {body:#}");
}

/// Asserts `access` still works (`me` answers its user).
pub async fn assert_session_live(gw: &TestGateway, access: &str, user: Uuid, what: &str) {
    let data = gw.data(Some(access), ME, json!({})).await;
    assert_eq!(
        data["me"]["id"].as_str(),
        Some(user.to_string().as_str()),
        "{what}: {data:#}"
    );
}

/// One refresh_tokens row, read as the owner.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub token_id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub replaced_by: Option<Uuid>,
    pub revoked: bool,
    pub last_used: bool,
    /// expires_at as text (microseconds), to compare exactly.
    pub expires_at: String,
}

const TOKEN_COLUMNS: &str = "token_id, family_id, user_id, replaced_by, revoked_at is not null as revoked, \
    last_used_at is not null as last_used, to_char(expires_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as expires_at";

fn token_row(r: &sea_orm::QueryResult) -> TokenRow {
    TokenRow {
        token_id: r.try_get("", "token_id").expect("token_id"),
        family_id: r.try_get("", "family_id").expect("family_id"),
        user_id: r.try_get("", "user_id").expect("user_id"),
        replaced_by: r.try_get("", "replaced_by").expect("replaced_by"),
        revoked: r.try_get("", "revoked").expect("revoked"),
        last_used: r.try_get("", "last_used").expect("last_used"),
        expires_at: r.try_get("", "expires_at").expect("expires_at"),
    }
}

/// Every row of a family, oldest first.
pub async fn family_rows(owner: &DatabaseConnection, family: Uuid) -> Vec<TokenRow> {
    owner
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("select {TOKEN_COLUMNS} from refresh_tokens where family_id = $1 order by created_at, token_id"),
            [family.into()],
        ))
        .await
        .expect("family rows")
        .iter()
        .map(token_row)
        .collect()
}

/// The row that stores `token` (by its SHA-256), if any.
pub async fn row_of_token(owner: &DatabaseConnection, token: &str) -> Option<TokenRow> {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("select {TOKEN_COLUMNS} from refresh_tokens where token_hash = $1"),
            [hash.into()],
        ))
        .await
        .expect("token row")
        .as_ref()
        .map(token_row)
}

/// Security events of `event_type` recorded for `user`, as (severity, action) pairs.
pub async fn events_of(owner: &DatabaseConnection, user: Uuid, event_type: &str) -> Vec<(String, String)> {
    owner
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select severity::text as s, coalesce(action_taken::text, '') as a from security_events \
              where user_id = $1 and event_type = $2 order by \"timestamp\", event_id",
            [user.into(), event_type.into()],
        ))
        .await
        .expect("security events")
        .iter()
        .map(|r| (r.try_get("", "s").expect("s"), r.try_get("", "a").expect("a")))
        .collect()
}

/// 43 characters shaped like the random part of a refresh token, matching no token.
pub fn random_token_part() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())[..43].to_string()
}
