//! Opaque reference tokens (refresh tokens, and later reset and verification tokens).
//!
//! 256 random bits (ASVS 7.2.3 asks for at least 128), base64url without padding, so a
//! token is 43 characters. Only its SHA-256 is stored: a database dump yields no usable
//! token, and since the token is uniformly random, a plain hash is enough (no salt or
//! slow hash is needed, unlike passwords).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random token, as given to the client.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token that names its tenant (refresh, password-reset and verification tokens): the
/// tenant id (so the gateway knows which tenant's transaction to look it up in; not a
/// secret) and 256 random bits.
pub fn new_tenant_token(tenant_id: uuid::Uuid) -> String {
    format!("{}.{}", tenant_id.simple(), new_token())
}

/// The tenant named by a tenant token, if the token has the right shape.
pub fn tenant_of_token(token: &str) -> Option<uuid::Uuid> {
    let (tenant, random) = token.split_once('.')?;
    if tenant.len() != 32 || !looks_like_token(random) {
        return None;
    }
    uuid::Uuid::try_parse(tenant).ok()
}

/// What the database stores for a token: lowercase hex SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a string could be one of our tokens (cheap pre-check before any lookup).
pub fn looks_like_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_random_bits_and_are_stored_only_as_hashes() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(looks_like_token(&a), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).expect("base64url").len(), 32);
        let hash = token_hash(&a);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&a));
    }

    #[test]
    fn refresh_tokens_name_their_tenant_and_nothing_else_parses() {
        let tenant = uuid::Uuid::now_v7();
        let token = new_tenant_token(tenant);
        assert_eq!(tenant_of_token(&token), Some(tenant));
        assert_eq!(tenant_of_token("garbage"), None);
        assert_eq!(tenant_of_token(&format!("{}.short", tenant.simple())), None);
    }
}
