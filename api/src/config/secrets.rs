//! Secrets: from the environment, from a file (`*_FILE`, for container secrets), or, in
//! the development profile only, generated once into the data directory.

use std::path::Path;

use super::{Config, ConfigError, Profile};
use crate::db::embedded::{random_secret, write_private};

/// The JWT signing key and the previous keys still accepted.
pub fn jwt_secrets(config: &Config) -> Result<(Vec<u8>, Vec<Vec<u8>>), ConfigError> {
    let current = match (&config.jwt_secret, &config.jwt_secret_file) {
        (Some(secret), _) => secret.as_bytes().to_vec(),
        (None, Some(file)) => read_secret_file(file)?.into_bytes(),
        (None, None) if config.profile == Profile::Development => {
            generated(&config.data_dir.join("jwt.secret"))?.into_bytes()
        }
        (None, None) => {
            return Err(ConfigError::new(
                "the production profile needs ULTRACORE_JWT_SECRET or ULTRACORE_JWT_SECRET_FILE",
            ));
        }
    };
    if current.len() < 32 {
        return Err(ConfigError::new("the JWT secret must be at least 32 bytes"));
    }
    let previous = config
        .jwt_previous_secrets
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec())
        .collect();
    Ok((current, previous))
}

/// The data key (base64 of 32 bytes) and the previous ones still used to decrypt.
pub fn data_keys(config: &Config) -> Result<(String, Vec<String>), ConfigError> {
    let current = match (&config.data_key, &config.data_key_file) {
        (Some(key), _) => key.clone(),
        (None, Some(file)) => read_secret_file(file)?,
        (None, None) if config.profile == Profile::Development => generated_with(
            &config.data_dir.join("data.key"),
            crate::auth::crypto::generate_key_base64,
        )?,
        (None, None) => {
            return Err(ConfigError::new(
                "the production profile needs ULTRACORE_DATA_KEY or ULTRACORE_DATA_KEY_FILE",
            ));
        }
    };
    let previous = config
        .data_previous_keys
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok((current, previous))
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| ConfigError::new(&format!("cannot read secret file {}: {e}", path.display())))
}

/// A development secret: created on first use (256 random bits, mode 0600) and reused.
fn generated(path: &Path) -> Result<String, ConfigError> {
    generated_with(path, random_secret)
}

fn generated_with(path: &Path, make: fn() -> String) -> Result<String, ConfigError> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_string());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ConfigError::new(&format!("cannot create {}: {e}", dir.display())))?;
    }
    let secret = make();
    write_private(path, &secret).map_err(|e| ConfigError::new(&e.to_string()))?;
    Ok(secret)
}
