//! Secrets at rest (the MFA secret): AES-256-GCM under a data key from configuration.
//!
//! Stored form: `v1.<key id>.<base64(nonce ‖ ciphertext ‖ tag)>`. The key id names the
//! key that encrypted the value, so keys can rotate: new values use the current key,
//! old ones still decrypt with a previous key until re-encrypted. The associated data
//! binds a ciphertext to its row (the user id), so a secret copied into another user's
//! row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("a data key must be 32 bytes, given as base64")]
    BadKey,
    #[error("the value was encrypted with an unknown key ({0})")]
    UnknownKey(String),
    #[error("the stored value is malformed or was tampered with")]
    Corrupt,
}

struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

impl DataKey {
    fn from_base64(text: &str) -> Result<DataKey, CryptoError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        // A key id that names the key without revealing it.
        let id = hex::encode(&Sha256::digest([b"ultracore.data-key;".as_slice(), &bytes].concat())[..8]);
        let key = Key::<Aes256Gcm>::try_from(bytes.as_slice()).map_err(|_| CryptoError::BadKey)?;
        Ok(DataKey {
            id,
            cipher: Aes256Gcm::new(&key),
        })
    }
}

/// The current data key and the previous ones still accepted for decryption.
pub struct KeyRing {
    current: DataKey,
    previous: Vec<DataKey>,
}

impl KeyRing {
    pub fn new(current_base64: &str, previous_base64: &[String]) -> Result<KeyRing, CryptoError> {
        Ok(KeyRing {
            current: DataKey::from_base64(current_base64)?,
            previous: previous_base64
                .iter()
                .map(|k| DataKey::from_base64(k))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Id of the key new values are encrypted with.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the user id).
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // AES-GCM encryption only fails for inputs of gigabytes.
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("v1.{}.{}", self.current.id, STANDARD.encode(blob))
    }

    /// Decrypts a stored value bound to `context`.
    pub fn decrypt(&self, stored: &str, context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut parts = stored.splitn(3, '.');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Corrupt);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_string()))?;
        let blob = STANDARD.decode(body).map_err(|_| CryptoError::Corrupt)?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Corrupt);
        }
        let (nonce, sealed) = blob.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Corrupt)?;
        key.cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Corrupt)
    }

    /// The key id a stored value names.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        stored.strip_prefix("v1.")?.split('.').next()
    }
}

/// A new random data key, base64 (for `ULTRACORE_DATA_KEY`).
pub fn generate_key_base64() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_refuse_tampering_other_rows_and_unknown_keys() {
        let ring = KeyRing::new(&generate_key_base64(), &[]).expect("key");
        let stored = ring.encrypt(b"JBSWY3DPEHPK3PXP", b"user-1");
        assert!(!stored.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            ring.decrypt(&stored, b"user-1").expect("decrypts"),
            b"JBSWY3DPEHPK3PXP"
        );
        assert_eq!(ring.decrypt(&stored, b"user-2"), Err(CryptoError::Corrupt));
        let mut tampered = stored.clone();
        tampered.pop();
        tampered.push(if stored.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.decrypt(&tampered, b"user-1").is_err());
        let other = KeyRing::new(&generate_key_base64(), &[]).expect("key");
        assert!(matches!(
            other.decrypt(&stored, b"user-1"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn previous_keys_still_decrypt_after_rotation() {
        let old = generate_key_base64();
        let before = KeyRing::new(&old, &[]).expect("key");
        let stored = before.encrypt(b"secret", b"u");
        let after = KeyRing::new(&generate_key_base64(), &[old]).expect("keys");
        assert_eq!(after.decrypt(&stored, b"u").expect("old key decrypts"), b"secret");
        assert_ne!(KeyRing::key_id_of(&stored), Some(after.current_id()));
    }
}
