//! `threat_events`: detected threats.

use sea_orm::entity::prelude::*;

/// A detected threat (by a rule, a model or an analyst), what it affected, and how it was
/// responded to, from detection to mitigation and resolution.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "threat_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub threat_id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub threat_type: String,
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub severity: String,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// `text[]`.
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub indicators: Vec<String>,
    /// `uuid[]`.
    pub affected_user_ids: Vec<Uuid>,
    /// `uuid[]`.
    pub affected_account_ids: Vec<Uuid>,
    /// `uuid[]`.
    pub affected_transaction_ids: Vec<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub detection_method: String,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub confidence: Option<Decimal>,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub response_action: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub response_status: Option<String>,
    pub detected_at: DateTimeUtc,
    pub mitigated_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
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
