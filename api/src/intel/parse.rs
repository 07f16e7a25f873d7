//! Reading indicator files: CSV, JSON and STIX 2.1 bundles.
//!
//! Parsing never touches the database and never drops a record quietly: every record read
//! ends up either as an [`Indicator`] or as a [`Skipped`] entry with its position and a
//! reason, which the CLI counts and prints. A file whose structure is broken (not JSON, a
//! CSV quote never closed, no `value` column ...) is a [`FileError`]: nothing in it can be
//! trusted, so nothing is imported.
//!
//! Units: a CSV row, a JSON object or a STIX `indicator` object is a *record*; a STIX
//! pattern may hold several comparisons, and each one becomes one indicator or one skipped
//! entry, so a record can yield several of either.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use ipnetwork::IpNetwork;
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json, json};

use crate::domain::intel::normalise_indicator;

/// The file formats `intel import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
    Stix,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Stix => "stix",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One indicator ready to store: its value already in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// Where it came from in the file ("line 4", "record 2", "object 3 (indicator--…)").
    pub position: String,
    /// ip, domain, email or hash.
    pub indicator_type: &'static str,
    pub value: String,
    /// low, medium, high or critical; medium when the file gives none.
    pub severity: &'static str,
    pub confidence: Option<Decimal>,
    pub threat_type: Option<String>,
    pub description: Option<String>,
    pub source: String,
    pub first_seen: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    /// A JSON object (STIX id and pattern, labels) merged into the row's metadata.
    pub metadata: Json,
}

/// Why a record or comparison was not turned into an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipKind {
    /// Well-formed, but something this importer does not store (a URL indicator, a STIX
    /// `MATCHES`, a qualifier ...).
    Unsupported,
    /// Malformed: a bad address, an unknown severity, a pattern that does not parse ...
    Invalid,
}

impl SkipKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipKind::Unsupported => "unsupported",
            SkipKind::Invalid => "invalid",
        }
    }
}

/// A record (or one comparison of a STIX pattern) that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub position: String,
    pub kind: SkipKind,
    /// A short, stable category the summary counts by ("operator MATCHES").
    pub reason: String,
    /// The specifics of this one (the offending value or comparison).
    pub detail: String,
}

impl Skipped {
    fn new(position: &str, kind: SkipKind, reason: impl Into<String>, detail: impl Into<String>) -> Skipped {
        Skipped {
            position: position.to_string(),
            kind,
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    fn invalid(position: &str, reason: impl Into<String>, detail: impl Into<String>) -> Skipped {
        Skipped::new(position, SkipKind::Invalid, reason, detail)
    }

    fn unsupported(position: &str, reason: impl Into<String>, detail: impl Into<String>) -> Skipped {
        Skipped::new(position, SkipKind::Unsupported, reason, detail)
    }
}

/// Everything read from one file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Records read (CSV rows, JSON objects, STIX indicator objects).
    pub records: usize,
    /// Distinct indicators, in the order first seen.
    pub indicators: Vec<Indicator>,
    pub skipped: Vec<Skipped>,
    /// Indicators that appeared again later in the file; the later one replaced the
    /// earlier (one row per indicator, and one upsert may not touch a row twice).
    pub duplicates: usize,
    /// STIX objects that are not indicators (identity, relationship ...), by type: they
    /// describe indicators but are not any, so they are listed, not counted as skipped.
    pub other_objects: BTreeMap<String, usize>,
    /// CSV columns this importer does not read.
    pub ignored_columns: Vec<String>,
}

impl Parsed {
    pub fn skipped_count(&self, kind: SkipKind) -> usize {
        self.skipped.iter().filter(|s| s.kind == kind).count()
    }

    /// How many were skipped of `kind`, by reason.
    pub fn reasons(&self, kind: SkipKind) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for s in self.skipped.iter().filter(|s| s.kind == kind) {
            *out.entry(s.reason.as_str()).or_insert(0) += 1;
        }
        out
    }

    /// Adds an indicator; a second one with the same type and value replaces the first.
    fn push(&mut self, seen: &mut HashMap<(&'static str, String), usize>, indicator: Indicator) {
        let key = (indicator.indicator_type, indicator.value.clone());
        match seen.get(&key) {
            Some(&i) => {
                self.indicators[i] = indicator;
                self.duplicates += 1;
            }
            None => {
                seen.insert(key, self.indicators.len());
                self.indicators.push(indicator);
            }
        }
    }
}

/// A file that cannot be read as the format it claims: nothing of it is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// The format of `path`: `explicit` when given, else by extension (`.csv`; `.stix`;
/// `.json`, which is STIX when the document is a bundle).
pub fn detect_format(path: &Path, text: &str, explicit: Option<Format>) -> Result<Format, FileError> {
    if let Some(format) = explicit {
        return Ok(format);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".csv") {
        Ok(Format::Csv)
    } else if name.ends_with(".stix") || name.ends_with(".stix.json") {
        Ok(Format::Stix)
    } else if name.ends_with(".json") {
        let is_bundle = serde_json::from_str::<Json>(text)
            .ok()
            .is_some_and(|doc| doc.get("type").and_then(Json::as_str) == Some("bundle"));
        Ok(if is_bundle { Format::Stix } else { Format::Json })
    } else {
        Err(FileError(format!(
            "cannot tell the format of {} from its name: pass --format csv, json or stix",
            path.display()
        )))
    }
}

/// Parses `text` as `format`.
pub fn parse(text: &str, format: Format) -> Result<Parsed, FileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Csv => parse_csv(text),
        Format::Json => parse_json(text),
        Format::Stix => parse_stix(text),
    }
}

// ---------------------------------------------------------------------------------------
// Fields shared by CSV and JSON records
// ---------------------------------------------------------------------------------------

/// The optional text fields of a CSV or JSON record, empty ones already `None`.
#[derive(Debug, Default)]
struct Fields {
    kind: Option<String>,
    value: Option<String>,
    severity: Option<String>,
    confidence: Option<String>,
    threat_type: Option<String>,
    description: Option<String>,
    expires_at: Option<String>,
    first_seen: Option<String>,
    source: Option<String>,
    is_active: Option<String>,
}

/// The fields a CSV header or JSON key may name, with the spellings accepted for each.
const FIELD_NAMES: [(&str, &[&str]); 10] = [
    ("type", &["type", "indicator_type"]),
    ("value", &["value", "indicator_value", "indicator"]),
    ("severity", &["severity"]),
    ("confidence", &["confidence"]),
    ("threat_type", &["threat_type"]),
    ("description", &["description"]),
    ("expires_at", &["expires_at", "valid_until"]),
    ("first_seen", &["first_seen"]),
    ("source", &["source"]),
    ("is_active", &["is_active", "active"]),
];

/// The canonical field name for a header or key, if it is one.
fn field_of(name: &str) -> Option<&'static str> {
    let name = name.trim().to_lowercase();
    FIELD_NAMES
        .iter()
        .find(|(_, aliases)| aliases.contains(&name.as_str()))
        .map(|(field, _)| *field)
}

impl Fields {
    fn set(&mut self, field: &str, value: Option<String>) {
        let value = value.filter(|v| !v.trim().is_empty());
        let slot = match field {
            "type" => &mut self.kind,
            "value" => &mut self.value,
            "severity" => &mut self.severity,
            "confidence" => &mut self.confidence,
            "threat_type" => &mut self.threat_type,
            "description" => &mut self.description,
            "expires_at" => &mut self.expires_at,
            "first_seen" => &mut self.first_seen,
            "source" => &mut self.source,
            "is_active" => &mut self.is_active,
            _ => return,
        };
        *slot = value;
    }

    /// The indicator these fields describe, or why they describe none.
    fn build(self, position: &str, default_source: &str) -> Result<Indicator, Skipped> {
        let kind = self.kind.ok_or_else(|| {
            Skipped::invalid(position, "missing type", "the record names no indicator type")
        })?;
        let raw = self.value.ok_or_else(|| {
            Skipped::invalid(position, "missing value", "the record has no indicator value")
        })?;
        let Some((indicator_type, algorithm)) = indicator_kind(&kind) else {
            return Err(Skipped::unsupported(
                position,
                format!("indicator type {}", clip(&kind.trim().to_lowercase(), 40)),
                format!("type {kind:?} (supported: ip, domain, email, hash)"),
            ));
        };
        let value = canonical_value(position, indicator_type, algorithm, &raw)?;
        let severity = match &self.severity {
            None => "medium",
            Some(s) => severity(s).ok_or_else(|| {
                Skipped::invalid(
                    position,
                    "invalid severity",
                    format!("{s:?} is not low, medium, high or critical"),
                )
            })?,
        };
        let confidence = self
            .confidence
            .as_deref()
            .map(|c| confidence(position, c))
            .transpose()?;
        let expires_at = self
            .expires_at
            .as_deref()
            .map(|t| timestamp(position, "expires_at", t))
            .transpose()?;
        let first_seen = self
            .first_seen
            .as_deref()
            .map(|t| timestamp(position, "first_seen", t))
            .transpose()?;
        let is_active = match self.is_active.as_deref().map(|a| a.trim().to_lowercase()) {
            None => true,
            Some(a) => match a.as_str() {
                "true" | "t" | "1" | "yes" | "y" => true,
                "false" | "f" | "0" | "no" | "n" => false,
                _ => {
                    return Err(Skipped::invalid(
                        position,
                        "invalid is_active",
                        format!("{a:?} is not true or false"),
                    ));
                }
            },
        };
        Ok(Indicator {
            position: position.to_string(),
            indicator_type,
            value,
            severity,
            confidence,
            threat_type: label(position, "threat_type", self.threat_type)?,
            description: long_text(position, self.description)?,
            source: label(position, "source", self.source)?.unwrap_or_else(|| default_source.to_string()),
            first_seen,
            expires_at,
            is_active,
            metadata: json!({}),
        })
    }
}

/// A hash algorithm a file may name, and the length of its hex digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// From a STIX hash key or a type alias: "MD5", "SHA-1", "sha256" ...
    fn from_name(name: &str) -> Option<HashAlgorithm> {
        match name.trim().to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "md5" => Some(HashAlgorithm::Md5),
            "sha1" => Some(HashAlgorithm::Sha1),
            "sha256" => Some(HashAlgorithm::Sha256),
            "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    fn hex_len(self) -> usize {
        match self {
            HashAlgorithm::Md5 => 32,
            HashAlgorithm::Sha1 => 40,
            HashAlgorithm::Sha256 => 64,
            HashAlgorithm::Sha512 => 128,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha512 => "SHA-512",
        }
    }
}

/// The stored type for a type name a CSV or JSON file uses (with STIX-like aliases), and
/// the hash algorithm when the name is one.
fn indicator_kind(name: &str) -> Option<(&'static str, Option<HashAlgorithm>)> {
    let lower = name.trim().to_lowercase();
    match lower.as_str() {
        "ip" | "ipv4" | "ipv6" | "ip-addr" | "ipv4-addr" | "ipv6-addr" | "cidr" => Some(("ip", None)),
        "domain" | "domain-name" => Some(("domain", None)),
        "email" | "email-addr" => Some(("email", None)),
        "hash" | "file-hash" => Some(("hash", None)),
        other => HashAlgorithm::from_name(other).map(|a| ("hash", Some(a))),
    }
}

/// `raw` checked against its type (and hash algorithm) and in the form it is stored in.
fn canonical_value(
    position: &str,
    indicator_type: &'static str,
    algorithm: Option<HashAlgorithm>,
    raw: &str,
) -> Result<String, Skipped> {
    let value = match indicator_type {
        // Parsed here rather than through the domain's normaliser alone: the stored form
        // must be the one matching looks up (host bits cleared, no /32).
        "ip" => IpNetwork::from_str(raw.trim())
            .map(canonical_network)
            .map_err(|_| format!("{:?} is not an IP address or CIDR network", clip(raw, 80))),
        _ => normalise_indicator(indicator_type, raw).map_err(|e| clip(&e.to_string(), 200)),
    }
    .map_err(|detail| Skipped::invalid(position, format!("invalid {indicator_type}"), detail))?;
    if let Some(algorithm) = algorithm
        && value.len() != algorithm.hex_len()
    {
        return Err(Skipped::invalid(
            position,
            "hash length does not match its algorithm",
            format!(
                "{} hex digits, {} has {}",
                value.len(),
                algorithm.name(),
                algorithm.hex_len()
            ),
        ));
    }
    Ok(value)
}

/// The one spelling of a network that matching looks up: host bits cleared, a single
/// address without its prefix, an IPv4-mapped IPv6 network as IPv4. Migration 0015
/// applies the same rule in the database to every row written, whoever writes it.
pub fn canonical_network(network: IpNetwork) -> String {
    let network = match network {
        IpNetwork::V6(v6) if v6.prefix() >= 96 => match v6.ip().to_ipv4_mapped() {
            Some(v4) => IpNetwork::new(IpAddr::V4(v4), v6.prefix() - 96).unwrap_or(network),
            None => network,
        },
        other => other,
    };
    let full = if network.is_ipv4() { 32 } else { 128 };
    if network.prefix() == full {
        network.ip().to_string()
    } else {
        // The prefix is the network's own, so this cannot fail.
        IpNetwork::new(network.network(), network.prefix())
            .unwrap_or(network)
            .to_string()
    }
}

fn severity(s: &str) -> Option<&'static str> {
    match s.trim().to_lowercase().as_str() {
        "low" => Some("low"),
        "medium" => Some("medium"),
        "high" => Some("high"),
        "critical" => Some("critical"),
        _ => None,
    }
}

fn confidence(position: &str, raw: &str) -> Result<Decimal, Skipped> {
    Decimal::from_str(raw.trim())
        .ok()
        .filter(|c| *c >= Decimal::ZERO && *c <= Decimal::ONE_HUNDRED)
        // numeric(5,2): rounding here keeps the stored value the one printed.
        .map(|c| c.round_dp(2))
        .ok_or_else(|| {
            Skipped::invalid(
                position,
                "invalid confidence",
                format!("{:?} is not a number from 0 to 100", clip(raw, 40)),
            )
        })
}

/// An RFC 3339 timestamp, or a date (midnight UTC).
fn timestamp(position: &str, field: &str, raw: &str) -> Result<DateTime<Utc>, Skipped> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| {
            Skipped::invalid(
                position,
                "invalid timestamp",
                format!(
                    "{field} {:?} is not an RFC 3339 timestamp or a date",
                    clip(raw, 60)
                ),
            )
        })
}

/// A short label (threat type, source): at most 100 printable characters.
fn label(position: &str, field: &str, value: Option<String>) -> Result<Option<String>, Skipped> {
    let Some(value) = value.map(|v| v.trim().to_string()) else {
        return Ok(None);
    };
    if value.chars().count() > 100 || value.chars().any(char::is_control) {
        return Err(Skipped::invalid(
            position,
            format!("invalid {field}"),
            format!("{field} must be at most 100 printable characters"),
        ));
    }
    Ok(Some(value))
}

/// A description: at most 10,000 characters.
fn long_text(position: &str, value: Option<String>) -> Result<Option<String>, Skipped> {
    match value {
        Some(v) if v.chars().count() > 10_000 => Err(Skipped::invalid(
            position,
            "invalid description",
            "description is limited to 10000 characters",
        )),
        other => Ok(other),
    }
}

/// `s` cut to at most `max` characters, for messages.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

/// One CSV record: the line it starts on and its fields.
struct CsvRow {
    line: usize,
    fields: Vec<String>,
}

/// Splits RFC 4180 CSV: comma-separated, fields optionally in double quotes (a quote
/// inside written twice; newlines allowed inside), LF or CRLF line ends. A quote left open
/// or text after a closing quote is a broken file: from there on, no field boundary could
/// be trusted.
fn csv_rows(text: &str) -> Result<Vec<CsvRow>, FileError> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut row_line = 1;
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    // Whether the current row has anything (so a trailing newline makes no empty row).
    let mut started = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if field.is_empty() => {
                started = true;
                let quote_line = line;
                loop {
                    match chars.next() {
                        None => {
                            return Err(FileError(format!(
                                "line {quote_line}: a quoted field is never closed"
                            )));
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                match chars.peek() {
                    None | Some(',') | Some('\n') => {}
                    Some('\r') => {}
                    Some(other) => {
                        return Err(FileError(format!(
                            "line {line}: {other:?} after a closing quote (a quote inside a quoted \
                             field is written twice)"
                        )));
                    }
                }
                // An empty quoted field must still count as a field; mark it with a
                // character no unquoted field can start with, removed when it ends.
                if field.is_empty() {
                    field.push('\u{0}');
                }
            }
            ',' => {
                started = true;
                fields.push(finish_field(&mut field));
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if started || !field.is_empty() {
                    fields.push(finish_field(&mut field));
                    rows.push(CsvRow {
                        line: row_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                started = false;
                line += 1;
                row_line = line;
            }
            c => {
                started = true;
                field.push(c);
            }
        }
    }
    if started || !field.is_empty() {
        fields.push(finish_field(&mut field));
        rows.push(CsvRow {
            line: row_line,
            fields,
        });
    }
    Ok(rows)
}

fn finish_field(field: &mut String) -> String {
    let out = std::mem::take(field);
    if out == "\u{0}" { String::new() } else { out }
}

fn parse_csv(text: &str) -> Result<Parsed, FileError> {
    let mut rows = csv_rows(text)?.into_iter();
    let header = rows
        .next()
        .ok_or_else(|| FileError("the file is empty: a CSV file starts with a header row".into()))?;
    let mut parsed = Parsed::default();
    let mut columns: Vec<Option<&'static str>> = Vec::with_capacity(header.fields.len());
    for name in &header.fields {
        let field = field_of(name);
        if let Some(f) = field
            && columns.contains(&Some(f))
        {
            return Err(FileError(format!("the header names the column {f:?} twice")));
        }
        if field.is_none() {
            parsed.ignored_columns.push(name.trim().to_string());
        }
        columns.push(field);
    }
    for required in ["type", "value"] {
        if !columns.contains(&Some(required)) {
            return Err(FileError(format!(
                "the header row has no {required:?} column (columns: type,value[,severity,confidence,\
                 threat_type,description,expires_at,source])"
            )));
        }
    }
    let mut seen = HashMap::new();
    for row in rows {
        // A line with nothing on it is no record.
        if row.fields.len() == 1 && row.fields[0].trim().is_empty() {
            continue;
        }
        parsed.records += 1;
        let position = format!("line {}", row.line);
        if row.fields.len() > columns.len() {
            parsed.skipped.push(Skipped::invalid(
                &position,
                "wrong number of fields",
                format!(
                    "{} fields, the header has {} (a comma inside a value needs quotes)",
                    row.fields.len(),
                    columns.len()
                ),
            ));
            continue;
        }
        let mut fields = Fields::default();
        for (column, value) in columns.iter().zip(row.fields) {
            if let Some(column) = column {
                fields.set(column, Some(value));
            }
        }
        match fields.build(&position, "import") {
            Ok(indicator) => parsed.push(&mut seen, indicator),
            Err(skip) => parsed.skipped.push(skip),
        }
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

fn parse_json(text: &str) -> Result<Parsed, FileError> {
    let doc: Json =
        serde_json::from_str(text).map_err(|e| FileError(format!("the file is not valid JSON: {e}")))?;
    let items = match doc {
        Json::Array(items) => items,
        Json::Object(mut map) => match map.remove("indicators") {
            Some(Json::Array(items)) => items,
            _ if map.get("type").and_then(Json::as_str) == Some("bundle") => {
                return Err(FileError(
                    "this is a STIX bundle, not an indicator list: use --format stix".into(),
                ));
            }
            _ => {
                return Err(FileError(
                    "expected an array of indicator objects or {\"indicators\": [...]}".into(),
                ));
            }
        },
        _ => {
            return Err(FileError(
                "expected an array of indicator objects or {\"indicators\": [...]}".into(),
            ));
        }
    };
    let mut parsed = Parsed::default();
    let mut seen = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        parsed.records += 1;
        let position = format!("record {}", i + 1);
        match json_record(&position, item) {
            Ok(indicator) => parsed.push(&mut seen, indicator),
            Err(skip) => parsed.skipped.push(skip),
        }
    }
    Ok(parsed)
}

fn json_record(position: &str, item: Json) -> Result<Indicator, Skipped> {
    let Json::Object(map) = item else {
        return Err(Skipped::invalid(
            position,
            "not an object",
            "each indicator must be a JSON object",
        ));
    };
    let mut fields = Fields::default();
    for (key, value) in map {
        let Some(field) = field_of(&key) else {
            continue;
        };
        let text = match value {
            Json::Null => None,
            Json::String(s) => Some(s),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            Json::Array(_) | Json::Object(_) => {
                return Err(Skipped::invalid(
                    position,
                    format!("{field} is not a single value"),
                    format!("{key:?} holds an array or object"),
                ));
            }
        };
        fields.set(field, text);
    }
    fields.build(position, "import")
}

// ---------------------------------------------------------------------------------------
// STIX 2.1
// ---------------------------------------------------------------------------------------

fn parse_stix(text: &str) -> Result<Parsed, FileError> {
    let doc: Json =
        serde_json::from_str(text).map_err(|e| FileError(format!("the file is not valid JSON: {e}")))?;
    if doc.get("type").and_then(Json::as_str) != Some("bundle") {
        return Err(FileError(
            "not a STIX bundle: expected {\"type\": \"bundle\", \"objects\": [...]}".into(),
        ));
    }
    let objects = match doc.get("objects") {
        Some(Json::Array(objects)) => objects,
        None => return Ok(Parsed::default()),
        Some(_) => return Err(FileError("the bundle's \"objects\" is not an array".into())),
    };
    // Identities first: an indicator names its producer by id, and the source column
    // reads better with the name.
    let identities: HashMap<&str, &str> = objects
        .iter()
        .filter(|o| o.get("type").and_then(Json::as_str) == Some("identity"))
        .filter_map(|o| Some((o.get("id")?.as_str()?, o.get("name")?.as_str()?)))
        .collect();
    let mut parsed = Parsed::default();
    let mut seen = HashMap::new();
    for (i, object) in objects.iter().enumerate() {
        let kind = object.get("type").and_then(Json::as_str);
        match kind {
            Some("indicator") => {}
            Some(other) => {
                *parsed.other_objects.entry(clip(other, 40)).or_insert(0) += 1;
                continue;
            }
            None => {
                parsed.records += 1;
                parsed.skipped.push(Skipped::invalid(
                    &format!("object {}", i + 1),
                    "not a STIX object",
                    "an object without a \"type\"",
                ));
                continue;
            }
        }
        parsed.records += 1;
        let id = object.get("id").and_then(Json::as_str).unwrap_or("no id");
        let position = format!("object {} ({})", i + 1, clip(id, 80));
        match stix_indicator(&position, object, &identities) {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(indicator) => parsed.push(&mut seen, indicator),
                        Err(skip) => parsed.skipped.push(skip),
                    }
                }
            }
            Err(skip) => parsed.skipped.push(skip),
        }
    }
    Ok(parsed)
}

/// The indicators (or skips) of one STIX indicator object, one per comparison of its
/// pattern; `Err` when the object as a whole cannot be used.
fn stix_indicator(
    position: &str,
    object: &Json,
    identities: &HashMap<&str, &str>,
) -> Result<Vec<Result<Indicator, Skipped>>, Skipped> {
    // STIX 2.0 indicators have no pattern_type; their patterns are STIX patterns.
    let pattern_type = object
        .get("pattern_type")
        .and_then(Json::as_str)
        .unwrap_or("stix");
    if pattern_type != "stix" {
        return Err(Skipped::unsupported(
            position,
            format!("pattern_type {}", clip(pattern_type, 40)),
            "only STIX patterns are read",
        ));
    }
    let pattern = object
        .get("pattern")
        .and_then(Json::as_str)
        .ok_or_else(|| Skipped::invalid(position, "missing pattern", "the indicator has no pattern"))?;
    let confidence = match object.get("confidence") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => Some(confidence(position, &n.to_string())?),
        Some(other) => {
            return Err(Skipped::invalid(
                position,
                "invalid confidence",
                format!("{other} is not a number from 0 to 100"),
            ));
        }
    };
    let time = |field: &str| -> Result<Option<DateTime<Utc>>, Skipped> {
        match object.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => timestamp(position, field, s).map(Some),
            Some(other) => Err(Skipped::invalid(
                position,
                "invalid timestamp",
                format!("{field} {other} is not a timestamp"),
            )),
        }
    };
    let expires_at = time("valid_until")?;
    let first_seen = time("created")?;
    let revoked = object.get("revoked").and_then(Json::as_bool).unwrap_or(false);
    let text = |field: &str| {
        object
            .get(field)
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let description = match (text("name"), text("description")) {
        (Some(name), Some(description)) => Some(format!("{name}: {description}")),
        (name, description) => name.or(description).map(str::to_string),
    };
    let description = long_text(position, description)?;
    let strings = |field: &str| -> Vec<String> {
        object
            .get(field)
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let labels = strings("labels");
    let indicator_types = strings("indicator_types");
    // The first label that fits the column; all of them stay in the metadata.
    let threat_type = labels
        .iter()
        .chain(indicator_types.iter())
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && l.chars().count() <= 100 && !l.chars().any(char::is_control))
        .map(str::to_string);
    let source = object
        .get("created_by_ref")
        .and_then(Json::as_str)
        .and_then(|id| identities.get(id))
        .map(|name| name.trim())
        .filter(|name| !name.is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control))
        .unwrap_or("stix")
        .to_string();
    let mut metadata = Map::new();
    if let Some(id) = object.get("id").and_then(Json::as_str) {
        metadata.insert("stix_id".into(), id.into());
    }
    metadata.insert("stix_pattern".into(), pattern.into());
    if !labels.is_empty() {
        metadata.insert("labels".into(), json!(labels));
    }
    if !indicator_types.is_empty() {
        metadata.insert("indicator_types".into(), json!(indicator_types));
    }
    let metadata = Json::Object(metadata);

    let parsed = pattern::parse(pattern).map_err(|e| {
        Skipped::invalid(
            position,
            "pattern syntax",
            format!("{e} in {:?}", clip(pattern, 200)),
        )
    })?;
    let leaves = pattern::leaves(&parsed);
    let several = leaves.len() > 1;
    Ok(leaves
        .into_iter()
        .enumerate()
        .map(|(k, leaf)| {
            let position = if several {
                format!("{position} comparison {}", k + 1)
            } else {
                position.to_string()
            };
            let (indicator_type, algorithm, raw) = leaf
                .target
                .map_err(|(kind, reason)| Skipped::new(&position, kind, reason, clip(&leaf.text, 200)))?;
            let value = canonical_value(&position, indicator_type, algorithm, &raw)?;
            Ok(Indicator {
                position,
                indicator_type,
                value,
                severity: "medium",
                confidence,
                threat_type: threat_type.clone(),
                description: description.clone(),
                source: source.clone(),
                first_seen,
                expires_at,
                is_active: !revoked,
                metadata: metadata.clone(),
            })
        })
        .collect())
}

/// STIX 2.1 patterning: a tokenizer and a recursive-descent parser for the whole
/// grammar (so a pattern that uses what we do not import is still recognised and named),
/// and [`leaves`], which says for every comparison whether it is one indicator we store.
///
/// ```text
/// pattern      := obs_followed EOF
/// obs_followed := obs_or (FOLLOWEDBY obs_or)*
/// obs_or       := obs_and (OR obs_and)*
/// obs_and      := obs_qualified (AND obs_qualified)*
/// obs_qualified:= obs_atom qualifier*
/// obs_atom     := '[' cmp_or ']' | '(' obs_followed ')'
/// qualifier    := WITHIN number SECONDS | REPEATS int TIMES | START t'…' STOP t'…'
/// cmp_or       := cmp_and (OR cmp_and)*
/// cmp_and      := cmp_atom (AND cmp_atom)*
/// cmp_atom     := '(' cmp_or ')' | EXISTS path | path NOT? test
/// test         := ('=' | '!=' | '<' | '<=' | '>' | '>=') literal | IN '(' literal (',' literal)* ')'
///               | (LIKE | MATCHES | ISSUBSET | ISSUPERSET) literal
/// path         := object-type ':' (ident | string) ('.' (ident | string) | '[' (int | '*') ']')*
/// ```
pub mod pattern {
    use std::fmt;

    use super::{HashAlgorithm, SkipKind};

    /// A literal on the right of a comparison.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Literal {
        Str(String),
        Int(String),
        Float(String),
        Bool(bool),
        Binary(String),
        Hex(String),
        Timestamp(String),
    }

    impl fmt::Display for Literal {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Literal::Str(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
                Literal::Int(n) | Literal::Float(n) => f.write_str(n),
                Literal::Bool(b) => write!(f, "{b}"),
                Literal::Binary(s) => write!(f, "b'{s}'"),
                Literal::Hex(s) => write!(f, "h'{s}'"),
                Literal::Timestamp(s) => write!(f, "t'{s}'"),
            }
        }
    }

    /// One step of an object path after the object type.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Step {
        /// `.name` or `.'quoted name'` (the first step has no dot).
        Property(String),
        /// `[3]`, or `[*]` (None).
        Index(Option<String>),
    }

    #[derive(Debug, Clone, PartialEq)]
    pub struct ObjectPath {
        pub object_type: String,
        pub steps: Vec<Step>,
    }

    impl fmt::Display for ObjectPath {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}:", self.object_type)?;
            for (i, step) in self.steps.iter().enumerate() {
                match step {
                    Step::Property(p) => {
                        if i > 0 {
                            f.write_str(".")?;
                        }
                        let plain = p
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if plain {
                            f.write_str(p)?;
                        } else {
                            write!(f, "'{p}'")?;
                        }
                    }
                    Step::Index(Some(n)) => write!(f, "[{n}]")?,
                    Step::Index(None) => f.write_str("[*]")?,
                }
            }
            Ok(())
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Operator {
        Eq,
        Ne,
        Lt,
        Le,
        Gt,
        Ge,
        In,
        Like,
        Matches,
        IsSubset,
        IsSuperset,
    }

    impl Operator {
        pub fn as_str(self) -> &'static str {
            match self {
                Operator::Eq => "=",
                Operator::Ne => "!=",
                Operator::Lt => "<",
                Operator::Le => "<=",
                Operator::Gt => ">",
                Operator::Ge => ">=",
                Operator::In => "IN",
                Operator::Like => "LIKE",
                Operator::Matches => "MATCHES",
                Operator::IsSubset => "ISSUBSET",
                Operator::IsSuperset => "ISSUPERSET",
            }
        }
    }

    /// A comparison expression: what goes between `[` and `]`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Comparison {
        Or(Vec<Comparison>),
        And(Vec<Comparison>),
        Test {
            path: ObjectPath,
            negated: bool,
            op: Operator,
            /// One literal; several for IN.
            values: Vec<Literal>,
        },
        Exists(ObjectPath),
    }

    #[derive(Debug, Clone, PartialEq)]
    pub enum Qualifier {
        Within(String),
        Repeats(String),
        StartStop(String, String),
    }

    impl Qualifier {
        fn keyword(&self) -> &'static str {
            match self {
                Qualifier::Within(_) => "WITHIN",
                Qualifier::Repeats(_) => "REPEATS",
                Qualifier::StartStop(..) => "START/STOP",
            }
        }
    }

    /// An observation expression: the pattern itself.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Observation {
        Brackets(Comparison),
        Or(Vec<Observation>),
        And(Vec<Observation>),
        FollowedBy(Vec<Observation>),
        Qualified(Box<Observation>, Qualifier),
    }

    /// Where and why a pattern does not parse.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PatternError {
        /// Character offset (0-based) into the pattern.
        pub at: usize,
        pub message: String,
    }

    impl fmt::Display for PatternError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at character {}: {}", self.at + 1, self.message)
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        LBracket,
        RBracket,
        LParen,
        RParen,
        Colon,
        Dot,
        Comma,
        Star,
        Cmp(Operator),
        /// An identifier or keyword (object types contain hyphens: `ipv4-addr`).
        Word(String),
        Lit(Literal),
    }

    fn describe(tok: Option<&Tok>) -> String {
        match tok {
            None => "the end of the pattern".into(),
            Some(Tok::Word(w)) => format!("{w:?}"),
            Some(Tok::Lit(l)) => format!("the literal {l}"),
            Some(Tok::Cmp(op)) => format!("{:?}", op.as_str()),
            Some(t) => format!(
                "{:?}",
                match t {
                    Tok::LBracket => "[",
                    Tok::RBracket => "]",
                    Tok::LParen => "(",
                    Tok::RParen => ")",
                    Tok::Colon => ":",
                    Tok::Dot => ".",
                    Tok::Comma => ",",
                    _ => "*",
                }
            ),
        }
    }

    /// Tokens with their character offsets.
    fn tokenize(pattern: &str) -> Result<Vec<(usize, Tok)>, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        let err = |at: usize, message: String| PatternError { at, message };
        while i < chars.len() {
            let c = chars[i];
            let start = i;
            let single = match c {
                '[' => Some(Tok::LBracket),
                ']' => Some(Tok::RBracket),
                '(' => Some(Tok::LParen),
                ')' => Some(Tok::RParen),
                ':' => Some(Tok::Colon),
                '.' => Some(Tok::Dot),
                ',' => Some(Tok::Comma),
                '*' => Some(Tok::Star),
                _ => None,
            };
            if let Some(tok) = single {
                out.push((start, tok));
                i += 1;
                continue;
            }
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let next = chars.get(i + 1).copied();
            match c {
                '=' => {
                    out.push((start, Tok::Cmp(Operator::Eq)));
                    i += 1;
                }
                '!' if next == Some('=') => {
                    out.push((start, Tok::Cmp(Operator::Ne)));
                    i += 2;
                }
                '<' if next == Some('>') => {
                    out.push((start, Tok::Cmp(Operator::Ne)));
                    i += 2;
                }
                '<' | '>' => {
                    let (op, len) = match (c, next == Some('=')) {
                        ('<', true) => (Operator::Le, 2),
                        ('<', false) => (Operator::Lt, 1),
                        ('>', true) => (Operator::Ge, 2),
                        _ => (Operator::Gt, 1),
                    };
                    out.push((start, Tok::Cmp(op)));
                    i += len;
                }
                '\'' => {
                    let (s, end) = string(&chars, i)?;
                    out.push((start, Tok::Lit(Literal::Str(s))));
                    i = end;
                }
                // b'…', h'…', t'…': binary, hex and timestamp literals.
                'b' | 'h' | 't' if next == Some('\'') => {
                    let (s, end) = string(&chars, i + 1)?;
                    let lit = match c {
                        'b' => Literal::Binary(s),
                        'h' => Literal::Hex(s),
                        _ => Literal::Timestamp(s),
                    };
                    out.push((start, Tok::Lit(lit)));
                    i = end;
                }
                c if c.is_ascii_digit()
                    || ((c == '-' || c == '+') && next.is_some_and(|n| n.is_ascii_digit())) =>
                {
                    let mut j = i + 1;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    let mut float = false;
                    if j + 1 < chars.len() && chars[j] == '.' && chars[j + 1].is_ascii_digit() {
                        float = true;
                        j += 1;
                        while j < chars.len() && chars[j].is_ascii_digit() {
                            j += 1;
                        }
                    }
                    let text: String = chars[i..j].iter().collect();
                    out.push((
                        start,
                        Tok::Lit(if float {
                            Literal::Float(text)
                        } else {
                            Literal::Int(text)
                        }),
                    ));
                    i = j;
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut j = i + 1;
                    while j < chars.len()
                        && (chars[j].is_ascii_alphanumeric() || chars[j] == '_' || chars[j] == '-')
                    {
                        j += 1;
                    }
                    out.push((start, Tok::Word(chars[i..j].iter().collect())));
                    i = j;
                }
                other => return Err(err(start, format!("unexpected character {other:?}"))),
            }
        }
        Ok(out)
    }

    /// A quoted string starting at `chars[open]` (a `'`); `\'` and `\\` are its only
    /// escapes. Returns the text and the index after the closing quote.
    fn string(chars: &[char], open: usize) -> Result<(String, usize), PatternError> {
        let mut s = String::new();
        let mut i = open + 1;
        while i < chars.len() {
            match chars[i] {
                '\'' => return Ok((s, i + 1)),
                '\\' => match chars.get(i + 1) {
                    Some(&c @ ('\'' | '\\')) => {
                        s.push(c);
                        i += 2;
                    }
                    _ => {
                        return Err(PatternError {
                            at: i,
                            message: "only \\' and \\\\ may be escaped in a string".into(),
                        });
                    }
                },
                c => {
                    s.push(c);
                    i += 1;
                }
            }
        }
        Err(PatternError {
            at: open,
            message: "a string is never closed".into(),
        })
    }

    struct Parser {
        toks: Vec<(usize, Tok)>,
        pos: usize,
        /// Character length of the pattern, for errors at its end.
        len: usize,
    }

    /// Nesting deeper than this is refused, so a hostile pattern cannot exhaust the stack.
    const MAX_DEPTH: usize = 64;

    impl Parser {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.pos).map(|(_, t)| t)
        }

        fn at(&self) -> usize {
            self.toks.get(self.pos).map(|(at, _)| *at).unwrap_or(self.len)
        }

        fn error<T>(&self, message: impl Into<String>) -> Result<T, PatternError> {
            Err(PatternError {
                at: self.at(),
                message: message.into(),
            })
        }

        fn next(&mut self) -> Option<Tok> {
            let tok = self.toks.get(self.pos).map(|(_, t)| t.clone());
            if tok.is_some() {
                self.pos += 1;
            }
            tok
        }

        /// Whether the next token is the keyword `kw` (keywords are case-insensitive).
        fn is_keyword(&self, kw: &str) -> bool {
            matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
        }

        fn eat_keyword(&mut self, kw: &str) -> bool {
            let yes = self.is_keyword(kw);
            if yes {
                self.pos += 1;
            }
            yes
        }

        fn expect(&mut self, tok: Tok, what: &str) -> Result<(), PatternError> {
            if self.peek() == Some(&tok) {
                self.pos += 1;
                Ok(())
            } else {
                self.error(format!("expected {what}, found {}", describe(self.peek())))
            }
        }

        fn observation_followed(&mut self, depth: usize) -> Result<Observation, PatternError> {
            if depth > MAX_DEPTH {
                return self.error("the pattern is nested too deeply");
            }
            let mut items = vec![self.observation_or(depth)?];
            while self.eat_keyword("FOLLOWEDBY") {
                items.push(self.observation_or(depth)?);
            }
            Ok(if items.len() == 1 {
                items.remove(0)
            } else {
                Observation::FollowedBy(items)
            })
        }

        fn observation_or(&mut self, depth: usize) -> Result<Observation, PatternError> {
            let mut items = vec![self.observation_and(depth)?];
            while self.eat_keyword("OR") {
                items.push(self.observation_and(depth)?);
            }
            Ok(if items.len() == 1 {
                items.remove(0)
            } else {
                Observation::Or(items)
            })
        }

        fn observation_and(&mut self, depth: usize) -> Result<Observation, PatternError> {
            let mut items = vec![self.observation_qualified(depth)?];
            while self.eat_keyword("AND") {
                items.push(self.observation_qualified(depth)?);
            }
            Ok(if items.len() == 1 {
                items.remove(0)
            } else {
                Observation::And(items)
            })
        }

        fn observation_qualified(&mut self, depth: usize) -> Result<Observation, PatternError> {
            let mut obs = match self.next() {
                Some(Tok::LBracket) => {
                    let cmp = self.comparison_or(depth + 1)?;
                    self.expect(Tok::RBracket, "\"]\" closing the observation")?;
                    Observation::Brackets(cmp)
                }
                Some(Tok::LParen) => {
                    let inner = self.observation_followed(depth + 1)?;
                    self.expect(Tok::RParen, "\")\"")?;
                    inner
                }
                other => {
                    self.pos -= usize::from(other.is_some());
                    return self.error(format!(
                        "expected \"[\" opening an observation, found {}",
                        describe(other.as_ref())
                    ));
                }
            };
            loop {
                let qualifier = if self.eat_keyword("WITHIN") {
                    let n = self.number("a number of seconds after WITHIN")?;
                    if !self.eat_keyword("SECONDS") {
                        return self.error("expected SECONDS");
                    }
                    Qualifier::Within(n)
                } else if self.eat_keyword("REPEATS") {
                    let n = self.number("a count after REPEATS")?;
                    if !self.eat_keyword("TIMES") {
                        return self.error("expected TIMES");
                    }
                    Qualifier::Repeats(n)
                } else if self.eat_keyword("START") {
                    let start = self.timestamp("START")?;
                    if !self.eat_keyword("STOP") {
                        return self.error("expected STOP");
                    }
                    Qualifier::StartStop(start, self.timestamp("STOP")?)
                } else {
                    break;
                };
                obs = Observation::Qualified(Box::new(obs), qualifier);
            }
            Ok(obs)
        }

        fn number(&mut self, what: &str) -> Result<String, PatternError> {
            match self.next() {
                Some(Tok::Lit(Literal::Int(n) | Literal::Float(n))) => Ok(n),
                other => {
                    self.pos -= usize::from(other.is_some());
                    self.error(format!("expected {what}, found {}", describe(other.as_ref())))
                }
            }
        }

        fn timestamp(&mut self, after: &str) -> Result<String, PatternError> {
            match self.next() {
                Some(Tok::Lit(Literal::Timestamp(t))) => Ok(t),
                other => {
                    self.pos -= usize::from(other.is_some());
                    self.error(format!(
                        "expected a t'…' timestamp after {after}, found {}",
                        describe(other.as_ref())
                    ))
                }
            }
        }

        fn comparison_or(&mut self, depth: usize) -> Result<Comparison, PatternError> {
            if depth > MAX_DEPTH {
                return self.error("the pattern is nested too deeply");
            }
            let mut items = vec![self.comparison_and(depth)?];
            while self.eat_keyword("OR") {
                items.push(self.comparison_and(depth)?);
            }
            Ok(if items.len() == 1 {
                items.remove(0)
            } else {
                Comparison::Or(items)
            })
        }

        fn comparison_and(&mut self, depth: usize) -> Result<Comparison, PatternError> {
            let mut items = vec![self.comparison_atom(depth)?];
            while self.eat_keyword("AND") {
                items.push(self.comparison_atom(depth)?);
            }
            Ok(if items.len() == 1 {
                items.remove(0)
            } else {
                Comparison::And(items)
            })
        }

        fn comparison_atom(&mut self, depth: usize) -> Result<Comparison, PatternError> {
            if self.peek() == Some(&Tok::LParen) {
                self.pos += 1;
                let inner = self.comparison_or(depth + 1)?;
                self.expect(Tok::RParen, "\")\"")?;
                return Ok(inner);
            }
            if self.eat_keyword("EXISTS") {
                return Ok(Comparison::Exists(self.path()?));
            }
            let path = self.path()?;
            let negated = self.eat_keyword("NOT");
            let op = match self.next() {
                Some(Tok::Cmp(op)) => op,
                Some(Tok::Word(w)) => match w.to_ascii_uppercase().as_str() {
                    "IN" => Operator::In,
                    "LIKE" => Operator::Like,
                    "MATCHES" => Operator::Matches,
                    "ISSUBSET" => Operator::IsSubset,
                    "ISSUPERSET" => Operator::IsSuperset,
                    _ => {
                        self.pos -= 1;
                        return self.error(format!("expected a comparison operator, found {w:?}"));
                    }
                },
                other => {
                    self.pos -= usize::from(other.is_some());
                    return self.error(format!(
                        "expected a comparison operator after {path}, found {}",
                        describe(other.as_ref())
                    ));
                }
            };
            let values = if op == Operator::In {
                self.expect(Tok::LParen, "\"(\" after IN")?;
                let mut values = vec![self.literal()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    values.push(self.literal()?);
                }
                self.expect(Tok::RParen, "\")\" closing the IN set")?;
                values
            } else {
                vec![self.literal()?]
            };
            Ok(Comparison::Test {
                path,
                negated,
                op,
                values,
            })
        }

        fn literal(&mut self) -> Result<Literal, PatternError> {
            match self.next() {
                Some(Tok::Lit(l)) => Ok(l),
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
                other => {
                    self.pos -= usize::from(other.is_some());
                    self.error(format!("expected a literal, found {}", describe(other.as_ref())))
                }
            }
        }

        fn path(&mut self) -> Result<ObjectPath, PatternError> {
            let object_type = match self.next() {
                Some(Tok::Word(w)) => w,
                other => {
                    self.pos -= usize::from(other.is_some());
                    return self.error(format!(
                        "expected an object path such as ipv4-addr:value, found {}",
                        describe(other.as_ref())
                    ));
                }
            };
            self.expect(Tok::Colon, "\":\" after the object type")?;
            let mut steps = vec![Step::Property(self.property()?)];
            loop {
                match self.peek() {
                    Some(Tok::Dot) => {
                        self.pos += 1;
                        steps.push(Step::Property(self.property()?));
                    }
                    Some(Tok::LBracket) => {
                        self.pos += 1;
                        let index = match self.next() {
                            Some(Tok::Star) => None,
                            Some(Tok::Lit(Literal::Int(n))) => Some(n),
                            other => {
                                self.pos -= usize::from(other.is_some());
                                return self.error(format!(
                                    "expected a list index or *, found {}",
                                    describe(other.as_ref())
                                ));
                            }
                        };
                        self.expect(Tok::RBracket, "\"]\" closing the list index")?;
                        steps.push(Step::Index(index));
                    }
                    _ => break,
                }
            }
            Ok(ObjectPath { object_type, steps })
        }

        fn property(&mut self) -> Result<String, PatternError> {
            match self.next() {
                Some(Tok::Word(w)) => Ok(w),
                Some(Tok::Lit(Literal::Str(s))) => Ok(s),
                other => {
                    self.pos -= usize::from(other.is_some());
                    self.error(format!(
                        "expected a property name, found {}",
                        describe(other.as_ref())
                    ))
                }
            }
        }
    }

    /// Parses a STIX pattern.
    pub fn parse(pattern: &str) -> Result<Observation, PatternError> {
        let toks = tokenize(pattern)?;
        let mut parser = Parser {
            toks,
            pos: 0,
            len: pattern.chars().count(),
        };
        let obs = parser.observation_followed(0)?;
        if parser.pos < parser.toks.len() {
            return parser.error(format!(
                "unexpected {} after the pattern",
                describe(parser.peek())
            ));
        }
        Ok(obs)
    }

    /// One comparison of a pattern, in order: the (type, hash algorithm, raw value) it
    /// names when we import it, or the kind and reason why not.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Leaf {
        /// The comparison as written (normalised spacing), for reports.
        pub text: String,
        pub target: Result<(&'static str, Option<HashAlgorithm>, String), (SkipKind, String)>,
    }

    /// Every comparison of `obs`, in order. AND and OR are flattened: each `=` comparison
    /// on a supported path is an indicator of its own (an AND of two addresses lists both,
    /// which errs on the side of flagging). Comparisons under FOLLOWEDBY or a qualifier
    /// are not: their meaning (a sequence, a count, a time window) is lost as a single
    /// indicator, so they are reported as unsupported.
    pub fn leaves(obs: &Observation) -> Vec<Leaf> {
        let mut out = Vec::new();
        walk_observation(obs, None, &mut out);
        out
    }

    fn walk_observation(obs: &Observation, blocked: Option<&str>, out: &mut Vec<Leaf>) {
        match obs {
            Observation::Brackets(cmp) => walk_comparison(cmp, blocked, out),
            Observation::Or(items) | Observation::And(items) => {
                for item in items {
                    walk_observation(item, blocked, out);
                }
            }
            Observation::FollowedBy(items) => {
                for item in items {
                    walk_observation(item, Some(blocked.unwrap_or("FOLLOWEDBY")), out);
                }
            }
            Observation::Qualified(inner, qualifier) => {
                let reason = format!("qualifier {}", qualifier.keyword());
                walk_observation(inner, Some(blocked.unwrap_or(&reason)), out);
            }
        }
    }

    fn walk_comparison(cmp: &Comparison, blocked: Option<&str>, out: &mut Vec<Leaf>) {
        match cmp {
            Comparison::Or(items) | Comparison::And(items) => {
                for item in items {
                    walk_comparison(item, blocked, out);
                }
            }
            Comparison::Exists(path) => out.push(Leaf {
                text: format!("EXISTS {path}"),
                target: Err((
                    SkipKind::Unsupported,
                    blocked.unwrap_or("operator EXISTS").to_string(),
                )),
            }),
            Comparison::Test {
                path,
                negated,
                op,
                values,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let rendered: Vec<String> = values.iter().map(Literal::to_string).collect();
                let text = if *op == Operator::In {
                    format!("{path} {not}IN ({})", rendered.join(", "))
                } else {
                    format!("{path} {not}{} {}", op.as_str(), rendered.join(", "))
                };
                let target = match blocked {
                    Some(reason) => Err((SkipKind::Unsupported, reason.to_string())),
                    None => classify(path, *negated, *op, values),
                };
                out.push(Leaf { text, target });
            }
        }
    }

    /// What one comparison outside FOLLOWEDBY and qualifiers imports as.
    fn classify(
        path: &ObjectPath,
        negated: bool,
        op: Operator,
        values: &[Literal],
    ) -> Result<(&'static str, Option<HashAlgorithm>, String), (SkipKind, String)> {
        if negated {
            return Err((SkipKind::Unsupported, format!("operator NOT {}", op.as_str())));
        }
        if op != Operator::Eq {
            return Err((SkipKind::Unsupported, format!("operator {}", op.as_str())));
        }
        let property = |i: usize| match path.steps.get(i) {
            Some(Step::Property(p)) => Some(p.as_str()),
            _ => None,
        };
        let target = match (path.object_type.as_str(), path.steps.len(), property(0)) {
            ("ipv4-addr" | "ipv6-addr", 1, Some("value")) => ("ip", None),
            ("domain-name", 1, Some("value")) => ("domain", None),
            ("email-addr", 1, Some("value")) => ("email", None),
            ("file", 2, Some("hashes")) => {
                let name = property(1).unwrap_or_default();
                match HashAlgorithm::from_name(name) {
                    Some(algorithm) => ("hash", Some(algorithm)),
                    None => {
                        return Err((SkipKind::Unsupported, format!("hash algorithm {name}")));
                    }
                }
            }
            _ => return Err((SkipKind::Unsupported, format!("object path {path}"))),
        };
        let [Literal::Str(value)] = values else {
            return Err((SkipKind::Invalid, "value is not a string".into()));
        };
        // An IPv6 network in an ipv4-addr comparison (or the reverse) is a broken pattern,
        // not a network to store under the wrong family.
        if target.0 == "ip" {
            let is_v6 = value.contains(':');
            if is_v6 != (path.object_type == "ipv6-addr") {
                return Err((
                    SkipKind::Invalid,
                    format!("address family does not match {}", path.object_type),
                ));
            }
        }
        Ok((target.0, target.1, value.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::pattern::{self, Comparison, Leaf, Literal, Observation, Operator, Qualifier};
    use super::*;

    /// An indicator (type, value) a comparison yields, or why it was skipped.
    type Target = Result<(&'static str, String), (SkipKind, String)>;

    fn targets(p: &str) -> Vec<Target> {
        pattern::leaves(&pattern::parse(p).unwrap_or_else(|e| panic!("{p}: {e}")))
            .into_iter()
            .map(|Leaf { target, .. }| target.map(|(t, _, v)| (t, v)))
            .collect()
    }

    fn ok(t: &'static str, v: &str) -> Target {
        Ok((t, v.to_string()))
    }

    fn unsupported(reason: &str) -> Result<(&'static str, String), (SkipKind, String)> {
        Err((SkipKind::Unsupported, reason.to_string()))
    }

    #[test]
    fn single_comparisons_of_each_supported_path() {
        assert_eq!(
            targets("[ipv4-addr:value = '198.51.100.7']"),
            vec![ok("ip", "198.51.100.7")]
        );
        assert_eq!(
            targets("[ipv6-addr:value = '2001:db8::/32']"),
            vec![ok("ip", "2001:db8::/32")]
        );
        assert_eq!(
            targets("[domain-name:value = 'evil.example']"),
            vec![ok("domain", "evil.example")]
        );
        assert_eq!(
            targets("[email-addr:value = 'x@evil.example']"),
            vec![ok("email", "x@evil.example")]
        );
        let sha = "a".repeat(64);
        assert_eq!(
            targets(&format!("[file:hashes.'SHA-256' = '{sha}']")),
            vec![ok("hash", &sha)]
        );
        assert_eq!(
            targets("[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"),
            vec![ok("hash", "d41d8cd98f00b204e9800998ecf8427e")]
        );
        assert_eq!(
            targets("[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']"),
            vec![ok("hash", "da39a3ee5e6b4b0d3255bfef95601890afd80709")]
        );
    }

    #[test]
    fn or_and_and_inside_and_between_brackets_give_one_indicator_per_comparison() {
        let expected = vec![ok("ip", "192.0.2.1"), ok("domain", "evil.example")];
        for p in [
            "[ipv4-addr:value = '192.0.2.1'] OR [domain-name:value = 'evil.example']",
            "[ipv4-addr:value = '192.0.2.1' OR domain-name:value = 'evil.example']",
            "[ipv4-addr:value = '192.0.2.1' AND domain-name:value = 'evil.example']",
            "([ipv4-addr:value = '192.0.2.1']) AND ([domain-name:value = 'evil.example'])",
            "[(ipv4-addr:value = '192.0.2.1') OR (domain-name:value = 'evil.example')]",
            "  [ ipv4-addr:value='192.0.2.1'  or domain-name:value =  'evil.example' ] ",
        ] {
            assert_eq!(targets(p), expected, "{p}");
        }
        assert_eq!(
            targets(
                "([ipv4-addr:value = '192.0.2.1'] OR [ipv4-addr:value = '192.0.2.2']) OR \
                 [email-addr:value = 'a@b.example' OR file:hashes.'SHA-256' = 'xyz']"
            )
            .len(),
            4
        );
    }

    #[test]
    fn unsupported_operators_paths_and_qualifiers_are_named() {
        assert_eq!(
            targets("[url:value MATCHES '^https?://evil']"),
            vec![unsupported("operator MATCHES")]
        );
        assert_eq!(
            targets("[domain-name:value LIKE '%.evil.example']"),
            vec![unsupported("operator LIKE")]
        );
        assert_eq!(
            targets("[ipv4-addr:value != '192.0.2.1']"),
            vec![unsupported("operator !=")]
        );
        assert_eq!(
            targets("[ipv4-addr:value NOT = '192.0.2.1']"),
            vec![unsupported("operator NOT =")]
        );
        assert_eq!(
            targets("[ipv4-addr:value ISSUBSET '10.0.0.0/8']"),
            vec![unsupported("operator ISSUBSET")]
        );
        assert_eq!(
            targets("[ipv4-addr:value IN ('192.0.2.1', '192.0.2.2')]"),
            vec![unsupported("operator IN")]
        );
        assert_eq!(
            targets("[url:value = 'http://evil.example/']"),
            vec![unsupported("object path url:value")]
        );
        assert_eq!(
            targets("[file:hashes.SSDEEP = '3:abc:def']"),
            vec![unsupported("hash algorithm SSDEEP")]
        );
        assert_eq!(
            targets("[network-traffic:dst_ref.value = '192.0.2.1']"),
            vec![unsupported("object path network-traffic:dst_ref.value")]
        );
        assert_eq!(
            targets("[email-message:to_refs[*].value = 'a@b.example']"),
            vec![unsupported("object path email-message:to_refs[*].value")]
        );
        assert_eq!(
            targets("[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [domain-name:value = 'evil.example']"),
            vec![unsupported("FOLLOWEDBY"), unsupported("FOLLOWEDBY")]
        );
        assert_eq!(
            targets("[ipv4-addr:value = '192.0.2.1'] REPEATS 5 TIMES WITHIN 60 SECONDS"),
            vec![unsupported("qualifier WITHIN")]
        );
        assert_eq!(
            targets(
                "[ipv4-addr:value = '192.0.2.1'] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'"
            ),
            vec![unsupported("qualifier START/STOP")]
        );
        assert_eq!(
            targets("[EXISTS windows-registry-key:values]"),
            vec![unsupported("operator EXISTS")]
        );
        // A pattern mixing supported and unsupported comparisons keeps the supported ones.
        assert_eq!(
            targets(
                "[ipv4-addr:value = '192.0.2.1'] OR ([domain-name:value = 'evil.example'] WITHIN 10 SECONDS) \
                 OR [url:value = 'http://x.example/']"
            ),
            vec![
                ok("ip", "192.0.2.1"),
                unsupported("qualifier WITHIN"),
                unsupported("object path url:value")
            ]
        );
        // A number where an address belongs is a broken indicator, not an unsupported one.
        assert_eq!(
            targets("[ipv4-addr:value = 3232235777]"),
            vec![Err((SkipKind::Invalid, "value is not a string".into()))]
        );
        assert_eq!(
            targets("[ipv4-addr:value = '2001:db8::1']"),
            vec![Err((
                SkipKind::Invalid,
                "address family does not match ipv4-addr".into()
            ))]
        );
    }

    #[test]
    fn the_tree_keeps_structure_literals_and_escapes() {
        let obs = pattern::parse(
            "[file:name = 'it\\'s \\\\ here' AND file:size >= 10] OR [x-thing:flag = true] REPEATS 2 TIMES",
        )
        .expect("parses");
        let Observation::Or(items) = obs else {
            panic!("an OR of observations: {obs:?}")
        };
        assert_eq!(items.len(), 2);
        let Observation::Brackets(Comparison::And(tests)) = &items[0] else {
            panic!("{:?}", items[0])
        };
        let Comparison::Test { op, values, .. } = &tests[0] else {
            panic!("{:?}", tests[0])
        };
        assert_eq!(
            (*op, values.as_slice()),
            (Operator::Eq, &[Literal::Str("it's \\ here".into())][..])
        );
        let Comparison::Test { op, values, .. } = &tests[1] else {
            panic!("{:?}", tests[1])
        };
        assert_eq!(
            (*op, values.as_slice()),
            (Operator::Ge, &[Literal::Int("10".into())][..])
        );
        let Observation::Qualified(_, Qualifier::Repeats(n)) = &items[1] else {
            panic!("{:?}", items[1])
        };
        assert_eq!(n, "2");
    }

    #[test]
    fn broken_patterns_are_errors_with_a_position() {
        for (p, at) in [
            ("", 0),
            ("ipv4-addr:value = '1.2.3.4'", 0),
            ("[ipv4-addr:value = '1.2.3.4'", 28),
            ("[ipv4-addr:value = '1.2.3.4]", 19),
            ("[ipv4-addr:value '1.2.3.4']", 17),
            ("[ipv4-addr value = '1.2.3.4']", 11),
            ("[ipv4-addr:value = '1.2.3.4'] OR", 32),
            (
                "[ipv4-addr:value = '1.2.3.4'] [domain-name:value = 'a.example']",
                30,
            ),
            ("[ipv4-addr:value = '1.2.3.4'] WITHIN SECONDS", 37),
            ("[ipv4-addr:value = 'a\\b']", 21),
            ("[ipv4-addr:value = '1.2.3.4'] & [x:y = 'z']", 30),
        ] {
            let err = pattern::parse(p).expect_err(p);
            assert_eq!(err.at, at, "{p}: {err}");
        }
        let deep = format!("{}[a:b = 'c']{}", "(".repeat(500), ")".repeat(500));
        assert!(
            pattern::parse(&deep).is_err(),
            "deep nesting is refused, not a stack overflow"
        );
    }

    fn stix(objects: Json) -> Parsed {
        parse(
            &json!({"type": "bundle", "id": "bundle--1", "objects": objects}).to_string(),
            Format::Stix,
        )
        .expect("a bundle")
    }

    #[test]
    fn stix_bundles_map_fields_and_count_every_comparison() {
        let parsed = stix(json!([
            {"type": "identity", "id": "identity--feed", "name": "Example Feed"},
            {"type": "indicator", "id": "indicator--a", "pattern_type": "stix", "created_by_ref": "identity--feed",
             "pattern": "[ipv4-addr:value = '198.51.100.7/24'] OR [url:value = 'http://x.example/']",
             "name": "C2", "description": "seen in campaign", "labels": ["botnet"], "confidence": 85,
             "created": "2024-01-02T03:04:05Z", "valid_until": "2031-01-01T00:00:00Z"},
            {"type": "indicator", "id": "indicator--b", "pattern_type": "snort", "pattern": "alert tcp any"},
            {"type": "indicator", "id": "indicator--c", "pattern": "[domain-name:value = 'Evil.Example']", "revoked": true},
            {"type": "indicator", "id": "indicator--d", "pattern": "[ipv4-addr:value = "},
            {"type": "relationship", "id": "relationship--1"},
        ]));
        assert_eq!(parsed.records, 4);
        assert_eq!(parsed.indicators.len(), 2);
        let ip = &parsed.indicators[0];
        assert_eq!((ip.indicator_type, ip.value.as_str()), ("ip", "198.51.100.0/24"));
        assert_eq!(ip.position, "object 2 (indicator--a) comparison 1");
        assert_eq!(ip.confidence, Some(Decimal::from(85)));
        assert_eq!(ip.threat_type.as_deref(), Some("botnet"));
        assert_eq!(ip.description.as_deref(), Some("C2: seen in campaign"));
        assert_eq!(ip.source, "Example Feed");
        assert_eq!(
            ip.expires_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2031-01-01T00:00:00+00:00")
        );
        assert_eq!(
            ip.first_seen.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-01-02T03:04:05+00:00")
        );
        assert!(ip.is_active);
        assert_eq!(ip.metadata["stix_id"], "indicator--a");
        let domain = &parsed.indicators[1];
        assert_eq!(domain.value, "evil.example");
        assert!(!domain.is_active, "revoked: imported inactive");
        assert_eq!(domain.source, "stix");
        let skipped: Vec<(&str, SkipKind, &str)> = parsed
            .skipped
            .iter()
            .map(|s| (s.position.as_str(), s.kind, s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            vec![
                (
                    "object 2 (indicator--a) comparison 2",
                    SkipKind::Unsupported,
                    "object path url:value"
                ),
                (
                    "object 3 (indicator--b)",
                    SkipKind::Unsupported,
                    "pattern_type snort"
                ),
                ("object 5 (indicator--d)", SkipKind::Invalid, "pattern syntax"),
            ]
        );
        assert_eq!(parsed.other_objects.get("relationship"), Some(&1));
        assert_eq!(parsed.other_objects.get("identity"), Some(&1));
    }

    #[test]
    fn stix_values_are_checked_like_any_other() {
        let parsed = stix(json!([
            {"type": "indicator", "id": "indicator--1", "pattern": "[ipv4-addr:value = '300.1.1.1']"},
            {"type": "indicator", "id": "indicator--2", "pattern": "[file:hashes.'SHA-256' = 'abcd']"},
            {"type": "indicator", "id": "indicator--3", "pattern": "[file:hashes.MD5 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']"},
            {"type": "indicator", "id": "indicator--4", "pattern": "[domain-name:value = 'a.example']", "confidence": 101},
        ]));
        assert_eq!(parsed.indicators.len(), 0);
        let reasons: Vec<&str> = parsed.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "invalid ip",
                "invalid hash",
                "hash length does not match its algorithm",
                "invalid confidence"
            ]
        );
    }

    #[test]
    fn csv_quotes_newlines_and_field_counts() {
        let text = "type,value,severity,description,extra\r\n\
                    ip,10.1.2.3/8,high,\"a \"\"quoted\"\", multi\nline\",x\r\n\
                    \r\n\
                    domain,Evil.Example.,,,\n\
                    url,http://x.example/\n\
                    ip,1.2.3.4,low,d,e,f\n\
                    email,bad,,\"\"\n\
                    ip,10.0.0.0/8,critical";
        let parsed = parse(text, Format::Csv).expect("valid CSV");
        assert_eq!(parsed.records, 6);
        assert_eq!(parsed.ignored_columns, vec!["extra".to_string()]);
        assert_eq!(parsed.duplicates, 1);
        let values: Vec<(&str, &str, &str)> = parsed
            .indicators
            .iter()
            .map(|i| (i.position.as_str(), i.value.as_str(), i.severity))
            .collect();
        assert_eq!(
            values,
            vec![
                ("line 9", "10.0.0.0/8", "critical"),
                ("line 5", "evil.example", "medium")
            ]
        );
        let skipped: Vec<(&str, &str)> = parsed
            .skipped
            .iter()
            .map(|s| (s.position.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            vec![
                ("line 6", "indicator type url"),
                ("line 7", "wrong number of fields"),
                ("line 8", "invalid email"),
            ]
        );
        let first = parse(
            "type,value,description\nip,192.0.2.1,\"a \"\"b\"\", c\nd\"",
            Format::Csv,
        )
        .expect("valid")
        .indicators
        .remove(0);
        assert_eq!(first.description.as_deref(), Some("a \"b\", c\nd"));
    }

    #[test]
    fn broken_csv_and_json_files_are_file_errors() {
        for (text, format) in [
            ("", Format::Csv),
            ("type,value\nip,\"1.2.3.4\n", Format::Csv),
            ("type,value\nip,\"1.2.3.4\"x\n", Format::Csv),
            ("kind,value\nip,1.2.3.4\n", Format::Csv),
            ("type,value,type\n", Format::Csv),
            ("{", Format::Json),
            ("{\"type\": \"bundle\", \"objects\": []}", Format::Json),
            ("42", Format::Json),
            ("[]", Format::Stix),
        ] {
            assert!(parse(text, format).is_err(), "{text:?} as {format}");
        }
    }

    #[test]
    fn json_lists_and_wrapped_lists() {
        let parsed = parse(
            r#"{"indicators": [
                {"type": "ip", "value": "2001:db8::1", "confidence": 70.5, "expires_at": "2030-01-01"},
                {"indicator_type": "sha256", "indicator_value": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"},
                "not an object",
                {"type": "email", "value": "Alice@Evil.Example", "is_active": false, "threat_type": ["x"]},
                {"type": "email", "value": "Alice@Evil.Example", "is_active": false}
            ]}"#,
            Format::Json,
        )
        .expect("valid");
        assert_eq!(parsed.records, 5);
        let values: Vec<&str> = parsed.indicators.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(values, vec!["2001:db8::1", "alice@evil.example"]);
        assert_eq!(parsed.indicators[0].confidence, Some(Decimal::new(705, 1)));
        assert!(!parsed.indicators[1].is_active);
        let reasons: Vec<&str> = parsed.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "hash length does not match its algorithm",
                "not an object",
                "threat_type is not a single value"
            ]
        );
    }

    #[test]
    fn networks_have_one_spelling() {
        for (raw, canonical) in [
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1/32", "192.0.2.1"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.1.2.3/255.255.0.0", "10.1.0.0/16"),
            ("2001:DB8::1/128", "2001:db8::1"),
            ("2001:db8:1::/32", "2001:db8::/32"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
        ] {
            assert_eq!(canonical_network(raw.parse().expect(raw)), canonical, "{raw}");
        }
    }

    #[test]
    fn formats_come_from_the_name_or_the_content() {
        let bundle = r#"{"type": "bundle", "objects": []}"#;
        assert_eq!(detect_format(Path::new("a.CSV"), "", None), Ok(Format::Csv));
        assert_eq!(detect_format(Path::new("a.json"), "[]", None), Ok(Format::Json));
        assert_eq!(detect_format(Path::new("a.json"), bundle, None), Ok(Format::Stix));
        assert_eq!(detect_format(Path::new("a.stix"), bundle, None), Ok(Format::Stix));
        assert_eq!(
            detect_format(Path::new("a.txt"), "", Some(Format::Csv)),
            Ok(Format::Csv)
        );
        assert!(detect_format(Path::new("feed"), "", None).is_err());
    }
}
