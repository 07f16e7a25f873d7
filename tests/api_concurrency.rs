//! 200 concurrent requests alternating tenants A ("acme") and B ("globex"), on one
//! gateway and one pool: list queries with relations, fetches of the other tenant's ids,
//! operations that fail on purpose (a bad cursor, a forbidden field, a mutation that must
//! roll back) and successful mutations. No answer of one tenant may ever carry an id of
//! the other (including ids the other tenant creates during the run), the failures must
//! fail with their code, and afterwards each tenant holds exactly the threats and audit
//! rows its own successful mutations wrote.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use serde_json::{Value, json};
use support::fixture::{Fixture, TenantData};
use support::gateway::{TestGateway, errors, first_error_code, parse_body};
use support::walk::{tenant_count, tenant_universe, uuid_column, uuids_in};
use support::{TestDb, assert_no_findings};
use uuid::Uuid;

/// The requests of the run.
const REQUESTS: usize = 200;

/// What one request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// securityEvents with each event's user.
    ListEvents,
    /// users.
    ListUsers,
    /// auditLog with each entry's user.
    ListAudit,
    /// The other tenant's ids by id (users, events, threats, incidents, and the newest
    /// threat the other tenant created during the run): all null.
    ForeignById,
    /// A cursor that is not one: BAD_USER_INPUT.
    InvalidCursor,
    /// A customer asking for the audit log: FORBIDDEN.
    ForbiddenField,
    /// Two reportThreat in one operation, the second invalid: BAD_USER_INPUT, and the
    /// first must be rolled back with it.
    RolledBackMutation,
    /// reportThreat that succeeds.
    Report,
}

const KINDS: [Kind; 8] = [
    Kind::ListEvents,
    Kind::ListUsers,
    Kind::ListAudit,
    Kind::ForeignById,
    Kind::InvalidCursor,
    Kind::ForbiddenField,
    Kind::RolledBackMutation,
    Kind::Report,
];

const LIST_EVENTS: &str =
    "{ securityEvents(first: 50) { totalCount edges { node { id userId user { id username } } } } }";
const LIST_USERS: &str = "{ users(first: 50) { totalCount edges { node { id username email } } } }";
const LIST_AUDIT: &str =
    "{ auditLog(first: 50) { totalCount edges { node { id userId entityId action user { id } } } } }";
const FOREIGN_BY_ID: &str = "query($user: UUID!, $event: UUID!, $threat: UUID!, $incident: UUID!, $fresh: UUID!) { \
    user(id: $user) { id } securityEvent(id: $event) { id } threatEvent(id: $threat) { id } \
    securityIncident(id: $incident) { id } fresh: threatEvent(id: $fresh) { id affectedUsers { id } } }";
const INVALID_CURSOR: &str =
    "{ securityEvents(first: 5, after: \"not-a-cursor\") { edges { node { id } } } }";
const FORBIDDEN_FIELD: &str = "{ me { id } auditLog(first: 5) { edges { node { id } } } }";
const ROLLED_BACK: &str = "mutation($ok: ReportThreatInput!, $bad: ReportThreatInput!) { \
    first: reportThreat(input: $ok) { id } second: reportThreat(input: $bad) { id } }";
const REPORT: &str =
    "mutation($input: ReportThreatInput!) { reportThreat(input: $input) { id affectedUsers { id } } }";

/// The two tenants' sides of the run.
struct Side {
    data: TenantData,
    admin: String,
    customer: String,
}

/// One request's outcome.
struct Outcome {
    i: usize,
    tenant: usize,
    kind: Kind,
    status: u16,
    text: String,
}

fn uuid_at(value: &Value, pointer: &str) -> Option<Uuid> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn node_ids(connection: &Value, pointer: &str) -> Vec<Uuid> {
    connection["edges"]
        .as_array()
        .map(|edges| edges.iter().filter_map(|e| uuid_at(e, pointer)).collect())
        .unwrap_or_default()
}

fn threat_input(threat_type: &str, affected: Uuid, confidence: &str) -> Value {
    json!({ "threatType": threat_type, "severity": "HIGH", "affectedUserIds": [affected],
            "confidence": confidence, "description": "concurrency test" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_requests_alternating_tenants_never_cross() {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    let mut sides = vec![];
    for data in [fx.a.clone(), fx.b.clone()] {
        let admin = fx.login(&gw, data.slug, "admin").await;
        let customer = fx.login(&gw, data.slug, "customer").await;
        sides.push(Side {
            data,
            admin,
            customer,
        });
    }
    let audit_before: Vec<i64> = join_all(
        sides
            .iter()
            .map(|s| tenant_count(&owner, "audit_log", s.data.tenant_id)),
    )
    .await;

    // Threats each tenant creates during the run, as soon as they are created: later
    // requests of the other tenant ask for them by id.
    let created: Arc<Mutex<[Vec<Uuid>; 2]>> = Arc::new(Mutex::new([vec![], vec![]]));
    let sides = &sides;
    let gw = &gw;
    let fresh_used = &AtomicUsize::new(0);
    let requests = (0..REQUESTS).map(|i| {
        let created = created.clone();
        async move {
            let tenant = i % 2;
            let other = 1 - tenant;
            let side = &sides[tenant];
            let them = &sides[other].data;
            let kind = KINDS[(i / 2) % KINDS.len()];
            let (token, query, variables) = match kind {
                Kind::ListEvents => (&side.admin, LIST_EVENTS, json!({})),
                Kind::ListUsers => (&side.admin, LIST_USERS, json!({})),
                Kind::ListAudit => (&side.admin, LIST_AUDIT, json!({})),
                Kind::ForeignById => {
                    // The second half waits for a threat the other tenant created during
                    // the run (the first half was sent before any could exist).
                    if i >= REQUESTS / 2 {
                        for _ in 0..500 {
                            if !created.lock().expect("created ids")[other].is_empty() {
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    }
                    let newest = created.lock().expect("created ids")[other].last().copied();
                    if newest.is_some() {
                        fresh_used.fetch_add(1, Ordering::SeqCst);
                    }
                    let fresh = newest.unwrap_or(them.threats[1]);
                    (
                        &side.admin,
                        FOREIGN_BY_ID,
                        json!({ "user": them.user("customer"), "event": them.events[i % them.events.len()],
                                "threat": them.threats[0], "incident": them.incidents[0], "fresh": fresh }),
                    )
                }
                Kind::InvalidCursor => (&side.admin, INVALID_CURSOR, json!({})),
                Kind::ForbiddenField => (&side.customer, FORBIDDEN_FIELD, json!({})),
                Kind::RolledBackMutation => (
                    &side.admin,
                    ROLLED_BACK,
                    json!({
                        "ok": threat_input(&format!("rollback-{}-{i}", side.data.slug), side.data.user("customer"), "50"),
                        "bad": threat_input(&format!("rollback-bad-{}-{i}", side.data.slug), side.data.user("customer"), "150"),
                    }),
                ),
                Kind::Report => (
                    &side.admin,
                    REPORT,
                    json!({ "input": threat_input(
                        &format!("concurrent-{}-{i}", side.data.slug),
                        side.data.user("customer"),
                        "75",
                    ) }),
                ),
            };
            let body = json!({ "query": query, "variables": variables }).to_string();
            let (status, text) = gw.post_raw("application/json", body, Some(token)).await;
            if kind == Kind::Report
                && let Some(id) = uuid_at(&parse_body(&text), "/data/reportThreat/id")
            {
                created.lock().expect("created ids")[tenant].push(id);
            }
            Outcome {
                i,
                tenant,
                kind,
                status,
                text,
            }
        }
    });
    let outcomes = join_all(requests).await;
    assert!(
        fresh_used.load(Ordering::SeqCst) > 0,
        "no fetch by id asked for a threat the other tenant created during the run"
    );
    let created = created.lock().expect("created ids").clone();

    // Every id of each tenant after the run, the ids created during it included.
    let mut universe: Vec<BTreeSet<Uuid>> = vec![];
    for (t, side) in sides.iter().enumerate() {
        let mut ids = tenant_universe(&owner, side.data.tenant_id).await;
        ids.extend(created[t].iter().copied());
        universe.push(ids);
    }
    let overlap: Vec<_> = universe[0].intersection(&universe[1]).collect();
    assert!(overlap.is_empty(), "the tenants share ids {overlap:?}");

    let mut findings = vec![];
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outcomes {
        let (own, other) = (&universe[o.tenant], &universe[1 - o.tenant]);
        let slug = sides[o.tenant].data.slug;
        let what = format!("request {} ({slug}, {:?})", o.i, o.kind);
        *per_kind.entry(format!("{:?}", o.kind)).or_default() += 1;
        let crossed: Vec<Uuid> = uuids_in(&o.text).intersection(other).copied().collect();
        if !crossed.is_empty() {
            findings.push(format!(
                "{what}: the other tenant's ids {crossed:?} in {}",
                o.text
            ));
        }
        if o.status != 200 {
            findings.push(format!("{what}: HTTP {}: {}", o.status, o.text));
            continue;
        }
        let body = parse_body(&o.text);
        let code = first_error_code(&body);
        let ok = errors(&body).is_empty();
        let mut expect_ok = |rows: Vec<Uuid>| {
            if !ok {
                findings.push(format!("{what}: unexpected errors: {}", o.text));
            }
            if rows.is_empty() {
                findings.push(format!("{what}: no rows at all: {}", o.text));
            }
            for id in rows.iter().filter(|id| !own.contains(id)) {
                findings.push(format!("{what}: {id} is not a row of {slug}"));
            }
        };
        match o.kind {
            Kind::ListEvents => {
                let list = &body["data"]["securityEvents"];
                let mut rows = node_ids(list, "/node/id");
                rows.extend(node_ids(list, "/node/user/id"));
                expect_ok(rows);
            }
            Kind::ListUsers => expect_ok(node_ids(&body["data"]["users"], "/node/id")),
            Kind::ListAudit => {
                let list = &body["data"]["auditLog"];
                let mut rows = node_ids(list, "/node/id");
                rows.extend(node_ids(list, "/node/user/id"));
                expect_ok(rows);
            }
            Kind::ForeignById => {
                let data = &body["data"];
                let all_null = [
                    "user",
                    "securityEvent",
                    "threatEvent",
                    "securityIncident",
                    "fresh",
                ]
                .iter()
                .all(|f| data[*f].is_null());
                if !ok || !all_null {
                    findings.push(format!(
                        "{what}: the other tenant's ids must all be null: {}",
                        o.text
                    ));
                }
            }
            Kind::InvalidCursor => {
                let message = errors(&body)
                    .first()
                    .and_then(|e| e["message"].as_str().map(str::to_string));
                if code.as_deref() != Some("BAD_USER_INPUT") || message.as_deref() != Some("invalid cursor") {
                    findings.push(format!(
                        "{what}: expected BAD_USER_INPUT \"invalid cursor\": {}",
                        o.text
                    ));
                }
            }
            Kind::ForbiddenField => {
                let path = errors(&body).first().map(|e| e["path"].clone());
                if code.as_deref() != Some("FORBIDDEN") || path != Some(json!(["auditLog"])) {
                    findings.push(format!("{what}: expected FORBIDDEN on auditLog: {}", o.text));
                }
            }
            Kind::RolledBackMutation => {
                if code.as_deref() != Some("BAD_USER_INPUT") || !body["data"].is_null() {
                    findings.push(format!(
                        "{what}: expected BAD_USER_INPUT and no data (rolled back): {}",
                        o.text
                    ));
                }
            }
            Kind::Report => {
                let threat = uuid_at(&body, "/data/reportThreat/id");
                let affected = node_affected(&body);
                let mut rows: Vec<Uuid> = threat.into_iter().collect();
                rows.extend(affected.iter().copied());
                expect_ok(rows);
                if affected != vec![sides[o.tenant].data.user("customer")] {
                    findings.push(format!("{what}: affectedUsers {affected:?}"));
                }
            }
        }
    }
    assert_eq!(
        per_kind.values().sum::<usize>(),
        REQUESTS,
        "every request was checked: {per_kind:?}"
    );

    // Afterwards, as the owner: each tenant holds exactly the threats its own successful
    // mutations created, nothing of the rolled-back ones, and one audit row per threat.
    let reported = outcomes.iter().filter(|o| o.kind == Kind::Report).count();
    assert_eq!(
        created[0].len() + created[1].len(),
        reported,
        "every reportThreat of the run succeeded and was tracked"
    );
    for (t, side) in sides.iter().enumerate() {
        let tid = side.data.tenant_id;
        let slug = side.data.slug;
        let stored: BTreeSet<Uuid> = uuid_column(
            &owner,
            &format!(
                "select threat_id as id from threat_events where tenant_id = '{tid}' and threat_type like 'concurrent-%'"
            ),
        )
        .await;
        let mine: BTreeSet<Uuid> = created[t].iter().copied().collect();
        if stored != mine {
            findings.push(format!(
                "{slug} holds threats {stored:?}, its own mutations created {mine:?}"
            ));
        }
        let misnamed = uuid_column(
            &owner,
            &format!(
                "select threat_id as id from threat_events where tenant_id = '{tid}' \
                   and threat_type like 'concurrent-%' and threat_type not like 'concurrent-{slug}-%'"
            ),
        )
        .await;
        if !misnamed.is_empty() {
            findings.push(format!("{slug} holds the other tenant's threats {misnamed:?}"));
        }
        let rolled_back = uuid_column(
            &owner,
            &format!("select threat_id as id from threat_events where tenant_id = '{tid}' and threat_type like 'rollback-%'"),
        )
        .await;
        if !rolled_back.is_empty() {
            findings.push(format!(
                "{slug} kept threats of rolled-back mutations: {rolled_back:?}"
            ));
        }
        let audited: BTreeSet<Uuid> = uuid_column(
            &owner,
            &format!(
                "select entity_id as id from audit_log where tenant_id = '{tid}' and action = 'threat.report'"
            ),
        )
        .await;
        if audited != mine {
            findings.push(format!(
                "{slug}'s threat.report audit rows name {audited:?}, its threats are {mine:?}"
            ));
        }
        let audit_after = tenant_count(&owner, "audit_log", tid).await;
        if audit_after - audit_before[t] != mine.len() as i64 {
            findings.push(format!(
                "{slug} gained {} audit rows for {} successful mutations",
                audit_after - audit_before[t],
                mine.len()
            ));
        }
    }
    assert!(
        !created[0].is_empty() && !created[1].is_empty(),
        "both tenants created threats: {created:?}"
    );
    assert_no_findings("200 concurrent requests across tenants", &findings);
}

fn node_affected(body: &Value) -> Vec<Uuid> {
    body.pointer("/data/reportThreat/affectedUsers")
        .and_then(Value::as_array)
        .map(|users| users.iter().filter_map(|u| uuid_at(u, "/id")).collect())
        .unwrap_or_default()
}

/// The scanner the checks above rely on finds every UUID, in either case, and nothing
/// that merely contains hex digits.
#[test]
fn the_uuid_scanner_finds_whole_uuids_in_any_case() {
    let a = Uuid::now_v7();
    let b = Uuid::new_v4();
    let text = format!(
        "{{\"id\":\"{a}\",\"x\":[\"{}\"],\"n\":\"0{b}\",\"hex\":\"deadbeef-dead-beef-dead-beefdeadbeef0\"}}",
        b.to_string().to_uppercase()
    );
    assert_eq!(uuids_in(&text), BTreeSet::from([a, b]));
    assert_eq!(
        support::walk::mask_uuids(&format!("no such user {a}")),
        "no such user <uuid>"
    );
}
