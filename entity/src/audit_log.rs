//! `audit_log`: the tamper-evident audit trail.

use sea_orm::entity::prelude::*;

/// One audit entry: who changed what, with the old and new values. Append-only, and
/// hash-chained per tenant (`chain_seq`, `prev_hash`, `row_hash`, all set by the
/// database trigger, as is `timestamp`) so that any edit or deletion is detectable.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub audit_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub action: String,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub old_values: Option<Json>,
    #[sea_orm(column_type = "JsonBinary")]
    pub new_values: Option<Json>,
    /// `inet`.
    pub ip_address: Option<IpNetwork>,
    #[sea_orm(column_type = "Text")]
    pub user_agent: Option<String>,
    /// The SQL column is `"timestamp"`; the insert trigger overwrites it with
    /// `clock_timestamp()`.
    #[sea_orm(column_name = "timestamp")]
    pub timestamp: DateTimeUtc,
    /// Position in the tenant's chain, from 1; set by the insert trigger.
    pub chain_seq: i64,
    /// `bytea`, 32 bytes: the previous row's `row_hash` (or the tenant's genesis hash).
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub prev_hash: Vec<u8>,
    /// `bytea`, 32 bytes: SHA-256 over `prev_hash` and the row's canonical encoding.
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub row_hash: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::TenantId"
    )]
    Tenants,
    /// The real foreign key is (tenant_id, user_id), with no ON DELETE action: an audited
    /// user is never deleted. User ids are globally unique.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::UserId"
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
