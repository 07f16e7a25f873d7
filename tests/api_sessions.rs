//! Sessions as refresh-token families (RFC 9700 §4.14.2, ASVS 7.4, 10.4.5, 10.4.8),
//! attacked through the HTTP API of in-process gateways over a real database:
//!
//! - every refresh rotates the token, keeps the session (`sid` = family) and its absolute
//!   expiry; of concurrent uses of one token exactly one wins;
//! - presenting a rotated token revokes the whole family (the thief's and the owner's
//!   tokens alike) and records a `refresh_token_reuse` security event that survives the
//!   failed refresh;
//! - idle and absolute expiry hold;
//! - logout, revokeSession and revokeAllSessions end sessions, and the access tokens of an
//!   ended session are refused on their next request, by every gateway copy;
//! - a deactivated or locked user's session cannot be refreshed;
//! - the `sessions` list shows one row per session unless the rotated tokens are asked for.

mod support;

use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use support::fixture::{A, Fixture, PASSWORD};
use support::gateway::{TestGateway, first_error_code};
use support::sessions::{
    SignedIn, assert_refresh_refused, assert_session_ended, assert_session_live, events_of, family_rows,
    refresh, refresh_ok, row_of_token, sign_in,
};
use support::{TestDb, sql};
use uuid::Uuid;

struct World {
    gw: TestGateway,
    owner: DatabaseConnection,
    fx: Fixture,
    db: TestDb,
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut api::config::Config)) -> World {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, tweak).await;
    let owner = db.owner().await;
    World { gw, owner, fx, db }
}

impl World {
    async fn sign_in(&self, username: &str) -> SignedIn {
        sign_in(&self.gw, A, username, PASSWORD).await
    }

    /// Every token of the family, revoked or not.
    async fn all_revoked(&self, family: Uuid) -> bool {
        family_rows(&self.owner, family).await.iter().all(|r| r.revoked)
    }
}

const REVOKE_SESSION: &str =
    "mutation($id: UUID!) { revokeSession(id: $id) { id userId familyId isActive } }";
const REVOKE_ALL: &str = "mutation($keep: Boolean!) { revokeAllSessions(keepCurrent: $keep) }";
const LOGOUT: &str = "mutation { logout }";

// ---------------------------------------------------------------------------------------
// Rotation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_rotates_the_token_keeps_the_session_and_its_absolute_expiry() {
    let w = world().await;
    let first = w.sign_in("customer").await;
    let first_row = row_of_token(&w.owner, &first.refresh)
        .await
        .expect("the login's refresh token is stored (hashed)");
    assert_eq!(first_row.token_id, first.sid, "the first token opens the session");
    assert_eq!(
        first_row.family_id, first.sid,
        "a session's family is its first token"
    );

    let second = refresh_ok(&w.gw, &first.refresh).await;
    assert_ne!(second.refresh, first.refresh, "a new refresh token");
    assert_eq!(second.user_id, first.user_id);
    assert_eq!(
        second.sid, first.sid,
        "the refreshed access token names the same session"
    );
    // The access token from the refresh works.
    assert_session_live(&w.gw, &second.access, first.user_id, "the refreshed access token").await;

    // The old row points at the new one, in the same family, with the same expiry.
    let old_row = row_of_token(&w.owner, &first.refresh).await.expect("old row");
    let new_row = row_of_token(&w.owner, &second.refresh).await.expect("new row");
    assert_eq!(
        old_row.replaced_by,
        Some(new_row.token_id),
        "old.replaced_by = new row"
    );
    assert!(old_row.revoked, "the old token is spent");
    assert!(old_row.last_used, "the old token records when it was exchanged");
    assert_eq!(new_row.family_id, first.sid, "same family");
    assert_eq!(new_row.replaced_by, None);
    assert!(!new_row.revoked && !new_row.last_used);
    assert_eq!(
        new_row.expires_at, old_row.expires_at,
        "rotation never extends the session's absolute expiry"
    );

    // The new one rotates again; then the first one is refused.
    let third = refresh_ok(&w.gw, &second.refresh).await;
    assert_eq!(third.sid, first.sid);
    let rows = family_rows(&w.owner, first.sid).await;
    assert_eq!(rows.len(), 3, "three tokens in the family: {rows:?}");
    assert!(
        rows.iter().all(|r| r.expires_at == first_row.expires_at),
        "{rows:?}"
    );
    let (status, body) = refresh(&w.gw, &first.refresh).await;
    assert_eq!(status, 200);
    assert_refresh_refused(&body, "the first (rotated) refresh token");
    let (_, body) = refresh(&w.gw, &second.refresh).await;
    assert_refresh_refused(&body, "the second (rotated) refresh token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_refreshes_of_one_token_have_one_winner_and_revoke_the_family() {
    let w = world_with(|c| c.database.pool_size = 20).await;
    let session = w.sign_in("customer").await;
    let other_session = w.sign_in("customer").await;

    let attempts = (0..50).map(|_| refresh(&w.gw, &session.refresh));
    let results = futures::future::join_all(attempts).await;
    let mut winners = vec![];
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body:#}");
        if body["data"]["refreshSession"]["refreshToken"].is_string() {
            winners.push(body["data"]["refreshSession"].clone());
        } else {
            assert_refresh_refused(body, "a losing concurrent refresh");
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 50 concurrent refreshes of one token succeeds: {winners:#?}"
    );
    let winner = &winners[0];
    let new_refresh = winner["refreshToken"].as_str().expect("refresh token");
    let new_access = winner["accessToken"].as_str().expect("access token");

    // The losers presented a rotated token: the whole family is revoked, the winner's
    // new tokens included.
    assert!(
        w.all_revoked(session.sid).await,
        "every token of the family is revoked: {:?}",
        family_rows(&w.owner, session.sid).await
    );
    let (_, body) = refresh(&w.gw, new_refresh).await;
    assert_refresh_refused(&body, "the winner's new refresh token");
    assert_session_ended(&w.gw, new_access, "the winner's new access token").await;
    assert_session_ended(&w.gw, &session.access, "the session's first access token").await;

    let events = events_of(&w.owner, session.user_id, "refresh_token_reuse").await;
    assert!(!events.is_empty(), "a refresh_token_reuse event is recorded");
    assert!(
        events.iter().all(|(severity, _)| severity == "high"),
        "reuse is a high-severity event: {events:?}"
    );
    // The user's other session is not part of the family and lives on.
    assert_session_live(&w.gw, &other_session.access, session.user_id, "another session").await;
    refresh_ok(&w.gw, &other_session.refresh).await;
}

#[tokio::test]
async fn presenting_a_rotated_token_later_revokes_the_family_and_records_the_reuse() {
    let w = world().await;
    let stolen = w.sign_in("customer").await;
    let other_session = w.sign_in("customer").await;
    // The owner keeps using the session; a thief holds the first token.
    let owner_1 = refresh_ok(&w.gw, &stolen.refresh).await;
    let owner_2 = refresh_ok(&w.gw, &owner_1.refresh).await;
    assert_session_live(&w.gw, &owner_2.access, stolen.user_id, "before the replay").await;
    assert!(
        events_of(&w.owner, stolen.user_id, "refresh_token_reuse")
            .await
            .is_empty()
    );

    let (_, body) = refresh(&w.gw, &stolen.refresh).await;
    assert_refresh_refused(&body, "the replayed token");

    // The event committed although the refresh failed.
    let events = events_of(&w.owner, stolen.user_id, "refresh_token_reuse").await;
    assert_eq!(
        events,
        vec![("high".to_string(), "block".to_string())],
        "one high-severity reuse event, recorded although the refresh failed"
    );
    assert!(w.all_revoked(stolen.sid).await, "the family is revoked");
    let (_, body) = refresh(&w.gw, &owner_2.refresh).await;
    assert_refresh_refused(&body, "the family's current token after the replay");
    assert_session_ended(
        &w.gw,
        &owner_2.access,
        "the current access token after the replay",
    )
    .await;
    assert_session_ended(&w.gw, &stolen.access, "the first access token after the replay").await;

    // Only that family: the user's other session is untouched.
    assert_session_live(&w.gw, &other_session.access, stolen.user_id, "another session").await;
    assert!(!w.all_revoked(other_session.sid).await);
    // A token that never existed records nothing.
    let (_, body) = refresh(
        &w.gw,
        &format!(
            "{}.{}",
            w.fx.a.tenant_id.simple(),
            support::sessions::random_token_part()
        ),
    )
    .await;
    assert_refresh_refused(&body, "an unknown token");
    assert_eq!(
        events_of(&w.owner, stolen.user_id, "refresh_token_reuse")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn malformed_refresh_tokens_are_refused_with_the_same_generic_error() {
    let w = world().await;
    let session = w.sign_in("customer").await;
    let (prefix, random) = session.refresh.split_once('.').expect("<tenant>.<random>");
    let too_short = format!("{prefix}.{}", &random[..20]);
    let no_tenant = random.to_string();
    let bad_tenant = format!("{}.{random}", "z".repeat(32));
    let hashed = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(session.refresh.as_bytes()));
    for (case, token) in [
        ("empty", ""),
        ("random part only", no_tenant.as_str()),
        ("truncated random part", too_short.as_str()),
        ("a tenant part that is no uuid", bad_tenant.as_str()),
        ("the stored hash instead of the token", hashed.as_str()),
        ("the access token", session.access.as_str()),
    ] {
        let (status, body) = refresh(&w.gw, token).await;
        assert_eq!(status, 200, "{case}: {body:#}");
        assert_refresh_refused(&body, case);
    }
    // None of them touched the session.
    refresh_ok(&w.gw, &session.refresh).await;
}

// ---------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_session_idle_longer_than_refresh_idle_secs_is_refused() {
    let w = world_with(|c| c.auth.refresh_idle_secs = 2).await;
    let active = w.sign_in("customer").await;
    let idle = w.sign_in("customer").await;
    // Used at once: within the idle window.
    let active = refresh_ok(&w.gw, &active.refresh).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    for (case, session) in [("rotated, then idle", &active), ("never used, idle", &idle)] {
        let (_, body) = refresh(&w.gw, &session.refresh).await;
        assert_refresh_refused(&body, case);
    }
    // Idleness is no theft: no reuse event.
    assert!(
        events_of(&w.owner, idle.user_id, "refresh_token_reuse")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_backdated_idle_token_is_refused_and_a_recent_one_is_not() {
    let w = world().await;
    let idle_secs = w.gw.gateway.services.config.auth.refresh_idle_secs;
    let idle = w.sign_in("customer").await;
    let recent = w.sign_in("customer").await;
    for (session, secs) in [(&idle, idle_secs + 60), (&recent, idle_secs - 60)] {
        sql::exec(
            &w.owner,
            &format!(
                "update refresh_tokens set created_at = now() - make_interval(secs => {secs}) \
                  where token_id = '{}'",
                session.sid
            ),
        )
        .await;
    }
    let (_, body) = refresh(&w.gw, &idle.refresh).await;
    assert_refresh_refused(&body, "a token unused for longer than the idle limit");
    refresh_ok(&w.gw, &recent.refresh).await;
}

#[tokio::test]
async fn a_session_past_its_absolute_expiry_is_refused_for_refresh_and_access() {
    let w = world().await;
    let session = w.sign_in("customer").await;
    let rotated = refresh_ok(&w.gw, &session.refresh).await;
    sql::exec(
        &w.owner,
        &format!(
            "update refresh_tokens set expires_at = now() - interval '1 second' \
              where family_id = '{}'",
            session.sid
        ),
    )
    .await;
    let (_, body) = refresh(&w.gw, &rotated.refresh).await;
    assert_refresh_refused(&body, "an expired session's current token");
    assert_session_ended(&w.gw, &rotated.access, "an expired session's access token").await;
}

// ---------------------------------------------------------------------------------------
// Ending sessions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_ends_the_current_session_and_only_that_one() {
    let w = world().await;
    let current = w.sign_in("customer").await;
    let second = w.sign_in("customer").await;
    let data = w.gw.data(Some(&current.access), LOGOUT, json!({})).await;
    assert_eq!(data["logout"], true);

    assert_session_ended(&w.gw, &current.access, "the access token after logout").await;
    let (_, body) = refresh(&w.gw, &current.refresh).await;
    assert_refresh_refused(&body, "the refresh token after logout");
    assert!(w.all_revoked(current.sid).await);

    assert_session_live(
        &w.gw,
        &second.access,
        current.user_id,
        "the second login's session",
    )
    .await;
    refresh_ok(&w.gw, &second.refresh).await;
    // A logged-out session cannot log out again.
    let (_, body) = w.gw.gql(Some(&current.access), LOGOUT, json!({})).await;
    assert_eq!(
        first_error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body:#}"
    );
}

#[tokio::test]
async fn logout_ends_the_whole_family_after_rotations() {
    let w = world().await;
    let login = w.sign_in("customer").await;
    let rotated = refresh_ok(&w.gw, &login.refresh).await;
    let data = w.gw.data(Some(&login.access), LOGOUT, json!({})).await;
    assert_eq!(data["logout"], true);
    assert_session_ended(&w.gw, &rotated.access, "the rotated access token").await;
    let (_, body) = refresh(&w.gw, &rotated.refresh).await;
    assert_refresh_refused(&body, "the rotated refresh token after logout");
}

#[tokio::test]
async fn revoke_all_sessions_keeping_the_current_one_ends_only_the_others() {
    let w = world().await;
    let current = w.sign_in("customer").await;
    let others = [w.sign_in("customer").await, w.sign_in("customer").await];
    let someone_else = w.sign_in("customer2").await;
    let live_tokens_of_others = sql::count(
        &w.owner,
        &format!(
            "select count(*) from refresh_tokens where user_id = '{}' and revoked_at is null \
               and family_id <> '{}'",
            current.user_id, current.sid
        ),
    )
    .await;
    assert_eq!(live_tokens_of_others, 3, "two logins and the fixture's session");

    let data =
        w.gw.data(Some(&current.access), REVOKE_ALL, json!({ "keep": true }))
            .await;
    assert_eq!(data["revokeAllSessions"], 3, "{data}");
    assert_session_live(
        &w.gw,
        &current.access,
        current.user_id,
        "the kept current session",
    )
    .await;
    for (i, other) in others.iter().enumerate() {
        assert_session_ended(&w.gw, &other.access, &format!("other session {i}")).await;
        let (_, body) = refresh(&w.gw, &other.refresh).await;
        assert_refresh_refused(&body, &format!("other session {i}'s refresh token"));
    }
    assert_session_live(&w.gw, &someone_else.access, someone_else.user_id, "another user").await;
    let current = refresh_ok(&w.gw, &current.refresh).await;

    // Without keepCurrent, the current one ends too.
    let data =
        w.gw.data(Some(&current.access), REVOKE_ALL, json!({ "keep": false }))
            .await;
    assert_eq!(data["revokeAllSessions"], 1, "{data}");
    assert_session_ended(&w.gw, &current.access, "the current session").await;
    assert_session_live(&w.gw, &someone_else.access, someone_else.user_id, "another user").await;
}

#[tokio::test]
async fn an_admin_may_end_a_customers_session_but_a_customer_cannot_reach_the_admins() {
    let w = world().await;
    let admin = w.sign_in("admin").await;
    let customer = w.sign_in("customer").await;

    // The customer, on the admin's session: exactly like a session that does not exist.
    let (s_missing, missing) =
        w.gw.gql(
            Some(&customer.access),
            REVOKE_SESSION,
            json!({ "id": Uuid::now_v7() }),
        )
        .await;
    let (s_foreign, foreign) =
        w.gw.gql(Some(&customer.access), REVOKE_SESSION, json!({ "id": admin.sid }))
            .await;
    assert_eq!(
        first_error_code(&foreign).as_deref(),
        Some("NOT_FOUND"),
        "{foreign:#}"
    );
    assert_eq!(
        (s_foreign, support::walk::mask_uuids(&foreign.to_string())),
        (s_missing, support::walk::mask_uuids(&missing.to_string())),
        "another user's session looks like a missing one"
    );
    assert_session_live(
        &w.gw,
        &admin.access,
        admin.user_id,
        "the admin after the customer's attempt",
    )
    .await;
    assert!(!w.all_revoked(admin.sid).await);

    // Nor can an admin end a super_admin's session (not ranked below).
    let super_admin = w.sign_in("super_admin").await;
    let (_, body) =
        w.gw.gql(
            Some(&admin.access),
            REVOKE_SESSION,
            json!({ "id": super_admin.sid }),
        )
        .await;
    assert!(first_error_code(&body).is_some(), "refused: {body:#}");
    assert!(body["data"].is_null(), "{body:#}");
    assert_session_live(&w.gw, &super_admin.access, super_admin.user_id, "the super_admin").await;

    // The admin (users:manage) ends the customer's session: by any token id of it.
    let rotated = refresh_ok(&w.gw, &customer.refresh).await;
    let data =
        w.gw.data(Some(&admin.access), REVOKE_SESSION, json!({ "id": customer.sid }))
            .await;
    let node = &data["revokeSession"];
    assert_eq!(node["isActive"], false, "{data}");
    assert_eq!(node["familyId"], customer.sid.to_string(), "{data}");
    assert_session_ended(
        &w.gw,
        &rotated.access,
        "the customer's session after the admin ended it",
    )
    .await;
    let (_, body) = refresh(&w.gw, &rotated.refresh).await;
    assert_refresh_refused(&body, "the customer's refresh token after the admin ended it");
    assert_session_live(&w.gw, &admin.access, admin.user_id, "the admin").await;
    assert_eq!(
        sql::count(
            &w.owner,
            &format!(
                "select count(*) from audit_log where action = 'session.revoke' and entity_id = '{}' \
                   and user_id = '{}'",
                customer.sid, admin.user_id
            ),
        )
        .await,
        1,
        "the revocation is audited as the admin's"
    );
}

#[tokio::test]
async fn a_revoked_sessions_access_token_is_refused_by_a_second_gateway_on_the_same_database() {
    let w = world().await;
    let second_gw = TestGateway::start(&w.db).await;
    let by_logout = w.sign_in("customer").await;
    let by_admin = w.sign_in("customer2").await;
    let admin = w.sign_in("admin").await;
    for (session, what) in [(&by_logout, "customer"), (&by_admin, "customer2")] {
        assert_session_live(&second_gw, &session.access, session.user_id, what).await;
    }

    // Ended on the first gateway, refused by the second.
    w.gw.data(Some(&by_logout.access), LOGOUT, json!({})).await;
    assert_session_ended(&second_gw, &by_logout.access, "logged out on the other gateway").await;
    // Ended on the second gateway, refused by the first.
    second_gw
        .data(Some(&admin.access), REVOKE_SESSION, json!({ "id": by_admin.sid }))
        .await;
    assert_session_ended(&w.gw, &by_admin.access, "revoked on the other gateway").await;
    assert_session_ended(&second_gw, &by_admin.access, "revoked on this gateway").await;
    let (_, body) = refresh(&w.gw, &by_admin.refresh).await;
    assert_refresh_refused(&body, "the revoked session's refresh token");
}

// ---------------------------------------------------------------------------------------
// The user behind the session
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refreshing_a_deactivated_users_session_fails_and_revokes_the_family() {
    let w = world().await;
    let session = w.sign_in("customer").await;
    // Deactivated behind the API's back (the API's own deactivation revokes sessions at
    // once): the refresh must check the user itself.
    sql::exec(
        &w.owner,
        &format!(
            "update users set is_active = false where user_id = '{}'",
            session.user_id
        ),
    )
    .await;
    let (_, body) = refresh(&w.gw, &session.refresh).await;
    assert_refresh_refused(&body, "a deactivated user's refresh");
    assert!(w.all_revoked(session.sid).await, "the family is revoked");
    assert_session_ended(&w.gw, &session.access, "a deactivated user's access token").await;

    // Reactivated: the revoked family stays dead.
    sql::exec(
        &w.owner,
        &format!(
            "update users set is_active = true where user_id = '{}'",
            session.user_id
        ),
    )
    .await;
    let (_, body) = refresh(&w.gw, &session.refresh).await;
    assert_refresh_refused(&body, "the refresh after reactivation");
    assert_session_ended(&w.gw, &session.access, "the access token after reactivation").await;
}

#[tokio::test]
async fn refreshing_a_locked_out_users_session_fails_and_revokes_the_family() {
    let w = world().await;
    let session = w.sign_in("customer").await;
    // Five wrong passwords lock the account (a lockout does not revoke sessions itself).
    for _ in 0..5 {
        let (_, body) =
            w.gw.gql(
                None,
                support::sessions::LOGIN,
                support::sessions::login_vars(A, "customer", "not the password 123 xyz"),
            )
            .await;
        assert_eq!(first_error_code(&body).as_deref(), Some("UNAUTHENTICATED"));
    }
    assert_eq!(
        sql::scalar(
            &w.owner,
            &format!(
                "select locked_until > now() from users where user_id = '{}'",
                session.user_id
            )
        )
        .await
        .as_deref(),
        Some("true"),
        "the account is locked"
    );
    assert_session_ended(&w.gw, &session.access, "a locked user's access token").await;
    let (_, body) = refresh(&w.gw, &session.refresh).await;
    assert_refresh_refused(&body, "a locked user's refresh");
    assert!(w.all_revoked(session.sid).await, "the family is revoked");

    // Unlocked: the family stays revoked.
    sql::exec(
        &w.owner,
        &format!(
            "update users set locked_until = null where user_id = '{}'",
            session.user_id
        ),
    )
    .await;
    let (_, body) = refresh(&w.gw, &session.refresh).await;
    assert_refresh_refused(&body, "the refresh after the lock ended");
}

#[tokio::test]
async fn refreshing_an_admin_locked_users_session_fails() {
    let w = world().await;
    let admin = w.sign_in("admin").await;
    let session = w.sign_in("customer").await;
    w.gw.data(
        Some(&admin.access),
        "mutation($id: UUID!) { lockUser(id: $id, reason: \"test\") { id isLocked } }",
        json!({ "id": session.user_id }),
    )
    .await;
    let (_, body) = refresh(&w.gw, &session.refresh).await;
    assert_refresh_refused(&body, "an admin-locked user's refresh");
    assert!(w.all_revoked(session.sid).await, "the family is revoked");
    assert_session_ended(&w.gw, &session.access, "an admin-locked user's access token").await;
}

// ---------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------

const MY_SESSIONS: &str = "query($filter: SessionFilter) { sessions(first: 100, filter: $filter) { totalCount \
    edges { node { id familyId lastUsedAt isActive } } } me { sessions(first: 100) { totalCount } } }";

fn family_ids(data: &Value) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = data["sessions"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| Uuid::parse_str(e["node"]["familyId"].as_str().expect("familyId")).expect("uuid"))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_sessions_list_shows_one_row_per_session_unless_rotated_tokens_are_asked_for() {
    let w = world().await;
    let rotated = w.sign_in("customer").await;
    let mut latest = rotated.clone();
    for _ in 0..3 {
        latest = refresh_ok(&w.gw, &latest.refresh).await;
    }
    let plain = w.sign_in("customer").await;
    let fixture_session = w.fx.a.sessions[0];
    let mut expected = vec![rotated.sid, plain.sid, fixture_session];
    expected.sort();

    let data =
        w.gw.data(Some(&latest.access), MY_SESSIONS, json!({ "filter": null }))
            .await;
    assert_eq!(family_ids(&data), expected, "one row per session: {data:#}");
    assert_eq!(data["sessions"]["totalCount"], 3, "{data:#}");
    assert_eq!(
        data["me"]["sessions"]["totalCount"], 3,
        "User.sessions too: {data:#}"
    );
    for edge in data["sessions"]["edges"].as_array().expect("edges") {
        assert!(
            edge["node"]["lastUsedAt"].is_null(),
            "only current tokens: {edge}"
        );
        assert_eq!(edge["node"]["isActive"], true, "{edge}");
    }
    let rotated_row = data["sessions"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["node"]["familyId"] == rotated.sid.to_string())
        .expect("the rotated session's row");
    let latest_row = row_of_token(&w.owner, &latest.refresh).await.expect("latest row");
    assert_eq!(
        rotated_row["node"]["id"],
        latest_row.token_id.to_string(),
        "the session's row is its current token"
    );

    let data =
        w.gw.data(
            Some(&latest.access),
            MY_SESSIONS,
            json!({ "filter": { "includeRotated": true } }),
        )
        .await;
    assert_eq!(
        data["sessions"]["totalCount"], 6,
        "3 sessions + 3 rotated tokens: {data:#}"
    );
    let families = family_ids(&data);
    assert_eq!(
        families.iter().filter(|f| **f == rotated.sid).count(),
        4,
        "the rotated session's four tokens"
    );
    let data =
        w.gw.data(
            Some(&latest.access),
            MY_SESSIONS,
            json!({ "filter": { "includeRotated": false } }),
        )
        .await;
    assert_eq!(data["sessions"]["totalCount"], 3, "{data:#}");
}
