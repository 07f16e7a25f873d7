//! The role matrix of README "Authorization", row by row, inside one tenant (A, "acme"):
//! what each role (customer, officer, manager, admin, super_admin) gets from every root
//! list and fetch by id, the field-level checks on a user reached through another row,
//! the permission each mutation needs, rank rules for managing users and roles, extra
//! permission strings, and sessions ended by a role change, a lock or a deactivation.
//! Every refusal asserts its exact `extensions.code`. A user-management mutation on a
//! user the caller cannot see (a customer, on anyone but themselves) answers NOT_FOUND,
//! exactly as for an id that does not exist; one the caller sees but may not manage
//! answers FORBIDDEN. Every operation re-reads the caller's session and user, so a token
//! whose session a role change, lock or deactivation ended is refused at once: such an
//! actor signs in again before acting again.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use support::fixture::{A, Fixture, PASSWORD};
use support::gateway::{TestGateway, errors, first_error_code, parse_body};
use support::walk::{global_intel_ids, mask_uuids, tenant_count, tenant_ids, uuid_column};
use support::{TestDb, assert_no_findings, sql};
use uuid::Uuid;

/// The roles of the matrix, lowest first, by their fixture usernames.
const ROLES: [&str; 5] = ["customer", "officer", "manager", "admin", "super_admin"];

/// What a role gets from a root query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// FORBIDDEN.
    Forbidden,
    /// Only the caller's own rows (the caller themselves, for users).
    Own,
    /// Every row of the tenant.
    Tenant,
}

use Access::{Forbidden as F, Own as O, Tenant as T};

/// README "Authorization" for root lists: (field, table, [customer, officer, manager,
/// admin, super_admin]).
const LIST_MATRIX: [(&str, &str, [Access; 5]); 9] = [
    ("users", "users", [O, T, T, T, T]),
    ("sessions", "refresh_tokens", [O, T, T, T, T]),
    ("trustedDevices", "trusted_devices", [O, T, T, T, T]),
    ("securityEvents", "security_events", [O, T, T, T, T]),
    ("threatEvents", "threat_events", [F, T, T, T, T]),
    ("securityIncidents", "security_incidents", [F, T, T, T, T]),
    ("threatIntelligence", "threat_intelligence", [F, T, T, T, T]),
    ("rateLimitEntries", "rate_limit_entries", [F, F, T, T, T]),
    ("auditLog", "audit_log", [F, F, F, T, T]),
];

/// The same for fetches by id.
const BY_ID_MATRIX: [(&str, &str, [Access; 5]); 9] = [
    ("user", "users", [O, T, T, T, T]),
    ("session", "refresh_tokens", [O, T, T, T, T]),
    ("trustedDevice", "trusted_devices", [O, T, T, T, T]),
    ("securityEvent", "security_events", [O, T, T, T, T]),
    ("threatEvent", "threat_events", [F, T, T, T, T]),
    ("securityIncident", "security_incidents", [F, T, T, T, T]),
    ("threatIndicator", "threat_intelligence", [F, T, T, T, T]),
    ("rateLimitEntry", "rate_limit_entries", [F, F, T, T, T]),
    ("auditEntry", "audit_log", [F, F, F, T, T]),
];

/// Tables whose rows belong to one user (column user_id), besides users itself.
const PER_USER_TABLES: [&str; 5] = [
    "refresh_tokens",
    "trusted_devices",
    "security_events",
    "rate_limit_entries",
    "audit_log",
];

/// Everything a test needs; the database drops last.
struct World {
    gw: TestGateway,
    owner: DatabaseConnection,
    fx: Fixture,
    /// Access tokens of A's users, by username.
    tokens: BTreeMap<String, String>,
    _db: TestDb,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    let mut tokens = BTreeMap::new();
    for username in ROLES.iter().chain(["customer2"].iter()) {
        tokens.insert(username.to_string(), fx.login(&gw, A, username).await);
    }
    World {
        gw,
        owner,
        fx,
        tokens,
        _db: db,
    }
}

impl World {
    fn token(&self, who: &str) -> &str {
        self.tokens
            .get(who)
            .unwrap_or_else(|| panic!("no token for {who}"))
    }

    fn id(&self, who: &str) -> Uuid {
        self.fx.a.user(who)
    }

    /// Runs one operation as `who`; the body (HTTP 200 required: refusals are coded
    /// GraphQL errors, not HTTP errors).
    async fn ask(&self, who: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.gw.gql(Some(self.token(who)), query, variables).await;
        assert_eq!(status, 200, "{who}: {query}: {body:#}");
        body
    }

    /// Runs one operation as `who`; the raw status and body text.
    async fn ask_raw(&self, who: &str, query: &str, variables: Value) -> (u16, String) {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.gw
            .post_raw("application/json", body, Some(self.token(who)))
            .await
    }

    /// Signs `who` in again (after their permissions changed, or their sessions ended).
    async fn relogin(&mut self, who: &str) {
        let token = self.fx.login(&self.gw, A, who).await;
        self.tokens.insert(who.to_string(), token);
    }

    /// Sets `who`'s extra permission strings as the owner, and signs them in again.
    async fn grant(&mut self, who: &str, permissions: &[&str]) {
        let list = permissions
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ");
        sql::exec(
            &self.owner,
            &format!(
                "update users set permissions = array[{list}]::text[] where user_id = '{}'",
                self.id(who)
            ),
        )
        .await;
        self.relogin(who).await;
    }

    /// Every id of `table` in A that the caller may see tenant-wide.
    async fn tenant_rows(&self, table: &str) -> BTreeSet<Uuid> {
        let mut ids = tenant_ids(&self.owner, table, self.fx.a.tenant_id).await;
        if table == "threat_intelligence" {
            ids.extend(global_intel_ids(&self.owner).await);
        }
        ids
    }

    /// The ids of `table` rows of A that belong to `user`.
    async fn rows_of(&self, table: &str, user: Uuid) -> BTreeSet<Uuid> {
        if table == "users" {
            return [user].into();
        }
        let id = support::walk::id_column(table);
        uuid_column(
            &self.owner,
            &format!(
                "select {id} as id from {table} where tenant_id = '{}' and user_id = '{user}'",
                self.fx.a.tenant_id
            ),
        )
        .await
    }

    /// One row of `table` in A that does not belong to `user` (any row, for tables
    /// without an owner), if A has one.
    async fn row_not_of(&self, table: &str, user: Uuid) -> Option<Uuid> {
        let id = support::walk::id_column(table);
        let has_owner = table == "users" || PER_USER_TABLES.contains(&table);
        let condition = if has_owner {
            format!("and user_id is distinct from '{user}'")
        } else {
            String::new()
        };
        let ids = uuid_column(
            &self.owner,
            &format!(
                "select {id} as id from {table} where tenant_id = '{}' {condition} order by {id} limit 1",
                self.fx.a.tenant_id
            ),
        )
        .await;
        ids.into_iter().next()
    }

    async fn audit_rows(&self) -> i64 {
        tenant_count(&self.owner, "audit_log", self.fx.a.tenant_id).await
    }
}

fn uuid_at(value: &Value, pointer: &str) -> Option<Uuid> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn node_ids(connection: &Value) -> BTreeSet<Uuid> {
    connection["edges"]
        .as_array()
        .map(|edges| edges.iter().filter_map(|e| uuid_at(e, "/node/id")).collect())
        .unwrap_or_default()
}

/// Records a finding unless `body` failed with exactly `code` (and, when given, at
/// `path`).
fn expect_code(findings: &mut Vec<String>, what: &str, body: &Value, code: &str, path: Option<Value>) {
    let got = first_error_code(body);
    if got.as_deref() != Some(code) {
        findings.push(format!("{what}: expected {code}, got {got:?}: {body}"));
        return;
    }
    if let Some(path) = path {
        let got_path = errors(body).first().map(|e| e["path"].clone());
        if got_path != Some(path.clone()) {
            findings.push(format!(
                "{what}: {code} at {got_path:?}, expected at {path}: {body}"
            ));
        }
    }
}

/// Records a finding unless `token` is refused because its session ended:
/// UNAUTHENTICATED "the session has ended", and no data.
async fn expect_session_ended(w: &World, findings: &mut Vec<String>, what: &str, token: &str) {
    let (status, body) = w.gw.gql(Some(token), "{ me { id role } }", json!({})).await;
    let code = first_error_code(&body);
    if code.as_deref() != Some("UNAUTHENTICATED")
        || body["errors"][0]["message"] != "the session has ended"
        || !body["data"].is_null()
    {
        findings.push(format!(
            "{what}: expected UNAUTHENTICATED \"the session has ended\", got HTTP {status}, code {code:?}: {body}"
        ));
    }
}

/// Records a finding unless `who`'s current token is accepted as `who` with `role`.
async fn expect_signed_in_as(w: &World, findings: &mut Vec<String>, what: &str, who: &str, role: &str) {
    let body = w.ask(who, "{ me { id role } }", json!({})).await;
    if !errors(&body).is_empty()
        || uuid_at(&body, "/data/me/id") != Some(w.id(who))
        || body["data"]["me"]["role"] != role
    {
        findings.push(format!("{what}: expected {who} signed in as {role}: {body}"));
    }
}

/// Records a finding unless `body` carries no error.
fn expect_ok(findings: &mut Vec<String>, what: &str, body: &Value) -> bool {
    if errors(body).is_empty() {
        true
    } else {
        findings.push(format!("{what}: expected success: {body}"));
        false
    }
}

// ---------------------------------------------------------------------------------------
// Root queries, role by role
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_role_matrix_of_root_list_queries_holds_row_by_row() {
    let w = world().await;
    let mut findings = vec![];
    for (r, role) in ROLES.iter().enumerate() {
        let me = w.id(role);
        let body = w
            .ask(role, "{ me { id email } tenant { id } version }", json!({}))
            .await;
        if uuid_at(&body, "/data/me/id") != Some(me)
            || uuid_at(&body, "/data/tenant/id") != Some(w.fx.a.tenant_id)
            || !body["data"]["version"].is_string()
        {
            findings.push(format!("{role}: me/tenant/version: {body}"));
        }
        for (field, table, access) in LIST_MATRIX {
            let what = format!("{role} lists {field}");
            let body = w
                .ask(
                    role,
                    &format!("{{ {field}(first: 100) {{ totalCount edges {{ node {{ id }} }} }} }}"),
                    json!({}),
                )
                .await;
            let expected = match access[r] {
                Access::Forbidden => {
                    expect_code(&mut findings, &what, &body, "FORBIDDEN", Some(json!([field])));
                    if !node_ids(&body["data"][field]).is_empty() {
                        findings.push(format!("{what}: rows came with the refusal: {body}"));
                    }
                    continue;
                }
                Access::Own => {
                    let own = w.rows_of(table, me).await;
                    let all = w.tenant_rows(table).await;
                    if own.is_empty() || own.len() >= all.len() {
                        findings.push(format!(
                            "{what}: the fixture gives {role} {} of A's {} {table} rows: the case proves nothing",
                            own.len(),
                            all.len()
                        ));
                    }
                    own
                }
                Access::Tenant => w.tenant_rows(table).await,
            };
            if !expect_ok(&mut findings, &what, &body) {
                continue;
            }
            let listed = node_ids(&body["data"][field]);
            if listed != expected {
                findings.push(format!(
                    "{what} ({:?}): listed {} rows, expected {}: extra {:?}, missing {:?}",
                    access[r],
                    listed.len(),
                    expected.len(),
                    listed.difference(&expected).collect::<Vec<_>>(),
                    expected.difference(&listed).collect::<Vec<_>>()
                ));
            }
            if body["data"][field]["totalCount"].as_u64() != Some(expected.len() as u64) {
                findings.push(format!(
                    "{what}: totalCount {}, expected {}",
                    body["data"][field]["totalCount"],
                    expected.len()
                ));
            }
        }
    }
    assert_no_findings("role matrix of root lists", &findings);
}

#[tokio::test]
async fn the_role_matrix_of_fetch_by_id_queries_holds_row_by_row() {
    let w = world().await;
    let mut findings = vec![];
    for (r, role) in ROLES.iter().enumerate() {
        let me = w.id(role);
        for (field, table, access) in BY_ID_MATRIX {
            let query = format!("query($id: UUID!) {{ {field}(id: $id) {{ id }} }}");
            let mut probes = vec![];
            if let Some(other) = w.row_not_of(table, me).await {
                probes.push(("another user's row", other));
            }
            if (table == "users" || PER_USER_TABLES.contains(&table))
                && let Some(own) = w.rows_of(table, me).await.into_iter().next()
            {
                probes.push(("an own row", own));
            }
            if table == "threat_intelligence" {
                probes.push(("the global indicator", w.fx.global_intel));
            }
            if probes.is_empty() {
                findings.push(format!(
                    "{role}: no {table} row to fetch: the case proves nothing"
                ));
            }
            for (which, id) in probes {
                let what = format!("{role} fetches {field}({which})");
                let body = w.ask(role, &query, json!({ "id": id })).await;
                let visible = match access[r] {
                    Access::Forbidden => {
                        expect_code(&mut findings, &what, &body, "FORBIDDEN", Some(json!([field])));
                        continue;
                    }
                    Access::Own => which == "an own row",
                    Access::Tenant => true,
                };
                if !expect_ok(&mut findings, &what, &body) {
                    continue;
                }
                let got = uuid_at(&body, &format!("/data/{field}/id"));
                let expected = visible.then_some(id);
                if got != expected {
                    findings.push(format!(
                        "{what} ({:?}): got {got:?}, expected {expected:?}",
                        access[r]
                    ));
                }
            }
        }
    }
    assert_no_findings("role matrix of fetches by id", &findings);
}

#[tokio::test]
async fn a_customer_sees_only_themselves_and_their_own_rows_inside_their_tenant() {
    let w = world().await;
    let me = w.id("customer");
    let body = w
        .ask(
            "customer",
            "query($other: UUID!, $admin: UUID!) { \
               me { id email } \
               users(first: 100) { totalCount edges { node { id email } } } \
               other: user(id: $other) { id } admin: user(id: $admin) { id } \
               securityEvents(first: 100) { totalCount edges { node { id userId user { id email } } } } \
               sessions(first: 100) { edges { node { id userId user { id email } } } } \
               trustedDevices(first: 100) { edges { node { id userId user { id email } } } } }",
            json!({ "other": w.id("customer2"), "admin": w.id("admin") }),
        )
        .await;
    assert!(errors(&body).is_empty(), "{body:#}");
    let data = &body["data"];
    assert_eq!(data["me"]["email"], "customer@acme.example", "{body:#}");
    assert_eq!(
        node_ids(&data["users"]),
        BTreeSet::from([me]),
        "users shows a customer only themselves: {body:#}"
    );
    assert_eq!(data["users"]["totalCount"], 1, "{body:#}");
    assert!(
        data["other"].is_null(),
        "user(another customer) is null: {body:#}"
    );
    assert!(data["admin"].is_null(), "user(admin) is null: {body:#}");
    for list in ["securityEvents", "sessions", "trustedDevices"] {
        let edges = data[list]["edges"].as_array().cloned().unwrap_or_default();
        assert!(!edges.is_empty(), "{list}: the customer has rows: {body:#}");
        for e in edges {
            assert_eq!(
                uuid_at(&e, "/node/userId"),
                Some(me),
                "{list} of another user: {e}"
            );
            // Their own user, reached through their own row: personal fields visible.
            assert_eq!(e["node"]["user"]["email"], "customer@acme.example", "{list}: {e}");
        }
    }
    assert_eq!(
        node_ids(&data["trustedDevices"]),
        BTreeSet::from([w.fx.a.devices[0]]),
        "the customer's one device, not the admin's"
    );
    let own_events = w.rows_of("security_events", me).await;
    assert_eq!(node_ids(&data["securityEvents"]), own_events);
    assert!(own_events.len() < w.tenant_rows("security_events").await.len());
}

// ---------------------------------------------------------------------------------------
// Field-level checks and extra permission strings
// ---------------------------------------------------------------------------------------

const INCIDENT_VIEW: &str =
    "query($id: UUID!) { securityIncident(id: $id) { id assignee { id username role } } }";
const INCIDENT_EMAIL: &str = "query($id: UUID!) { securityIncident(id: $id) { id assignee { id email } } }";

#[tokio::test]
async fn a_reached_users_email_needs_users_read_or_being_that_user() {
    let mut w = world().await;
    let incident = w.fx.a.incidents[0];
    let manager = w.id("manager");
    let assigned = w
        .ask(
            "super_admin",
            "mutation($id: UUID!, $user: UUID) { assignIncident(id: $id, userId: $user) { id } }",
            json!({ "id": incident, "user": manager }),
        )
        .await;
    assert!(errors(&assigned).is_empty(), "{assigned:#}");

    // An officer holds users:read: the assignee's email is visible.
    let body = w.ask("officer", INCIDENT_EMAIL, json!({ "id": incident })).await;
    assert!(errors(&body).is_empty(), "{body:#}");
    assert_eq!(
        body["data"]["securityIncident"]["assignee"]["email"], "manager@acme.example",
        "{body:#}"
    );

    // A customer given incidents:read (but not users:read) reaches the assignee: id,
    // username and role, never the email.
    w.grant("customer", &["incidents:read"]).await;
    let mut findings = vec![];
    let body = w.ask("customer", INCIDENT_VIEW, json!({ "id": incident })).await;
    if expect_ok(&mut findings, "customer+incidents:read sees the assignee", &body) {
        assert_eq!(
            uuid_at(&body, "/data/securityIncident/assignee/id"),
            Some(manager),
            "{body:#}"
        );
    }
    let body = w.ask("customer", INCIDENT_EMAIL, json!({ "id": incident })).await;
    expect_code(
        &mut findings,
        "customer+incidents:read reads the assignee's email",
        &body,
        "FORBIDDEN",
        Some(json!(["securityIncident", "assignee", "email"])),
    );
    if body.to_string().contains("manager@acme.example") {
        findings.push(format!("the email leaked anyway: {body}"));
    }
    // incident.relatedThreats needs threats:read, relatedEvents events:read.
    for (field, path) in [
        ("relatedThreats", "relatedThreats"),
        ("relatedEvents", "relatedEvents"),
    ] {
        let body = w
            .ask(
                "customer",
                &format!("query($id: UUID!) {{ securityIncident(id: $id) {{ id {field} {{ id }} }} }}"),
                json!({ "id": incident }),
            )
            .await;
        expect_code(
            &mut findings,
            &format!("customer+incidents:read reads incident.{field}"),
            &body,
            "FORBIDDEN",
            Some(json!(["securityIncident", path])),
        );
    }
    assert_no_findings("field-level checks on a reached user", &findings);
}

#[tokio::test]
async fn extra_permission_strings_widen_access_after_signing_in_again() {
    let mut w = world().await;
    let me = w.id("customer");
    let mut findings = vec![];
    let count = "{ securityEvents(first: 100) { totalCount } }";
    let own = w.rows_of("security_events", me).await.len() as u64;
    let body = w.ask("customer", count, json!({})).await;
    assert_eq!(
        body["data"]["securityEvents"]["totalCount"].as_u64(),
        Some(own),
        "{body:#}"
    );

    // events:read, granted as the owner: the next sign-in sees every event of the tenant.
    w.grant("customer", &["events:read"]).await;
    let body = w.ask("customer", count, json!({})).await;
    let all = w.tenant_rows("security_events").await.len() as u64;
    assert!(all > own, "A has events of other users");
    assert_eq!(
        body["data"]["securityEvents"]["totalCount"].as_u64(),
        Some(all),
        "events:read shows all of the tenant's events: {body:#}"
    );
    // ... and the users of those events, but without users:read only their public fields.
    let body = w
        .ask(
            "customer",
            "{ securityEvents(first: 100) { edges { node { id userId user { id username role } } } } }",
            json!({}),
        )
        .await;
    expect_ok(&mut findings, "customer+events:read: users of events", &body);
    let body = w
        .ask(
            "customer",
            "{ securityEvents(first: 100) { edges { node { id userId user { id email } } } } }",
            json!({}),
        )
        .await;
    let edges = body["data"]["securityEvents"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let others_events = edges
        .iter()
        .filter(|e| e["node"]["userId"].is_string() && uuid_at(e, "/node/userId") != Some(me))
        .count();
    let refusals = errors(&body)
        .iter()
        .filter(|e| {
            e.pointer("/extensions/code") == Some(&json!("FORBIDDEN"))
                && e["path"].as_array().and_then(|p| p.last()) == Some(&json!("email"))
        })
        .count();
    if others_events == 0 || refusals != others_events || errors(&body).len() != refusals {
        findings.push(format!(
            "customer+events:read reading emails: {others_events} events of other users, \
             {refusals} FORBIDDEN on email: {body}"
        ));
    }
    for e in &edges {
        if uuid_at(e, "/node/userId") == Some(me) && e["node"]["user"]["email"] != "customer@acme.example" {
            findings.push(format!("the customer's own email on their own event: {e}"));
        }
    }

    // users:read: every user and their personal fields, but not their per-user lists.
    w.grant("customer2", &["users:read", "root:all"]).await;
    let admin = w.id("admin");
    let body = w
        .ask(
            "customer2",
            "query($id: UUID!) { users(first: 100) { totalCount } user(id: $id) { id email } }",
            json!({ "id": admin }),
        )
        .await;
    if expect_ok(&mut findings, "customer2+users:read", &body) {
        let users = w.tenant_rows("users").await.len() as u64;
        if body["data"]["users"]["totalCount"].as_u64() != Some(users)
            || body["data"]["user"]["email"] != "admin@acme.example"
        {
            findings.push(format!("customer2+users:read sees every user and email: {body}"));
        }
    }
    for field in ["securityEvents", "sessions", "trustedDevices", "auditLog"] {
        let body = w
            .ask(
                "customer2",
                &format!("query($id: UUID!) {{ user(id: $id) {{ id {field}(first: 5) {{ totalCount }} }} }}"),
                json!({ "id": admin }),
            )
            .await;
        expect_code(
            &mut findings,
            &format!("customer2+users:read reads admin.{field}"),
            &body,
            "FORBIDDEN",
            Some(json!(["user", field])),
        );
    }
    // An unknown permission string grants nothing.
    let body = w
        .ask("customer2", "{ auditLog(first: 1) { totalCount } }", json!({}))
        .await;
    expect_code(
        &mut findings,
        "customer2 with \"root:all\" reads the audit log",
        &body,
        "FORBIDDEN",
        Some(json!(["auditLog"])),
    );
    assert_no_findings("extra permission strings", &findings);
}

// ---------------------------------------------------------------------------------------
// Mutations and the permission each needs
// ---------------------------------------------------------------------------------------

const REPORT_THREAT: &str = "mutation($users: [UUID!]!) { reportThreat(input: {threatType: \"authz\", \
    severity: HIGH, affectedUserIds: $users}) { id } }";
const CHANGE_THREAT_STATUS: &str =
    "mutation($id: UUID!) { changeThreatStatus(id: $id, status: INVESTIGATING) { id status } }";
const OPEN_INCIDENT: &str = "mutation($assignee: UUID, $threats: [UUID!]!) { openIncident(input: \
    {incidentType: \"authz\", severity: LOW, title: \"authz\", assignedTo: $assignee, relatedThreatIds: $threats}) { id } }";
const ASSIGN_INCIDENT: &str =
    "mutation($id: UUID!, $user: UUID) { assignIncident(id: $id, userId: $user) { id } }";
const CHANGE_INCIDENT_STATUS: &str =
    "mutation($id: UUID!) { changeIncidentStatus(id: $id, status: RESOLVED) { id status } }";
const CHANGE_INCIDENT_PRIORITY: &str =
    "mutation($id: UUID!) { changeIncidentPriority(id: $id, priority: CRITICAL) { id priority } }";
const LINK_INCIDENT: &str =
    "mutation($id: UUID!, $threats: [UUID!]!) { linkIncident(id: $id, threatIds: $threats) { id } }";
const ADD_INDICATOR: &str = "mutation($value: String!) { addThreatIndicator(input: {indicatorType: DOMAIN, \
    indicatorValue: $value}) { id } }";
const DEACTIVATE_INDICATOR: &str =
    "mutation($id: UUID!) { deactivateThreatIndicator(id: $id) { id isActive } }";

/// Runs `query` as `who` and checks the outcome: `Some(code)` must fail with that code
/// and write no audit row; `None` must succeed and write exactly one. Returns the body.
async fn attempt(
    w: &World,
    findings: &mut Vec<String>,
    who: &str,
    what: &str,
    query: &str,
    variables: Value,
    refusal: Option<&str>,
) -> Value {
    let before = w.audit_rows().await;
    let body = w.ask(who, query, variables).await;
    let written = w.audit_rows().await - before;
    let what = format!("{who}: {what}");
    match refusal {
        Some(code) => {
            expect_code(findings, &what, &body, code, None);
            if written != 0 {
                findings.push(format!("{what}: a refused mutation wrote {written} audit rows"));
            }
        }
        None => {
            if expect_ok(findings, &what, &body) && written != 1 {
                findings.push(format!("{what}: wrote {written} audit rows, expected 1"));
            }
        }
    }
    body
}

/// Runs `query` as `who` on `unseen`, a user `who` cannot see, and on a random id: both
/// must fail NOT_FOUND without data, write no audit row, leave `unseen`'s row as it was,
/// and answer byte for byte alike once ids are masked, so the refusal does not even tell
/// that `unseen` exists.
async fn attempt_unseen(
    w: &World,
    findings: &mut Vec<String>,
    who: &str,
    what: &str,
    query: &str,
    variables: &dyn Fn(Uuid) -> Value,
    unseen: Uuid,
) {
    let what = format!("{who}: {what}");
    let row = format!("select u::text from users u where user_id = '{unseen}'");
    let row_before = sql::scalar(&w.owner, &row).await;
    let audit_before = w.audit_rows().await;
    let (s_unseen, unseen_text) = w.ask_raw(who, query, variables(unseen)).await;
    let (s_missing, missing_text) = w.ask_raw(who, query, variables(Uuid::now_v7())).await;
    let written = w.audit_rows().await - audit_before;
    if row_before.is_none() || sql::scalar(&w.owner, &row).await != row_before {
        findings.push(format!("{what}: the unseen user's row changed (or is missing)"));
    }
    for (which, status, text) in [
        ("the unseen user", s_unseen, &unseen_text),
        ("a random id", s_missing, &missing_text),
    ] {
        let body = parse_body(text);
        if status != 200 {
            findings.push(format!("{what} on {which}: HTTP {status}: {text}"));
        }
        expect_code(findings, &format!("{what} on {which}"), &body, "NOT_FOUND", None);
        if !body["data"].is_null() {
            findings.push(format!("{what} on {which}: data came with the refusal: {text}"));
        }
    }
    if written != 0 {
        findings.push(format!("{what}: refused mutations wrote {written} audit rows"));
    }
    if mask_uuids(&unseen_text) != mask_uuids(&missing_text) {
        findings.push(format!(
            "{what}: the unseen user answers {unseen_text}; a random id answers {missing_text}"
        ));
    }
}

#[tokio::test]
async fn threat_incident_and_intel_writes_need_a_manager() {
    let mut w = world().await;
    let a = w.fx.a.clone();
    let mut findings = vec![];
    let writes: [(&str, &str, Value); 9] = [
        (
            "reportThreat",
            REPORT_THREAT,
            json!({ "users": [a.user("customer")] }),
        ),
        (
            "changeThreatStatus",
            CHANGE_THREAT_STATUS,
            json!({ "id": a.threats[0] }),
        ),
        (
            "openIncident",
            OPEN_INCIDENT,
            json!({ "assignee": null, "threats": [a.threats[0]] }),
        ),
        (
            "assignIncident",
            ASSIGN_INCIDENT,
            json!({ "id": a.incidents[0], "user": a.user("manager") }),
        ),
        (
            "changeIncidentStatus",
            CHANGE_INCIDENT_STATUS,
            json!({ "id": a.incidents[0] }),
        ),
        (
            "changeIncidentPriority",
            CHANGE_INCIDENT_PRIORITY,
            json!({ "id": a.incidents[0] }),
        ),
        (
            "linkIncident",
            LINK_INCIDENT,
            json!({ "id": a.incidents[0], "threats": [a.threats[1]] }),
        ),
        (
            "addThreatIndicator",
            ADD_INDICATOR,
            json!({ "value": "authz.example" }),
        ),
        (
            "deactivateThreatIndicator",
            DEACTIVATE_INDICATOR,
            json!({ "id": a.intel[0] }),
        ),
    ];
    for who in ["customer", "officer"] {
        for (name, query, vars) in &writes {
            attempt(
                &w,
                &mut findings,
                who,
                name,
                query,
                vars.clone(),
                Some("FORBIDDEN"),
            )
            .await;
        }
    }
    for (name, query, vars) in &writes {
        attempt(&w, &mut findings, "manager", name, query, vars.clone(), None).await;
    }
    // openIncident with an assignee also needs incidents:assign.
    w.grant("officer", &["incidents:write"]).await;
    attempt(
        &w,
        &mut findings,
        "officer",
        "openIncident (incidents:write) unassigned",
        OPEN_INCIDENT,
        json!({ "assignee": null, "threats": [] }),
        None,
    )
    .await;
    attempt(
        &w,
        &mut findings,
        "officer",
        "openIncident (incidents:write) assigned at once",
        OPEN_INCIDENT,
        json!({ "assignee": a.user("manager"), "threats": [] }),
        Some("FORBIDDEN"),
    )
    .await;
    attempt(
        &w,
        &mut findings,
        "officer",
        "assignIncident (incidents:write only)",
        ASSIGN_INCIDENT,
        json!({ "id": a.incidents[0], "user": a.user("manager") }),
        Some("FORBIDDEN"),
    )
    .await;
    assert_no_findings("threat, incident and intel writes", &findings);
}

const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { id role } }";

fn new_user(username: &str, role: &str, permissions: &[&str]) -> Value {
    json!({ "input": { "username": username, "email": format!("{username}@acme.example"),
                       "password": PASSWORD, "role": role, "permissions": permissions } })
}

#[tokio::test]
async fn users_are_created_only_below_the_creators_rank() {
    let w = world().await;
    let mut findings = vec![];
    let forbidden = Some("FORBIDDEN");
    let cases: [(&str, &str, &[&str], Option<&str>); 13] = [
        ("admin", "CUSTOMER", &[], None),
        ("admin", "OFFICER", &[], None),
        ("admin", "MANAGER", &[], None),
        ("admin", "ADMIN", &[], forbidden),
        ("admin", "SUPER_ADMIN", &[], forbidden),
        // Extra permission strings need users:roles.
        ("admin", "CUSTOMER", &["threats:read"], forbidden),
        ("manager", "CUSTOMER", &[], forbidden),
        ("officer", "CUSTOMER", &[], forbidden),
        ("customer", "CUSTOMER", &[], forbidden),
        ("super_admin", "ADMIN", &[], None),
        ("super_admin", "SUPER_ADMIN", &[], None),
        ("super_admin", "CUSTOMER", &["threats:read"], None),
        ("super_admin", "CUSTOMER", &["no:such"], Some("BAD_USER_INPUT")),
    ];
    for (n, (who, role, permissions, refusal)) in cases.into_iter().enumerate() {
        let username = format!("made{n}-{}", role.to_lowercase());
        let body = attempt(
            &w,
            &mut findings,
            who,
            &format!("createUser {role} {permissions:?}"),
            CREATE_USER,
            new_user(&username, role, permissions),
            refusal,
        )
        .await;
        let stored = sql::count(
            &w.owner,
            &format!("select count(*) from users where lower(username) = '{username}'"),
        )
        .await;
        let expected = i64::from(refusal.is_none());
        if stored != expected {
            findings.push(format!("{who} createUser {role}: {stored} users stored: {body}"));
        }
        if refusal.is_none() && body["data"]["createUser"]["role"] != role {
            findings.push(format!("{who} createUser {role}: {body}"));
        }
    }
    assert_no_findings("createUser by rank", &findings);
}

const UPDATE_PROFILE: &str =
    "mutation($id: UUID!) { updateUserProfile(id: $id, input: {lastName: \"Edited\"}) { id } }";
const LOCK: &str = "mutation($id: UUID!) { lockUser(id: $id) { id isLocked } }";
const UNLOCK: &str = "mutation($id: UUID!) { unlockUser(id: $id) { id isLocked } }";
const DEACTIVATE: &str = "mutation($id: UUID!) { deactivateUser(id: $id) { id isActive } }";

#[tokio::test]
async fn user_managers_act_only_on_users_ranked_below_them_and_never_on_themselves() {
    let mut w = world().await;
    let mut findings = vec![];
    // A second admin and a second super_admin, made by the super_admin.
    let mut extra = BTreeMap::new();
    for (username, role) in [("admin2", "ADMIN"), ("super2", "SUPER_ADMIN")] {
        let body = w
            .ask("super_admin", CREATE_USER, new_user(username, role, &[]))
            .await;
        extra.insert(
            username,
            uuid_at(&body, "/data/createUser/id").unwrap_or_else(|| panic!("create {username}: {body:#}")),
        );
    }
    let forbidden = Some("FORBIDDEN");
    let manage: [(&str, &str); 4] = [
        ("updateUserProfile", UPDATE_PROFILE),
        ("lockUser", LOCK),
        ("unlockUser", UNLOCK),
        ("deactivateUser", DEACTIVATE),
    ];
    // An admin never acts on an equal, a superior or themselves ...
    for (target, id) in [
        ("another admin", extra["admin2"]),
        ("the super_admin", w.id("super_admin")),
    ] {
        for (name, query) in manage {
            attempt(
                &w,
                &mut findings,
                "admin",
                &format!("{name} on {target}"),
                query,
                json!({ "id": id }),
                forbidden,
            )
            .await;
        }
    }
    for (name, query) in &manage[1..] {
        attempt(
            &w,
            &mut findings,
            "admin",
            &format!("{name} on themselves"),
            query,
            json!({ "id": w.id("admin") }),
            forbidden,
        )
        .await;
    }
    // ... but edits their own profile (schema: "one's own, or ... a user one outranks").
    attempt(
        &w,
        &mut findings,
        "admin",
        "updateUserProfile on themselves",
        UPDATE_PROFILE,
        json!({ "id": w.id("admin") }),
        None,
    )
    .await;
    // Without users:manage nobody manages anyone else: staff, who see customer2, are
    // refused FORBIDDEN; a customer, who does not, gets NOT_FOUND as for a missing id.
    // (Before the admin manages the manager below, which ends the manager's sessions.)
    for who in ["manager", "officer"] {
        for (name, query) in manage {
            attempt(
                &w,
                &mut findings,
                who,
                &format!("{name} on customer2"),
                query,
                json!({ "id": w.id("customer2") }),
                forbidden,
            )
            .await;
        }
    }
    for (name, query) in manage {
        attempt_unseen(
            &w,
            &mut findings,
            "customer",
            &format!("{name} on customer2"),
            query,
            &|id| json!({ "id": id }),
            w.id("customer2"),
        )
        .await;
    }
    // A customer edits their own profile but cannot lock themselves.
    attempt(
        &w,
        &mut findings,
        "customer",
        "updateUserProfile on themselves",
        UPDATE_PROFILE,
        json!({ "id": w.id("customer") }),
        None,
    )
    .await;
    attempt(
        &w,
        &mut findings,
        "customer",
        "lockUser on themselves",
        LOCK,
        json!({ "id": w.id("customer") }),
        forbidden,
    )
    .await;
    // An admin manages users below them. A lock or a deactivation ends the target's
    // sessions at once; after the unlock the manager signs in again.
    for (name, query) in manage {
        attempt(
            &w,
            &mut findings,
            "admin",
            &format!("{name} on the manager"),
            query,
            json!({ "id": w.id("manager") }),
            None,
        )
        .await;
        match name {
            "updateUserProfile" => {
                expect_signed_in_as(
                    &w,
                    &mut findings,
                    "the manager after a profile edit",
                    "manager",
                    "MANAGER",
                )
                .await;
            }
            "lockUser" | "deactivateUser" => {
                expect_session_ended(
                    &w,
                    &mut findings,
                    &format!("the manager's token after {name}"),
                    w.token("manager"),
                )
                .await;
            }
            "unlockUser" => {
                w.relogin("manager").await;
                expect_signed_in_as(
                    &w,
                    &mut findings,
                    "the manager signed in again after unlockUser",
                    "manager",
                    "MANAGER",
                )
                .await;
            }
            other => panic!("no check after {other}"),
        }
    }
    // A super_admin acts on anyone but themselves, another super_admin included.
    attempt(
        &w,
        &mut findings,
        "super_admin",
        "lockUser on another super_admin",
        LOCK,
        json!({ "id": extra["super2"] }),
        None,
    )
    .await;
    attempt(
        &w,
        &mut findings,
        "super_admin",
        "lockUser on the admin",
        LOCK,
        json!({ "id": w.id("admin") }),
        None,
    )
    .await;
    expect_session_ended(
        &w,
        &mut findings,
        "the admin's token after the super_admin locked them",
        w.token("admin"),
    )
    .await;
    attempt(
        &w,
        &mut findings,
        "super_admin",
        "lockUser on themselves",
        LOCK,
        json!({ "id": w.id("super_admin") }),
        forbidden,
    )
    .await;
    // The refused attempts changed nothing.
    let state = sql::scalar(
        &w.owner,
        &format!(
            "select string_agg(username || ':' || is_locked || ':' || is_active, ',' order by username) \
               from users where user_id in ('{}', '{}', '{}')",
            extra["admin2"],
            w.id("customer2"),
            w.id("super_admin")
        ),
    )
    .await;
    assert_eq!(
        state.as_deref(),
        Some("admin2:false:true,customer2:false:true,super_admin:false:true"),
        "refused attempts left their targets unlocked and active"
    );
    assert_no_findings("managing users by rank", &findings);
}

const CHANGE_ROLE: &str = "mutation($id: UUID!, $role: UserRole!, $permissions: [String!]!) { \
    changeUserRole(id: $id, role: $role, permissions: $permissions) { id role permissions } }";

fn role_change(id: Uuid, role: &str, permissions: &[&str]) -> Value {
    json!({ "id": id, "role": role, "permissions": permissions })
}

#[tokio::test]
async fn only_holders_of_users_roles_change_roles_and_grant_only_what_they_hold() {
    let mut w = world().await;
    let mut findings = vec![];
    let forbidden = Some("FORBIDDEN");
    let customer = w.id("customer");
    // A customer does not see customer2: NOT_FOUND, as for an id that does not exist.
    // On themselves, whom they see, they are refused FORBIDDEN.
    attempt_unseen(
        &w,
        &mut findings,
        "customer",
        "changeUserRole of customer2 to OFFICER",
        CHANGE_ROLE,
        &|id| role_change(id, "OFFICER", &[]),
        w.id("customer2"),
    )
    .await;
    attempt(
        &w,
        &mut findings,
        "customer",
        "changeUserRole of themselves to OFFICER",
        CHANGE_ROLE,
        role_change(customer, "OFFICER", &[]),
        forbidden,
    )
    .await;
    for who in ["officer", "manager", "admin"] {
        attempt(
            &w,
            &mut findings,
            who,
            "changeUserRole to OFFICER",
            CHANGE_ROLE,
            role_change(customer, "OFFICER", &[]),
            forbidden,
        )
        .await;
    }
    attempt(
        &w,
        &mut findings,
        "super_admin",
        "changeUserRole of themselves",
        CHANGE_ROLE,
        role_change(w.id("super_admin"), "ADMIN", &[]),
        forbidden,
    )
    .await;
    attempt(
        &w,
        &mut findings,
        "super_admin",
        "changeUserRole with an unknown permission",
        CHANGE_ROLE,
        role_change(customer, "CUSTOMER", &["root:all"]),
        Some("BAD_USER_INPUT"),
    )
    .await;
    let body = attempt(
        &w,
        &mut findings,
        "super_admin",
        "changeUserRole customer to OFFICER with threats:write",
        CHANGE_ROLE,
        role_change(customer, "OFFICER", &["threats:write"]),
        None,
    )
    .await;
    if body["data"]["changeUserRole"]["role"] != "OFFICER"
        || body["data"]["changeUserRole"]["permissions"] != json!(["threats:write"])
    {
        findings.push(format!("super_admin's role change was not applied: {body}"));
    }
    // The change ended the customer's sessions: the old token is refused, and the next
    // sign-in carries the new role.
    expect_session_ended(
        &w,
        &mut findings,
        "the customer's token from before their role change",
        w.token("customer"),
    )
    .await;
    w.relogin("customer").await;
    expect_signed_in_as(
        &w,
        &mut findings,
        "the customer signed in again after their role change",
        "customer",
        "OFFICER",
    )
    .await;

    // A manager given users:roles grants only what they hold, to users below them, and
    // only roles below their own.
    w.grant("manager", &["users:roles"]).await;
    let customer2 = w.id("customer2");
    for (what, vars, refusal) in [
        (
            "grant audit:read, which managers lack",
            role_change(customer2, "CUSTOMER", &["audit:read"]),
            forbidden,
        ),
        (
            "grant users:manage, which managers lack",
            role_change(customer2, "CUSTOMER", &["users:manage"]),
            forbidden,
        ),
        (
            "promote to their own rank",
            role_change(customer2, "MANAGER", &[]),
            forbidden,
        ),
        (
            "change an admin's role",
            role_change(w.id("admin"), "CUSTOMER", &[]),
            forbidden,
        ),
        (
            "grant threats:read, which they hold",
            role_change(customer2, "CUSTOMER", &["threats:read"]),
            None,
        ),
        (
            "make the officer a customer",
            role_change(w.id("officer"), "CUSTOMER", &[]),
            None,
        ),
    ] {
        attempt(
            &w,
            &mut findings,
            "manager",
            &format!("changeUserRole: {what}"),
            CHANGE_ROLE,
            vars,
            refusal,
        )
        .await;
    }
    // The officer made a customer: the old token is refused, the next sign-in is a
    // customer's.
    expect_session_ended(
        &w,
        &mut findings,
        "the officer's token from before their role change",
        w.token("officer"),
    )
    .await;
    w.relogin("officer").await;
    expect_signed_in_as(
        &w,
        &mut findings,
        "the officer signed in again after their role change",
        "officer",
        "CUSTOMER",
    )
    .await;
    let stored = sql::scalar(
        &w.owner,
        &format!(
            "select role || ' ' || array_to_string(permissions, ',') from users where user_id = '{customer2}'"
        ),
    )
    .await;
    assert_eq!(
        stored.as_deref(),
        Some("customer threats:read"),
        "customer2 as stored"
    );
    assert_no_findings("changeUserRole", &findings);
}

#[tokio::test]
async fn devices_change_only_by_their_owner_or_with_devices_manage() {
    let w = world().await;
    let mut findings = vec![];
    let (customers_device, admins_device) = (w.fx.a.devices[0], w.fx.a.devices[1]);
    let rename = "mutation($id: UUID!) { renameTrustedDevice(id: $id, name: \"renamed\") { id deviceName } }";
    let revoke = "mutation($id: UUID!) { revokeDeviceTrust(id: $id) { id isTrusted } }";
    // Someone else's device without devices:manage is NOT_FOUND (a customer must not
    // learn which device ids exist), even for staff who may read it.
    for (who, device) in [
        ("customer", admins_device),
        ("officer", customers_device),
        ("manager", customers_device),
    ] {
        for (name, query) in [("renameTrustedDevice", rename), ("revokeDeviceTrust", revoke)] {
            attempt(
                &w,
                &mut findings,
                who,
                &format!("{name} on someone else's device"),
                query,
                json!({ "id": device }),
                Some("NOT_FOUND"),
            )
            .await;
        }
    }
    for (who, device) in [("customer", customers_device), ("admin", customers_device)] {
        for (name, query) in [("renameTrustedDevice", rename), ("revokeDeviceTrust", revoke)] {
            attempt(
                &w,
                &mut findings,
                who,
                &format!("{name} on the customer's device"),
                query,
                json!({ "id": device }),
                None,
            )
            .await;
        }
    }
    assert_no_findings("device mutations", &findings);
}

// ---------------------------------------------------------------------------------------
// Sessions ended by role change, lock and deactivation
// ---------------------------------------------------------------------------------------

/// (mutation, its variables for the target, the target).
fn session_enders(w: &World) -> [(&'static str, String, Value, &'static str); 3] {
    [
        (
            "changeUserRole",
            CHANGE_ROLE.to_string(),
            role_change(w.id("manager"), "CUSTOMER", &[]),
            "manager",
        ),
        (
            "lockUser",
            LOCK.to_string(),
            json!({ "id": w.id("customer2") }),
            "customer2",
        ),
        (
            "deactivateUser",
            DEACTIVATE.to_string(),
            json!({ "id": w.id("officer") }),
            "officer",
        ),
    ]
}

async fn active_sessions(w: &World, user: Uuid) -> i64 {
    sql::count(
        &w.owner,
        &format!("select count(*) from refresh_tokens where user_id = '{user}' and revoked_at is null"),
    )
    .await
}

#[tokio::test]
async fn role_change_lock_and_deactivation_revoke_every_session_of_the_target() {
    let w = world().await;
    let mut findings = vec![];
    let admin_sessions = active_sessions(&w, w.id("admin")).await;
    for (name, query, vars, target) in session_enders(&w) {
        let user = w.id(target);
        // One more session, so the target has several.
        let _ = w.fx.login(&w.gw, A, target).await;
        let before = active_sessions(&w, user).await;
        if before < 2 {
            findings.push(format!("{target} has {before} active sessions before {name}"));
        }
        attempt(
            &w,
            &mut findings,
            "super_admin",
            &format!("{name} on {target}"),
            &query,
            vars,
            None,
        )
        .await;
        let after = active_sessions(&w, user).await;
        let revoked = sql::count(
            &w.owner,
            &format!(
                "select count(*) from refresh_tokens where user_id = '{user}' and revoked_at is not null"
            ),
        )
        .await;
        if after != 0 || revoked < before {
            findings.push(format!(
                "{name} on {target}: {after} sessions still active, {revoked} revoked of {before}"
            ));
        }
    }
    // Nobody else's sessions ended.
    assert_eq!(
        active_sessions(&w, w.id("admin")).await,
        admin_sessions,
        "the admin's sessions are untouched"
    );
    // A locked or deactivated user cannot sign in again.
    for target in ["customer2", "officer"] {
        let (_, body) =
            w.gw.gql(
                None,
                "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
                json!({ "input": { "tenant": A, "username": target, "password": PASSWORD } }),
            )
            .await;
        expect_code(
            &mut findings,
            &format!("{target} signs in after being locked out"),
            &body,
            "UNAUTHENTICATED",
            None,
        );
    }
    assert_no_findings("sessions ended by user management", &findings);
}

/// SECURITY.md: "role change end every session and the access tokens tied to them"
/// (ASVS 7.4.1, 7.4.2, 8.3.2). An access token issued before the change must not keep
/// working with the old role, or at all once the account is locked or deactivated.
#[tokio::test]
async fn access_tokens_issued_before_a_role_change_lock_or_deactivation_stop_working() {
    let w = world().await;
    let mut findings = vec![];
    for (name, query, vars, target) in session_enders(&w) {
        let old_token = w.token(target).to_string();
        attempt(
            &w,
            &mut findings,
            "super_admin",
            &format!("{name} on {target}"),
            &query,
            vars,
            None,
        )
        .await;
        // A manager's permissions (threats:read) on the old token, whatever the new role.
        let (status, body) =
            w.gw.gql(
                Some(&old_token),
                "{ me { id role } threatEvents(first: 1) { totalCount } }",
                json!({}),
            )
            .await;
        let code = first_error_code(&body);
        if code.as_deref() != Some("UNAUTHENTICATED") {
            findings.push(format!(
                "{target}'s access token from before {name} still answers (HTTP {status}, code {code:?}): {body}"
            ));
        }
    }
    assert_no_findings("access tokens after user management", &findings);
}
