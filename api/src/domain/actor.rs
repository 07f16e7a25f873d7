//! Who performs a change, as the audit log records it.

use uuid::Uuid;

use crate::audit::{self, AuditEntry};

/// The person (or operator tool) behind a change, and where the request came from.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant_id: Uuid,
    /// None for the operator's CLI.
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// The operator's command line acting on a tenant.
    pub fn cli(tenant_id: Uuid) -> Actor {
        Actor {
            tenant_id,
            user_id: None,
            ip: None,
            user_agent: Some("ultracore-cli".into()),
        }
    }

    /// Appends an audit entry for a change to `entity_type`/`entity_id` on `txn`, so the
    /// entry commits or rolls back with the change itself.
    pub async fn audit<C: sea_orm::ConnectionTrait>(
        &self,
        txn: &C,
        action: &str,
        entity_type: &str,
        entity_id: Uuid,
        old_values: Option<serde_json::Value>,
        new_values: Option<serde_json::Value>,
    ) -> Result<Uuid, sea_orm::DbErr> {
        audit::record(
            txn,
            self.tenant_id,
            AuditEntry {
                user_id: self.user_id,
                action: action.into(),
                entity_type: entity_type.into(),
                entity_id: Some(entity_id),
                old_values,
                new_values,
                ip_address: self.ip.clone(),
                user_agent: self.user_agent.clone(),
            },
        )
        .await
    }
}
