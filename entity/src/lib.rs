//! SeaORM entities for the UltraCore schema: one module per table, no logic.
//!
//! The schema itself is defined by the SQL migrations (`migration/src/sql`); these
//! entities mirror it. Table, column and key names follow the seed schema exactly.

pub mod account_tokens;
pub mod audit_log;
pub mod mfa_backup_codes;
pub mod notification_outbox;
pub mod rate_limit_entries;
pub mod refresh_tokens;
pub mod security_events;
pub mod security_incidents;
pub mod tenants;
pub mod threat_events;
pub mod threat_intelligence;
pub mod trusted_devices;
pub mod users;

/// Every entity under a readable name, e.g. `Users::find()`.
pub mod prelude {
    pub use super::account_tokens::Entity as AccountTokens;
    pub use super::audit_log::Entity as AuditLog;
    pub use super::mfa_backup_codes::Entity as MfaBackupCodes;
    pub use super::notification_outbox::Entity as NotificationOutbox;
    pub use super::rate_limit_entries::Entity as RateLimitEntries;
    pub use super::refresh_tokens::Entity as RefreshTokens;
    pub use super::security_events::Entity as SecurityEvents;
    pub use super::security_incidents::Entity as SecurityIncidents;
    pub use super::tenants::Entity as Tenants;
    pub use super::threat_events::Entity as ThreatEvents;
    pub use super::threat_intelligence::Entity as ThreatIntelligence;
    pub use super::trusted_devices::Entity as TrustedDevices;
    pub use super::users::Entity as Users;
}
