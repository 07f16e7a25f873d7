//! Dashboard analytics (`securityEventCounts`, `threatCounts`, `securityEventTotals`):
//! exact counts per UTC bucket and key for rows written here, whatever the session time
//! zone; tenant B's rows never counted for A; customers count only their own events and
//! get FORBIDDEN for threats; range and input validation; and, on a few hundred thousand
//! generated rows, the plans of the gateway's own statements use indexes, never a
//! sequential scan of security_events.

mod support;

use std::collections::BTreeMap;

use api::db::{Access, TenantScope, begin_tenant_transaction};
use api::graphql::guards::Scope;
use api::graphql::query::analytics::{
    EventCountFilter, EventGroup, TimeBucket, event_counts_statement, event_totals_statement,
};
use api::graphql::types::enums::{EventCategory, Severity};
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use support::fixture::{A, B, Fixture, TenantData, run, tenant_txn};
use support::gateway::{TestGateway, errors, first_error_code};
use support::{TestDb, sql};
use uuid::Uuid;

/// The start of the test window's first day (far from the fixture's rows, which are
/// recent).
fn day0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 3, 14, 0, 0, 0).unwrap()
}

fn at(hours: i64, minutes: i64, seconds: i64) -> DateTime<Utc> {
    day0() + Duration::hours(hours) + Duration::minutes(minutes) + Duration::seconds(seconds)
}

/// The queried range: not aligned at its start, so the first bucket is partial.
fn from() -> DateTime<Utc> {
    at(10, 30, 0)
}

fn to() -> DateTime<Utc> {
    at(26, 0, 0)
}

/// One security event to write: (user, type, category, severity, time).
#[derive(Debug, Clone)]
struct Ev {
    user: Option<&'static str>,
    event_type: &'static str,
    category: &'static str,
    severity: &'static str,
    at: DateTime<Utc>,
}

fn ev(
    user: Option<&'static str>,
    event_type: &'static str,
    category: &'static str,
    severity: &'static str,
    at: DateTime<Utc>,
) -> Ev {
    Ev {
        user,
        event_type,
        category,
        severity,
        at,
    }
}

/// A's events: some just outside the range, some on bucket edges, a gap at 12:00-23:00.
fn a_events() -> Vec<Ev> {
    vec![
        ev(
            Some("customer"),
            "login_failure",
            "authentication",
            "high",
            at(10, 29, 59),
        ), // before from
        ev(
            Some("customer"),
            "login_failure",
            "authentication",
            "low",
            at(10, 30, 0),
        ), // == from
        ev(
            Some("customer"),
            "login_failure",
            "authentication",
            "high",
            at(10, 45, 0),
        ),
        ev(None, "intel_match", "threat", "critical", at(10, 59, 59)),
        ev(
            Some("customer2"),
            "session_refresh",
            "session",
            "medium",
            at(11, 0, 0),
        ),
        ev(
            Some("officer"),
            "login_failure",
            "authentication",
            "high",
            at(11, 30, 0),
        ),
        ev(
            Some("officer"),
            "login_success",
            "authentication",
            "low",
            at(11, 31, 0),
        ),
        ev(
            Some("customer"),
            "password_change",
            "account",
            "low",
            at(23, 59, 59),
        ),
        ev(
            Some("customer"),
            "password_change",
            "account",
            "low",
            at(24, 0, 0),
        ),
        ev(None, "rate_limited", "rate_limit", "medium", at(25, 15, 0)),
        ev(None, "rate_limited", "rate_limit", "high", at(25, 59, 59)),
        ev(
            Some("customer"),
            "login_failure",
            "authentication",
            "high",
            at(26, 0, 0),
        ), // == to
    ]
}

/// B's events in the same range, including a category A has none of (incident).
fn b_events() -> Vec<Ev> {
    vec![
        ev(
            Some("customer"),
            "login_failure",
            "authentication",
            "high",
            at(10, 40, 0),
        ),
        ev(None, "intel_match", "threat", "critical", at(11, 10, 0)),
        ev(
            Some("officer"),
            "incident_opened",
            "incident",
            "critical",
            at(11, 20, 0),
        ),
        ev(
            Some("customer"),
            "password_change",
            "account",
            "low",
            at(24, 30, 0),
        ),
        ev(None, "rate_limited", "rate_limit", "medium", at(12, 0, 0)),
    ]
}

async fn insert_events(owner: &DatabaseConnection, t: &TenantData, events: &[Ev]) {
    let txn = tenant_txn(owner, t.tenant_id).await;
    for e in events {
        run(
            &txn,
            "insert into security_events (tenant_id, user_id, event_type, event_category, severity, \
                                          description, \"timestamp\") \
             values ($1, $2, $3, $4, $5, 'analytics test', $6)",
            vec![
                t.tenant_id.into(),
                e.user.map(|u| t.user(u)).into(),
                e.event_type.into(),
                e.category.into(),
                e.severity.into(),
                e.at.into(),
            ],
        )
        .await;
    }
    txn.commit().await.expect("commit events");
}

/// One threat to write: (type, severity, status, time).
type Th = (&'static str, &'static str, &'static str, DateTime<Utc>);

fn a_threats() -> Vec<Th> {
    vec![
        ("brute_force", "high", "detected", at(10, 0, 0)), // before from
        ("brute_force", "high", "detected", at(10, 31, 0)),
        ("brute_force", "critical", "investigating", at(10, 50, 0)),
        ("credential_stuffing", "high", "detected", at(11, 5, 0)),
        ("impossible_travel", "medium", "resolved", at(25, 0, 0)),
    ]
}

fn b_threats() -> Vec<Th> {
    vec![
        ("brute_force", "high", "detected", at(10, 40, 0)),
        ("password_spraying", "low", "mitigated", at(11, 40, 0)),
    ]
}

async fn insert_threats(owner: &DatabaseConnection, t: &TenantData, threats: &[Th]) {
    let txn = tenant_txn(owner, t.tenant_id).await;
    for (threat_type, severity, status, when) in threats {
        run(
            &txn,
            "insert into threat_events (tenant_id, threat_type, severity, status, description, detected_at) \
             values ($1, $2, $3, $4, 'analytics test', $5)",
            vec![
                t.tenant_id.into(),
                (*threat_type).into(),
                (*severity).into(),
                (*status).into(),
                (*when).into(),
            ],
        )
        .await;
    }
    txn.commit().await.expect("commit threats");
}

/// (bucket start, key, count), sorted.
type Counts = Vec<(DateTime<Utc>, Option<String>, i64)>;

/// What the counts must be: rows in [from, to) kept by `keep`, bucketed in UTC.
fn expected<T>(
    rows: &[T],
    time: impl Fn(&T) -> DateTime<Utc>,
    bucket: Duration,
    key: impl Fn(&T) -> Option<String>,
    keep: impl Fn(&T) -> bool,
) -> Counts {
    let mut map: BTreeMap<(DateTime<Utc>, Option<String>), i64> = BTreeMap::new();
    for r in rows {
        let t = time(r);
        if t >= from() && t < to() && keep(r) {
            *map.entry((t.duration_trunc(bucket).unwrap(), key(r)))
                .or_default() += 1;
        }
    }
    map.into_iter().map(|((b, k), n)| (b, k, n)).collect()
}

/// The counts a response gave at `field`.
fn counts(data: &Value, field: &str) -> Counts {
    let mut out: Counts = data[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not a list: {data:#}"))
        .iter()
        .map(|c| {
            let start = DateTime::parse_from_rfc3339(c["bucketStart"].as_str().expect("bucketStart"))
                .expect("RFC 3339 bucketStart")
                .with_timezone(&Utc);
            (
                start,
                c["key"].as_str().map(str::to_string),
                c["count"].as_i64().expect("count"),
            )
        })
        .collect();
    let sorted = {
        let mut s = out.clone();
        s.sort();
        s
    };
    assert_eq!(out, sorted, "{field} is ordered by bucket, then key");
    out.sort();
    out
}

/// An enum key as the API names it: the stored value upper-cased (`rate_limit` →
/// `RATE_LIMIT`).
fn upper(stored: &str) -> Option<String> {
    Some(stored.to_uppercase())
}

const EVENT_COUNTS: &str = "query($from: DateTime!, $to: DateTime!, $bucket: TimeBucket!, $groupBy: EventGroup, \
                                   $filter: EventCountFilter) { \
    securityEventCounts(from: $from, to: $to, bucket: $bucket, groupBy: $groupBy, filter: $filter) { \
      bucketStart key count } }";

const THREAT_COUNTS: &str = "query($from: DateTime!, $to: DateTime!, $bucket: TimeBucket!, $groupBy: ThreatGroup, \
                                    $filter: ThreatCountFilter) { \
    threatCounts(from: $from, to: $to, bucket: $bucket, groupBy: $groupBy, filter: $filter) { \
      bucketStart key count } }";

const TOTALS: &str = "query($from: DateTime!, $to: DateTime!, $filter: EventCountFilter) { \
    securityEventTotals(from: $from, to: $to, filter: $filter) { \
      bySeverity { key count } byCategory { key count } } }";

fn vars(bucket: &str, group_by: Option<&str>, filter: Value) -> Value {
    json!({
        "from": from().to_rfc3339(),
        "to": to().to_rfc3339(),
        "bucket": bucket,
        "groupBy": group_by,
        "filter": filter,
    })
}

fn hour() -> Duration {
    Duration::hours(1)
}

fn day() -> Duration {
    Duration::days(1)
}

struct World {
    gw: TestGateway,
    fx: Fixture,
    owner: DatabaseConnection,
    db: TestDb,
}

/// The fixture, the events and threats above, and a gateway.
async fn world() -> World {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let owner = db.owner().await;
    insert_events(&owner, &fx.a, &a_events()).await;
    insert_events(&owner, &fx.b, &b_events()).await;
    insert_threats(&owner, &fx.a, &a_threats()).await;
    insert_threats(&owner, &fx.b, &b_threats()).await;
    let gw = TestGateway::start(&db).await;
    World { gw, fx, owner, db }
}

impl World {
    async fn data(&self, slug: &str, user: &str, query: &str, variables: Value) -> Value {
        let token = self.fx.login(&self.gw, slug, user).await;
        self.gw.data(Some(&token), query, variables).await
    }
}

#[tokio::test]
async fn security_event_counts_are_exact_per_utc_bucket_and_key() {
    let w = world().await;
    let a = a_events();
    let sev = |e: &Ev| upper(e.severity);
    let cat = |e: &Ev| upper(e.category);
    let all = |_: &Ev| true;
    let time = |e: &Ev| e.at;

    // Written out once by hand: the partial first bucket, the edges, the gap omitted.
    let data = w
        .data(A, "officer", EVENT_COUNTS, vars("HOUR", None, Value::Null))
        .await;
    let got = counts(&data, "securityEventCounts");
    assert_eq!(
        got,
        vec![
            (at(10, 0, 0), None, 3),
            (at(11, 0, 0), None, 3),
            (at(23, 0, 0), None, 1),
            (at(24, 0, 0), None, 1),
            (at(25, 0, 0), None, 2),
        ],
        "{data:#}"
    );
    assert_eq!(got, expected(&a, time, hour(), |_| None, all));
    assert_eq!(
        data["securityEventCounts"][0]["bucketStart"], "2021-03-14T10:00:00+00:00",
        "bucket starts are written in UTC"
    );

    let cases: Vec<(&str, Option<&str>, Value, Counts)> = vec![
        (
            "HOUR",
            Some("SEVERITY"),
            Value::Null,
            expected(&a, time, hour(), sev, all),
        ),
        (
            "HOUR",
            Some("CATEGORY"),
            Value::Null,
            expected(&a, time, hour(), cat, all),
        ),
        (
            "HOUR",
            Some("TYPE"),
            json!({ "eventTypes": ["login_failure", "rate_limited"] }),
            expected(
                &a,
                time,
                hour(),
                |e| Some(e.event_type.to_string()),
                |e| ["login_failure", "rate_limited"].contains(&e.event_type),
            ),
        ),
        // UTC days: 23:59:59 and 00:00:00 fall on different days, whatever the session's
        // time zone.
        (
            "DAY",
            Some("CATEGORY"),
            Value::Null,
            expected(&a, time, day(), cat, all),
        ),
        ("DAY", None, Value::Null, expected(&a, time, day(), |_| None, all)),
        (
            "DAY",
            Some("SEVERITY"),
            json!({ "severities": ["HIGH", "CRITICAL"], "categories": ["AUTHENTICATION", "THREAT"] }),
            expected(&a, time, day(), sev, |e| {
                ["high", "critical"].contains(&e.severity)
                    && ["authentication", "threat"].contains(&e.category)
            }),
        ),
    ];
    for (bucket, group_by, filter, want) in cases {
        let data = w
            .data(A, "officer", EVENT_COUNTS, vars(bucket, group_by, filter.clone()))
            .await;
        assert_eq!(
            counts(&data, "securityEventCounts"),
            want,
            "{bucket} by {group_by:?} with {filter}: {data:#}"
        );
    }
    let day_counts = expected(&a, time, day(), |_| None, all);
    assert_eq!(
        day_counts,
        vec![(at(0, 0, 0), None, 7), (at(24, 0, 0), None, 3)],
        "the expectation itself"
    );

    // The gateway's connections run in UTC (sqlx sets it); the statement does not depend
    // on that: in a session 13:45 ahead of UTC its DAY buckets are still UTC days.
    let statement = event_counts_statement(
        Scope::Tenant,
        from(),
        to(),
        TimeBucket::Day,
        None,
        Default::default(),
    )
    .unwrap();
    let app = w.db.app().await;
    let txn = begin_tenant_transaction(
        &app,
        TenantScope::tenant(w.fx.a.tenant_id),
        Access::ReadOnly,
        30_000,
    )
    .await
    .expect("begin as ultracore_app");
    run(&txn, "set local timezone = 'Pacific/Chatham'", vec![]).await;
    let rows = txn.query_all_raw(statement).await.expect("counts by DAY");
    let got: Counts = rows
        .iter()
        .map(|r| {
            (
                r.try_get::<DateTime<Utc>>("", "bucket_start").unwrap(),
                r.try_get::<Option<String>>("", "key").unwrap(),
                r.try_get::<i64>("", "count").unwrap(),
            )
        })
        .collect();
    assert_eq!(got, day_counts, "DAY buckets in a session at +13:45");
    txn.rollback().await.expect("rollback");
}

#[tokio::test]
async fn tenant_b_rows_are_never_counted_for_a_and_the_reverse() {
    let w = world().await;
    let (a, b) = (a_events(), b_events());
    let time = |e: &Ev| e.at;
    for (slug, events) in [(A, &a), (B, &b)] {
        let data = w
            .data(
                slug,
                "super_admin",
                EVENT_COUNTS,
                vars("HOUR", Some("CATEGORY"), Value::Null),
            )
            .await;
        assert_eq!(
            counts(&data, "securityEventCounts"),
            expected(events, time, hour(), |e| upper(e.category), |_| true),
            "{slug}: {data:#}"
        );
    }
    // INCIDENT is B's only: A's totals list it with 0.
    let data = w
        .data(
            A,
            "officer",
            TOTALS,
            json!({ "from": from().to_rfc3339(), "to": to().to_rfc3339() }),
        )
        .await;
    let incident = data["securityEventTotals"]["byCategory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "INCIDENT")
        .cloned();
    assert_eq!(
        incident,
        Some(json!({ "key": "INCIDENT", "count": 0 })),
        "{data:#}"
    );

    let threat_time = |t: &Th| t.3;
    for (slug, threats) in [(A, a_threats()), (B, b_threats())] {
        let data = w
            .data(
                slug,
                "officer",
                THREAT_COUNTS,
                vars("HOUR", Some("STATUS"), Value::Null),
            )
            .await;
        assert_eq!(
            counts(&data, "threatCounts"),
            expected(&threats, threat_time, hour(), |t| upper(t.2), |_| true),
            "{slug}: {data:#}"
        );
    }
}

#[tokio::test]
async fn threat_counts_are_exact_per_bucket_and_key() {
    let w = world().await;
    let a = a_threats();
    let time = |t: &Th| t.3;
    let data = w
        .data(A, "officer", THREAT_COUNTS, vars("HOUR", None, Value::Null))
        .await;
    assert_eq!(
        counts(&data, "threatCounts"),
        vec![
            (at(10, 0, 0), None, 2),
            (at(11, 0, 0), None, 1),
            (at(25, 0, 0), None, 1)
        ],
        "{data:#}"
    );
    let cases: Vec<(&str, Option<&str>, Value, Counts)> = vec![
        (
            "HOUR",
            Some("SEVERITY"),
            Value::Null,
            expected(&a, time, hour(), |t| upper(t.1), |_| true),
        ),
        (
            "DAY",
            Some("TYPE"),
            Value::Null,
            expected(&a, time, day(), |t| Some(t.0.to_string()), |_| true),
        ),
        (
            "DAY",
            Some("STATUS"),
            json!({ "severities": ["HIGH"], "threatTypes": ["brute_force", "credential_stuffing"] }),
            expected(
                &a,
                time,
                day(),
                |t| upper(t.2),
                |t| t.1 == "high" && ["brute_force", "credential_stuffing"].contains(&t.0),
            ),
        ),
        (
            "HOUR",
            Some("TYPE"),
            json!({ "statuses": ["INVESTIGATING", "RESOLVED"] }),
            expected(
                &a,
                time,
                hour(),
                |t| Some(t.0.to_string()),
                |t| ["investigating", "resolved"].contains(&t.2),
            ),
        ),
    ];
    for (bucket, group_by, filter, want) in cases {
        assert!(!want.is_empty());
        let data = w
            .data(
                A,
                "officer",
                THREAT_COUNTS,
                vars(bucket, group_by, filter.clone()),
            )
            .await;
        assert_eq!(
            counts(&data, "threatCounts"),
            want,
            "{bucket} by {group_by:?} with {filter}: {data:#}"
        );
    }
}

#[tokio::test]
async fn totals_list_every_severity_and_category_in_order_with_zeros() {
    let w = world().await;
    let data = w
        .data(
            A,
            "officer",
            TOTALS,
            json!({ "from": from().to_rfc3339(), "to": to().to_rfc3339() }),
        )
        .await;
    assert_eq!(
        data["securityEventTotals"],
        json!({
            "bySeverity": [
                { "key": "LOW", "count": 4 },
                { "key": "MEDIUM", "count": 2 },
                { "key": "HIGH", "count": 3 },
                { "key": "CRITICAL", "count": 1 },
            ],
            "byCategory": [
                { "key": "AUTHENTICATION", "count": 4 },
                { "key": "AUTHORIZATION", "count": 0 },
                { "key": "ACCOUNT", "count": 2 },
                { "key": "SESSION", "count": 1 },
                { "key": "THREAT", "count": 1 },
                { "key": "INCIDENT", "count": 0 },
                { "key": "RATE_LIMIT", "count": 2 },
            ],
        }),
        "{data:#}"
    );
    let data = w
        .data(
            A,
            "officer",
            TOTALS,
            json!({ "from": from().to_rfc3339(), "to": to().to_rfc3339(),
                    "filter": { "categories": ["AUTHENTICATION"] } }),
        )
        .await;
    assert_eq!(
        data["securityEventTotals"]["bySeverity"],
        json!([
            { "key": "LOW", "count": 2 },
            { "key": "MEDIUM", "count": 0 },
            { "key": "HIGH", "count": 2 },
            { "key": "CRITICAL", "count": 0 },
        ]),
        "{data:#}"
    );
}

#[tokio::test]
async fn customers_count_their_own_events_and_may_not_count_threats() {
    let w = world().await;
    let a = a_events();
    let time = |e: &Ev| e.at;
    for customer in ["customer", "customer2"] {
        let data = w
            .data(
                A,
                customer,
                EVENT_COUNTS,
                vars("HOUR", Some("SEVERITY"), Value::Null),
            )
            .await;
        let want = expected(
            &a,
            time,
            hour(),
            |e| upper(e.severity),
            |e| e.user == Some(customer),
        );
        assert!(!want.is_empty());
        assert_eq!(counts(&data, "securityEventCounts"), want, "{customer}: {data:#}");
    }
    let data = w
        .data(
            A,
            "customer",
            TOTALS,
            json!({ "from": from().to_rfc3339(), "to": to().to_rfc3339() }),
        )
        .await;
    let severities: Vec<i64> = data["securityEventTotals"]["bySeverity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["count"].as_i64().unwrap())
        .collect();
    // The customer's own in range: low (10:30), high (10:45), low (23:59:59), low (00:00).
    assert_eq!(severities, [3, 0, 1, 0], "{data:#}");

    let token = w.fx.login(&w.gw, A, "customer").await;
    let (status, body) =
        w.gw.gql(Some(&token), THREAT_COUNTS, vars("HOUR", None, Value::Null))
            .await;
    assert_eq!(status, 200);
    assert_eq!(first_error_code(&body).as_deref(), Some("FORBIDDEN"), "{body:#}");
    assert!(body["data"].is_null(), "{body:#}");
}

/// `errors[0]` of `query` as A's officer: (code, message).
async fn refusal(w: &World, token: Option<&str>, query: &str, variables: Value) -> (String, String) {
    let (status, body) = w.gw.gql(token, query, variables).await;
    assert_eq!(status, 200, "{body:#}");
    let errs = errors(&body);
    assert_eq!(errs.len(), 1, "{body:#}");
    (
        first_error_code(&body).unwrap_or_default(),
        errs[0]["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn ranges_and_inputs_are_validated() {
    let w = world().await;
    let token = w.fx.login(&w.gw, A, "officer").await;
    let range = |from: DateTime<Utc>, to: DateTime<Utc>, bucket: &str| json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339(), "bucket": bucket });
    let t = from();
    let second = Duration::seconds(1);
    for query in [EVENT_COUNTS, THREAT_COUNTS] {
        for (vars, part) in [
            (range(t, t, "HOUR"), "`to` must be after `from`"),
            (range(t, t - second, "DAY"), "`to` must be after `from`"),
            (
                range(t, t + Duration::days(31) + second, "HOUR"),
                "at most 31 days",
            ),
            (
                range(t, t + Duration::days(400) + second, "DAY"),
                "at most 400 days",
            ),
        ] {
            let (code, message) = refusal(&w, Some(&token), query, vars.clone()).await;
            assert_eq!(code, "BAD_USER_INPUT", "{vars}: {message}");
            assert!(message.contains(part), "{vars}: {message:?} should say {part:?}");
        }
        // The limits themselves are allowed.
        for vars in [
            range(t, t + Duration::days(31), "HOUR"),
            range(t, t + Duration::days(400), "DAY"),
        ] {
            let (status, body) = w.gw.gql(Some(&token), query, vars).await;
            assert_eq!(status, 200);
            assert!(errors(&body).is_empty(), "{body:#}");
        }
    }
    let (code, message) = refusal(
        &w,
        Some(&token),
        TOTALS,
        json!({ "from": t.to_rfc3339(), "to": (t + Duration::days(401)).to_rfc3339() }),
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("at most 400 days"), "{message}");

    let (code, message) = refusal(
        &w,
        Some(&token),
        EVENT_COUNTS,
        vars("HOUR", None, json!({ "severities": [] })),
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT", "{message}");
    assert!(message.contains("severities"), "{message}");

    let (code, _) = refusal(&w, None, EVENT_COUNTS, vars("HOUR", None, Value::Null)).await;
    assert_eq!(code, "UNAUTHENTICATED");

    // More (bucket, key) pairs than one answer holds: 10,001 types in one hour.
    let txn = tenant_txn(&w.owner, w.fx.a.tenant_id).await;
    run(
        &txn,
        "insert into security_events (tenant_id, event_type, event_category, severity, \"timestamp\") \
         select $1, 'generated_' || g, 'session', 'low', $2 from generate_series(1, 10001) g",
        vec![w.fx.a.tenant_id.into(), at(-24, 0, 0).into()],
    )
    .await;
    txn.commit().await.expect("commit");
    let many = json!({ "from": at(-24, 0, 0).to_rfc3339(), "to": at(-23, 0, 0).to_rfc3339(),
                       "bucket": "HOUR", "groupBy": "TYPE" });
    let (code, message) = refusal(&w, Some(&token), EVENT_COUNTS, many.clone()).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("10000"), "{message}");
    // Without the split they are one count.
    let mut one = many;
    one["groupBy"] = Value::Null;
    let data = w.gw.data(Some(&token), EVENT_COUNTS, one).await;
    assert_eq!(
        counts(&data, "securityEventCounts"),
        vec![(at(-24, 0, 0), None, 10_001)]
    );
}

// ---------------------------------------------------------------------------------------
// Plans at scale
// ---------------------------------------------------------------------------------------

/// Every node of a JSON plan: (node type, relation, index).
fn plan_nodes(plan: &Value, out: &mut Vec<(String, String, String)>) {
    let text = |k: &str| plan[k].as_str().unwrap_or_default().to_string();
    out.push((text("Node Type"), text("Relation Name"), text("Index Name")));
    for child in plan["Plans"].as_array().into_iter().flatten() {
        plan_nodes(child, out);
    }
}

/// The plan PostgreSQL chooses for `statement` as the serving role in `tenant`.
async fn explain(app: &DatabaseConnection, tenant: Uuid, user: Option<Uuid>, statement: Statement) -> Value {
    let scope = TenantScope {
        tenant_id: tenant,
        user_id: user,
    };
    let txn = begin_tenant_transaction(app, scope, Access::ReadOnly, 30_000)
        .await
        .expect("begin a tenant transaction as ultracore_app");
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("explain (format json) {}", statement.sql),
            statement.values.map(|v| v.0).unwrap_or_default(),
        ))
        .await
        .expect("explain")
        .expect("a plan");
    let plan: Value = row.try_get("", "QUERY PLAN").expect("json plan");
    txn.rollback().await.expect("rollback");
    plan[0]["Plan"].clone()
}

/// VACUUM ANALYZE until every page of security_events is all-visible, as autovacuum
/// keeps an append-only table (0017 lowers its insert threshold). A VACUUM cannot mark
/// rows all-visible while a transaction older than them runs in the database (an
/// autovacuum ANALYZE of another table, say), so it is retried for a while.
async fn all_visible(owner: &DatabaseConnection) {
    let mut state = String::new();
    for _ in 0..100 {
        sql::exec(owner, "vacuum analyze security_events").await;
        // The table is partitioned by month (0021): its pages are its partitions'.
        state = sql::scalar(
            owner,
            "select sum(c.relpages) || '/' || sum(c.relallvisible) from pg_inherits i \
               join pg_class c on c.oid = i.inhrelid where i.inhparent = 'security_events'::regclass",
        )
        .await
        .unwrap_or_default();
        if let Some((pages, visible)) = state.split_once('/')
            && pages == visible
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("security_events never became all-visible (pages/all-visible: {state})");
}

#[tokio::test]
async fn event_counts_use_an_index_on_a_few_hundred_thousand_rows() {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let owner = db.owner().await;
    // 250,000 events over 90 days before `end`: 4 in 5 are A's (a big tenant), 1 in 50
    // of A's are the customer's. Triggers are skipped (session_replication_role, as a
    // bulk load would): the live feed has nothing to do with plans.
    let end = Utc.with_ymd_and_hms(2021, 6, 1, 0, 0, 0).unwrap();
    let customer = fx.a.user("customer");
    // The months of that history, as an operator importing it would prepare them.
    sql::exec(
        &owner,
        "select count(*) from ultracore_ensure_partitions('2021-03-01', '2021-05-31')",
    )
    .await;
    let txn = tenant_txn(&owner, fx.a.tenant_id).await;
    run(&txn, "set local session_replication_role = replica", vec![]).await;
    run(
        &txn,
        "insert into security_events (tenant_id, user_id, event_type, event_category, severity, \"timestamp\") \
         select case when g % 5 = 0 then $2 else $1 end, \
                case when g % 50 = 1 then $3 end, \
                'type_' || (g % 12), \
                (array['authentication','authorization','account','session','threat','incident','rate_limit'])[1 + g % 7], \
                (array['low','medium','high','critical'])[1 + (g / 7) % 4], \
                $4::timestamptz - (g * interval '90 days') / 250000 \
         from generate_series(1, 250000) g",
        vec![
            fx.a.tenant_id.into(),
            fx.b.tenant_id.into(),
            customer.into(),
            end.into(),
        ],
    )
    .await;
    txn.commit().await.expect("commit generated events");
    all_visible(&owner).await;
    let app = db.app().await;

    let last = |d: Duration| (end - d, end);
    let severity_only = || EventCountFilter {
        severities: Some(vec![Severity::High, Severity::Critical]),
        ..Default::default()
    };
    let mut cases: Vec<(String, Option<Uuid>, Statement)> = vec![];
    for group_by in [
        None,
        Some(EventGroup::Severity),
        Some(EventGroup::Category),
        Some(EventGroup::Type),
    ] {
        let (from, to) = last(Duration::hours(24));
        cases.push((
            format!("24 hours by HOUR, {group_by:?}"),
            None,
            event_counts_statement(
                Scope::Tenant,
                from,
                to,
                TimeBucket::Hour,
                group_by,
                Default::default(),
            )
            .unwrap(),
        ));
    }
    let (from, to) = last(Duration::days(7));
    cases.push((
        "7 days by DAY, CATEGORY, high and critical".into(),
        None,
        event_counts_statement(
            Scope::Tenant,
            from,
            to,
            TimeBucket::Day,
            Some(EventGroup::Category),
            severity_only(),
        )
        .unwrap(),
    ));
    let (from, to) = last(Duration::days(31));
    cases.push((
        "31 days by HOUR, SEVERITY, the customer's own".into(),
        Some(customer),
        event_counts_statement(
            Scope::Own(customer),
            from,
            to,
            TimeBucket::Hour,
            Some(EventGroup::Severity),
            Default::default(),
        )
        .unwrap(),
    ));
    let (from, to) = last(Duration::hours(24));
    cases.push((
        "totals over 24 hours, authentication".into(),
        None,
        event_totals_statement(
            Scope::Tenant,
            from,
            to,
            EventCountFilter {
                categories: Some(vec![EventCategory::Authentication]),
                ..Default::default()
            },
        )
        .unwrap(),
    ));

    // Each month's partition has its own copy of idx_security_events_tenant.
    let tenant_index = sql::strings(
        &owner,
        "select c.relname::text as v from pg_inherits i join pg_class c on c.oid = i.inhrelid \
          where i.inhparent = 'idx_security_events_tenant'::regclass",
    )
    .await;
    let mut findings = vec![];
    for (name, user, statement) in cases {
        let plan = explain(&app, fx.a.tenant_id, user, statement).await;
        let mut nodes = vec![];
        plan_nodes(&plan, &mut nodes);
        let on_events: Vec<&(String, String, String)> = nodes
            .iter()
            .filter(|(_, r, _)| r.starts_with("security_events"))
            .collect();
        if on_events.iter().any(|(t, _, _)| t.contains("Seq Scan")) || on_events.is_empty() {
            findings.push(format!("{name}: {nodes:?}"));
        }
        if name == "24 hours by HOUR, Some(Severity)"
            && !on_events
                .iter()
                .any(|(t, _, i)| t == "Index Only Scan" && tenant_index.contains(i))
        {
            let pages = sql::scalar(
                &owner,
                "select sum(c.relpages) || ' pages, ' || sum(c.relallvisible) || ' all-visible' \
                   from pg_inherits i join pg_class c on c.oid = i.inhrelid \
                  where i.inhparent = 'security_events'::regclass",
            )
            .await;
            findings.push(format!(
                "{name}: not an index-only scan of idx_security_events_tenant ({pages:?}): {nodes:?}"
            ));
        }
    }
    support::assert_no_findings("plans of the analytics statements", &findings);
}
