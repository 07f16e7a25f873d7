//! `threat_intelligence`: threat indicators.

use sea_orm::entity::prelude::*;

/// A threat indicator (an IP, domain, email or hash) checked against traffic. `tenant_id`
/// NULL marks a global indicator that every tenant reads and only the platform writes.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "threat_intelligence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub intel_id: Uuid,
    /// NULL for a global indicator.
    pub tenant_id: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub indicator_type: String,
    #[sea_orm(column_type = "String(StringLen::N(500))")]
    pub indicator_value: String,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub threat_type: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub severity: String,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub confidence: Option<Decimal>,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub source: String,
    #[sea_orm(column_type = "Text")]
    pub source_url: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub is_active: bool,
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
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
