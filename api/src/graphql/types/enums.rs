//! GraphQL enums for the seed's enumerated columns. Each maps to the lowercase value the
//! database stores (and its CHECK constraint allows).

use async_graphql::Enum;

use super::super::errors::ApiError;

/// Conversion between a GraphQL enum and its stored text.
pub trait DbEnum: Sized + Copy + 'static {
    const ALL: &'static [Self];
    fn as_db(self) -> &'static str;

    fn from_db(value: &str) -> Result<Self, ApiError> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_db() == value)
            .ok_or_else(|| ApiError::internal(format!("unexpected stored value {value:?}")))
    }
}

macro_rules! db_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $db:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl DbEnum for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn as_db(self) -> &'static str {
                match self { $($name::$variant => $db),+ }
            }
        }
    };
}

db_enum!(
    /// How serious something is.
    Severity { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
);
db_enum!(
    /// How urgently an incident is worked.
    Priority { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
);
db_enum!(
    /// The role ladder: super admin > admin > manager > officer > customer.
    UserRole {
        SuperAdmin => "super_admin",
        Admin => "admin",
        Manager => "manager",
        Officer => "officer",
        Customer => "customer",
    }
);
db_enum!(
    EventCategory {
        Authentication => "authentication",
        Authorization => "authorization",
        Account => "account",
        Session => "session",
        Threat => "threat",
        Incident => "incident",
        RateLimit => "rate_limit",
    }
);
db_enum!(
    /// What the gateway did about an event.
    ActionTaken { Allow => "allow", Deny => "deny", Challenge => "challenge", Block => "block", Lock => "lock" }
);
db_enum!(
    ThreatStatus {
        Detected => "detected",
        Investigating => "investigating",
        Mitigated => "mitigated",
        Resolved => "resolved",
    }
);
db_enum!(
    DetectionMethod { MlModel => "ml_model", RuleBased => "rule_based", Manual => "manual" }
);
db_enum!(
    ResponseStatus { Pending => "pending", Executed => "executed", Failed => "failed" }
);
db_enum!(
    IncidentStatus { Open => "open", Investigating => "investigating", Resolved => "resolved", Closed => "closed" }
);
db_enum!(
    IndicatorType { Ip => "ip", Domain => "domain", Email => "email", Hash => "hash" }
);
db_enum!(
    DeviceType { Mobile => "mobile", Desktop => "desktop", Tablet => "tablet", Other => "other" }
);
db_enum!(
    TenantStatus { Active => "active", Suspended => "suspended" }
);

impl From<crate::auth::roles::Role> for UserRole {
    fn from(role: crate::auth::roles::Role) -> Self {
        use crate::auth::roles::Role;
        match role {
            Role::SuperAdmin => UserRole::SuperAdmin,
            Role::Admin => UserRole::Admin,
            Role::Manager => UserRole::Manager,
            Role::Officer => UserRole::Officer,
            Role::Customer => UserRole::Customer,
        }
    }
}

impl From<UserRole> for crate::auth::roles::Role {
    fn from(role: UserRole) -> Self {
        use crate::auth::roles::Role;
        match role {
            UserRole::SuperAdmin => Role::SuperAdmin,
            UserRole::Admin => Role::Admin,
            UserRole::Manager => Role::Manager,
            UserRole::Officer => Role::Officer,
            UserRole::Customer => Role::Customer,
        }
    }
}

/// Stored text of a list of enum values, for `IN` filters.
pub fn db_values<T: DbEnum>(values: &[T]) -> Vec<&'static str> {
    values.iter().map(|v| v.as_db()).collect()
}
