//! The second factor: TOTP (RFC 6238) and single-use backup codes.
//!
//! TOTP: SHA-1, 6 digits, 30 s steps, one step of drift either way. A code is accepted
//! once, and so is every earlier step: the accepted step is stored and the store is one
//! conditional UPDATE (`... where totp_last_step < $step`), so of concurrent submissions
//! of one code exactly one wins.
//!
//! Backup codes: 10 codes of 80 random bits, shown once; only a SHA-256 bound to the
//! user is stored (80 bits make a slow hash unnecessary), and using one is one
//! conditional UPDATE as well.

use rand::RngCore;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

/// Codes in a new set of backup codes.
pub const BACKUP_CODES: usize = 10;
const STEP_SECS: u64 = 30;
const BASE32: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A new 160-bit TOTP secret, base32 (what authenticator apps take).
pub fn new_secret() -> String {
    let mut bytes = vec![0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    Secret::from(bytes).to_base32()
}

fn totp(secret_base32: &str, issuer: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_base32).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .ok()
}

/// The otpauth:// URI an authenticator app enrols from.
pub fn otpauth_uri(secret_base32: &str, issuer: &str, account: &str) -> Option<String> {
    totp(secret_base32, issuer, account)?.to_url().ok()
}

/// The URI as an SVG QR code, in a data: URI an `<img>` can show.
pub fn qr_svg_data_uri(uri: &str) -> Option<String> {
    use base64::Engine;
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// The time step a code is valid for now (±1 step), if any.
pub fn matching_step(secret_base32: &str, code: &str, unix_time: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret_base32, "check", "check")?
        .check(code, unix_time)
        .map(|step| step as i64)
}

/// The code of a step (tests and enrolment checks).
pub fn code_at(secret_base32: &str, unix_time: u64) -> Option<String> {
    Some(
        totp(secret_base32, "check", "check")?
            .generate(unix_time)
            .to_string(),
    )
}

/// Accepts `step` for the user if it is later than every step accepted before; false
/// when the code (or a later one) was already used.
pub async fn accept_step<C: ConnectionTrait>(txn: &C, user_id: Uuid, step: i64) -> Result<bool, DbErr> {
    let result = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update users set totp_last_step = $2 \
              where user_id = $1 and (totp_last_step is null or totp_last_step < $2)",
            [user_id.into(), step.into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// New backup codes, formatted `XXXX-XXXX-XXXX-XXXX` (80 bits, unambiguous letters).
pub fn new_backup_codes() -> Vec<String> {
    (0..BACKUP_CODES)
        .map(|_| {
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            let chars: Vec<char> = bytes.iter().map(|b| BASE32[(*b as usize) % 32] as char).collect();
            chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// What is stored for a backup code: bound to its user, insensitive to case and dashes.
pub fn backup_code_hash(user_id: Uuid, code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(
        format!("ultracore.backup;{user_id};{normalised}").as_bytes(),
    ))
}

/// Spends a backup code: true for exactly one caller, however many try it at once.
pub async fn use_backup_code<C: ConnectionTrait>(txn: &C, user_id: Uuid, code: &str) -> Result<bool, DbErr> {
    if code.len() > 64 {
        return Ok(false);
    }
    let result = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update mfa_backup_codes set used_at = now() \
              where user_id = $1 and code_hash = $2 and used_at is null",
            [user_id.into(), backup_code_hash(user_id, code).into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_one_step_of_drift_only() {
        let secret = new_secret();
        let t = 1_800_000_000;
        let code = code_at(&secret, t).expect("code");
        let step = (t / 30) as i64;
        assert_eq!(matching_step(&secret, &code, t), Some(step));
        assert_eq!(matching_step(&secret, &code, t + 30), Some(step));
        assert_eq!(matching_step(&secret, &code, t + 60), None);
        assert_eq!(matching_step(&secret, "12345", t), None);
        assert!(otpauth_uri(&secret, "UltraCore", "alice").is_some_and(|u| u.starts_with("otpauth://totp/")));
    }

    #[test]
    fn backup_codes_are_random_and_their_hashes_are_bound_to_the_user() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), BACKUP_CODES);
        assert_ne!(codes[0], codes[1]);
        let user = Uuid::now_v7();
        assert_eq!(
            backup_code_hash(user, &codes[0]),
            backup_code_hash(user, &codes[0].to_lowercase().replace('-', ""))
        );
        assert_ne!(
            backup_code_hash(user, &codes[0]),
            backup_code_hash(Uuid::now_v7(), &codes[0])
        );
    }
}

/// The outcome of checking a second factor offered at sign-in or password reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// Neither a TOTP code nor a backup code was offered.
    Missing,
    /// A TOTP code (its step now spent) or a backup code (now used) was right.
    Verified,
    /// The code was wrong, expired or already used.
    Wrong,
}

/// Checks `totp_code` (preferred) or `backup_code` for `user`, spending what verifies.
pub async fn check_second_factor<C: ConnectionTrait>(
    txn: &C,
    keys: &super::crypto::KeyRing,
    user: &entity::users::Model,
    totp_code: Option<&str>,
    backup_code: Option<&str>,
    unix_time: u64,
) -> Result<SecondFactor, DbErr> {
    let verified = match (totp_code, backup_code) {
        (None, None) => return Ok(SecondFactor::Missing),
        (Some(code), _) => {
            let Some(stored) = &user.mfa_secret else {
                return Ok(SecondFactor::Wrong);
            };
            let secret = keys
                .decrypt(stored, user.user_id.as_bytes())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    DbErr::Custom(format!("the MFA secret of {} does not decrypt", user.user_id))
                })?;
            match matching_step(&secret, code, unix_time) {
                Some(step) => accept_step(txn, user.user_id, step).await?,
                None => false,
            }
        }
        (None, Some(code)) => use_backup_code(txn, user.user_id, code).await?,
    };
    Ok(if verified {
        SecondFactor::Verified
    } else {
        SecondFactor::Wrong
    })
}
