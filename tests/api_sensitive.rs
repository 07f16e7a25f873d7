//! Sensitive mutations are scored before they run, like sign-ins: every one leaves a
//! `sensitive_action` event with its explanation (kept even when the mutation is
//! refused), a denied one does not run, and a challenged one from a session that did not
//! pass MFA must sign in again with the second factor.

mod support;

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use support::TestDb;
use support::fixture::{A, Fixture, PASSWORD, run};
use support::gateway::{TestGateway, first_error_code};
use support::sql::count;
use support::totp;
use uuid::Uuid;

const CHANGE_PASSWORD: &str = "mutation($current: String!, $new: String!) { changePassword(input: \
    {currentPassword: $current, newPassword: $new}) { accessToken } }";
const NEW_PASSWORD: &str = "a brand new passphrase 9";

async fn sensitive_events(owner: &DatabaseConnection, user: Uuid) -> Vec<Value> {
    support::sql::user_events(owner, user, "sensitive_action").await
}

/// Puts the loopback address in the tenant's threat intelligence (critical: 60 points).
async fn flag_loopback(owner: &DatabaseConnection, tenant_id: Uuid) {
    run(
        owner,
        "insert into threat_intelligence (tenant_id, indicator_type, indicator_value, threat_type, severity, \
                                          confidence, source) \
         values ($1, 'ip', '127.0.0.1', 'botnet', 'critical', 90, 'test')",
        vec![tenant_id.into()],
    )
    .await;
}

async fn set_thresholds(owner: &DatabaseConnection, thresholds: &str) {
    run(
        owner,
        &format!(
            "update tenants set settings = settings || '{{\"risk\": {{\"thresholds\": {thresholds}}}}}'::jsonb \
              where slug = 'acme'"
        ),
        vec![],
    )
    .await;
}

async fn password_hash(owner: &DatabaseConnection, user: Uuid) -> String {
    support::sql::scalar(
        owner,
        &format!("select password_hash from users where user_id = '{user}'"),
    )
    .await
    .expect("the user's hash")
}

fn change_password() -> Value {
    json!({ "current": PASSWORD, "new": NEW_PASSWORD })
}

#[tokio::test]
async fn an_ordinary_sensitive_change_runs_and_is_scored() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    let token = fixture.login(&gw, A, "officer").await;
    // `data` fails on any error.
    gw.data(Some(&token), CHANGE_PASSWORD, change_password()).await;
    let events = sensitive_events(&owner, fixture.a.user("officer")).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["action_taken"], "allow", "{event:#}");
    assert_eq!(
        event["metadata"]["fields"],
        json!(["changePassword"]),
        "{event:#}"
    );
    assert!(
        event["metadata"]["risk"]["factors"].is_array(),
        "explained: {event:#}"
    );
    assert!(event["risk_score"].is_number(), "{event:#}");
    // Reads and ordinary writes are not scored.
    gw.data(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(sensitive_events(&owner, fixture.a.user("officer")).await.len(), 1);
}

#[tokio::test]
async fn a_denied_sensitive_change_does_not_run_and_its_event_stays() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    let token = fixture.login(&gw, A, "officer").await;
    // After sign-in the address turns up in intelligence, and the tenant denies from 50.
    flag_loopback(&owner, fixture.a.tenant_id).await;
    set_thresholds(&owner, r#"{"challenge": 30, "deny": 50, "block": 99}"#).await;

    let hash_before = password_hash(&owner, fixture.a.user("officer")).await;
    let (_, body) = gw.gql(Some(&token), CHANGE_PASSWORD, change_password()).await;
    assert_eq!(first_error_code(&body).as_deref(), Some("FORBIDDEN"), "{body:#}");
    assert!(body["data"].is_null(), "{body:#}");
    assert_eq!(
        password_hash(&owner, fixture.a.user("officer")).await,
        hash_before,
        "nothing ran: the password is unchanged"
    );
    let events = sensitive_events(&owner, fixture.a.user("officer")).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["action_taken"], "deny", "{:#}", events[0]);
    let factors = events[0]["metadata"]["risk"]["factors"]
        .as_array()
        .expect("factors");
    assert!(
        factors.iter().any(|f| f["name"] == "threat_intel"),
        "{factors:#?}"
    );
    let changed = count(
        &owner,
        &format!(
            "select count(*) as n from audit_log where action = 'user.password_change' and user_id = '{}'",
            fixture.a.user("officer")
        ),
    )
    .await;
    assert_eq!(changed, 0, "no password change was audited");
}

#[tokio::test]
async fn a_challenged_change_from_a_session_without_mfa_must_sign_in_with_it() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    // Signed in before MFA was turned on: this session never passed it.
    let token = fixture.login(&gw, A, "manager").await;
    let step = totp::settled_step(totp::MARGIN).await;
    let enrolled = gw
        .data(Some(&token), "mutation { enrollTotp { secret } }", json!({}))
        .await;
    let secret = enrolled["enrollTotp"]["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    gw.data(
        Some(&token),
        "mutation($code: String!) { confirmTotp(code: $code) }",
        json!({ "code": totp::code(&secret, step) }),
    )
    .await;
    flag_loopback(&owner, fixture.a.tenant_id).await;

    let (_, body) = gw.gql(Some(&token), CHANGE_PASSWORD, change_password()).await;
    assert_eq!(
        first_error_code(&body).as_deref(),
        Some("MFA_REQUIRED"),
        "{body:#}"
    );
    let events = sensitive_events(&owner, fixture.a.user("manager")).await;
    assert_eq!(events.last().expect("an event")["action_taken"], "challenge");

    // Signed in again with the second factor, the same change runs.
    // A step is accepted once: wait for one after the confirmation's.
    while totp::current_step() <= step {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let (_, body) = gw
        .gql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            json!({ "input": { "tenant": A, "username": "manager", "password": PASSWORD,
                               "totpCode": totp::code(&secret, totp::current_step()) } }),
        )
        .await;
    let with_mfa = body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("sign-in with the code: {body:#}"))
        .to_string();
    gw.data(Some(&with_mfa), CHANGE_PASSWORD, change_password()).await;
}
