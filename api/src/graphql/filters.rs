//! Building blocks of list filters: time and score ranges, text search, CIDR match.
//! Every value reaches SQL as a bind parameter.

use async_graphql::InputObject;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ColumnTrait, Condition};

use super::errors::ApiError;
use super::scalars::Cidr;

/// Most values accepted in one `IN` filter.
pub const MAX_IN_VALUES: usize = 100;
/// Longest text accepted in a `contains` filter.
pub const MAX_SEARCH_CHARS: usize = 200;

/// A half-open time window: `from` inclusive, `to` exclusive.
#[derive(InputObject, Debug, Clone, Default)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// An inclusive range of scores.
#[derive(InputObject, Debug, Clone, Default)]
pub struct ScoreRange {
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
}

/// Adds a time window on `column`.
pub fn time_range<C: ColumnTrait>(
    cond: Condition,
    column: C,
    range: &Option<TimeRange>,
) -> Result<Condition, ApiError> {
    let Some(range) = range else { return Ok(cond) };
    if let (Some(from), Some(to)) = (range.from, range.to)
        && from > to
    {
        return Err(ApiError::BadUserInput(
            "a time range's from is after its to".into(),
        ));
    }
    let mut cond = cond;
    if let Some(from) = range.from {
        cond = cond.add(column.gte(from));
    }
    if let Some(to) = range.to {
        cond = cond.add(column.lt(to));
    }
    Ok(cond)
}

/// Adds a score range on `column`, whose values lie in `0..=upper` (100 for risk, trust
/// and confidence, 1 for fraud and anomaly probabilities).
pub fn score_range<C: ColumnTrait>(
    cond: Condition,
    column: C,
    range: &Option<ScoreRange>,
    upper: Decimal,
) -> Result<Condition, ApiError> {
    let Some(range) = range else { return Ok(cond) };
    for v in [range.min, range.max].into_iter().flatten() {
        check_score(v, upper)?;
    }
    if let (Some(min), Some(max)) = (range.min, range.max)
        && min > max
    {
        return Err(ApiError::BadUserInput(
            "a score range's min is above its max".into(),
        ));
    }
    let mut cond = cond;
    if let Some(min) = range.min {
        cond = cond.add(column.gte(min));
    }
    if let Some(max) = range.max {
        cond = cond.add(column.lte(max));
    }
    Ok(cond)
}

/// A score must lie in `0..=upper` with at most two decimals (numeric(5,2)).
pub fn check_score(value: Decimal, upper: Decimal) -> Result<Decimal, ApiError> {
    if value < Decimal::ZERO || value > upper || value.scale() > 2 && value.round_dp(2) != value {
        return Err(ApiError::BadUserInput(format!(
            "a score must lie between 0 and {upper} with at most 2 decimals"
        )));
    }
    Ok(value)
}

/// Case-insensitive "contains" on a text column, with LIKE wildcards escaped.
pub fn contains(column_sql: &'static str, needle: &str) -> Result<SimpleExpr, ApiError> {
    if needle.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::BadUserInput(format!(
            "search text is limited to {MAX_SEARCH_CHARS} characters"
        )));
    }
    let escaped = needle
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Ok(Expr::cust_with_values(
        format!("{column_sql} ilike $1 escape '\\'"),
        [format!("%{escaped}%")],
    ))
}

/// An inet column inside a network (or equal to an address).
pub fn in_network(column_sql: &'static str, network: &Cidr) -> SimpleExpr {
    Expr::cust_with_values(format!("{column_sql} <<= $1::inet"), [network.0.to_string()])
}

/// Checks the length of an `IN` list.
pub fn check_in<T>(values: &[T], name: &str) -> Result<(), ApiError> {
    if values.is_empty() || values.len() > MAX_IN_VALUES {
        return Err(ApiError::BadUserInput(format!(
            "{name} takes 1 to {MAX_IN_VALUES} values"
        )));
    }
    Ok(())
}
