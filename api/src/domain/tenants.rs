//! The tenant registry.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use uuid::Uuid;

use super::{Actor, DomainError};
use crate::db::errors::is_unique_violation;

/// A tenant slug: lowercase letters, digits and inner hyphens, 1 to 63 characters (the
/// same rule as the `tenants_slug_format` check, said here to give a clear message).
pub fn validate_slug(slug: &str) -> Result<(), DomainError> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "tenant slug {slug:?} is invalid: use 1 to 63 lowercase letters, digits and inner hyphens"
        )))
    }
}

/// Registers a tenant and records it in the new tenant's audit chain. Runs as the owner,
/// inside a transaction scoped to the new tenant (so it also works where the owner is
/// subject to forced RLS).
pub async fn create_tenant(owner: &DatabaseConnection, slug: &str, name: &str) -> Result<Uuid, DomainError> {
    validate_slug(slug)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(DomainError::Invalid(
            "tenant name must be 1 to 255 characters".into(),
        ));
    }
    let tenant_id = Uuid::now_v7();
    let txn = owner.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select set_config('app.tenant_id', $1, true)",
        [tenant_id.to_string().into()],
    ))
    .await?;
    let inserted = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into tenants (tenant_id, slug, name) values ($1, $2, $3)",
            [tenant_id.into(), slug.into(), name.into()],
        ))
        .await;
    if let Err(e) = inserted {
        return Err(if is_unique_violation(&e) {
            DomainError::Conflict(format!("a tenant with slug {slug:?} already exists"))
        } else {
            e.into()
        });
    }
    let new_values = serde_json::json!({ "slug": slug, "name": name });
    Actor::cli(tenant_id)
        .audit(&txn, "tenant.create", "tenant", tenant_id, None, Some(new_values))
        .await?;
    txn.commit().await?;
    Ok(tenant_id)
}

/// The active tenant with this slug, if any, through the narrow resolver function (the
/// only cross-tenant read RLS allows). Login and the admin commands both use it.
pub async fn find_active_by_slug<C: ConnectionTrait>(
    conn: &C,
    slug: &str,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select ultracore_tenant_id_for_login($1) as tenant_id",
            [slug.into()],
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<Uuid>>("", "tenant_id").ok().flatten()))
}

/// Like [`find_active_by_slug`], for operators: an unknown slug is an error that says so.
pub async fn tenant_id_by_slug<C: ConnectionTrait>(conn: &C, slug: &str) -> Result<Uuid, DomainError> {
    find_active_by_slug(conn, slug)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("no active tenant has the slug {slug:?}")))
}

/// A tenant's authentication policy, from `tenants.settings` (README, "Tenant settings").
/// Missing or malformed keys take the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantPolicy {
    /// Failed sign-ins before the account locks (`lockout_threshold`, default 5).
    pub lockout_threshold: i64,
    /// Passwords expire this many days after they are set (`password_max_age_days`;
    /// default none: NIST SP 800-63B advises against forced rotation, but some banks'
    /// regulators still ask for it).
    pub password_max_age_days: Option<i64>,
    /// Anyone may create a customer account with `register` (`self_registration`,
    /// default false).
    pub self_registration: bool,
    /// A device the user trusted after MFA skips the second factor for this many days
    /// (`trusted_device_mfa_days`, default 0: every sign-in of an MFA user needs a code).
    pub trusted_device_mfa_days: i64,
    /// Failed sign-ins from one IP in a 15-minute window before that IP is refused
    /// (`login_failures_per_ip`, default 30; see auth::throttle).
    pub login_failures_per_ip: i64,
    /// Risk weights and thresholds (`risk`, see crate::risk::model).
    pub risk: crate::risk::model::RiskPolicy,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        TenantPolicy {
            lockout_threshold: crate::auth::login::DEFAULT_LOCKOUT_THRESHOLD,
            password_max_age_days: None,
            self_registration: false,
            trusted_device_mfa_days: 0,
            login_failures_per_ip: 30,
            risk: crate::risk::model::RiskPolicy::default(),
        }
    }
}

impl TenantPolicy {
    pub fn from_settings(settings: &serde_json::Value) -> TenantPolicy {
        let defaults = TenantPolicy::default();
        let positive = |key: &str| {
            settings
                .get(key)
                .and_then(serde_json::Value::as_i64)
                .filter(|n| *n > 0)
        };
        TenantPolicy {
            lockout_threshold: positive("lockout_threshold").unwrap_or(defaults.lockout_threshold),
            password_max_age_days: positive("password_max_age_days"),
            self_registration: settings
                .get("self_registration")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(defaults.self_registration),
            trusted_device_mfa_days: positive("trusted_device_mfa_days")
                .unwrap_or(defaults.trusted_device_mfa_days),
            login_failures_per_ip: positive("login_failures_per_ip")
                .unwrap_or(defaults.login_failures_per_ip),
            risk: crate::risk::model::RiskPolicy::from_settings(settings),
        }
    }

    /// When a password set now expires.
    pub fn password_expiry_from(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.password_max_age_days
            .map(|days| now + chrono::Duration::days(days.min(36_500)))
    }
}

/// The policy of the tenant whose transaction `conn` is in.
pub async fn policy<C: ConnectionTrait>(conn: &C, tenant_id: Uuid) -> Result<TenantPolicy, sea_orm::DbErr> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select settings from tenants where tenant_id = $1",
            [tenant_id.into()],
        ))
        .await?;
    let settings: serde_json::Value = match row {
        Some(row) => row.try_get("", "settings")?,
        None => serde_json::Value::Null,
    };
    Ok(TenantPolicy::from_settings(&settings))
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn settings_fill_the_policy_and_bad_values_fall_back_to_defaults() {
        let policy = TenantPolicy::from_settings(&serde_json::json!({
            "lockout_threshold": 8, "password_max_age_days": 90,
            "self_registration": true, "trusted_device_mfa_days": 30
        }));
        assert_eq!(policy.lockout_threshold, 8);
        assert_eq!(policy.password_max_age_days, Some(90));
        assert!(policy.self_registration);
        assert_eq!(policy.trusted_device_mfa_days, 30);
        let bad = TenantPolicy::from_settings(&serde_json::json!({
            "lockout_threshold": -1, "password_max_age_days": "ninety", "self_registration": "yes"
        }));
        assert_eq!(bad, TenantPolicy::default());
    }
}
