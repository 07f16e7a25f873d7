//! `rate_limit_entries`: rate-limit windows.

use sea_orm::entity::prelude::*;

/// One rate-limit window for a user or an IP address on one endpoint, kept in the
/// database so that every gateway copy shares it; the limit adapts to the trust score.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rate_limit_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub entry_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    /// `inet`.
    pub ip_address: Option<IpNetwork>,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub endpoint: String,
    pub request_count: i32,
    pub window_start: DateTimeUtc,
    pub window_end: DateTimeUtc,
    pub base_limit: i32,
    pub adaptive_limit: i32,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub trust_multiplier: Decimal,
    pub is_blocked: bool,
    pub blocked_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
