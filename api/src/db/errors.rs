//! Reading PostgreSQL's structured error fields out of a SeaORM error, so callers branch
//! on SQLSTATE and constraint names, never on message text.

use sea_orm::{DbErr, RuntimeErr};

/// The driver's database error, when the failure came from PostgreSQL itself.
fn database_error(err: &DbErr) -> Option<&(dyn sqlx::error::DatabaseError + 'static)> {
    match err {
        DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::Database(db) => Some(db.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    database_error(err).and_then(|e| e.code()).map(|c| c.into_owned())
}

/// The constraint a statement violated (unique, foreign key, check), by name.
pub fn violated_constraint(err: &DbErr) -> Option<String> {
    database_error(err)
        .and_then(|e| e.constraint())
        .map(str::to_owned)
}

/// SQLSTATE 23505.
pub fn is_unique_violation(err: &DbErr) -> bool {
    sqlstate(err).as_deref() == Some("23505")
}
