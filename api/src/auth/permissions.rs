//! Authorization: what each role may do, plus the extra permission strings a user holds.
//!
//! The matrix (README, "Authorization") is the one place that says who may do what;
//! resolvers ask [`Principal::can`] and never compare roles themselves.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::roles::Role;

/// A permission string, as stored in users.permissions and carried in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Read every user of the tenant (not just oneself).
    UsersRead,
    /// Create users, edit profiles, lock, unlock, deactivate.
    UsersManage,
    /// Change roles and permission strings.
    UsersRoles,
    /// Read every session of the tenant.
    SessionsRead,
    /// Read every trusted device of the tenant.
    DevicesRead,
    /// Rename devices and revoke trust for any user.
    DevicesManage,
    /// Read every security event of the tenant.
    EventsRead,
    ThreatsRead,
    ThreatsWrite,
    IncidentsRead,
    IncidentsWrite,
    IncidentsAssign,
    IntelRead,
    IntelWrite,
    RateLimitsRead,
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 16] = [
        Permission::UsersRead,
        Permission::UsersManage,
        Permission::UsersRoles,
        Permission::SessionsRead,
        Permission::DevicesRead,
        Permission::DevicesManage,
        Permission::EventsRead,
        Permission::ThreatsRead,
        Permission::ThreatsWrite,
        Permission::IncidentsRead,
        Permission::IncidentsWrite,
        Permission::IncidentsAssign,
        Permission::IntelRead,
        Permission::IntelWrite,
        Permission::RateLimitsRead,
        Permission::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UsersRead => "users:read",
            Permission::UsersManage => "users:manage",
            Permission::UsersRoles => "users:roles",
            Permission::SessionsRead => "sessions:read",
            Permission::DevicesRead => "devices:read",
            Permission::DevicesManage => "devices:manage",
            Permission::EventsRead => "events:read",
            Permission::ThreatsRead => "threats:read",
            Permission::ThreatsWrite => "threats:write",
            Permission::IncidentsRead => "incidents:read",
            Permission::IncidentsWrite => "incidents:write",
            Permission::IncidentsAssign => "incidents:assign",
            Permission::IntelRead => "intel:read",
            Permission::IntelWrite => "intel:write",
            Permission::RateLimitsRead => "rate_limits:read",
            Permission::AuditRead => "audit:read",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// What a role grants before any extra permission strings.
pub fn role_permissions(role: Role) -> &'static [Permission] {
    use Permission::*;
    const OFFICER: &[Permission] = &[
        UsersRead,
        SessionsRead,
        DevicesRead,
        EventsRead,
        ThreatsRead,
        IncidentsRead,
        IntelRead,
    ];
    const MANAGER: &[Permission] = &[
        UsersRead,
        SessionsRead,
        DevicesRead,
        EventsRead,
        ThreatsRead,
        IncidentsRead,
        IntelRead,
        ThreatsWrite,
        IncidentsWrite,
        IncidentsAssign,
        IntelWrite,
        RateLimitsRead,
    ];
    const ADMIN: &[Permission] = &[
        UsersRead,
        SessionsRead,
        DevicesRead,
        EventsRead,
        ThreatsRead,
        IncidentsRead,
        IntelRead,
        ThreatsWrite,
        IncidentsWrite,
        IncidentsAssign,
        IntelWrite,
        RateLimitsRead,
        UsersManage,
        DevicesManage,
        AuditRead,
    ];
    match role {
        Role::Customer => &[],
        Role::Officer => OFFICER,
        Role::Manager => MANAGER,
        Role::Admin => ADMIN,
        Role::SuperAdmin => &Permission::ALL,
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    permissions: BTreeSet<Permission>,
    /// Signed in with an expired password: the only thing allowed is changing it
    /// (every other operation answers PASSWORD_EXPIRED).
    pub password_change_only: bool,
}

impl Principal {
    /// The role's permissions plus the user's extra ones (unknown strings are ignored:
    /// they grant nothing).
    pub fn new(tenant_id: Uuid, user_id: Uuid, session_id: Uuid, role: Role, extra: &[String]) -> Principal {
        let mut permissions: BTreeSet<Permission> = role_permissions(role).iter().copied().collect();
        permissions.extend(extra.iter().filter_map(|s| Permission::parse(s)));
        Principal {
            tenant_id,
            user_id,
            session_id,
            role,
            permissions,
            password_change_only: false,
        }
    }

    /// The same caller, confined to changing an expired password.
    pub fn confined_to_password_change(mut self) -> Principal {
        self.password_change_only = true;
        self
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Whether this caller may act on a user holding `target` role: only on users
    /// strictly below them, except that a super admin may act on anyone.
    pub fn outranks(&self, target: Role) -> bool {
        self.role == Role::SuperAdmin || self.role > target
    }

    pub fn permissions(&self) -> impl Iterator<Item = Permission> + '_ {
        self.permissions.iter().copied()
    }
}
