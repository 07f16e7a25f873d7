//! User accounts: creation (CLI and API) and the changes an operator of a bank makes.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, DomainError};
use crate::auth::password::{self, PasswordOwner};
use crate::auth::permissions::{Permission, Principal};
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
    pub permissions: Vec<String>,
}

fn check_text(field: &str, value: &Option<String>, max: usize) -> Result<(), DomainError> {
    if let Some(v) = value
        && (v.chars().count() > max || v.chars().any(char::is_control))
    {
        return Err(DomainError::Invalid(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), DomainError> {
    let shape_ok = email.chars().count() <= 255
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if shape_ok {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!("{email:?} is not an email address")))
    }
}

fn check_permissions(permissions: &[String]) -> Result<(), DomainError> {
    if permissions.len() > Permission::ALL.len() {
        return Err(DomainError::Invalid("too many permission strings".into()));
    }
    match permissions.iter().find(|p| Permission::parse(p).is_none()) {
        Some(unknown) => Err(DomainError::Invalid(format!("unknown permission {unknown:?}"))),
        None => Ok(()),
    }
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
    // Sign-in accepts a username or an email: a username shaped like an email could
    // capture someone else's sign-in by address.
    if username.contains('@') {
        return Err(DomainError::Invalid("username must not contain '@'".into()));
    }
    check_email(&user.email)?;
    check_text("first name", &user.first_name, 100)?;
    check_text("last name", &user.last_name, 100)?;
    check_text("phone number", &user.phone_number, 50)?;
    check_permissions(&user.permissions)
}

/// The audited view of a user: everything but secrets.
pub fn snapshot(user: &users::Model) -> serde_json::Value {
    json!({
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone_number": user.phone_number,
        "role": user.role,
        "permissions": user.permissions,
        "is_active": user.is_active,
        "is_locked": user.is_locked,
        "locked_until": user.locked_until,
    })
}

fn clash(err: sea_orm::DbErr, username: &str, email: &str) -> DomainError {
    // Uniqueness is per tenant, so this names a clash inside the caller's own tenant.
    match violated_constraint(&err).as_deref() {
        Some("idx_users_username") => {
            DomainError::Conflict(format!("a user named {username:?} already exists in this tenant"))
        }
        Some("idx_users_email") => {
            DomainError::Conflict(format!("the email {email:?} is already used in this tenant"))
        }
        _ if is_unique_violation(&err) => DomainError::Conflict("the user already exists".into()),
        _ => err.into(),
    }
}

/// Creates a user in the actor's tenant (the caller has checked who may), hashing the
/// password off the async runtime and auditing on the same transaction.
pub async fn create_user<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    user: NewUser,
) -> Result<users::Model, DomainError> {
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
    let password_hash = password::hash_password(user.password.clone()).await?;
    let policy = super::tenants::policy(txn, actor.tenant_id).await?;
    let user_id = Uuid::now_v7();
    let inserted = users::ActiveModel {
        user_id: Set(user_id),
        tenant_id: Set(actor.tenant_id),
        username: Set(user.username.clone()),
        email: Set(user.email.clone()),
        password_hash: Set(password_hash),
        role: Set(user.role.as_str().to_string()),
        permissions: Set(user.permissions.clone()),
        first_name: Set(user.first_name.clone()),
        last_name: Set(user.last_name.clone()),
        phone_number: Set(user.phone_number.clone()),
        password_expires_at: Set(policy.password_expiry_from(chrono::Utc::now())),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(|e| clash(e, &user.username, &user.email))?;
    actor
        .audit(
            txn,
            "user.create",
            "user",
            user_id,
            None,
            Some(snapshot(&inserted)),
        )
        .await?;
    Ok(inserted)
}

/// The user with `id`, locked for update. NOT_FOUND for ids of other tenants (RLS hides
/// them) and for users the caller may not see (without users:read, only oneself): an
/// unseen user and a missing one answer alike.
async fn lock_user<C: ConnectionTrait>(
    txn: &C,
    by: &Principal,
    id: Uuid,
) -> Result<users::Model, DomainError> {
    let user = users::Entity::find_by_id(id).lock_exclusive().one(txn).await?;
    match user {
        Some(u) if by.user_id == id || by.can(Permission::UsersRead) => Ok(u),
        _ => Err(DomainError::NotFound("no such user".into())),
    }
}

fn role_of(user: &users::Model) -> Result<Role, DomainError> {
    user.role
        .parse()
        .map_err(|_| DomainError::Invalid(format!("stored role {:?} is unknown", user.role)))
}

/// Users may be managed only by someone who outranks them, and never by themselves
/// (no self-promotion, no self-lock-out of the last admin by accident).
fn check_manage(by: &Principal, target: &users::Model) -> Result<(), DomainError> {
    if by.user_id == target.user_id || !by.can(Permission::UsersManage) || !by.outranks(role_of(target)?) {
        return Err(DomainError::Forbidden);
    }
    Ok(())
}

/// Ends every session of a user (role change, lock, deactivation: ASVS 7.4.2).
async fn revoke_sessions<C: ConnectionTrait>(txn: &C, user_id: Uuid) -> Result<u64, DomainError> {
    Ok(crate::auth::sessions::revoke_user_sessions(txn, user_id, None).await?)
}

/// Profile fields a user (or their manager) may change.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
}

pub async fn update_profile<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
    change: ProfileChange,
) -> Result<users::Model, DomainError> {
    let user = lock_user(txn, by, id).await?;
    if by.user_id != id {
        check_manage(by, &user)?;
    }
    if let Some(email) = &change.email {
        check_email(email)?;
    }
    check_text("first name", &change.first_name, 100)?;
    check_text("last name", &change.last_name, 100)?;
    check_text("phone number", &change.phone_number, 50)?;
    let old = snapshot(&user);
    let mut active: users::ActiveModel = user.clone().into();
    if let Some(email) = change.email {
        // A new address is unverified until confirmed again.
        active.is_verified = Set(email.eq_ignore_ascii_case(&user.email) && user.is_verified);
        active.email = Set(email);
    }
    if let Some(v) = change.first_name {
        active.first_name = Set(Some(v).filter(|s| !s.is_empty()));
    }
    if let Some(v) = change.last_name {
        active.last_name = Set(Some(v).filter(|s| !s.is_empty()));
    }
    if let Some(v) = change.phone_number {
        active.phone_number = Set(Some(v).filter(|s| !s.is_empty()));
    }
    let email_changed = updated_email_differs(&active, &user);
    let updated = active
        .update(txn)
        .await
        .map_err(|e| clash(e, &user.username, "the new email"))?;
    if email_changed {
        // Links already mailed went to the old address: none may verify the new one or
        // reset the password any more.
        crate::auth::account_tokens::revoke_all(txn, id).await?;
    }
    actor
        .audit(
            txn,
            "user.update_profile",
            "user",
            id,
            Some(old),
            Some(snapshot(&updated)),
        )
        .await?;
    Ok(updated)
}

fn updated_email_differs(active: &users::ActiveModel, before: &users::Model) -> bool {
    match &active.email {
        sea_orm::ActiveValue::Set(email) => !email.eq_ignore_ascii_case(&before.email),
        _ => false,
    }
}

/// Changes role and extra permissions (users:roles). The caller must outrank both the
/// current and the new role, and only grant permission strings they hold themselves.
pub async fn change_role<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
    role: Role,
    permissions: Vec<String>,
) -> Result<users::Model, DomainError> {
    let user = lock_user(txn, by, id).await?;
    if by.user_id == id
        || !by.can(Permission::UsersRoles)
        || !by.outranks(role_of(&user)?)
        || !by.outranks(role)
    {
        return Err(DomainError::Forbidden);
    }
    check_permissions(&permissions)?;
    if permissions
        .iter()
        .filter_map(|p| Permission::parse(p))
        .any(|p| !by.can(p))
    {
        return Err(DomainError::Forbidden);
    }
    let old = snapshot(&user);
    let mut active: users::ActiveModel = user.into();
    active.role = Set(role.as_str().to_string());
    active.permissions = Set(permissions);
    let updated = active.update(txn).await?;
    let revoked = revoke_sessions(txn, id).await?;
    let mut new = snapshot(&updated);
    new["sessions_revoked"] = json!(revoked);
    actor
        .audit(txn, "user.change_role", "user", id, Some(old), Some(new))
        .await?;
    Ok(updated)
}

/// Locks an account (until a time, or until unlocked) and ends its sessions.
pub async fn lock<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
    until: Option<DateTime<Utc>>,
    reason: Option<String>,
) -> Result<users::Model, DomainError> {
    let user = lock_user(txn, by, id).await?;
    check_manage(by, &user)?;
    check_text("reason", &reason, 500)?;
    if until.is_some_and(|t| t <= Utc::now()) {
        return Err(DomainError::Invalid("a lock must end in the future".into()));
    }
    let old = snapshot(&user);
    let mut active: users::ActiveModel = user.into();
    active.is_locked = Set(true);
    active.locked_until = Set(until);
    let updated = active.update(txn).await?;
    let revoked = revoke_sessions(txn, id).await?;
    let mut new = snapshot(&updated);
    new["reason"] = json!(reason);
    new["sessions_revoked"] = json!(revoked);
    actor
        .audit(txn, "user.lock", "user", id, Some(old), Some(new))
        .await?;
    Ok(updated)
}

pub async fn unlock<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
) -> Result<users::Model, DomainError> {
    let user = lock_user(txn, by, id).await?;
    check_manage(by, &user)?;
    let old = snapshot(&user);
    let mut active: users::ActiveModel = user.into();
    active.is_locked = Set(false);
    active.locked_until = Set(None);
    active.failed_login_attempts = Set(0);
    let updated = active.update(txn).await?;
    // The risk engine counts an account's failures from its last success or unlock.
    crate::security::events::record(
        txn,
        crate::security::events::NewSecurityEvent {
            tenant_id: updated.tenant_id,
            user_id: Some(id),
            event_type: "account_unlocked",
            category: "account",
            severity: "low",
            action: "allow",
            description: "an administrator unlocked the account",
            ip: actor.ip.clone(),
            user_agent: actor.user_agent.clone(),
            ..Default::default()
        },
    )
    .await?;
    actor
        .audit(
            txn,
            "user.unlock",
            "user",
            id,
            Some(old),
            Some(snapshot(&updated)),
        )
        .await?;
    Ok(updated)
}

/// Deactivates an account (it can no longer sign in) and ends its sessions. Users are
/// never deleted: their audit trail must keep pointing at them.
pub async fn deactivate<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
) -> Result<users::Model, DomainError> {
    let user = lock_user(txn, by, id).await?;
    check_manage(by, &user)?;
    let old = snapshot(&user);
    let mut active: users::ActiveModel = user.into();
    active.is_active = Set(false);
    let updated = active.update(txn).await?;
    let revoked = revoke_sessions(txn, id).await?;
    let mut new = snapshot(&updated);
    new["sessions_revoked"] = json!(revoked);
    actor
        .audit(txn, "user.deactivate", "user", id, Some(old), Some(new))
        .await?;
    Ok(updated)
}

/// Whether every id is a user of the current tenant (ids of other tenants are invisible
/// and so count as unknown).
pub async fn all_exist<C: ConnectionTrait>(txn: &C, ids: &[Uuid]) -> Result<bool, DomainError> {
    if ids.is_empty() {
        return Ok(true);
    }
    let found = users::Entity::find()
        .filter(users::Column::UserId.is_in(ids.iter().copied()))
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .into_tuple::<i64>()
        .one(txn)
        .await?
        .unwrap_or(0);
    let mut distinct = ids.to_vec();
    distinct.sort();
    distinct.dedup();
    Ok(found == distinct.len() as i64)
}
