//! The one place errors become GraphQL errors. Every error a client sees carries
//! `extensions.code` (DESIGN.md "Errors"); database and internal failures reach the
//! client only as `INTERNAL` with an error id, while the cause goes to the log.

use async_graphql::ErrorExtensions;
use uuid::Uuid;

use crate::db::errors::sqlstate;
use crate::domain::DomainError;

/// Why an operation failed, as the client may learn it.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into a GraphQL
/// error without a code, and this type must only ever become one through the `From`
/// below, which adds the code (and hides internal causes).
#[derive(Debug)]
pub enum ApiError {
    /// No valid credentials, or a failed login (always the same words, whatever the cause).
    Unauthenticated(&'static str),
    Forbidden,
    BadUserInput(String),
    NotFound(String),
    RateLimited {
        retry_after_secs: u64,
    },
    PasswordExpired,
    /// The operation needs a second factor (a TOTP or backup code) it was not given.
    MfaRequired,
    /// A hash-only request whose document this gateway does not know (APQ): send it
    /// again with the query.
    PersistedQueryNotFound,
    /// Trusted-documents mode: the document is not registered.
    PersistedQueryNotAllowed,
    /// Anything the client cannot act on. The cause stays in the log.
    Internal(String),
}

impl ApiError {
    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(m) => (*m).to_string(),
            ApiError::Forbidden => "you are not allowed to do this".into(),
            ApiError::BadUserInput(m) | ApiError::NotFound(m) => m.clone(),
            ApiError::RateLimited { retry_after_secs } => {
                format!("too many requests; retry after {retry_after_secs} s")
            }
            ApiError::PasswordExpired => "the password has expired: change it first".into(),
            ApiError::MfaRequired => "two-factor authentication is required: give totpCode or \
                                       backupCode (for a sensitive change: sign in again with it)"
                .into(),
            // Apollo clients recognise these exact words.
            ApiError::PersistedQueryNotFound => "PersistedQueryNotFound".into(),
            ApiError::PersistedQueryNotAllowed => {
                "only registered documents run on this gateway (trusted documents)".into()
            }
            ApiError::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::BadUserInput(_) => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::PasswordExpired => "PASSWORD_EXPIRED",
            ApiError::MfaRequired => "MFA_REQUIRED",
            ApiError::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            ApiError::PersistedQueryNotAllowed => "PERSISTED_QUERY_NOT_ALLOWED",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The generic reply to every failed login (ASVS 6.3.8: no enumeration).
    pub fn login_failed() -> ApiError {
        ApiError::Unauthenticated("invalid credentials")
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::Unauthenticated("authentication required")
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        let code = err.code();
        match &err {
            ApiError::Internal(cause) => {
                let error_id = Uuid::now_v7();
                // The cause may hold SQL or data: it is logged, never sent.
                tracing::error!(%error_id, cause = %cause.replace(['\n', '\r'], " "), "internal error");
                async_graphql::Error::new(format!("internal error (id {error_id})")).extend_with(|_, e| {
                    e.set("code", code);
                    e.set("errorId", error_id.to_string());
                })
            }
            ApiError::RateLimited { retry_after_secs } => {
                let secs = *retry_after_secs;
                async_graphql::Error::new(err.message()).extend_with(|_, e| {
                    e.set("code", code);
                    e.set("retryAfter", secs);
                })
            }
            _ => async_graphql::Error::new(err.message()).extend_with(|_, e| e.set("code", code)),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        match sqlstate(&err).as_deref() {
            // statement_timeout: the client's query was too expensive; say so, generically.
            Some("57014") => ApiError::BadUserInput("the operation took too long and was cancelled".into()),
            // A check constraint: the input broke a rule the schema enforces.
            Some("23514") => ApiError::BadUserInput("a value is outside its allowed range".into()),
            // Text PostgreSQL cannot store (a NUL character) or a value too long for its column.
            Some("22021") => ApiError::BadUserInput("text contains a character that cannot be stored".into()),
            Some("22001") => ApiError::BadUserInput("a value is longer than its field allows".into()),
            _ => ApiError::internal(err),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Invalid(m) | DomainError::Conflict(m) => ApiError::BadUserInput(m),
            DomainError::NotFound(m) => ApiError::NotFound(m),
            DomainError::Forbidden => ApiError::Forbidden,
            DomainError::WrongCode => {
                ApiError::BadUserInput("the code is wrong, expired or already used".into())
            }
            DomainError::Password(p) => match p {
                crate::auth::password::PasswordError::Hashing(e) => ApiError::internal(e),
                crate::auth::password::PasswordError::Busy => ApiError::RateLimited {
                    retry_after_secs: crate::auth::hashing::Saturated::RETRY_AFTER.as_secs(),
                },
                other => ApiError::BadUserInput(other.to_string()),
            },
            DomainError::Db(e) => e.into(),
        }
    }
}

/// Result type of resolvers.
pub type ApiResult<T> = Result<T, async_graphql::Error>;
