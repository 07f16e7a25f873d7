//! Persisted operations: automatic persisted queries (Apollo's protocol) and, for
//! production, trusted documents.
//!
//! - **APQ.** A client sends `extensions.persistedQuery = {version: 1, sha256Hash}`
//!   without the query; an unknown hash answers `PERSISTED_QUERY_NOT_FOUND` (message
//!   `PersistedQueryNotFound`, what Apollo clients look for), and the client sends the
//!   query with its hash once, which the gateway checks and remembers (per copy, bounded).
//! - **Trusted documents** (`graphql.trusted_documents = true`): only documents
//!   registered with `ultracore documents register` run, by hash or by full text, over
//!   HTTP and WebSocket alike; anything else answers `PERSISTED_QUERY_NOT_ALLOWED`. The
//!   registry is a database table, so every copy shares it; a copy caches what it has
//!   looked up (a hash always names the same document, so a cached entry never goes
//!   stale).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_graphql::Request;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use sha2::{Digest, Sha256};

use super::errors::ApiError;

/// Documents remembered per copy (APQ and registry lookups each).
const CACHE_ENTRIES: usize = 10_000;
/// An unregistered hash is asked of the database again after this long.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// The hex SHA-256 of a document's exact text.
pub fn document_hash(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

pub struct PersistedDocuments {
    trusted_only: bool,
    apq: Mutex<HashMap<String, String>>,
    registered: Mutex<HashMap<String, String>>,
    unregistered: Mutex<HashMap<String, Instant>>,
}

impl PersistedDocuments {
    pub fn new(trusted_only: bool) -> PersistedDocuments {
        PersistedDocuments {
            trusted_only,
            apq: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
            unregistered: Mutex::new(HashMap::new()),
        }
    }

    /// Fills in the document of a hash-only request, and refuses what the mode does not
    /// allow. Runs before anything else looks at the request.
    pub async fn resolve(&self, db: &DatabaseConnection, request: &mut Request) -> Result<(), ApiError> {
        let hash = requested_hash(request)?;
        match (request.query.is_empty(), hash) {
            // Hash only: a remembered or registered document.
            (true, Some(hash)) => {
                if !self.trusted_only
                    && let Some(document) = lock(&self.apq).get(&hash).cloned()
                {
                    request.query = document;
                    return Ok(());
                }
                match self.registered_document(db, &hash).await? {
                    Some(document) => {
                        request.query = document;
                        Ok(())
                    }
                    None if self.trusted_only => Err(ApiError::PersistedQueryNotAllowed),
                    None => Err(ApiError::PersistedQueryNotFound),
                }
            }
            (true, None) => Ok(()), // an empty document: the executor reports it
            // Text and hash: they must agree; then remembered (APQ registration).
            (false, Some(hash)) => {
                if document_hash(&request.query) != hash {
                    return Err(ApiError::BadUserInput(
                        "persistedQuery.sha256Hash is not the SHA-256 of the query".into(),
                    ));
                }
                if self.trusted_only {
                    return self.require_registered(db, &hash).await;
                }
                remember(&self.apq, hash, request.query.clone());
                Ok(())
            }
            (false, None) if self.trusted_only => {
                let hash = document_hash(&request.query);
                self.require_registered(db, &hash).await
            }
            (false, None) => Ok(()),
        }
    }

    async fn require_registered(&self, db: &DatabaseConnection, hash: &str) -> Result<(), ApiError> {
        match self.registered_document(db, hash).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::PersistedQueryNotAllowed),
        }
    }

    /// The registered document of `hash`: from this copy's cache, else the registry.
    async fn registered_document(
        &self,
        db: &DatabaseConnection,
        hash: &str,
    ) -> Result<Option<String>, ApiError> {
        if let Some(document) = lock(&self.registered).get(hash).cloned() {
            return Ok(Some(document));
        }
        if lock(&self.unregistered)
            .get(hash)
            .is_some_and(|at| at.elapsed() < NEGATIVE_TTL)
        {
            return Ok(None);
        }
        let found = lookup(db, hash).await.map_err(ApiError::internal)?;
        match &found {
            Some(document) => remember(&self.registered, hash.to_string(), document.clone()),
            None => {
                let mut unregistered = lock(&self.unregistered);
                if unregistered.len() >= CACHE_ENTRIES {
                    unregistered.retain(|_, at| at.elapsed() < NEGATIVE_TTL);
                }
                if unregistered.len() < CACHE_ENTRIES {
                    unregistered.insert(hash.to_string(), Instant::now());
                }
            }
        }
        Ok(found)
    }
}

/// `extensions.persistedQuery.sha256Hash`, checked: version 1, 64 hex digits.
fn requested_hash(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(persisted) = request.extensions.0.get("persistedQuery") else {
        return Ok(None);
    };
    let persisted = serde_json::to_value(persisted).unwrap_or_default();
    if persisted["version"].as_i64() != Some(1) {
        return Err(ApiError::BadUserInput("persistedQuery.version must be 1".into()));
    }
    match persisted["sha256Hash"].as_str() {
        Some(hash) if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(Some(hash.to_ascii_lowercase()))
        }
        _ => Err(ApiError::BadUserInput(
            "persistedQuery.sha256Hash must be 64 hexadecimal digits".into(),
        )),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bounded: when full, the cache starts over (documents are cheap to learn again).
fn remember(cache: &Mutex<HashMap<String, String>>, hash: String, document: String) {
    let mut cache = lock(cache);
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(hash, document);
}

async fn lookup<C: ConnectionTrait>(db: &C, hash: &str) -> Result<Option<String>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select document from ultracore_registry.trusted_documents where sha256 = $1",
            [hash.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<String>("", "document")).transpose()
}

/// Registers a document (the owner's `ultracore documents register`): returns its hash
/// and whether it was new.
pub async fn register<C: ConnectionTrait>(db: &C, document: &str) -> Result<(String, bool), DbErr> {
    let hash = document_hash(document);
    let names: Vec<String> = async_graphql::parser::parse_query(document)
        .map(|doc| {
            doc.operations
                .iter()
                .filter_map(|(name, _)| name.map(|n| n.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let inserted = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into ultracore_registry.trusted_documents (sha256, document, operation_names) \
             values ($1, $2, $3) on conflict (sha256) do nothing",
            [hash.clone().into(), document.into(), names.into()],
        ))
        .await?;
    Ok((hash, inserted.rows_affected() == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex_of_the_exact_text() {
        assert_eq!(
            document_hash("{ me { id } }"),
            hex::encode(Sha256::digest(b"{ me { id } }"))
        );
        assert_ne!(document_hash("{ me { id } }"), document_hash("{me{id}}"));
    }

    #[test]
    fn the_persisted_query_extension_is_checked() {
        let with = |value: serde_json::Value| {
            let mut request = Request::new("");
            request.extensions.0.insert(
                "persistedQuery".into(),
                async_graphql::Value::from_json(value).expect("value"),
            );
            requested_hash(&request)
        };
        let hash = "A".repeat(64);
        assert_eq!(
            with(serde_json::json!({"version": 1, "sha256Hash": hash}))
                .ok()
                .flatten(),
            Some("a".repeat(64))
        );
        assert!(with(serde_json::json!({"version": 2, "sha256Hash": "a".repeat(64)})).is_err());
        assert!(with(serde_json::json!({"version": 1, "sha256Hash": "xyz"})).is_err());
    }
}
