//! Helpers for the isolation, concurrency and authorization tests: the live schema read
//! through introspection, every UUID a response mentions, and what the owner sees of a
//! tenant's rows (ids, counts, a fingerprint of every row) to prove a request changed or
//! revealed nothing of another tenant.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use super::gateway::TestGateway;

/// Every tenant-owned table and its primary key column.
pub const TABLES: [(&str, &str); 13] = [
    ("tenants", "tenant_id"),
    ("users", "user_id"),
    ("mfa_backup_codes", "code_id"),
    ("refresh_tokens", "token_id"),
    ("trusted_devices", "device_id"),
    ("security_events", "event_id"),
    ("threat_events", "threat_id"),
    ("security_incidents", "incident_id"),
    ("threat_intelligence", "intel_id"),
    ("rate_limit_entries", "entry_id"),
    ("audit_log", "audit_id"),
    ("account_tokens", "token_id"),
    ("notification_outbox", "notification_id"),
];

/// The primary key column of `table`.
pub fn id_column(table: &str) -> &'static str {
    TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no table {table:?} in walk::TABLES"))
}

/// One field of an object type, as introspection describes it.
#[derive(Debug, Clone)]
pub struct LiveField {
    pub name: String,
    pub args: Vec<String>,
    /// The named type under any NON_NULL and LIST wrappers.
    pub type_name: String,
    /// Its kind (OBJECT, SCALAR, ENUM ...).
    pub type_kind: String,
    /// Whether a LIST wrapper was found on the way.
    pub is_list: bool,
}

/// One named type of the live schema.
#[derive(Debug, Clone)]
pub struct LiveType {
    pub name: String,
    pub kind: String,
    pub fields: Vec<LiveField>,
}

/// The schema as a client discovers it over HTTP.
#[derive(Debug, Clone)]
pub struct LiveSchema {
    pub query_type: String,
    pub mutation_type: Option<String>,
    pub subscription_type: Option<String>,
    pub query: Vec<LiveField>,
    pub mutation: Vec<LiveField>,
    pub types: Vec<LiveType>,
}

/// The introspection query the walk sends.
pub const INTROSPECTION: &str = "query Walk { __schema { \
    queryType { name fields { name args { name } type { ...Ref } } } \
    mutationType { name fields { name args { name } type { ...Ref } } } \
    subscriptionType { name fields { name } } \
    types { name kind fields { name args { name } type { ...Ref } } } } } \
  fragment Ref on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

fn parse_field(v: &Value) -> LiveField {
    let mut t = &v["type"];
    let mut is_list = false;
    while t["name"].is_null() {
        if t["kind"] == "LIST" {
            is_list = true;
        }
        t = &t["ofType"];
        assert!(!t.is_null(), "a type reference without a name: {v}");
    }
    LiveField {
        name: v["name"].as_str().expect("field name").to_string(),
        args: v["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        type_name: t["name"].as_str().expect("named type").to_string(),
        type_kind: t["kind"].as_str().expect("type kind").to_string(),
        is_list,
    }
}

fn parse_fields(v: &Value) -> Vec<LiveField> {
    v.as_array()
        .map(|a| a.iter().map(parse_field).collect())
        .unwrap_or_default()
}

impl LiveSchema {
    /// Reads the schema of `gateway` through introspection, as `token`'s bearer.
    pub async fn fetch(gateway: &TestGateway, token: Option<&str>) -> LiveSchema {
        let data = gateway.data(token, INTROSPECTION, json!({})).await;
        let s = &data["__schema"];
        LiveSchema {
            query_type: s["queryType"]["name"].as_str().expect("query type").to_string(),
            mutation_type: s["mutationType"]["name"].as_str().map(str::to_string),
            subscription_type: s["subscriptionType"]["name"].as_str().map(str::to_string),
            query: parse_fields(&s["queryType"]["fields"]),
            mutation: parse_fields(&s["mutationType"]["fields"]),
            types: s["types"]
                .as_array()
                .expect("types")
                .iter()
                .map(|t| LiveType {
                    name: t["name"].as_str().expect("type name").to_string(),
                    kind: t["kind"].as_str().expect("type kind").to_string(),
                    fields: parse_fields(&t["fields"]),
                })
                .collect(),
        }
    }

    pub fn query_names(&self) -> BTreeSet<String> {
        self.query.iter().map(|f| f.name.clone()).collect()
    }

    pub fn mutation_names(&self) -> BTreeSet<String> {
        self.mutation.iter().map(|f| f.name.clone()).collect()
    }

    pub fn type_named(&self, name: &str) -> Option<&LiveType> {
        self.types.iter().find(|t| t.name == name)
    }

    /// Object types a client reaches data through: every OBJECT type but the roots and
    /// the introspection types.
    pub fn data_object_types(&self) -> Vec<&LiveType> {
        let roots = [
            Some(self.query_type.as_str()),
            self.mutation_type.as_deref(),
            self.subscription_type.as_deref(),
        ];
        self.types
            .iter()
            .filter(|t| t.kind == "OBJECT" && !t.name.starts_with("__"))
            .filter(|t| !roots.contains(&Some(t.name.as_str())))
            .collect()
    }

    /// (type, field) of every field of a data object type whose type is itself an object
    /// (a row, a list of rows, or a connection).
    pub fn relation_fields(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        for t in self.data_object_types() {
            for f in &t.fields {
                if f.type_kind == "OBJECT" {
                    out.push((t.name.clone(), f.name.clone()));
                }
            }
        }
        out
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Every UUID written in `text` (8-4-4-4-12 hex digits, any case).
pub fn uuids_in(text: &str) -> BTreeSet<Uuid> {
    let bytes = text.as_bytes();
    let mut found = BTreeSet::new();
    if bytes.len() < 36 {
        return found;
    }
    let mut i = 0;
    while i + 36 <= bytes.len() {
        let window = &bytes[i..i + 36];
        let shaped = window.iter().enumerate().all(|(j, b)| match j {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => is_hex(*b),
        });
        let bounded_before = i == 0 || !is_hex(bytes[i - 1]);
        let bounded_after = i + 36 == bytes.len() || !is_hex(bytes[i + 36]);
        if shaped
            && bounded_before
            && bounded_after
            && let Ok(id) = Uuid::parse_str(std::str::from_utf8(window).expect("ascii window"))
        {
            found.insert(id);
            i += 36;
            continue;
        }
        i += 1;
    }
    found
}

/// Every UUID found in any string of a JSON value.
pub fn uuids_in_json(value: &Value) -> BTreeSet<Uuid> {
    uuids_in(&value.to_string())
}

/// `text` with every UUID replaced by `<uuid>`, to compare two answers that differ only
/// in the id they were asked about.
pub fn mask_uuids(text: &str) -> String {
    let mut out = text.to_string();
    for id in uuids_in(text) {
        out = out.replace(&id.to_string(), "<uuid>");
        out = out.replace(&id.to_string().to_uppercase(), "<uuid>");
    }
    out
}

/// Runs a query that selects a uuid column `id` and returns the ids.
pub async fn uuid_column(owner: &DatabaseConnection, sql: &str) -> BTreeSet<Uuid> {
    owner
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.try_get::<Uuid>("", "id").expect("uuid column id"))
        .collect()
}

/// The ids of `table` rows of tenant `tenant_id`, read as the owner (no RLS).
pub async fn tenant_ids(owner: &DatabaseConnection, table: &str, tenant_id: Uuid) -> BTreeSet<Uuid> {
    let id = id_column(table);
    uuid_column(
        owner,
        &format!("select {id} as id from {table} where tenant_id = '{tenant_id}'"),
    )
    .await
}

/// The ids of the global threat indicators (tenant_id NULL).
pub async fn global_intel_ids(owner: &DatabaseConnection) -> BTreeSet<Uuid> {
    uuid_column(
        owner,
        "select intel_id as id from threat_intelligence where tenant_id is null",
    )
    .await
}

/// Every id of every row of tenant `tenant_id`, in every table, plus the tenant's id.
pub async fn tenant_universe(owner: &DatabaseConnection, tenant_id: Uuid) -> BTreeSet<Uuid> {
    let mut all = BTreeSet::new();
    for (table, _) in TABLES {
        all.extend(tenant_ids(owner, table, tenant_id).await);
    }
    all.insert(tenant_id);
    all
}

/// `count(*)` of rows matching `sql_where` in `table`, as the owner.
pub async fn count_where(owner: &DatabaseConnection, table: &str, sql_where: &str) -> i64 {
    super::sql::count(owner, &format!("select count(*) from {table} where {sql_where}")).await
}

/// Rows of `table` of tenant `tenant_id`, as the owner.
pub async fn tenant_count(owner: &DatabaseConnection, table: &str, tenant_id: Uuid) -> i64 {
    count_where(owner, table, &format!("tenant_id = '{tenant_id}'")).await
}

/// An md5 of every row of every table of tenant `tenant_id` (by table; the global
/// indicators under `threat_intelligence(global)`): equal fingerprints mean nothing of
/// the tenant was inserted, changed or deleted.
pub async fn tenant_fingerprint(owner: &DatabaseConnection, tenant_id: Uuid) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (table, id) in TABLES {
        let sql = format!(
            "select coalesce(md5(string_agg(t::text, '|' order by t.{id})), 'empty') \
               from {table} t where t.tenant_id = '{tenant_id}'"
        );
        let md5 = super::sql::scalar(owner, &sql).await.unwrap_or_default();
        out.insert(table.to_string(), md5);
    }
    let global = super::sql::scalar(
        owner,
        "select coalesce(md5(string_agg(t::text, '|' order by t.intel_id)), 'empty') \
           from threat_intelligence t where t.tenant_id is null",
    )
    .await
    .unwrap_or_default();
    out.insert("threat_intelligence(global)".into(), global);
    out
}

/// The tables whose fingerprints differ.
pub fn fingerprint_changes(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    before
        .iter()
        .filter(|(table, md5)| after.get(*table) != Some(md5))
        .map(|(table, _)| table.clone())
        .collect()
}
