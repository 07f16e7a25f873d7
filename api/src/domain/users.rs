//! User accounts.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use super::DomainError;
use crate::audit::{self, AuditEntry};
use crate::auth::password::{self, PasswordOwner};
use crate::auth::roles::Role;
use crate::db::errors::{is_unique_violation, violated_constraint};

/// What it takes to create a user. The password is plain text only until it is hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub role: Role,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
}

fn validate_identity(user: &NewUser) -> Result<(), DomainError> {
    let username = user.username.as_str();
    if username.is_empty() || username.chars().count() > 255 {
        return Err(DomainError::Invalid(
            "username must be 1 to 255 characters".into(),
        ));
    }
    if username.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::Invalid(
            "username must not contain spaces or control characters".into(),
        ));
    }
    let email = user.email.as_str();
    let shape_ok = email.chars().count() <= 255
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if !shape_ok {
        return Err(DomainError::Invalid(format!("{email:?} is not an email address")));
    }
    for (field, value, max) in [
        ("first name", &user.first_name, 100),
        ("last name", &user.last_name, 100),
        ("phone number", &user.phone_number, 50),
    ] {
        if let Some(v) = value
            && (v.chars().count() > max || v.chars().any(char::is_control))
        {
            return Err(DomainError::Invalid(format!(
                "{field} must be at most {max} printable characters"
            )));
        }
    }
    Ok(())
}

/// Creates a user in the tenant of `txn` (a tenant transaction), hashing the password
/// off the async runtime and recording the creation in the audit log on the same
/// transaction. `actor` is the user who did it (None for the operator's CLI).
pub async fn create_user<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    actor: Option<Uuid>,
    user: NewUser,
) -> Result<Uuid, DomainError> {
    validate_identity(&user)?;
    password::check_policy(
        &user.password,
        &PasswordOwner {
            username: &user.username,
            email: &user.email,
            first_name: user.first_name.as_deref(),
            last_name: user.last_name.as_deref(),
        },
    )?;
    let password_hash = password::hash_password(user.password).await?;
    let user_id = Uuid::now_v7();
    let inserted = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into users (user_id, tenant_id, username, email, password_hash, role, \
                                first_name, last_name, phone_number) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                user_id.into(),
                tenant_id.into(),
                user.username.clone().into(),
                user.email.clone().into(),
                password_hash.into(),
                user.role.as_str().into(),
                user.first_name.clone().into(),
                user.last_name.clone().into(),
                user.phone_number.clone().into(),
            ],
        ))
        .await;
    if let Err(e) = inserted {
        // Uniqueness is per tenant, so this names a clash inside the caller's own tenant.
        return Err(match violated_constraint(&e).as_deref() {
            Some("idx_users_username") => DomainError::Conflict(format!(
                "a user named {:?} already exists in this tenant",
                user.username
            )),
            Some("idx_users_email") => DomainError::Conflict(format!(
                "the email {:?} is already used in this tenant",
                user.email
            )),
            _ if is_unique_violation(&e) => DomainError::Conflict("the user already exists".into()),
            _ => e.into(),
        });
    }
    audit::record(
        txn,
        tenant_id,
        AuditEntry {
            user_id: actor,
            action: "user.create".into(),
            entity_type: "user".into(),
            entity_id: Some(user_id),
            new_values: Some(serde_json::json!({
                "username": user.username,
                "email": user.email,
                "role": user.role.as_str(),
                "first_name": user.first_name,
                "last_name": user.last_name,
                "phone_number": user.phone_number,
            })),
            user_agent: actor.is_none().then(|| "ultracore-cli".to_string()),
            ..Default::default()
        },
    )
    .await?;
    Ok(user_id)
}
