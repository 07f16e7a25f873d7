//! Settings of the adaptive rate limiter (`crate::security::rate_limit`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Endpoints anyone may call without a session. Their windows count per client address
/// across every tenant, whatever token the request carries.
pub const PUBLIC_ENDPOINTS: &[&str] = &[
    "login",
    "refreshSession",
    "register",
    "requestPasswordReset",
    "resetPassword",
    "verifyEmail",
];

/// Built-in base limits per window, by GraphQL root field. Anything else that writes
/// falls back to `mutation_limit`.
const DEFAULT_ENDPOINT_LIMITS: &[(&str, u32)] = &[
    ("login", 20),
    ("refreshSession", 30),
    ("register", 5),
    ("requestPasswordReset", 5),
    ("resetPassword", 10),
    ("verifyEmail", 10),
    ("requestEmailVerification", 5),
    ("changePassword", 5),
    ("enrollTotp", 10),
    ("confirmTotp", 10),
    ("disableTotp", 10),
    ("generateBackupCodes", 5),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Off only for benchmarks and load tests: every limit below stops applying.
    pub enabled: bool,
    /// Length of a counting window (fixed windows aligned to the epoch, shared by copies).
    pub window_secs: u32,
    /// Base limit per window of individual root fields, over the built-in ones
    /// (`ULTRACORE_RATE_LIMITS__ENDPOINTS__LOGIN=10`).
    pub endpoints: BTreeMap<String, u32>,
    /// Base limit per user and window of any other mutation field.
    pub mutation_limit: u32,
    /// The per-address window of an authenticated endpoint allows this many times the
    /// base limit (several users can share an office's address).
    pub address_factor: u32,
    /// Queries and subscription starts per user (per address when anonymous) and window,
    /// counted in memory by each gateway copy: reads never pay a database write.
    pub read_limit: u32,
    /// A subject that keeps sending past this many times its limit is blocked for
    /// `offender_block_secs`, not just until the window ends.
    pub offender_factor: u32,
    pub offender_block_secs: u32,
    /// Windows older than this are deleted when their subject is next counted.
    pub retention_secs: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            window_secs: 60,
            endpoints: BTreeMap::new(),
            mutation_limit: 60,
            address_factor: 4,
            read_limit: 1_200,
            offender_factor: 3,
            offender_block_secs: 900,
            retention_secs: 24 * 3600,
        }
    }
}

impl RateLimitConfig {
    /// The base limit of a root field: configured, built in, or the mutation default.
    pub fn base_limit(&self, endpoint: &str) -> u32 {
        // Environment keys arrive lowercased (`..._ENDPOINTS__REFRESHSESSION`).
        self.endpoints
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(endpoint))
            .map(|(_, limit)| *limit)
            .or_else(|| {
                DEFAULT_ENDPOINT_LIMITS
                    .iter()
                    .find(|(name, _)| *name == endpoint)
                    .map(|(_, limit)| *limit)
            })
            .unwrap_or(self.mutation_limit)
            .max(1)
    }

    /// Whether a root field is counted per address across tenants.
    pub fn is_public(endpoint: &str) -> bool {
        PUBLIC_ENDPOINTS.contains(&endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_limits_win_over_built_in_ones_and_others_use_the_mutation_limit() {
        let mut config = RateLimitConfig::default();
        assert_eq!(config.base_limit("login"), 20);
        assert_eq!(config.base_limit("reportThreat"), 60);
        config.endpoints.insert("login".into(), 3);
        config.endpoints.insert("refreshsession".into(), 4);
        assert_eq!(config.base_limit("refreshSession"), 4);
        config.mutation_limit = 7;
        assert_eq!(config.base_limit("login"), 3);
        assert_eq!(config.base_limit("reportThreat"), 7);
        assert!(RateLimitConfig::is_public("refreshSession"));
        assert!(!RateLimitConfig::is_public("changePassword"));
    }
}
