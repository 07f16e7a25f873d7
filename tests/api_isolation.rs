//! Tenant isolation through every path a client has, as tenant A ("acme") with a
//! super_admin token (who may see everything in A): every root query, every relation and
//! every mutation of the LIVE schema must never show, count, change or link a row of
//! tenant B ("globex"), and asking for B's id must look exactly like asking for an id that
//! does not exist.
//!
//! The case tables below are the contract: `every_field_of_the_live_schema_has_an_isolation_case`
//! walks the schema through introspection and fails when a Query field, a Mutation field
//! or a relation field has no case here, so a field added later without an isolation case
//! breaks the build's tests. Each test below runs the cases of its table and checks at the
//! end that it exercised exactly them.

mod support;

use api::risk::sensitive::SENSITIVE_FIELDS;

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use support::fixture::{A, B, Fixture};
use support::gateway::{TEST_DATA_KEY, TestGateway, errors, first_error_code, parse_body};
use support::walk::{
    LiveSchema, fingerprint_changes, global_intel_ids, mask_uuids, tenant_count, tenant_fingerprint,
    tenant_ids, tenant_universe, uuids_in,
};
use support::{TestDb, assert_no_findings, sql};
use uuid::Uuid;

/// Root list queries and the table each lists.
const LIST_CASES: [(&str, &str); 9] = [
    ("users", "users"),
    ("sessions", "refresh_tokens"),
    ("trustedDevices", "trusted_devices"),
    ("securityEvents", "security_events"),
    ("threatEvents", "threat_events"),
    ("securityIncidents", "security_incidents"),
    ("threatIntelligence", "threat_intelligence"),
    ("rateLimitEntries", "rate_limit_entries"),
    ("auditLog", "audit_log"),
];

/// Root fetch-by-id queries and the table each reads.
const BY_ID_CASES: [(&str, &str); 9] = [
    ("user", "users"),
    ("session", "refresh_tokens"),
    ("trustedDevice", "trusted_devices"),
    ("securityEvent", "security_events"),
    ("threatEvent", "threat_events"),
    ("securityIncident", "security_incidents"),
    ("threatIndicator", "threat_intelligence"),
    ("rateLimitEntry", "rate_limit_entries"),
    ("auditEntry", "audit_log"),
];

/// Root queries about the caller (or about nothing tenant-owned).
const CALLER_CASES: [&str; 3] = ["me", "tenant", "version"];

/// Root aggregate queries (counts, no rows), the table each counts and its time column;
/// covered by `aggregate_queries_count_only_tenant_a_rows`.
const AGGREGATE_CASES: [(&str, &str, &str); 3] = [
    ("securityEventCounts", "security_events", "\"timestamp\""),
    ("threatCounts", "threat_events", "detected_at"),
    ("securityEventTotals", "security_events", "\"timestamp\""),
];

/// Object fields of aggregate results: counts, not rows, covered by their root field's
/// aggregate case.
const AGGREGATE_PARTS: [(&str, &str); 2] = [
    ("SecurityEventTotals", "bySeverity"),
    ("SecurityEventTotals", "byCategory"),
];

/// Relation fields: (type, field, table of the rows it yields).
const RELATION_CASES: [(&str, &str, &str); 14] = [
    ("User", "securityEvents", "security_events"),
    ("User", "sessions", "refresh_tokens"),
    ("User", "trustedDevices", "trusted_devices"),
    ("User", "auditLog", "audit_log"),
    ("SecurityEvent", "user", "users"),
    ("Session", "user", "users"),
    ("TrustedDevice", "user", "users"),
    ("AuditEntry", "user", "users"),
    ("RateLimitEntry", "user", "users"),
    ("ThreatEvent", "affectedUsers", "users"),
    ("SecurityIncident", "assignee", "users"),
    ("SecurityIncident", "relatedThreats", "threat_events"),
    ("SecurityIncident", "relatedEvents", "security_events"),
    ("AuthPayload", "user", "users"),
];

/// Mutations covered by `user_mutations_on_tenant_b_ids_look_like_missing_ids_and_change_nothing_in_b`.
const USER_MUTATION_CASES: [&str; 7] = [
    "login",
    "createUser",
    "updateUserProfile",
    "changeUserRole",
    "lockUser",
    "unlockUser",
    "deactivateUser",
];

/// Mutations covered by `threat_incident_and_intel_mutations_never_reach_tenant_b`.
const THREAT_MUTATION_CASES: [&str; 9] = [
    "reportThreat",
    "changeThreatStatus",
    "openIncident",
    "assignIncident",
    "changeIncidentStatus",
    "changeIncidentPriority",
    "linkIncident",
    "addThreatIndicator",
    "deactivateThreatIndicator",
];

/// Mutations covered by `device_mutations_on_tenant_b_devices_look_like_missing_ids`.
const DEVICE_MUTATION_CASES: [&str; 3] = ["renameTrustedDevice", "revokeDeviceTrust", "trustDevice"];

/// Mutations covered by `session_mutations_never_reach_tenant_b_sessions`.
const SESSION_MUTATION_CASES: [&str; 4] = ["refreshSession", "logout", "revokeSession", "revokeAllSessions"];

/// Mutations covered by `mfa_mutations_act_on_the_caller_in_tenant_a_only`.
const MFA_MUTATION_CASES: [&str; 4] = ["enrollTotp", "confirmTotp", "generateBackupCodes", "disableTotp"];

/// Mutations covered by `account_mutations_act_in_the_callers_tenant_only`.
const ACCOUNT_MUTATION_CASES: [&str; 6] = [
    "changePassword",
    "requestPasswordReset",
    "resetPassword",
    "requestEmailVerification",
    "verifyEmail",
    "register",
];

/// Raw id arrays stored on A's rows. The fixture plants B's ids in them on purpose (no
/// foreign key can hold arrays): they are A's own column values, echoed as stored, so
/// scans for B's ids skip them; the relations built from them must not cross.
const STORED_ID_ARRAYS: [&str; 3] = ["affectedUserIds", "relatedThreatIds", "relatedEventIds"];

/// A password the policy accepts, for users the tests create in B.
const B_ONLY_PASSWORD: &str = "globex only passphrase 7731 kestrel";
/// A different one for the same username created in A.
const A_PASSWORD: &str = "acme side passphrase 5519 heron";

/// Everything a test needs; fields drop in order, the database last.
struct World {
    gw: TestGateway,
    owner: DatabaseConnection,
    fx: Fixture,
    /// A's super_admin.
    token: String,
    /// B's super_admin (only to set up B-only rows).
    b_token: String,
    _db: TestDb,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let token = fx.login(&gw, A, "super_admin").await;
    let b_token = fx.login(&gw, B, "super_admin").await;
    let owner = db.owner().await;
    World {
        gw,
        owner,
        fx,
        token,
        b_token,
        _db: db,
    }
}

impl World {
    /// POSTs one operation as A's super_admin; the raw status and body text.
    async fn post(&self, query: &str, variables: Value) -> (u16, String) {
        self.post_as(Some(&self.token), query, variables).await
    }

    async fn post_as(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, String) {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.gw.post_raw("application/json", body, token).await
    }

    /// B's ids in every table, B's tenant id and the global indicator excluded.
    async fn b_universe(&self) -> BTreeSet<Uuid> {
        tenant_universe(&self.owner, self.fx.b.tenant_id).await
    }
}

/// A JSON value with the keys in `keys` removed everywhere.
fn without_keys(value: &Value, keys: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), without_keys(v, keys)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| without_keys(v, keys)).collect()),
        other => other.clone(),
    }
}

/// B's ids a response mentions (outside A's stored id arrays).
fn b_ids_in(body: &Value, b_universe: &BTreeSet<Uuid>) -> Vec<Uuid> {
    uuids_in(&without_keys(body, &STORED_ID_ARRAYS).to_string())
        .intersection(b_universe)
        .copied()
        .collect()
}

fn uuid_at(value: &Value, pointer: &str) -> Option<Uuid> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn node_ids(connection: &Value) -> Vec<Uuid> {
    connection["edges"]
        .as_array()
        .map(|edges| edges.iter().filter_map(|e| uuid_at(e, "/node/id")).collect())
        .unwrap_or_default()
}

fn ids_of(list: &Value) -> Vec<Uuid> {
    list.as_array()
        .map(|items| items.iter().filter_map(|x| uuid_at(x, "/id")).collect())
        .unwrap_or_default()
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

// ---------------------------------------------------------------------------------------
// The schema walk
// ---------------------------------------------------------------------------------------

/// The fields a connection type must have, and those of its edge type: their object
/// fields (edges, pageInfo, node) are plumbing covered by the field that returns the
/// connection, which has its own case.
const CONNECTION_FIELDS: [&str; 3] = ["edges", "pageInfo", "totalCount"];
const EDGE_FIELDS: [&str; 2] = ["cursor", "node"];

#[tokio::test]
async fn every_field_of_the_live_schema_has_an_isolation_case() {
    let w = world().await;
    let schema = LiveSchema::fetch(&w.gw, Some(&w.token)).await;
    let mut findings = vec![];

    // Query fields.
    let cased: BTreeSet<String> = LIST_CASES
        .iter()
        .map(|(f, _)| *f)
        .chain(BY_ID_CASES.iter().map(|(f, _)| *f))
        .chain(CALLER_CASES)
        .chain(AGGREGATE_CASES.iter().map(|(f, _, _)| *f))
        .map(str::to_string)
        .collect();
    for name in schema.query_names().difference(&cased) {
        findings.push(format!("Query.{name} has no isolation case"));
    }
    for name in cased.difference(&schema.query_names()) {
        findings.push(format!(
            "the case for Query.{name} names a field the schema no longer has"
        ));
    }
    for field in &schema.query {
        let is_list = LIST_CASES.iter().any(|(f, _)| *f == field.name);
        let is_by_id = BY_ID_CASES.iter().any(|(f, _)| *f == field.name);
        if is_list
            && (!field.type_name.ends_with("Connection")
                || !field.args.iter().any(|a| a == "first")
                || !field.args.iter().any(|a| a == "after"))
        {
            findings.push(format!(
                "Query.{} is cased as a list but is not a paged connection ({} {:?})",
                field.name, field.type_name, field.args
            ));
        }
        if is_by_id && field.args != ["id"] {
            findings.push(format!(
                "Query.{} is cased as a fetch by id but takes {:?}",
                field.name, field.args
            ));
        }
    }

    // Mutation fields.
    let cased: BTreeSet<String> = USER_MUTATION_CASES
        .iter()
        .chain(THREAT_MUTATION_CASES.iter())
        .chain(DEVICE_MUTATION_CASES.iter())
        .chain(SESSION_MUTATION_CASES.iter())
        .chain(MFA_MUTATION_CASES.iter())
        .chain(ACCOUNT_MUTATION_CASES.iter())
        .map(|s| s.to_string())
        .collect();
    for name in schema.mutation_names().difference(&cased) {
        findings.push(format!("Mutation.{name} has no isolation case"));
    }
    for name in cased.difference(&schema.mutation_names()) {
        findings.push(format!(
            "the case for Mutation.{name} names a field the schema no longer has"
        ));
    }

    // Relation fields of every data object type.
    let cased: BTreeSet<(String, String)> = RELATION_CASES
        .iter()
        .map(|(t, f, _)| (t.to_string(), f.to_string()))
        .chain(
            AGGREGATE_PARTS
                .iter()
                .chain(SUBSCRIPTION_PAYLOAD_PARTS.iter())
                .map(|(t, f)| (t.to_string(), f.to_string())),
        )
        .collect();
    let mut live = BTreeSet::new();
    for (type_name, field) in schema.relation_fields() {
        let ty = schema.type_named(&type_name).expect("a listed type");
        let names: Vec<&str> = ty.fields.iter().map(|f| f.name.as_str()).collect();
        if let Some(node) = type_name.strip_suffix("Connection") {
            if names != CONNECTION_FIELDS {
                findings.push(format!(
                    "{type_name} is not a plain connection (fields {names:?}): its extra fields need cases"
                ));
            }
            let edges = ty.fields.iter().find(|f| f.name == "edges");
            if edges.is_none_or(|e| e.type_name != format!("{node}Edge") || !e.is_list) {
                findings.push(format!("{type_name}.edges is not a list of {node}Edge"));
            }
            continue;
        }
        if let Some(node) = type_name.strip_suffix("Edge") {
            if names != EDGE_FIELDS {
                findings.push(format!(
                    "{type_name} is not a plain edge (fields {names:?}): its extra fields need cases"
                ));
            }
            let node_field = ty.fields.iter().find(|f| f.name == "node");
            if node_field.is_none_or(|n| n.type_name != node) {
                findings.push(format!("{type_name}.node is not a {node}"));
            }
            continue;
        }
        live.insert((type_name, field));
    }
    for (t, f) in live.difference(&cased) {
        findings.push(format!("relation {t}.{f} has no isolation case"));
    }
    for (t, f) in cased.difference(&live) {
        findings.push(format!(
            "the case for relation {t}.{f} names a field the schema no longer has"
        ));
    }
    // The walk must have found the relations at all (a broken walk would find none).
    assert!(
        live.len() >= RELATION_CASES.len() / 2,
        "the walk found only {} relation fields: {live:?}",
        live.len()
    );
    assert_no_findings("isolation cases of the live schema", &findings);
}

/// Subscription fields whose isolation cases live in tests/api_feed.rs
/// (`every_feed_delivers_a_tenants_rows_to_that_tenant_only` and the customer case): an
/// event of B never reaches a subscriber of A.
const SUBSCRIPTION_CASES: [&str; 3] = ["threatDetected", "securityEventRecorded", "incidentUpdated"];

/// The rows subscription payloads carry: each is the changed row itself, read under the
/// subscriber's tenant; tests/api_feed.rs proves none of B's reaches A.
const SUBSCRIPTION_PAYLOAD_PARTS: [(&str, &str); 3] = [
    ("ThreatDetected", "threat"),
    ("SecurityEventRecorded", "event"),
    ("IncidentUpdated", "incident"),
];

/// Every subscription field of the live schema has an isolation case, and every case
/// names a field that exists.
#[tokio::test]
async fn every_subscription_field_has_an_isolation_case() {
    let w = world().await;
    let data =
        w.gw.data(
            Some(&w.token),
            "{ __schema { subscriptionType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mut live: Vec<String> = data["__schema"]["subscriptionType"]["fields"]
        .as_array()
        .expect("a subscription type")
        .iter()
        .map(|f| f["name"].as_str().expect("a name").to_string())
        .collect();
    live.sort();
    let mut cased: Vec<String> = SUBSCRIPTION_CASES.iter().map(|s| s.to_string()).collect();
    cased.sort();
    assert_eq!(
        live, cased,
        "add isolation cases in tests/api_feed.rs for new subscription fields"
    );
}

// ---------------------------------------------------------------------------------------
// Root queries
// ---------------------------------------------------------------------------------------

/// The ids A may see in `table`: its own rows, plus the global indicators.
async fn a_visible(w: &World, table: &str) -> BTreeSet<Uuid> {
    let mut ids = tenant_ids(&w.owner, table, w.fx.a.tenant_id).await;
    if table == "threat_intelligence" {
        ids.extend(global_intel_ids(&w.owner).await);
    }
    ids
}

/// Pages through `field` with `size` rows a page, forwards (first/after) or backwards
/// (last/before); returns every page's body, or a finding.
async fn all_pages(w: &World, field: &str, backward: bool) -> Result<Vec<Value>, String> {
    let (size_arg, cursor_arg, cursor_field, more_field) = if backward {
        ("last", "before", "startCursor", "hasPreviousPage")
    } else {
        ("first", "after", "endCursor", "hasNextPage")
    };
    let query = format!(
        "query($cursor: String) {{ {field}({size_arg}: 2, {cursor_arg}: $cursor) {{ totalCount \
           pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} edges {{ cursor node {{ id }} }} }} }}"
    );
    let mut pages = vec![];
    let mut cursor = Value::Null;
    for _ in 0..200 {
        let (status, text) = w.post(&query, json!({ "cursor": cursor })).await;
        let body = parse_body(&text);
        if status != 200 || !errors(&body).is_empty() {
            return Err(format!(
                "{field} ({size_arg}/{cursor_arg}): HTTP {status}: {body}"
            ));
        }
        let info = body["data"][field]["pageInfo"].clone();
        pages.push(body);
        if info[more_field] != true {
            return Ok(pages);
        }
        cursor = info[cursor_field].clone();
        if cursor.is_null() {
            return Err(format!("{field}: {more_field} without a {cursor_field}"));
        }
    }
    Err(format!("{field}: more than 200 pages"))
}

#[tokio::test]
async fn list_queries_show_and_count_only_tenant_a_rows_on_every_page() {
    let w = world().await;
    let b_universe = w.b_universe().await;
    let mut findings = vec![];
    for (field, table) in LIST_CASES {
        let visible = a_visible(&w, table).await;
        let b_rows = tenant_ids(&w.owner, table, w.fx.b.tenant_id).await;
        if b_rows.is_empty() {
            findings.push(format!(
                "{field}: B has no {table} rows, so the case proves nothing"
            ));
        }
        let mut a_count = tenant_count(&w.owner, table, w.fx.a.tenant_id).await;
        if table == "threat_intelligence" {
            a_count += global_intel_ids(&w.owner).await.len() as i64;
        }
        for backward in [false, true] {
            let direction = if backward { "last/before" } else { "first/after" };
            let pages = match all_pages(&w, field, backward).await {
                Ok(p) => p,
                Err(e) => {
                    findings.push(e);
                    continue;
                }
            };
            let mut seen = vec![];
            for (n, page) in pages.iter().enumerate() {
                let total = page["data"][field]["totalCount"].as_i64();
                if total != Some(a_count) {
                    findings.push(format!(
                        "{field} ({direction}) page {n}: totalCount {total:?}, A has {a_count} rows"
                    ));
                }
                let leaked = b_ids_in(page, &b_universe);
                if !leaked.is_empty() {
                    findings.push(format!("{field} ({direction}) page {n} shows B's ids {leaked:?}"));
                }
                for id in node_ids(&page["data"][field]) {
                    if b_rows.contains(&id) {
                        findings.push(format!("{field} ({direction}) page {n} lists B's row {id}"));
                    } else if !visible.contains(&id) {
                        findings.push(format!(
                            "{field} ({direction}) page {n} lists {id}, not a row of A"
                        ));
                    }
                    seen.push(id);
                }
            }
            if seen.len() != set(&seen).len() {
                findings.push(format!("{field} ({direction}): a row appears on two pages"));
            }
            if set(&seen) != visible {
                findings.push(format!(
                    "{field} ({direction}): the pages list {} rows, A has {} ({table})",
                    seen.len(),
                    visible.len()
                ));
            }
        }
    }
    assert_no_findings("list queries as A", &findings);
}

/// Filters by a user id of B find nothing, exactly as a random id does.
#[tokio::test]
async fn list_filters_naming_tenant_b_ids_answer_like_random_ids() {
    let w = world().await;
    let cases = [
        ("securityEvents", "userId"),
        ("sessions", "userId"),
        ("trustedDevices", "userId"),
        ("rateLimitEntries", "userId"),
        ("auditLog", "userId"),
        ("securityIncidents", "assignedTo"),
    ];
    let mut findings = vec![];
    for (field, filter) in cases {
        let query = format!(
            "query($id: UUID!) {{ {field}(filter: {{ {filter}: $id }}) {{ totalCount edges {{ node {{ id }} }} }} }}"
        );
        let (s_missing, missing) = w.post(&query, json!({ "id": Uuid::now_v7() })).await;
        for (username, b_user) in &w.fx.b.users {
            let (s_foreign, foreign) = w.post(&query, json!({ "id": b_user })).await;
            // Compared as JSON: the order of totalCount and edges in the text is not stable
            // from one answer to the next (async resolution), whatever the tenant.
            if (s_foreign, parse_body(&foreign)) != (s_missing, parse_body(&missing)) {
                findings.push(format!(
                    "{field}(filter: {{{filter}: B's {username}}}) answers {s_foreign} {foreign}, \
                     a random id {s_missing} {missing}"
                ));
            }
        }
        let body = parse_body(&missing);
        if body["data"][field]["totalCount"] != 0 {
            findings.push(format!("{field} filtered by a random id: {body}"));
        }
    }
    assert_no_findings("filters by B's ids", &findings);
}

#[tokio::test]
async fn fetching_tenant_b_ids_by_id_looks_exactly_like_fetching_a_random_uuid() {
    let w = world().await;
    let mut findings = vec![];
    for (field, table) in BY_ID_CASES {
        let query = format!("query($id: UUID!) {{ {field}(id: $id) {{ __typename id }} }}");
        let b_rows = tenant_ids(&w.owner, table, w.fx.b.tenant_id).await;
        if b_rows.is_empty() {
            findings.push(format!(
                "{field}: B has no {table} rows, so the case proves nothing"
            ));
        }
        for b_id in &b_rows {
            let (s_missing, missing) = w.post(&query, json!({ "id": Uuid::now_v7() })).await;
            let (s_foreign, foreign) = w.post(&query, json!({ "id": b_id })).await;
            let expected_missing = json!({ "data": { field: null } });
            if parse_body(&missing) != expected_missing {
                findings.push(format!("{field}(random id) answered {s_missing} {missing}"));
            }
            if s_foreign != s_missing || foreign != missing {
                findings.push(format!(
                    "{field}(B's {b_id}) answered {s_foreign} {foreign}; a random id {s_missing} {missing}"
                ));
            }
        }
        for a_id in a_visible(&w, table).await {
            let (status, text) = w.post(&query, json!({ "id": a_id })).await;
            let body = parse_body(&text);
            if status != 200 || uuid_at(&body, &format!("/data/{field}/id")) != Some(a_id) {
                findings.push(format!("{field}(A's {a_id}) answered {status} {text}"));
            }
        }
    }
    assert_no_findings("fetch by id as A", &findings);
}

#[tokio::test]
async fn caller_queries_answer_with_tenant_a_and_its_user() {
    let w = world().await;
    let b_universe = w.b_universe().await;
    let (status, text) = w
        .post(
            "{ me { id username email } tenant { id slug name } version }",
            json!({}),
        )
        .await;
    let body = parse_body(&text);
    assert_eq!(status, 200, "{body:#}");
    assert!(errors(&body).is_empty(), "{body:#}");
    assert_eq!(
        uuid_at(&body, "/data/me/id"),
        Some(w.fx.a.user("super_admin")),
        "me is A's super_admin (B has one of the same name): {body:#}"
    );
    assert_eq!(body["data"]["me"]["email"], "super_admin@acme.example");
    assert_eq!(uuid_at(&body, "/data/tenant/id"), Some(w.fx.a.tenant_id));
    assert_eq!(body["data"]["tenant"]["slug"], A);
    assert!(body["data"]["version"].is_string(), "{body:#}");
    let leaked = b_ids_in(&body, &b_universe);
    assert!(leaked.is_empty(), "B's ids {leaked:?} in {body:#}");
}

/// The counts of an aggregate answer, summed (every bucket and key, or one of the totals'
/// lists).
fn summed(list: &Value) -> i64 {
    list.as_array()
        .map(|a| a.iter().filter_map(|c| c["count"].as_i64()).sum())
        .unwrap_or(-1)
}

#[tokio::test]
async fn aggregate_queries_count_only_tenant_a_rows() {
    let w = world().await;
    let b_universe = w.b_universe().await;
    let to = chrono::Utc::now() + chrono::Duration::hours(1);
    let from = to - chrono::Duration::days(400);
    let range = format!("from: \"{}\", to: \"{}\"", from.to_rfc3339(), to.to_rfc3339());
    let mut findings = vec![];
    let mut exercised = BTreeSet::new();
    for (field, table, time) in AGGREGATE_CASES {
        let (query, pointers) = if field == "securityEventTotals" {
            (
                format!("{{ {field}({range}) {{ bySeverity {{ key count }} byCategory {{ key count }} }} }}"),
                vec![
                    format!("/data/{field}/bySeverity"),
                    format!("/data/{field}/byCategory"),
                ],
            )
        } else {
            (
                format!("{{ {field}({range}, bucket: DAY, groupBy: SEVERITY) {{ bucketStart key count }} }}"),
                vec![format!("/data/{field}")],
            )
        };
        let (status, text) = w.post(&query, json!({})).await;
        let body = parse_body(&text);
        if status != 200 || !errors(&body).is_empty() {
            findings.push(format!("{field}: HTTP {status}: {body}"));
            continue;
        }
        let leaked = b_ids_in(&body, &b_universe);
        if !leaked.is_empty() {
            findings.push(format!("{field} shows B's ids {leaked:?}"));
        }
        let in_range = |tenant: Uuid| {
            format!(
                "select count(*) from {table} where tenant_id = '{tenant}' and {time} >= '{}' and {time} < '{}'",
                from.to_rfc3339(),
                to.to_rfc3339()
            )
        };
        let a_rows = sql::count(&w.owner, &in_range(w.fx.a.tenant_id)).await;
        let b_rows = sql::count(&w.owner, &in_range(w.fx.b.tenant_id)).await;
        if a_rows == 0 || b_rows == 0 {
            findings.push(format!(
                "{field}: A has {a_rows} rows, B {b_rows}: the case proves nothing"
            ));
        }
        for pointer in pointers {
            let counted = body.pointer(&pointer).map(summed).unwrap_or(-1);
            if counted != a_rows {
                findings.push(format!(
                    "{field}: {pointer} counts {counted} rows, A has {a_rows} (B {b_rows}): {body}"
                ));
            }
        }
        exercised.insert(field);
    }
    let all: BTreeSet<&str> = AGGREGATE_CASES.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(exercised, all, "aggregate cases exercised");
    assert_no_findings("aggregate queries as A", &findings);
}

// ---------------------------------------------------------------------------------------
// Relations
// ---------------------------------------------------------------------------------------

/// Checks the rows a relation yielded: all of A, none of B.
struct RelationCheck<'a> {
    w: &'a World,
    b_universe: BTreeSet<Uuid>,
    findings: Vec<String>,
    exercised: BTreeSet<(&'static str, &'static str)>,
    /// Rows yielded per relation, to catch a relation that was never really exercised.
    yielded: BTreeMap<(&'static str, &'static str), usize>,
}

impl RelationCheck<'_> {
    async fn query(&mut self, query: &str) -> Value {
        let (status, text) = self.w.post(query, json!({})).await;
        let body = parse_body(&text);
        if status != 200 || !errors(&body).is_empty() {
            self.findings.push(format!("{query}: HTTP {status}: {body}"));
        }
        let leaked = b_ids_in(&body, &self.b_universe);
        if !leaked.is_empty() {
            self.findings.push(format!("{query} shows B's ids {leaked:?}"));
        }
        body
    }

    /// `ids` came out of relation `type_name.field` from A's row `parent`.
    async fn rows(&mut self, type_name: &'static str, field: &'static str, parent: Uuid, ids: &[Uuid]) {
        let (_, _, table) = RELATION_CASES
            .iter()
            .find(|(t, f, _)| *t == type_name && *f == field)
            .unwrap_or_else(|| panic!("no relation case {type_name}.{field}"));
        self.exercised.insert((type_name, field));
        *self.yielded.entry((type_name, field)).or_default() += ids.len();
        let a_rows = tenant_ids(&self.w.owner, table, self.w.fx.a.tenant_id).await;
        for id in ids {
            if self.b_universe.contains(id) {
                self.findings
                    .push(format!("{type_name}.{field} of A's {parent} yields B's row {id}"));
            } else if !a_rows.contains(id) {
                self.findings.push(format!(
                    "{type_name}.{field} of A's {parent} yields {id}, not a row of A"
                ));
            }
        }
    }
}

/// A per-user list: (User field, table, its user column).
const USER_LISTS: [(&str, &str); 4] = [
    ("securityEvents", "security_events"),
    ("sessions", "refresh_tokens"),
    ("trustedDevices", "trusted_devices"),
    ("auditLog", "audit_log"),
];

#[tokio::test]
async fn relations_reached_from_tenant_a_rows_never_yield_tenant_b_rows() {
    let w = world().await;
    let a = &w.fx.a;
    let b = &w.fx.b;
    let mut check = RelationCheck {
        w: &w,
        b_universe: w.b_universe().await,
        findings: vec![],
        exercised: BTreeSet::new(),
        yielded: BTreeMap::new(),
    };

    // User.securityEvents / sessions / trustedDevices / auditLog: every user of a page at
    // once (the LATERAL loader), then one user at a time with large pages.
    let lists = USER_LISTS
        .iter()
        .map(|(f, _)| format!("{f}(first: 20) {{ totalCount edges {{ node {{ id userId }} }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let body = check
        .query(&format!(
            "{{ users(first: 8) {{ edges {{ node {{ id {lists} }} }} }} }}"
        ))
        .await;
    let users: Vec<Value> = body["data"]["users"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if users.len() != a.users.len() {
        check.findings.push(format!(
            "users lists {} users, A has {}",
            users.len(),
            a.users.len()
        ));
    }
    for edge in &users {
        let user = uuid_at(edge, "/node/id").expect("user id");
        for (field, table) in USER_LISTS {
            let connection = &edge["node"][field];
            let ids = node_ids(connection);
            check.rows("User", field, user, &ids).await;
            let expected = sql::count(
                &w.owner,
                &format!(
                    "select count(*) from {table} where tenant_id = '{}' and user_id = '{user}'",
                    a.tenant_id
                ),
            )
            .await;
            if connection["totalCount"].as_i64() != Some(expected) {
                check.findings.push(format!(
                    "User({user}).{field}.totalCount = {}, A's rows of the user: {expected}",
                    connection["totalCount"]
                ));
            }
            if ids.len() as i64 != expected.min(20) {
                check.findings.push(format!(
                    "User({user}).{field} lists {} of {expected} rows",
                    ids.len()
                ));
            }
            for e in connection["edges"].as_array().into_iter().flatten() {
                if uuid_at(e, "/node/userId") != Some(user) {
                    check
                        .findings
                        .push(format!("User({user}).{field} yields a row of another user: {e}"));
                }
            }
        }
    }
    for username in ["customer", "admin"] {
        let user = a.user(username);
        let lists = USER_LISTS
            .iter()
            .map(|(f, _)| format!("{f}(first: 100) {{ totalCount edges {{ node {{ id }} }} }}"))
            .collect::<Vec<_>>()
            .join(" ");
        let body = check
            .query(&format!("{{ user(id: \"{user}\") {{ id {lists} }} }}"))
            .await;
        for (field, _) in USER_LISTS {
            let ids = node_ids(&body["data"]["user"][field]);
            check.rows("User", field, user, &ids).await;
        }
    }

    // The single-user relations of every list.
    for (list, type_name) in [
        ("securityEvents", "SecurityEvent"),
        ("sessions", "Session"),
        ("trustedDevices", "TrustedDevice"),
        ("auditLog", "AuditEntry"),
        ("rateLimitEntries", "RateLimitEntry"),
    ] {
        let body = check
            .query(&format!(
                "{{ {list}(first: 100) {{ edges {{ node {{ id userId user {{ id }} }} }} }} }}"
            ))
            .await;
        let field = "user";
        for e in body["data"][list]["edges"].as_array().into_iter().flatten() {
            let parent = uuid_at(e, "/node/id").expect("row id");
            let user = uuid_at(e, "/node/user/id");
            if user != uuid_at(e, "/node/userId") {
                check.findings.push(format!(
                    "{type_name}({parent}).user is {user:?}, its userId another: {e}"
                ));
            }
            check
                .rows(type_name, field, parent, &user.into_iter().collect::<Vec<_>>())
                .await;
        }
    }

    // ThreatEvent.affectedUsers: A's first threat lists B's customer among its affected
    // user ids; the relation must drop it.
    let body = check
        .query("{ threatEvents(first: 100) { edges { node { id affectedUserIds affectedUsers { id } } } } }")
        .await;
    let a_users = set(&a.users.values().copied().collect::<Vec<_>>());
    for e in body["data"]["threatEvents"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let threat = uuid_at(e, "/node/id").expect("threat id");
        let stored: Vec<Uuid> = e["node"]["affectedUserIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
            .collect();
        let yielded = ids_of(&e["node"]["affectedUsers"]);
        check.rows("ThreatEvent", "affectedUsers", threat, &yielded).await;
        let expected: Vec<Uuid> = stored.iter().copied().filter(|u| a_users.contains(u)).collect();
        if yielded != expected {
            check.findings.push(format!(
                "ThreatEvent({threat}).affectedUsers = {yielded:?}, expected A's of {stored:?}: {expected:?}"
            ));
        }
    }
    let planted = check
        .query(&format!(
            "{{ threatEvent(id: \"{}\") {{ affectedUserIds affectedUsers {{ id username }} }} }}",
            a.threats[0]
        ))
        .await;
    let node = &planted["data"]["threatEvent"];
    assert!(
        node["affectedUserIds"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!(b.user("customer").to_string()))),
        "the fixture no longer plants B's customer in A's first threat: {planted:#}"
    );
    if ids_of(&node["affectedUsers"]) != vec![a.user("customer")] {
        check.findings.push(format!(
            "A's threat listing B's customer yields affectedUsers {}; expected only A's customer",
            node["affectedUsers"]
        ));
    }

    // SecurityIncident.assignee / relatedThreats / relatedEvents: A's incident links B's
    // threat and event too.
    let body = check
        .query(
            "{ securityIncidents(first: 100) { edges { node { id assignedTo assignee { id } \
               relatedThreatIds relatedThreats { id } relatedEventIds relatedEvents { id } } } } }",
        )
        .await;
    for e in body["data"]["securityIncidents"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let incident = uuid_at(e, "/node/id").expect("incident id");
        let assignee: Vec<Uuid> = uuid_at(e, "/node/assignee/id").into_iter().collect();
        check
            .rows("SecurityIncident", "assignee", incident, &assignee)
            .await;
        if assignee.first().copied() != uuid_at(e, "/node/assignedTo") {
            check.findings.push(format!(
                "SecurityIncident({incident}).assignee differs from assignedTo: {e}"
            ));
        }
        check
            .rows(
                "SecurityIncident",
                "relatedThreats",
                incident,
                &ids_of(&e["node"]["relatedThreats"]),
            )
            .await;
        check
            .rows(
                "SecurityIncident",
                "relatedEvents",
                incident,
                &ids_of(&e["node"]["relatedEvents"]),
            )
            .await;
    }
    let planted = check
        .query(&format!(
            "{{ securityIncident(id: \"{}\") {{ relatedThreatIds relatedThreats {{ id }} \
               relatedEventIds relatedEvents {{ id }} assignee {{ id }} }} }}",
            a.incidents[0]
        ))
        .await;
    let node = &planted["data"]["securityIncident"];
    assert!(
        node["relatedThreatIds"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!(b.threats[0].to_string())))
            && node["relatedEventIds"]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(b.events[0].to_string()))),
        "the fixture no longer links B's threat and event from A's incident: {planted:#}"
    );
    if ids_of(&node["relatedThreats"]) != vec![a.threats[0]] {
        check.findings.push(format!(
            "A's incident linking B's threat yields relatedThreats {}; expected only A's {}",
            node["relatedThreats"], a.threats[0]
        ));
    }
    if ids_of(&node["relatedEvents"]) != vec![a.events[0]] {
        check.findings.push(format!(
            "A's incident linking B's event yields relatedEvents {}; expected only A's {}",
            node["relatedEvents"], a.events[0]
        ));
    }
    if uuid_at(node, "/assignee/id") != Some(a.user("officer")) {
        check.findings.push(format!(
            "A's incident's assignee is {}, not A's officer",
            node["assignee"]
        ));
    }

    // AuthPayload.user: signing in to A as a name B also has yields A's user.
    let (status, text) = w
        .post_as(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { user { id username } } }",
            json!({ "input": { "tenant": A, "username": "super_admin", "password": support::fixture::PASSWORD } }),
        )
        .await;
    let body = parse_body(&text);
    let user: Vec<Uuid> = uuid_at(&body, "/data/login/user/id").into_iter().collect();
    if status != 200 || user != vec![a.user("super_admin")] {
        check
            .findings
            .push(format!("login to A as super_admin yields user {user:?}: {body}"));
    }
    check
        .rows("AuthPayload", "user", a.user("super_admin"), &user)
        .await;

    let all: BTreeSet<(&str, &str)> = RELATION_CASES.iter().map(|(t, f, _)| (*t, *f)).collect();
    let missing: Vec<_> = all.difference(&check.exercised).collect();
    assert!(missing.is_empty(), "relation cases not exercised: {missing:?}");
    for (relation, n) in &check.yielded {
        if *n == 0 {
            check.findings.push(format!(
                "{relation:?} yielded no row at all: the case proves nothing"
            ));
        }
    }
    let findings = check.findings;
    assert_no_findings("relations from A's rows", &findings);
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

/// What the owner sees before and after one mutation.
struct State {
    a: BTreeMap<String, String>,
    b: BTreeMap<String, String>,
    a_audit: i64,
    b_audit: i64,
}

/// A mutation on B's ids, and the same mutation on ids that exist nowhere.
struct LikeMissing<'q> {
    name: &'static str,
    case: &'q str,
    query: &'q str,
    foreign: Value,
    missing: Value,
    code: &'static str,
    /// Sent without a token (login).
    anonymous: bool,
    /// The attempt may write A's own bookkeeping (a failed login of an existing A user).
    a_may_change: bool,
    /// The attempt may write A's failed-sign-in records only ([`FAILED_LOGIN_RECORDS`]: the
    /// per-address throttle window and the login_failure event), which every failed
    /// sign-in to A writes, for an unknown user too.
    a_may_record: bool,
}

/// The tables a failed sign-in to A writes in A whoever it names (auth::throttle).
const FAILED_LOGIN_RECORDS: [&str; 2] = ["rate_limit_entries", "security_events"];

impl<'q> LikeMissing<'q> {
    fn new(
        name: &'static str,
        case: &'q str,
        query: &'q str,
        foreign: Value,
        missing: Value,
        code: &'static str,
    ) -> Self {
        LikeMissing {
            name,
            case,
            query,
            foreign,
            missing,
            code,
            anonymous: false,
            a_may_change: false,
            a_may_record: false,
        }
    }
}

/// Runs mutation cases and collects what went wrong.
struct MutationProbe<'w> {
    w: &'w World,
    b_universe: BTreeSet<Uuid>,
    findings: Vec<String>,
    exercised: BTreeSet<&'static str>,
}

impl<'w> MutationProbe<'w> {
    async fn new(w: &'w World) -> MutationProbe<'w> {
        MutationProbe {
            w,
            b_universe: w.b_universe().await,
            findings: vec![],
            exercised: BTreeSet::new(),
        }
    }

    async fn state(&self) -> State {
        let (a, b) = (self.w.fx.a.tenant_id, self.w.fx.b.tenant_id);
        State {
            a: tenant_fingerprint(&self.w.owner, a).await,
            b: tenant_fingerprint(&self.w.owner, b).await,
            a_audit: tenant_count(&self.w.owner, "audit_log", a).await,
            b_audit: tenant_count(&self.w.owner, "audit_log", b).await,
        }
    }

    fn leaks(&mut self, what: &str, text: &str) {
        let leaked: Vec<Uuid> = uuids_in(text).intersection(&self.b_universe).copied().collect();
        if !leaked.is_empty() {
            self.findings
                .push(format!("{what}: the answer shows B's ids {leaked:?}: {text}"));
        }
    }

    /// The mutation on B's ids must answer exactly like the one on missing ids (uuids
    /// masked), fail with `code`, and change nothing: not B, not A, no audit row anywhere.
    async fn like_missing(&mut self, case: LikeMissing<'_>) {
        self.exercised.insert(case.name);
        let what = format!("{} ({})", case.name, case.case);
        let token = (!case.anonymous).then_some(self.w.token.as_str());
        let before = self.state().await;
        let (s_missing, missing) = self.w.post_as(token, case.query, case.missing).await;
        let (s_foreign, foreign) = self.w.post_as(token, case.query, case.foreign).await;
        let after = self.state().await;
        if (s_foreign, mask_uuids(&foreign)) != (s_missing, mask_uuids(&missing)) {
            self.findings.push(format!(
                "{what}: B's ids answer {s_foreign} {foreign}; missing ids {s_missing} {missing}"
            ));
        }
        let body = parse_body(&foreign);
        let code = first_error_code(&body);
        if code.as_deref() != Some(case.code) {
            self.findings
                .push(format!("{what}: expected {}, got {code:?}: {foreign}", case.code));
        }
        if !body["data"].is_null() {
            self.findings
                .push(format!("{what}: a failed mutation returned data: {foreign}"));
        }
        self.leaks(&what, &foreign);
        let b_changed = fingerprint_changes(&before.b, &after.b);
        if !b_changed.is_empty() {
            self.findings.push(format!("{what}: changed B's {b_changed:?}"));
        }
        // Every authenticated mutation counts in the caller's own rate-limit windows
        // before it runs, failing or not (security::rate_limit): A's windows may move,
        // B's never.
        let a_changed: Vec<String> = fingerprint_changes(&before.a, &after.a)
            .into_iter()
            .filter(|t| t != "rate_limit_entries")
            // A sensitive mutation is scored before it runs, and its sensitive_action
            // event is kept when it fails (risk::sensitive).
            .filter(|t| !(t == "security_events" && SENSITIVE_FIELDS.contains(&case.name)))
            .filter(|t| !(case.a_may_record && FAILED_LOGIN_RECORDS.contains(&t.as_str())))
            .collect();
        if !case.a_may_change && !a_changed.is_empty() {
            self.findings
                .push(format!("{what}: the failed mutation changed A's {a_changed:?}"));
        }
        if (after.a_audit, after.b_audit) != (before.a_audit, before.b_audit) {
            self.findings.push(format!(
                "{what}: a failed mutation wrote audit rows (A {} -> {}, B {} -> {})",
                before.a_audit, after.a_audit, before.b_audit, after.b_audit
            ));
        }
    }

    /// The mutation must succeed in A, write exactly one audit row in A (by A's
    /// super_admin, about the returned row, as `action`), none in B, and leave B unchanged.
    /// Returns the mutation's payload.
    async fn succeeds(
        &mut self,
        name: &'static str,
        case: &str,
        query: &str,
        variables: Value,
        action: &str,
    ) -> Value {
        self.exercised.insert(name);
        let what = format!("{name} ({case})");
        let before = self.state().await;
        let (status, text) = self.w.post(query, variables).await;
        let after = self.state().await;
        let body = parse_body(&text);
        if status != 200 || !errors(&body).is_empty() {
            self.findings
                .push(format!("{what}: should succeed in A: {status} {text}"));
            return Value::Null;
        }
        self.leaks(&what, &text);
        let changed = fingerprint_changes(&before.b, &after.b);
        if !changed.is_empty() {
            self.findings.push(format!("{what}: changed B's {changed:?}"));
        }
        if after.b_audit != before.b_audit {
            self.findings.push(format!(
                "{what}: wrote {} audit rows in B",
                after.b_audit - before.b_audit
            ));
        }
        if after.a_audit - before.a_audit != 1 {
            self.findings.push(format!(
                "{what}: wrote {} audit rows in A, expected exactly 1",
                after.a_audit - before.a_audit
            ));
        }
        let entity = uuid_at(&body, &format!("/data/{name}/id"));
        let newest = sql::scalar(
            &self.w.owner,
            &format!(
                "select action || ' ' || coalesce(entity_id::text, '-') || ' ' || coalesce(user_id::text, '-') \
                   from audit_log where tenant_id = '{}' order by chain_seq desc limit 1",
                self.w.fx.a.tenant_id
            ),
        )
        .await;
        let expected = format!(
            "{action} {} {}",
            entity.map_or("-".into(), |e| e.to_string()),
            self.w.fx.a.user("super_admin")
        );
        if newest.as_deref() != Some(expected.as_str()) {
            self.findings.push(format!(
                "{what}: A's newest audit row is {newest:?}, expected {expected:?}"
            ));
        }
        body["data"][name].clone()
    }

    fn finish(self, expected: &[&str]) {
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        let missing: Vec<_> = expected.difference(&self.exercised).collect();
        let extra: Vec<_> = self.exercised.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "mutation cases not exercised: {missing:?}; exercised but not in the table: {extra:?}"
        );
        assert_no_findings("mutations as A", &self.findings);
    }
}

fn random() -> Uuid {
    Uuid::now_v7()
}

const UPDATE_PROFILE: &str =
    "mutation($id: UUID!) { updateUserProfile(id: $id, input: {firstName: \"Mallory\"}) { id firstName } }";
const CHANGE_ROLE: &str = "mutation($id: UUID!) { changeUserRole(id: $id, role: OFFICER) { id role } }";
const LOCK: &str = "mutation($id: UUID!) { lockUser(id: $id, reason: \"isolation test\") { id isLocked } }";
const UNLOCK: &str = "mutation($id: UUID!) { unlockUser(id: $id) { id isLocked } }";
const DEACTIVATE: &str = "mutation($id: UUID!) { deactivateUser(id: $id) { id isActive } }";
const CREATE_USER: &str =
    "mutation($input: CreateUserInput!) { createUser(input: $input) { id username email } }";
const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken user { id } } }";

fn login_vars(tenant: &str, username: &str, password: &str) -> Value {
    json!({ "input": { "tenant": tenant, "username": username, "password": password } })
}

#[tokio::test]
async fn user_mutations_on_tenant_b_ids_look_like_missing_ids_and_change_nothing_in_b() {
    let w = world().await;
    let (a, b) = (&w.fx.a, &w.fx.b);

    // A user only B has.
    let b_only =
        w.gw.data(
            Some(&w.b_token),
            CREATE_USER,
            json!({ "input": { "username": "bonly", "email": "bonly@globex.example",
                               "password": B_ONLY_PASSWORD, "role": "CUSTOMER" } }),
        )
        .await;
    let b_only = uuid_at(&b_only, "/createUser/id").expect("B's user id");

    let mut probe = MutationProbe::new(&w).await;
    let b_users = tenant_ids(&w.owner, "users", b.tenant_id).await;
    for b_user in &b_users {
        for (name, query) in [
            ("updateUserProfile", UPDATE_PROFILE),
            ("changeUserRole", CHANGE_ROLE),
            ("lockUser", LOCK),
            ("unlockUser", UNLOCK),
            ("deactivateUser", DEACTIVATE),
        ] {
            probe
                .like_missing(LikeMissing::new(
                    name,
                    &format!("B's user {b_user}"),
                    query,
                    json!({ "id": b_user }),
                    json!({ "id": random() }),
                    "NOT_FOUND",
                ))
                .await;
        }
    }
    // The same mutations work on A's users.
    let data = probe
        .succeeds(
            "updateUserProfile",
            "A's customer",
            UPDATE_PROFILE,
            json!({ "id": a.user("customer") }),
            "user.update_profile",
        )
        .await;
    assert_eq!(data["firstName"], "Mallory", "{data}");
    probe
        .succeeds(
            "changeUserRole",
            "A's customer2",
            CHANGE_ROLE,
            json!({ "id": a.user("customer2") }),
            "user.change_role",
        )
        .await;
    probe
        .succeeds(
            "lockUser",
            "A's manager",
            LOCK,
            json!({ "id": a.user("manager") }),
            "user.lock",
        )
        .await;
    probe
        .succeeds(
            "unlockUser",
            "A's manager",
            UNLOCK,
            json!({ "id": a.user("manager") }),
            "user.unlock",
        )
        .await;

    // Login to A with credentials only B has fails like an unknown user, and touches
    // nothing of B (no failed-login count, no event); A records a failed sign-in from
    // the address, as for any unknown user.
    let mut login_case = LikeMissing::new(
        "login",
        "acme + B-only username",
        LOGIN,
        login_vars(A, "bonly", B_ONLY_PASSWORD),
        login_vars(A, "nobody-here", B_ONLY_PASSWORD),
        "UNAUTHENTICATED",
    );
    login_case.anonymous = true;
    login_case.a_may_record = true;
    probe.like_missing(login_case).await;
    let mut login_case = LikeMissing::new(
        "login",
        "acme + B-only email",
        LOGIN,
        login_vars(A, "bonly@globex.example", B_ONLY_PASSWORD),
        login_vars(A, "nobody@globex.example", B_ONLY_PASSWORD),
        "UNAUTHENTICATED",
    );
    login_case.anonymous = true;
    login_case.a_may_record = true;
    probe.like_missing(login_case).await;

    // createUser with B's username and email succeeds in A: no clash, no leak.
    let created = probe
        .succeeds(
            "createUser",
            "B's username and email",
            CREATE_USER,
            json!({ "input": { "username": "bonly", "email": "bonly@globex.example",
                               "password": A_PASSWORD, "role": "CUSTOMER" } }),
            "user.create",
        )
        .await;
    let a_bonly = uuid_at(&created, "/id");
    assert!(
        a_bonly.is_some_and(|id| id != b_only),
        "A's new user must be a new row, not B's {b_only}: {created}"
    );
    let b_named = walk_ids(
        &w.owner,
        &format!(
            "select user_id as id from users where tenant_id = '{}' and lower(username) = 'bonly'",
            b.tenant_id
        ),
    )
    .await;
    assert_eq!(
        b_named,
        vec![b_only],
        "B still has exactly its own user named bonly"
    );

    // Now A has a "bonly" too: B's password still does not open A's account (A's own
    // failed-login bookkeeping may change, B's must not).
    let mut login_case = LikeMissing::new(
        "login",
        "acme + B's password for A's bonly",
        LOGIN,
        login_vars(A, "bonly", B_ONLY_PASSWORD),
        login_vars(A, "nobody-here", B_ONLY_PASSWORD),
        "UNAUTHENTICATED",
    );
    login_case.anonymous = true;
    login_case.a_may_change = true;
    probe.like_missing(login_case).await;
    for (tenant, password, expected) in [(A, A_PASSWORD, a_bonly), (B, B_ONLY_PASSWORD, Some(b_only))] {
        let (_, text) = w
            .post_as(None, LOGIN, login_vars(tenant, "bonly", password))
            .await;
        let body = parse_body(&text);
        assert_eq!(
            uuid_at(&body, "/data/login/user/id"),
            expected,
            "{tenant}/bonly signs in to its own tenant's user: {body:#}"
        );
    }

    probe
        .succeeds(
            "deactivateUser",
            "A's bonly",
            DEACTIVATE,
            json!({ "id": a_bonly }),
            "user.deactivate",
        )
        .await;
    probe.finish(&USER_MUTATION_CASES);
}

async fn walk_ids(owner: &DatabaseConnection, sql: &str) -> Vec<Uuid> {
    support::walk::uuid_column(owner, sql).await.into_iter().collect()
}

const REPORT_THREAT: &str = "mutation($users: [UUID!]!) { reportThreat(input: {threatType: \"isolation\", \
    severity: HIGH, affectedUserIds: $users}) { id affectedUsers { id } } }";
const CHANGE_THREAT_STATUS: &str =
    "mutation($id: UUID!) { changeThreatStatus(id: $id, status: INVESTIGATING) { id status } }";
const OPEN_INCIDENT: &str = "mutation($threats: [UUID!]!, $events: [UUID!]!, $assignee: UUID) { \
    openIncident(input: {incidentType: \"isolation\", severity: LOW, title: \"isolation\", assignedTo: $assignee, \
    relatedThreatIds: $threats, relatedEventIds: $events}) { id relatedThreats { id } relatedEvents { id } assignee { id } } }";
const ASSIGN_INCIDENT: &str =
    "mutation($id: UUID!, $user: UUID) { assignIncident(id: $id, userId: $user) { id assignee { id } } }";
const CHANGE_INCIDENT_STATUS: &str =
    "mutation($id: UUID!) { changeIncidentStatus(id: $id, status: RESOLVED) { id status } }";
const CHANGE_INCIDENT_PRIORITY: &str =
    "mutation($id: UUID!) { changeIncidentPriority(id: $id, priority: LOW) { id priority } }";
const LINK_INCIDENT: &str = "mutation($id: UUID!, $threats: [UUID!]!, $events: [UUID!]!) { \
    linkIncident(id: $id, threatIds: $threats, eventIds: $events) { id relatedThreats { id } relatedEvents { id } } }";
const ADD_INDICATOR: &str = "mutation($value: String!) { addThreatIndicator(input: {indicatorType: IP, \
    indicatorValue: $value, severity: LOW}) { id isGlobal indicatorValue } }";
const DEACTIVATE_INDICATOR: &str =
    "mutation($id: UUID!) { deactivateThreatIndicator(id: $id) { id isActive } }";

#[tokio::test]
async fn threat_incident_and_intel_mutations_never_reach_tenant_b() {
    let w = world().await;
    let (a, b) = (&w.fx.a, &w.fx.b);
    // An indicator value only B lists.
    let b_value = "198.51.100.77";
    w.gw.data(Some(&w.b_token), ADD_INDICATOR, json!({ "value": b_value }))
        .await;

    let mut probe = MutationProbe::new(&w).await;
    let bad = "BAD_USER_INPUT";
    let missing = "NOT_FOUND";

    // reportThreat naming B's user among the affected.
    for (case, foreign, missing_ids) in [
        ("B's customer", vec![b.user("customer")], vec![random()]),
        (
            "A's and B's customer",
            vec![a.user("customer"), b.user("customer")],
            vec![a.user("customer"), random()],
        ),
    ] {
        probe
            .like_missing(LikeMissing::new(
                "reportThreat",
                case,
                REPORT_THREAT,
                json!({ "users": foreign }),
                json!({ "users": missing_ids }),
                bad,
            ))
            .await;
    }
    // changeThreatStatus on B's threats.
    for threat in &b.threats {
        probe
            .like_missing(LikeMissing::new(
                "changeThreatStatus",
                "B's threat",
                CHANGE_THREAT_STATUS,
                json!({ "id": threat }),
                json!({ "id": random() }),
                missing,
            ))
            .await;
    }
    // openIncident linking B's threat or event, or assigning B's staff.
    let open = |threats: Vec<Uuid>, events: Vec<Uuid>, assignee: Option<Uuid>| json!({ "threats": threats, "events": events, "assignee": assignee });
    for (case, foreign, missing_vars) in [
        (
            "B's threat",
            open(vec![a.threats[0], b.threats[0]], vec![], None),
            open(vec![a.threats[0], random()], vec![], None),
        ),
        (
            "B's event",
            open(vec![], vec![a.events[0], b.events[0]], None),
            open(vec![], vec![a.events[0], random()], None),
        ),
        (
            "B's officer as assignee",
            open(vec![], vec![], Some(b.user("officer"))),
            open(vec![], vec![], Some(random())),
        ),
    ] {
        probe
            .like_missing(LikeMissing::new(
                "openIncident",
                case,
                OPEN_INCIDENT,
                foreign,
                missing_vars,
                bad,
            ))
            .await;
    }
    // Incident mutations on B's incident.
    for (name, query, vars, missing_vars) in [
        (
            "assignIncident",
            ASSIGN_INCIDENT,
            json!({ "id": b.incidents[0], "user": a.user("manager") }),
            json!({ "id": random(), "user": a.user("manager") }),
        ),
        (
            "assignIncident",
            ASSIGN_INCIDENT,
            json!({ "id": b.incidents[0], "user": null }),
            json!({ "id": random(), "user": null }),
        ),
        (
            "changeIncidentStatus",
            CHANGE_INCIDENT_STATUS,
            json!({ "id": b.incidents[0] }),
            json!({ "id": random() }),
        ),
        (
            "changeIncidentPriority",
            CHANGE_INCIDENT_PRIORITY,
            json!({ "id": b.incidents[0] }),
            json!({ "id": random() }),
        ),
        (
            "linkIncident",
            LINK_INCIDENT,
            json!({ "id": b.incidents[0], "threats": [a.threats[1]], "events": [] }),
            json!({ "id": random(), "threats": [a.threats[1]], "events": [] }),
        ),
    ] {
        probe
            .like_missing(LikeMissing::new(
                name,
                "B's incident",
                query,
                vars,
                missing_vars,
                missing,
            ))
            .await;
    }
    // A's incident pointed at B's rows.
    for (name, case, query, vars, missing_vars) in [
        (
            "assignIncident",
            "A's incident to B's officer",
            ASSIGN_INCIDENT,
            json!({ "id": a.incidents[0], "user": b.user("officer") }),
            json!({ "id": a.incidents[0], "user": random() }),
        ),
        (
            "linkIncident",
            "A's incident with B's threat",
            LINK_INCIDENT,
            json!({ "id": a.incidents[0], "threats": [b.threats[1]], "events": [] }),
            json!({ "id": a.incidents[0], "threats": [random()], "events": [] }),
        ),
        (
            "linkIncident",
            "A's incident with B's event",
            LINK_INCIDENT,
            json!({ "id": a.incidents[0], "threats": [], "events": [b.events[1]] }),
            json!({ "id": a.incidents[0], "threats": [], "events": [random()] }),
        ),
    ] {
        probe
            .like_missing(LikeMissing::new(name, case, query, vars, missing_vars, bad))
            .await;
    }
    // deactivateThreatIndicator on B's indicators and on the global one.
    let b_intel = tenant_ids(&w.owner, "threat_intelligence", b.tenant_id).await;
    for (case, id) in b_intel
        .iter()
        .map(|id| ("B's indicator", *id))
        .chain([("the global indicator", w.fx.global_intel)])
    {
        probe
            .like_missing(LikeMissing::new(
                "deactivateThreatIndicator",
                case,
                DEACTIVATE_INDICATOR,
                json!({ "id": id }),
                json!({ "id": random() }),
                missing,
            ))
            .await;
    }

    // The same mutations work on A's rows, and their relations stay in A.
    let threat = probe
        .succeeds(
            "reportThreat",
            "A's customer affected",
            REPORT_THREAT,
            json!({ "users": [a.user("customer")] }),
            "threat.report",
        )
        .await;
    assert_eq!(
        ids_of(&threat["affectedUsers"]),
        vec![a.user("customer")],
        "{threat}"
    );
    probe
        .succeeds(
            "changeThreatStatus",
            "A's threat",
            CHANGE_THREAT_STATUS,
            json!({ "id": a.threats[0] }),
            "threat.change_status",
        )
        .await;
    let incident = probe
        .succeeds(
            "openIncident",
            "A's threat, event and manager",
            OPEN_INCIDENT,
            open(vec![a.threats[0]], vec![a.events[0]], Some(a.user("manager"))),
            "incident.open",
        )
        .await;
    assert_eq!(
        ids_of(&incident["relatedThreats"]),
        vec![a.threats[0]],
        "{incident}"
    );
    assert_eq!(
        ids_of(&incident["relatedEvents"]),
        vec![a.events[0]],
        "{incident}"
    );
    probe
        .succeeds(
            "assignIncident",
            "A's incident to A's manager",
            ASSIGN_INCIDENT,
            json!({ "id": a.incidents[0], "user": a.user("manager") }),
            "incident.assign",
        )
        .await;
    probe
        .succeeds(
            "changeIncidentPriority",
            "A's incident",
            CHANGE_INCIDENT_PRIORITY,
            json!({ "id": a.incidents[0] }),
            "incident.change_priority",
        )
        .await;
    let linked = probe
        .succeeds(
            "linkIncident",
            "A's incident with A's rows",
            LINK_INCIDENT,
            json!({ "id": a.incidents[0], "threats": [a.threats[1]], "events": [a.events[1]] }),
            "incident.link",
        )
        .await;
    // B's planted links stay stored but never come back as rows.
    let mut expected_threats = vec![a.threats[0], a.threats[1]];
    expected_threats.sort();
    let mut got_threats = ids_of(&linked["relatedThreats"]);
    got_threats.sort();
    assert_eq!(got_threats, expected_threats, "{linked}");
    probe
        .succeeds(
            "changeIncidentStatus",
            "A's incident",
            CHANGE_INCIDENT_STATUS,
            json!({ "id": a.incidents[0] }),
            "incident.change_status",
        )
        .await;
    // A value only B lists is no clash for A (uniqueness is per tenant).
    let added = probe
        .succeeds(
            "addThreatIndicator",
            "a value only B lists",
            ADD_INDICATOR,
            json!({ "value": b_value }),
            "intel.add",
        )
        .await;
    assert_eq!(added["isGlobal"], false, "{added}");
    probe
        .succeeds(
            "deactivateThreatIndicator",
            "A's indicator",
            DEACTIVATE_INDICATOR,
            json!({ "id": a.intel[0] }),
            "intel.deactivate",
        )
        .await;
    probe.finish(&THREAT_MUTATION_CASES);
}

const RENAME_DEVICE: &str =
    "mutation($id: UUID!) { renameTrustedDevice(id: $id, name: \"renamed by A\") { id deviceName } }";
const REVOKE_DEVICE: &str = "mutation($id: UUID!) { revokeDeviceTrust(id: $id) { id isTrusted } }";

#[tokio::test]
async fn device_mutations_on_tenant_b_devices_look_like_missing_ids() {
    let w = world().await;
    let mut probe = MutationProbe::new(&w).await;
    for device in &w.fx.b.devices {
        for (name, query) in [
            ("renameTrustedDevice", RENAME_DEVICE),
            ("revokeDeviceTrust", REVOKE_DEVICE),
        ] {
            probe
                .like_missing(LikeMissing::new(
                    name,
                    "B's device",
                    query,
                    json!({ "id": device }),
                    json!({ "id": random() }),
                    "NOT_FOUND",
                ))
                .await;
        }
    }
    let renamed = probe
        .succeeds(
            "renameTrustedDevice",
            "A's device",
            RENAME_DEVICE,
            json!({ "id": w.fx.a.devices[0] }),
            "device.rename",
        )
        .await;
    assert_eq!(renamed["deviceName"], "renamed by A", "{renamed}");
    probe
        .succeeds(
            "revokeDeviceTrust",
            "A's device",
            REVOKE_DEVICE,
            json!({ "id": w.fx.a.devices[0] }),
            "device.revoke_trust",
        )
        .await;

    // trustDevice takes no id: it trusts the device the caller's session signed in from.
    // B's customer and A's customer sign in from the same fingerprint; A's customer (with
    // MFA) trusts it: only A's customer's row changes, B's row of that fingerprint stays
    // untrusted, and B's customer (password only) cannot trust anything.
    probe.exercised.insert("trustDevice");
    let (a, b) = (&w.fx.a, &w.fx.b);
    let password = support::fixture::PASSWORD;
    let shared = "shared-fingerprint-1";
    let b_login = w
        .post_as(
            None,
            LOGIN_WITH_DEVICE,
            json!({ "input": { "tenant": B, "username": "customer", "password": password,
                               "deviceFingerprint": shared } }),
        )
        .await;
    let b_login = parse_body(&b_login.1);
    let b_device = uuid_at(&b_login, "/data/login/deviceId").expect("B's device");
    let b_customer = b_login["data"]["login"]["accessToken"]
        .as_str()
        .expect("B's customer's token")
        .to_string();
    let a_customer = enable_totp(&w, A, "customer").await;
    let secret = a_customer.1;
    let code = api::auth::mfa::code_at(&secret, unix_now() + 30).expect("a TOTP code");
    let a_login = w
        .post_as(
            None,
            LOGIN_WITH_DEVICE,
            json!({ "input": { "tenant": A, "username": "customer", "password": password,
                               "deviceFingerprint": shared, "totpCode": code } }),
        )
        .await;
    let a_login = parse_body(&a_login.1);
    let a_device = uuid_at(&a_login, "/data/login/deviceId")
        .unwrap_or_else(|| panic!("A's customer's device: {a_login:#}"));
    assert_ne!(a_device, b_device, "one row per tenant and user");
    let a_token = a_login["data"]["login"]["accessToken"]
        .as_str()
        .expect("A's customer's MFA session")
        .to_string();
    let a_devices_before = device_states(&w.owner, a.tenant_id).await;

    // B's customer: a password-only session cannot trust, and changes nothing in A.
    let a_before = tenant_fingerprint(&w.owner, a.tenant_id).await;
    let (_, text) = w.post_as(Some(&b_customer), TRUST_DEVICE, json!({})).await;
    assert_eq!(
        first_error_code(&parse_body(&text)).as_deref(),
        Some("BAD_USER_INPUT"),
        "{text}"
    );
    assert_eq!(
        fingerprint_changes(&a_before, &tenant_fingerprint(&w.owner, a.tenant_id).await),
        Vec::<String>::new(),
        "B's trustDevice changed A"
    );
    // (B's own bookkeeping of that request, its rate-limit window and the scored
    // sensitive_action event, is B's; A's request below must add nothing to B.)
    let b_before = tenant_fingerprint(&w.owner, b.tenant_id).await;
    let b_audit = tenant_count(&w.owner, "audit_log", b.tenant_id).await;

    // A's customer trusts the device: A's row, and no other.
    let (status, text) = w
        .post_as(Some(&a_token), TRUST_DEVICE, json!({ "name": "A's phone" }))
        .await;
    let body = parse_body(&text);
    assert_eq!(status, 200, "{body:#}");
    assert!(errors(&body).is_empty(), "{body:#}");
    assert_eq!(uuid_at(&body, "/data/trustDevice/id"), Some(a_device), "{body:#}");
    assert_eq!(
        uuid_at(&body, "/data/trustDevice/userId"),
        Some(a.user("customer")),
        "{body:#}"
    );
    assert!(b_ids_in(&body, &w.b_universe().await).is_empty(), "{body:#}");
    let mut expected = a_devices_before.clone();
    expected.insert(a_device, true);
    assert_eq!(
        device_states(&w.owner, a.tenant_id).await,
        expected,
        "trustDevice trusted exactly the caller's device in A"
    );
    let changed = fingerprint_changes(&b_before, &tenant_fingerprint(&w.owner, b.tenant_id).await);
    assert!(changed.is_empty(), "trustDevice in A changed B's {changed:?}");
    assert_eq!(tenant_count(&w.owner, "audit_log", b.tenant_id).await, b_audit);
    assert_eq!(
        sql::scalar(
            &w.owner,
            &format!("select is_trusted::text from trusted_devices where device_id = '{b_device}'"),
        )
        .await
        .as_deref(),
        Some("false"),
        "B's device with the same fingerprint is not trusted"
    );
    probe.finish(&DEVICE_MUTATION_CASES);
}

const LOGIN_WITH_DEVICE: &str =
    "mutation($input: LoginInput!) { login(input: $input) { accessToken deviceId mfaRequired user { id } } }";
const TRUST_DEVICE: &str =
    "mutation($name: String) { trustDevice(name: $name) { id userId deviceFingerprint isTrusted } }";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Signs `username` of `tenant` in, enrols TOTP and confirms it with the current code;
/// returns the (pre-MFA, still live) token and the secret.
async fn enable_totp(w: &World, tenant: &str, username: &str) -> (String, String) {
    let token = w.fx.login(&w.gw, tenant, username).await;
    let data =
        w.gw.data(Some(&token), "mutation { enrollTotp { secret } }", json!({}))
            .await;
    let secret = data["enrollTotp"]["secret"]
        .as_str()
        .expect("enrolment secret")
        .to_string();
    let code = api::auth::mfa::code_at(&secret, unix_now()).expect("a TOTP code");
    let data =
        w.gw.data(
            Some(&token),
            "mutation($c: String!) { confirmTotp(code: $c) }",
            json!({ "c": code }),
        )
        .await;
    assert_eq!(data["confirmTotp"], true);
    (token, secret)
}

/// (device_id, is_trusted) of every trusted_devices row of a tenant, as the owner.
async fn device_states(owner: &DatabaseConnection, tenant: Uuid) -> BTreeMap<Uuid, bool> {
    let trusted = walk_ids(
        owner,
        &format!("select device_id as id from trusted_devices where tenant_id = '{tenant}' and is_trusted"),
    )
    .await;
    tenant_ids(owner, "trusted_devices", tenant)
        .await
        .into_iter()
        .map(|id| (id, trusted.contains(&id)))
        .collect()
}

/// A successful sign-in to A writes nothing in B.
#[tokio::test]
async fn signing_in_to_tenant_a_writes_nothing_in_tenant_b() {
    let w = world().await;
    let b = w.fx.b.tenant_id;
    let before = tenant_fingerprint(&w.owner, b).await;
    let b_audit = tenant_count(&w.owner, "audit_log", b).await;
    for username in ["super_admin", "customer", "admin"] {
        let _ = w.fx.login(&w.gw, A, username).await;
        // A wrong password of an A user: A's bookkeeping, never B's.
        let (_, text) = w
            .post_as(
                None,
                LOGIN,
                login_vars(A, username, "not the password at all 123"),
            )
            .await;
        assert_eq!(
            first_error_code(&parse_body(&text)).as_deref(),
            Some("UNAUTHENTICATED"),
            "{text}"
        );
    }
    let after = tenant_fingerprint(&w.owner, b).await;
    assert_eq!(
        fingerprint_changes(&before, &after),
        Vec::<String>::new(),
        "signing in to A changed B's rows"
    );
    assert_eq!(tenant_count(&w.owner, "audit_log", b).await, b_audit);
}

const REFRESH: &str = "mutation($token: String!) { refreshSession(refreshToken: $token) { accessToken refreshToken user { id } } }";
const REVOKE_SESSION: &str =
    "mutation($id: UUID!) { revokeSession(id: $id) { id userId familyId isActive } }";
const LOGOUT: &str = "mutation { logout }";
const REVOKE_ALL: &str = "mutation($keep: Boolean!) { revokeAllSessions(keepCurrent: $keep) }";

/// The random part of a refresh token (after the tenant id and the dot).
fn random_part(token: &str) -> &str {
    token
        .split_once('.')
        .expect("a refresh token is <tenant>.<random>")
        .1
}

/// (token_id, revoked) of every refresh_tokens row of a tenant, as the owner.
async fn session_states(owner: &DatabaseConnection, tenant: Uuid) -> BTreeMap<Uuid, bool> {
    let revoked = walk_ids(
        owner,
        &format!("select token_id as id from refresh_tokens where tenant_id = '{tenant}' and revoked_at is not null"),
    )
    .await;
    tenant_ids(owner, "refresh_tokens", tenant)
        .await
        .into_iter()
        .map(|id| (id, revoked.contains(&id)))
        .collect()
}

#[tokio::test]
async fn session_mutations_never_reach_tenant_b_sessions() {
    use support::sessions::{SignedIn, assert_session_ended, assert_session_live, refresh_ok, sign_in};
    let w = world().await;
    let (a, b) = (&w.fx.a, &w.fx.b);
    let password = support::fixture::PASSWORD;
    // Live sessions in B, under the same usernames as A's callers.
    let b_admin = sign_in(&w.gw, B, "admin", password).await;
    let b_customer = sign_in(&w.gw, B, "customer", password).await;
    let a_customer = sign_in(&w.gw, A, "customer", password).await;

    let mut probe = MutationProbe::new(&w).await;
    let a_prefix = a.tenant_id.simple().to_string();
    let b_prefix = b.tenant_id.simple().to_string();
    let fresh_random = support::sessions::random_token_part;

    // refreshSession: B's random part under A's tenant id, A's random part under B's, and
    // a B token cut to look like A's: each answers like a token that exists nowhere.
    for (case, forged, missing) in [
        (
            "A's tenant id with B's random part",
            format!("{a_prefix}.{}", random_part(&b_customer.refresh)),
            format!("{a_prefix}.{}", fresh_random()),
        ),
        (
            "B's tenant id with A's random part",
            format!("{b_prefix}.{}", random_part(&a_customer.refresh)),
            format!("{b_prefix}.{}", fresh_random()),
        ),
        (
            "B's admin's token re-prefixed with A's tenant id",
            format!("{a_prefix}.{}", random_part(&b_admin.refresh)),
            format!("{a_prefix}.{}", fresh_random()),
        ),
    ] {
        let mut case = LikeMissing::new(
            "refreshSession",
            case,
            REFRESH,
            json!({ "token": forged }),
            json!({ "token": missing }),
            "UNAUTHENTICATED",
        );
        case.anonymous = true;
        probe.like_missing(case).await;
    }

    // revokeSession on B's sessions (the fixture's and the live ones) by A's super_admin,
    // who may end sessions of anyone in A: NOT_FOUND like a random id, nothing changes.
    let b_sessions = tenant_ids(&w.owner, "refresh_tokens", b.tenant_id).await;
    assert!(
        b_sessions.contains(&b_admin.sid) && b_sessions.contains(&b_customer.sid),
        "B's live sessions are rows of B"
    );
    for session in &b_sessions {
        probe
            .like_missing(LikeMissing::new(
                "revokeSession",
                &format!("B's session {session}"),
                REVOKE_SESSION,
                json!({ "id": session }),
                json!({ "id": random() }),
                "NOT_FOUND",
            ))
            .await;
    }
    // A's own: the customer's fixture session ends (its family is its token id).
    let revoked = probe
        .succeeds(
            "revokeSession",
            "A's customer's session",
            REVOKE_SESSION,
            json!({ "id": a.sessions[0] }),
            "session.revoke",
        )
        .await;
    assert_eq!(revoked["isActive"], false, "{revoked}");
    assert_eq!(
        uuid_at(&revoked, "/userId"),
        Some(a.user("customer")),
        "{revoked}"
    );

    // refreshSession with A's own token works and stays in A.
    let b_before = tenant_fingerprint(&w.owner, b.tenant_id).await;
    let b_audit = tenant_count(&w.owner, "audit_log", b.tenant_id).await;
    probe.exercised.insert("refreshSession");
    let rotated = refresh_ok(&w.gw, &a_customer.refresh).await;
    assert_eq!(rotated.user_id, a.user("customer"));
    assert_eq!(rotated.sid, a_customer.sid, "the refresh keeps A's session");
    assert!(
        rotated.refresh.starts_with(&format!("{a_prefix}.")),
        "the new refresh token names A: {}",
        rotated.refresh
    );
    assert_session_live(
        &w.gw,
        &rotated.access,
        a.user("customer"),
        "A's refreshed session",
    )
    .await;

    // logout by A's admin ends A's admin session only: B's admin (same username) and the
    // other sessions of A are untouched.
    probe.exercised.insert("logout");
    let a_admin = sign_in(&w.gw, A, "admin", password).await;
    let a_states = session_states(&w.owner, a.tenant_id).await;
    let b_states = session_states(&w.owner, b.tenant_id).await;
    let data = w.gw.data(Some(&a_admin.access), LOGOUT, json!({})).await;
    assert_eq!(data["logout"], true, "{data}");
    assert_session_ended(&w.gw, &a_admin.access, "A's admin after logout").await;
    assert_session_live(
        &w.gw,
        &b_admin.access,
        b.user("admin"),
        "B's admin after A's admin logged out",
    )
    .await;
    assert_eq!(
        session_states(&w.owner, b.tenant_id).await,
        b_states,
        "logout in A changed B's sessions"
    );
    let mut expected = a_states.clone();
    expected.insert(a_admin.sid, true);
    assert_eq!(
        session_states(&w.owner, a.tenant_id).await,
        expected,
        "logout ends exactly the caller's session"
    );

    // revokeAllSessions(keepCurrent) by A's admin: the admin's other sessions in A end
    // (the fixture's included), the current one stays, nothing else anywhere changes.
    probe.exercised.insert("revokeAllSessions");
    let current: SignedIn = sign_in(&w.gw, A, "admin", password).await;
    let other = sign_in(&w.gw, A, "admin", password).await;
    let a_states = session_states(&w.owner, a.tenant_id).await;
    let b_states = session_states(&w.owner, b.tenant_id).await;
    let a_admin_rows = walk_ids(
        &w.owner,
        &format!(
            "select token_id as id from refresh_tokens where tenant_id = '{}' and user_id = '{}'",
            a.tenant_id,
            a.user("admin")
        ),
    )
    .await;
    let data =
        w.gw.data(Some(&current.access), REVOKE_ALL, json!({ "keep": true }))
            .await;
    let live_before = a_admin_rows
        .iter()
        .filter(|id| a_states.get(id) == Some(&false) && **id != current.sid)
        .count();
    assert_eq!(
        data["revokeAllSessions"], live_before as i64,
        "tokens revoked: {data}"
    );
    assert_session_live(&w.gw, &current.access, a.user("admin"), "the kept session").await;
    assert_session_ended(&w.gw, &other.access, "A's admin's other session").await;
    assert_session_live(&w.gw, &b_admin.access, b.user("admin"), "B's admin").await;
    assert_session_live(&w.gw, &w.token, a.user("super_admin"), "A's super_admin").await;
    assert_eq!(
        session_states(&w.owner, b.tenant_id).await,
        b_states,
        "revokeAllSessions in A changed B's sessions"
    );
    let mut expected = a_states.clone();
    for id in &a_admin_rows {
        if *id != current.sid {
            expected.insert(*id, true);
        }
    }
    assert_eq!(
        session_states(&w.owner, a.tenant_id).await,
        expected,
        "revokeAllSessions ends exactly the caller's other sessions"
    );
    // And without keepCurrent the current one ends too; B's admin still works.
    let data =
        w.gw.data(Some(&current.access), REVOKE_ALL, json!({ "keep": false }))
            .await;
    assert_eq!(data["revokeAllSessions"], 1, "{data}");
    assert_session_ended(&w.gw, &current.access, "A's admin after revokeAllSessions").await;
    assert_session_live(&w.gw, &b_admin.access, b.user("admin"), "B's admin").await;
    assert_session_live(&w.gw, &b_customer.access, b.user("customer"), "B's customer").await;

    // B saw nothing of all this: no row, no audit entry; B's tokens still rotate.
    let b_after = tenant_fingerprint(&w.owner, b.tenant_id).await;
    let changed = fingerprint_changes(&b_before, &b_after);
    assert!(
        changed.is_empty(),
        "session mutations in A changed B's {changed:?}"
    );
    assert_eq!(tenant_count(&w.owner, "audit_log", b.tenant_id).await, b_audit);
    let b_rotated = refresh_ok(&w.gw, &b_customer.refresh).await;
    assert_eq!(
        b_rotated.user_id,
        b.user("customer"),
        "B's own token still rotates in B"
    );
    probe.finish(&SESSION_MUTATION_CASES);
}

/// `mfa_secret`, `mfa_enabled` and the backup-code rows of a user, as the owner.
async fn mfa_state(owner: &DatabaseConnection, user: Uuid) -> (Option<String>, Option<String>, i64) {
    let secret = sql::scalar(
        owner,
        &format!("select mfa_secret from users where user_id = '{user}'"),
    )
    .await;
    let enabled = sql::scalar(
        owner,
        &format!("select mfa_enabled from users where user_id = '{user}'"),
    )
    .await;
    let codes = sql::count(
        owner,
        &format!("select count(*) from mfa_backup_codes where user_id = '{user}'"),
    )
    .await;
    (secret, enabled, codes)
}

/// The MFA mutations take no id: they act on the caller. Done by A's customer (B has a
/// customer of the same name), each changes the caller's own rows in A and nothing of B.
#[tokio::test]
async fn mfa_mutations_act_on_the_caller_in_tenant_a_only() {
    let w = world().await;
    let (a, b) = (&w.fx.a, &w.fx.b);
    let b_universe = w.b_universe().await;
    let token = w.fx.login(&w.gw, A, "customer").await;
    let b_before = tenant_fingerprint(&w.owner, b.tenant_id).await;
    let b_audit = tenant_count(&w.owner, "audit_log", b.tenant_id).await;
    let b_customer_mfa = mfa_state(&w.owner, b.user("customer")).await;
    let mut exercised = BTreeSet::new();
    let mut run = |name: &'static str| {
        exercised.insert(name);
    };

    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    run("enrollTotp");
    let (status, text) = w
        .post_as(
            Some(&token),
            "mutation { enrollTotp { secret otpauthUri } }",
            json!({}),
        )
        .await;
    let body = parse_body(&text);
    assert_eq!(status, 200, "{body:#}");
    assert!(errors(&body).is_empty(), "{body:#}");
    let secret = body["data"]["enrollTotp"]["secret"]
        .as_str()
        .expect("the enrolment secret")
        .to_string();
    assert!(b_ids_in(&body, &b_universe).is_empty(), "{body:#}");

    run("confirmTotp");
    let code = api::auth::mfa::code_at(&secret, now()).expect("a TOTP code");
    let data =
        w.gw.data(
            Some(&token),
            "mutation($c: String!) { confirmTotp(code: $c) }",
            json!({ "c": code }),
        )
        .await;
    assert_eq!(data["confirmTotp"], true);

    run("generateBackupCodes");
    let data =
        w.gw.data(Some(&token), "mutation { generateBackupCodes }", json!({}))
            .await;
    assert_eq!(
        data["generateBackupCodes"].as_array().map(Vec::len),
        Some(10),
        "{data}"
    );
    let (a_secret, a_enabled, a_codes) = mfa_state(&w.owner, a.user("customer")).await;
    assert!(a_secret.is_some(), "A's customer has a stored secret");
    assert_eq!(a_enabled.as_deref(), Some("true"));
    assert_eq!(a_codes, 10, "A's customer holds exactly the new set");

    run("disableTotp");
    // The next time step: a step is accepted once, and confirmTotp used the current one.
    let code = api::auth::mfa::code_at(&secret, now() + 30).expect("a TOTP code");
    let data =
        w.gw.data(
            Some(&token),
            "mutation($c: String!) { disableTotp(code: $c) }",
            json!({ "c": code }),
        )
        .await;
    assert_eq!(data["disableTotp"], true);

    assert_eq!(
        mfa_state(&w.owner, b.user("customer")).await,
        b_customer_mfa,
        "B's customer (same username) is untouched"
    );
    let changed = fingerprint_changes(&b_before, &tenant_fingerprint(&w.owner, b.tenant_id).await);
    assert!(changed.is_empty(), "MFA mutations in A changed B's {changed:?}");
    assert_eq!(tenant_count(&w.owner, "audit_log", b.tenant_id).await, b_audit);
    let expected: BTreeSet<&str> = MFA_MUTATION_CASES.into_iter().collect();
    assert_eq!(exercised, expected, "every MFA mutation case was exercised");
}

// ---------------------------------------------------------------------------------------
// Account mutations
// ---------------------------------------------------------------------------------------

const REQUEST_RESET: &str =
    "mutation($tenant: String!, $email: String!) { requestPasswordReset(tenant: $tenant, email: $email) }";
const RESET: &str = "mutation($token: String!, $password: String!) { resetPassword(input: \
    {token: $token, newPassword: $password}) }";
const CHANGE_PASSWORD: &str = "mutation($current: String!, $new: String!) { changePassword(input: \
    {currentPassword: $current, newPassword: $new}) { endedSessions } }";
const REQUEST_VERIFICATION: &str = "mutation { requestEmailVerification }";
const VERIFY_EMAIL: &str = "mutation($token: String!) { verifyEmail(token: $token) }";
const REGISTER: &str = "mutation($tenant: String!, $username: String!, $email: String!, $password: String!) { \
    register(input: {tenant: $tenant, username: $username, email: $email, password: $password}) }";

/// The account token in the newest message with `subject` to `user`, decrypted from the
/// outbox (`<32 hex>.<43 base64url>`).
async fn token_mailed_to(owner: &DatabaseConnection, user: Uuid, subject: &str) -> String {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let row = owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select notification_id, body from notification_outbox where user_id = $1 and subject = $2 \
              order by created_at desc, notification_id desc limit 1",
            [user.into(), subject.into()],
        ))
        .await
        .expect("outbox")
        .unwrap_or_else(|| panic!("no {subject:?} message to {user}"));
    let id: Uuid = row.try_get("", "notification_id").expect("id");
    let body: String = row.try_get("", "body").expect("body");
    let plain = api::auth::crypto::KeyRing::new(TEST_DATA_KEY, &[])
        .expect("test data key")
        .decrypt(&body, id.as_bytes())
        .expect("the message decrypts");
    let plain = String::from_utf8(plain).expect("utf-8");
    plain
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'))
        .find(|w| w.len() == 76 && w.as_bytes()[32] == b'.' && w[..32].bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no token in the message: {plain}"))
        .to_string()
}

/// `token` with its tenant part replaced by `tenant`'s id.
fn token_for_tenant(token: &str, tenant: Uuid) -> String {
    format!("{}.{}", tenant.simple(), random_part(token))
}

async fn password_hash(owner: &DatabaseConnection, user: Uuid) -> Option<String> {
    sql::scalar(
        owner,
        &format!("select password_hash from users where user_id = '{user}'"),
    )
    .await
}

impl MutationProbe<'_> {
    /// An anonymous mutation that answers success whatever it is given (no enumeration):
    /// with B's data it must answer exactly like with data that exists nowhere, and
    /// change nothing in A or B.
    async fn quiet(&mut self, name: &'static str, case: &str, query: &str, foreign: Value, missing: Value) {
        self.exercised.insert(name);
        let what = format!("{name} ({case})");
        let before = self.state().await;
        let (s_missing, missing) = self.w.post_as(None, query, missing).await;
        let (s_foreign, foreign) = self.w.post_as(None, query, foreign).await;
        let after = self.state().await;
        if (s_foreign, &foreign) != (s_missing, &missing) {
            self.findings.push(format!(
                "{what}: B's data answers {s_foreign} {foreign}; missing data {s_missing} {missing}"
            ));
        }
        self.leaks(&what, &foreign);
        for (tenant, b, a) in [("B", &before.b, &after.b), ("A", &before.a, &after.a)] {
            let changed = fingerprint_changes(b, a);
            if !changed.is_empty() {
                self.findings
                    .push(format!("{what}: changed {tenant}'s {changed:?}"));
            }
        }
        if (after.a_audit, after.b_audit) != (before.a_audit, before.b_audit) {
            self.findings.push(format!("{what}: wrote audit rows"));
        }
    }

    /// Runs `query` (as `token`, or anonymously) expecting success; B must not change.
    async fn in_a_only(
        &mut self,
        name: &'static str,
        case: &str,
        token: Option<&str>,
        query: &str,
        vars: Value,
    ) -> Value {
        self.exercised.insert(name);
        let what = format!("{name} ({case})");
        let before = self.state().await;
        let (status, text) = self.w.post_as(token, query, vars).await;
        let after = self.state().await;
        let body = parse_body(&text);
        if status != 200 || !errors(&body).is_empty() {
            self.findings
                .push(format!("{what}: should succeed: {status} {text}"));
        }
        self.leaks(&what, &text);
        let changed = fingerprint_changes(&before.b, &after.b);
        if !changed.is_empty() {
            self.findings.push(format!("{what}: changed B's {changed:?}"));
        }
        if after.b_audit != before.b_audit {
            self.findings.push(format!("{what}: wrote audit rows in B"));
        }
        body["data"][name].clone()
    }
}

/// The account mutations name no row id: a tenant slug and an email, a token, or the
/// caller. From tenant A none of them may read, change or message anything of tenant B,
/// even with B's addresses, B's tokens (re-prefixed with A's tenant id), or A's tokens
/// re-prefixed with B's.
#[tokio::test]
async fn account_mutations_act_in_the_callers_tenant_only() {
    let w = world().await;
    let (a, b) = (&w.fx.a, &w.fx.b);
    let password = support::fixture::PASSWORD;
    let new_password = "quartz lantern meadow 8841 violet";
    // A user only B has, and A open to self-registration (B is not).
    let b_only =
        w.gw.data(
            Some(&w.b_token),
            CREATE_USER,
            json!({ "input": { "username": "bonly", "email": "bonly@globex.example",
                               "password": B_ONLY_PASSWORD, "role": "CUSTOMER" } }),
        )
        .await;
    let b_only = uuid_at(&b_only, "/createUser/id").expect("B's user id");
    sql::exec(
        &w.owner,
        &format!(
            "update tenants set settings = settings || '{{\"self_registration\": true}}'::jsonb \
              where tenant_id = '{}'",
            a.tenant_id
        ),
    )
    .await;
    // B's customer and customer2 are signed in; B's customer has a reset link pending.
    let b_customer = support::sessions::sign_in(&w.gw, B, "customer", password).await;
    let b_customer2 = support::sessions::sign_in(&w.gw, B, "customer2", password).await;
    let (_, text) = w
        .post_as(
            None,
            REQUEST_RESET,
            json!({ "tenant": B, "email": "customer@globex.example" }),
        )
        .await;
    assert_eq!(parse_body(&text)["data"]["requestPasswordReset"], true, "{text}");
    let b_reset = token_mailed_to(&w.owner, b.user("customer"), "Reset your password").await;
    let b_hashes = [
        password_hash(&w.owner, b.user("customer")).await,
        password_hash(&w.owner, b.user("customer2")).await,
        password_hash(&w.owner, b_only).await,
    ];

    let mut probe = MutationProbe::new(&w).await;

    // requestPasswordReset in A with B's addresses: like an address that exists nowhere,
    // nothing sent anywhere. And A's address asked in B: the same.
    for (tenant, email) in [
        (A, "bonly@globex.example"),
        (A, "customer@globex.example"),
        (A, "BONLY@GLOBEX.EXAMPLE"),
        (B, "customer@acme.example"),
    ] {
        probe
            .quiet(
                "requestPasswordReset",
                &format!("{tenant} + {email}"),
                REQUEST_RESET,
                json!({ "tenant": tenant, "email": email }),
                json!({ "tenant": tenant, "email": format!("nobody-{}@globex.example", random().simple()) }),
            )
            .await;
    }
    // A's own address: one message, in A.
    let data = probe
        .in_a_only(
            "requestPasswordReset",
            "A's customer",
            None,
            REQUEST_RESET,
            json!({ "tenant": A, "email": "customer@acme.example" }),
        )
        .await;
    assert_eq!(data, true);
    let a_reset = token_mailed_to(&w.owner, a.user("customer"), "Reset your password").await;
    assert!(
        a_reset.starts_with(&a.tenant_id.simple().to_string()),
        "{a_reset}"
    );

    // resetPassword with tokens moved across tenants: like a token that was never issued.
    for (case, forged, missing) in [
        (
            "A's reset token under B's tenant id",
            token_for_tenant(&a_reset, b.tenant_id),
            format!(
                "{}.{}",
                b.tenant_id.simple(),
                support::sessions::random_token_part()
            ),
        ),
        (
            "B's reset token under A's tenant id",
            token_for_tenant(&b_reset, a.tenant_id),
            format!(
                "{}.{}",
                a.tenant_id.simple(),
                support::sessions::random_token_part()
            ),
        ),
    ] {
        let mut case = LikeMissing::new(
            "resetPassword",
            case,
            RESET,
            json!({ "token": forged, "password": new_password }),
            json!({ "token": missing, "password": new_password }),
            "BAD_USER_INPUT",
        );
        case.anonymous = true;
        probe.like_missing(case).await;
    }
    // A's own token resets A's customer only.
    let data = probe
        .in_a_only(
            "resetPassword",
            "A's token",
            None,
            RESET,
            json!({ "token": a_reset, "password": new_password }),
        )
        .await;
    assert_eq!(data, true);
    support::sessions::sign_in(&w.gw, A, "customer", new_password).await;
    support::sessions::assert_session_live(&w.gw, &b_customer.access, b.user("customer"), "B's customer")
        .await;
    // B's token still works in B, for B's customer (not reached by anything above).
    let (_, text) = w
        .post_as(
            None,
            RESET,
            json!({ "token": b_reset, "password": "b side passphrase 4471 osprey" }),
        )
        .await;
    assert_eq!(parse_body(&text)["data"]["resetPassword"], true, "{text}");
    support::sessions::sign_in(&w.gw, B, "customer", "b side passphrase 4471 osprey").await;
    support::sessions::sign_in(&w.gw, A, "customer", new_password).await;

    // changePassword by A's customer2: B's customer2 (same username, same old password)
    // keeps its hash and session. A wrong current password (B's customer2's password is
    // no longer A's) counts in A only.
    let a_customer2 = support::sessions::sign_in(&w.gw, A, "customer2", password).await;
    let data = probe
        .in_a_only(
            "changePassword",
            "A's customer2",
            Some(&a_customer2.access),
            CHANGE_PASSWORD,
            json!({ "current": password, "new": new_password }),
        )
        .await;
    assert_eq!(data["endedSessions"], 0, "{data}");
    let before = probe.state().await;
    let (_, text) = w
        .post_as(
            Some(&a_customer2.access),
            CHANGE_PASSWORD,
            json!({ "current": password, "new": "another passphrase 9034 plover" }),
        )
        .await;
    assert_eq!(
        first_error_code(&parse_body(&text)).as_deref(),
        Some("BAD_USER_INPUT"),
        "{text}"
    );
    let after = probe.state().await;
    assert_eq!(
        fingerprint_changes(&before.b, &after.b),
        Vec::<String>::new(),
        "a failed check in A changed B"
    );
    assert_eq!(
        sql::count(
            &w.owner,
            &format!(
                "select failed_login_attempts from users where user_id = '{}'",
                b.user("customer2")
            )
        )
        .await,
        0
    );
    support::sessions::assert_session_live(&w.gw, &b_customer2.access, b.user("customer2"), "B's customer2")
        .await;
    support::sessions::sign_in(&w.gw, B, "customer2", password).await;

    // requestEmailVerification by A's customer2: a message in A only.
    let data = probe
        .in_a_only(
            "requestEmailVerification",
            "A's customer2",
            Some(&a_customer2.access),
            REQUEST_VERIFICATION,
            json!({}),
        )
        .await;
    assert_eq!(data, true);
    let a_verify = token_mailed_to(&w.owner, a.user("customer2"), "Confirm your email address").await;
    // verifyEmail with A's token under B's tenant id: like a token never issued.
    let mut case = LikeMissing::new(
        "verifyEmail",
        "A's verification token under B's tenant id",
        VERIFY_EMAIL,
        json!({ "token": token_for_tenant(&a_verify, b.tenant_id) }),
        json!({ "token": format!("{}.{}", b.tenant_id.simple(), support::sessions::random_token_part()) }),
        "BAD_USER_INPUT",
    );
    case.anonymous = true;
    probe.like_missing(case).await;
    let data = probe
        .in_a_only(
            "verifyEmail",
            "A's token",
            None,
            VERIFY_EMAIL,
            json!({ "token": a_verify }),
        )
        .await;
    assert_eq!(data, true);
    let verified = |user: Uuid| {
        let owner = &w.owner;
        async move {
            sql::scalar(
                owner,
                &format!("select is_verified::text from users where user_id = '{user}'"),
            )
            .await
            .expect("is_verified")
        }
    };
    assert_eq!(verified(a.user("customer2")).await, "true");
    assert_eq!(
        verified(b.user("customer2")).await,
        "false",
        "B's customer2 is not verified"
    );

    // register in B (closed) answers like an unknown tenant and creates nothing.
    let mut case = LikeMissing::new(
        "register",
        "B, which is closed",
        REGISTER,
        json!({ "tenant": B, "username": "newcomer", "email": "newcomer@example.org", "password": new_password }),
        json!({ "tenant": "no-such-tenant", "username": "newcomer", "email": "newcomer@example.org",
                "password": new_password }),
        "FORBIDDEN",
    );
    case.anonymous = true;
    probe.like_missing(case).await;
    // register in A with B's user's username and email, and with B's customer's email:
    // new users of A, nothing of B touched, no notice to B's address owners.
    for (username, email) in [
        ("bonly", "bonly@globex.example"),
        ("gcustomer", "customer@globex.example"),
    ] {
        let data = probe
            .in_a_only(
                "register",
                &format!("A with B's {email}"),
                None,
                REGISTER,
                json!({ "tenant": A, "username": username, "email": email, "password": new_password }),
            )
            .await;
        assert_eq!(data, true);
        let in_a = walk_ids(
            &w.owner,
            &format!(
                "select user_id as id from users where tenant_id = '{}' and lower(email) = '{email}'",
                a.tenant_id
            ),
        )
        .await;
        assert_eq!(in_a.len(), 1, "{email}: a new user of A");
        let in_b = walk_ids(
            &w.owner,
            &format!(
                "select user_id as id from users where tenant_id = '{}' and lower(email) = '{email}'",
                b.tenant_id
            ),
        )
        .await;
        assert_eq!(in_b.len(), 1, "{email}: B still has exactly its own");
        assert!(!in_a.contains(&in_b[0]));
    }
    // register in A with A's own customer's address: no user, a notice in A only.
    let data = probe
        .in_a_only(
            "register",
            "A with A's customer's address",
            None,
            REGISTER,
            json!({ "tenant": A, "username": "impostor", "email": "customer@acme.example", "password": new_password }),
        )
        .await;
    assert_eq!(data, true);
    assert_eq!(
        sql::count(&w.owner, "select count(*) from users where username = 'impostor'").await,
        0
    );

    // B's passwords are untouched (B's customer was reset in B, by B's own token).
    assert_eq!(password_hash(&w.owner, b.user("customer2")).await, b_hashes[1]);
    assert_eq!(password_hash(&w.owner, b_only).await, b_hashes[2]);
    assert_ne!(password_hash(&w.owner, b.user("customer")).await, b_hashes[0]);
    probe.finish(&ACCOUNT_MUTATION_CASES);
}
