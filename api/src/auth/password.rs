//! Password policy and Argon2id hashing.
//!
//! Policy (OWASP ASVS 5.0 6.2): 8 to 128 characters, never truncated or case-folded, no
//! composition rules, but a strength estimate (zxcvbn) that must reach "safely
//! unguessable" (score 3), with the user's own name and email counted as known words.
//! A password over the limit is refused before any hashing, so a 1 MB password costs
//! nothing. Hashes are Argon2id with m = 19456 KiB, t = 2, p = 1 (ASVS 11.4.2, OWASP's
//! minimum), computed on the blocking pool so the async runtime keeps serving.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 8;
/// Most characters a password may have (ASVS asks that at least 64 be allowed).
pub const MAX_CHARS: usize = 128;
/// Argon2id memory cost in KiB.
pub const ARGON2_M_KIB: u32 = 19_456;
/// Argon2id iterations.
pub const ARGON2_T: u32 = 2;
/// Argon2id parallelism.
pub const ARGON2_P: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password has {0} characters; at least {MIN_CHARS} are required")]
    TooShort(usize),
    #[error("the password is longer than {MAX_CHARS} characters")]
    TooLong,
    #[error("the password contains the username or email")]
    ContainsIdentity,
    #[error("the password is too easy to guess{0}")]
    Weak(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Too many hashes are running or waiting (see [`super::hashing`]).
    #[error("the server is busy hashing passwords; retry shortly")]
    Busy,
}

/// Who the password belongs to: their identifiers must not make it guessable.
#[derive(Debug, Default, Clone, Copy)]
pub struct PasswordOwner<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
}

/// Checks a new password against the policy. Cheap checks come first; the length limit is
/// checked on the byte length before counting characters, so a huge input is refused in
/// constant time.
pub fn check_policy(password: &str, owner: &PasswordOwner<'_>) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    // A char is at most 4 bytes: more bytes than that cannot be MAX_CHARS characters.
    if password.len() > MAX_CHARS * 4 {
        return Err(PasswordError::TooLong);
    }
    let chars = password.chars().count();
    if chars > MAX_CHARS {
        return Err(PasswordError::TooLong);
    }
    if chars < MIN_CHARS {
        return Err(PasswordError::TooShort(chars));
    }
    let lowered = password.to_lowercase();
    let email_local = owner.email.split('@').next().unwrap_or("");
    let identities = [owner.username, email_local];
    if identities
        .iter()
        .any(|id| id.chars().count() >= 3 && lowered.contains(&id.to_lowercase()))
    {
        return Err(PasswordError::ContainsIdentity);
    }
    let mut known: Vec<&str> = vec![owner.username, owner.email, email_local];
    known.extend(owner.first_name);
    known.extend(owner.last_name);
    let estimate = zxcvbn::zxcvbn(password, &known);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| format!(": {w}")))
            .unwrap_or_default();
        return Err(PasswordError::Weak(hint));
    }
    Ok(())
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the calling thread. Prefer [`hash_password`] from async code.
pub fn hash_password_blocking(password: &str) -> Result<String, PasswordError> {
    if password.len() > MAX_CHARS * 4 {
        return Err(PasswordError::TooLong);
    }
    hasher()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Hashes on the bounded hashing pool: an Argon2id hash takes tens of milliseconds of
/// CPU and 19 MiB, which must not stall the async workers nor pile up without bound.
pub async fn hash_password(password: String) -> Result<String, PasswordError> {
    super::hashing::run(move || hash_password_blocking(&password))
        .await
        .map_err(|_| PasswordError::Busy)?
}

/// Verifies `password` against a PHC hash on the bounded hashing pool. A malformed hash
/// verifies nothing.
pub async fn verify_password(password: String, hash: String) -> Result<bool, PasswordError> {
    super::hashing::run(move || {
        use argon2::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .map_err(|_| PasswordError::Busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> PasswordOwner<'static> {
        PasswordOwner {
            username: "alice",
            email: "alice@bank.example",
            ..Default::default()
        }
    }

    #[test]
    fn refuses_empty_short_long_and_weak_passwords() {
        assert_eq!(check_policy("", &owner()), Err(PasswordError::Empty));
        assert_eq!(check_policy("Xq9#", &owner()), Err(PasswordError::TooShort(4)));
        assert_eq!(
            check_policy(&"a".repeat(1 << 20), &owner()),
            Err(PasswordError::TooLong)
        );
        assert_eq!(
            check_policy(&"é".repeat(129), &owner()),
            Err(PasswordError::TooLong)
        );
        assert!(matches!(
            check_policy("password1", &owner()),
            Err(PasswordError::Weak(_))
        ));
        assert_eq!(
            check_policy("Alice-rides-7-horses", &owner()),
            Err(PasswordError::ContainsIdentity)
        );
    }

    #[test]
    fn accepts_strong_passwords_up_to_128_characters_unchanged() {
        assert_eq!(check_policy("correct horse battery staple 42", &owner()), Ok(()));
        let long: String = "Tr0ub4dor&3-".repeat(11).chars().take(128).collect();
        assert_eq!(check_policy(&long, &owner()), Ok(()));
    }

    #[test]
    fn hashes_are_argon2id_with_the_required_parameters() {
        let hash = hash_password_blocking("correct horse battery staple 42").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    }
}
