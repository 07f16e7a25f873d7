//! Bad input, sent over HTTP: every refusal is a coded GraphQL error (never a 5xx, never
//! an uncoded error), and no response ever carries SQL or database text. Each limit is
//! also shown to let through what lies just inside it, so the refusals are the limits at
//! work and not something else failing.

mod support;

use serde_json::{Value, json};
use support::TestDb;
use support::fixture::{A, Fixture};
use support::gateway::{TestGateway, errors, parse_body, sql_markers_in, uncoded_errors};

struct Case {
    _db: TestDb,
    fx: Fixture,
    gw: TestGateway,
    /// An admin of tenant A.
    token: String,
}

async fn setup() -> Case {
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let token = fx.login(&gw, A, "admin").await;
    Case {
        _db: db,
        fx,
        gw,
        token,
    }
}

/// Problems with a refusal: the HTTP status is not `status`, the first error's code is not
/// `code`, some error has no code, or the text shows SQL. Empty when the refusal is right.
fn refusal_problems(status: u16, text: &str, expected_status: u16, code: &str) -> Vec<String> {
    let mut problems = vec![];
    if status >= 500 || status != expected_status {
        problems.push(format!("HTTP {status}, expected {expected_status}"));
    }
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        problems.push(format!(
            "non-JSON body: {}",
            text.chars().take(300).collect::<String>()
        ));
        return problems;
    };
    let errs = errors(&body);
    match errs.first().and_then(|e| e.pointer("/extensions/code")) {
        Some(Value::String(c)) if c == code => {}
        other => problems.push(format!("errors[0].extensions.code is {other:?}, expected {code}")),
    }
    let uncoded = uncoded_errors(&body);
    if !uncoded.is_empty() {
        problems.push(format!("errors without a code: {uncoded:?}"));
    }
    let markers = sql_markers_in(text);
    if !markers.is_empty() {
        problems.push(format!("SQL text {markers:?} in the response"));
    }
    if problems.is_empty() {
        vec![]
    } else {
        let shown: String = text.chars().take(600).collect();
        vec![format!("{}; body: {shown}", problems.join("; "))]
    }
}

impl Case {
    /// Sends an operation and collects what is wrong with its refusal.
    async fn refused(
        &self,
        case: &str,
        query: &str,
        variables: Value,
        code: &str,
        findings: &mut Vec<String>,
    ) {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.refused_raw(case, "application/json", body, 200, code, findings)
            .await;
    }

    async fn refused_raw(
        &self,
        case: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        status: u16,
        code: &str,
        findings: &mut Vec<String>,
    ) {
        let (got, text) = self.gw.post_raw(content_type, body, Some(&self.token)).await;
        for p in refusal_problems(got, &text, status, code) {
            findings.push(format!("{case}: {p}"));
        }
    }

    /// Runs an operation that must succeed; returns its data.
    async fn ok(&self, query: &str, variables: Value) -> Value {
        self.gw.data(Some(&self.token), query, variables).await
    }

    /// The message of the first error an operation gets (empty when none).
    async fn first_message(&self, query: &str) -> String {
        let (_, body) = self.gw.gql(Some(&self.token), query, json!({})).await;
        errors(&body)
            .first()
            .and_then(|e| e["message"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

fn assert_none(what: &str, findings: &[String]) {
    support::assert_no_findings(what, findings);
}

#[tokio::test]
async fn malformed_uuid_arguments_are_coded_input_errors() {
    let c = setup().await;
    let mut findings = vec![];
    for id in [
        "nope",
        "",
        "1234",
        "00000000-0000-0000-0000-00000000000g",
        "' or 1=1 --",
    ] {
        c.refused(
            &format!("user(id: {id:?}) literal"),
            &format!("{{ user(id: {}) {{ id }} }}", json!(id)),
            json!({}),
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
        c.refused(
            &format!("user(id: {id:?}) variable"),
            "query($id: UUID!) { user(id: $id) { id } }",
            json!({ "id": id }),
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
    }
    c.refused(
        "a UUID filter",
        "{ securityEvents(filter: { userId: \"nope\" }) { totalCount } }",
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("malformed UUIDs", &findings);
    // Control: a well-formed id of nobody is simply null.
    let data = c
        .ok(
            "query($id: UUID!) { user(id: $id) { id } }",
            json!({ "id": uuid::Uuid::now_v7() }),
        )
        .await;
    assert!(data["user"].is_null(), "{data}");
}

#[tokio::test]
async fn malformed_ip_and_cidr_filters_are_coded_input_errors() {
    let c = setup().await;
    let mut findings = vec![];
    for value in [
        "999.1.1.1",
        "10.0.0.0/33",
        "2001:db8::/129",
        "not-an-ip",
        "",
        "10.0.0.1; drop table users",
    ] {
        c.refused(
            &format!("ipAddress {value:?}"),
            "query($ip: CIDR) { securityEvents(filter: { ipAddress: $ip }) { totalCount } }",
            json!({ "ip": value }),
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
    }
    c.refused(
        "ipAddress literal 999.1.1.1",
        "{ securityEvents(filter: { ipAddress: \"999.1.1.1\" }) { totalCount } }",
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused(
        "ipAddress as a number",
        "{ securityEvents(filter: { ipAddress: 10 }) { totalCount } }",
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("malformed addresses", &findings);
    // Control: a network matches the fixture's events inside it.
    let data = c
        .ok(
            "{ securityEvents(filter: { ipAddress: \"203.0.113.0/24\" }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["securityEvents"]["totalCount"], 2, "{data}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_with_400_and_a_coded_error() {
    let c = setup().await;
    let mut findings = vec![];
    for (case, body) in [
        ("truncated JSON", "{\"query\": \"{ me { id } }\""),
        ("not JSON", "query { me { id } }"),
        ("a JSON string", "\"{ me { id } }\""),
        ("a JSON number", "42"),
        ("query of the wrong type", "{\"query\": 42}"),
        (
            "variables not an object",
            "{\"query\": \"{ me { id } }\", \"variables\": [1, 2, 3]}",
        ),
        ("empty body", ""),
        ("a NUL byte", "\u{0}"),
    ] {
        c.refused_raw(
            case,
            "application/json",
            body,
            400,
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
    }
    c.refused_raw(
        "bytes that are not UTF-8",
        "application/json",
        vec![0xff, 0xfe, b'{', b'}'],
        400,
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("non-JSON bodies", &findings);
}

#[tokio::test]
async fn a_body_that_is_not_application_json_is_refused_with_415() {
    let c = setup().await;
    let mut findings = vec![];
    let body = json!({ "query": "{ me { id } }" }).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        "application/jsonp",
    ] {
        c.refused_raw(
            content_type,
            content_type,
            body.clone(),
            415,
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
    }
    assert_none("content types", &findings);
    // Control: the same body as application/json (with a charset) works.
    let (status, text) =
        c.gw.post_raw("application/json; charset=utf-8", body, Some(&c.token))
            .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        parse_body(&text)["data"]["me"]["id"],
        c.fx.a.user("admin").to_string()
    );
}

const EVENTS_PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String, \
                                  $order: SecurityEventOrder) { \
    securityEvents(first: $first, after: $after, last: $last, before: $before, orderBy: $order) { \
        edges { cursor node { id } } pageInfo { endCursor hasNextPage } } }";

#[tokio::test]
async fn invalid_cursors_are_coded_input_errors() {
    let c = setup().await;
    let mut findings = vec![];
    let bad = [
        "garbage",
        "",
        "!!!!",
        // base64url of "v1|EVENTS_TIMESTAMP_DESC|x|t1": a bad id.
        "djF8RVZFTlRTX1RJTUVTVEFNUF9ERVNDfHh8dDE",
        // base64url of "v2|EVENTS_TIMESTAMP_DESC": an unknown version and no key.
        "djJ8RVZFTlRTX1RJTUVTVEFNUF9ERVND",
    ];
    let long = "A".repeat(10_000);
    for cursor in bad.iter().copied().chain([long.as_str()]) {
        let shown: String = cursor.chars().take(24).collect();
        c.refused(
            &format!("after {shown:?}"),
            EVENTS_PAGE,
            json!({ "first": 2, "after": cursor }),
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
        c.refused(
            &format!("before {shown:?}"),
            EVENTS_PAGE,
            json!({ "last": 2, "before": cursor }),
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
    }
    assert_none("invalid cursors", &findings);
}

#[tokio::test]
async fn a_cursor_is_refused_by_another_order_or_another_list() {
    let c = setup().await;
    let data = c
        .ok(EVENTS_PAGE, json!({ "first": 2, "order": "TIMESTAMP_DESC" }))
        .await;
    let cursor = data["securityEvents"]["pageInfo"]["endCursor"]
        .as_str()
        .expect("endCursor")
        .to_string();
    // Control: the cursor continues its own list.
    let next = c
        .ok(
            EVENTS_PAGE,
            json!({ "first": 2, "after": cursor, "order": "TIMESTAMP_DESC" }),
        )
        .await;
    assert_eq!(
        next["securityEvents"]["edges"].as_array().map(Vec::len),
        Some(2),
        "{next}"
    );

    let mut findings = vec![];
    c.refused(
        "events cursor with TIMESTAMP_ASC",
        EVENTS_PAGE,
        json!({ "first": 2, "after": cursor, "order": "TIMESTAMP_ASC" }),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused(
        "events cursor on the users list",
        "query($after: String) { users(first: 2, after: $after) { edges { node { id } } } }",
        json!({ "after": cursor }),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused(
        "events cursor on a user's own events list",
        "query($after: String) { me { securityEvents(first: 2, after: $after) { edges { node { id } } } } }",
        json!({ "after": cursor }),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("foreign cursors", &findings);
}

#[tokio::test]
async fn out_of_range_scores_are_coded_input_errors() {
    let c = setup().await;
    let mut findings = vec![];
    for (case, filter) in [
        ("riskScore min 150", "riskScore: { min: 150 }"),
        ("riskScore min -1", "riskScore: { min: -1 }"),
        ("riskScore max 100.001", "riskScore: { max: \"100.001\" }"),
        ("fraudScore max 2", "fraudScore: { max: 2 }"),
        ("anomalyScore min 1.5", "anomalyScore: { min: 1.5 }"),
        ("riskScore min above max", "riskScore: { min: 60, max: 40 }"),
        ("riskScore not a number", "riskScore: { min: \"abc\" }"),
        ("riskScore huge", "riskScore: { min: \"1e400\" }"),
    ] {
        c.refused(
            case,
            &format!("{{ securityEvents(filter: {{ {filter} }}) {{ totalCount }} }}"),
            json!({}),
            "BAD_USER_INPUT",
            &mut findings,
        )
        .await;
    }
    c.refused(
        "trustScore min 101 on users",
        "{ users(filter: { trustScore: { min: 101 } }) { totalCount } }",
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("score ranges", &findings);
    // Control: the bounds themselves are fine.
    let data = c
        .ok(
            "{ securityEvents(filter: { riskScore: { min: 0, max: 100 }, fraudScore: { min: 0, max: 1 } }) \
               { totalCount } }",
            json!({}),
        )
        .await;
    // The five seeded scored events, and the caller's own sign-in, which the risk engine
    // scored.
    assert_eq!(data["securityEvents"]["totalCount"], 6, "{data}");
}

#[tokio::test]
async fn page_sizes_outside_0_to_100_are_coded_input_errors() {
    let c = setup().await;
    let mut findings = vec![];
    for (case, vars) in [
        ("first 101", json!({ "first": 101 })),
        ("first -1", json!({ "first": -1 })),
        ("last 101", json!({ "last": 101 })),
        ("last -1", json!({ "last": -1 })),
        ("first 2^31", json!({ "first": 2_147_483_648_i64 })),
        ("first 1.5", json!({ "first": 1.5 })),
    ] {
        c.refused(case, EVENTS_PAGE, vars, "BAD_USER_INPUT", &mut findings)
            .await;
    }
    c.refused(
        "first 101 on a nested list",
        "{ me { trustedDevices(first: 101) { edges { node { id } } } } }",
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("page sizes", &findings);
    // Control: 0 and 100 are fine.
    for first in [0, 100] {
        let data = c.ok(EVENTS_PAGE, json!({ "first": first })).await;
        assert!(data["securityEvents"]["edges"].is_array(), "{data}");
    }
}

#[tokio::test]
async fn first_and_last_together_are_refused() {
    let c = setup().await;
    let mut findings = vec![];
    c.refused(
        "first and last",
        EVENTS_PAGE,
        json!({ "first": 2, "last": 2 }),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused(
        "first and last on a nested list",
        "{ me { sessions(first: 1, last: 1) { edges { node { id } } } } }",
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("first with last", &findings);
}

#[tokio::test]
async fn a_1_mb_string_is_refused_with_413_and_a_coded_error() {
    let c = setup().await;
    let mut findings = vec![];
    let query = "query($s: String) { securityEvents(filter: { descriptionContains: $s }) { totalCount } }";
    let huge = "x".repeat(1024 * 1024);
    let body = json!({ "query": query, "variables": { "s": huge } }).to_string();
    c.refused_raw(
        "1 MB variable",
        "application/json",
        body,
        413,
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    // Under the body limit, the filter's own length check refuses it.
    c.refused(
        "200 KB search text",
        query,
        json!({ "s": "x".repeat(200 * 1024) }),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    let login = "mutation($p: String!) { login(input: { tenant: \"acme\", username: \"admin\", password: $p }) \
                 { accessToken } }";
    c.refused_raw(
        "1 MB password at login",
        "application/json",
        json!({ "query": login, "variables": { "p": huge } }).to_string(),
        413,
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    // Under the body limit, a long password is a failed login, refused before hashing.
    let started = std::time::Instant::now();
    c.refused(
        "200 KB password at login",
        login,
        json!({ "p": "x".repeat(200 * 1024) }),
        "UNAUTHENTICATED",
        &mut findings,
    )
    .await;
    assert_none("huge strings", &findings);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "a 200 KB password took {:?} to refuse",
        started.elapsed()
    );
}

/// `{ me { securityEvents(first: 1) { edges { node { user { securityEvents ...` nested until the
/// document is `depth` fields deep (the innermost a scalar).
fn nested_query(depth: usize) -> String {
    // Pages of one row, so the complexity limit (page size times rows) stays out of it.
    let cycle = ["securityEvents(first: 1)", "edges", "node", "user"];
    let mut fields = vec!["me"];
    while fields.len() < depth - 1 {
        fields.push(cycle[(fields.len() - 1) % cycle.len()]);
    }
    let leaf = match fields.last() {
        Some(&"securityEvents(first: 1)") => "totalCount",
        Some(&"edges") => "cursor",
        _ => "id",
    };
    let mut query = String::from("{ ");
    for field in &fields {
        query.push_str(field);
        query.push_str(" { ");
    }
    query.push_str(leaf);
    query.push_str(&" }".repeat(fields.len() + 1));
    query
}

#[tokio::test]
async fn a_query_nested_50_levels_deep_is_refused() {
    let c = setup().await;
    let mut findings = vec![];
    let deep = nested_query(50);
    c.refused("depth 50", &deep, json!({}), "BAD_USER_INPUT", &mut findings)
        .await;
    assert_none("depth limit", &findings);
    let message = c.first_message(&deep).await;
    assert!(message.contains("depth"), "refused for another reason: {message}");
    // The configured limit (15): one level more is refused, the limit itself runs.
    let mut findings = vec![];
    c.refused(
        "depth 16",
        &nested_query(16),
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("depth limit", &findings);
    let message = c.first_message(&nested_query(16)).await;
    assert!(message.contains("deep"), "refused for another reason: {message}");
    let data = c.ok(&nested_query(15), json!({})).await;
    assert!(data["me"]["securityEvents"]["edges"].is_array(), "{data}");
}

#[tokio::test]
async fn a_hundred_thousand_nested_braces_are_refused_before_parsing() {
    let c = setup().await;
    let mut findings = vec![];
    let started = std::time::Instant::now();
    for (case, query) in [
        ("100k {", "{".repeat(100_000)),
        (
            "100k { and }",
            format!("{}{}", "{".repeat(50_000), "}".repeat(50_000)),
        ),
        (
            "100k [ in an argument",
            format!("{{ user(id: {}) {{ id }} }}", "[".repeat(100_000)),
        ),
        ("100k ( ", format!("{{ me{} }}", "(".repeat(100_000))),
    ] {
        c.refused(case, &query, json!({}), "BAD_USER_INPUT", &mut findings)
            .await;
    }
    assert_none("nesting before parsing", &findings);
    let message = c.first_message(&"{".repeat(100_000)).await;
    assert!(
        message.contains("nests deeper"),
        "refused for another reason: {message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refusing deep nesting took {:?}",
        started.elapsed()
    );
    // The gateway still serves.
    let data = c.ok("{ me { id } }", json!({})).await;
    assert_eq!(data["me"]["id"], c.fx.a.user("admin").to_string());
}

fn aliases(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: version")).collect();
    format!("{{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn more_than_30_aliases_are_refused() {
    let c = setup().await;
    let mut findings = vec![];
    c.refused(
        "31 aliases",
        &aliases(31),
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused(
        "31 aliases through a fragment",
        &format!(
            "{{ ...F }} fragment F on Query {{ {} }}",
            (0..31)
                .map(|i| format!("m{i}: me {{ id }}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused(
        "31 login aliases",
        &format!(
            "mutation {{ {} }}",
            (0..31)
                .map(|i| format!(
                    "l{i}: login(input: {{ tenant: \"acme\", username: \"admin\", password: \"guess {i} wrong\" }}) {{ accessToken }}"
                ))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        json!({}),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("alias limit", &findings);
    let message = c.first_message(&aliases(31)).await;
    assert!(
        message.contains("31 aliases"),
        "refused for another reason: {message}"
    );
    // Control: 30 are fine.
    let data = c.ok(&aliases(30), json!({})).await;
    assert_eq!(data.as_object().map(|o| o.len()), Some(30), "{data}");
}

#[tokio::test]
async fn a_batch_of_more_than_10_operations_is_refused() {
    let c = setup().await;
    let mut findings = vec![];
    let batch =
        |n: usize| Value::Array((0..n).map(|_| json!({ "query": "{ me { id } }" })).collect()).to_string();
    c.refused_raw(
        "11 operations",
        "application/json",
        batch(11),
        400,
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused_raw(
        "1000 operations",
        "application/json",
        batch(1000),
        400,
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("batch limit", &findings);
    // Control: 10 run, each answered.
    let (status, text) = c.gw.post_raw("application/json", batch(10), Some(&c.token)).await;
    assert_eq!(status, 200, "{text}");
    let answers = parse_body(&text);
    let answers = answers.as_array().expect("a batch answer is an array");
    assert_eq!(answers.len(), 10);
    for answer in answers {
        assert_eq!(
            answer["data"]["me"]["id"],
            c.fx.a.user("admin").to_string(),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_empty_batch_is_refused() {
    let c = setup().await;
    let mut findings = vec![];
    c.refused_raw(
        "[]",
        "application/json",
        "[]",
        400,
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    assert_none("empty batch", &findings);
}

#[tokio::test]
async fn an_unknown_field_is_a_coded_validation_error() {
    let c = setup().await;
    let mut findings = vec![];
    for (case, query) in [
        ("unknown root field", "{ passwords { hash } }"),
        ("unknown field of User", "{ me { passwordHash } }"),
        (
            "secret column of Session",
            "{ sessions { edges { node { tokenHash } } } }",
        ),
        ("unknown argument", "{ me(id: 1) { id } }"),
        ("syntax error", "{ me { id "),
        ("empty document", ""),
        ("subscription", "subscription { threats { id } }"),
    ] {
        c.refused(case, query, json!({}), "BAD_USER_INPUT", &mut findings)
            .await;
    }
    assert_none("validation", &findings);
}

#[tokio::test]
async fn a_variable_of_the_wrong_type_is_a_coded_input_error() {
    let c = setup().await;
    let mut findings = vec![];
    for (case, query, variables) in [
        ("string for Int", EVENTS_PAGE, json!({ "first": "five" })),
        ("object for Int", EVENTS_PAGE, json!({ "first": { "n": 5 } })),
        ("unknown enum value", EVENTS_PAGE, json!({ "order": "NEWEST" })),
        (
            "number for UUID",
            "query($id: UUID!) { user(id: $id) { id } }",
            json!({ "id": 42 }),
        ),
        (
            "missing required variable",
            "query($id: UUID!) { user(id: $id) { id } }",
            json!({}),
        ),
        (
            "bad DateTime",
            "query($from: DateTime) { securityEvents(filter: { timestamp: { from: $from } }) { totalCount } }",
            json!({ "from": "yesterday" }),
        ),
        (
            "time range upside down",
            "{ securityEvents(filter: { timestamp: { from: \"2030-01-01T00:00:00Z\", to: \"2020-01-01T00:00:00Z\" } }) { totalCount } }",
            json!({}),
        ),
        (
            "empty IN list",
            "{ securityEvents(filter: { eventTypes: [] }) { totalCount } }",
            json!({}),
        ),
    ] {
        c.refused(case, query, variables, "BAD_USER_INPUT", &mut findings)
            .await;
    }
    assert_none("variable types", &findings);
}

#[tokio::test]
async fn text_the_database_cannot_store_is_refused_as_input_not_as_an_internal_error() {
    let c = setup().await;
    let mut findings = vec![];
    c.refused(
        "NUL in a search text",
        "query($s: String) { securityEvents(filter: { descriptionContains: $s }) { totalCount } }",
        json!({ "s": "a\u{0}b" }),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    c.refused(
        "NUL in an equality filter",
        "query($s: String) { securityEvents(filter: { eventType: $s }) { totalCount } }",
        json!({ "s": "login\u{0}" }),
        "BAD_USER_INPUT",
        &mut findings,
    )
    .await;
    // A NUL in a login is a failed login like any other.
    let (status, body) = c
        .gw
        .gql(
            None,
            "mutation($u: String!) { login(input: { tenant: \"acme\", username: $u, password: \"x\" }) { accessToken } }",
            json!({ "u": "admin\u{0}" }),
        )
        .await;
    for p in refusal_problems(status, &body.to_string(), 200, "UNAUTHENTICATED") {
        findings.push(format!("NUL in a login: {p}"));
    }
    assert_none("unstorable text", &findings);
}
