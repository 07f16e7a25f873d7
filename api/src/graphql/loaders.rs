//! Loaders: every relation is fetched for all parents of a page in one statement, so
//! the number of statements does not grow with page size (no N+1). The loaders
//! implement async-graphql's `Loader` trait and are driven by [`Batcher`].
//!
//! Loaders are built per operation around the operation's tenant transaction (RLS
//! applies to everything they read) and dropped with it; none is stored on the schema.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use async_graphql::Context;
use async_graphql::dataloader::Loader;
use entity::{audit_log, refresh_tokens, security_events, threat_events, trusted_devices, users};
use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef, PgFunc, SimpleExpr};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, PartialModelTrait,
    QueryFilter, Statement, Value,
};
use uuid::Uuid;

use super::batcher::Batcher;
use super::errors::ApiError;
use super::pagination::{Cursor, PageArgs, SortKey};
use super::types::users::{UserBrief, UserRow};

type LoadError = async_graphql::Error;

fn no_transaction() -> LoadError {
    ApiError::unauthenticated().into()
}

/// Subscriptions deliver rows without a transaction per subscriber (that would cost one
/// per subscriber per event): related rows are fetched with a query by id instead.
fn not_in_subscriptions() -> LoadError {
    ApiError::BadUserInput("related rows cannot be selected in a subscription; query the entity by id".into())
        .into()
}

/// The operation's loaders. A subscription has none (see [`not_in_subscriptions`]):
/// nine batchers are ~1.9 KB, held by every subscriber for as long as it stays subscribed
/// (heaptrack at 3,000 subscribers), to answer an error.
pub fn of<'a>(ctx: &Context<'a>) -> Result<&'a Loaders, LoadError> {
    ctx.data_opt::<Loaders>().ok_or_else(not_in_subscriptions)
}

fn db_error(e: sea_orm::DbErr) -> LoadError {
    ApiError::from(e).into()
}

/// Rows of one table by primary key.
pub struct ByIdLoader<E> {
    txn: Option<Arc<DatabaseTransaction>>,
    missing: fn() -> LoadError,
    _entity: PhantomData<E>,
}

/// Tables whose rows the by-id loader fetches.
pub trait LoadById: EntityTrait {
    fn id_column() -> Self::Column;
    fn id_of(model: &Self::Model) -> Uuid;
}

impl<E> Loader<Uuid> for ByIdLoader<E>
where
    E: LoadById + Send + Sync + 'static,
    E::Model: Send + Sync + Clone + 'static,
{
    type Value = E::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, E::Model>, LoadError> {
        let txn = self.txn.as_ref().ok_or_else(self.missing)?;
        let rows = E::find()
            .filter(any_of(E::id_column(), keys))
            .all(txn.as_ref())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(|m| (E::id_of(&m), m)).collect())
    }
}

/// `column = any($1)` with the keys as one array parameter: one statement text (and one
/// prepared statement and plan) whatever the number of keys, where `IN ($1, .., $n)`
/// made one per batch size.
fn any_of(column: impl IntoColumnRef, keys: &[Uuid]) -> SimpleExpr {
    Expr::col(column).eq(PgFunc::any(Expr::val(keys.to_vec())))
}

/// Users by id, reading only the columns of `R`: [`UserBrief`] when the selection asks
/// for nothing beyond it, else [`UserRow`]; never the secrets. Rows are shared (`Arc`),
/// not copied, with every field that asked for them.
pub struct UserLoader<R> {
    txn: Option<Arc<DatabaseTransaction>>,
    missing: fn() -> LoadError,
    _row: PhantomData<R>,
}

/// The user column sets a [`UserLoader`] reads.
pub trait UserColumns: PartialModelTrait + FromQueryResult + Send + Sync + 'static {
    fn id(&self) -> Uuid;
}

impl UserColumns for UserRow {
    fn id(&self) -> Uuid {
        self.user_id
    }
}

impl UserColumns for UserBrief {
    fn id(&self) -> Uuid {
        self.user_id
    }
}

impl<R: UserColumns> Loader<Uuid> for UserLoader<R> {
    type Value = Arc<R>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Arc<R>>, LoadError> {
        let txn = self.txn.as_ref().ok_or_else(self.missing)?;
        let rows = users::Entity::find()
            .filter(any_of(users::Column::UserId, keys))
            .into_partial_model::<R>()
            .all(txn.as_ref())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(|r| (r.id(), Arc::new(r))).collect())
    }
}

macro_rules! load_by_id {
    ($module:ident, $column:ident, $field:ident) => {
        impl LoadById for $module::Entity {
            fn id_column() -> Self::Column {
                $module::Column::$column
            }
            fn id_of(model: &Self::Model) -> Uuid {
                model.$field
            }
        }
    };
}

load_by_id!(threat_events, ThreatId, threat_id);
load_by_id!(security_events, EventId, event_id);

/// The per-user lists reachable from a User.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserList {
    SecurityEvents,
    Sessions,
    TrustedDevices,
    AuditLog,
    /// Counted only (User.backupCodesRemaining): the codes are never listed.
    UnusedBackupCodes,
}

impl UserList {
    /// (table, sort column, id column): constants, never client input.
    fn sql_names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            UserList::SecurityEvents => ("security_events", "\"timestamp\"", "event_id"),
            UserList::Sessions => ("refresh_tokens", "created_at", "token_id"),
            UserList::TrustedDevices => ("trusted_devices", "last_seen_at", "device_id"),
            UserList::AuditLog => ("audit_log", "\"timestamp\"", "audit_id"),
            UserList::UnusedBackupCodes => ("mfa_backup_codes", "created_at", "code_id"),
        }
    }

    /// Which rows of the table belong to the list (SQL over the table's own columns).
    fn row_condition(self) -> Option<&'static str> {
        match self {
            UserList::UnusedBackupCodes => Some("used_at is null"),
            // One row per session: the family's current token, not the ones it replaced.
            UserList::Sessions => Some("replaced_by is null"),
            _ => None,
        }
    }

    /// The cursor tag of the list (newest first).
    pub fn order_tag(self) -> &'static str {
        match self {
            UserList::SecurityEvents => "USER_EVENTS_DESC",
            UserList::Sessions => "USER_SESSIONS_DESC",
            UserList::TrustedDevices => "USER_DEVICES_DESC",
            UserList::AuditLog => "USER_AUDIT_DESC",
            UserList::UnusedBackupCodes => "USER_BACKUP_CODES",
        }
    }
}

/// One page of one user's list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserPageKey {
    pub user_id: Uuid,
    pub args: PageArgs,
}

/// A per-user list whose rows the lateral loader can read.
pub trait UserOwned: EntityTrait {
    const LIST: UserList;
    fn user_of(model: &Self::Model) -> Option<Uuid>;
    fn key_of(model: &Self::Model) -> (SortKey, Uuid);
}

impl UserOwned for security_events::Entity {
    const LIST: UserList = UserList::SecurityEvents;
    fn user_of(m: &Self::Model) -> Option<Uuid> {
        m.user_id
    }
    fn key_of(m: &Self::Model) -> (SortKey, Uuid) {
        (SortKey::Time(m.timestamp), m.event_id)
    }
}

impl UserOwned for refresh_tokens::Entity {
    const LIST: UserList = UserList::Sessions;
    fn user_of(m: &Self::Model) -> Option<Uuid> {
        Some(m.user_id)
    }
    fn key_of(m: &Self::Model) -> (SortKey, Uuid) {
        (SortKey::Time(m.created_at), m.token_id)
    }
}

impl UserOwned for trusted_devices::Entity {
    const LIST: UserList = UserList::TrustedDevices;
    fn user_of(m: &Self::Model) -> Option<Uuid> {
        Some(m.user_id)
    }
    fn key_of(m: &Self::Model) -> (SortKey, Uuid) {
        (SortKey::Time(m.last_seen_at), m.device_id)
    }
}

impl UserOwned for audit_log::Entity {
    const LIST: UserList = UserList::AuditLog;
    fn user_of(m: &Self::Model) -> Option<Uuid> {
        m.user_id
    }
    fn key_of(m: &Self::Model) -> (SortKey, Uuid) {
        (SortKey::Time(m.timestamp), m.audit_id)
    }
}

/// Pages of a per-user list for many users in one statement: a LATERAL join runs the
/// keyset query once per user inside PostgreSQL, each on the (tenant, user, key) index.
pub struct UserPageLoader<E> {
    txn: Option<Arc<DatabaseTransaction>>,
    missing: fn() -> LoadError,
    _entity: PhantomData<E>,
}

impl<E> Loader<UserPageKey> for UserPageLoader<E>
where
    E: UserOwned + Send + Sync + 'static,
    E::Model: FromQueryResult + Send + Sync + Clone + 'static,
{
    type Value = Vec<E::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[UserPageKey]) -> Result<HashMap<UserPageKey, Vec<E::Model>>, LoadError> {
        let txn = self.txn.as_ref().ok_or_else(self.missing)?;
        // Keys asking for the same page shape share one statement.
        let mut by_args: HashMap<&PageArgs, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_args.entry(&key.args).or_default().push(key.user_id);
        }
        let mut result = HashMap::new();
        for (args, user_ids) in by_args {
            let rows = E::find()
                .from_raw_sql(lateral_page_sql(E::LIST, &user_ids, args))
                .all(txn.as_ref())
                .await
                .map_err(db_error)?;
            let mut grouped: HashMap<Uuid, Vec<E::Model>> = HashMap::new();
            for row in rows {
                if let Some(user) = E::user_of(&row) {
                    grouped.entry(user).or_default().push(row);
                }
            }
            for user_id in user_ids {
                let rows = grouped.remove(&user_id).unwrap_or_default();
                result.insert(
                    UserPageKey {
                        user_id,
                        args: args.clone(),
                    },
                    rows,
                );
            }
        }
        Ok(result)
    }
}

fn lateral_page_sql(list: UserList, user_ids: &[Uuid], args: &PageArgs) -> Statement {
    let (table, sort, id) = list.sql_names();
    let belongs = list
        .row_condition()
        .map(|c| format!("and x.{c}"))
        .unwrap_or_default();
    // These lists are newest first; paging backwards reads them oldest first.
    let descending = !args.backward;
    let (cmp, dir) = if descending { ("<", "desc") } else { (">", "asc") };
    let mut values: Vec<Value> = vec![user_ids.to_vec().into()];
    let keyset = match &args.cursor {
        Some(Cursor {
            key: SortKey::Time(t),
            id: cursor_id,
            ..
        }) => {
            values.push((*t).into());
            values.push((*cursor_id).into());
            format!("and (x.{sort}, x.{id}) {cmp} ($2, $3)")
        }
        _ => String::new(),
    };
    values.push(((args.size + 1) as i64).into());
    let limit = values.len();
    let sql = format!(
        "select t.* from unnest($1::uuid[]) as p(parent_id) cross join lateral ( \
           select x.* from {table} x where x.user_id = p.parent_id {belongs} {keyset} \
           order by x.{sort} {dir}, x.{id} {dir} limit ${limit}) t"
    );
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Which per-user list to count, for whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListCountKey {
    pub list: UserList,
    pub user_id: Uuid,
}

/// `totalCount` of per-user lists, for all users of a page in one grouped COUNT.
pub struct ListCountLoader {
    txn: Option<Arc<DatabaseTransaction>>,
    missing: fn() -> LoadError,
}

impl Loader<ListCountKey> for ListCountLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[ListCountKey]) -> Result<HashMap<ListCountKey, i64>, LoadError> {
        let txn = self.txn.as_ref().ok_or_else(self.missing)?;
        let mut by_list: HashMap<UserList, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_list.entry(key.list).or_default().push(key.user_id);
        }
        let mut result = HashMap::new();
        for (list, user_ids) in by_list {
            let (table, _, _) = list.sql_names();
            let extra = list
                .row_condition()
                .map(|c| format!("and {c}"))
                .unwrap_or_default();
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    format!(
                        "select user_id, count(*) as n from {table} where user_id = any($1) {extra} group by user_id"
                    ),
                    [user_ids.clone().into()],
                ))
                .await
                .map_err(db_error)?;
            for user_id in &user_ids {
                result.insert(
                    ListCountKey {
                        list,
                        user_id: *user_id,
                    },
                    0,
                );
            }
            for row in rows {
                let user_id: Uuid = row.try_get("", "user_id").map_err(db_error)?;
                let n: i64 = row.try_get("", "n").map_err(db_error)?;
                result.insert(ListCountKey { list, user_id }, n);
            }
        }
        Ok(result)
    }
}

/// The loaders of one operation.
pub struct Loaders {
    /// Users with every served column (a selection beyond `User::BRIEF_FIELDS`).
    pub users: Batcher<Uuid, UserLoader<UserRow>>,
    /// Users with the brief columns only.
    pub user_briefs: Batcher<Uuid, UserLoader<UserBrief>>,
    pub threats: Batcher<Uuid, ByIdLoader<threat_events::Entity>>,
    pub events: Batcher<Uuid, ByIdLoader<security_events::Entity>>,
    pub user_events: Batcher<UserPageKey, UserPageLoader<security_events::Entity>>,
    pub user_sessions: Batcher<UserPageKey, UserPageLoader<refresh_tokens::Entity>>,
    pub user_devices: Batcher<UserPageKey, UserPageLoader<trusted_devices::Entity>>,
    pub user_audit: Batcher<UserPageKey, UserPageLoader<audit_log::Entity>>,
    pub list_counts: Batcher<ListCountKey, ListCountLoader>,
}

impl Loaders {
    pub fn new(txn: Option<Arc<DatabaseTransaction>>) -> Loaders {
        Loaders::build(txn, no_transaction)
    }

    fn build(txn: Option<Arc<DatabaseTransaction>>, missing: fn() -> LoadError) -> Loaders {
        fn by_id<E>(
            txn: &Option<Arc<DatabaseTransaction>>,
            missing: fn() -> LoadError,
        ) -> Batcher<Uuid, ByIdLoader<E>>
        where
            E: LoadById + Send + Sync + 'static,
            E::Model: Send + Sync + Clone + 'static,
        {
            Batcher::new(ByIdLoader {
                txn: txn.clone(),
                missing,
                _entity: PhantomData,
            })
        }
        fn pages<E>(
            txn: &Option<Arc<DatabaseTransaction>>,
            missing: fn() -> LoadError,
        ) -> Batcher<UserPageKey, UserPageLoader<E>>
        where
            E: UserOwned + Send + Sync + 'static,
            E::Model: FromQueryResult + Send + Sync + Clone + 'static,
        {
            Batcher::new(UserPageLoader {
                txn: txn.clone(),
                missing,
                _entity: PhantomData,
            })
        }
        fn users<R: UserColumns>(
            txn: &Option<Arc<DatabaseTransaction>>,
            missing: fn() -> LoadError,
        ) -> Batcher<Uuid, UserLoader<R>> {
            Batcher::new(UserLoader {
                txn: txn.clone(),
                missing,
                _row: PhantomData,
            })
        }
        Loaders {
            users: users(&txn, missing),
            user_briefs: users(&txn, missing),
            threats: by_id(&txn, missing),
            events: by_id(&txn, missing),
            user_events: pages(&txn, missing),
            user_sessions: pages(&txn, missing),
            user_devices: pages(&txn, missing),
            user_audit: pages(&txn, missing),
            list_counts: Batcher::new(ListCountLoader { txn, missing }),
        }
    }
}
