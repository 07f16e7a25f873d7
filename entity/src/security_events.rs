//! `security_events`: the append-only security event stream.

use sea_orm::entity::prelude::*;

/// One security-relevant event (a login, a denial, a lockout, a detected threat...): the
/// append-only stream that risk scoring, threat detection and analysts read.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "security_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub event_type: String,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub event_category: String,
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub severity: String,
    /// `inet`.
    pub ip_address: Option<IpNetwork>,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub device_fingerprint: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub user_agent: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub geolocation: Option<Json>,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub risk_score: Option<Decimal>,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub fraud_score: Option<Decimal>,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub anomaly_score: Option<Decimal>,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub action_taken: Option<String>,
    /// The SQL column is `"timestamp"` (quoted: it is a type name in SQL).
    #[sea_orm(column_name = "timestamp")]
    pub timestamp: DateTimeUtc,
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
        on_delete = "SetNull"
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
