//! The audit log's hash chain (migration 0008, api::audit): append-only for everyone,
//! tamper-evident row by row, one unbroken chain per tenant under concurrent writers,
//! hashes independent of session settings, and the `ultracore audit` commands.

mod support;

use std::path::Path;
use std::process::Output;

use api::audit::{self, AuditEntry, ChainHead, Verification};
use api::db::{Access, TenantScope, begin_tenant_transaction};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, IsolationLevel, Statement,
    TransactionTrait,
};
use support::sql::{self, assert_sqlstate, expect_sqlstate};
use support::{TestDb, cli};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Registers a tenant directly as the owner (a superuser, so RLS does not apply), without
/// the `tenant.create` audit row the CLI would add: chains in these tests start empty.
async fn create_tenant(owner: &DatabaseConnection, slug: &str) -> Uuid {
    let row = owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into tenants (slug, name) values ($1, $2) returning tenant_id",
            [slug.into(), format!("Tenant {slug}").into()],
        ))
        .await
        .expect("insert tenant")
        .expect("returning row");
    row.try_get("", "tenant_id").expect("tenant_id")
}

/// The i-th test entry: every column filled, JSON with floats, unicode and nesting, so the
/// canonical encoding is exercised on all of them.
fn entry(i: usize) -> AuditEntry {
    AuditEntry {
        user_id: None,
        action: format!("widget.update.{i}"),
        entity_type: "widget".into(),
        entity_id: Some(Uuid::now_v7()),
        old_values: Some(serde_json::json!({ "n": i as i64 - 1, "ratio": 0.1 })),
        new_values: Some(serde_json::json!({
            "n": i,
            "ratio": 0.1 + i as f64 / 3.0,
            "tiny": 1.5e-7,
            "big": 1e20,
            "name": "héllo wörld ✓",
            "nested": { "list": [1, 2.5, null, "x"] },
        })),
        ip_address: Some(if i.is_multiple_of(2) {
            "203.0.113.7".into()
        } else {
            "2001:db8::1".into()
        }),
        user_agent: Some(format!("tests/audit_chain #{i}")),
    }
}

/// Appends `n` entries one by one (each its own READ COMMITTED autocommit statement) and
/// returns their ids in chain order.
async fn write_chain<C: ConnectionTrait>(conn: &C, tenant: Uuid, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for i in 1..=n {
        ids.push(
            audit::record(conn, tenant, entry(i))
                .await
                .expect("record an audit entry"),
        );
    }
    ids
}

/// A fresh database (dropped with the returned TestDb), its owner's connection, tenant
/// `acme`, and the ids of the `rows` rows of acme's chain the owner wrote, in chain order.
async fn acme_chain(rows: usize) -> (TestDb, DatabaseConnection, Uuid, Vec<Uuid>) {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let tenant = create_tenant(&owner, "acme").await;
    let ids = write_chain(&owner, tenant, rows).await;
    (db, owner, tenant, ids)
}

/// One row of a chain, as stored.
#[derive(Debug, Clone)]
struct ChainRow {
    audit_id: Uuid,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
    recomputed: Vec<u8>,
}

async fn chain_rows<C: ConnectionTrait>(conn: &C, tenant: Uuid) -> Vec<ChainRow> {
    conn.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select audit_id, chain_seq, prev_hash, row_hash, audit_log_row_hash(a) as recomputed \
           from audit_log a where tenant_id = $1 order by chain_seq",
        [tenant.into()],
    ))
    .await
    .expect("read the chain")
    .into_iter()
    .map(|r| ChainRow {
        audit_id: r.try_get("", "audit_id").expect("audit_id"),
        chain_seq: r.try_get("", "chain_seq").expect("chain_seq"),
        prev_hash: r.try_get("", "prev_hash").expect("prev_hash"),
        row_hash: r.try_get("", "row_hash").expect("row_hash"),
        recomputed: r.try_get("", "recomputed").expect("recomputed"),
    })
    .collect()
}

async fn genesis<C: ConnectionTrait>(conn: &C, tenant: Uuid) -> Vec<u8> {
    conn.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select audit_chain_genesis($1) as g",
        [tenant.into()],
    ))
    .await
    .expect("genesis")
    .expect("row")
    .try_get("", "g")
    .expect("bytea")
}

/// Asserts, independently of the SQL verifier, that a chain is positions 1..=n, starts at
/// the tenant's genesis hash, links each prev_hash to the previous row_hash, and stores
/// the hash its contents give.
async fn assert_linked_chain<C: ConnectionTrait>(conn: &C, tenant: Uuid, n: usize) -> Vec<ChainRow> {
    let rows = chain_rows(conn, tenant).await;
    let seqs: Vec<i64> = rows.iter().map(|r| r.chain_seq).collect();
    assert_eq!(
        seqs,
        (1..=n as i64).collect::<Vec<_>>(),
        "chain positions of tenant {tenant}"
    );
    let mut expected_prev = genesis(conn, tenant).await;
    for r in &rows {
        assert_eq!(
            r.prev_hash, expected_prev,
            "prev_hash of chain_seq {}",
            r.chain_seq
        );
        assert_eq!(r.row_hash, r.recomputed, "row_hash of chain_seq {}", r.chain_seq);
        assert_eq!(r.row_hash.len(), 32);
        expected_prev = r.row_hash.clone();
    }
    rows
}

/// Runs the verifier the way `ultracore audit verify` does: in a read-only transaction of
/// the tenant (the verifier reads the chain's anchor and recorded head for that tenant only).
async fn verify(conn: &DatabaseConnection, tenant: Uuid, head: Option<&ChainHead>) -> Verification {
    let txn = tenant_txn(conn, tenant, Access::ReadOnly).await;
    let result = audit::verify_chain(&txn, tenant, head)
        .await
        .expect("run the verifier");
    txn.commit().await.expect("commit");
    result
}

/// Asserts that the verifier's problem mentions `part`.
fn assert_problem(result: &Verification, part: &str) {
    assert!(
        result.problem.as_deref().unwrap_or_default().contains(part),
        "the problem should mention {part:?}: {result:?}"
    );
}

/// Asserts that the verifier found the chain broken at position `seq`, at the row
/// `audit_id` (None: a row that no longer exists), with a problem mentioning `problem`.
fn assert_broken(result: &Verification, seq: i64, audit_id: Option<Uuid>, problem: &str) {
    assert_eq!(result.broken_audit_id, audit_id, "{result:?}");
    assert_eq!(result.broken_seq, Some(seq), "{result:?}");
    assert_problem(result, problem);
}

async fn head_of<C: ConnectionTrait>(conn: &C, tenant: Uuid) -> ChainHead {
    audit::chain_head(conn, tenant)
        .await
        .expect("head")
        .expect("a head")
}

/// A tenant transaction of `tenant` on `app`, as the gateway opens them.
async fn tenant_txn(app: &DatabaseConnection, tenant: Uuid, access: Access) -> DatabaseTransaction {
    begin_tenant_transaction(app, TenantScope::tenant(tenant), access, 10_000)
        .await
        .expect("tenant transaction")
}

/// Runs `sql` as the owner with user triggers off (`session_replication_role = replica`),
/// the way a superuser with direct database access would tamper with the log.
async fn tamper_as_replica(owner: &DatabaseConnection, sql: &str) {
    let txn = owner.begin().await.expect("begin");
    txn.execute_unprepared("set local session_replication_role = replica")
        .await
        .expect("replica mode");
    txn.execute_unprepared(sql).await.expect(sql);
    txn.commit().await.expect("commit the tampering");
}

/// Runs `sql` as the owner between `disable trigger user` and `enable trigger user`.
async fn tamper_with_triggers_disabled(owner: &DatabaseConnection, sql: &str) {
    let txn = owner.begin().await.expect("begin");
    txn.execute_unprepared("alter table audit_log disable trigger user")
        .await
        .expect("disable triggers");
    txn.execute_unprepared(sql).await.expect(sql);
    txn.execute_unprepared("alter table audit_log enable trigger user")
        .await
        .expect("enable triggers");
    txn.commit().await.expect("commit the tampering");
}

/// Deletes rows 9 and 10 of the tenant's chain (of ten), with triggers off, and rewinds
/// the recorded chain head to row 8 the way a thorough attacker who owns the database
/// would: only a head exported to another system can catch that.
async fn delete_the_tail(owner: &DatabaseConnection, tenant: Uuid) {
    delete_the_tail_leaving_the_recorded_head(owner, tenant).await;
    tamper_as_replica(
        owner,
        &format!(
            "update ultracore_lifecycle.audit_chain_heads h \
                set chain_seq = a.chain_seq, row_hash = a.row_hash, \"timestamp\" = a.\"timestamp\" \
               from audit_log a \
              where h.tenant_id = '{tenant}' and a.tenant_id = h.tenant_id and a.chain_seq = 8"
        ),
    )
    .await;
}

/// Deletes rows 9 and 10 only: a careless tamperer.
async fn delete_the_tail_leaving_the_recorded_head(owner: &DatabaseConnection, tenant: Uuid) {
    tamper_as_replica(
        owner,
        &format!("delete from audit_log where tenant_id = '{tenant}' and chain_seq in (9, 10)"),
    )
    .await;
}

async fn count_rows<C: ConnectionTrait>(conn: &C, tenant: Option<Uuid>) -> i64 {
    let query = match tenant {
        Some(t) => format!("select count(*) from audit_log where tenant_id = '{t}'"),
        None => "select count(*) from audit_log".to_string(),
    };
    sql::count(conn, &query).await
}

// ---------------------------------------------------------------------------------------
// Append-only
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn update_delete_and_truncate_of_audit_log_are_refused_even_for_the_superuser_owner() {
    let (_db, owner, tenant, _) = acme_chain(3).await;
    assert_eq!(
        sql::scalar(
            &owner,
            "select rolsuper from pg_roles where rolname = current_user"
        )
        .await
        .as_deref(),
        Some("true"),
        "the owner in this test is a superuser"
    );

    for (sql, op) in [
        ("update audit_log set action = 'rewritten'", "UPDATE"),
        (
            "update audit_log set new_values = '{}' where chain_seq = 2",
            "UPDATE",
        ),
        ("delete from audit_log where chain_seq = 3", "DELETE"),
        ("delete from audit_log", "DELETE"),
        ("truncate audit_log", "TRUNCATE"),
        ("truncate audit_log cascade", "TRUNCATE"),
    ] {
        let err = expect_sqlstate(owner.execute_unprepared(sql).await, "42501", sql);
        assert!(
            err.to_string()
                .contains(&format!("audit_log is append-only: {op} is refused")),
            "{sql}: {err}"
        );
    }

    assert_eq!(count_rows(&owner, None).await, 3, "every row is still there");
    assert_eq!(
        sql::count(
            &owner,
            "select count(*) from audit_log where action like 'widget.update.%'"
        )
        .await,
        3,
        "no row was changed"
    );
    assert!(verify(&owner, tenant, None).await.is_intact());
}

#[tokio::test]
async fn app_role_appends_and_reads_only_its_own_tenant_audit_rows_inside_a_tenant_transaction() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let acme = create_tenant(&owner, "acme").await;
    let globex = create_tenant(&owner, "globex").await;
    write_chain(&owner, acme, 1).await;
    write_chain(&owner, globex, 2).await;

    let app = db.app().await;
    assert_eq!(
        sql::scalar(&app, "select current_user").await.as_deref(),
        Some("ultracore_app")
    );

    // Outside a tenant transaction: no rows visible, and no row may be written.
    assert_eq!(
        count_rows(&app, None).await,
        0,
        "no tenant set: zero rows, never all rows"
    );
    assert_sqlstate(
        audit::record(&app, acme, entry(99)).await,
        "42501",
        "row-level security",
    );

    // Inside acme's transaction: append and read acme's rows only.
    let txn = tenant_txn(&app, acme, Access::ReadWrite).await;
    let id = audit::record(&txn, acme, entry(2))
        .await
        .expect("the app role appends to its tenant's chain");
    assert_eq!(count_rows(&txn, None).await, 2, "acme sees its own two rows");
    assert_eq!(
        count_rows(&txn, Some(globex)).await,
        0,
        "acme sees none of globex's rows"
    );
    let head = head_of(&txn, acme).await;
    assert_eq!((head.chain_seq, head.audit_id), (2, id));
    assert!(
        audit::chain_head(&txn, globex).await.expect("head").is_none(),
        "globex's chain is invisible"
    );
    txn.commit().await.expect("commit");

    // Writing into another tenant's chain from acme's transaction is refused by RLS.
    let txn = tenant_txn(&app, acme, Access::ReadWrite).await;
    assert_sqlstate(
        audit::record(&txn, globex, entry(3)).await,
        "42501",
        "row-level security",
    );
    txn.rollback().await.expect("rollback");

    // UPDATE and DELETE are not granted to the app role at all.
    for sql in [
        "update audit_log set action = 'rewritten'",
        "delete from audit_log",
        "truncate audit_log",
    ] {
        let txn = tenant_txn(&app, acme, Access::ReadWrite).await;
        assert_sqlstate(txn.execute_unprepared(sql).await, "42501", "permission denied");
        txn.rollback().await.expect("rollback");
    }

    // A READ ONLY (query) transaction cannot append either.
    let txn = tenant_txn(&app, acme, Access::ReadOnly).await;
    assert_sqlstate(audit::record(&txn, acme, entry(4)).await, "25006", "read-only");
    txn.rollback().await.expect("rollback");

    // globex reads its own two rows only.
    let txn = tenant_txn(&app, globex, Access::ReadOnly).await;
    assert_eq!(count_rows(&txn, None).await, 2);
    txn.commit().await.expect("commit");

    assert_eq!(
        count_rows(&owner, Some(acme)).await,
        2,
        "only the one committed append landed"
    );
    assert_eq!(count_rows(&owner, Some(globex)).await, 2);
    assert_linked_chain(&owner, acme, 2).await;
    assert!(verify(&owner, acme, None).await.is_intact());
    assert!(verify(&owner, globex, None).await.is_intact());
}

// ---------------------------------------------------------------------------------------
// The verifier
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn verifier_accepts_an_untouched_chain_of_ten_rows() {
    let (_db, owner, tenant, ids) = acme_chain(10).await;

    let rows = assert_linked_chain(&owner, tenant, 10).await;
    assert_eq!(
        rows.iter().map(|r| r.audit_id).collect::<Vec<_>>(),
        ids,
        "rows chained in insert order"
    );

    let result = verify(&owner, tenant, None).await;
    assert_eq!(
        result,
        Verification {
            problem: None,
            broken_audit_id: None,
            broken_seq: None,
            rows_checked: 10
        }
    );

    let head = head_of(&owner, tenant).await;
    assert_eq!(head.tenant_id, tenant);
    assert_eq!(head.chain_seq, 10);
    assert_eq!(head.audit_id, ids[9]);
    assert_eq!(head.row_hash, hex::encode(&rows[9].row_hash));
    let with_head = verify(&owner, tenant, Some(&head)).await;
    assert!(with_head.is_intact(), "{with_head:?}");
    assert_eq!(with_head.rows_checked, 10);
}

/// Edits row 4 of a chain of ten with `update audit_log set <set>` and returns what the
/// verifier says, after asserting that it names row 4 as changed.
async fn verify_after_editing_row_4(set: &str) -> Verification {
    let (_db, owner, tenant, ids) = acme_chain(10).await;
    tamper_as_replica(
        &owner,
        &format!("update audit_log set {set} where tenant_id = '{tenant}' and chain_seq = 4"),
    )
    .await;
    let result = verify(&owner, tenant, None).await;
    assert_broken(&result, 4, Some(ids[3]), "contents were changed");
    result
}

#[tokio::test]
async fn verifier_names_row_4_after_its_action_is_edited() {
    let result = verify_after_editing_row_4("action = 'nothing.to.see'").await;
    assert_eq!(result.rows_checked, 3);
}

#[tokio::test]
async fn verifier_names_row_4_after_its_new_values_are_edited() {
    // A change that keeps the JSON's meaning but one number: the kind of edit a
    // reader would not notice.
    verify_after_editing_row_4("new_values = jsonb_set(new_values, '{n}', '40')").await;
}

#[tokio::test]
async fn verifier_names_row_6_after_middle_row_5_is_deleted() {
    let (_db, owner, tenant, ids) = acme_chain(10).await;

    tamper_with_triggers_disabled(
        &owner,
        &format!("delete from audit_log where tenant_id = '{tenant}' and chain_seq = 5"),
    )
    .await;
    assert_eq!(
        count_rows(&owner, Some(tenant)).await,
        9,
        "the tampering took effect"
    );

    let result = verify(&owner, tenant, None).await;
    assert_broken(&result, 6, Some(ids[5]), "deleted");
    assert_eq!(result.rows_checked, 4);

    // The triggers are back on: the owner is refused again.
    assert!(owner.execute_unprepared("delete from audit_log").await.is_err());
}

#[tokio::test]
async fn verifier_names_the_row_now_at_position_3_after_rows_3_and_4_are_swapped() {
    let (_db, owner, tenant, ids) = acme_chain(10).await;

    // Swap through a temporary position: (tenant_id, chain_seq) is unique.
    tamper_as_replica(
        &owner,
        &format!(
            "update audit_log set chain_seq = 1000 where tenant_id = '{tenant}' and chain_seq = 3; \
             update audit_log set chain_seq = 3 where tenant_id = '{tenant}' and chain_seq = 4; \
             update audit_log set chain_seq = 4 where tenant_id = '{tenant}' and chain_seq = 1000;"
        ),
    )
    .await;
    let order: Vec<Uuid> = chain_rows(&owner, tenant)
        .await
        .iter()
        .map(|r| r.audit_id)
        .collect();
    assert_eq!((order[2], order[3]), (ids[3], ids[2]), "rows 3 and 4 are swapped");

    let result = verify(&owner, tenant, None).await;
    // The row now at position 3 (formerly 4).
    assert_broken(&result, 3, Some(ids[3]), "reordered");
    assert_eq!(result.rows_checked, 2);
}

#[tokio::test]
async fn deleted_tail_is_caught_against_the_exported_head_and_only_with_it() {
    let (_db, owner, tenant, _) = acme_chain(10).await;

    // Export the head the way an operator would: to JSON, kept elsewhere.
    let head = head_of(&owner, tenant).await;
    let exported: ChainHead =
        serde_json::from_str(&serde_json::to_string(&head).expect("serialize")).expect("deserialize");
    assert_eq!(exported, head);

    delete_the_tail(&owner, tenant).await;

    let result = verify(&owner, tenant, Some(&exported)).await;
    // Position 9 is the first missing one; the missing row no longer exists.
    assert_broken(&result, 9, None, "the tail was deleted");
    assert_eq!(result.rows_checked, 8);

    // Without the exported head, the truncated chain is self-consistent: this is why the
    // head must be exported.
    let alone = verify(&owner, tenant, None).await;
    assert!(alone.is_intact(), "{alone:?}");
    assert_eq!(alone.rows_checked, 8);
}

#[tokio::test]
async fn a_deleted_tail_is_caught_by_the_recorded_head_even_without_an_exported_one() {
    let (_db, owner, tenant, _) = acme_chain(10).await;
    delete_the_tail_leaving_the_recorded_head(&owner, tenant).await;

    let result = verify(&owner, tenant, None).await;
    assert_broken(
        &result,
        9,
        None,
        "its recorded head is at 10: the tail was deleted",
    );
    assert_eq!(result.rows_checked, 8);
}

#[tokio::test]
async fn a_rewritten_tail_that_reaches_the_exported_position_is_caught_by_the_exported_hash() {
    let (_db, owner, tenant, _) = acme_chain(10).await;
    let head = head_of(&owner, tenant).await;

    delete_the_tail(&owner, tenant).await;
    // Two fresh, properly chained rows take positions 9 and 10 again.
    write_chain(&owner, tenant, 2).await;
    assert_linked_chain(&owner, tenant, 10).await;
    assert!(
        verify(&owner, tenant, None).await.is_intact(),
        "self-consistent without the head"
    );

    let result = verify(&owner, tenant, Some(&head)).await;
    assert_problem(&result, "rewritten");
    assert_eq!(result.broken_seq, Some(10));
    assert!(
        result.broken_audit_id.is_some_and(|id| id != head.audit_id),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

/// One append in its own tenant transaction on the app role's pool.
async fn append_in_tenant_transaction(pool: DatabaseConnection, tenant: Uuid, i: usize) -> Uuid {
    let txn = begin_tenant_transaction(&pool, TenantScope::tenant(tenant), Access::ReadWrite, 30_000)
        .await
        .expect("tenant transaction");
    let id = audit::record(&txn, tenant, entry(i))
        .await
        .expect("concurrent append");
    txn.commit().await.expect("commit");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn fifty_concurrent_appends_for_one_tenant_leave_one_unbroken_chain() {
    let (db, owner, tenant, _) = acme_chain(0).await;
    let pool = db.app_pool(10, 0).await;

    let tasks: Vec<_> = (1..=50)
        .map(|i| tokio::spawn(append_in_tenant_transaction(pool.clone(), tenant, i)))
        .collect();
    let mut ids: Vec<Uuid> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();

    let rows = assert_linked_chain(&owner, tenant, 50).await;
    let mut chained: Vec<Uuid> = rows.iter().map(|r| r.audit_id).collect();
    ids.sort();
    chained.sort();
    assert_eq!(
        chained, ids,
        "every committed append is in the chain exactly once"
    );

    let result = verify(&owner, tenant, None).await;
    assert!(result.is_intact(), "{result:?}");
    assert_eq!(result.rows_checked, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_tenants_appending_concurrently_each_get_their_own_intact_chain_from_1() {
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    let acme = create_tenant(&owner, "acme").await;
    let globex = create_tenant(&owner, "globex").await;
    let pool = db.app_pool(10, 0).await;

    let tasks: Vec<_> = (1..=60)
        .map(|i: usize| {
            let tenant = if i.is_multiple_of(2) { acme } else { globex };
            tokio::spawn(append_in_tenant_transaction(pool.clone(), tenant, i))
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.expect("task");
    }

    let acme_rows = assert_linked_chain(&owner, acme, 30).await;
    let globex_rows = assert_linked_chain(&owner, globex, 30).await;
    assert_ne!(
        acme_rows[0].prev_hash, globex_rows[0].prev_hash,
        "each chain starts at its own genesis"
    );
    for tenant in [acme, globex] {
        let result = verify(&owner, tenant, None).await;
        assert!(result.is_intact(), "{result:?}");
        assert_eq!(result.rows_checked, 30);
    }
}

// ---------------------------------------------------------------------------------------
// Session settings
// ---------------------------------------------------------------------------------------

const EXOTIC_SETTINGS: &str = "set local timezone = 'Pacific/Chatham'; \
     set local datestyle = 'SQL, DMY'; \
     set local intervalstyle = 'sql_standard'; \
     set local extra_float_digits = -15; \
     set local bytea_output = 'escape'";

const PLAIN_SETTINGS: &str = "set local timezone = 'UTC'; \
     set local datestyle = 'ISO, MDY'; \
     set local intervalstyle = 'postgres'; \
     set local extra_float_digits = 1; \
     set local bytea_output = 'hex'";

/// Appends rows in a transaction whose session uses `settings`.
async fn append_under(
    owner: &DatabaseConnection,
    tenant: Uuid,
    settings: &str,
    range: std::ops::RangeInclusive<usize>,
) {
    let txn = owner.begin().await.expect("begin");
    txn.execute_unprepared(settings).await.expect("settings");
    for i in range {
        audit::record(&txn, tenant, entry(i)).await.expect("append");
    }
    txn.commit().await.expect("commit");
}

/// Checks, in a transaction whose session uses `settings`, that every stored hash is what
/// the rows give and that the verifier finds the chain intact.
async fn check_under(owner: &DatabaseConnection, tenant: Uuid, settings: &str, expected_timezone: &str) {
    let txn = owner.begin().await.expect("begin");
    txn.execute_unprepared(settings).await.expect("settings");
    assert_eq!(
        sql::scalar(&txn, "current_setting('TimeZone')").await.as_deref(),
        Some(expected_timezone)
    );
    assert_eq!(
        sql::scalar(
            &txn,
            "select bool_and(row_hash = audit_log_row_hash(a)) from audit_log a"
        )
        .await
        .as_deref(),
        Some("true"),
        "hashes recomputed under {expected_timezone} equal the stored ones"
    );
    let result = audit::verify_chain(&txn, tenant, None).await.expect("verify");
    assert!(result.is_intact(), "under {expected_timezone}: {result:?}");
    assert_eq!(result.rows_checked, 8);
    txn.commit().await.expect("commit");
}

#[tokio::test]
async fn rows_written_under_exotic_session_settings_hash_the_same_under_utc() {
    let (_db, owner, tenant, _) = acme_chain(0).await;
    append_under(&owner, tenant, EXOTIC_SETTINGS, 1..=8).await;
    check_under(&owner, tenant, PLAIN_SETTINGS, "UTC").await;
    check_under(&owner, tenant, EXOTIC_SETTINGS, "Pacific/Chatham").await;
}

#[tokio::test]
async fn rows_written_under_utc_hash_the_same_under_exotic_session_settings() {
    let (_db, owner, tenant, _) = acme_chain(0).await;
    append_under(&owner, tenant, PLAIN_SETTINGS, 1..=4).await;
    // A chain mixing both: the link across the boundary must hold too.
    append_under(&owner, tenant, EXOTIC_SETTINGS, 5..=6).await;
    append_under(&owner, tenant, PLAIN_SETTINGS, 7..=8).await;
    check_under(&owner, tenant, EXOTIC_SETTINGS, "Pacific/Chatham").await;
    check_under(&owner, tenant, PLAIN_SETTINGS, "UTC").await;
}

// ---------------------------------------------------------------------------------------
// Isolation level
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn appends_under_repeatable_read_or_serializable_are_refused() {
    let (db, owner, tenant, _) = acme_chain(1).await;

    for level in [IsolationLevel::RepeatableRead, IsolationLevel::Serializable] {
        let txn = owner.begin_with_config(Some(level), None).await.expect("begin");
        assert_sqlstate(
            audit::record(&txn, tenant, entry(2)).await,
            "25000",
            "READ COMMITTED",
        );
        txn.rollback().await.expect("rollback");
    }
    // The app role gets the same answer.
    let app = db.app().await;
    let txn = app
        .begin_with_config(Some(IsolationLevel::RepeatableRead), None)
        .await
        .expect("begin");
    sql::set_tenant_setting(&txn, &tenant.to_string()).await;
    assert_sqlstate(
        audit::record(&txn, tenant, entry(2)).await,
        "25000",
        "READ COMMITTED",
    );
    txn.rollback().await.expect("rollback");

    let txn = owner
        .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
        .await
        .expect("begin");
    audit::record(&txn, tenant, entry(2))
        .await
        .expect("READ COMMITTED is accepted");
    txn.commit().await.expect("commit");
    assert_linked_chain(&owner, tenant, 2).await;
}

// ---------------------------------------------------------------------------------------
// `ultracore audit head` / `ultracore audit verify`
// ---------------------------------------------------------------------------------------

/// Runs `ultracore audit verify --tenant acme`, with `--head <head>` when given, and
/// asserts that it exits with `code`.
fn audit_verify(url: &str, dir: &Path, head: Option<&Path>, code: i32) -> Output {
    let mut cmd = cli::ultracore_with_database(url, dir);
    cmd.args(["audit", "verify", "--tenant", "acme"]);
    if let Some(head) = head {
        cmd.arg("--head").arg(head);
    }
    let out = cli::run(&mut cmd);
    assert_eq!(out.status.code(), Some(code), "{}", cli::describe(&out));
    out
}

fn printed_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test]
async fn audit_cli_exits_0_when_intact_and_3_with_json_naming_a_deleted_tail() {
    let (db, owner, tenant, _) = acme_chain(10).await;
    let dir = support::TempDir::new("ultracore-audit-cli");
    let url = db.owner_url();

    let out =
        cli::run(cli::ultracore_with_database(&url, dir.path()).args(["audit", "head", "--tenant", "acme"]));
    assert!(out.status.success(), "{}", cli::describe(&out));
    let head: ChainHead = serde_json::from_slice(&out.stdout).expect("`audit head` prints a chain head");
    assert_eq!(head, head_of(&owner, tenant).await);
    assert_eq!(head.chain_seq, 10);
    let head_file = dir.path().join("head.json");
    std::fs::write(&head_file, &out.stdout).expect("keep the head");

    let json = printed_json(&audit_verify(&url, dir.path(), Some(&head_file), 0));
    assert_eq!(json["problem"], serde_json::Value::Null);
    assert_eq!(json["rows_checked"], 10);

    delete_the_tail(&owner, tenant).await;

    let json = printed_json(&audit_verify(&url, dir.path(), Some(&head_file), 3));
    assert!(
        json["problem"]
            .as_str()
            .unwrap_or_default()
            .contains("the tail was deleted"),
        "{json}"
    );
    assert_eq!(json["broken_seq"], 9);
    assert_eq!(json["broken_audit_id"], serde_json::Value::Null);
    assert_eq!(json["rows_checked"], 8);

    // Without the exported head the truncated chain looks whole.
    audit_verify(&url, dir.path(), None, 0);

    // A middle edit is caught without any head, and the row is named.
    tamper_as_replica(
        &owner,
        &format!("update audit_log set action = 'forged' where tenant_id = '{tenant}' and chain_seq = 2"),
    )
    .await;
    let json = printed_json(&audit_verify(&url, dir.path(), None, 3));
    assert_eq!(json["broken_seq"], 2);
    let second = chain_rows(&owner, tenant).await[1].audit_id;
    assert_eq!(json["broken_audit_id"], serde_json::json!(second.to_string()));
}

// ---------------------------------------------------------------------------------------
// Name resolution: the chain must not depend on the writer's search_path
// ---------------------------------------------------------------------------------------

/// A tenant with one row written by the owner, and the app role's connection.
async fn one_row_chain() -> (TestDb, DatabaseConnection, DatabaseConnection, Uuid) {
    let (db, owner, tenant, _) = acme_chain(1).await;
    let app = db.app().await;
    (db, owner, app, tenant)
}

/// Appends one row naming the real table explicitly, as any client may.
async fn insert_qualified<C: ConnectionTrait>(conn: &C, tenant: Uuid) -> Result<(), DbErr> {
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into public.audit_log (tenant_id, action, entity_type) values ($1, 'widget.create', 'widget')",
        [tenant.into()],
    ))
    .await
    .map(|_| ())
}

/// The app role has no UPDATE or DELETE on audit_log, and must not be able to break its
/// tenant's chain another way. Every role may create temporary tables (PUBLIC holds
/// TEMPORARY on the database), and a temporary table is found before `public` when a name
/// is resolved through the search path: the chain trigger must still read the real head.
#[tokio::test]
async fn an_app_session_cannot_misplace_a_row_by_shadowing_audit_log_with_a_temp_table() {
    let (_db, owner, app, tenant) = one_row_chain().await;

    let txn = tenant_txn(&app, tenant, Access::ReadWrite).await;
    txn.execute_unprepared(
        "create temp table audit_log (tenant_id uuid, chain_seq bigint, row_hash bytea) on commit drop",
    )
    .await
    .expect("any role may create a temporary table");
    txn.execute_unprepared(&format!(
        "insert into audit_log values ('{tenant}', 41, sha256('forged'::bytea))"
    ))
    .await
    .expect("fill the shadow");
    match insert_qualified(&txn, tenant).await {
        Ok(()) => txn.commit().await.expect("commit"),
        Err(_) => txn.rollback().await.expect("rollback"),
    }

    // Whether the append was refused or placed correctly, the real chain must be whole.
    let rows = count_rows(&owner, Some(tenant)).await as usize;
    let seqs: Vec<i64> = chain_rows(&owner, tenant)
        .await
        .iter()
        .map(|r| r.chain_seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=rows as i64).collect::<Vec<_>>(),
        "positions come from the real chain"
    );
    assert_linked_chain(&owner, tenant, rows).await;
    let result = verify(&owner, tenant, None).await;
    assert!(result.is_intact(), "{result:?}");
}

/// The verifier must walk the real table, whatever the session's search path finds first.
#[tokio::test]
async fn the_verifier_walks_the_real_audit_log_even_when_a_temp_table_shadows_it() {
    let (_db, owner, app, tenant) = one_row_chain().await;
    let head = head_of(&owner, tenant).await;

    let txn = tenant_txn(&app, tenant, Access::ReadWrite).await;
    txn.execute_unprepared("create temp table audit_log (like public.audit_log) on commit drop")
        .await
        .expect("any role may create a temporary table");
    let alone = audit::verify_chain(&txn, tenant, None).await.expect("verify");
    let with_head = audit::verify_chain(&txn, tenant, Some(&head))
        .await
        .expect("verify");
    txn.rollback().await.expect("rollback");

    assert_eq!(alone.rows_checked, 1, "the real row is checked: {alone:?}");
    assert!(alone.is_intact(), "{alone:?}");
    assert!(
        with_head.is_intact(),
        "the real chain reaches the exported head: {with_head:?}"
    );
}

/// Appending works from a session whose search_path leaves out `public` (the hardening
/// PostgreSQL recommends to clients), as long as the table is named in full.
#[tokio::test]
async fn a_session_search_path_without_public_still_appends_to_the_chain() {
    let (_db, owner, app, tenant) = one_row_chain().await;

    let txn = tenant_txn(&app, tenant, Access::ReadWrite).await;
    txn.execute_unprepared("set local search_path = pg_catalog")
        .await
        .expect("search_path");
    insert_qualified(&txn, tenant)
        .await
        .expect("the chain trigger does not depend on the session's search_path");
    txn.commit().await.expect("commit");

    assert_linked_chain(&owner, tenant, 2).await;
    assert!(verify(&owner, tenant, None).await.is_intact());
}

/// The canonical text of every row of `tenant`'s chain, in chain order, as the database
/// currently computes it.
async fn canonical_texts(owner: &DatabaseConnection, tenant: Uuid) -> Vec<String> {
    sql::strings(
        owner,
        &format!("select audit_log_canonical(a) as v from audit_log a where a.tenant_id = '{tenant}' order by a.chain_seq"),
    )
    .await
}

#[tokio::test]
async fn migration_0023_computes_the_same_canonical_text_so_chains_on_both_sides_verify() {
    use sea_orm_migration::MigratorTrait;

    let db = TestDb::new().await;
    let owner = db.owner().await;
    migration::Migrator::down(&owner, Some(1))
        .await
        .expect("back to 0022");
    let tenant = create_tenant(&owner, "acme").await;
    write_chain(&owner, tenant, 4).await;
    // One erased row too: its digests are read from the row instead of computed.
    let txn = owner.begin().await.expect("begin");
    sql::set_tenant_setting(&txn, &tenant.to_string()).await;
    sql::exec(&txn, "select set_config('ultracore.erasure', 'on', true)").await;
    sql::exec(
        &txn,
        "update audit_log a set pii_digests = audit_log_pii_digests(a), pii_salt = null, erased_at = now(), \
                ip_address = null, user_agent = null where chain_seq = 2",
    )
    .await;
    txn.commit().await.expect("commit");
    let before = canonical_texts(&owner, tenant).await;

    migration::Migrator::up(&owner, None).await.expect("0023");
    assert_eq!(
        canonical_texts(&owner, tenant).await,
        before,
        "same text, byte for byte"
    );
    write_chain(&owner, tenant, 3).await;
    let result = verify(&owner, tenant, None).await;
    assert!(result.is_intact(), "{result:?}");
    assert_eq!(result.rows_checked, 7);

    // Rows written under 0023 verify under 0022's definitions as well.
    migration::Migrator::down(&owner, Some(1))
        .await
        .expect("0023 rolls back");
    let result = verify(&owner, tenant, None).await;
    assert!(result.is_intact(), "{result:?}");
    assert_eq!(result.rows_checked, 7);
    migration::Migrator::up(&owner, None).await.expect("and forward");
}
