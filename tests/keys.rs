//! `ultracore keys`: rotating the data key that seals MFA secrets and notification bodies.
//!
//! Key A is the test gateways' data key: a TOTP secret enrolled through the API is sealed
//! under it. The operator makes B current and keeps A as a previous key; the rotation must
//! then leave every value under B (B alone opens it, to the same plaintext), rewrite
//! nothing on a second run, and never touch a value that no configured key opens: that
//! one is named and the command exits 4. A connection bound by RLS must name its tenants.

mod support;

use std::process::Output;

use std::collections::HashMap;

use api::auth::crypto::{KeyRing, generate_key_base64};
use api::auth::roles::Role;
use api::domain::Actor;
use api::domain::users::{NewUser, create_user};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::json;
use support::cli::{describe, ultracore, ultracore_with_database};
use support::fixture::{PASSWORD, login, tenant_txn};
use support::gateway::{TEST_DATA_KEY, TestGateway};
use support::{TempDir, TestDb, sql};
use uuid::Uuid;

/// Exit code of a rotation that found values no configured key opens.
const EXIT_UNDECRYPTABLE: i32 = 4;

const KEY_A: &str = TEST_DATA_KEY;

fn ring(current: &str, previous: &[&str]) -> KeyRing {
    let previous: Vec<String> = previous.iter().map(|k| k.to_string()).collect();
    KeyRing::new(current, &previous).expect("a valid data key")
}

/// Runs `ultracore keys <args>` as `database_url` with data key `current` and previous
/// keys `previous`, off the test's runtime (the gateway of a test keeps serving on it).
async fn keys_cli(database_url: &str, current: &str, previous: &[&str], args: &[&str]) -> Output {
    let dir = TempDir::new("ultracore-keys");
    let mut cmd = ultracore_with_database(database_url, dir.path());
    cmd.env("ULTRACORE_DATA_KEY", current)
        .env("ULTRACORE_DATA_PREVIOUS_KEYS", previous.join(","))
        .arg("keys")
        .args(args);
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().expect("run ultracore keys");
        drop(dir);
        out
    })
    .await
    .expect("the CLI task")
}

async fn rotate(db: &TestDb, current: &str, previous: &[&str], extra: &[&str]) -> Output {
    let mut args = vec!["rotate-data-key"];
    args.extend_from_slice(extra);
    keys_cli(&db.owner_url(), current, previous, &args).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The summary line of `label` (`users.mfa_secret`, `notification_outbox.body`).
fn summary_line(out: &Output, label: &str) -> String {
    let text = stdout(out);
    let summary = text
        .split_once("summary (")
        .unwrap_or_else(|| panic!("no summary: {}", describe(out)))
        .1;
    summary
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no summary line for {label}: {}", describe(out)))
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn mfa_row(owner: &DatabaseConnection, user: Uuid) -> (Option<String>, Option<String>) {
    let row = owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select mfa_secret, mfa_secret_key_id from users where user_id = $1",
            [user.into()],
        ))
        .await
        .expect("read the user")
        .expect("the user exists");
    (
        row.try_get("", "mfa_secret").expect("mfa_secret"),
        row.try_get("", "mfa_secret_key_id").expect("mfa_secret_key_id"),
    )
}

async fn body_of(owner: &DatabaseConnection, notification: Uuid) -> String {
    sql::scalar(
        owner,
        &format!("select body from notification_outbox where notification_id = '{notification}'"),
    )
    .await
    .expect("the notification exists")
}

/// Seals `secret` for `user` under `keys` as the gateway does, bypassing the API (for
/// users the test needs under a key the gateway does not hold).
async fn store_mfa_secret(
    owner: &DatabaseConnection,
    tenant: Uuid,
    user: Uuid,
    keys: &KeyRing,
    secret: &str,
) {
    let txn = tenant_txn(owner, tenant).await;
    support::fixture::run(
        &txn,
        "update users set mfa_secret = $1, mfa_secret_key_id = $2 where user_id = $3",
        vec![
            keys.encrypt(secret.as_bytes(), user.as_bytes()).into(),
            keys.current_id().into(),
            user.into(),
        ],
    )
    .await;
    txn.commit().await.expect("commit");
}

const A: &str = "acme";
const B: &str = "globex";

/// A tenant and its users, by username. (Only what these tests need, written through
/// the domain functions the CLI uses: the shared fixture seeds every table, which this
/// test does not need.)
struct Tenant {
    id: Uuid,
    users: HashMap<&'static str, Uuid>,
}

impl Tenant {
    fn user(&self, username: &str) -> Uuid {
        self.users[username]
    }
}

/// Creates tenant `slug` with one user per name in `usernames` (role customer,
/// password [`PASSWORD`]).
async fn seed_tenant(owner: &DatabaseConnection, slug: &str, usernames: &[&'static str]) -> Tenant {
    let id = api::domain::tenants::create_tenant(owner, slug, slug)
        .await
        .unwrap_or_else(|e| panic!("create tenant {slug}: {e}"));
    let txn = tenant_txn(owner, id).await;
    let mut users = HashMap::new();
    for &username in usernames {
        let user = create_user(
            &txn,
            &Actor::cli(id),
            NewUser {
                username: username.to_string(),
                email: format!("{username}@{slug}.example"),
                role: Role::Customer,
                password: PASSWORD.to_string(),
                first_name: None,
                last_name: None,
                phone_number: None,
                permissions: vec![],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create user {slug}/{username}: {e}"));
        users.insert(username, user.user_id);
    }
    txn.commit().await.expect("commit users");
    Tenant { id, users }
}

/// Queues one more message through the product's own outbox writer, sealed under `keys`;
/// returns (id, plaintext).
async fn enqueue(owner: &DatabaseConnection, tenant: Uuid, keys: &KeyRing, body: &str) -> (Uuid, String) {
    let txn = tenant_txn(owner, tenant).await;
    let id = api::notify::enqueue(
        &txn,
        keys,
        api::notify::NewNotification {
            tenant_id: tenant,
            user_id: None,
            recipient: "ops@example.test",
            subject: "Security alert",
            body,
        },
    )
    .await
    .expect("enqueue");
    txn.commit().await.expect("commit");
    (id, body.to_string())
}

/// Enrols `username` of `slug` in TOTP through the API; returns the secret it was given.
async fn enroll_totp(gw: &TestGateway, slug: &str, username: &str) -> String {
    let token = login(gw, slug, username, PASSWORD).await;
    let data = gw
        .data(Some(&token), "mutation { enrollTotp { secret } }", json!({}))
        .await;
    data["enrollTotp"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("enrollTotp gave no secret: {data:#}"))
        .to_string()
}

#[tokio::test]
async fn rotation_reseals_every_secret_under_the_new_key_and_a_second_run_rewrites_nothing() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let acme = seed_tenant(&owner, A, &["customer", "nomfa"]).await;
    let globex = seed_tenant(&owner, B, &["officer", "customer2"]).await;
    let key_b = generate_key_base64();
    let old = ring(KEY_A, &[]);
    let new_only = ring(&key_b, &[]);

    // Under A: two secrets enrolled through the API, one in each tenant.
    let gw = TestGateway::start(&db).await;
    let mut secrets = vec![
        (acme.user("customer"), enroll_totp(&gw, A, "customer").await),
        (globex.user("officer"), enroll_totp(&gw, B, "officer").await),
    ];
    drop(gw);
    // Already under B: must be counted as current and left alone.
    let current_user = globex.user("customer2");
    store_mfa_secret(&owner, globex.id, current_user, &new_only, "JBSWY3DPEHPK3PXP").await;
    let (current_before, _) = mfa_row(&owner, current_user).await;
    // Notification bodies under A, through the product's outbox writer; one of them
    // already sent (it still holds its link).
    let bodies = vec![
        enqueue(&owner, acme.id, &old, "reset link https://example.test/r?token=1").await,
        enqueue(&owner, acme.id, &old, "your login from a new device").await,
        enqueue(
            &owner,
            globex.id,
            &old,
            "reset link https://example.test/r?token=2",
        )
        .await,
    ];
    sql::exec(
        &owner,
        &format!(
            "update notification_outbox set status = 'sent', sent_at = now() where notification_id = '{}'",
            bodies[0].0
        ),
    )
    .await;
    for (user, _) in &secrets {
        let (value, key_id) = mfa_row(&owner, *user).await;
        assert_eq!(key_id.as_deref(), Some(old.current_id()), "enrolled under A");
        assert!(
            value
                .expect("a secret")
                .starts_with(&format!("v1.{}.", old.current_id()))
        );
    }
    let audit_before = sql::count(&owner, "select count(*) from audit_log").await;

    // A dry run counts and changes nothing.
    let snapshot = "select string_agg(coalesce(mfa_secret, '-'), ',' order by user_id) from users";
    let bodies_snapshot = "select string_agg(body, ',' order by notification_id) from notification_outbox";
    let (users_before, outbox_before) = (
        sql::scalar(&owner, snapshot).await,
        sql::scalar(&owner, bodies_snapshot).await,
    );
    let dry = rotate(&db, &key_b, &[KEY_A], &["--dry-run"]).await;
    assert_eq!(dry.status.code(), Some(0), "dry run: {}", describe(&dry));
    assert_eq!(
        summary_line(&dry, "users.mfa_secret"),
        "2 to rewrite, 1 already current, 0 undecryptable",
        "{}",
        describe(&dry)
    );
    assert_eq!(
        sql::scalar(&owner, snapshot).await,
        users_before,
        "a dry run writes nothing"
    );
    assert_eq!(sql::scalar(&owner, bodies_snapshot).await, outbox_before);

    let out = rotate(&db, &key_b, &[KEY_A], &[]).await;
    assert_eq!(out.status.code(), Some(0), "rotation: {}", describe(&out));
    assert_eq!(
        summary_line(&out, "users.mfa_secret"),
        "2 rewritten, 1 already current, 0 undecryptable",
        "{}",
        describe(&out)
    );
    assert_eq!(
        summary_line(&out, "notification_outbox.body"),
        format!("{} rewritten, 0 already current, 0 undecryptable", bodies.len()),
        "{}",
        describe(&out)
    );
    assert!(
        stdout(&out).contains(&format!("tenant {A} (")) && stdout(&out).contains(&format!("tenant {B} (")),
        "both tenants reported: {}",
        describe(&out)
    );

    // Every value now names B, and B alone opens it to exactly what A had sealed.
    secrets.push((current_user, "JBSWY3DPEHPK3PXP".to_string()));
    for (user, secret) in &secrets {
        let (value, key_id) = mfa_row(&owner, *user).await;
        let value = value.expect("the secret is still there");
        assert_eq!(
            key_id.as_deref(),
            Some(new_only.current_id()),
            "key id column of {user}"
        );
        assert_eq!(KeyRing::key_id_of(&value), Some(new_only.current_id()), "{value}");
        assert_eq!(
            new_only
                .decrypt(&value, user.as_bytes())
                .expect("B alone decrypts it"),
            secret.as_bytes(),
            "the same secret for {user}"
        );
    }
    let (current_after, _) = mfa_row(&owner, current_user).await;
    assert_eq!(
        current_after, current_before,
        "a value already under B is not rewritten"
    );
    for (id, plain) in &bodies {
        let body = body_of(&owner, *id).await;
        assert_eq!(KeyRing::key_id_of(&body), Some(new_only.current_id()), "{body}");
        assert_eq!(
            new_only
                .decrypt(&body, id.as_bytes())
                .expect("B alone decrypts the body"),
            plain.as_bytes()
        );
    }
    assert_eq!(
        sql::count(
            &owner,
            "select count(*) from users where mfa_secret is null and mfa_secret_key_id is not null"
        )
        .await,
        0,
        "no secret lost"
    );
    // One audit entry per tenant and column rewritten, naming the key only by its id.
    let entries = sql::strings(
        &owner,
        "select new_values::text as v from audit_log where action = 'data_key.rotate' order by chain_seq",
    )
    .await;
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert_eq!(
        sql::count(&owner, "select count(*) from audit_log").await,
        audit_before + 4
    );
    for entry in &entries {
        assert!(entry.contains(new_only.current_id()), "{entry}");
        assert!(
            !entry.contains(&key_b) && !entry.contains(KEY_A),
            "no key in the log: {entry}"
        );
    }

    // Idempotent.
    let again = rotate(&db, &key_b, &[KEY_A], &[]).await;
    assert_eq!(again.status.code(), Some(0), "second run: {}", describe(&again));
    assert_eq!(
        summary_line(&again, "users.mfa_secret"),
        "0 rewritten, 3 already current, 0 undecryptable",
        "{}",
        describe(&again)
    );
    assert_eq!(
        summary_line(&again, "notification_outbox.body"),
        format!("0 rewritten, {} already current, 0 undecryptable", bodies.len())
    );
    assert_eq!(
        sql::count(&owner, "select count(*) from audit_log").await,
        audit_before + 4,
        "a run that rewrites nothing records nothing"
    );
    owner.close().await.ok();
}

#[tokio::test]
async fn a_value_no_configured_key_opens_is_named_left_unchanged_and_fails_the_run() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let acme = seed_tenant(&owner, A, &["manager", "customer"]).await;
    let globex = seed_tenant(&owner, B, &[]).await;
    let key_b = generate_key_base64();
    // The key the operator forgot to list.
    let key_c = generate_key_base64();
    let lost = ring(&key_c, &[]);
    let old = ring(KEY_A, &[]);

    let orphan = acme.user("manager");
    store_mfa_secret(&owner, acme.id, orphan, &lost, "KRSXG5CTMVRXEZLU").await;
    let (orphan_before, orphan_key_before) = mfa_row(&owner, orphan).await;
    let fine = acme.user("customer");
    store_mfa_secret(&owner, acme.id, fine, &old, "GEZDGNBVGY3TQOJQ").await;
    enqueue(&owner, acme.id, &old, "reset link").await;
    // A body that is not a sealed value at all.
    let (garbled, _) = enqueue(&owner, globex.id, &old, "alert").await;
    sql::exec(
        &owner,
        &format!("update notification_outbox set body = 'not sealed' where notification_id = '{garbled}'"),
    )
    .await;

    let out = rotate(&db, &key_b, &[KEY_A], &[]).await;
    assert_eq!(out.status.code(), Some(EXIT_UNDECRYPTABLE), "{}", describe(&out));
    let text = stdout(&out);
    let orphan_line = text
        .lines()
        .find(|l| l.contains(&orphan.to_string()))
        .unwrap_or_else(|| panic!("the undecryptable user is named: {}", describe(&out)));
    assert!(
        orphan_line.contains("users.mfa_secret") && orphan_line.contains(lost.current_id()),
        "names the column and the missing key's id: {orphan_line}"
    );
    assert!(
        text.lines().any(|l| l.contains(&garbled.to_string())
            && l.contains("notification_outbox.body")
            && l.contains("not a sealed value")),
        "the garbled body is named: {}",
        describe(&out)
    );
    assert_eq!(
        summary_line(&out, "users.mfa_secret"),
        "1 rewritten, 0 already current, 1 undecryptable",
        "{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: 2 stored value(s)"),
        "{}",
        describe(&out)
    );

    assert_eq!(
        mfa_row(&owner, orphan).await,
        (orphan_before, orphan_key_before),
        "the undecryptable secret is left exactly as it was"
    );
    assert_eq!(body_of(&owner, garbled).await, "not sealed");
    // The rest of the run went ahead.
    let (value, _) = mfa_row(&owner, fine).await;
    let new_only = ring(&key_b, &[]);
    assert_eq!(
        new_only
            .decrypt(&value.expect("secret"), fine.as_bytes())
            .expect("rotated to B"),
        b"GEZDGNBVGY3TQOJQ"
    );

    // Once the missing key is listed, the secret is rewritten like any other; the
    // garbled body still fails the run, since no key will ever open it.
    let found = rotate(&db, &key_b, &[KEY_A, &key_c], &[]).await;
    assert_eq!(
        found.status.code(),
        Some(EXIT_UNDECRYPTABLE),
        "{}",
        describe(&found)
    );
    assert_eq!(
        summary_line(&found, "users.mfa_secret"),
        "1 rewritten, 1 already current, 0 undecryptable",
        "{}",
        describe(&found)
    );
    let (value, _) = mfa_row(&owner, orphan).await;
    assert_eq!(
        new_only
            .decrypt(&value.expect("secret"), orphan.as_bytes())
            .expect("rotated to B"),
        b"KRSXG5CTMVRXEZLU"
    );
    owner.close().await.ok();
}

#[tokio::test]
async fn a_connection_bound_by_rls_must_name_its_tenants_and_then_rotates_only_those() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let acme = seed_tenant(&owner, A, &["customer"]).await;
    let globex = seed_tenant(&owner, B, &["customer"]).await;
    let old = ring(KEY_A, &[]);
    let key_b = generate_key_base64();
    store_mfa_secret(&owner, acme.id, acme.user("customer"), &old, "GEZDGNBVGY3TQOJQ").await;
    store_mfa_secret(
        &owner,
        globex.id,
        globex.user("customer"),
        &old,
        "GEZDGNBVGY3TQOJQ",
    )
    .await;

    // ultracore_app has the grants the rotation needs but is bound by forced RLS, like
    // an owner that is not a superuser: listing tenants would see none, so it refuses.
    let refused = keys_cli(&db.app_url(), &key_b, &[KEY_A], &["rotate-data-key"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("error:") && stderr.contains("--tenant"),
        "{}",
        describe(&refused)
    );

    let out = keys_cli(
        &db.app_url(),
        &key_b,
        &[KEY_A],
        &["rotate-data-key", "--tenant", A, "--batch-size", "1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        summary_line(&out, "users.mfa_secret"),
        "1 rewritten, 0 already current, 0 undecryptable",
        "{}",
        describe(&out)
    );
    let b_id = ring(&key_b, &[]).current_id().to_string();
    assert_eq!(mfa_row(&owner, acme.user("customer")).await.1, Some(b_id));
    assert_eq!(
        mfa_row(&owner, globex.user("customer")).await.1.as_deref(),
        Some(old.current_id()),
        "the tenant not named is untouched"
    );
    owner.close().await.ok();
}

#[test]
fn generate_data_key_prints_a_fresh_usable_key_without_a_database() {
    let dir = TempDir::new("ultracore-keys");
    let run = || {
        // No DATABASE_URL: it must not start the embedded cluster for this.
        let out = ultracore(dir.path())
            .args(["keys", "generate-data-key"])
            .output()
            .expect("run ultracore");
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        stdout(&out).trim().to_string()
    };
    let (first, second) = (run(), run());
    assert!(KeyRing::new(&first, &[]).is_ok(), "base64 of 32 bytes: {first}");
    assert_ne!(first, second, "a new key each time");
    assert!(!dir.path().join("pg").exists(), "no embedded cluster was created");
}
