//! Delivery of the notification outbox (`api::notify::{sender, worker}`) against real
//! PostgreSQL, as the serving role `ultracore_app`: a message exists for delivery if and
//! only if its transaction committed, is sent exactly once however many passes run at
//! once, is retried with backoff and given up after its attempts, and each tenant's
//! messages are claimed in that tenant's own transaction. The SMTP sender is checked
//! against a small SMTP server speaking the real protocol on a loopback port; logs are
//! captured to prove no body (which carries a reset token) ever reaches them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::auth::crypto::KeyRing;
use api::config::{Config, Profile, SenderKind, SmtpConfig, SmtpTls};
use api::db::{Access, TenantScope, begin_tenant_transaction};
use api::notify::sender::{FileSender, OutgoingMessage, SendError, Sender, SmtpSender};
use api::notify::worker::{DeliveryReport, DeliverySettings, deliver_pending, run_delivery};
use api::notify::{NewNotification, enqueue};
use futures::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use support::fixture::tenant_txn;
use support::gateway::TEST_DATA_KEY;
use support::{TempDir, TestDb, sql};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn keys() -> KeyRing {
    KeyRing::new(TEST_DATA_KEY, &[]).expect("test data key")
}

/// Passes with no backoff, so a retry is due on the very next pass.
fn settings(batch_size: u32, max_attempts: u32) -> DeliverySettings {
    DeliverySettings {
        interval: Duration::from_millis(50),
        batch_size,
        max_attempts,
        retry_backoff: Duration::ZERO,
        send_timeout: Duration::from_secs(10),
        statement_timeout_ms: 30_000,
    }
}

/// A reset-link body whose token is unique to the message, so a test can look for it.
fn body_with_token() -> (String, String) {
    let token = Uuid::new_v4().simple().to_string();
    (
        format!("Reset your password: https://bank.example/r?t={token}\n"),
        token,
    )
}

async fn create_tenant(owner: &DatabaseConnection, slug: &str) -> Uuid {
    api::domain::tenants::create_tenant(owner, slug, &format!("{slug} bank"))
        .await
        .unwrap_or_else(|e| panic!("create tenant {slug}: {e}"))
}

/// Queues a message as the serving role in a tenant transaction it then commits (or, with
/// `commit == false`, rolls back).
async fn enqueue_as_app(
    app: &DatabaseConnection,
    tenant_id: Uuid,
    recipient: &str,
    body: &str,
    commit: bool,
) -> Uuid {
    let txn = begin_tenant_transaction(app, TenantScope::tenant(tenant_id), Access::ReadWrite, 30_000)
        .await
        .expect("begin tenant transaction");
    let id = enqueue(
        &txn,
        &keys(),
        NewNotification {
            tenant_id,
            user_id: None,
            recipient,
            subject: "Reset your password",
            body,
        },
    )
    .await
    .expect("enqueue");
    if commit {
        txn.commit().await.expect("commit");
    } else {
        txn.rollback().await.expect("rollback");
    }
    id
}

/// A row as the owner (a superuser in tests, so RLS does not hide it) sees it.
#[derive(Debug)]
struct Row {
    status: String,
    attempts: i32,
    last_error: Option<String>,
    body: String,
    sent: bool,
    next_attempt_in_secs: f64,
}

async fn row(owner: &DatabaseConnection, id: Uuid) -> Row {
    let r = owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select status::text, attempts, last_error, body, sent_at is not null as sent, \
                    extract(epoch from next_attempt_at - now())::float8 as next_in \
               from notification_outbox where notification_id = $1",
            [id.into()],
        ))
        .await
        .expect("query outbox")
        .unwrap_or_else(|| panic!("no outbox row {id}"));
    Row {
        status: r.try_get("", "status").expect("status"),
        attempts: r.try_get("", "attempts").expect("attempts"),
        last_error: r.try_get("", "last_error").expect("last_error"),
        body: r.try_get("", "body").expect("body"),
        sent: r.try_get("", "sent").expect("sent"),
        next_attempt_in_secs: r.try_get("", "next_in").expect("next_in"),
    }
}

/// A sender that records what it is given (after an optional delay) or fails with a fixed
/// error.
#[derive(Default)]
struct Recorder {
    delivered: Mutex<Vec<OutgoingMessage>>,
    calls: AtomicUsize,
    delay: Duration,
    fail_with: Option<SendError>,
}

impl Recorder {
    fn delayed(delay: Duration) -> Recorder {
        Recorder {
            delay,
            ..Recorder::default()
        }
    }

    fn failing(error: SendError) -> Recorder {
        Recorder {
            fail_with: Some(error),
            ..Recorder::default()
        }
    }

    fn ids(&self) -> Vec<Uuid> {
        self.delivered
            .lock()
            .expect("recorder lock")
            .iter()
            .map(|m| m.notification_id)
            .collect()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Sender for Recorder {
    fn send<'a>(&'a self, message: &'a OutgoingMessage) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if let Some(error) = &self.fail_with {
                return Err(error.clone());
            }
            self.delivered
                .lock()
                .expect("recorder lock")
                .push(message.clone());
            Ok(())
        })
    }
}

/// Everything logged while the guard lives, on this thread (tests run on a
/// current-thread runtime, so the code under test logs here too).
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

// ---------------------------------------------------------------------------------------
// File sender, commit and rollback
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_committed_message_is_written_once_to_a_private_file_and_its_body_is_never_logged() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let (body, token) = body_with_token();
    let id = enqueue_as_app(&app, tenant, "alice@acme.example", &body, true).await;

    let stored = row(&owner, id).await;
    assert_eq!(stored.status, "pending");
    assert!(
        !stored.body.contains(&token) && !stored.body.contains("Reset your password"),
        "the stored body is not the plaintext: {}",
        stored.body
    );
    assert_eq!(
        keys()
            .decrypt(&stored.body, id.as_bytes())
            .expect("decrypts with its own id"),
        body.as_bytes()
    );

    let outbox = TempDir::new("ultracore-outbox");
    let dir = outbox.path().join("mail");
    let sender = FileSender::new(&dir).expect("outbox dir");
    let report = deliver_pending(&app, &keys(), &sender, &settings(10, 5))
        .await
        .expect("pass");
    assert_eq!(
        report,
        DeliveryReport {
            tenants: 1,
            sent: 1,
            ..DeliveryReport::default()
        }
    );

    let file = sender.path_of(id);
    let text = std::fs::read_to_string(&file).expect("the message file");
    assert!(text.contains("To: alice@acme.example\r\n"), "{text}");
    assert!(text.contains("Subject: Reset your password\r\n"), "{text}");
    assert!(
        text.contains(&format!("X-UltraCore-Notification-Id: {id}")),
        "{text}"
    );
    assert!(text.contains(&body), "the file holds the body: {text}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the outbox directory is private");
    assert_eq!(mode(&file), 0o600, "the message file is private");
    assert_eq!(
        std::fs::read_dir(&dir).expect("list outbox").count(),
        1,
        "one file, no partial file left behind"
    );

    let sent = row(&owner, id).await;
    assert_eq!(
        (sent.status.as_str(), sent.attempts, sent.sent),
        ("sent", 1, true)
    );
    assert_eq!(sent.last_error, None);

    // A second pass finds nothing: the message is not sent again.
    std::fs::remove_file(&file).expect("remove the file");
    let again = deliver_pending(&app, &keys(), &sender, &settings(10, 5))
        .await
        .expect("pass");
    assert_eq!(again, DeliveryReport::default());
    assert!(!file.exists(), "not written a second time");

    let log = logs.text();
    assert!(
        log.contains("alice@acme.example"),
        "the log names the recipient: {log}"
    );
    assert!(
        log.contains("Reset your password"),
        "the log names the subject: {log}"
    );
    assert!(
        log.contains(&file.display().to_string()),
        "the log names the file: {log}"
    );
    assert!(!log.contains(&token), "the log never holds the token: {log}");
    assert!(
        !log.contains("https://bank.example/r"),
        "the log never holds the body: {log}"
    );
}

#[tokio::test]
async fn a_message_enqueued_in_a_rolled_back_transaction_is_never_delivered() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let (body, _) = body_with_token();
    let rolled_back = enqueue_as_app(&app, tenant, "ghost@acme.example", &body, false).await;
    let committed = enqueue_as_app(&app, tenant, "alice@acme.example", &body, true).await;

    let recorder = Recorder::default();
    for _ in 0..3 {
        deliver_pending(&app, &keys(), &recorder, &settings(10, 5))
            .await
            .expect("pass");
    }
    assert_eq!(
        recorder.ids(),
        vec![committed],
        "only the committed message is sent, once"
    );
    assert_eq!(
        sql::count(
            &owner,
            &format!("select count(*) from notification_outbox where notification_id = '{rolled_back}'")
        )
        .await,
        0,
        "the rolled-back message does not exist"
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency and tenants
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_passes_send_every_message_exactly_once() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app_pool(8, 0).await;
    let a = create_tenant(&owner, "acme").await;
    let b = create_tenant(&owner, "globex").await;
    let mut expected = BTreeSet::new();
    for i in 0..12 {
        let (body, _) = body_with_token();
        expected.insert(enqueue_as_app(&app, a, &format!("a{i}@acme.example"), &body, true).await);
        expected.insert(enqueue_as_app(&app, b, &format!("b{i}@globex.example"), &body, true).await);
    }

    // Three passes at a time, each holding its claimed row while the slow "relay" works,
    // repeated until nothing is left: every pass competes for the same rows.
    let recorder = Recorder::delayed(Duration::from_millis(15));
    let keys = keys();
    let settings = settings(3, 5);
    let mut sent_by_passes = 0;
    for _ in 0..20 {
        let (r1, r2, r3) = tokio::join!(
            deliver_pending(&app, &keys, &recorder, &settings),
            deliver_pending(&app, &keys, &recorder, &settings),
            deliver_pending(&app, &keys, &recorder, &settings),
        );
        let reports = [r1.expect("pass 1"), r2.expect("pass 2"), r3.expect("pass 3")];
        assert!(reports.iter().all(|r| r.tenant_errors == 0), "{reports:?}");
        sent_by_passes += reports.iter().map(|r| r.sent).sum::<usize>();
        if reports.iter().all(|r| r.tenants == 0) {
            break;
        }
    }

    let ids = recorder.ids();
    let unique: BTreeSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no message was sent twice: {ids:?}");
    assert_eq!(unique, expected, "every message was sent");
    assert_eq!(sent_by_passes, expected.len(), "the passes' reports add up");
    assert_eq!(
        sql::count(
            &owner,
            "select count(*) from notification_outbox where status <> 'sent'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn each_tenants_messages_are_claimed_in_that_tenants_own_transaction() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let a = create_tenant(&owner, "acme").await;
    let b = create_tenant(&owner, "globex").await;
    let suspended = create_tenant(&owner, "initech").await;
    let (body, _) = body_with_token();
    let a_msg = enqueue_as_app(&app, a, "alice@acme.example", &body, true).await;
    let b_msg = enqueue_as_app(&app, b, "bob@globex.example", &body, true).await;
    let waiting = enqueue_as_app(&app, suspended, "carol@initech.example", &body, true).await;
    let txn = tenant_txn(&owner, suspended).await;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "update tenants set status = 'suspended' where tenant_id = $1",
        [suspended.into()],
    ))
    .await
    .expect("suspend");
    txn.commit().await.expect("commit");

    // Outside a tenant transaction the serving role sees no message at all; the scanner
    // function tells it which tenants have one due, and nothing more.
    assert_eq!(
        sql::count(&app, "select count(*) from notification_outbox").await,
        0
    );
    let due: BTreeSet<String> = sql::strings(
        &app,
        "select t::text as v from ultracore_tenants_with_due_notifications() as t",
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(
        due,
        [a, b, suspended]
            .iter()
            .map(Uuid::to_string)
            .collect::<BTreeSet<_>>()
    );

    let recorder = Recorder::default();
    let report = deliver_pending(&app, &keys(), &recorder, &settings(10, 5))
        .await
        .expect("pass");
    assert_eq!(
        (report.tenants, report.sent, report.tenant_errors),
        (3, 2, 0),
        "{report:?}"
    );

    // The serving role can only have marked a row sent inside a transaction of that row's
    // tenant (RLS is forced on it): both tenants' rows being sent proves each was claimed
    // and recorded under its own tenant.
    assert_eq!(row(&owner, a_msg).await.status, "sent");
    assert_eq!(row(&owner, b_msg).await.status, "sent");
    let delivered: BTreeMap<Uuid, (Uuid, String)> = recorder
        .delivered
        .lock()
        .expect("recorder lock")
        .iter()
        .map(|m| (m.notification_id, (m.tenant_id, m.recipient.clone())))
        .collect();
    assert_eq!(
        delivered,
        BTreeMap::from([
            (a_msg, (a, "alice@acme.example".to_string())),
            (b_msg, (b, "bob@globex.example".to_string())),
        ])
    );
    let held = row(&owner, waiting).await;
    assert_eq!(
        (held.status.as_str(), held.attempts),
        ("pending", 0),
        "a suspended tenant's message waits, untouched"
    );
}

#[tokio::test]
async fn the_scanner_role_reads_no_recipient_subject_or_body() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    for column in ["recipient", "subject", "body", "last_error", "user_id"] {
        assert_eq!(
            sql::scalar(
                &owner,
                &format!(
                    "select has_column_privilege('ultracore_outbox_scanner', 'notification_outbox', \
                     '{column}', 'select')"
                )
            )
            .await
            .as_deref(),
            Some("false"),
            "{column}"
        );
    }
    assert_eq!(
        sql::scalar(
            &owner,
            "select rolcanlogin or rolsuper or rolbypassrls from pg_roles \
              where rolname = 'ultracore_outbox_scanner'"
        )
        .await
        .as_deref(),
        Some("false")
    );
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failing_sender_leaves_the_message_pending_until_its_attempts_are_used_up() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let (body, token) = body_with_token();
    let id = enqueue_as_app(&app, tenant, "alice@acme.example", &body, true).await;
    let recorder = Recorder::failing(SendError::Transient("451 relay busy".into()));
    let settings = settings(10, 3);

    for attempt in 1..=2 {
        let report = deliver_pending(&app, &keys(), &recorder, &settings)
            .await
            .expect("pass");
        assert_eq!((report.retrying, report.failed), (1, 0), "{report:?}");
        let r = row(&owner, id).await;
        assert_eq!(
            (r.status.as_str(), r.attempts, r.sent),
            ("pending", attempt, false)
        );
        assert_eq!(r.last_error.as_deref(), Some("451 relay busy"));
    }
    let report = deliver_pending(&app, &keys(), &recorder, &settings)
        .await
        .expect("pass");
    assert_eq!((report.retrying, report.failed), (0, 1), "{report:?}");
    let r = row(&owner, id).await;
    assert_eq!((r.status.as_str(), r.attempts), ("failed", 3));

    // A failed message is not tried again.
    let report = deliver_pending(&app, &keys(), &recorder, &settings)
        .await
        .expect("pass");
    assert_eq!(report, DeliveryReport::default());
    assert_eq!(recorder.calls(), 3);
    assert!(!logs.text().contains(&token), "no body in the log");
    assert!(logs.text().contains("451 relay busy"), "the failure is logged");
}

#[tokio::test]
async fn a_failed_attempt_is_retried_only_after_its_backoff_and_a_permanent_error_fails_at_once() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let (body, _) = body_with_token();
    let id = enqueue_as_app(&app, tenant, "alice@acme.example", &body, true).await;
    let slow_retry = DeliverySettings {
        retry_backoff: Duration::from_secs(600),
        ..settings(10, 5)
    };
    let busy = Recorder::failing(SendError::Transient("421 try later".into()));
    deliver_pending(&app, &keys(), &busy, &slow_retry)
        .await
        .expect("pass");
    deliver_pending(&app, &keys(), &busy, &slow_retry)
        .await
        .expect("pass");
    assert_eq!(busy.calls(), 1, "not retried before its backoff");
    let r = row(&owner, id).await;
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 1));
    assert!(
        (590.0..=610.0).contains(&r.next_attempt_in_secs),
        "next attempt in about 600 s: {r:?}"
    );

    // Once due (moved back here instead of waiting), a permanent refusal ends it.
    sql::exec(&owner, "update notification_outbox set next_attempt_at = now()").await;
    let refused = Recorder::failing(SendError::Permanent("550 no such user".into()));
    let report = deliver_pending(&app, &keys(), &refused, &slow_retry)
        .await
        .expect("pass");
    assert_eq!(report.failed, 1, "{report:?}");
    let r = row(&owner, id).await;
    assert_eq!((r.status.as_str(), r.attempts), ("failed", 2));
    assert_eq!(r.last_error.as_deref(), Some("550 no such user"));
}

#[tokio::test]
async fn a_body_that_does_not_decrypt_is_never_sent_and_never_copied_into_the_error() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    // Written past `enqueue`, in clear: what a bug or a hand-made row would leave.
    let id = Uuid::now_v7();
    let txn = tenant_txn(&owner, tenant).await;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into notification_outbox (notification_id, tenant_id, recipient, subject, body) \
         values ($1, $2, 'alice@acme.example', 'Reset', 'plaintext-secret-token')",
        [id.into(), tenant.into()],
    ))
    .await
    .expect("insert");
    txn.commit().await.expect("commit");
    // And one sealed for another row: the id binds a body to its message.
    let (body, _) = body_with_token();
    let moved = enqueue_as_app(&app, tenant, "bob@acme.example", &body, true).await;
    sql::exec(
        &owner,
        &format!(
            "update notification_outbox set body = (select body from notification_outbox \
              where notification_id = '{moved}') where notification_id = '{id}'"
        ),
    )
    .await;
    sql::exec(
        &owner,
        &format!(
            "update notification_outbox set body = 'plaintext-secret-token' where notification_id = '{moved}'"
        ),
    )
    .await;

    let recorder = Recorder::default();
    let report = deliver_pending(&app, &keys(), &recorder, &settings(10, 5))
        .await
        .expect("pass");
    assert_eq!((report.sent, report.failed), (0, 2), "{report:?}");
    assert_eq!(recorder.calls(), 0, "nothing reached the sender");
    for notification in [id, moved] {
        let r = row(&owner, notification).await;
        assert_eq!(r.status, "failed");
        let error = r.last_error.expect("an error is recorded");
        assert!(error.contains("cannot decrypt"), "{error}");
        assert!(!error.contains("plaintext-secret-token"), "{error}");
    }
}

// ---------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_delivery_loop_sends_what_is_queued_while_it_runs_and_stops_on_shutdown() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let recorder = Arc::new(Recorder::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(run_delivery(
        app.clone(),
        Arc::new(keys()),
        recorder.clone(),
        settings(10, 5),
        async move {
            let _ = stopped.await;
        },
    ));
    let (body, _) = body_with_token();
    let id = enqueue_as_app(&app, tenant, "alice@acme.example", &body, true).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recorder.ids().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorder.ids(), vec![id], "the running loop picked the message up");
    stop.send(()).expect("the loop is running");
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the loop stops on shutdown")
        .expect("the loop did not panic");
    assert_eq!(row(&owner, id).await.status, "sent");
}

#[tokio::test]
async fn a_shutdown_during_a_pass_finishes_and_records_the_message_being_sent_then_stops() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (body, _) = body_with_token();
        ids.push(enqueue_as_app(&app, tenant, &format!("u{i}@acme.example"), &body, true).await);
    }
    let recorder = Arc::new(Recorder::delayed(Duration::from_millis(400)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(run_delivery(
        app.clone(),
        Arc::new(keys()),
        recorder.clone(),
        settings(10, 5),
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recorder.calls() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(recorder.calls(), 1, "the first message is being sent");
    stop.send(()).expect("the loop is running");
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the loop stops after the message in flight, not after the whole pass")
        .expect("the loop did not panic");
    assert_eq!(
        recorder.ids(),
        vec![ids[0]],
        "the message in flight was sent, no other"
    );
    assert_eq!(row(&owner, ids[0]).await.status, "sent", "and recorded");
    for id in &ids[1..] {
        assert_eq!(row(&owner, *id).await.status, "pending");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

#[test]
fn production_without_a_relay_refuses_and_development_writes_files_under_the_data_dir() {
    let data = TempDir::new("ultracore-notify-config");
    let production = Config {
        profile: Profile::Production,
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    let error = api::notify::sender::from_config(&production)
        .err()
        .expect("production without an SMTP host is refused")
        .to_string();
    assert!(error.contains("ULTRACORE_NOTIFICATIONS__SMTP__HOST"), "{error}");

    let mut explicit_files = production.clone();
    explicit_files.notifications.sender = Some(SenderKind::File);
    assert!(
        api::notify::sender::from_config(&explicit_files).is_ok(),
        "files when asked for"
    );

    let development = Config {
        data_dir: data.path().join("dev"),
        ..Config::default()
    };
    assert!(api::notify::sender::from_config(&development).is_ok());
    let outbox = data.path().join("dev").join("outbox");
    assert_eq!(
        std::fs::metadata(&outbox)
            .expect("<data_dir>/outbox exists")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

/// The pooled SMTP transport starts a task when built: it needs a runtime.
#[tokio::test]
async fn an_smtp_password_is_never_sent_in_clear_to_another_host() {
    let config = |host: &str, tls: SmtpTls| SmtpConfig {
        host: Some(host.into()),
        port: Some(2525),
        username: Some("mailer".into()),
        password: Some("s3cret".into()),
        from: Some("no-reply@bank.example".into()),
        tls,
        ..SmtpConfig::default()
    };
    let timeout = Duration::from_secs(5);
    let error = SmtpSender::new(&config("smtp.bank.example", SmtpTls::None), timeout)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("clear text"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    assert!(SmtpSender::new(&config("127.0.0.1", SmtpTls::None), timeout).is_ok());
    assert!(SmtpSender::new(&config("smtp.bank.example", SmtpTls::Starttls), timeout).is_ok());
    assert!(SmtpSender::new(&config("smtp.bank.example", SmtpTls::Tls), timeout).is_ok());
    let no_password = SmtpConfig {
        password: None,
        ..config("smtp.bank.example", SmtpTls::Tls)
    };
    assert!(
        SmtpSender::new(&no_password, timeout).is_err(),
        "a username needs a password"
    );
}

// ---------------------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------------------

/// What the SMTP server received.
#[derive(Debug, Default)]
struct Received {
    mail_from: Vec<String>,
    rcpt_to: Vec<String>,
    /// Each message's DATA, dot-unstuffed, without the final ".".
    messages: Vec<String>,
}

/// A minimal SMTP server (RFC 5321: greeting, EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) on
/// a loopback port. It refuses every recipient with 550 when `refuse_recipients`.
async fn smtp_server(refuse_recipients: bool) -> (u16, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received = Arc::new(Mutex::new(Received::default()));
    let shared = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = smtp_session(stream, refuse_recipients, shared).await;
            });
        }
    });
    (port, received)
}

async fn smtp_session(
    stream: tokio::net::TcpStream,
    refuse_recipients: bool,
    received: Arc<Mutex<Received>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 mx.test.example ESMTP ready\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-mx.test.example greets you\r\n250 8BITMIME\r\n",
            "HELO" => b"250 mx.test.example\r\n",
            "MAIL" => {
                received
                    .lock()
                    .expect("lock")
                    .mail_from
                    .push(command[10..].to_string());
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if refuse_recipients => b"550 5.1.1 no such mailbox\r\n",
            "RCPT" => {
                received
                    .lock()
                    .expect("lock")
                    .rcpt_to
                    .push(command[8..].to_string());
                b"250 2.1.5 OK\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                received.lock().expect("lock").messages.push(data);
                b"250 2.0.0 queued\r\n"
            }
            "RSET" | "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 command not recognised\r\n",
        };
        writer.write_all(reply).await?;
    }
}

/// Undoes quoted-printable (RFC 2045 §6.7), which lettre picks for a body with `=`:
/// soft line breaks go, `=XX` becomes its byte.
fn quoted_printable_decoded(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn smtp_sender(port: u16) -> SmtpSender {
    SmtpSender::new(
        &SmtpConfig {
            host: Some("127.0.0.1".into()),
            port: Some(port),
            from: Some("UltraCore <no-reply@bank.example>".into()),
            tls: SmtpTls::None,
            ..SmtpConfig::default()
        },
        Duration::from_secs(10),
    )
    .expect("smtp sender")
}

#[tokio::test]
async fn the_smtp_sender_delivers_recipient_subject_and_body_over_a_real_smtp_exchange() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let (body, token) = body_with_token();
    let id = enqueue_as_app(&app, tenant, "alice@acme.example", &body, true).await;
    let (port, received) = smtp_server(false).await;
    let sender = smtp_sender(port);

    let report = deliver_pending(&app, &keys(), &sender, &settings(10, 5))
        .await
        .expect("pass");
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(row(&owner, id).await.status, "sent");

    let received = received.lock().expect("lock");
    assert_eq!(received.mail_from, vec!["<no-reply@bank.example>"]);
    assert_eq!(received.rcpt_to, vec!["<alice@acme.example>"]);
    assert_eq!(received.messages.len(), 1);
    let message = &received.messages[0];
    assert!(message.contains("To: alice@acme.example\r\n"), "{message}");
    assert!(
        message.contains("From: UltraCore <no-reply@bank.example>\r\n"),
        "{message}"
    );
    assert!(message.contains("Subject: Reset your password\r\n"), "{message}");
    assert!(
        message.contains(&format!("Message-ID: <{id}@bank.example>")),
        "the Message-ID comes from the notification id: {message}"
    );
    assert!(
        quoted_printable_decoded(message).contains(&format!("https://bank.example/r?t={token}")),
        "the body arrives: {message}"
    );
    assert!(!logs.text().contains(&token), "no body in the log");
}

#[tokio::test]
async fn a_recipient_the_relay_refuses_fails_the_message_at_once() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let app = db.app().await;
    let tenant = create_tenant(&owner, "acme").await;
    let (body, token) = body_with_token();
    let id = enqueue_as_app(&app, tenant, "nobody@acme.example", &body, true).await;
    let (port, received) = smtp_server(true).await;

    let report = deliver_pending(&app, &keys(), &smtp_sender(port), &settings(10, 5))
        .await
        .expect("pass");
    assert_eq!(report.failed, 1, "a 5xx reply is permanent: {report:?}");
    let r = row(&owner, id).await;
    assert_eq!((r.status.as_str(), r.attempts), ("failed", 1));
    let error = r.last_error.expect("error recorded");
    assert!(error.contains("550"), "{error}");
    assert!(!error.contains(&token), "{error}");
    assert!(received.lock().expect("lock").messages.is_empty());
}

// ---------------------------------------------------------------------------------------
// Migration
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn migration_0013_rolls_back_completely_keeps_its_role_and_applies_again() {
    use sea_orm_migration::MigratorTrait;
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let present = |owner: DatabaseConnection| async move {
        sql::strings(
            &owner,
            "select 'column' as v from information_schema.columns \
              where table_name = 'notification_outbox' and column_name = 'next_attempt_at' \
             union all select 'index' from pg_indexes where indexname = 'notification_outbox_due_idx' \
             union all select 'policy' from pg_policies where policyname = 'outbox_scanner_lookup' \
             union all select 'function' from pg_proc where proname = 'ultracore_tenants_with_due_notifications' \
             union all select 'grant' from information_schema.column_privileges \
              where grantee = 'ultracore_outbox_scanner' and table_name = 'notification_outbox' \
             order by 1",
        )
        .await
    };
    let all = ["column", "function", "grant", "grant", "grant", "index", "policy"].map(String::from);
    assert_eq!(present(owner.clone()).await, all.to_vec());

    // Roll back 0013 and whatever came after it.
    let names: Vec<String> = migration::Migrator::get_migration_with_status(&owner)
        .await
        .expect("status")
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let position = names
        .iter()
        .position(|n| n == "0013_notification_retry")
        .expect("0013 is registered");
    let steps = u32::try_from(names.len() - position).expect("a few migrations");
    migration::Migrator::down(&owner, Some(steps))
        .await
        .expect("down to 0012");
    assert_eq!(
        present(owner.clone()).await,
        Vec::<String>::new(),
        "0013 left nothing behind"
    );
    assert_eq!(
        sql::scalar(
            &owner,
            "select count(*) from pg_roles where rolname = 'ultracore_outbox_scanner'"
        )
        .await
        .as_deref(),
        Some("1"),
        "roles are cluster-wide: down keeps it"
    );
    migration::Migrator::up(&owner, None).await.expect("up again");
    assert_eq!(present(owner.clone()).await, all.to_vec());
}
