//! Relay connections over keyset pagination.
//!
//! Every list is ordered by a sort key plus the row id (unique, so the order is total),
//! and a cursor holds the last row's key. The next page is `WHERE (key, id) < (k, i)`
//! (or `>` ascending) on an index that starts with the tenant and ends with the key and
//! id: page 500 costs what page 1 costs, unlike OFFSET.
//!
//! Cursors are opaque to clients (base64url) but tagged with the list's order, so a
//! cursor from one order cannot be replayed against another.

use async_graphql::{Enum, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef, SimpleExpr};
use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select};
use uuid::Uuid;

use super::errors::ApiError;

/// Page size when the client gives none.
pub const DEFAULT_PAGE: u64 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE: u64 = 100;

/// The complexity of a list field: its page size times the complexity of one row, so a
/// client cannot ask for 100 × 100 × 100 nested rows within the complexity limit.
pub fn page_complexity(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let size = first
        .or(last)
        .map_or(DEFAULT_PAGE, |n| n.clamp(0, MAX_PAGE as i32) as u64) as usize;
    size.max(1).saturating_mul(child_complexity).saturating_add(1)
}

/// Sort direction of a list.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortDirection {
    Asc,
    Desc,
}

/// The value of a row's sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SortKey {
    Time(DateTime<Utc>),
    Text(String),
}

impl SortKey {
    fn encode(&self) -> String {
        match self {
            SortKey::Time(t) => format!("t{}", t.timestamp_micros()),
            SortKey::Text(s) => format!("s{s}"),
        }
    }

    fn decode(text: &str) -> Option<SortKey> {
        let (kind, rest) = text.split_at_checked(1)?;
        match kind {
            "t" => DateTime::from_timestamp_micros(rest.parse().ok()?).map(SortKey::Time),
            "s" => Some(SortKey::Text(rest.to_string())),
            _ => None,
        }
    }

    fn to_expr(&self) -> SimpleExpr {
        match self {
            SortKey::Time(t) => Expr::val(*t),
            SortKey::Text(s) => Expr::val(s.clone()),
        }
    }
}

/// A decoded cursor: which order it belongs to, and the last row's key and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub order: String,
    pub key: SortKey,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1|{}|{}|{}", self.order, self.id, self.key.encode()))
    }

    pub fn decode(text: &str, order: &str) -> Result<Cursor, ApiError> {
        let invalid = || ApiError::BadUserInput("invalid cursor".into());
        if text.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = plain.splitn(4, '|');
        let (Some("v1"), Some(tag), Some(id), Some(key)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if tag != order {
            return Err(ApiError::BadUserInput(
                "the cursor belongs to another list order".into(),
            ));
        }
        Ok(Cursor {
            order: tag.to_string(),
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
            key: SortKey::decode(key).ok_or_else(invalid)?,
        })
    }
}

/// The client's paging arguments, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageArgs {
    /// Rows wanted.
    pub size: u64,
    /// Paging backwards (`last`/`before`).
    pub backward: bool,
    /// The row to continue after (forward) or before (backward).
    pub cursor: Option<Cursor>,
}

impl PageArgs {
    /// Validates `first/after/last/before` for a list ordered by `order`.
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order: &str,
    ) -> Result<PageArgs, ApiError> {
        let size = |n: i32, name: &str| {
            if (0..=MAX_PAGE as i32).contains(&n) {
                Ok(n as u64)
            } else {
                Err(ApiError::BadUserInput(format!(
                    "{name} must be between 0 and {MAX_PAGE}"
                )))
            }
        };
        if first.is_some() && last.is_some() {
            return Err(ApiError::BadUserInput("give first or last, not both".into()));
        }
        if after.is_some() && before.is_some() {
            return Err(ApiError::BadUserInput("give after or before, not both".into()));
        }
        let backward = last.is_some() || (before.is_some() && first.is_none());
        if backward && after.is_some() {
            return Err(ApiError::BadUserInput(
                "after goes with first, before with last".into(),
            ));
        }
        if !backward && before.is_some() {
            return Err(ApiError::BadUserInput(
                "after goes with first, before with last".into(),
            ));
        }
        let size = match (first, last) {
            (Some(n), _) => size(n, "first")?,
            (_, Some(n)) => size(n, "last")?,
            _ => DEFAULT_PAGE,
        };
        let cursor = after.or(before).map(|c| Cursor::decode(&c, order)).transpose()?;
        Ok(PageArgs {
            size,
            backward,
            cursor,
        })
    }
}

/// How one list is ordered: a sort column, the id column, and how to read a row's key.
pub struct Ordering<E: EntityTrait> {
    /// Tag stored in cursors.
    pub tag: String,
    pub sort: E::Column,
    pub id: E::Column,
    pub direction: SortDirection,
    pub key_of: fn(&E::Model) -> (SortKey, Uuid),
}

impl<E: EntityTrait> Ordering<E> {
    /// A list ordered by `sort`, then `id`; its cursors are tagged `<name>_DESC` or
    /// `<name>_ASC`.
    pub fn new(
        name: &str,
        descending: bool,
        sort: E::Column,
        id: E::Column,
        key_of: fn(&E::Model) -> (SortKey, Uuid),
    ) -> Self {
        let (suffix, direction) = if descending {
            ("DESC", SortDirection::Desc)
        } else {
            ("ASC", SortDirection::Asc)
        };
        Ordering {
            tag: format!("{name}_{suffix}"),
            sort,
            id,
            direction,
            key_of,
        }
    }
}

/// Relay's page info.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// One page of rows with their cursors, in list order.
pub struct Page<M> {
    pub rows: Vec<(String, M)>,
    pub info: PageInfo,
}

impl<M> Page<M> {
    pub fn map<N>(self, f: impl Fn(M) -> N) -> Page<N> {
        Page {
            rows: self.rows.into_iter().map(|(c, m)| (c, f(m))).collect(),
            info: self.info,
        }
    }
}

/// Applies the keyset condition and order to `select`, fetching one row more than asked
/// to learn whether another page exists.
pub fn keyset_select<E: EntityTrait>(select: Select<E>, ordering: &Ordering<E>, args: &PageArgs) -> Select<E>
where
    E::Column: ColumnTrait,
{
    // Walking backwards reads the list in reverse, then flips the rows.
    let descending = (ordering.direction == SortDirection::Desc) != args.backward;
    let mut select = select;
    if let Some(cursor) = &args.cursor {
        let lhs = Expr::tuple([
            Expr::col(ordering.sort.into_column_ref()),
            Expr::col(ordering.id.into_column_ref()),
        ]);
        let rhs = Expr::tuple([cursor.key.to_expr(), Expr::val(cursor.id)]);
        select = select.filter(if descending { lhs.lt(rhs) } else { lhs.gt(rhs) });
    }
    let order = if descending { Order::Desc } else { Order::Asc };
    select
        .order_by(ordering.sort, order.clone())
        .order_by(ordering.id, order)
        .limit(args.size + 1)
}

/// Turns rows fetched one past the page size (by [`keyset_select`] or a loader) into a
/// page: cursors from `key_of`, tagged with the list's order.
pub fn into_page<M>(
    mut rows: Vec<M>,
    tag: &str,
    key_of: impl Fn(&M) -> (SortKey, Uuid),
    args: &PageArgs,
) -> Page<M> {
    let more = rows.len() as u64 > args.size;
    rows.truncate(args.size as usize);
    if args.backward {
        rows.reverse();
    }
    let rows: Vec<(String, M)> = rows
        .into_iter()
        .map(|m| {
            let (key, id) = key_of(&m);
            (
                Cursor {
                    order: tag.to_string(),
                    key,
                    id,
                }
                .encode(),
                m,
            )
        })
        .collect();
    let info = PageInfo {
        has_next_page: if args.backward {
            args.cursor.is_some()
        } else {
            more
        },
        has_previous_page: if args.backward {
            more
        } else {
            args.cursor.is_some()
        },
        start_cursor: rows.first().map(|(c, _)| c.clone()),
        end_cursor: rows.last().map(|(c, _)| c.clone()),
    };
    Page { rows, info }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering_and_other_orders() {
        let cursor = Cursor {
            order: "TIMESTAMP_DESC".into(),
            key: SortKey::Time(DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time")),
            id: Uuid::now_v7(),
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, "TIMESTAMP_DESC").expect("decodes"), cursor);
        assert!(Cursor::decode(&text, "TIMESTAMP_ASC").is_err());
        assert!(Cursor::decode("not-a-cursor", "TIMESTAMP_DESC").is_err());
        assert!(
            Cursor::decode(
                &URL_SAFE_NO_PAD.encode("v1|TIMESTAMP_DESC|x|t1"),
                "TIMESTAMP_DESC"
            )
            .is_err()
        );
    }

    #[test]
    fn page_arguments_are_validated() {
        assert_eq!(
            PageArgs::new(None, None, None, None, "X").expect("defaults").size,
            DEFAULT_PAGE
        );
        assert!(PageArgs::new(Some(101), None, None, None, "X").is_err());
        assert!(PageArgs::new(Some(-1), None, None, None, "X").is_err());
        assert!(PageArgs::new(Some(1), None, Some(1), None, "X").is_err());
        assert!(PageArgs::new(Some(5), None, None, None, "X").is_ok_and(|a| !a.backward));
        assert!(PageArgs::new(None, None, Some(5), None, "X").is_ok_and(|a| a.backward));
    }
}
