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
