//! Running a filtered, ordered, paginated list query and fetching one row by id.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PartialModelTrait, QueryFilter, QueryTrait,
    Select,
};
use uuid::Uuid;

use super::connection::{PagedConnection, TotalCount};
use super::errors::{ApiError, ApiResult};
use super::pagination::{Ordering, PageArgs, SortKey, into_page, keyset_select};

/// Raw paging arguments, as every list field takes them.
pub struct Paging {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl Paging {
    /// The checked page arguments for a list whose cursors carry `tag`.
    fn args(self, tag: &str) -> Result<PageArgs, crate::graphql::errors::ApiError> {
        PageArgs::new(self.first, self.after, self.last, self.before, tag)
    }
}

/// One page of `select` (already filtered and scoped) in `ordering`, as a connection.
pub async fn page<E, P, C>(
    db: &C,
    select: Select<E>,
    ordering: Ordering<E>,
    paging: Paging,
    wrap: fn(E::Model) -> P::Node,
) -> ApiResult<P>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    P: PagedConnection,
    C: ConnectionTrait,
{
    let args = paging.args(&ordering.tag)?;
    let count = TotalCount::Query(Box::new(select.clone().into_query()));
    let rows = keyset_select(select, &ordering, &args)
        .all(db)
        .await
        .map_err(ApiError::from)?;
    let page = into_page(rows, &ordering.tag, ordering.key_of, &args);
    Ok(P::assemble(page.map(wrap), count))
}

/// One row by id within `select`'s scope, or None (also for ids of other tenants, which
/// RLS hides: a foreign id looks exactly like a missing one).
pub async fn by_id<E, C>(
    db: &C,
    select: Select<E>,
    id_column: E::Column,
    id: Uuid,
) -> ApiResult<Option<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    Ok(select
        .filter(id_column.eq(id))
        .one(db)
        .await
        .map_err(ApiError::from)?)
}

/// [`page`], reading only the columns of the partial model `R` (`key_of` reads its sort
/// key and id, which `R` must have).
pub async fn page_as<E, R, P, C>(
    db: &C,
    select: Select<E>,
    ordering: Ordering<E>,
    key_of: fn(&R) -> (SortKey, Uuid),
    paging: Paging,
    wrap: fn(R) -> P::Node,
) -> ApiResult<P>
where
    E: EntityTrait,
    R: PartialModelTrait + FromQueryResult + Send + Sync,
    P: PagedConnection,
    C: ConnectionTrait,
{
    let args = paging.args(&ordering.tag)?;
    let count = TotalCount::Query(Box::new(select.clone().into_query()));
    let rows = keyset_select(select, &ordering, &args)
        .into_partial_model::<R>()
        .all(db)
        .await
        .map_err(ApiError::from)?;
    let page = into_page(rows, &ordering.tag, key_of, &args);
    Ok(P::assemble(page.map(wrap), count))
}

/// [`by_id`], reading only the columns of the partial model `R`.
pub async fn by_id_as<E, R, C>(
    db: &C,
    select: Select<E>,
    id_column: E::Column,
    id: Uuid,
) -> ApiResult<Option<R>>
where
    E: EntityTrait,
    R: PartialModelTrait + FromQueryResult,
    C: ConnectionTrait,
{
    Ok(select
        .filter(id_column.eq(id))
        .into_partial_model::<R>()
        .one(db)
        .await
        .map_err(ApiError::from)?)
}
