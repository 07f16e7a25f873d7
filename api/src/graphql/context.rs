//! What a resolver can reach during one operation: the caller, the client, and the
//! operation's tenant transaction.

use std::net::IpAddr;
use std::sync::Arc;

use sea_orm::DatabaseTransaction;

use super::errors::ApiError;
use crate::auth::permissions::{Permission, Principal};

/// Where a request came from, for audit rows and security events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    /// Truncated to 512 characters and stripped of control characters (log injection).
    pub user_agent: Option<String>,
    /// Where the client is, when a GeoIP database or a trusted proxy says so.
    pub geo: Option<crate::geo::GeoPoint>,
    /// The HTTP request's id (`x-request-id`), for the operation's log line.
    pub request_id: Option<String>,
}

impl ClientInfo {
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> ClientInfo {
        let user_agent = user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(512).collect());
        ClientInfo {
            ip,
            user_agent,
            geo: None,
            request_id: None,
        }
    }

    pub fn with_geo(mut self, geo: Option<crate::geo::GeoPoint>) -> ClientInfo {
        self.geo = geo;
        self
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> ClientInfo {
        self.request_id = request_id;
        self
    }
}

/// Per-operation request data. The transaction is shared by every resolver and DataLoader
/// of the operation (it serialises their statements on its one connection) and taken
/// back by the executor to COMMIT or ROLLBACK once execution is over.
pub struct RequestContext {
    pub principal: Option<Principal>,
    pub client: ClientInfo,
    txn: Option<Arc<DatabaseTransaction>>,
}

impl RequestContext {
    pub fn new(
        principal: Option<Principal>,
        client: ClientInfo,
        txn: Option<Arc<DatabaseTransaction>>,
    ) -> Self {
        RequestContext {
            principal,
            client,
            txn,
        }
    }

    /// The caller, or UNAUTHENTICATED.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or_else(ApiError::unauthenticated)
    }

    /// The caller, if they hold `permission`; FORBIDDEN otherwise.
    pub fn require(&self, permission: Permission) -> Result<&Principal, ApiError> {
        let principal = self.principal()?;
        if principal.can(permission) {
            Ok(principal)
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The caller as the audit log records them.
    pub fn actor(&self) -> Result<crate::domain::Actor, ApiError> {
        let principal = self.principal()?;
        Ok(crate::domain::Actor {
            tenant_id: principal.tenant_id,
            user_id: Some(principal.user_id),
            ip: self.client.ip.map(|ip| ip.to_string()),
            user_agent: self.client.user_agent.clone(),
        })
    }

    /// The operation's tenant transaction (present whenever there is a principal).
    pub fn db(&self) -> Result<&DatabaseTransaction, ApiError> {
        self.txn.as_deref().ok_or_else(ApiError::unauthenticated)
    }

    /// A handle on the transaction for DataLoaders, which must be 'static.
    pub fn shared_db(&self) -> Option<Arc<DatabaseTransaction>> {
        self.txn.clone()
    }
}

/// Shortcut for resolvers: the request context of `ctx`.
pub fn request<'a>(ctx: &async_graphql::Context<'a>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}
