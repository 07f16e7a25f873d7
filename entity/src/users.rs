//! `users`: user accounts.

use sea_orm::entity::prelude::*;

/// A user account of one tenant: credentials, role and permissions, and the lockout and
/// trust state that login consults. Usernames and emails are unique per tenant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub username: String,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub email: String,
    /// An Argon2id PHC string (`$argon2id$...`).
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub password_hash: String,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub first_name: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub last_name: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub phone_number: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub role: String,
    /// `text[]`.
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub permissions: Vec<String>,
    pub is_active: bool,
    pub is_locked: bool,
    pub is_verified: bool,
    pub mfa_enabled: bool,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub mfa_secret: Option<String>,
    pub password_changed_at: DateTimeUtc,
    pub password_expires_at: Option<DateTimeUtc>,
    pub failed_login_attempts: i32,
    pub locked_until: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub trust_score: Decimal,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    /// `inet`.
    pub last_login_ip: Option<IpNetwork>,
    /// The last TOTP time step accepted (a code or an older step is accepted once).
    pub totp_last_step: Option<i64>,
    /// Which data key encrypted `mfa_secret`.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub mfa_secret_key_id: Option<String>,
    /// Lockouts so far: each lasts longer than the last.
    pub lockout_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::TenantId"
    )]
    Tenants,
    #[sea_orm(has_many = "super::mfa_backup_codes::Entity")]
    MfaBackupCodes,
    #[sea_orm(has_many = "super::refresh_tokens::Entity")]
    RefreshTokens,
    #[sea_orm(has_many = "super::trusted_devices::Entity")]
    TrustedDevices,
    #[sea_orm(has_many = "super::security_events::Entity")]
    SecurityEvents,
    /// The incidents assigned to this user (`security_incidents.assigned_to`).
    #[sea_orm(has_many = "super::security_incidents::Entity")]
    SecurityIncidents,
    #[sea_orm(has_many = "super::rate_limit_entries::Entity")]
    RateLimitEntries,
    #[sea_orm(has_many = "super::audit_log::Entity")]
    AuditLog,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl Related<super::mfa_backup_codes::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MfaBackupCodes.def()
    }
}

impl Related<super::refresh_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshTokens.def()
    }
}

impl Related<super::trusted_devices::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TrustedDevices.def()
    }
}

impl Related<super::security_events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SecurityEvents.def()
    }
}

impl Related<super::security_incidents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SecurityIncidents.def()
    }
}

impl Related<super::rate_limit_entries::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RateLimitEntries.def()
    }
}

impl Related<super::audit_log::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuditLog.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
