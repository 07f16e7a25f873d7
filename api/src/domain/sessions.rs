//! Ending sessions on request: one's own, or (users:manage) those of users one outranks.

use entity::{refresh_tokens, users};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, DomainError};
use crate::auth::permissions::{Permission, Principal};
use crate::auth::roles::Role;
use crate::auth::sessions::{revoke_family, revoke_user_sessions};

/// Ends the session that `id` (any token of it) belongs to. Sessions the caller may not
/// end answer NOT_FOUND, like missing ones.
pub async fn revoke_session<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    id: Uuid,
) -> Result<refresh_tokens::Model, DomainError> {
    let not_found = || DomainError::NotFound("no such session".into());
    let token = refresh_tokens::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or_else(not_found)?;
    if token.user_id != by.user_id {
        let owner = users::Entity::find_by_id(token.user_id)
            .one(txn)
            .await?
            .ok_or_else(not_found)?;
        let owner_role: Role = owner.role.parse().map_err(|_| not_found())?;
        if !by.can(Permission::SessionsRead) {
            return Err(not_found());
        }
        if !by.can(Permission::UsersManage) || !by.outranks(owner_role) {
            return Err(DomainError::Forbidden);
        }
    }
    let revoked = revoke_family(txn, token.family_id).await?;
    let new_values = json!({ "user_id": token.user_id, "tokens_revoked": revoked });
    actor
        .audit(
            txn,
            "session.revoke",
            "session",
            token.family_id,
            None,
            Some(new_values),
        )
        .await?;
    let current = refresh_tokens::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or_else(not_found)?;
    Ok(current)
}

/// Ends all of the caller's sessions, or all but the current one; returns how many
/// tokens were revoked.
pub async fn revoke_all_mine<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    by: &Principal,
    keep_current: bool,
) -> Result<u64, DomainError> {
    let keep = keep_current.then_some(by.session_id);
    let revoked = revoke_user_sessions(txn, by.user_id, keep).await?;
    let new_values = json!({ "kept_current": keep_current, "tokens_revoked": revoked });
    actor
        .audit(
            txn,
            "session.revoke_all",
            "user",
            by.user_id,
            None,
            Some(new_values),
        )
        .await?;
    Ok(revoked)
}

/// Ends the caller's current session (logout).
pub async fn logout<C: ConnectionTrait>(txn: &C, actor: &Actor, by: &Principal) -> Result<u64, DomainError> {
    let revoked = revoke_family(txn, by.session_id).await?;
    actor
        .audit(
            txn,
            "session.logout",
            "session",
            by.session_id,
            None,
            Some(json!({ "tokens_revoked": revoked })),
        )
        .await?;
    Ok(revoked)
}
