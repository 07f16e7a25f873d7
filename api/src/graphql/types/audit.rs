//! Audit entries, with their place in the tenant's hash chain.

use async_graphql::{Context, Json, Object};
use chrono::{DateTime, Utc};
use entity::audit_log;
use uuid::Uuid;

use super::super::errors::ApiResult;
use super::super::scalars::IpAddress;
use super::{User, load_user};

/// Who changed what, when, from where; append-only and hash-chained.
pub struct AuditEntry(pub audit_log::Model);

#[Object]
impl AuditEntry {
    async fn id(&self) -> Uuid {
        self.0.audit_id
    }
    async fn user_id(&self) -> Option<Uuid> {
        self.0.user_id
    }
    async fn user(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        load_user(ctx, self.0.user_id).await
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn entity_type(&self) -> &str {
        &self.0.entity_type
    }
    async fn entity_id(&self) -> Option<Uuid> {
        self.0.entity_id
    }
    async fn old_values(&self) -> Option<Json<serde_json::Value>> {
        self.0.old_values.clone().map(Json)
    }
    async fn new_values(&self) -> Option<Json<serde_json::Value>> {
        self.0.new_values.clone().map(Json)
    }
    async fn ip_address(&self) -> Option<IpAddress> {
        self.0.ip_address.map(IpAddress::from)
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
    async fn timestamp(&self) -> DateTime<Utc> {
        self.0.timestamp
    }
    /// Position in the tenant's audit chain, from 1.
    async fn chain_seq(&self) -> i64 {
        self.0.chain_seq
    }
    /// SHA-256 of this entry and the previous one (hex): see README, "Tamper-evident audit log".
    async fn row_hash(&self) -> String {
        hex::encode(&self.0.row_hash)
    }
}
