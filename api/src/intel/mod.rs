//! Threat intelligence: reading indicator files ([`parse`]: CSV, JSON, STIX 2.1),
//! storing them in a tenant or globally ([`import`]), and finding the indicators a
//! login's IP, domain or email hits ([`matching`]). Tenant-local additions and
//! deactivations through the API are in `crate::domain::intel`.

pub mod import;
pub mod matching;
pub mod parse;

pub use matching::{IntelMatch, MatchedOn, matches};
