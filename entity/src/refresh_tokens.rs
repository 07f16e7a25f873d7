//! `refresh_tokens`: sessions.

use sea_orm::entity::prelude::*;

/// A refresh token, i.e. one session: only the SHA-256 hash of the token is stored, so a
/// database leak yields no usable token. `revoked_at` ends the session early.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub token_hash: String,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub device_fingerprint: Option<String>,
    /// `inet`.
    pub ip_address: Option<IpNetwork>,
    #[sea_orm(column_type = "Text")]
    pub user_agent: Option<String>,
    pub created_at: DateTimeUtc,
    /// The session this token belongs to: every rotation keeps the family. Access tokens
    /// carry it as `sid`.
    pub family_id: Uuid,
    /// The token that replaced this one when it was used (rotation).
    pub replaced_by: Option<Uuid>,
    pub last_used_at: Option<DateTimeUtc>,
    /// When the session's sign-in passed a second factor; None: password only.
    pub mfa_verified_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::TenantId"
    )]
    Tenants,
    /// The real foreign key is (tenant_id, user_id); user ids are globally unique.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::UserId",
        on_delete = "Cascade"
    )]
    Users,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
