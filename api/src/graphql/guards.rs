//! Authorization checks shared by resolvers: who may see whose rows. RLS has already
//! limited everything to the caller's tenant; these rules work inside it.

use uuid::Uuid;

use super::errors::ApiError;
use crate::auth::permissions::{Permission, Principal};

/// The rows of a per-user table a caller may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every row of the tenant.
    Tenant,
    /// Only the rows of this user (the caller).
    Own(Uuid),
}

impl Scope {
    /// Tenant-wide with `permission`, otherwise the caller's own rows only.
    pub fn own_or(principal: &Principal, permission: Permission) -> Scope {
        if principal.can(permission) {
            Scope::Tenant
        } else {
            Scope::Own(principal.user_id)
        }
    }

    /// Whether a row of `owner` is inside this scope.
    pub fn allows(self, owner: Option<Uuid>) -> bool {
        match self {
            Scope::Tenant => true,
            Scope::Own(me) => owner == Some(me),
        }
    }
}

/// Whether the caller may read `user_id`'s personal and security details: it is
/// themselves, or they hold users:read.
pub fn can_see_user(principal: &Principal, user_id: Uuid) -> bool {
    principal.user_id == user_id || principal.can(Permission::UsersRead)
}

/// FORBIDDEN unless the caller holds `permission`.
pub fn require(principal: &Principal, permission: Permission) -> Result<(), ApiError> {
    if principal.can(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}
