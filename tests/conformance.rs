//! Conformance of the migrated schema to the seed schema document
//! (tests/fixtures/seed-schema.md) and to DESIGN.md ("Schema", "Tenancy and RLS").
//!
//! The expected tables, columns, types and index names are parsed from the seed document,
//! never kept by hand here, so a change to the document is a change to what is checked.
//! Every check collects all of its findings and fails once, naming each table, column or
//! index that does not conform.

mod support;

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use support::{assert_no_findings, sql};

const SEED: &str = include_str!("fixtures/seed-schema.md");

// ---------------------------------------------------------------------------------------
// The seed document
// ---------------------------------------------------------------------------------------

/// One `### N. table_name` section of the seed document.
#[derive(Debug, Clone)]
struct SeedTable {
    name: String,
    /// (column, seed type) in document order.
    columns: Vec<(String, String)>,
    /// Index names from the "**Indexes:**" bullets, in document order.
    indexes: Vec<String>,
}

/// Parses the numbered table sections of the seed document.
fn parse_seed(text: &str) -> Vec<SeedTable> {
    let mut tables: Vec<SeedTable> = Vec::new();
    // Whether we are inside a numbered table section, and past its "**Indexes:**" line.
    let mut in_table = false;
    let mut in_indexes = false;
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(heading) = line.strip_prefix('#') {
            // Any heading ends the current section; only `### N. name` opens a new one.
            in_table = false;
            in_indexes = false;
            let heading = heading.trim_start_matches('#').trim();
            if line.starts_with("### ")
                && !line.starts_with("####")
                && let Some((number, name)) = heading.split_once(". ")
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
            {
                tables.push(SeedTable {
                    name: name.trim().to_string(),
                    columns: Vec::new(),
                    indexes: Vec::new(),
                });
                in_table = true;
            }
            continue;
        }
        if !in_table {
            continue;
        }
        let table = tables.last_mut().expect("inside a table section");
        if line.starts_with("**Indexes:**") {
            in_indexes = true;
            continue;
        }
        if line.starts_with('|') && !in_indexes {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() < 2 {
                continue;
            }
            let (column, ty) = (cells[0], cells[1]);
            let is_header = column.eq_ignore_ascii_case("column") && ty.eq_ignore_ascii_case("type");
            let is_rule = column.chars().all(|c| c == '-' || c == ':') && !column.is_empty();
            if is_header || is_rule {
                continue;
            }
            table.columns.push((column.to_string(), ty.to_string()));
            continue;
        }
        if in_indexes && let Some(rest) = line.strip_prefix("- `") {
            let name = rest.split('`').next().unwrap_or_default().trim();
            if !name.is_empty() {
                table.indexes.push(name.to_string());
            }
        }
    }
    tables
}

/// The catalog types (format_type) a seed type maps to (DESIGN.md, "Schema").
fn expected_types(seed_type: &str) -> Result<Vec<String>, String> {
    let t = seed_type.trim().to_ascii_uppercase().replace(' ', "");
    let one = |s: &str| Ok(vec![s.to_string()]);
    if let Some(n) = t.strip_prefix("VARCHAR(").and_then(|r| r.strip_suffix(')')) {
        return match n.parse::<u32>() {
            Ok(n) => Ok(vec![format!("character varying({n})")]),
            Err(_) => Err(format!("VARCHAR length {n:?} is not a number")),
        };
    }
    if let Some(ps) = t.strip_prefix("DECIMAL(").and_then(|r| r.strip_suffix(')')) {
        let parts: Vec<&str> = ps.split(',').collect();
        return match parts.as_slice() {
            [p, s] if p.parse::<u32>().is_ok() && s.parse::<u32>().is_ok() => {
                Ok(vec![format!("numeric({p},{s})")])
            }
            _ => Err(format!("DECIMAL precision/scale {ps:?} is not understood")),
        };
    }
    match t.as_str() {
        "UUID" => one("uuid"),
        "TEXT" => one("text"),
        "BOOLEAN" => one("boolean"),
        "INTEGER" => one("integer"),
        "INET" => one("inet"),
        "JSON" => one("jsonb"),
        "TIMESTAMP" => one("timestamp with time zone"),
        "ARRAY(VARCHAR)" => Ok(vec!["character varying[]".into(), "text[]".into()]),
        "ARRAY(UUID)" => one("uuid[]"),
        _ => Err(format!("seed type {seed_type:?} has no mapping in DESIGN.md")),
    }
}

// ---------------------------------------------------------------------------------------
// What an index name implies
// ---------------------------------------------------------------------------------------

/// One word (or joined words) of an index name and the columns of the table it may mean.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImpliedColumn {
    word: String,
    candidates: Vec<String>,
}

/// Derives the columns an index name implies: `idx_` stripped, then the longest leading
/// part that is a string prefix of the table name (`threat_intel` for threat_intelligence),
/// then the remaining words, consecutive words joined greedily when the join is a column
/// name (indicator_type); a single word matches a column equal to it, `is_<word>`,
/// `<word>_...` or `..._<word>`.
fn implied_columns(index: &str, table: &str, columns: &[String]) -> Result<Vec<ImpliedColumn>, String> {
    let rest = index
        .strip_prefix("idx_")
        .ok_or_else(|| format!("index {index} does not start with idx_"))?;
    let words: Vec<&str> = rest.split('_').filter(|w| !w.is_empty()).collect();
    let mut skip = 0;
    for k in (1..=words.len()).rev() {
        if table.starts_with(&words[..k].join("_")) {
            skip = k;
            break;
        }
    }
    let words = &words[skip..];
    if words.is_empty() {
        return Err(format!("index {index} names no column after the table prefix"));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        // Longest run of two or more words that is exactly a column name.
        let joined = (i + 2..=words.len())
            .rev()
            .map(|j| (j, words[i..j].join("_")))
            .find(|(_, name)| columns.iter().any(|c| c == name));
        if let Some((j, name)) = joined {
            out.push(ImpliedColumn {
                word: name.clone(),
                candidates: vec![name],
            });
            i = j;
            continue;
        }
        let w = words[i];
        let candidates = columns
            .iter()
            .filter(|c| {
                c.as_str() == w
                    || **c == format!("is_{w}")
                    || c.starts_with(&format!("{w}_"))
                    || c.ends_with(&format!("_{w}"))
            })
            .cloned()
            .collect();
        out.push(ImpliedColumn {
            word: w.to_string(),
            candidates,
        });
        i += 1;
    }
    Ok(out)
}

/// The key-column list of an index definition: the parenthesised list after `USING method`
/// (so neither the index name, the table name nor a WHERE clause can satisfy a check).
fn index_key_list(def: &str) -> &str {
    let Some(using) = def.find(" USING ") else {
        return def;
    };
    let after = &def[using..];
    let Some(open) = after.find('(') else { return after };
    let mut depth = 0usize;
    for (i, ch) in after[open..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &after[open..open + i + 1];
                }
            }
            _ => {}
        }
    }
    &after[open..]
}

/// Whether `word` occurs in `text` as a whole identifier (not inside a longer one).
fn mentions_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

// ---------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct CatalogColumn {
    ty: String,
    not_null: bool,
}

/// Columns of a public table by name: type as format_type(atttypid, atttypmod), NOT NULL.
async fn table_columns(db: &DatabaseConnection, table: &str) -> BTreeMap<String, CatalogColumn> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select a.attname::text as name, format_type(a.atttypid, a.atttypmod) as ty, a.attnotnull as not_null \
             from pg_attribute a join pg_class c on c.oid = a.attrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = 'public' and c.relname = $1 and a.attnum > 0 and not a.attisdropped",
            [table.into()],
        ))
        .await
        .expect("read pg_attribute");
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String>("", "name").expect("name"),
                CatalogColumn {
                    ty: r.try_get::<String>("", "ty").expect("ty"),
                    not_null: r.try_get::<bool>("", "not_null").expect("not_null"),
                },
            )
        })
        .collect()
}

/// Every index of schema public by name: (table, pg_get_indexdef).
async fn public_indexes(db: &DatabaseConnection) -> BTreeMap<String, (String, String)> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "select i.relname::text as index, t.relname::text as tbl, pg_get_indexdef(i.oid) as def \
             from pg_index x join pg_class i on i.oid = x.indexrelid \
             join pg_class t on t.oid = x.indrelid \
             join pg_namespace n on n.oid = i.relnamespace where n.nspname = 'public'",
        ))
        .await
        .expect("read pg_index");
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String>("", "index").expect("index"),
                (
                    r.try_get::<String>("", "tbl").expect("tbl"),
                    r.try_get::<String>("", "def").expect("def"),
                ),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn the_seed_document_lists_ten_tables_and_fifty_seven_named_indexes() {
    let seed = parse_seed(SEED);
    let names: Vec<&str> = seed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        seed.len(),
        10,
        "the seed parser found {} tables: {names:?}",
        seed.len()
    );
    let indexes: usize = seed.iter().map(|t| t.indexes.len()).sum();
    let per_table: Vec<String> = seed
        .iter()
        .map(|t| format!("{}={}", t.name, t.indexes.len()))
        .collect();
    assert_eq!(
        indexes, 57,
        "the seed parser found {indexes} named indexes ({per_table:?})"
    );
    let mut findings = Vec::new();
    for t in &seed {
        if t.columns.is_empty() {
            findings.push(format!("table {}: the parser found no columns", t.name));
        }
        for (column, ty) in &t.columns {
            if let Err(e) = expected_types(ty) {
                findings.push(format!("{}.{column}: {e}", t.name));
            }
        }
        for index in &t.indexes {
            if !index.starts_with("idx_") {
                findings.push(format!(
                    "table {}: index {index} does not start with idx_",
                    t.name
                ));
            }
        }
    }
    let mut all: Vec<&String> = seed.iter().flat_map(|t| &t.indexes).collect();
    all.sort();
    for pair in all.windows(2) {
        if pair[0] == pair[1] {
            findings.push(format!("index {} is named twice in the seed", pair[0]));
        }
    }
    assert_no_findings("seed document", &findings);
}

#[test]
fn index_names_imply_the_columns_the_naming_rules_give() {
    let cols = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let intel = cols(&[
        "intel_id",
        "tenant_id",
        "indicator_type",
        "indicator_value",
        "is_active",
        "expires_at",
    ]);
    let rate = cols(&[
        "entry_id",
        "tenant_id",
        "user_id",
        "ip_address",
        "endpoint",
        "window_start",
        "window_end",
    ]);
    let audit = cols(&[
        "audit_id",
        "tenant_id",
        "user_id",
        "entity_type",
        "entity_id",
        "timestamp",
    ]);
    let words = |index: &str, table: &str, columns: &[String]| -> Vec<(String, Vec<String>)> {
        implied_columns(index, table, columns)
            .expect(index)
            .into_iter()
            .map(|i| (i.word, i.candidates))
            .collect()
    };
    // (index, table, its columns, the (word, candidate columns) the name implies)
    type Case<'a> = (&'a str, &'a str, &'a [String], &'a [(&'a str, &'a [&'a str])]);
    let cases: [Case; 6] = [
        (
            "idx_threat_intel_indicator_type",
            "threat_intelligence",
            &intel,
            &[("indicator_type", &["indicator_type"])],
        ),
        (
            "idx_threat_intel_active_expires",
            "threat_intelligence",
            &intel,
            &[("active", &["is_active"]), ("expires", &["expires_at"])],
        ),
        (
            "idx_rate_limit_window",
            "rate_limit_entries",
            &rate,
            &[("window", &["window_start", "window_end"])],
        ),
        (
            "idx_rate_limit_ip_endpoint",
            "rate_limit_entries",
            &rate,
            &[("ip", &["ip_address"]), ("endpoint", &["endpoint"])],
        ),
        (
            "idx_audit_log_entity",
            "audit_log",
            &audit,
            &[("entity", &["entity_type", "entity_id"])],
        ),
        (
            "idx_audit_log_tenant_timestamp",
            "audit_log",
            &audit,
            &[("tenant", &["tenant_id"]), ("timestamp", &["timestamp"])],
        ),
    ];
    for (index, table, columns, expected) in cases {
        let expected: Vec<(String, Vec<String>)> = expected
            .iter()
            .map(|(word, candidates)| (word.to_string(), cols(candidates)))
            .collect();
        assert_eq!(words(index, table, columns), expected, "{index}");
    }
    assert!(mentions_word(r#"(tenant_id, "timestamp" DESC)"#, "timestamp"));
    assert!(!mentions_word("(user_id_hash)", "user_id"));
    assert_eq!(
        index_key_list("CREATE INDEX i ON public.t USING btree (lower((email)::text)) WHERE (x IS NULL)"),
        "(lower((email)::text))"
    );
}

#[tokio::test]
async fn every_seed_table_and_column_exists_with_the_mapped_type() {
    let seed = parse_seed(SEED);
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    let tables = sql::public_tables(&owner).await;
    let mut findings = Vec::new();
    for t in &seed {
        if !tables.contains(&t.name) {
            findings.push(format!("seed table {} does not exist in schema public", t.name));
            continue;
        }
        let catalog = table_columns(&owner, &t.name).await;
        for (column, seed_type) in &t.columns {
            let expected = match expected_types(seed_type) {
                Ok(e) => e,
                Err(e) => {
                    findings.push(format!("{}.{column}: {e}", t.name));
                    continue;
                }
            };
            match catalog.get(column) {
                None => findings.push(format!("column {}.{column} ({seed_type}) does not exist", t.name)),
                Some(c) if !expected.contains(&c.ty) => findings.push(format!(
                    "column {}.{column} is {} but the seed's {seed_type} maps to {}",
                    t.name,
                    c.ty,
                    expected.join(" or ")
                )),
                Some(_) => {}
            }
        }
    }
    assert_no_findings("seed tables and columns", &findings);
}

#[tokio::test]
async fn every_seed_index_exists_on_its_table_over_the_columns_its_name_implies() {
    let seed = parse_seed(SEED);
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    let indexes = public_indexes(&owner).await;
    let mut findings = Vec::new();
    let mut checked = 0;
    for t in &seed {
        let columns: Vec<String> = table_columns(&owner, &t.name).await.into_keys().collect();
        for index in &t.indexes {
            let Some((on, def)) = indexes.get(index) else {
                findings.push(format!("index {index} (seed table {}) does not exist", t.name));
                continue;
            };
            if on != &t.name {
                findings.push(format!(
                    "index {index} is on table {on}, not on the seed's {}",
                    t.name
                ));
                continue;
            }
            let implied = match implied_columns(index, &t.name, &columns) {
                Ok(i) => i,
                Err(e) => {
                    findings.push(e);
                    continue;
                }
            };
            let keys = index_key_list(def);
            for ImpliedColumn { word, candidates } in implied {
                if candidates.is_empty() {
                    findings.push(format!(
                        "index {index}: the word {word:?} of its name matches no column of {}",
                        t.name
                    ));
                } else if !candidates.iter().any(|c| mentions_word(keys, c)) {
                    findings.push(format!(
                        "index {index}: its name implies {} but its definition is `{def}`",
                        candidates.join(" or ")
                    ));
                }
            }
            checked += 1;
        }
    }
    assert_no_findings("seed indexes", &findings);
    assert_eq!(checked, 57, "all 57 seed indexes should have been checked");
}

#[tokio::test]
async fn every_tenant_owned_table_has_a_not_null_uuid_tenant_id_except_threat_intelligence() {
    let seed = parse_seed(SEED);
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    let tables = sql::public_tables(&owner).await;
    let mut findings = Vec::new();
    for s in &seed {
        if !tables.contains(&s.name) {
            findings.push(format!("seed table {} does not exist", s.name));
        }
    }
    if !tables.iter().any(|t| t == "tenants") {
        findings.push("the tenants registry table does not exist".into());
    }
    // Every table of the schema is tenant-owned (DESIGN.md: all tables carry tenant_id),
    // the seed's and any added since.
    for table in &tables {
        let columns = table_columns(&owner, table).await;
        match columns.get("tenant_id") {
            None => findings.push(format!("table {table} has no tenant_id column")),
            Some(c) => {
                if c.ty != "uuid" {
                    findings.push(format!("{table}.tenant_id is {}, not uuid", c.ty));
                }
                if table == "threat_intelligence" {
                    if c.not_null {
                        findings.push(
                            "threat_intelligence.tenant_id is NOT NULL, but global indicators need NULL"
                                .into(),
                        );
                    }
                } else if !c.not_null {
                    findings.push(format!("{table}.tenant_id is nullable, it must be NOT NULL"));
                }
            }
        }
    }
    assert_no_findings("tenant_id columns", &findings);
}

#[tokio::test]
async fn the_tenants_registry_has_its_designed_columns_and_a_unique_slug() {
    let db = support::TestDb::new().await;
    let owner = db.owner().await;
    let columns = table_columns(&owner, "tenants").await;
    assert!(!columns.is_empty(), "table tenants does not exist");
    let text = ["character varying", "text"];
    let expect: [(&str, &[&str]); 7] = [
        ("tenant_id", &["uuid"]),
        ("slug", &text),
        ("name", &text),
        ("status", &text),
        ("settings", &["jsonb"]),
        ("created_at", &["timestamp with time zone"]),
        ("updated_at", &["timestamp with time zone"]),
    ];
    let mut findings = Vec::new();
    for (name, types) in expect {
        match columns.get(name) {
            None => findings.push(format!("tenants.{name} does not exist")),
            Some(c) => {
                let base = c.ty.split('(').next().unwrap_or_default();
                if !types.contains(&base) {
                    findings.push(format!(
                        "tenants.{name} is {}, expected {}",
                        c.ty,
                        types.join(" or ")
                    ));
                }
                if !c.not_null {
                    findings.push(format!("tenants.{name} is nullable"));
                }
            }
        }
    }
    let pk = sql::count(
        &owner,
        "select count(*) as n from pg_index x \
         join pg_attribute a on a.attrelid = x.indrelid and a.attnum = x.indkey[0] \
         where x.indrelid = 'public.tenants'::regclass and x.indisprimary and x.indnkeyatts = 1 \
           and a.attname = 'tenant_id'",
    )
    .await;
    if pk != 1 {
        findings.push("tenants.tenant_id is not the primary key".into());
    }
    let unique_slug = sql::count(
        &owner,
        "select count(*) as n from pg_index x \
         join pg_attribute a on a.attrelid = x.indrelid and a.attnum = x.indkey[0] \
         where x.indrelid = 'public.tenants'::regclass and x.indisunique and x.indnkeyatts = 1 \
           and x.indpred is null and a.attname = 'slug'",
    )
    .await;
    if unique_slug < 1 {
        findings.push("tenants.slug has no unique index or constraint of its own".into());
    }
    assert_no_findings("tenants registry", &findings);

    // And the uniqueness is real: a second tenant with the same slug is refused.
    sql::exec(
        &owner,
        "insert into tenants (slug, name) values ('same-slug', 'First')",
    )
    .await;
    sql::expect_sqlstate(
        owner
            .execute_unprepared("insert into tenants (slug, name) values ('same-slug', 'Second')")
            .await,
        "23505",
        "a second tenant with the same slug must be refused as a unique violation",
    );
}
