//! Threat intelligence: `ultracore intel import` of CSV, JSON and STIX 2.1 files into a
//! tenant or the global scope, with exact counts and every skipped record reported, and
//! `api::intel::matches`, which the risk engine calls inside a tenant transaction.
//!
//! Imports run the real binary as the owner (a superuser here, as in the embedded
//! default); what a tenant then sees is read as `ultracore_app` in that tenant's
//! transaction, under RLS, as the gateway reads it.

mod support;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use api::db::{Access, TenantScope, begin_tenant_transaction};
use api::intel::{MatchedOn, matches};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value as Json, json};
use support::cli::{describe, ultracore_with_database};
use support::fixture::tenant_txn;
use support::sql::{self, count};
use support::{TempDir, TestDb};
use uuid::Uuid;

/// Exit code of an import that skipped some records.
const EXIT_SKIPPED: i32 = 5;

const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct World {
    db: TestDb,
    owner: DatabaseConnection,
    acme: Uuid,
    globex: Uuid,
    dir: TempDir,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let acme = api::domain::tenants::create_tenant(&owner, "acme", "Acme Bank")
        .await
        .expect("create acme");
    let globex = api::domain::tenants::create_tenant(&owner, "globex", "Globex Finance")
        .await
        .expect("create globex");
    World {
        db,
        owner,
        acme,
        globex,
        dir: TempDir::new("ultracore-intel"),
    }
}

impl World {
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write the test file");
        path
    }

    /// `ultracore intel import <args>` as the owner.
    async fn import(&self, args: &[&str]) -> Output {
        run_import(&self.db.owner_url(), self.dir.path(), args).await
    }

    /// Rows of one scope (None: global), read as the owner, whom RLS does not bind.
    async fn rows(&self, tenant: Option<Uuid>) -> i64 {
        let scope = tenant.map_or("tenant_id is null".to_string(), |t| format!("tenant_id = '{t}'"));
        count(
            &self.owner,
            &format!("select count(*) from threat_intelligence where {scope}"),
        )
        .await
    }

    /// (type, value) of every indicator `tenant` sees through the gateway's role.
    async fn visible_to(&self, tenant: Uuid) -> Vec<(String, String)> {
        let app = self.db.app().await;
        let txn = begin_tenant_transaction(&app, TenantScope::tenant(tenant), Access::ReadOnly, 30_000)
            .await
            .expect("a tenant transaction as ultracore_app");
        let rows = txn
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "select indicator_type, indicator_value from threat_intelligence order by 1, 2",
            ))
            .await
            .expect("read threat_intelligence");
        txn.commit().await.expect("commit");
        rows.iter()
            .map(|r| {
                (
                    r.try_get("", "indicator_type").expect("type"),
                    r.try_get("", "indicator_value").expect("value"),
                )
            })
            .collect()
    }

    async fn audit_entries(&self, tenant: Uuid) -> Vec<Json> {
        self.owner
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select new_values from audit_log where tenant_id = $1 and action = 'intel.import' \
                  order by chain_seq",
                [tenant.into()],
            ))
            .await
            .expect("read audit_log")
            .iter()
            .map(|r| r.try_get("", "new_values").expect("new_values"))
            .collect()
    }
}

async fn run_import(url: &str, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = ultracore_with_database(url, dir);
    cmd.args(["intel", "import"]).args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run ultracore intel import"))
        .await
        .expect("the CLI task")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rest of the summary line `key: …`.
fn line(out: &Output, key: &str) -> String {
    let prefix = format!("{key}: ");
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("no {key:?} line\n{}", describe(out)))
}

/// The reason lines under `unsupported:` or `invalid:`, as (count, reason).
fn reasons(out: &Output, kind: &str) -> Vec<(usize, String)> {
    let text = stdout(out);
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&format!("{kind}: ")));
    lines.next();
    lines
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let (n, reason) = l.trim().split_once("  ").expect("count and reason");
            (n.parse().expect("a count"), reason.trim().to_string())
        })
        .collect()
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
}

const CLEAN_CSV: &str = "type,value,severity,confidence,threat_type,description,expires_at,source\n\
ip,198.51.100.7,high,90,botnet,\"C2, seen twice\",2031-01-01T00:00:00Z,feed-a\n\
cidr,203.0.113.9/24,medium,,scanner,,,\n\
domain,Evil.Example.,critical,80,phishing,,,\n\
email,Phisher@Bad.Example,low,,,,,\n\
sha256,E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855,,,,,,\n";

fn clean_json() -> String {
    json!([
        {"type": "domain", "value": "evil.example", "severity": "high"},
        {"type": "ip", "value": "2001:db8::/32", "confidence": 55.5},
        {"type": "email", "value": "ops@evil.example", "expires_at": "2031-06-01"}
    ])
    .to_string()
}

fn bundle(objects: Json) -> String {
    json!({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": objects})
        .to_string()
}

fn clean_stix() -> String {
    bundle(json!([
        {"type": "identity", "spec_version": "2.1", "id": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
         "name": "Example Feed", "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z"},
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
         "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
         "created": "2024-01-02T00:00:00Z", "modified": "2024-01-02T00:00:00Z",
         "name": "Botnet C2", "indicator_types": ["malicious-activity"], "labels": ["botnet"],
         "pattern_type": "stix", "valid_from": "2024-01-02T00:00:00Z", "valid_until": "2031-01-01T00:00:00Z",
         "pattern": "[ipv4-addr:value = '192.0.2.99'] OR [domain-name:value = 'c2.example']", "confidence": 75},
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--1f6a0e5d-8b5c-4c36-9bb2-9d3f6c2bd8a1",
         "created": "2024-01-03T00:00:00Z", "modified": "2024-01-03T00:00:00Z",
         "pattern_type": "stix", "valid_from": "2024-01-03T00:00:00Z",
         "pattern": format!("[file:hashes.'SHA-256' = '{}']", "ab".repeat(32))},
        {"type": "relationship", "spec_version": "2.1", "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad",
         "relationship_type": "indicates", "source_ref": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
         "target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"}
    ]))
}

#[tokio::test]
async fn csv_json_and_stix_files_import_into_a_tenant_with_exact_counts() {
    let w = world().await;
    let csv = w.file("feed.csv", CLEAN_CSV);
    let out = w.import(&[csv.to_str().unwrap(), "--tenant", "acme"]).await;
    assert_exit(&out, 0);
    assert_eq!(line(&out, "records"), "5");
    assert_eq!(line(&out, "imported"), "5 (inserted 5, updated 0)");
    assert_eq!(line(&out, "unsupported"), "0");
    assert_eq!(line(&out, "invalid"), "0");
    assert_eq!(w.rows(Some(w.acme)).await, 5);

    // The domain is in the CSV already: one update, two inserts.
    let json_file = w.file("feed.json", &clean_json());
    let out = w.import(&[json_file.to_str().unwrap(), "--tenant", "acme"]).await;
    assert_exit(&out, 0);
    assert_eq!(line(&out, "records"), "3");
    assert_eq!(line(&out, "imported"), "3 (inserted 2, updated 1)");
    assert_eq!(w.rows(Some(w.acme)).await, 7);

    // Two indicators from one OR pattern, one hash; the identity and relationship are no
    // indicators and are listed apart.
    let stix = w.file("bundle.json", &clean_stix());
    let out = w.import(&[stix.to_str().unwrap(), "--tenant", "acme"]).await;
    assert_exit(&out, 0);
    assert!(
        line(&out, "file").contains("(stix, sha256 "),
        "{}",
        describe(&out)
    );
    assert_eq!(line(&out, "records"), "2");
    assert_eq!(line(&out, "imported"), "3 (inserted 3, updated 0)");
    assert_eq!(
        line(&out, "other STIX objects (not indicators, not imported)"),
        "identity 1, relationship 1"
    );
    assert_eq!(w.rows(Some(w.acme)).await, 10);
    assert_eq!(w.rows(Some(w.globex)).await, 0);
    assert_eq!(w.rows(None).await, 0);

    let stored = sql::strings(
        &w.owner,
        &format!(
            "select concat_ws('|', indicator_type, indicator_value, severity, coalesce(confidence::text, '-'), \
                    coalesce(threat_type, '-'), source, \
                    coalesce((expires_at at time zone 'UTC')::date::text, '-'), is_active::text) as v \
               from threat_intelligence where tenant_id = '{}' order by indicator_type, indicator_value",
            w.acme
        ),
    )
    .await;
    let abab = "ab".repeat(32);
    assert_eq!(
        stored,
        vec![
            "domain|c2.example|medium|75.00|botnet|Example Feed|2031-01-01|true".to_string(),
            "domain|evil.example|high|80.00|phishing|import|-|true".into(),
            "email|ops@evil.example|medium|-|-|import|2031-06-01|true".into(),
            "email|phisher@bad.example|low|-|-|import|-|true".into(),
            format!("hash|{abab}|medium|-|-|stix|-|true"),
            format!("hash|{SHA256}|medium|-|-|import|-|true"),
            "ip|192.0.2.99|medium|75.00|botnet|Example Feed|2031-01-01|true".into(),
            "ip|198.51.100.7|high|90.00|botnet|feed-a|2031-01-01|true".into(),
            "ip|2001:db8::/32|medium|55.50|-|import|-|true".into(),
            "ip|203.0.113.0/24|medium|-|scanner|import|-|true".into(),
        ],
        "values canonical (host bits cleared, lowercase, no trailing dot); a re-import keeps what \
         the file leaves out (the domain's confidence and threat type)"
    );
    assert_eq!(
        sql::scalar(
            &w.owner,
            "select metadata->>'stix_id' from threat_intelligence where indicator_value = '192.0.2.99'"
        )
        .await
        .as_deref(),
        Some("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")
    );

    // One audit entry per batch, in acme's chain, naming the file and its counts.
    let audit = w.audit_entries(w.acme).await;
    assert_eq!(audit.len(), 3, "{audit:#?}");
    assert_eq!(audit[0]["file"], "feed.csv");
    assert_eq!(audit[0]["format"], "csv");
    assert_eq!(
        (audit[1]["inserted"].as_u64(), audit[1]["updated"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(audit[2]["format"], "stix");
    assert_eq!(audit[2]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(w.audit_entries(w.globex).await.len(), 0);
}

#[tokio::test]
async fn large_files_go_in_batches_each_with_its_audit_entry() {
    let w = world().await;
    let mut csv = String::from("type,value\n");
    for i in 0..2_500u32 {
        csv.push_str(&format!("ip,10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255));
    }
    let path = w.file("big.csv", &csv);
    let out = w.import(&[path.to_str().unwrap(), "--tenant", "acme"]).await;
    assert_exit(&out, 0);
    assert_eq!(line(&out, "imported"), "2500 (inserted 2500, updated 0)");
    let audit = w.audit_entries(w.acme).await;
    let sizes: Vec<_> = audit
        .iter()
        .map(|a| a["indicators"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
}

#[tokio::test]
async fn stix_patterns_we_do_not_import_are_counted_with_reasons_and_exit_5() {
    let w = world().await;
    let indicator = |n: u32, pattern: &str| {
        json!({"type": "indicator", "spec_version": "2.1", "id": format!("indicator--00000000-0000-4000-8000-00000000000{n}"),
               "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z",
               "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z", "pattern": pattern})
    };
    let mut snort = indicator(7, "alert tcp any any -> any any");
    snort["pattern_type"] = json!("snort");
    let file = w.file(
        "mixed.json",
        &bundle(json!([
            indicator(
                1,
                "[ipv4-addr:value = '198.51.100.1'] OR [url:value MATCHES '^https?://evil']"
            ),
            indicator(
                2,
                "[ipv4-addr:value = '198.51.100.2'] FOLLOWEDBY [domain-name:value = 'next.example']"
            ),
            indicator(
                3,
                "[ipv6-addr:value = '2001:db8::1'] REPEATS 3 TIMES WITHIN 60 SECONDS"
            ),
            indicator(4, "[url:value = 'http://evil.example/login']"),
            indicator(
                5,
                "[domain-name:value LIKE '%.evil.example' AND email-addr:value = 'a@evil.example']"
            ),
            indicator(6, "[ipv4-addr:value = '198.51.100.300']"),
            snort,
            indicator(8, "[ipv4-addr:value = '198.51.100.9'"),
        ])),
    );
    let out = w.import(&[file.to_str().unwrap(), "--tenant", "acme"]).await;
    assert_exit(&out, EXIT_SKIPPED);
    assert_eq!(line(&out, "records"), "8");
    assert_eq!(line(&out, "imported"), "2 (inserted 2, updated 0)");
    assert_eq!(line(&out, "unsupported"), "7");
    assert_eq!(
        reasons(&out, "unsupported"),
        vec![
            (2, "FOLLOWEDBY".to_string()),
            (1, "object path url:value".into()),
            (1, "operator LIKE".into()),
            (1, "operator MATCHES".into()),
            (1, "pattern_type snort".into()),
            (1, "qualifier WITHIN".into()),
        ]
    );
    assert_eq!(line(&out, "invalid"), "2");
    assert_eq!(
        reasons(&out, "invalid"),
        vec![(1, "invalid ip".to_string()), (1, "pattern syntax".into())]
    );
    let text = stdout(&out);
    assert!(text.contains("\nskipped (first 9 of 9):\n"), "{}", describe(&out));
    for example in [
        "  object 1 (indicator--00000000-0000-4000-8000-000000000001) comparison 2: unsupported: operator MATCHES: \
         url:value MATCHES '^https?://evil'",
        "  object 2 (indicator--00000000-0000-4000-8000-000000000002) comparison 1: unsupported: FOLLOWEDBY: ",
        "  object 3 (indicator--00000000-0000-4000-8000-000000000003): unsupported: qualifier WITHIN: ",
        "  object 7 (indicator--00000000-0000-4000-8000-000000000007): unsupported: pattern_type snort: ",
        "  object 8 (indicator--00000000-0000-4000-8000-000000000008): invalid: pattern syntax: at character 34",
    ] {
        assert!(text.contains(example), "{example:?} missing\n{}", describe(&out));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: 9 record(s) were skipped"),
        "{}",
        describe(&out)
    );
    // What could be imported was: the address of 1 and the email of 5.
    assert_eq!(
        w.visible_to(w.acme).await,
        vec![
            ("email".to_string(), "a@evil.example".to_string()),
            ("ip".into(), "198.51.100.1".into())
        ]
    );
}

#[tokio::test]
async fn a_second_import_updates_instead_of_duplicating() {
    let w = world().await;
    let first = w.file("feed.csv", CLEAN_CSV);
    assert_exit(&w.import(&[first.to_str().unwrap(), "--tenant", "acme"]).await, 0);
    let before = sql::strings(
        &w.owner,
        "select concat_ws('|', first_seen, last_seen) as v from threat_intelligence \
          where indicator_value = '198.51.100.7'",
    )
    .await;

    // The same indicators spelled otherwise, one now critical, one revoked.
    let second = w.file(
        "feed-again.csv",
        "type,value,severity,is_active\n\
         ip,198.51.100.7/32,critical,true\n\
         ip,203.0.113.200/24,,false\n\
         domain,EVIL.example,,\n\
         email,phisher@bad.example,,\n\
         hash,e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,,\n",
    );
    let out = w.import(&[second.to_str().unwrap(), "--tenant", "acme"]).await;
    assert_exit(&out, 0);
    assert_eq!(line(&out, "imported"), "5 (inserted 0, updated 5)");
    assert_eq!(w.rows(Some(w.acme)).await, 5, "no duplicates");
    let after = sql::strings(
        &w.owner,
        "select concat_ws('|', first_seen, last_seen) as v from threat_intelligence \
          where indicator_value = '198.51.100.7'",
    )
    .await;
    let (first_before, last_before) = before[0].split_once('|').expect("two stamps");
    let (first_after, last_after) = after[0].split_once('|').expect("two stamps");
    assert_eq!(first_after, first_before, "first_seen is kept");
    assert!(
        last_after > last_before,
        "last_seen moves: {last_before} -> {last_after}"
    );
    assert_eq!(
        sql::strings(
            &w.owner,
            "select concat_ws('|', indicator_value, severity, is_active::text, coalesce(threat_type, '-')) as v \
               from threat_intelligence where indicator_type = 'ip' order by 1"
        )
        .await,
        vec![
            "198.51.100.7|critical|true|botnet".to_string(),
            "203.0.113.0/24|medium|false|scanner".into()
        ]
    );
    // And once more, unchanged: still five rows.
    let out = w.import(&[second.to_str().unwrap(), "--tenant", "acme"]).await;
    assert_eq!(line(&out, "imported"), "5 (inserted 0, updated 5)");
    assert_eq!(w.rows(Some(w.acme)).await, 5);
}

#[tokio::test]
async fn global_indicators_reach_every_tenant_and_a_tenant_import_only_its_own() {
    let w = world().await;
    let global = w.file(
        "global.csv",
        "type,value\nip,192.0.2.0/24\ndomain,global-bad.example\n",
    );
    let out = w.import(&[global.to_str().unwrap(), "--global"]).await;
    assert_exit(&out, 0);
    assert_eq!(line(&out, "scope"), "global");
    assert_eq!(line(&out, "imported"), "2 (inserted 2, updated 0)");
    let json_file = w.file("global.json", &clean_json());
    let out = w.import(&[json_file.to_str().unwrap(), "--global"]).await;
    assert_exit(&out, 0);
    assert_eq!(w.rows(None).await, 5);
    let stix = w.file("bundle.stix", &clean_stix());
    let out = w.import(&[stix.to_str().unwrap(), "--global"]).await;
    assert_exit(&out, 0);
    assert_eq!(line(&out, "imported"), "3 (inserted 3, updated 0)");
    assert_eq!(w.rows(None).await, 8);

    let acme_only = w.file("acme.csv", "type,value\ndomain,acme-only.example\n");
    assert_exit(
        &w.import(&[acme_only.to_str().unwrap(), "--tenant", "acme"]).await,
        0,
    );

    let globex_sees = w.visible_to(w.globex).await;
    assert_eq!(globex_sees.len(), 8, "the global indicators: {globex_sees:?}");
    assert!(!globex_sees.iter().any(|(_, v)| v == "acme-only.example"));
    let acme_sees = w.visible_to(w.acme).await;
    assert_eq!(acme_sees.len(), 9, "global plus its own: {acme_sees:?}");
    assert!(acme_sees.iter().any(|(_, v)| v == "acme-only.example"));
    assert!(acme_sees.iter().any(|(_, v)| v == "192.0.2.0/24"));

    // A global import is in no tenant's chain; acme's has its own import only.
    assert_eq!(w.audit_entries(w.globex).await.len(), 0);
    assert_eq!(w.audit_entries(w.acme).await.len(), 1);
}

#[tokio::test]
async fn a_global_import_needs_an_owner_that_rls_does_not_bind() {
    let w = world().await;
    let file = w.file("global.csv", "type,value\nip,192.0.2.1\n");
    // ultracore_app may insert into threat_intelligence but is bound by forced RLS, as an
    // owner that is not a superuser is.
    for extra in [None, Some("--dry-run")] {
        let mut args = vec![file.to_str().unwrap(), "--global"];
        args.extend(extra);
        let out = run_import(&w.db.app_url(), w.dir.path(), &args).await;
        assert_exit(&out, 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error:") && stderr.contains("superuser") && stderr.contains("BYPASSRLS"),
            "{}",
            describe(&out)
        );
        assert_eq!(stderr.lines().count(), 1, "{}", describe(&out));
    }
    assert_eq!(w.rows(None).await, 0);
    // The same role can import into a tenant it names: that is a tenant's own write.
    let out = run_import(
        &w.db.app_url(),
        w.dir.path(),
        &[file.to_str().unwrap(), "--tenant", "acme"],
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(w.rows(Some(w.acme)).await, 1);
}

#[tokio::test]
async fn bad_files_and_bad_arguments_exit_1_and_write_nothing() {
    let w = world().await;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                w.file("open.csv", "type,value\nip,\"192.0.2.1\n")
                    .display()
                    .to_string(),
            ],
            "never closed",
        ),
        (
            vec![w.file("broken.json", "[{\"type\": ").display().to_string()],
            "not valid JSON",
        ),
        (
            vec![
                w.file("nocol.csv", "kind,value\nip,192.0.2.1\n")
                    .display()
                    .to_string(),
            ],
            "\"type\" column",
        ),
        (
            vec![w.file("feed.txt", "type,value\n").display().to_string()],
            "--format",
        ),
        (
            vec![
                w.file("list.json", "[]").display().to_string(),
                "--format".into(),
                "stix".into(),
            ],
            "not a STIX bundle",
        ),
        (
            vec![w.dir.path().join("missing.csv").display().to_string()],
            "cannot read",
        ),
    ];
    for (mut args, message) in cases {
        args.extend(["--tenant".to_string(), "acme".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.import(&args).await;
        assert_exit(&out, 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error:") && stderr.contains(message) && stderr.lines().count() == 1,
            "{message:?}\n{}",
            describe(&out)
        );
    }
    let good = w.file("good.csv", "type,value\nip,192.0.2.1\n");
    let out = w
        .import(&[good.to_str().unwrap(), "--tenant", "no-such-tenant"])
        .await;
    assert_exit(&out, 1);
    // Neither or both scopes: a usage error from the argument parser.
    let out = w.import(&[good.to_str().unwrap()]).await;
    assert_exit(&out, 2);
    let out = w
        .import(&[good.to_str().unwrap(), "--tenant", "acme", "--global"])
        .await;
    assert_exit(&out, 2);
    assert_eq!(
        count(&w.owner, "select count(*) from threat_intelligence").await,
        0
    );
}

#[tokio::test]
async fn a_dry_run_counts_and_writes_nothing() {
    let w = world().await;
    let file = w.file(
        "feed.csv",
        "type,value\nip,192.0.2.1\nurl,http://x.example/\nip,192.0.2.1/32\n",
    );
    let out = w
        .import(&[file.to_str().unwrap(), "--tenant", "acme", "--dry-run"])
        .await;
    assert_exit(&out, EXIT_SKIPPED);
    assert_eq!(line(&out, "to import"), "1 (dry run: nothing was written)");
    assert_eq!(
        line(&out, "duplicates"),
        "1 (a later record of the same indicator replaced the earlier)"
    );
    assert_eq!(line(&out, "unsupported"), "1");
    assert_eq!(w.rows(Some(w.acme)).await, 0);
    assert_eq!(w.audit_entries(w.acme).await.len(), 0);
}

#[tokio::test]
async fn values_written_by_sql_are_stored_canonical_and_an_ip_must_be_an_address() {
    let w = world().await;
    let txn = tenant_txn(&w.owner, w.acme).await;
    let refused = txn
        .execute_unprepared(&format!(
            "insert into threat_intelligence (tenant_id, indicator_type, indicator_value) \
             values ('{}', 'ip', 'not-an-address')",
            w.acme
        ))
        .await;
    sql::expect_sqlstate(refused, "22P02", "an ip indicator that is no address");
    drop(txn);
    let txn = tenant_txn(&w.owner, w.acme).await;
    for (kind, value) in [
        ("ip", " 10.1.2.3/8"),
        ("ip", "::ffff:192.0.2.5"),
        ("ip", "2001:DB8::7/128"),
        ("domain", "Evil.Example."),
        ("email", "Someone@Evil.Example"),
    ] {
        sql::exec(
            &txn,
            &format!(
                "insert into threat_intelligence (tenant_id, indicator_type, indicator_value) \
                 values ('{}', '{kind}', '{value}')",
                w.acme
            ),
        )
        .await;
    }
    txn.commit().await.expect("commit");
    assert_eq!(
        w.visible_to(w.acme).await,
        vec![
            ("domain".to_string(), "evil.example".to_string()),
            ("email".into(), "someone@evil.example".into()),
            ("ip".into(), "10.0.0.0/8".into()),
            ("ip".into(), "192.0.2.5".into()),
            ("ip".into(), "2001:db8::7".into()),
        ]
    );
    // A second spelling of a stored indicator is the same row: the key refuses it.
    let txn = tenant_txn(&w.owner, w.acme).await;
    let duplicate = txn
        .execute_unprepared(&format!(
            "insert into threat_intelligence (tenant_id, indicator_type, indicator_value) \
             values ('{}', 'ip', '10.200.0.0/8')",
            w.acme
        ))
        .await;
    sql::expect_sqlstate(duplicate, "23505", "10.200.0.0/8 is 10.0.0.0/8");
}

/// Inserts one indicator into `tenant` (None: global) as the owner.
async fn insert(w: &World, tenant: Option<Uuid>, kind: &str, value: &str, extra: &str) -> Uuid {
    let scope_tenant = tenant.unwrap_or(w.acme);
    let txn = tenant_txn(&w.owner, scope_tenant).await;
    let tenant_sql = tenant.map_or("null".to_string(), |t| format!("'{t}'"));
    let (columns, values) = extra
        .split_once('=')
        .map_or((String::new(), String::new()), |(c, v)| {
            (format!(", {c}"), format!(", {v}"))
        });
    let row = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "insert into threat_intelligence (tenant_id, indicator_type, indicator_value, severity{columns}) \
                 values ({tenant_sql}, '{kind}', '{value}', 'high'{values}) returning intel_id"
            ),
        ))
        .await
        .expect("insert an indicator")
        .expect("a row");
    txn.commit().await.expect("commit");
    row.try_get("", "intel_id").expect("intel_id")
}

async fn matched(
    w: &World,
    tenant: Uuid,
    ip: Option<&str>,
    domain: Option<&str>,
    email: Option<&str>,
) -> Vec<(String, MatchedOn, bool)> {
    let app = w.db.app().await;
    let txn = begin_tenant_transaction(&app, TenantScope::tenant(tenant), Access::ReadOnly, 30_000)
        .await
        .expect("a tenant transaction as ultracore_app");
    let ip: Option<IpAddr> = ip.map(|i| i.parse().expect("an address"));
    let found = matches(&txn, ip, domain, email).await.expect("matches");
    txn.commit().await.expect("commit");
    found
        .into_iter()
        .map(|m| (m.indicator_value, m.matched_on, m.tenant_id.is_none()))
        .collect()
}

#[tokio::test]
async fn matches_finds_networks_parent_domains_emails_and_email_domains_that_are_live() {
    let w = world().await;
    insert(&w, None, "ip", "203.0.113.0/24", "").await;
    insert(&w, Some(w.acme), "ip", "198.51.100.7", "").await;
    insert(&w, Some(w.acme), "ip", "2001:db8::/32", "").await;
    insert(&w, Some(w.acme), "domain", "evil.example", "").await;
    insert(&w, None, "email", "alice@phish.example", "").await;
    insert(&w, Some(w.acme), "domain", "bad.example", "").await;
    insert(
        &w,
        Some(w.acme),
        "ip",
        "192.0.2.50",
        "expires_at=now() - interval '1 minute'",
    )
    .await;
    insert(&w, Some(w.acme), "ip", "192.0.2.60", "is_active=false").await;
    insert(
        &w,
        Some(w.acme),
        "ip",
        "192.0.2.61",
        "expires_at=now() + interval '1 day'",
    )
    .await;
    insert(&w, Some(w.globex), "ip", "192.0.2.70", "").await;

    let ip = |v: &str, global: bool| vec![(v.to_string(), MatchedOn::Ip, global)];
    assert_eq!(
        matched(&w, w.acme, Some("203.0.113.77"), None, None).await,
        ip("203.0.113.0/24", true)
    );
    assert_eq!(
        matched(&w, w.acme, Some("::ffff:203.0.113.1"), None, None).await,
        ip("203.0.113.0/24", true),
        "an IPv4-mapped peer address is its IPv4 address"
    );
    assert_eq!(
        matched(&w, w.acme, Some("198.51.100.7"), None, None).await,
        ip("198.51.100.7", false)
    );
    assert_eq!(
        matched(&w, w.acme, Some("198.51.100.8"), None, None).await,
        vec![]
    );
    assert_eq!(
        matched(&w, w.acme, Some("2001:db8:1::5"), None, None).await,
        ip("2001:db8::/32", false)
    );
    assert_eq!(
        matched(&w, w.acme, None, Some("Login.EVIL.example."), None).await,
        vec![("evil.example".to_string(), MatchedOn::Domain, false)]
    );
    assert_eq!(
        matched(&w, w.acme, None, Some("notevil.example"), None).await,
        vec![]
    );
    assert_eq!(
        matched(&w, w.acme, None, None, Some("Alice@Phish.Example")).await,
        vec![("alice@phish.example".to_string(), MatchedOn::Email, true)]
    );
    assert_eq!(
        matched(&w, w.acme, None, None, Some("bob@mail.bad.example")).await,
        vec![("bad.example".to_string(), MatchedOn::EmailDomain, false)]
    );
    assert_eq!(
        matched(&w, w.acme, None, None, Some("bob@evil.example")).await,
        vec![("evil.example".to_string(), MatchedOn::EmailDomain, false)]
    );
    // Several inputs at once: each hit once.
    let all = matched(
        &w,
        w.acme,
        Some("203.0.113.5"),
        Some("x.evil.example"),
        Some("someone@bad.example"),
    )
    .await;
    assert_eq!(all.len(), 3, "{all:?}");

    // Expired and deactivated indicators match nothing; one expiring later still does.
    assert_eq!(matched(&w, w.acme, Some("192.0.2.50"), None, None).await, vec![]);
    assert_eq!(matched(&w, w.acme, Some("192.0.2.60"), None, None).await, vec![]);
    assert_eq!(
        matched(&w, w.acme, Some("192.0.2.61"), None, None).await,
        ip("192.0.2.61", false)
    );
    // Another tenant's indicator is that tenant's alone; the global ones are everyone's.
    assert_eq!(matched(&w, w.acme, Some("192.0.2.70"), None, None).await, vec![]);
    assert_eq!(
        matched(&w, w.globex, Some("192.0.2.70"), None, None).await,
        ip("192.0.2.70", false)
    );
    assert_eq!(
        matched(&w, w.globex, Some("198.51.100.7"), None, None).await,
        vec![]
    );
    assert_eq!(
        matched(&w, w.globex, Some("203.0.113.9"), None, None).await,
        ip("203.0.113.0/24", true)
    );
    assert_eq!(matched(&w, w.acme, None, None, None).await, vec![]);

    // The owner bypasses RLS, yet inside acme's transaction it gets acme's answer, not
    // every tenant's.
    let txn = tenant_txn(&w.owner, w.acme).await;
    let found = matches(&txn, "192.0.2.70".parse().ok(), None, None)
        .await
        .expect("matches");
    assert!(found.is_empty(), "{found:?}");
}

/// Every plan node of an EXPLAIN (FORMAT JSON) document, depth first.
fn plan_nodes(plan: &Json, out: &mut Vec<Json>) {
    if let Some(node) = plan.get("Plan") {
        plan_nodes(node, out);
        return;
    }
    out.push(plan.clone());
    for child in plan.get("Plans").and_then(Json::as_array).into_iter().flatten() {
        plan_nodes(child, out);
    }
}

#[tokio::test]
async fn matching_probes_the_scope_key_at_200k_indicators() {
    let w = world().await;
    // 100,000 global addresses and 100,000 /24 networks of acme, 20,000 domains and
    // 20,000 emails split the same way, then the planner's statistics, as autovacuum
    // would have them.
    let txn = tenant_txn(&w.owner, w.acme).await;
    sql::exec(
        &txn,
        &format!(
            "insert into threat_intelligence (tenant_id, indicator_type, indicator_value, severity) \
             select case when g % 2 = 0 then null else '{}'::uuid end, 'ip', \
                    case when g % 2 = 0 then host(inet '10.0.0.0' + g) \
                         else network(set_masklen(inet '100.64.0.0' + g * 256, 24))::text end, 'medium' \
               from generate_series(1, 200000) as g",
            w.acme
        ),
    )
    .await;
    sql::exec(
        &txn,
        &format!(
            "insert into threat_intelligence (tenant_id, indicator_type, indicator_value) \
             select case when g % 2 = 0 then null else '{}'::uuid end, kind, \
                    case kind when 'domain' then 'd' || g || '.example' else 'u' || g || '@m.example' end \
               from generate_series(1, 20000) as g, (values ('domain'), ('email')) as k(kind)",
            w.acme
        ),
    )
    .await;
    txn.commit().await.expect("commit");
    sql::exec(&w.owner, "analyze threat_intelligence").await;
    assert_eq!(
        count(&w.owner, "select count(*) from threat_intelligence").await,
        240_000
    );

    let app = w.db.app().await;
    let txn = begin_tenant_transaction(&app, TenantScope::tenant(w.acme), Access::ReadOnly, 30_000)
        .await
        .expect("a tenant transaction as ultracore_app");
    let ip: IpAddr = "100.64.3.77".parse().expect("an address");
    let statement =
        api::intel::matching::match_statement(Some(ip), Some("a.d7.example"), Some("u8@m.example"))
            .expect("a statement");
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("explain (format json) {}", statement.sql),
        statement.values.clone().map(|v| v.0).unwrap_or_default(),
    );
    let plan: Json = txn
        .query_one_raw(explain)
        .await
        .expect("explain")
        .expect("a plan")
        .try_get("", "QUERY PLAN")
        .expect("json plan");
    let mut nodes = Vec::new();
    plan_nodes(&plan[0], &mut nodes);
    let scans: Vec<&Json> = nodes
        .iter()
        .filter(|n| n.get("Relation Name").and_then(Json::as_str) == Some("threat_intelligence"))
        .collect();
    assert_eq!(
        scans.len(),
        6,
        "own and global, for ip, domain and email: {plan:#}"
    );
    for scan in &scans {
        assert_ne!(scan["Node Type"], "Seq Scan", "{plan:#}");
        // Each lookup goes to an index by value (the scope key, or the seed's
        // (indicator_type, indicator_value)), never through all rows of a type. A bitmap
        // scan names its index on the child node.
        let index_node = if scan["Node Type"] == "Bitmap Heap Scan" {
            &scan["Plans"][0]
        } else {
            scan
        };
        let condition = index_node["Index Cond"].as_str().unwrap_or_default();
        assert!(
            condition.contains("indicator_value"),
            "an index lookup by value: {index_node:#}"
        );
    }
    let ip_index = scans[0]
        .get("Index Name")
        .or_else(|| scans[0]["Plans"][0].get("Index Name"));
    assert_eq!(
        ip_index.and_then(Json::as_str),
        Some("threat_intelligence_scope_indicator_key"),
        "the tenant's own addresses: probes on (tenant_id, indicator_type, indicator_value)"
    );
    // Through the index, as the gateway's role: the network is found among 200,000.
    let found = matches(&txn, Some(ip), Some("a.d7.example"), Some("u8@m.example"))
        .await
        .expect("matches");
    let values: Vec<&str> = found.iter().map(|m| m.indicator_value.as_str()).collect();
    assert_eq!(values.len(), 3, "{values:?}");
    for expected in ["100.64.3.0/24", "d7.example", "u8@m.example"] {
        assert!(values.contains(&expected), "{expected} in {values:?}");
    }
    txn.commit().await.expect("commit");
}
