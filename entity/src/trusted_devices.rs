//! `trusted_devices`: the devices a user has logged in from.

use sea_orm::entity::prelude::*;

/// A device a user has logged in from, one row per (user, fingerprint): its trust score
/// and whether it is trusted feed the risk assessment of later logins.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "trusted_devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub device_fingerprint: String,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub device_name: Option<String>,
    /// `mobile`, `desktop`, `tablet` or `other`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub device_type: Option<String>,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub trust_score: Decimal,
    pub is_trusted: bool,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    /// `inet`.
    pub last_ip_address: Option<IpNetwork>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When the user trusted the device (from a session that passed MFA).
    pub trusted_at: Option<DateTimeUtc>,
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
