//! Which active threat-intelligence indicators a login's IP, domain or email hits.
//!
//! Runs inside the caller's tenant transaction, so RLS gives the tenant's own rows and
//! the global ones; the query names both scopes itself as well, so an owner connection
//! that bypasses RLS gets the same answer instead of every tenant's rows.
//!
//! Every lookup is text equality on canonical values (migration 0015 explains why RLS
//! rules out inet containment and lower() as index conditions): an address is looked up
//! by the canonical spelling of each network containing it, computed in the database by
//! `ultracore_intel_ip_supernets`, a domain by itself and each parent domain, an email by
//! itself and by its domain. Each goes to the scope key (tenant_id, indicator_type,
//! indicator_value): a few index probes, at a million indicators as at ten.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use uuid::Uuid;

/// What an indicator matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchedOn {
    /// The IP is the indicator's address or inside its network.
    Ip,
    /// The domain is the indicator's domain or a subdomain of it.
    Domain,
    /// The email address equals the indicator (case-insensitively).
    Email,
    /// The email's domain is the indicator's domain or a subdomain of it.
    EmailDomain,
}

impl MatchedOn {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedOn::Ip => "ip",
            MatchedOn::Domain => "domain",
            MatchedOn::Email => "email",
            MatchedOn::EmailDomain => "email_domain",
        }
    }
}

/// One active, unexpired indicator that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct IntelMatch {
    pub intel_id: Uuid,
    /// None for a global indicator.
    pub tenant_id: Option<Uuid>,
    pub indicator_type: String,
    pub indicator_value: String,
    pub threat_type: Option<String>,
    /// low, medium, high or critical.
    pub severity: String,
    pub confidence: Option<Decimal>,
    pub source: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub matched_on: MatchedOn,
}

impl IntelMatch {
    pub fn is_global(&self) -> bool {
        self.tenant_id.is_none()
    }
}

/// The active, unexpired indicators of the transaction's tenant and the global ones that
/// `ip`, `domain` or `email` hit, most severe first (then most confident, then the
/// tenant's own before global ones). An indicator appears once, under the first input it
/// matched (ip, domain, email, the email's domain).
pub async fn matches<C: ConnectionTrait>(
    txn: &C,
    ip: Option<IpAddr>,
    domain: Option<&str>,
    email: Option<&str>,
) -> Result<Vec<IntelMatch>, DbErr> {
    let Some(query) = MatchQuery::new(ip, domain, email) else {
        return Ok(Vec::new());
    };
    let rows = txn.query_all_raw(query.statement()).await?;
    let mut out: Vec<IntelMatch> = Vec::with_capacity(rows.len());
    for row in rows {
        let intel_id: Uuid = row.try_get("", "intel_id")?;
        if out.iter().any(|m| m.intel_id == intel_id) {
            continue;
        }
        let indicator_type: String = row.try_get("", "indicator_type")?;
        let indicator_value: String = row.try_get("", "indicator_value")?;
        let matched_on = match indicator_type.as_str() {
            "ip" => MatchedOn::Ip,
            "email" => MatchedOn::Email,
            _ if query.domains.contains(&indicator_value) => MatchedOn::Domain,
            _ => MatchedOn::EmailDomain,
        };
        out.push(IntelMatch {
            intel_id,
            tenant_id: row.try_get("", "tenant_id")?,
            indicator_type,
            indicator_value,
            threat_type: row.try_get("", "threat_type")?,
            severity: row.try_get("", "severity")?,
            confidence: row.try_get("", "confidence")?,
            source: row.try_get("", "source")?,
            expires_at: row.try_get("", "expires_at")?,
            matched_on,
        });
    }
    out.sort_by(|a, b| {
        severity_rank(&b.severity)
            .cmp(&severity_rank(&a.severity))
            .then(b.confidence.cmp(&a.confidence))
            .then(a.is_global().cmp(&b.is_global()))
    });
    Ok(out)
}

/// The statement [`matches`] runs, for EXPLAIN in tests; None when there is nothing to
/// look up.
pub fn match_statement(ip: Option<IpAddr>, domain: Option<&str>, email: Option<&str>) -> Option<Statement> {
    MatchQuery::new(ip, domain, email).map(|q| q.statement())
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        _ => 1,
    }
}

/// The canonical lookups one match needs.
struct MatchQuery {
    ip: Option<IpAddr>,
    /// The domain and its parents.
    domains: Vec<String>,
    /// The email's domain and its parents (those not already in `domains`).
    email_domains: Vec<String>,
    email: Option<String>,
}

impl MatchQuery {
    fn new(ip: Option<IpAddr>, domain: Option<&str>, email: Option<&str>) -> Option<MatchQuery> {
        let domains = domain.map(domain_and_parents).unwrap_or_default();
        let email = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty() && e.contains('@'));
        let email_domains: Vec<String> = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| domain_and_parents(d))
            .unwrap_or_default()
            .into_iter()
            .filter(|d| !domains.contains(d))
            .collect();
        let query = MatchQuery {
            // A v4-mapped v6 peer address (a dual-stack socket) is the IPv4 address.
            ip: ip.map(|ip| ip.to_canonical()),
            domains,
            email_domains,
            email,
        };
        let empty = query.ip.is_none()
            && query.domains.is_empty()
            && query.email_domains.is_empty()
            && query.email.is_none();
        (!empty).then_some(query)
    }

    fn statement(&self) -> Statement {
        let mut values: Vec<Value> = Vec::new();
        let mut branches = Vec::new();
        // Own rows, then global ones: each a lookup on the scope key's three columns.
        // (`tenant_id is null or tenant_id = …` would be one OR the index cannot take.)
        let mut lookup = |kind: &str, condition: String| {
            for scope in [
                "tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid)",
                "tenant_id is null",
            ] {
                branches.push(format!(
                    "select intel_id, tenant_id, indicator_type, indicator_value, threat_type, severity, \
                            confidence, source, expires_at \
                       from threat_intelligence \
                      where {scope} and indicator_type = '{kind}' and {condition} \
                        and is_active and (expires_at is null or expires_at > now())"
                ));
            }
        };
        if let Some(ip) = self.ip {
            values.push(ip.to_string().into());
            lookup(
                "ip",
                format!(
                    "indicator_value = any(ultracore_intel_ip_supernets(${}::inet))",
                    values.len()
                ),
            );
        }
        let domains: Vec<String> = self.domains.iter().chain(&self.email_domains).cloned().collect();
        if !domains.is_empty() {
            values.push(domains.into());
            lookup(
                "domain",
                format!("indicator_value = any(${}::text[])", values.len()),
            );
        }
        if let Some(email) = &self.email {
            values.push(email.clone().into());
            lookup("email", format!("indicator_value = ${}", values.len()));
        }
        Statement::from_sql_and_values(DbBackend::Postgres, branches.join(" union all "), values)
    }
}

/// `domain` (lowercase, no trailing dot) and each parent domain that still has a dot:
/// login.evil.example → login.evil.example, evil.example. Not the bare top-level domain:
/// an indicator is never one (the importer refuses it). Empty for something that is not a
/// domain name.
pub fn domain_and_parents(domain: &str) -> Vec<String> {
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let valid = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Vec::new();
    }
    (0..labels.len() - 1).map(|i| labels[i..].join(".")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_and_its_parents_but_not_the_top_level() {
        assert_eq!(
            domain_and_parents("Login.Evil.Example."),
            vec!["login.evil.example", "evil.example"]
        );
        assert_eq!(domain_and_parents("evil.example"), vec!["evil.example"]);
        assert!(domain_and_parents("localhost").is_empty());
        assert!(domain_and_parents("a..example").is_empty());
        assert!(domain_and_parents("x@evil.example").is_empty());
        assert!(domain_and_parents("").is_empty());
    }

    #[test]
    fn nothing_to_look_up_is_no_query() {
        assert!(match_statement(None, None, None).is_none());
        assert!(match_statement(None, Some("localhost"), Some("no-at-sign")).is_none());
        assert!(match_statement("192.0.2.1".parse().ok(), None, None).is_some());
    }

    #[test]
    fn an_email_domain_already_looked_up_as_the_domain_is_not_repeated() {
        let q = MatchQuery::new(None, Some("evil.example"), Some("A@Mail.Evil.Example")).expect("a query");
        assert_eq!(q.domains, vec!["evil.example"]);
        assert_eq!(q.email_domains, vec!["mail.evil.example"]);
        assert_eq!(q.email.as_deref(), Some("a@mail.evil.example"));
        let mapped = MatchQuery::new("::ffff:192.0.2.1".parse().ok(), None, None).expect("a query");
        assert_eq!(mapped.ip, "192.0.2.1".parse().ok());
    }
}
