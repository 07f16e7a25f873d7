//! Access tokens: short-lived JWTs signed with HS256 (RFC 8725 applied).
//!
//! - The algorithm is pinned: the header's `alg` must be HS256; `none` and every other
//!   algorithm are refused before any key is used.
//! - Keys are chosen by `kid` from our own key ring, never from anything the token
//!   carries (`jku`, `x5u`, embedded keys are ignored). A key id is derived from the key,
//!   so rotating the secret rotates the id, and previous keys keep verifying the tokens
//!   they signed until those expire.
//! - `exp`, `nbf`, `iat`, `iss`, `aud`, `sub` and `typ` are required and checked, with
//!   a small leeway for clock skew.
//! - Token types are explicit (RFC 8725 §3.11): the header's `typ` and the `typ` claim
//!   must agree with what the caller expects, so an access token, a password-change
//!   token and any future type are never interchangeable.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Everything the user's role and permissions allow.
    Access,
    /// Nothing but changing an expired password.
    PasswordChange,
}

impl TokenType {
    fn header_typ(self) -> &'static str {
        match self {
            TokenType::Access => "at+jwt",
            TokenType::PasswordChange => "pwchange+jwt",
        }
    }
}

/// The claims we sign. Names follow RFC 7519 where one exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The tenant id.
    pub tid: Uuid,
    /// The user's role when the token was issued.
    pub role: String,
    /// The user's extra permission strings.
    pub perms: Vec<String>,
    /// The session (refresh token family) the token belongs to.
    pub sid: Uuid,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    pub typ: TokenType,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the signing secret must be at least 32 bytes")]
    WeakSecret,
    #[error("token refused: {0}")]
    Invalid(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn new(secret: &[u8]) -> Result<Key, JwtError> {
        if secret.len() < 32 {
            return Err(JwtError::WeakSecret);
        }
        // The key id names the key without revealing it: a truncated hash of a 256-bit
        // secret leaks nothing usable.
        let kid = hex::encode(&Sha256::digest([b"ultracore.jwt.kid;".as_slice(), secret].concat())[..8]);
        Ok(Key {
            kid,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }
}

/// Signs with the current key, verifies with the current or a previous one.
pub struct JwtKeys {
    current: Key,
    previous: Vec<Key>,
    issuer: String,
    audience: String,
    leeway_secs: u64,
}

impl JwtKeys {
    pub fn new(
        current_secret: &[u8],
        previous_secrets: &[Vec<u8>],
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
    ) -> Result<JwtKeys, JwtError> {
        Ok(JwtKeys {
            current: Key::new(current_secret)?,
            previous: previous_secrets
                .iter()
                .map(|s| Key::new(s))
                .collect::<Result<_, _>>()?,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            leeway_secs,
        })
    }

    /// The id of the signing key (for logs and key rotation notes).
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// Issues a token of `typ` for `ttl_secs`.
    pub fn issue(
        &self,
        subject: TokenSubject,
        typ: TokenType,
        ttl_secs: u64,
    ) -> Result<(String, Claims), JwtError> {
        let now = unix_now();
        let claims = Claims {
            sub: subject.user_id,
            tid: subject.tenant_id,
            role: subject.role,
            perms: subject.permissions,
            sid: subject.session_id,
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            typ,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        header.typ = Some(typ.header_typ().to_string());
        let token =
            encode(&header, &claims, &self.current.encoding).map_err(|e| JwtError::Signing(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies a token and that it is of the expected type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, JwtError> {
        let invalid = |why: &str| JwtError::Invalid(why.to_string());
        let header = decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid("algorithm not allowed"));
        }
        if header.typ.as_deref() != Some(expected.header_typ()) {
            return Err(invalid("wrong token type"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
            .ok_or_else(|| invalid("unknown key id"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        if data.claims.typ != expected {
            return Err(invalid("wrong token type"));
        }
        Ok(data.claims)
    }
}

/// Who a token is for.
#[derive(Debug, Clone)]
pub struct TokenSubject {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub role: String,
    pub permissions: Vec<String>,
    pub session_id: Uuid,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
