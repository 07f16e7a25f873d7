//! `security_incidents`: incidents under investigation.

use sea_orm::entity::prelude::*;

/// An incident that analysts investigate: it groups related threats and events, is
/// assigned to a user, and moves from open through investigating to resolved and closed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "security_incidents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub incident_id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub incident_type: String,
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub severity: String,
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub status: String,
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub priority: String,
    #[sea_orm(column_type = "String(StringLen::N(500))")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub assigned_to: Option<Uuid>,
    /// `uuid[]` of `threat_events.threat_id` (not a foreign key).
    pub related_threat_ids: Vec<Uuid>,
    /// `uuid[]` of `security_events.event_id` (not a foreign key).
    pub related_event_ids: Vec<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::TenantId"
    )]
    Tenants,
    /// The user the incident is assigned to. The real foreign key is
    /// (tenant_id, assigned_to); user ids are globally unique.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::AssignedTo",
        to = "super::users::Column::UserId",
        on_delete = "SetNull"
    )]
    Assignee,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Assignee.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
