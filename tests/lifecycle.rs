//! Data lifecycle (migration 0021, README "Data lifecycle"): erasure of a user's personal
//! data with the audit chain still verifying, the audit export an outsider can check with
//! SHA-256 alone, retention by dropping expired partitions (the only deletion path) and
//! the resealing of chains written before 0021.

mod support;

use std::path::Path;

use api::audit::{self, AuditEntry, ChainHead};
use api::db::{Access, TenantScope, begin_tenant_transaction};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::fixture::{A, Fixture, LOGIN_DOCUMENT, PASSWORD};
use support::gateway::{TestGateway, parse_body};
use support::sql::{self, count, expect_sqlstate};
use support::{TempDir, TestDb, cli};
use uuid::Uuid;

/// The erased user's personal data, distinctive enough that any copy left anywhere is
/// found by a plain text search of every row.
const FIRST_NAME: &str = "Zephyrine";
const LAST_NAME: &str = "Quillfeather";
const PHONE: &str = "+44 7700 900461";
const EMAIL: &str = "zephyrine.quill@example.org";
const ADDRESS: &str = "198.51.100.177";
const AGENT: &str = "ZQ-Banking-App/7.1";

/// POSTs one operation as the client at ADDRESS (through the trusted proxy) with AGENT.
async fn post_as_client(gw: &TestGateway, token: Option<&str>, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-forwarded-for", ADDRESS),
        ("user-agent", AGENT),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    let (status, text) = gw.post(&headers, body).await;
    assert_eq!(status, 200, "{text}");
    parse_body(&text)
}

/// Every ordinary table of the schemas we own (partitions included), as `schema.table`.
async fn every_table(owner: &DatabaseConnection) -> Vec<String> {
    sql::strings(
        owner,
        "select format('%I.%I', n.nspname, c.relname) as v from pg_class c \
           join pg_namespace n on n.oid = c.relnamespace \
          where c.relkind = 'r' and (n.nspname = 'public' or n.nspname like 'ultracore\\_%') \
          order by 1",
    )
    .await
}

/// `table`s rows whose text form contains `needle` (case-insensitive), read as the
/// superuser owner, which no row-level security hides anything from.
async fn rows_containing(owner: &DatabaseConnection, table: &str, needle: &str) -> i64 {
    count(
        owner,
        &format!("select count(*) from {table} t where t::text ilike '%{needle}%'"),
    )
    .await
}

fn verify_cli(url: &str, dir: &Path) -> Value {
    let out = cli::run(cli::ultracore_with_database(url, dir).args(["audit", "verify", "--tenant", A]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the chain verifies: {}",
        cli::describe(&out)
    );
    serde_json::from_slice(&out.stdout).expect("verify prints JSON")
}

#[tokio::test]
async fn an_erased_users_personal_data_is_gone_from_every_table_while_the_audit_chain_still_verifies() {
    let db = TestDb::new().await;
    let fixture = Fixture::seed(&db).await;
    let gw = TestGateway::start_with(&db, |config| {
        config.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let owner = db.owner().await;
    let customer = fixture.a.user("customer");

    // A history: sign-ins from the user's address and device, a profile with their
    // names, phone and email (audited with the values), a failed sign-in and a reset
    // message to their address.
    let login = post_as_client(
        &gw,
        None,
        LOGIN_DOCUMENT,
        json!({ "input": { "tenant": A, "username": "customer", "password": PASSWORD } }),
    )
    .await;
    let token = login["data"]["login"]["accessToken"]
        .as_str()
        .expect("signed in")
        .to_string();
    let updated = post_as_client(
        &gw,
        Some(&token),
        "mutation($id: UUID!, $input: UpdateUserProfileInput!) { updateUserProfile(id: $id, input: $input) { email } }",
        json!({ "id": customer, "input": { "firstName": FIRST_NAME, "lastName": LAST_NAME,
                                           "phoneNumber": PHONE, "email": EMAIL } }),
    )
    .await;
    assert_eq!(
        updated["data"]["updateUserProfile"]["email"], EMAIL,
        "{updated:#}"
    );
    let failed = post_as_client(
        &gw,
        None,
        LOGIN_DOCUMENT,
        json!({ "input": { "tenant": A, "username": "customer", "password": "not the password" } }),
    )
    .await;
    assert!(failed["errors"].is_array(), "{failed:#}");
    let reset = post_as_client(
        &gw,
        None,
        "mutation($tenant: String!, $email: String!) { requestPasswordReset(tenant: $tenant, email: $email) }",
        json!({ "tenant": A, "email": EMAIL }),
    )
    .await;
    assert!(reset["errors"].is_null(), "{reset:#}");

    let needles = [FIRST_NAME, LAST_NAME, PHONE, EMAIL, ADDRESS, AGENT];
    let tables = every_table(&owner).await;
    let mut before = Vec::new();
    for needle in needles {
        for table in &tables {
            if rows_containing(&owner, table, needle).await > 0 {
                before.push(format!("{needle} in {table}"));
            }
        }
    }
    // (The logs' rows live in their monthly partitions.)
    for (needle, table) in [
        (EMAIL, "public.users"),
        (ADDRESS, "public.refresh_tokens"),
        (ADDRESS, "ultracore_private.address_windows"),
        (AGENT, "ultracore_partitions.security_events_p"),
        (FIRST_NAME, "ultracore_partitions.audit_log_p"),
        (EMAIL, "public.notification_outbox"),
    ] {
        assert!(
            before
                .iter()
                .any(|b| b.starts_with(&format!("{needle} in {table}"))),
            "the history holds {needle} in {table}: {before:#?}"
        );
    }

    let dir = TempDir::new("ultracore-erase");
    let url = db.owner_url();
    let refused = cli::run(
        cli::ultracore_with_database(&url, dir.path())
            .args(["user", "erase", "--tenant", A, "--user", "customer"]),
    );
    assert_eq!(refused.status.code(), Some(1), "{}", cli::describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    let out = cli::run(
        cli::ultracore_with_database(&url, dir.path())
            .args(["user", "erase", "--tenant", A, "--user", "customer", "--yes"]),
    );
    assert!(out.status.success(), "{}", cli::describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("erase prints JSON");
    assert_eq!(report["user_id"], customer.to_string());
    assert!(report["rows"]["audit_log"].as_i64() >= Some(2), "{report:#}");
    assert!(
        report["rows"]["security_events"].as_i64() >= Some(2),
        "{report:#}"
    );

    let mut left = Vec::new();
    for needle in needles {
        for table in &tables {
            let n = rows_containing(&owner, table, needle).await;
            if n > 0 {
                left.push(format!("{needle} in {table} ({n} rows)"));
            }
        }
    }
    assert!(left.is_empty(), "personal data left after erasure: {left:#?}");

    // The account stays (every foreign key and audit entry points at it), pseudonymous.
    let account = sql::scalar(
        &owner,
        &format!(
            "select json_build_object('username', username, 'email', email, 'active', is_active, \
                                      'erased', erased_at is not null)::text \
               from users where user_id = '{customer}'"
        ),
    )
    .await
    .expect("the account row stays");
    let account: Value = serde_json::from_str(&account).expect("json");
    assert_eq!(account["username"], format!("erased-{}", customer.simple()));
    assert_eq!(account["active"], false);
    assert_eq!(account["erased"], true);

    // The audit chain still verifies, and says that the erasure happened.
    let verification = verify_cli(&url, dir.path());
    assert!(
        verification["rows_checked"].as_i64() > Some(3),
        "{verification:#}"
    );
    assert_eq!(
        count(
            &owner,
            &format!(
                "select count(*) from audit_log where action = 'user.erased' and entity_id = '{customer}'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &owner,
            "select count(*) from ultracore_lifecycle.data_lifecycle_log where operation = 'user_erased'"
        )
        .await,
        1
    );

    // The session is over and the password no longer works.
    let (_, me) = gw.gql(Some(&token), "{ me { id } }", json!({})).await;
    assert!(me["errors"].is_array(), "the old token is refused: {me:#}");
    let (_, again) = gw
        .gql(
            None,
            LOGIN_DOCUMENT,
            json!({ "input": { "tenant": A, "username": "customer", "password": PASSWORD } }),
        )
        .await;
    assert!(again["data"]["login"].is_null(), "{again:#}");

    // The other tenant's user of the same name is untouched.
    assert_eq!(
        count(
            &owner,
            &format!(
                "select count(*) from users where user_id = '{}' and erased_at is null and username = 'customer'",
                fixture.b.user("customer")
            )
        )
        .await,
        1
    );
}

/// Appends `n` entries to `tenant`'s chain through the app's writer.
async fn append(owner: &DatabaseConnection, tenant: Uuid, n: usize) {
    for i in 0..n {
        let txn = begin_tenant_transaction(owner, TenantScope::tenant(tenant), Access::ReadWrite, 10_000)
            .await
            .expect("tenant transaction");
        audit::record(
            &txn,
            tenant,
            AuditEntry {
                action: format!("test.entry.{i}"),
                entity_type: "test".into(),
                new_values: Some(json!({ "i": i, "note": "line\nbreak \"quoted\"" })),
                ip_address: Some("203.0.113.5".into()),
                user_agent: Some("tests".into()),
                ..AuditEntry::default()
            },
        )
        .await
        .expect("append");
        txn.commit().await.expect("commit");
    }
}

/// Registers tenant "acme" without the audit entry `tenant create` writes, so that its
/// chain holds exactly what each test writes.
async fn acme(owner: &DatabaseConnection) -> Uuid {
    let id = Uuid::now_v7();
    sql::exec(
        owner,
        &format!("insert into tenants (tenant_id, slug, name) values ('{id}', '{A}', 'Acme Bank')"),
    )
    .await;
    id
}

fn hex_bytes(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex string")).expect("hex")
}

/// Checks an export the way an archive without our code would: SHA-256 over each row's
/// previous hash and canonical text, linked row to row. Returns (rows, last hash).
fn check_export(text: &str) -> (usize, String, Value) {
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let header = &lines[0];
    assert_eq!(header["format"], "ultracore.audit.export.v2");
    let mut prev = hex_bytes(&header["starts_after_hash"]);
    let rows = &lines[1..lines.len() - 1];
    for row in rows {
        assert_eq!(
            hex_bytes(&row["prev_hash"]),
            prev,
            "row {} links to the previous one",
            row["chain_seq"]
        );
        let mut hasher = Sha256::new();
        hasher.update(&prev);
        hasher.update(row["canonical"].as_str().expect("canonical").as_bytes());
        let hash = hasher.finalize().to_vec();
        assert_eq!(
            hash,
            hex_bytes(&row["row_hash"]),
            "row {} hashes to its row_hash",
            row["chain_seq"]
        );
        prev = hash;
    }
    (
        rows.len(),
        hex::encode(prev),
        lines[lines.len() - 1]["head"].clone(),
    )
}

#[tokio::test]
async fn audit_export_lets_an_archive_check_the_chain_with_sha256_alone() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let tenant = acme(&owner).await;
    append(&owner, tenant, 7).await;

    let dir = TempDir::new("ultracore-export");
    let url = db.owner_url();
    let file = dir.path().join("acme-audit.jsonl");
    let out = cli::run(cli::ultracore_with_database(&url, dir.path()).args([
        "audit",
        "export",
        "--tenant",
        A,
        "--out",
        file.to_str().expect("utf-8 path"),
    ]));
    assert!(out.status.success(), "{}", cli::describe(&out));
    assert!(
        !dir.path().join("acme-audit.partial").exists(),
        "the partial file was renamed"
    );

    let text = std::fs::read_to_string(&file).expect("export written");
    let (rows, last_hash, head) = check_export(&text);
    assert_eq!(rows, 7);
    let head: ChainHead = serde_json::from_value(head).expect("the last line is a chain head");
    assert_eq!(head.row_hash, last_hash);
    let printed =
        cli::run(cli::ultracore_with_database(&url, dir.path()).args(["audit", "head", "--tenant", A]));
    let current: ChainHead = serde_json::from_slice(&printed.stdout).expect("audit head");
    assert_eq!(head, current, "the export ends at the chain head");

    // A forged row in the file is caught by the same check.
    let forged = text.replacen("test.entry.3", "test.entry.X", 2);
    let caught = std::panic::catch_unwind(|| check_export(&forged));
    assert!(caught.is_err(), "an edited export no longer checks");
}

/// Writes `n` chain rows of `tenant` dated `day` directly into the log, the way rows
/// written that month would be, continuing the chain from its recorded head. Triggers are
/// off (replica mode) because the chain trigger rightly refuses to back-date.
async fn backdate_rows(owner: &DatabaseConnection, tenant: Uuid, day: &str, n: i32) {
    let txn = owner.begin().await.expect("begin");
    txn.execute_unprepared("set local session_replication_role = replica")
        .await
        .expect("replica");
    txn.execute_unprepared(&format!(
        "do $$
         declare
             r audit_log;
             h ultracore_lifecycle.audit_chain_heads;
         begin
             insert into ultracore_lifecycle.audit_chain_heads values
                 ('{tenant}', 0, audit_chain_genesis('{tenant}'), '-infinity') on conflict do nothing;
             for i in 1..{n} loop
                 select * into h from ultracore_lifecycle.audit_chain_heads where tenant_id = '{tenant}';
                 r := null;
                 r.audit_id := gen_random_uuid();
                 r.tenant_id := '{tenant}';
                 r.action := 'test.old';
                 r.entity_type := 'test';
                 r.new_values := jsonb_build_object('i', i);
                 r.\"timestamp\" := '{day}'::timestamptz + make_interval(mins => i);
                 r.chain_seq := h.chain_seq + 1;
                 r.prev_hash := h.row_hash;
                 r.pii_salt := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
                 r.row_hash := audit_log_row_hash(r);
                 insert into audit_log select r.*;
                 update ultracore_lifecycle.audit_chain_heads
                    set chain_seq = r.chain_seq, row_hash = r.row_hash, \"timestamp\" = r.\"timestamp\"
                  where tenant_id = '{tenant}';
             end loop;
             insert into security_events (tenant_id, event_type, event_category, \"timestamp\")
             select '{tenant}', 'test_old', 'authentication', '{day}'::timestamptz + make_interval(mins => g)
               from generate_series(1, {n}) g;
         end $$"
    ))
    .await
    .expect("back-dated rows");
    txn.commit().await.expect("commit");
}

fn lifecycle(url: &str, dir: &Path, args: &[&str]) -> Value {
    let out = cli::run(cli::ultracore_with_database(url, dir).arg("lifecycle").args(args));
    assert!(out.status.success(), "{}", cli::describe(&out));
    serde_json::from_slice(&out.stdout).expect("lifecycle prints JSON")
}

#[tokio::test]
async fn retention_drops_only_expired_partitions_records_each_drop_and_the_chain_verifies_from_its_anchor() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let tenant = acme(&owner).await;
    let dir = TempDir::new("ultracore-retention");
    let url = db.owner_url();

    let prepared = lifecycle(
        &url,
        dir.path(),
        &["prepare", "--from", "2024-01-01", "--to", "2024-02-29"],
    );
    // The months stay contiguous: every month from 2024-01 up to the first existing one
    // is created, each once.
    let created: Vec<&str> = prepared["created"]
        .as_array()
        .expect("created")
        .iter()
        .map(|n| n.as_str().expect("name"))
        .collect();
    for month in ["p2024_01", "p2024_02", "p2025_06"] {
        for log in ["security_events", "audit_log"] {
            let name = format!("{log}_{month}");
            assert_eq!(
                created.iter().filter(|c| **c == name).count(),
                1,
                "{name}: {created:?}"
            );
        }
    }
    assert!(!created.iter().any(|c| c.contains("2023")), "{created:?}");
    backdate_rows(&owner, tenant, "2024-01-10", 4).await;
    backdate_rows(&owner, tenant, "2024-02-10", 3).await;
    append(&owner, tenant, 2).await;
    let head_before: ChainHead = serde_json::from_slice(
        &cli::run(cli::ultracore_with_database(&url, dir.path()).args(["audit", "head", "--tenant", A]))
            .stdout,
    )
    .expect("head");
    assert_eq!(head_before.chain_seq, 9);

    // Nothing is deleted any other way, not even by the owner.
    let txn = owner.begin().await.expect("begin");
    sql::set_tenant_setting(&txn, &tenant.to_string()).await;
    for statement in [
        "delete from security_events",
        "update security_events set description = 'x'",
        "truncate security_events",
        "truncate ultracore_partitions.security_events_p2024_01",
        "truncate ultracore_partitions.audit_log_p2024_01",
        "delete from ultracore_partitions.audit_log_p2024_01",
    ] {
        txn.execute_unprepared("savepoint s").await.expect("savepoint");
        let err = txn.execute_unprepared(statement).await;
        expect_sqlstate(err, "42501", statement);
        txn.execute_unprepared("rollback to savepoint s")
            .await
            .expect("rollback to savepoint");
    }
    txn.rollback().await.expect("rollback");

    let dry = lifecycle(
        &url,
        dir.path(),
        &[
            "run",
            "--dry-run",
            "--security-events-days",
            "30",
            "--audit-log-days",
            "30",
        ],
    );
    // The months between the back-dated ones and this month are empty but expired too.
    let with_rows = |report: &Value| -> Vec<(String, i64)> {
        report["dropped"]
            .as_array()
            .expect("dropped")
            .iter()
            .map(|d| {
                (
                    d["partition"].as_str().expect("name").to_string(),
                    d["rows"].as_i64().expect("rows"),
                )
            })
            .filter(|(_, rows)| *rows > 0)
            .collect()
    };
    assert_eq!(with_rows(&dry).len(), 4, "{dry:#}");
    assert_eq!(
        count(&owner, "select count(*) from audit_log").await,
        9,
        "a dry run drops nothing"
    );

    let report = lifecycle(
        &url,
        dir.path(),
        &["run", "--security-events-days", "30", "--audit-log-days", "30"],
    );
    assert_eq!(
        with_rows(&report),
        vec![
            ("security_events_p2024_01".to_string(), 4),
            ("security_events_p2024_02".to_string(), 3),
            ("audit_log_p2024_01".to_string(), 4),
            ("audit_log_p2024_02".to_string(), 3),
        ]
    );
    assert_eq!(
        count(
            &owner,
            "select count(*) from security_events where event_type = 'test_old'"
        )
        .await,
        0
    );
    // Each drop is in the lifecycle log and in the tenant's own chain.
    assert_eq!(
        count(
            &owner,
            "select count(*) from ultracore_lifecycle.data_lifecycle_log \
              where operation = 'partition_dropped' and (details->>'rows')::bigint > 0"
        )
        .await,
        4
    );
    // Every timestamp still has a partition: the catch-all before the months now starts
    // where the dropped months ended, and an old row lands there.
    assert_eq!(
        sql::scalar(
            &owner,
            "select (select first_month from ultracore_month_span('security_events')) \
                    = date_trunc('month', (now() - interval '30 days') at time zone 'UTC') at time zone 'UTC'"
        )
        .await
        .as_deref(),
        Some("true")
    );
    sql::exec(
        &owner,
        &format!(
            "insert into security_events (tenant_id, event_type, event_category, \"timestamp\") \
             values ('{tenant}', 'test_late', 'authentication', '2024-01-15')"
        ),
    )
    .await;
    assert_eq!(
        count(
            &owner,
            "select count(*) from ultracore_partitions.security_events_before where event_type = 'test_late'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &owner,
            "select count(*) from audit_log where action = 'retention.partition_dropped'"
        )
        .await,
        4
    );
    // The chain now starts after its anchor (row 7, the last dropped) and verifies,
    // including against the head exported before the drop.
    assert_eq!(
        sql::scalar(
            &owner,
            &format!("select chain_seq::text from ultracore_lifecycle.audit_chain_anchors where tenant_id = '{tenant}'")
        )
        .await
        .as_deref(),
        Some("7")
    );
    let verification = verify_cli(&url, dir.path());
    assert_eq!(
        verification["rows_checked"], 6,
        "rows 8 and 9 and the four drop entries: {verification:#}"
    );
    let head_file = dir.path().join("head.json");
    std::fs::write(&head_file, serde_json::to_vec(&head_before).expect("json")).expect("write head");
    let out = cli::run(cli::ultracore_with_database(&url, dir.path()).args([
        "audit",
        "verify",
        "--tenant",
        A,
        "--head",
        head_file.to_str().expect("path"),
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", cli::describe(&out));

    // The export starts at the anchor and still checks.
    let out =
        cli::run(cli::ultracore_with_database(&url, dir.path()).args(["audit", "export", "--tenant", A]));
    assert!(out.status.success(), "{}", cli::describe(&out));
    let (rows, _, _) = check_export(&String::from_utf8(out.stdout).expect("utf-8"));
    assert_eq!(rows, 6);

    // The current month and the catch-alls stay; status lists them.
    let status = lifecycle(&url, dir.path(), &["status"]);
    let names: Vec<&str> = status
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["partition"].as_str().expect("name"))
        .collect();
    assert!(
        [
            "audit_log_before",
            "audit_log_after",
            "security_events_before",
            "security_events_after"
        ]
        .iter()
        .all(|n| names.contains(n)),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("2024")), "{names:?}");
}

#[tokio::test]
async fn an_erasure_can_only_blank_personal_fields_never_what_the_chain_covers() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let tenant = acme(&owner).await;
    append(&owner, tenant, 2).await;

    for (what, update, flag) in [
        (
            "a change of what the chain covers",
            "update audit_log a set action = 'forged', pii_digests = audit_log_pii_digests(a), \
                    pii_salt = null, erased_at = now() where chain_seq = 1",
            true,
        ),
        (
            "digests other than the ones the hash was computed with",
            "update audit_log set pii_digests = '{\"ip_address\": \"00\"}'::jsonb, pii_salt = null, \
                    erased_at = now() where chain_seq = 1",
            true,
        ),
        (
            "an erasure outside ultracore_erase_user",
            "update audit_log a set pii_digests = audit_log_pii_digests(a), pii_salt = null, \
                    erased_at = now(), ip_address = null where chain_seq = 1",
            false,
        ),
    ] {
        let txn = owner.begin().await.expect("begin");
        sql::set_tenant_setting(&txn, &tenant.to_string()).await;
        if flag {
            sql::exec(&txn, "select set_config('ultracore.erasure', 'on', true)").await;
        }
        expect_sqlstate(txn.execute_unprepared(update).await, "42501", what);
        txn.rollback().await.expect("rollback");
    }

    // The real erasure of a row keeps the chain whole.
    let txn = owner.begin().await.expect("begin");
    sql::set_tenant_setting(&txn, &tenant.to_string()).await;
    sql::exec(&txn, "select set_config('ultracore.erasure', 'on', true)").await;
    sql::exec(
        &txn,
        "update audit_log a set pii_digests = audit_log_pii_digests(a), pii_salt = null, erased_at = now(), \
                ip_address = null, user_agent = null, new_values = '{\"erased\": true}' where chain_seq = 1",
    )
    .await;
    let verification = audit::verify_chain(&txn, tenant, None).await.expect("verify");
    assert!(verification.is_intact(), "{verification:?}");
    txn.rollback().await.expect("rollback");
}

#[tokio::test]
async fn chains_written_before_0021_are_checked_and_resealed_and_0021_rolls_back_to_v1() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    // 0023 and 0022 first, then 0021.
    migration::Migrator::down(&owner, Some(3))
        .await
        .expect("back to 0020");
    let tenant = acme(&owner).await;
    append(&owner, tenant, 5).await;
    sql::exec(
        &owner,
        &format!(
            "insert into security_events (tenant_id, event_type, event_category, \"timestamp\") \
             values ('{tenant}', 'old', 'authentication', '2024-03-05')"
        ),
    )
    .await;

    migration::Migrator::up(&owner, None)
        .await
        .expect("0021 on existing rows");
    let txn = begin_tenant_transaction(&owner, TenantScope::tenant(tenant), Access::ReadOnly, 0)
        .await
        .expect("txn");
    let verification = audit::verify_chain(&txn, tenant, None).await.expect("verify");
    txn.commit().await.expect("commit");
    assert!(verification.is_intact(), "{verification:?}");
    assert_eq!(verification.rows_checked, 5);
    assert_eq!(
        count(
            &owner,
            "select count(*) from ultracore_lifecycle.data_lifecycle_log \
              where operation = 'chain_resealed' and details->>'v1_head_seq' = '5'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &owner,
            "select count(*) from ultracore_partitions.security_events_p2024_03"
        )
        .await,
        1,
        "the old event sits in its month's partition"
    );
    // New rows continue the resealed chain.
    append(&owner, tenant, 1).await;

    migration::Migrator::down(&owner, Some(3))
        .await
        .expect("0023, 0022 and 0021 roll back");
    let verification = audit::verify_chain(&owner, tenant, None)
        .await
        .expect("v1 verify");
    assert!(verification.is_intact(), "{verification:?}");
    assert_eq!(verification.rows_checked, 6);
    assert_eq!(count(&owner, "select count(*) from security_events").await, 1);
    migration::Migrator::up(&owner, None)
        .await
        .expect("and forward again");
}
