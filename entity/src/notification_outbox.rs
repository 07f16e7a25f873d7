//! `notification_outbox`: messages to users, delivered after their cause commits (not in the seed).

use sea_orm::entity::prelude::*;

/// A message to a user, written in the transaction that caused it and sent afterwards.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub notification_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub channel: String,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub recipient: String,
    #[sea_orm(column_type = "String(StringLen::N(500))")]
    pub subject: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// `pending`, `sent` or `failed`.
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub status: String,
    pub attempts: i32,
    #[sea_orm(column_type = "Text")]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// Not before this time is delivery (re)tried: failed attempts back off.
    pub next_attempt_at: DateTimeUtc,
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
