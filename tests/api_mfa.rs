//! The second factor (RFC 6238, ASVS 6.5), attacked through the HTTP API of an in-process
//! gateway over a real database:
//!
//! - enrolment returns a base32 secret, an otpauth URI and an SVG QR code; MFA turns on
//!   only with a right code, and from then on `login` without a code answers
//!   `mfaRequired` and no tokens;
//! - the secret is stored AES-256-GCM encrypted, bound to its user, and no field shows it;
//! - a code, and every earlier step, is accepted once, also under 20 concurrent
//!   submissions; one step of drift either way is accepted, two are not;
//! - backup codes: ten, distinct, stored only as hashes, single use (also under
//!   concurrency), a new set revokes the old one;
//! - disabling needs a fresh code and removes the backup codes;
//! - wrong second factors count toward lockout; every step is a security event and an
//!   audit entry;
//! - `code_at` matches the RFC 6238 test vectors.
//!
//! TOTP codes are computed with the product's `api::auth::mfa::code_at` (itself checked
//! against RFC 6238 Appendix B below). Tests that depend on the time step start at least
//! [`MARGIN`] seconds before the step ends, so their planned steps hold while they run.

mod support;

use std::collections::HashSet;

use api::auth::crypto::{CryptoError, KeyRing};
use api::auth::mfa::code_at;
use futures::future::join_all;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use support::fixture::{A, B, Fixture, PASSWORD};
use support::gateway::{TEST_DATA_KEY, TestGateway, first_error_code};
use support::sessions::events_of;
use support::totp::{MARGIN, at, code, settled_step, wrong_code};
use support::{TestDb, sql};
use uuid::Uuid;

/// Login, selecting what the MFA flow answers.
const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken \
    mfaRequired user { id } } }";
const ENROLL: &str = "mutation { enrollTotp { secret otpauthUri qrCode } }";
const CONFIRM: &str = "mutation($code: String!) { confirmTotp(code: $code) }";
const DISABLE: &str = "mutation($code: String!) { disableTotp(code: $code) }";
const GENERATE: &str = "mutation { generateBackupCodes }";
const ME_MFA: &str = "{ me { id mfaEnabled backupCodesRemaining } }";

// ---------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------

struct World {
    gw: TestGateway,
    owner: DatabaseConnection,
    fx: Fixture,
    /// What a sign-in to a tenant that does not exist answers, byte for byte, for this
    /// test's login document: every refused sign-in must answer exactly this.
    failed: String,
    _db: TestDb,
}

/// A user with TOTP on.
struct Mfa {
    /// An access token from before MFA was turned on (its session stays live).
    token: String,
    secret: String,
    user_id: Uuid,
}

/// What enrolTotp answered.
struct Enrollment {
    secret: String,
    uri: String,
    qr: String,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    let body = json!({ "query": LOGIN, "variables": { "input": {
        "tenant": "no-such-tenant", "username": "nobody", "password": PASSWORD, "totpCode": "123456" } } })
    .to_string();
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

fn login_body(tenant: &str, username: &str, totp: Option<&str>, backup: Option<&str>) -> String {
    let mut input = json!({ "tenant": tenant, "username": username, "password": PASSWORD });
    if let Some(c) = totp {
        input["totpCode"] = json!(c);
    }
    if let Some(c) = backup {
        input["backupCode"] = json!(c);
    }
    json!({ "query": LOGIN, "variables": { "input": input } }).to_string()
}

/// Both tokens of a completed sign-in, or None when the reply carried none.
fn tokens_of(body: &Value) -> Option<(String, String)> {
    let login = body.pointer("/data/login")?;
    Some((
        login["accessToken"].as_str()?.to_string(),
        login["refreshToken"].as_str()?.to_string(),
    ))
}

impl World {
    /// POSTs the login mutation with the fixture password; the status and body text.
    async fn login_text(
        &self,
        tenant: &str,
        username: &str,
        totp: Option<&str>,
        backup: Option<&str>,
    ) -> (u16, String) {
        self.gw
            .post_raw(
                "application/json",
                login_body(tenant, username, totp, backup),
                None,
            )
            .await
    }

    /// A sign-in to tenant A that must complete: the access token.
    async fn login_ok(&self, username: &str, totp: Option<&str>, backup: Option<&str>, what: &str) -> String {
        self.login_ok_in(A, username, totp, backup, what).await
    }

    async fn login_ok_in(
        &self,
        tenant: &str,
        username: &str,
        totp: Option<&str>,
        backup: Option<&str>,
        what: &str,
    ) -> String {
        let (status, text) = self.login_text(tenant, username, totp, backup).await;
        assert_eq!(status, 200, "{what}: {text}");
        let body: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(body["data"]["login"]["mfaRequired"], false, "{what}: {body:#}");
        tokens_of(&body)
            .unwrap_or_else(|| panic!("{what}: expected both tokens: {body:#}"))
            .0
    }

    /// A sign-in to tenant A that must be refused with the generic error.
    async fn login_refused(&self, username: &str, totp: Option<&str>, backup: Option<&str>, what: &str) {
        self.login_refused_in(A, username, totp, backup, what).await;
    }

    async fn login_refused_in(
        &self,
        tenant: &str,
        username: &str,
        totp: Option<&str>,
        backup: Option<&str>,
        what: &str,
    ) {
        let (status, text) = self.login_text(tenant, username, totp, backup).await;
        assert_eq!(status, 200, "{what}: {text}");
        assert_eq!(text, self.failed, "{what}: the generic failure");
    }

    /// A sign-in with the password only to a user with MFA on: `mfaRequired`, no tokens.
    async fn login_needs_mfa(&self, username: &str, what: &str) -> Value {
        let (status, text) = self.login_text(A, username, None, None).await;
        assert_eq!(status, 200, "{what}: {text}");
        let body: Value = serde_json::from_str(&text).expect("json");
        assert!(body.get("errors").is_none(), "{what}: {body:#}");
        let login = &body["data"]["login"];
        assert_eq!(login["mfaRequired"], true, "{what}: {body:#}");
        assert!(
            login["accessToken"].is_null(),
            "{what}: no access token: {body:#}"
        );
        assert!(
            login["refreshToken"].is_null(),
            "{what}: no refresh token: {body:#}"
        );
        body
    }

    /// Runs an operation as `token` and returns the status and body.
    async fn gql(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        self.gw.gql(Some(token), query, variables).await
    }

    /// An operation that must fail with `code` (and no data).
    async fn gql_fails(&self, token: &str, query: &str, variables: Value, code: &str, what: &str) {
        let (status, body) = self.gql(token, query, variables).await;
        assert_eq!(status, 200, "{what}: {body:#}");
        assert_eq!(
            first_error_code(&body).as_deref(),
            Some(code),
            "{what}: expected {code}: {body:#}"
        );
        assert!(body["data"].is_null(), "{what}: no data: {body:#}");
    }

    async fn enroll(&self, token: &str) -> Enrollment {
        let data = self.gw.data(Some(token), ENROLL, json!({})).await;
        let field = |name: &str| {
            data["enrollTotp"][name]
                .as_str()
                .unwrap_or_else(|| panic!("enrollTotp.{name}: {data:#}"))
                .to_string()
        };
        Enrollment {
            secret: field("secret"),
            uri: field("otpauthUri"),
            qr: field("qrCode"),
        }
    }

    async fn confirm_ok(&self, token: &str, code: &str, what: &str) {
        let data = self.gw.data(Some(token), CONFIRM, json!({ "code": code })).await;
        assert_eq!(data["confirmTotp"], true, "{what}: {data:#}");
    }

    /// Signs `username` of `tenant` in (no MFA yet), enrols TOTP and confirms it with the
    /// code of step `confirm_step`.
    async fn enable_mfa_in(&self, tenant: &str, username: &str, confirm_step: u64) -> Mfa {
        let token = self
            .login_ok_in(tenant, username, None, None, "sign-in before MFA")
            .await;
        let secret = self.enroll(&token).await.secret;
        self.confirm_ok(&token, &code(&secret, confirm_step), "confirmTotp")
            .await;
        let data = self.gw.data(Some(&token), ME_MFA, json!({})).await;
        assert_eq!(data["me"]["mfaEnabled"], true, "{data:#}");
        let user_id = Uuid::parse_str(data["me"]["id"].as_str().expect("me.id")).expect("uuid");
        Mfa {
            token,
            secret,
            user_id,
        }
    }

    async fn enable_mfa(&self, username: &str, confirm_step: u64) -> Mfa {
        self.enable_mfa_in(A, username, confirm_step).await
    }

    async fn generate_backup_codes(&self, token: &str) -> Vec<String> {
        let data = self.gw.data(Some(token), GENERATE, json!({})).await;
        data["generateBackupCodes"]
            .as_array()
            .unwrap_or_else(|| panic!("generateBackupCodes: {data:#}"))
            .iter()
            .map(|c| c.as_str().expect("a code").to_string())
            .collect()
    }

    async fn me_mfa(&self, token: &str) -> (bool, i64) {
        let data = self.gw.data(Some(token), ME_MFA, json!({})).await;
        (
            data["me"]["mfaEnabled"].as_bool().expect("mfaEnabled"),
            data["me"]["backupCodesRemaining"]
                .as_i64()
                .expect("backupCodesRemaining"),
        )
    }

    async fn scalar(&self, sql: &str) -> Option<String> {
        sql::scalar(&self.owner, sql).await
    }

    async fn count(&self, sql: &str) -> i64 {
        sql::count(&self.owner, sql).await
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

    async fn mfa_enabled_in_db(&self, user: Uuid) -> bool {
        self.scalar(&format!("select mfa_enabled from users where user_id = '{user}'"))
            .await
            .expect("mfa_enabled")
            == "true"
    }

    async fn last_step(&self, user: Uuid) -> Option<u64> {
        self.scalar(&format!(
            "select totp_last_step from users where user_id = '{user}'"
        ))
        .await
        .map(|s| s.parse().expect("step"))
    }

    /// Backup-code rows of a user: (code_hash, used).
    async fn backup_rows(&self, user: Uuid) -> Vec<(String, bool)> {
        sql::strings(
            &self.owner,
            &format!(
                "select code_hash || '|' || (used_at is not null)::text as v from mfa_backup_codes \
                  where user_id = '{user}' order by code_id"
            ),
        )
        .await
        .into_iter()
        .map(|v| {
            let (hash, used) = v.split_once('|').expect("hash|used");
            (hash.to_string(), used == "true")
        })
        .collect()
    }
}

/// Standard base64 (RFC 4648 §4) decoding, padding optional; None on any other byte.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Enrolment
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn enrolment_gives_secret_uri_and_qr_code_and_only_a_right_code_turns_mfa_on() {
    let w = world().await;
    let user = w.fx.a.user("customer");
    let token = w.login_ok("customer", None, None, "sign-in without MFA").await;

    // Enrolling twice before confirming replaces the pending secret.
    let first = w.enroll(&token).await;
    let e = w.enroll(&token).await;
    assert_ne!(first.secret, e.secret, "a new enrolment draws a new secret");

    // The secret: 160 bits of base32.
    assert_eq!(e.secret.len(), 32, "{}", e.secret);
    assert!(
        e.secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "base32: {}",
        e.secret
    );
    // The URI carries it, for TOTP, under the issuer.
    assert!(e.uri.starts_with("otpauth://totp/"), "{}", e.uri);
    assert!(e.uri.contains(&format!("secret={}", e.secret)), "{}", e.uri);
    assert!(e.uri.contains("issuer=UltraCore"), "{}", e.uri);
    // The QR code: an SVG in a base64 data: URI.
    let payload =
        e.qr.strip_prefix("data:image/svg+xml;base64,")
            .unwrap_or_else(|| panic!("not an SVG data URI: {:.80}", e.qr));
    let svg = String::from_utf8(base64_decode(payload).expect("base64")).expect("UTF-8 SVG");
    assert!(svg.contains("<svg"), "{svg:.200}");
    assert!(svg.trim_end().ends_with("</svg>"), "a complete SVG document");

    // Enrolled but not confirmed: MFA is off and sign-in needs no code.
    assert!(!w.me_mfa(&token).await.0, "off before confirmTotp");
    assert!(!w.mfa_enabled_in_db(user).await);
    w.login_ok("customer", None, None, "before confirmTotp, no code is needed")
        .await;

    let s = settled_step(MARGIN).await;
    // A wrong code, a code of the replaced secret, and a malformed one do not turn it on.
    for (bad, what) in [
        (wrong_code(&e.secret, s), "a wrong code"),
        (code(&e.secret, s)[..5].to_string(), "five digits"),
        (format!("{}0", code(&e.secret, s)), "seven digits"),
    ] {
        w.gql_fails(
            &token,
            CONFIRM,
            json!({ "code": bad }),
            "BAD_USER_INPUT",
            &format!("confirmTotp with {what} {}", at(s)),
        )
        .await;
    }
    if !(s - 1..=s + 1).any(|st| code(&e.secret, st) == code(&first.secret, s)) {
        w.gql_fails(
            &token,
            CONFIRM,
            json!({ "code": code(&first.secret, s) }),
            "BAD_USER_INPUT",
            "confirmTotp with a code of the replaced secret",
        )
        .await;
    }
    assert!(!w.me_mfa(&token).await.0, "still off after wrong codes");
    assert!(!w.mfa_enabled_in_db(user).await);
    w.login_ok("customer", None, None, "still no code needed").await;

    // The right code turns it on.
    w.confirm_ok(&token, &code(&e.secret, s), &format!("confirmTotp {}", at(s)))
        .await;
    assert!(w.me_mfa(&token).await.0, "on after the right code");
    assert!(w.mfa_enabled_in_db(user).await);

    // Enrolling again while MFA is on is refused (a stolen session cannot swap the
    // secret), and the stored secret is unchanged.
    let stored = w
        .scalar(&format!("select mfa_secret from users where user_id = '{user}'"))
        .await;
    w.gql_fails(
        &token,
        ENROLL,
        json!({}),
        "BAD_USER_INPUT",
        "enrollTotp while MFA is on",
    )
    .await;
    assert_eq!(
        w.scalar(&format!("select mfa_secret from users where user_id = '{user}'"))
            .await,
        stored,
        "the secret is unchanged"
    );

    // The password alone no longer signs in, and opens no session.
    let sessions_before = w
        .count(&format!(
            "select count(*) from refresh_tokens where user_id = '{user}'"
        ))
        .await;
    w.login_needs_mfa("customer", "password only").await;
    assert_eq!(
        w.count(&format!(
            "select count(*) from refresh_tokens where user_id = '{user}'"
        ))
        .await,
        sessions_before,
        "an mfaRequired answer creates no session"
    );

    // A fresh code (the next step: this one was spent by confirmTotp) completes it.
    let access = w
        .login_ok(
            "customer",
            Some(&code(&e.secret, s + 1)),
            None,
            &format!("password and a fresh code {}", at(s)),
        )
        .await;
    assert!(w.me_mfa(&access).await.0);
    assert_eq!(w.last_step(user).await, Some(s + 1));
}

// ---------------------------------------------------------------------------------------
// The secret at rest
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_stored_secret_is_encrypted_bound_to_its_user_and_no_field_exposes_it() {
    let w = world().await;
    let user = w.fx.a.user("customer");
    let other = w.fx.a.user("customer2");
    let token = w.login_ok("customer", None, None, "sign-in").await;
    let e = w.enroll(&token).await;
    let s = settled_step(MARGIN).await;
    w.confirm_ok(&token, &code(&e.secret, s), "confirmTotp").await;

    let stored = w
        .scalar(&format!("select mfa_secret from users where user_id = '{user}'"))
        .await
        .expect("a stored secret");
    let key_id = w
        .scalar(&format!(
            "select mfa_secret_key_id from users where user_id = '{user}'"
        ))
        .await
        .expect("a stored key id");
    assert!(stored.starts_with("v1."), "{stored}");
    assert!(
        !stored.contains(&e.secret),
        "the base32 secret is not stored: {stored}"
    );
    assert!(
        !stored.to_lowercase().contains(&e.secret.to_lowercase()),
        "not even case-folded: {stored}"
    );

    let ring = KeyRing::new(TEST_DATA_KEY, &[]).expect("the test data key");
    assert_eq!(key_id, ring.current_id(), "the key id of the current data key");
    assert_eq!(KeyRing::key_id_of(&stored), Some(ring.current_id()));
    assert_eq!(
        ring.decrypt(&stored, user.as_bytes())
            .expect("decrypts for its user"),
        e.secret.as_bytes(),
        "decrypts to exactly the secret"
    );
    assert_eq!(
        ring.decrypt(&stored, other.as_bytes()),
        Err(CryptoError::Corrupt),
        "bound to its user: another user's id does not decrypt it"
    );
    let other_ring = KeyRing::new(&api::auth::crypto::generate_key_base64(), &[]).expect("key");
    assert!(
        matches!(
            other_ring.decrypt(&stored, user.as_bytes()),
            Err(CryptoError::UnknownKey(_))
        ),
        "another data key does not decrypt it"
    );

    // No field of the schema names a secret or a hash, but the two that must.
    let data =
        w.gw.data(
            Some(&token),
            "{ __schema { types { name kind fields(includeDeprecated: true) { name args { name } \
               type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }",
            json!({}),
        )
        .await;
    let types = data["__schema"]["types"].as_array().expect("types");
    let forbidden = [
        "mfasecret",
        "mfasecretkeyid",
        "secretkeyid",
        "passwordhash",
        "codehash",
        "tokenhash",
        "totplaststep",
        "backupcodes",
    ];
    let mut findings = vec![];
    let mut user_scalars = vec![];
    for t in types {
        let type_name = t["name"].as_str().unwrap_or("");
        for f in t["fields"].as_array().into_iter().flatten() {
            let name = f["name"].as_str().expect("field name");
            let lower = name.to_lowercase();
            if forbidden.contains(&lower.as_str()) {
                findings.push(format!("{type_name}.{name}"));
            }
            if lower.contains("secret") && (type_name, name) != ("TotpEnrollment", "secret") {
                findings.push(format!("{type_name}.{name} (secret)"));
            }
            if lower.contains("hash") && (type_name, name) != ("AuditEntry", "rowHash") {
                findings.push(format!("{type_name}.{name} (hash)"));
            }
            if type_name == "User" {
                if lower.contains("password") && lower != "passwordchangedat" && lower != "passwordexpiresat"
                {
                    findings.push(format!("User.{name} (password)"));
                }
                let mut ty = &f["type"];
                while ty["name"].is_null() {
                    ty = &ty["ofType"];
                }
                let scalar = matches!(ty["kind"].as_str(), Some("SCALAR" | "ENUM"));
                if scalar && f["args"].as_array().is_none_or(Vec::is_empty) {
                    user_scalars.push(name.to_string());
                }
            }
        }
    }
    support::assert_no_findings("fields exposing secrets", &findings);
    assert!(
        user_scalars.contains(&"mfaEnabled".to_string()) && user_scalars.len() > 10,
        "the introspected User fields: {user_scalars:?}"
    );

    // Every scalar field of `me`, read by the user: the secret appears nowhere.
    let query = format!("{{ me {{ {} }} }}", user_scalars.join(" "));
    let (status, body) = w.gql(&token, &query, json!({})).await;
    assert_eq!(status, 200, "{body:#}");
    assert!(body.get("errors").is_none(), "{query}: {body:#}");
    let text = body.to_string();
    assert_eq!(body["data"]["me"]["mfaEnabled"], true, "{body:#}");
    assert!(!text.contains(&e.secret), "me exposes the secret: {text}");
    assert!(!text.contains(&stored), "me exposes the stored secret: {text}");
    assert!(!text.contains(&stored[3..]), "me exposes the ciphertext: {text}");

    // Nor does an admin's view of the user.
    let admin = w.fx.login(&w.gw, A, "admin").await;
    let query = format!(
        "query($id: UUID!) {{ user(id: $id) {{ {} }} }}",
        user_scalars.join(" ")
    );
    let (status, body) = w.gw.gql(Some(&admin), &query, json!({ "id": user })).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["data"]["user"]["id"], user.to_string(), "{body:#}");
    let text = body.to_string();
    assert!(
        !text.contains(&e.secret) && !text.contains(&stored[3..]),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_totp_code_signs_in_once() {
    let w = world().await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer", s - 1).await;
    let c = code(&mfa.secret, s);

    w.login_ok("customer", Some(&c), None, &format!("the first use {}", at(s)))
        .await;
    w.login_refused(
        "customer",
        Some(&c),
        None,
        &format!("the same code again {}", at(s)),
    )
    .await;
    assert_eq!(w.last_step(mfa.user_id).await, Some(s));
    // The code confirmTotp spent cannot sign in either.
    w.login_refused(
        "customer",
        Some(&code(&mfa.secret, s - 1)),
        None,
        &format!("the confirmation code {}", at(s)),
    )
    .await;
    let failures = w
        .count(&format!(
            "select count(*) from security_events where user_id = '{}' and event_type = 'login_failure' \
               and description = 'wrong or reused second factor'",
            mfa.user_id
        ))
        .await;
    assert_eq!(failures, 2, "each replay is a recorded second-factor failure");
}

#[tokio::test]
async fn twenty_concurrent_logins_with_one_totp_code_let_exactly_one_in() {
    let w = world().await;
    // The replay is what refuses the others, not a lock after five failures.
    w.set_threshold(w.fx.a.tenant_id, 1000).await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer", s - 1).await;
    let c = code(&mfa.secret, s);

    let replies = join_all((0..20).map(|_| w.login_text(A, "customer", Some(&c), None))).await;
    let mut winners = 0;
    for (status, text) in &replies {
        assert_eq!(*status, 200, "{text}");
        let body: Value = serde_json::from_str(text).expect("json");
        if tokens_of(&body).is_some() {
            winners += 1;
        } else {
            assert_eq!(text, &w.failed, "a loser gets the generic failure {}", at(s));
        }
    }
    assert_eq!(winners, 1, "exactly one of 20 submissions signs in {}", at(s));
    assert_eq!(w.last_step(mfa.user_id).await, Some(s));
    assert_eq!(
        w.count(&format!(
            "select count(*) from refresh_tokens where user_id = '{}'",
            mfa.user_id
        ))
        .await,
        // The fixture's session, the sign-in before MFA, and the one winner.
        3,
        "one new session"
    );
    assert_eq!(
        w.count(&format!(
            "select count(*) from security_events where user_id = '{}' and event_type = 'login_failure' \
               and description = 'wrong or reused second factor'",
            mfa.user_id
        ))
        .await,
        19,
        "each loser is a recorded second-factor failure"
    );
}

#[tokio::test]
async fn a_code_of_an_earlier_step_than_the_last_accepted_is_refused() {
    let w = world().await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer", s - 1).await;

    // Step s + 1 is accepted; step s, inside the window and never used, is earlier.
    w.login_ok(
        "customer",
        Some(&code(&mfa.secret, s + 1)),
        None,
        &format!("one step ahead {}", at(s)),
    )
    .await;
    assert_eq!(w.last_step(mfa.user_id).await, Some(s + 1));
    w.login_refused(
        "customer",
        Some(&code(&mfa.secret, s)),
        None,
        &format!("an unused code of an earlier step {}", at(s)),
    )
    .await;
    assert_eq!(
        w.last_step(mfa.user_id).await,
        Some(s + 1),
        "the step did not go back"
    );
    // The step a disableTotp code needs is fresh as well.
    w.gql_fails(
        &mfa.token,
        DISABLE,
        json!({ "code": code(&mfa.secret, s) }),
        "BAD_USER_INPUT",
        &format!("disableTotp with an earlier step {}", at(s)),
    )
    .await;
    assert!(w.mfa_enabled_in_db(mfa.user_id).await);
}

// ---------------------------------------------------------------------------------------
// Drift
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn one_step_of_drift_either_way_is_accepted_and_two_steps_are_not() {
    let w = world().await;
    let s = settled_step(MARGIN).await;

    // A fresh enrolment (no step used yet): two steps either way are refused, one step
    // ago is accepted.
    let token = w.login_ok("customer", None, None, "sign-in").await;
    let e = w.enroll(&token).await;
    let window: Vec<String> = (s - 1..=s + 1).map(|st| code(&e.secret, st)).collect();
    for (st, what) in [(s - 2, "two steps ago"), (s + 2, "two steps ahead")] {
        let c = code(&e.secret, st);
        if window.contains(&c) {
            continue; // the same six digits as a valid code (one chance in ~300 000)
        }
        w.gql_fails(
            &token,
            CONFIRM,
            json!({ "code": c }),
            "BAD_USER_INPUT",
            &format!("confirmTotp {what} {}", at(s)),
        )
        .await;
    }
    w.confirm_ok(
        &token,
        &code(&e.secret, s - 1),
        &format!("confirmTotp one step ago {}", at(s)),
    )
    .await;
    let user = w.fx.a.user("customer");
    assert_eq!(w.last_step(user).await, Some(s - 1));

    // At login: one step ahead is accepted; two steps ahead (later than the last
    // accepted step, so only the window refuses it) is not.
    let two_ahead = code(&e.secret, s + 2);
    if !window.contains(&two_ahead) {
        w.login_refused(
            "customer",
            Some(&two_ahead),
            None,
            &format!("login two steps ahead {}", at(s)),
        )
        .await;
    }
    w.login_ok(
        "customer",
        Some(&code(&e.secret, s + 1)),
        None,
        &format!("login one step ahead {}", at(s)),
    )
    .await;

    // A second user, confirmed one step ahead; then time "moves on": the last accepted
    // step is set back to minutes ago, as after a sign-in long past, so only the window
    // decides. Two steps ago is refused, one step ago accepted.
    let mfa = w.enable_mfa("customer2", s + 1).await;
    sql::exec(
        &w.owner,
        &format!(
            "update users set totp_last_step = {} where user_id = '{}'",
            s - 10,
            mfa.user_id
        ),
    )
    .await;
    let window2: Vec<String> = (s - 1..=s + 1).map(|st| code(&mfa.secret, st)).collect();
    let two_ago = code(&mfa.secret, s - 2);
    if !window2.contains(&two_ago) {
        w.login_refused(
            "customer2",
            Some(&two_ago),
            None,
            &format!("login two steps ago {}", at(s)),
        )
        .await;
        assert_eq!(w.last_step(mfa.user_id).await, Some(s - 10), "nothing spent");
    }
    w.login_ok(
        "customer2",
        Some(&code(&mfa.secret, s - 1)),
        None,
        &format!("login one step ago {}", at(s)),
    )
    .await;
    assert_eq!(w.last_step(mfa.user_id).await, Some(s - 1));
    w.login_ok(
        "customer2",
        Some(&code(&mfa.secret, s)),
        None,
        &format!("login at the current step {}", at(s)),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Backup codes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn backup_codes_need_mfa_are_ten_distinct_and_stored_only_as_hashes() {
    let w = world().await;
    let token = w.login_ok("customer2", None, None, "sign-in").await;
    w.gql_fails(
        &token,
        GENERATE,
        json!({}),
        "BAD_USER_INPUT",
        "generateBackupCodes without MFA",
    )
    .await;
    let user = w.fx.a.user("customer2");
    assert!(w.backup_rows(user).await.is_empty(), "nothing stored");

    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer2", s).await;
    let codes = w.generate_backup_codes(&mfa.token).await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert_eq!(
        codes.iter().collect::<HashSet<_>>().len(),
        10,
        "distinct: {codes:?}"
    );
    for c in &codes {
        let groups: Vec<&str> = c.split('-').collect();
        assert!(
            groups.len() == 4
                && groups
                    .iter()
                    .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric())),
            "XXXX-XXXX-XXXX-XXXX: {c}"
        );
    }

    let rows = w.backup_rows(user).await;
    assert_eq!(rows.len(), 10, "{rows:?}");
    assert!(rows.iter().all(|(_, used)| !used), "none used: {rows:?}");
    for (hash, _) in &rows {
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "a SHA-256 in hex: {hash}"
        );
        for c in &codes {
            let bare = c.replace('-', "");
            for form in [c.clone(), bare.clone(), c.to_lowercase(), bare.to_lowercase()] {
                assert!(!hash.contains(&form), "{hash} contains the code {form}");
            }
        }
    }
    let hashes: HashSet<_> = rows.iter().map(|(h, _)| h.clone()).collect();
    assert_eq!(hashes.len(), 10, "distinct hashes");
    // Not an unsalted SHA-256 of the code either (the hash is bound to the user).
    use sha2::{Digest, Sha256};
    for c in &codes {
        for form in [c.clone(), c.replace('-', "")] {
            let plain = hex::encode(Sha256::digest(form.as_bytes()));
            assert!(!hashes.contains(&plain), "the plain SHA-256 of {form} is stored");
        }
    }
    // The codes appear in no table of the database as text.
    let dump = sql::strings(
        &w.owner,
        &format!(
            "select row_to_json(u)::text as v from users u where user_id = '{user}' \
             union all select row_to_json(s)::text from security_events s where user_id = '{user}' \
             union all select row_to_json(a)::text from audit_log a where user_id = '{user}' or entity_id = '{user}'"
        ),
    )
    .await
    .join("\n");
    for c in &codes {
        assert!(
            !dump.contains(c) && !dump.contains(&c.replace('-', "")),
            "{c} stored"
        );
    }
    assert_eq!(w.me_mfa(&mfa.token).await, (true, 10));
}

#[tokio::test]
async fn a_backup_code_signs_in_once() {
    let w = world().await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer2", s).await;
    let codes = w.generate_backup_codes(&mfa.token).await;

    // A backup code completes the sign-in instead of a TOTP code.
    w.login_ok("customer2", None, Some(&codes[0]), "the first use")
        .await;
    w.login_refused("customer2", None, Some(&codes[0]), "the second use")
        .await;
    // Written differently (lower case, no dashes), it is still the same spent code.
    let variant = codes[0].replace('-', "").to_lowercase();
    w.login_refused("customer2", None, Some(&variant), "the spent code, rewritten")
        .await;
    // A fresh code written that way works, once.
    let variant = codes[1].replace('-', "").to_lowercase();
    w.login_ok("customer2", None, Some(&variant), "a rewritten fresh code")
        .await;
    w.login_refused("customer2", None, Some(&codes[1]), "that code again")
        .await;
    assert_eq!(
        w.backup_rows(mfa.user_id)
            .await
            .iter()
            .filter(|(_, used)| *used)
            .count(),
        2
    );
    assert_eq!(w.me_mfa(&mfa.token).await, (true, 8));

    // The code is bound to its user: another user with MFA on cannot use it.
    let other = w.enable_mfa("customer", s).await;
    let _ = w.generate_backup_codes(&other.token).await;
    w.login_refused("customer", None, Some(&codes[2]), "another user's code")
        .await;
    // Nor the same username in another tenant.
    let foreign = w.enable_mfa_in(B, "customer2", s).await;
    let _ = w.generate_backup_codes(&foreign.token).await;
    w.login_refused_in(
        B,
        "customer2",
        None,
        Some(&codes[2]),
        "the code in another tenant",
    )
    .await;
    // It still works for its user.
    w.login_ok("customer2", None, Some(&codes[2]), "its own user")
        .await;
}

#[tokio::test]
async fn ten_concurrent_logins_with_one_backup_code_let_exactly_one_in() {
    let w = world().await;
    w.set_threshold(w.fx.a.tenant_id, 1000).await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer2", s).await;
    let codes = w.generate_backup_codes(&mfa.token).await;

    let replies = join_all((0..10).map(|_| w.login_text(A, "customer2", None, Some(&codes[3])))).await;
    let mut winners = 0;
    for (status, text) in &replies {
        assert_eq!(*status, 200, "{text}");
        let body: Value = serde_json::from_str(text).expect("json");
        if tokens_of(&body).is_some() {
            winners += 1;
        } else {
            assert_eq!(text, &w.failed, "a loser gets the generic failure");
        }
    }
    assert_eq!(winners, 1, "exactly one of 10 submissions signs in");
    let used = w
        .backup_rows(mfa.user_id)
        .await
        .into_iter()
        .filter(|(_, used)| *used)
        .count();
    assert_eq!(used, 1, "exactly one row is spent");
    assert_eq!(w.me_mfa(&mfa.token).await, (true, 9));
}

#[tokio::test]
async fn regenerating_backup_codes_revokes_the_old_set() {
    let w = world().await;
    let user = w.fx.a.user("customer");
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer", s).await;
    // The fixture gave this user one unused and one used code: only unused ones count.
    assert_eq!(w.me_mfa(&mfa.token).await, (true, 1));

    let old = w.generate_backup_codes(&mfa.token).await;
    assert_eq!(
        w.backup_rows(user).await.len(),
        10,
        "the fixture's codes were replaced"
    );
    w.login_ok("customer", None, Some(&old[0]), "an old-set code")
        .await;
    assert_eq!(w.me_mfa(&mfa.token).await, (true, 9));

    let new = w.generate_backup_codes(&mfa.token).await;
    assert!(
        new.iter().all(|c| !old.contains(c)),
        "a new set: {new:?} / {old:?}"
    );
    let rows = w.backup_rows(user).await;
    assert_eq!(rows.len(), 10, "ten rows, the old set gone: {rows:?}");
    assert!(rows.iter().all(|(_, used)| !used), "all unused: {rows:?}");
    assert_eq!(w.me_mfa(&mfa.token).await, (true, 10));

    w.login_refused("customer", None, Some(&old[1]), "an unused code of the old set")
        .await;
    w.login_ok("customer", None, Some(&new[0]), "a code of the new set")
        .await;
    assert_eq!(w.me_mfa(&mfa.token).await, (true, 9));
}

// ---------------------------------------------------------------------------------------
// Disabling
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn disabling_totp_needs_a_fresh_code_and_removes_the_backup_codes() {
    let w = world().await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer", s - 1).await;
    let codes = w.generate_backup_codes(&mfa.token).await;

    let stored = w
        .scalar(&format!(
            "select mfa_secret from users where user_id = '{}'",
            mfa.user_id
        ))
        .await;
    for (bad, what) in [
        (wrong_code(&mfa.secret, s), "a wrong code"),
        (code(&mfa.secret, s - 1), "the code confirmTotp spent"),
        (codes[0].clone(), "a backup code"),
        (String::new(), "an empty code"),
    ] {
        w.gql_fails(
            &mfa.token,
            DISABLE,
            json!({ "code": bad }),
            "BAD_USER_INPUT",
            &format!("disableTotp with {what} {}", at(s)),
        )
        .await;
        assert!(w.mfa_enabled_in_db(mfa.user_id).await, "still on after {what}");
    }
    assert_eq!(
        w.scalar(&format!(
            "select mfa_secret from users where user_id = '{}'",
            mfa.user_id
        ))
        .await,
        stored
    );
    assert_eq!(w.backup_rows(mfa.user_id).await.len(), 10);
    w.login_needs_mfa("customer", "still needed").await;

    let data =
        w.gw.data(Some(&mfa.token), DISABLE, json!({ "code": code(&mfa.secret, s) }))
            .await;
    assert_eq!(data["disableTotp"], true, "{data:#} {}", at(s));
    assert!(!w.mfa_enabled_in_db(mfa.user_id).await);
    assert_eq!(
        w.scalar(&format!(
            "select coalesce(mfa_secret, 'none') || '/' || coalesce(mfa_secret_key_id, 'none') \
               from users where user_id = '{}'",
            mfa.user_id
        ))
        .await
        .as_deref(),
        Some("none/none"),
        "the secret is erased"
    );
    assert!(
        w.backup_rows(mfa.user_id).await.is_empty(),
        "the backup codes are gone"
    );
    assert_eq!(w.me_mfa(&mfa.token).await, (false, 0));

    // Sign-in needs the password only.
    let access = w.login_ok("customer", None, None, "after disabling").await;
    assert_eq!(w.me_mfa(&access).await, (false, 0));
}

// ---------------------------------------------------------------------------------------
// Lockout
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_second_factors_count_toward_lockout() {
    let w = world().await;
    w.set_threshold(w.fx.a.tenant_id, 3).await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer", s - 1).await;
    let user = mfa.user_id;
    let failed = |n: i64| format!("select failed_login_attempts = {n} from users where user_id = '{user}'");

    let wrong = wrong_code(&mfa.secret, s);
    for i in 1..=2 {
        w.login_refused("customer", Some(&wrong), None, &format!("wrong code {i}"))
            .await;
        assert_eq!(
            w.scalar(&failed(i)).await.as_deref(),
            Some("true"),
            "counted: {i}"
        );
    }
    w.login_refused("customer", Some(&wrong), None, "wrong code 3")
        .await;
    let locked = w
        .scalar(&format!(
            "select locked_until > now() + interval '200 seconds' from users where user_id = '{user}'"
        ))
        .await;
    assert_eq!(locked.as_deref(), Some("true"), "locked after 3 wrong codes");

    // Now the right password and a right, unused code are refused alike, and the code's
    // step is not spent.
    w.login_refused(
        "customer",
        Some(&code(&mfa.secret, s)),
        None,
        &format!("the right code on a locked account {}", at(s)),
    )
    .await;
    w.login_refused("customer", None, None, "the password alone on a locked account")
        .await;
    assert_eq!(w.last_step(user).await, Some(s - 1), "no step was spent");

    let second_factor = w
        .count(&format!(
            "select count(*) from security_events where user_id = '{user}' and event_type = 'login_failure' \
               and description ilike '%second factor%'"
        ))
        .await;
    assert_eq!(second_factor, 3, "three second-factor failures recorded");
    assert_eq!(
        events_of(&w.owner, user, "account_locked").await,
        vec![("high".to_string(), "lock".to_string())]
    );

    // Wrong backup codes count as well (another user, same threshold).
    let mfa2 = w.enable_mfa("customer2", s).await;
    let _ = w.generate_backup_codes(&mfa2.token).await;
    for i in 1..=3 {
        w.login_refused(
            "customer2",
            None,
            Some("AAAA-BBBB-CCCC-DDDD"),
            &format!("wrong backup code {i}"),
        )
        .await;
    }
    let locked = w
        .scalar(&format!(
            "select locked_until > now() from users where user_id = '{}'",
            mfa2.user_id
        ))
        .await;
    assert_eq!(
        locked.as_deref(),
        Some("true"),
        "locked after 3 wrong backup codes"
    );
}

// ---------------------------------------------------------------------------------------
// Events and audit
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn mfa_steps_are_recorded_as_security_events_and_audit_entries() {
    let w = world().await;
    let user = w.fx.a.user("customer2");
    let token = w.login_ok("customer2", None, None, "sign-in").await;
    let s = settled_step(MARGIN).await;

    let events = |kind: &'static str| {
        let owner = &w.owner;
        async move {
            sql::count(
                owner,
                &format!(
                    "select count(*) from security_events where user_id = '{user}' and event_type = '{kind}' \
                       and event_category = 'authentication'"
                ),
            )
            .await
        }
    };
    let audits = |action: &'static str| {
        let owner = &w.owner;
        async move {
            sql::count(
                owner,
                &format!(
                    "select count(*) from audit_log where user_id = '{user}' and entity_id = '{user}' \
                       and entity_type = 'user' and action = '{action}'"
                ),
            )
            .await
        }
    };

    let e = w.enroll(&token).await;
    assert_eq!(events("mfa_enroll_started").await, 1);
    assert_eq!(audits("mfa.enroll").await, 1);
    assert_eq!(events("mfa_enabled").await, 0);

    w.confirm_ok(&token, &code(&e.secret, s - 1), "confirmTotp").await;
    assert_eq!(events("mfa_enabled").await, 1);
    assert_eq!(audits("mfa.confirm").await, 1);

    let codes = w.generate_backup_codes(&token).await;
    assert_eq!(events("mfa_backup_codes_generated").await, 1);
    assert_eq!(audits("mfa.backup_codes").await, 1);

    w.gql_fails(
        &token,
        DISABLE,
        json!({ "code": wrong_code(&e.secret, s) }),
        "BAD_USER_INPUT",
        "a wrong code",
    )
    .await;
    assert_eq!(
        events("mfa_disabled").await,
        0,
        "a refused disable disables nothing"
    );
    assert_eq!(audits("mfa.disable").await, 0);
    let data =
        w.gw.data(Some(&token), DISABLE, json!({ "code": code(&e.secret, s) }))
            .await;
    assert_eq!(data["disableTotp"], true, "{data:#} {}", at(s));
    assert_eq!(events("mfa_disabled").await, 1);
    assert_eq!(audits("mfa.disable").await, 1);
    let severity = w
        .scalar(&format!(
            "select severity::text from security_events where user_id = '{user}' and event_type = 'mfa_disabled'"
        ))
        .await;
    assert_eq!(
        severity.as_deref(),
        Some("high"),
        "turning MFA off is a high-severity event"
    );

    // Neither log holds the secret or a backup code.
    let dump = sql::strings(
        &w.owner,
        &format!(
            "select row_to_json(s)::text as v from security_events s where user_id = '{user}' \
             union all select row_to_json(a)::text from audit_log a where user_id = '{user}' or entity_id = '{user}'"
        ),
    )
    .await
    .join("\n");
    assert!(!dump.contains(&e.secret), "a log holds the secret");
    for c in &codes {
        assert!(!dump.contains(c), "a log holds the backup code {c}");
    }
}

// ---------------------------------------------------------------------------------------
// What a password alone reveals; failed second-factor checks outside login
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_mfa_required_reply_reveals_no_personal_data() {
    // The password alone is not a sign-in: whoever holds only it (the very attacker MFA
    // stops) must learn nothing about the account beyond "a second factor is needed".
    let w = world().await;
    let user = w.fx.a.user("customer");
    sql::exec(
        &w.owner,
        &format!("update users set phone_number = '+15550100' where user_id = '{user}'"),
    )
    .await;
    let s = settled_step(MARGIN).await;
    let mfa = w.enable_mfa("customer", s - 1).await;
    let query = "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken mfaRequired \
        user { id email firstName lastName phoneNumber lastLoginAt lastLoginIp failedLoginAttempts \
        isLocked lockedUntil mfaEnabled permissions trustScore } } }";
    let (status, body) =
        w.gw.gql(
            None,
            query,
            json!({ "input": { "tenant": A, "username": "customer", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["data"]["login"]["mfaRequired"], true, "{body:#}");
    assert!(body["data"]["login"]["accessToken"].is_null(), "{body:#}");
    let user_view = &body["data"]["login"]["user"];
    let mut findings = vec![];
    for field in [
        "email",
        "firstName",
        "lastName",
        "phoneNumber",
        "lastLoginAt",
        "lastLoginIp",
        "failedLoginAttempts",
        "isLocked",
        "lockedUntil",
        "mfaEnabled",
        "permissions",
        "trustScore",
    ] {
        if !user_view[field].is_null() {
            findings.push(format!("user.{field} = {}", user_view[field]));
        }
    }
    let text = body.to_string();
    for value in [
        "customer@acme.example",
        "+15550100",
        "Acme Bank customer",
        "127.0.0.1",
    ] {
        if text.contains(value) {
            findings.push(format!("the reply contains {value:?}"));
        }
    }
    support::assert_no_findings(
        &format!("login with the password only (mfaRequired) reveals the account: {body:#}"),
        &findings,
    );
    let _ = mfa;
}

#[tokio::test]
async fn wrong_codes_to_confirm_or_disable_totp_are_recorded() {
    // ASVS 16.3 / the authentication issue: every MFA verification failure is a security
    // event. A wrong disableTotp code in particular is someone with the session but not
    // the authenticator trying to remove the second factor.
    let w = world().await;
    let user = w.fx.a.user("customer2");
    let token = w.login_ok("customer2", None, None, "sign-in").await;
    let e = w.enroll(&token).await;
    let s = settled_step(MARGIN).await;
    let sql = format!("select count(*) from security_events where user_id = '{user}'");
    let events = || sql::count(&w.owner, &sql);

    let before = events().await;
    w.gql_fails(
        &token,
        CONFIRM,
        json!({ "code": wrong_code(&e.secret, s) }),
        "BAD_USER_INPUT",
        "confirmTotp with a wrong code",
    )
    .await;
    let after_confirm = events().await;

    w.confirm_ok(&token, &code(&e.secret, s - 1), "confirmTotp").await;
    let before_disable = events().await;
    w.gql_fails(
        &token,
        DISABLE,
        json!({ "code": wrong_code(&e.secret, s) }),
        "BAD_USER_INPUT",
        "disableTotp with a wrong code",
    )
    .await;
    let after_disable = events().await;
    let mut findings = vec![];
    if after_confirm == before {
        findings.push("a wrong confirmTotp code left no security event".to_string());
    }
    if after_disable == before_disable {
        findings.push("a wrong disableTotp code left no security event".to_string());
    }
    support::assert_no_findings("failed MFA verifications", &findings);
}

// ---------------------------------------------------------------------------------------
// RFC 6238
// ---------------------------------------------------------------------------------------

#[test]
fn code_at_matches_the_rfc_6238_sha1_test_vectors() {
    // RFC 6238 Appendix B, SHA-1: the secret is ASCII "12345678901234567890"; the RFC's
    // codes have 8 digits, ours are their last 6 (the truncation is the same).
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let vectors: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    for (t, eight) in vectors {
        assert_eq!(
            code_at(secret, t).as_deref(),
            Some(&eight[2..]),
            "T = {t} (RFC code {eight})"
        );
    }
    // The same step gives the same code anywhere in it, the next step another.
    assert_eq!(code_at(secret, 1_111_111_109), code_at(secret, 1_111_111_080));
    assert_ne!(code_at(secret, 1_111_111_109), code_at(secret, 1_111_111_110));
    // The product's matcher accepts a vector at its own step and one step either way.
    use api::auth::mfa::matching_step;
    let step = 1_111_111_109 / 30;
    assert_eq!(matching_step(secret, "081804", 1_111_111_109), Some(step));
    assert_eq!(matching_step(secret, "081804", 1_111_111_109 + 30), Some(step));
    assert_eq!(matching_step(secret, "081804", 1_111_111_109 - 30), Some(step));
    assert_eq!(matching_step(secret, "081804", 1_111_111_109 + 60), None);
    assert_eq!(matching_step(secret, "07081804", 1_111_111_109), None, "8 digits");
    assert_eq!(code_at("not base32!", 59), None);
}
