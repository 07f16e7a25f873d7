//! Small SQL helpers: one value as text, a count, a column of strings, statements that
//! must succeed, the tables RLS must cover, and the SQLSTATE of a refusal.

#![allow(dead_code)]

use std::fmt::Debug;

use api::db::errors::sqlstate;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// Runs one SQL statement and returns the first column of the first row as text.
pub async fn scalar<C: ConnectionTrait>(conn: &C, sql: &str) -> Option<String> {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("select ({sql})::text as v"),
        ))
        .await
        .expect(sql)?;
    row.try_get::<Option<String>>("", "v").expect("text column")
}

/// Runs a query that gives one number (a `count(*)`, say) and returns it.
pub async fn count<C: ConnectionTrait>(conn: &C, sql: &str) -> i64 {
    scalar(conn, sql)
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{sql} gave no number"))
}

/// Runs a query and returns its text column `v`, one string per row.
pub async fn strings<C: ConnectionTrait>(conn: &C, sql: &str) -> Vec<String> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_string()))
        .await
        .expect(sql)
        .into_iter()
        .map(|r| r.try_get::<String>("", "v").expect("text column v"))
        .collect()
}

/// Runs SQL that must succeed (unprepared, so it may hold several statements).
pub async fn exec<C: ConnectionTrait>(conn: &C, sql: &str) {
    conn.execute_unprepared(sql).await.expect(sql);
}

/// Tables of schema public that RLS must cover and the migrations create: relkind r or
/// p, all but seaql_migrations, by name.
pub async fn public_tables<C: ConnectionTrait>(conn: &C) -> Vec<String> {
    strings(
        conn,
        "select c.relname::text as v from pg_class c join pg_namespace n on n.oid = c.relnamespace \
          where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname <> 'seaql_migrations' \
          order by 1",
    )
    .await
}

/// Sets `app.tenant_id` to `value` for the current transaction only, the way a tenant
/// transaction does.
pub async fn set_tenant_setting<C: ConnectionTrait>(conn: &C, value: &str) {
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select set_config('app.tenant_id', $1, true)",
        [value.into()],
    ))
    .await
    .expect("set_config('app.tenant_id')");
}

/// Asserts that `result` is an error with SQLSTATE `code`, and returns the error.
pub fn expect_sqlstate<T: Debug>(result: Result<T, DbErr>, code: &str, what: &str) -> DbErr {
    let err = result.expect_err(&format!("{what}: expected SQLSTATE {code}"));
    assert_eq!(sqlstate(&err).as_deref(), Some(code), "{what}: {err}");
    err
}

/// Asserts that `result` is an error with SQLSTATE `code` whose message contains
/// `message_part`.
pub fn assert_sqlstate(result: Result<impl Debug, DbErr>, code: &str, message_part: &str) {
    let err = expect_sqlstate(result, code, &format!("SQLSTATE {code}"));
    assert!(
        err.to_string().contains(message_part),
        "{err:?} should mention {message_part:?}"
    );
}

/// The user's security events of `event_type`, oldest first, each row as JSON.
pub async fn user_events<C: ConnectionTrait>(
    conn: &C,
    user: uuid::Uuid,
    event_type: &str,
) -> Vec<serde_json::Value> {
    conn.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select to_jsonb(e)::text as j from security_events e \
          where user_id = $1 and event_type = $2 order by \"timestamp\", event_id",
        [user.into(), event_type.into()],
    ))
    .await
    .expect("security events")
    .into_iter()
    .map(|row| serde_json::from_str(&row.try_get::<String>("", "j").expect("j")).expect("json"))
    .collect()
}
