//! Sign-in and bearer tokens, attacked over HTTP: login works by username (any case) or
//! email, every failure looks the same, refresh tokens are stored only hashed, and every
//! kind of forged, stale, misdirected or malformed token is refused with 401
//! UNAUTHENTICATED, while a correctly hand-made token is accepted (the control case that
//! proves the forgeries fail for the reason they were built to test). A token is only a
//! claim: even a validly signed one is refused ("the session has ended") unless its `sid`
//! names a live session of its user and that user is active and not locked.

mod support;

use jsonwebtoken::{Algorithm, decode_header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use support::fixture::{A, B, Fixture, PASSWORD};
use support::gateway::{TEST_LEEWAY_SECS, TEST_SECRET, TestGateway, first_error_code};
use support::tokens::{access_claims, assemble, assemble_signed, b64url, claims_of, header, now, sign};
use support::{TestDb, assert_no_findings, sql};
use uuid::Uuid;

const LOGIN: &str = "mutation($input: LoginInput!) { \
    login(input: $input) { accessToken refreshToken expiresAt mfaRequired passwordExpired user { id username } } }";

const WHO_AM_I: &str = "{ me { id username role email } tenant { id slug name } }";

async fn login_body(gw: &TestGateway, tenant: &str, username: &str, password: &str) -> (u16, Value) {
    gw.gql(
        None,
        LOGIN,
        json!({ "input": { "tenant": tenant, "username": username, "password": password } }),
    )
    .await
}

async fn setup() -> (TestDb, Fixture, TestGateway) {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    (db, fx, gw)
}

#[tokio::test]
async fn login_returns_an_access_token_that_me_and_tenant_accept() {
    let (_db, fx, gw) = setup().await;
    let (status, body) = login_body(&gw, A, "admin", PASSWORD).await;
    assert_eq!(status, 200, "{body:#}");
    let payload = &body["data"]["login"];
    assert_eq!(payload["mfaRequired"], false, "{body:#}");
    assert_eq!(payload["passwordExpired"], false, "{body:#}");
    assert_eq!(payload["user"]["id"], fx.a.user("admin").to_string());
    assert!(payload["expiresAt"].is_string(), "{body:#}");
    assert!(
        payload["refreshToken"].as_str().is_some_and(|t| t.len() >= 43),
        "{body:#}"
    );
    let token = payload["accessToken"].as_str().expect("accessToken");

    let header = decode_header(token).expect("a JWT header");
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some(gw.kid().as_str()));

    let data = gw.data(Some(token), WHO_AM_I, json!({})).await;
    assert_eq!(data["me"]["id"], fx.a.user("admin").to_string());
    assert_eq!(data["me"]["username"], "admin");
    assert_eq!(data["me"]["role"], "ADMIN");
    assert_eq!(data["me"]["email"], "admin@acme.example");
    assert_eq!(data["tenant"]["id"], fx.a.tenant_id.to_string());
    assert_eq!(data["tenant"]["slug"], A);
}

#[tokio::test]
async fn the_same_username_signs_in_to_the_tenant_named_in_the_login() {
    let (_db, fx, gw) = setup().await;
    for (slug, expected) in [(A, &fx.a), (B, &fx.b)] {
        let token = fx.login(&gw, slug, "customer").await;
        let data = gw.data(Some(&token), WHO_AM_I, json!({})).await;
        assert_eq!(data["me"]["id"], expected.user("customer").to_string(), "{slug}");
        assert_eq!(data["tenant"]["id"], expected.tenant_id.to_string(), "{slug}");
    }
}

#[tokio::test]
async fn usernames_and_emails_match_case_insensitively() {
    let (_db, fx, gw) = setup().await;
    let mut findings = vec![];
    for login in [
        "officer",
        "OFFICER",
        "Officer",
        "officer@acme.example",
        "OFFICER@Acme.Example",
    ] {
        let (status, body) = login_body(&gw, A, login, PASSWORD).await;
        let Some(token) = body.pointer("/data/login/accessToken").and_then(Value::as_str) else {
            findings.push(format!("{login:?}: HTTP {status}, no token: {body}"));
            continue;
        };
        let data = gw.data(Some(token), WHO_AM_I, json!({})).await;
        if data["me"]["id"] != fx.a.user("officer").to_string() {
            findings.push(format!("{login:?} signed in as {}", data["me"]));
        }
    }
    assert_no_findings("case-insensitive login", &findings);
}

#[tokio::test]
async fn every_login_failure_is_the_same_unauthenticated_error() {
    let (db, fx, gw) = setup().await;
    let owner = db.owner().await;
    sql::exec(
        &owner,
        &format!(
            "update users set is_active = false where user_id = '{}'",
            fx.a.user("customer")
        ),
    )
    .await;
    sql::exec(
        &owner,
        &format!(
            "update users set is_locked = true where user_id = '{}'",
            fx.a.user("customer2")
        ),
    )
    .await;

    let cases = [
        ("unknown tenant", "no-such-bank", "admin", PASSWORD),
        ("unknown user", A, "nobody", PASSWORD),
        ("unknown email", A, "nobody@acme.example", PASSWORD),
        ("wrong password", A, "admin", "correct horse battery staple 43"),
        (
            "password in another case",
            A,
            "admin",
            "CORRECT HORSE BATTERY STAPLE 42",
        ),
        ("empty password", A, "admin", ""),
        ("deactivated user, right password", A, "customer", PASSWORD),
        ("locked user, right password", A, "customer2", PASSWORD),
        (
            "locked user, wrong password",
            A,
            "customer2",
            "wrong wrong wrong wrong",
        ),
    ];
    let mut reference: Option<(u16, Value)> = None;
    let mut findings = vec![];
    for (case, tenant, username, password) in cases {
        let (status, body) = login_body(&gw, tenant, username, password).await;
        if first_error_code(&body).as_deref() != Some("UNAUTHENTICATED") {
            findings.push(format!("{case}: not UNAUTHENTICATED: {body}"));
        }
        if body.pointer("/data/login").is_some_and(|l| !l.is_null()) {
            findings.push(format!("{case}: a payload came back: {body}"));
        }
        match &reference {
            None => reference = Some((status, body)),
            Some((ref_status, ref_body)) => {
                if (status, &body) != (*ref_status, ref_body) {
                    findings.push(format!(
                        "{case}: HTTP {status} {body} differs from the first failure: HTTP {ref_status} {ref_body}"
                    ));
                }
            }
        }
    }
    assert_no_findings("login failures", &findings);
    let (status, body) = reference.expect("at least one case");
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["message"], "invalid credentials", "{body:#}");

    // The control: the same users sign in once restored, so the refusals above were
    // caused by the state they test.
    sql::exec(&owner, "update users set is_active = true, is_locked = false").await;
    for username in ["customer", "customer2"] {
        fx.login(&gw, A, username).await;
    }
}

#[tokio::test]
async fn the_refresh_token_is_stored_only_as_its_sha256() {
    let (db, fx, gw) = setup().await;
    let (status, body) = login_body(&gw, A, "manager", PASSWORD).await;
    assert_eq!(status, 200, "{body:#}");
    let refresh = body["data"]["login"]["refreshToken"]
        .as_str()
        .expect("refreshToken");
    let access = body["data"]["login"]["accessToken"]
        .as_str()
        .expect("accessToken");
    let owner = db.owner().await;

    let hash = hex::encode(Sha256::digest(refresh.as_bytes()));
    let stored = sql::count(
        &owner,
        &format!(
            "select count(*) from refresh_tokens where token_hash = '{hash}' and user_id = '{}' \
               and tenant_id = '{}' and revoked_at is null and expires_at > now()",
            fx.a.user("manager"),
            fx.a.tenant_id
        ),
    )
    .await;
    assert_eq!(stored, 1, "one live session row holds sha256(refresh token)");

    // Neither token appears in clear in any column of any table.
    let mut findings = vec![];
    for table in sql::public_tables(&owner).await {
        for (name, token) in [("refresh", refresh), ("access", access)] {
            let n = sql::count(
                &owner,
                &format!("select count(*) from {table} x where strpos(x::text, '{token}') > 0"),
            )
            .await;
            if n > 0 {
                findings.push(format!(
                    "the {name} token is stored in clear in {n} row(s) of {table}"
                ));
            }
        }
    }
    assert_no_findings("tokens at rest", &findings);
}

// ---------------------------------------------------------------------------------------
// Bearer tokens.

/// A signed-in admin of A, the gateway's key id, and valid claims for that admin: their
/// own user and tenant, and the session of that sign-in. Every forgery below starts from
/// claims the gateway accepts, so each is refused for the one thing it alters. The
/// database drops last.
struct TokenCase {
    gw: TestGateway,
    fx: Fixture,
    owner: sea_orm::DatabaseConnection,
    kid: String,
    claims: Map<String, Value>,
    /// The admin's session: `sid` of the real sign-in, refresh_tokens.token_id.
    sid: Uuid,
    _db: TestDb,
}

async fn token_case() -> TokenCase {
    let (db, fx, gw) = setup().await;
    let real = fx.login(&gw, A, "admin").await;
    let kid = decode_header(&real)
        .expect("header of a real token")
        .kid
        .expect("a real token names its key");
    let admin = fx.a.user("admin");
    let issued = claims_of(&real);
    assert_eq!(
        (issued.sub, issued.tid),
        (admin, fx.a.tenant_id),
        "a real sign-in names its user and tenant"
    );
    let owner = db.owner().await;
    let live = sql::count(
        &owner,
        &format!(
            "select count(*) from refresh_tokens where token_id = '{}' and user_id = '{admin}' \
               and tenant_id = '{}' and revoked_at is null and expires_at > now()",
            issued.sid, fx.a.tenant_id
        ),
    )
    .await;
    assert_eq!(live, 1, "the sid of a real sign-in is a live session of its user");
    let claims = access_claims(fx.a.tenant_id, admin, "admin", issued.sid);
    TokenCase {
        gw,
        fx,
        owner,
        kid,
        claims,
        sid: issued.sid,
        _db: db,
    }
}

impl TokenCase {
    /// Valid claims with `changes` applied (a null value removes the claim).
    fn claims_with(&self, changes: Value) -> Map<String, Value> {
        let mut claims = self.claims.clone();
        for (key, value) in changes.as_object().expect("changes are an object") {
            if value.is_null() {
                claims.remove(key);
            } else {
                claims.insert(key.clone(), value.clone());
            }
        }
        claims
    }

    /// Signed HS256 with the right secret and kid, as an access token.
    fn good_header(&self) -> jsonwebtoken::Header {
        header(Algorithm::HS256, Some(&self.kid), Some("at+jwt"))
    }

    /// Signs `claims` like the gateway does (right secret, HS256, kid, at+jwt).
    fn sign_valid(&self, claims: &Map<String, Value>) -> String {
        sign(&self.good_header(), claims, TEST_SECRET)
    }

    /// Collects a finding unless `authorization` is refused with 401 UNAUTHENTICATED and
    /// no data.
    async fn expect_refused(&self, case: &str, authorization: &str, findings: &mut Vec<String>) {
        let (status, body) = self.gw.gql_with_authorization(authorization, WHO_AM_I).await;
        let code = first_error_code(&body);
        let data = body.get("data").filter(|d| !d.is_null());
        if status != 401 || code.as_deref() != Some("UNAUTHENTICATED") || data.is_some() {
            findings.push(format!("{case}: HTTP {status}, code {code:?}: {body}"));
        }
    }

    async fn expect_refused_token(&self, case: &str, token: &str, findings: &mut Vec<String>) {
        self.expect_refused(case, &format!("Bearer {token}"), findings)
            .await;
    }

    /// Panics unless `token` is accepted and `me` is the admin the claims name; the body.
    async fn expect_accepted(&self, case: &str, token: &str) -> Value {
        let (status, body) = self.gw.gql(Some(token), WHO_AM_I, json!({})).await;
        assert_eq!(status, 200, "{case}: {body:#}");
        assert_eq!(body["data"]["me"]["id"], self.claims["sub"], "{case}: {body:#}");
        body
    }

    /// Collects a finding unless `token`, validly signed, is refused because its session
    /// or its user is no longer valid: UNAUTHENTICATED "the session has ended", no data.
    async fn expect_session_ended(&self, case: &str, token: &str, findings: &mut Vec<String>) {
        let (status, body) = self.gw.gql(Some(token), WHO_AM_I, json!({})).await;
        let code = first_error_code(&body);
        let data = body.get("data").filter(|d| !d.is_null());
        if code.as_deref() != Some("UNAUTHENTICATED")
            || body["errors"][0]["message"] != "the session has ended"
            || data.is_some()
        {
            findings.push(format!("{case}: HTTP {status}, code {code:?}: {body}"));
        }
    }
}

#[tokio::test]
async fn a_hand_made_token_with_the_right_secret_kid_and_claims_is_accepted() {
    let t = token_case().await;
    t.expect_accepted("signed with jsonwebtoken", &t.sign_valid(&t.claims))
        .await;
    let by_hand = assemble_signed(
        &json!({ "alg": "HS256", "typ": "at+jwt", "kid": t.kid }),
        &t.claims,
        Algorithm::HS256,
        TEST_SECRET,
    );
    t.expect_accepted("assembled by hand", &by_hand).await;
    // Within the leeway on both ends.
    let now = now();
    let edge = t.claims_with(json!({ "exp": now - 1, "nbf": now + 1 }));
    t.expect_accepted("exp and nbf within the leeway", &t.sign_valid(&edge))
        .await;
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let token = t.sign_valid(&t.claims);
    let (status, body) =
        t.gw.gql_with_authorization(&format!("bearer {token}"), WHO_AM_I)
            .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["data"]["me"]["id"], t.claims["sub"]);
    // The role claimed is not what counts: the caller is served with the stored one.
    let claims_more = t.claims_with(json!({ "role": "super_admin" }));
    let body = t
        .expect_accepted("claiming super_admin", &t.sign_valid(&claims_more))
        .await;
    assert_eq!(body["data"]["me"]["role"], "ADMIN", "{body:#}");

    // The same claims naming a session that does not exist, or another user's live
    // one, are refused however well signed: a token is worth its session.
    let mut findings = vec![];
    let random_sid = t.claims_with(json!({ "sid": Uuid::now_v7() }));
    t.expect_session_ended(
        "a random sid (no such session)",
        &t.sign_valid(&random_sid),
        &mut findings,
    )
    .await;
    let by_hand = assemble_signed(
        &json!({ "alg": "HS256", "typ": "at+jwt", "kid": t.kid }),
        &random_sid,
        Algorithm::HS256,
        TEST_SECRET,
    );
    t.expect_session_ended("a random sid, assembled by hand", &by_hand, &mut findings)
        .await;
    let officer = claims_of(&t.fx.login(&t.gw, A, "officer").await);
    assert_ne!(officer.sid, t.sid, "two sign-ins, two sessions");
    let officers_sid = t.claims_with(json!({ "sid": officer.sid }));
    t.expect_session_ended(
        "the officer's live session under the admin's sub",
        &t.sign_valid(&officers_sid),
        &mut findings,
    )
    .await;
    assert_no_findings("hand-made tokens naming no session of their user", &findings);
}

/// Each state in which the gateway ends a session, applied as the owner to the admin's
/// session or user, refuses the same validly signed token that is accepted before and
/// after (so each refusal is caused by the state it tests).
#[tokio::test]
async fn a_validly_signed_token_is_refused_while_its_session_or_user_is_not_live() {
    let t = token_case().await;
    let admin = t.fx.a.user("admin");
    let token = t.sign_valid(&t.claims);
    let session = |set: &str| format!("update refresh_tokens set {set} where token_id = '{}'", t.sid);
    let user = |set: &str| format!("update users set {set} where user_id = '{admin}'");
    let cases = [
        (
            "session expired",
            session("expires_at = now() - interval '1 second'"),
            session("expires_at = now() + interval '1 hour'"),
        ),
        ("user locked", user("is_locked = true"), user("is_locked = false")),
        (
            "user locked until tomorrow",
            user("locked_until = now() + interval '1 day'"),
            user("locked_until = null"),
        ),
        (
            "user deactivated",
            user("is_active = false"),
            user("is_active = true"),
        ),
    ];
    let mut findings = vec![];
    t.expect_accepted("before", &token).await;
    for (case, end, restore) in cases {
        sql::exec(&t.owner, &end).await;
        t.expect_session_ended(case, &token, &mut findings).await;
        sql::exec(&t.owner, &restore).await;
        t.expect_accepted(&format!("{case}, restored"), &token).await;
    }
    // Revoked (as logout, a role change, a lock or a deactivation do): for good.
    sql::exec(&t.owner, &session("revoked_at = now()")).await;
    t.expect_session_ended("session revoked", &token, &mut findings)
        .await;
    assert_no_findings("tokens of sessions that ended", &findings);
}

#[tokio::test]
async fn tokens_with_a_bad_signature_or_an_unknown_or_missing_kid_are_refused() {
    let t = token_case().await;
    let mut findings = vec![];
    let other_secret = b"another-secret-of-at-least-32-bytes-length!";
    t.expect_refused_token(
        "signed with another secret",
        &sign(&t.good_header(), &t.claims, other_secret),
        &mut findings,
    )
    .await;
    let valid = t.sign_valid(&t.claims);
    let (unsigned, signature) = valid.rsplit_once('.').expect("three parts");
    t.expect_refused_token("signature removed", &format!("{unsigned}."), &mut findings)
        .await;
    let mut flipped = signature.to_string();
    let last = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);
    t.expect_refused_token(
        "signature altered",
        &format!("{unsigned}.{flipped}"),
        &mut findings,
    )
    .await;
    // Claims swapped for a super admin's under the original signature.
    let (head, _) = unsigned.split_once('.').expect("header.claims");
    let elevated = t.claims_with(json!({ "role": "super_admin" }));
    let body = b64url(Value::Object(elevated).to_string().as_bytes());
    t.expect_refused_token(
        "claims altered under a valid signature",
        &format!("{head}.{body}.{signature}"),
        &mut findings,
    )
    .await;
    t.expect_refused_token(
        "unknown kid",
        &sign(
            &header(Algorithm::HS256, Some("0123456789abcdef"), Some("at+jwt")),
            &t.claims,
            TEST_SECRET,
        ),
        &mut findings,
    )
    .await;
    t.expect_refused_token(
        "missing kid",
        &sign(
            &header(Algorithm::HS256, None, Some("at+jwt")),
            &t.claims,
            TEST_SECRET,
        ),
        &mut findings,
    )
    .await;
    // A key offered inside the token is never used (RFC 8725 §3.10).
    let mut with_jku = t.good_header();
    with_jku.jku = Some("https://attacker.example/jwks.json".into());
    with_jku.kid = Some("attacker-key".into());
    t.expect_refused_token(
        "kid pointing at a jku key",
        &sign(&with_jku, &t.claims, other_secret),
        &mut findings,
    )
    .await;
    assert_no_findings("signature and key checks", &findings);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let t = token_case().await;
    let mut findings = vec![];
    let now = now();
    let beyond = TEST_LEEWAY_SECS + 5;
    let cases = [
        (
            "expired just beyond the leeway",
            json!({ "exp": now - beyond, "nbf": now - 600, "iat": now - 600 }),
        ),
        (
            "expired an hour ago",
            json!({ "exp": now - 3600, "nbf": now - 7200, "iat": now - 7200 }),
        ),
        (
            "not valid until just beyond the leeway",
            json!({ "nbf": now + beyond }),
        ),
        (
            "not valid until tomorrow",
            json!({ "nbf": now + 86_400, "exp": now + 90_000 }),
        ),
        ("exp as a string", json!({ "exp": (now + 300).to_string() })),
        ("exp of zero", json!({ "exp": 0 })),
    ];
    for (case, changes) in cases {
        t.expect_refused_token(case, &t.sign_valid(&t.claims_with(changes)), &mut findings)
            .await;
    }
    assert_no_findings("time checks", &findings);
}

#[tokio::test]
async fn tokens_for_another_audience_or_issuer_are_refused() {
    let t = token_case().await;
    let mut findings = vec![];
    let cases = [
        ("another audience", json!({ "aud": "another-api" })),
        ("audience in another case", json!({ "aud": "ULTRACORE-API" })),
        ("audience list without ours", json!({ "aud": ["another-api"] })),
        ("another issuer", json!({ "iss": "https://attacker.example" })),
        ("empty issuer", json!({ "iss": "" })),
    ];
    for (case, changes) in cases {
        t.expect_refused_token(case, &t.sign_valid(&t.claims_with(changes)), &mut findings)
            .await;
    }
    assert_no_findings("audience and issuer checks", &findings);
}

#[tokio::test]
async fn tokens_signed_with_another_algorithm_or_none_are_refused() {
    let t = token_case().await;
    let mut findings = vec![];
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(&header(alg, Some(&t.kid), Some("at+jwt")), &t.claims, TEST_SECRET);
        t.expect_refused_token(&format!("{alg:?} with the right secret"), &token, &mut findings)
            .await;
    }
    for alg in ["none", "None", "NONE", "nOnE"] {
        let head = json!({ "alg": alg, "typ": "at+jwt", "kid": t.kid });
        t.expect_refused_token(
            &format!("alg {alg:?}, empty signature"),
            &assemble(&head, &t.claims, ""),
            &mut findings,
        )
        .await;
        // The original signature kept under the forged header.
        let valid = t.sign_valid(&t.claims);
        let signature = valid.rsplit_once('.').expect("three parts").1;
        t.expect_refused_token(
            &format!("alg {alg:?} with the HS256 signature"),
            &assemble(&head, &t.claims, signature),
            &mut findings,
        )
        .await;
    }
    // An HS256 token whose header says something else than what signed it.
    let lying = assemble_signed(
        &json!({ "alg": "HS512", "typ": "at+jwt", "kid": t.kid }),
        &t.claims,
        Algorithm::HS256,
        TEST_SECRET,
    );
    t.expect_refused_token("header HS512, signed HS256", &lying, &mut findings)
        .await;
    assert_no_findings("algorithm pinning", &findings);
}

#[tokio::test]
async fn tokens_of_another_type_are_refused() {
    let t = token_case().await;
    let mut findings = vec![];
    let password_change = t.claims_with(json!({ "typ": "password_change" }));
    // A well-formed password-change token is a token of its own type: it reaches
    // nothing but changePassword (PASSWORD_EXPIRED for `me`, no data).
    let confined = sign(
        &header(Algorithm::HS256, Some(&t.kid), Some("pwchange+jwt")),
        &password_change,
        TEST_SECRET,
    );
    let (status, body) = t.gw.gql(Some(&confined), WHO_AM_I, json!({})).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(
        first_error_code(&body).as_deref(),
        Some("PASSWORD_EXPIRED"),
        "{body:#}"
    );
    assert!(body["data"].is_null(), "{body:#}");
    let cases = [
        (
            "password_change claim under an access header",
            t.good_header(),
            password_change,
        ),
        (
            "access claim under a password-change header",
            header(Algorithm::HS256, Some(&t.kid), Some("pwchange+jwt")),
            t.claims.clone(),
        ),
        (
            "header typ JWT",
            header(Algorithm::HS256, Some(&t.kid), Some("JWT")),
            t.claims.clone(),
        ),
        (
            "no header typ",
            header(Algorithm::HS256, Some(&t.kid), None),
            t.claims.clone(),
        ),
        (
            "refresh claim",
            t.good_header(),
            t.claims_with(json!({ "typ": "refresh" })),
        ),
        (
            "no typ claim",
            t.good_header(),
            t.claims_with(json!({ "typ": null })),
        ),
    ];
    for (case, head, claims) in cases {
        t.expect_refused_token(case, &sign(&head, &claims, TEST_SECRET), &mut findings)
            .await;
    }
    assert_no_findings("token type checks", &findings);
}

#[tokio::test]
async fn tokens_missing_a_required_claim_or_with_a_bad_one_are_refused() {
    let t = token_case().await;
    let mut findings = vec![];
    let cases = [
        ("no sub", json!({ "sub": null })),
        ("no aud", json!({ "aud": null })),
        ("no iss", json!({ "iss": null })),
        ("no exp", json!({ "exp": null })),
        ("no nbf", json!({ "nbf": null })),
        ("no tid", json!({ "tid": null })),
        ("no sid", json!({ "sid": null })),
        ("sub not a UUID", json!({ "sub": "admin" })),
        ("tid not a UUID", json!({ "tid": "acme" })),
        ("unknown role", json!({ "role": "root" })),
    ];
    for (case, changes) in cases {
        t.expect_refused_token(case, &t.sign_valid(&t.claims_with(changes)), &mut findings)
            .await;
    }
    assert_no_findings("required claims", &findings);
}

#[tokio::test]
async fn garbage_tokens_and_malformed_authorization_headers_are_refused() {
    let t = token_case().await;
    let mut findings = vec![];
    for token in [
        "garbage",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9..",
    ] {
        t.expect_refused_token(&format!("token {token:?}"), token, &mut findings)
            .await;
    }
    let valid = t.sign_valid(&t.claims);
    for authorization in [
        "Token x".to_string(),
        "Bearer".to_string(),
        format!("Token {valid}"),
        format!("Basic {}", b64url(b"admin:correct horse battery staple 42")),
        format!("Bearer {valid} extra"),
        format!("Bearer {valid}.{valid}"),
        valid.clone(),
    ] {
        let shown: String = authorization.chars().take(40).collect();
        t.expect_refused(&format!("Authorization {shown:?}"), &authorization, &mut findings)
            .await;
    }
    assert_no_findings("malformed credentials", &findings);
}

#[test]
fn the_test_base64url_encoder_matches_rfc_4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64url(plain.as_bytes()), encoded, "{plain:?}");
    }
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}
