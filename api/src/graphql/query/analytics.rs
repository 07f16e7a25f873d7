//! Dashboard analytics: security events and threats counted per time bucket, optionally
//! per severity, category, type or status.
//!
//! Each field is one grouped SELECT on the operation's transaction, so RLS confines it to
//! the caller's tenant. Buckets are aligned in UTC with `date_bin` (origin 2000-01-01
//! 00:00 UTC), whatever the session time zone; a bucket with no rows is omitted. Security
//! event counts use `idx_security_events_tenant`, which carries severity, category and
//! type as INCLUDE columns (migration 0017), so they are index-only scans: a tenant's 24
//! hours read a few hundred index pages and no heap page.

use async_graphql::{Context, Enum, InputObject, InputType, Object, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};

use super::super::context::request;
use super::super::errors::{ApiError, ApiResult};
use super::super::filters::check_in;
use super::super::guards::{Scope, require};
use super::super::types::enums::{DbEnum, EventCategory, Severity, ThreatStatus, db_values};
use crate::auth::permissions::Permission;

/// Most (bucket, key) rows one count answers; beyond it the caller narrows the question.
pub const MAX_COUNT_ROWS: usize = 10_000;
/// Longest range of HOUR buckets, in days.
pub const MAX_HOUR_RANGE_DAYS: i64 = 31;
/// Longest range of DAY buckets (and of totals), in days.
pub const MAX_DAY_RANGE_DAYS: i64 = 400;

/// The width of a count's time buckets (aligned in UTC).
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum TimeBucket {
    Hour,
    Day,
}

impl TimeBucket {
    fn interval(self) -> &'static str {
        match self {
            TimeBucket::Hour => "1 hour",
            TimeBucket::Day => "1 day",
        }
    }

    fn max_days(self) -> i64 {
        match self {
            TimeBucket::Hour => MAX_HOUR_RANGE_DAYS,
            TimeBucket::Day => MAX_DAY_RANGE_DAYS,
        }
    }
}

/// What security event counts are split by.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventGroup {
    Severity,
    Category,
    Type,
}

/// What threat counts are split by.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ThreatGroup {
    Severity,
    Type,
    Status,
}

/// Which security events to count.
#[derive(InputObject, Default)]
pub struct EventCountFilter {
    pub severities: Option<Vec<Severity>>,
    pub categories: Option<Vec<EventCategory>>,
    pub event_types: Option<Vec<String>>,
}

/// Which threats to count.
#[derive(InputObject, Default)]
pub struct ThreatCountFilter {
    pub severities: Option<Vec<Severity>>,
    pub statuses: Option<Vec<ThreatStatus>>,
    pub threat_types: Option<Vec<String>>,
}

/// The rows of one time bucket (and one key, when grouped).
#[derive(SimpleObject, Debug, Clone)]
pub struct BucketCount {
    /// Start of the bucket, in UTC (its end is the next bucket's start).
    pub bucket_start: DateTime<Utc>,
    /// The group: an enum value's name (`HIGH`, `AUTHENTICATION`, `DETECTED`) or the
    /// stored type text (`login_failure`); null without `groupBy`.
    pub key: Option<String>,
    pub count: i32,
}

/// The rows of one key over a whole range.
#[derive(SimpleObject, Debug, Clone)]
pub struct KeyCount {
    /// An enum value's name (`HIGH`, `AUTHENTICATION`).
    pub key: String,
    pub count: i32,
}

/// Security events of a range by severity and by category.
#[derive(SimpleObject, Debug, Clone)]
pub struct SecurityEventTotals {
    /// Every severity, lowest first, zeros included.
    pub by_severity: Vec<KeyCount>,
    /// Every category, in the enum's order, zeros included.
    pub by_category: Vec<KeyCount>,
}

/// A statement under construction: SQL text and its bind values.
struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn new() -> Sql {
        Sql {
            text: String::new(),
            values: vec![],
        }
    }

    /// The placeholder of `value`, bound.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    /// Appends ` and {column} = any($n)` for a non-empty list.
    fn any(&mut self, column: &str, values: Vec<String>) {
        let p = self.bind(values);
        self.text.push_str(&format!(" and {column} = any({p}::text[])"));
    }

    fn statement(self) -> Statement {
        Statement::from_sql_and_values(DbBackend::Postgres, self.text, self.values)
    }
}

/// `to` after `from`, at most `max_days` apart.
fn check_range(from: DateTime<Utc>, to: DateTime<Utc>, max_days: i64, what: &str) -> Result<(), ApiError> {
    if to <= from {
        return Err(ApiError::BadUserInput("`to` must be after `from`".into()));
    }
    if to - from > Duration::days(max_days) {
        return Err(ApiError::BadUserInput(format!("{what} at most {max_days} days")));
    }
    Ok(())
}

fn range_what(bucket: TimeBucket) -> &'static str {
    match bucket {
        TimeBucket::Hour => "a range of HOUR buckets (use DAY for longer ones) spans",
        TimeBucket::Day => "a range of DAY buckets spans",
    }
}

/// The GraphQL name of a stored enum value (`high` → `HIGH`).
fn enum_name<T: DbEnum + InputType>(stored: &str) -> Result<String, ApiError> {
    match T::from_db(stored)?.to_value() {
        async_graphql::Value::Enum(name) => Ok(name.to_string()),
        other => Err(ApiError::internal(format!("enum value {other} is not a name"))),
    }
}

fn to_count(n: i64) -> Result<i32, ApiError> {
    i32::try_from(n).map_err(|_| ApiError::internal(format!("count {n} exceeds Int")))
}

fn column<T: sea_orm::TryGetable>(row: &QueryResult, name: &str) -> Result<T, ApiError> {
    row.try_get::<T>("", name).map_err(ApiError::from)
}

/// Runs a count with a plan made for its own range. Queries otherwise run on generic
/// plans (`db::tenant`), which suit the lists; but a generic plan cannot know how many rows
/// a range holds, estimates a handful, and sorts them to group where a plan for the range
/// hashes: on the full bench dataset (~16,000 events in the biggest tenant's 24 hours)
/// the generic plans cost PostgreSQL 6.6 ms per analytics request against 5.2 ms.
/// `set_config(..., true)` lasts until the operation's transaction ends: one round trip.
async fn query_planned_for_its_range(ctx: &Context<'_>, statement: Statement) -> ApiResult<Vec<QueryResult>> {
    let db = request(ctx).db()?;
    db.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        "select set_config('plan_cache_mode', 'force_custom_plan', true)",
    ))
    .await
    .map_err(ApiError::from)?;
    Ok(db.query_all_raw(statement).await.map_err(ApiError::from)?)
}

/// Runs a bucketed count whose rows are (bucket_start, key, count), naming keys with
/// `name_key`.
async fn bucket_counts(
    ctx: &Context<'_>,
    statement: Statement,
    name_key: impl Fn(&str) -> Result<String, ApiError>,
) -> ApiResult<Vec<BucketCount>> {
    let rows = query_planned_for_its_range(ctx, statement).await?;
    if rows.len() > MAX_COUNT_ROWS {
        return Err(ApiError::BadUserInput(format!(
            "more than {MAX_COUNT_ROWS} (bucket, key) counts: use DAY buckets, a shorter range or a filter"
        ))
        .into());
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let key: Option<String> = column(row, "key")?;
        out.push(BucketCount {
            bucket_start: column(row, "bucket_start")?,
            key: key.as_deref().map(&name_key).transpose()?,
            count: to_count(column(row, "count")?)?,
        });
    }
    Ok(out)
}

/// `select date_bin(...) as bucket_start, <key> as key, count(*)` over `table`'s rows in
/// [from, to); the caller appends conditions, then [`finish_bucketed`].
fn bucketed(
    table: &str,
    time_column: &str,
    key_column: Option<&str>,
    bucket: TimeBucket,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Sql {
    let mut sql = Sql::new();
    let (from, to) = (sql.bind(from), sql.bind(to));
    sql.text = format!(
        "select date_bin(interval '{interval}', {time_column}, timestamptz '2000-01-01 00:00:00+00') \
                as bucket_start, {key} as key, count(*) as count \
         from {table} where {time_column} >= {from} and {time_column} < {to}",
        interval = bucket.interval(),
        // "C": keys sort by their bytes, whatever the database's collation (and faster).
        key = key_column.map_or("null::text".to_string(), |k| format!("{k}::text collate \"C\"")),
    );
    sql
}

fn finish_bucketed(sql: &mut Sql) {
    // One row more than allowed tells "too many" from "exactly the limit".
    sql.text.push_str(&format!(
        " group by 1, 2 order by 1, 2 limit {}",
        MAX_COUNT_ROWS + 1
    ));
}

/// Conditions shared by security event counts and totals: the caller's scope (customers
/// count their own events, like `securityEvents`) and the filter.
fn event_conditions(sql: &mut Sql, scope: Scope, filter: EventCountFilter) -> Result<(), ApiError> {
    if let Scope::Own(me) = scope {
        let p = sql.bind(me);
        sql.text.push_str(&format!(" and user_id = {p}"));
    }
    if let Some(list) = filter.severities {
        check_in(&list, "severities")?;
        sql.any("severity", strings(&list));
    }
    if let Some(list) = filter.categories {
        check_in(&list, "categories")?;
        sql.any("event_category", strings(&list));
    }
    if let Some(list) = filter.event_types {
        check_in(&list, "eventTypes")?;
        sql.any("event_type", list);
    }
    Ok(())
}

fn strings<T: DbEnum>(values: &[T]) -> Vec<String> {
    db_values(values).into_iter().map(str::to_string).collect()
}

/// Every value of `T` with its count in `counts` (stored text → count), zeros included.
fn every_key<T: DbEnum + InputType>(counts: &[(String, i64)]) -> Result<Vec<KeyCount>, ApiError> {
    T::ALL
        .iter()
        .map(|v| {
            let n = counts
                .iter()
                .filter(|(k, _)| k == v.as_db())
                .map(|(_, n)| *n)
                .sum();
            Ok(KeyCount {
                key: enum_name::<T>(v.as_db())?,
                count: to_count(n)?,
            })
        })
        .collect()
}

/// The statement of `securityEventCounts` (public so tests can EXPLAIN exactly it).
pub fn event_counts_statement(
    scope: Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: TimeBucket,
    group_by: Option<EventGroup>,
    filter: EventCountFilter,
) -> Result<Statement, ApiError> {
    let key_column = group_by.map(|g| match g {
        EventGroup::Severity => "severity",
        EventGroup::Category => "event_category",
        EventGroup::Type => "event_type",
    });
    let mut sql = bucketed("security_events", "\"timestamp\"", key_column, bucket, from, to);
    event_conditions(&mut sql, scope, filter)?;
    finish_bucketed(&mut sql);
    Ok(sql.statement())
}

/// The statement of `threatCounts`.
pub fn threat_counts_statement(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: TimeBucket,
    group_by: Option<ThreatGroup>,
    filter: ThreatCountFilter,
) -> Result<Statement, ApiError> {
    let key_column = group_by.map(|g| match g {
        ThreatGroup::Severity => "severity",
        ThreatGroup::Type => "threat_type",
        ThreatGroup::Status => "status",
    });
    let mut sql = bucketed("threat_events", "detected_at", key_column, bucket, from, to);
    if let Some(list) = filter.severities {
        check_in(&list, "severities")?;
        sql.any("severity", strings(&list));
    }
    if let Some(list) = filter.statuses {
        check_in(&list, "statuses")?;
        sql.any("status", strings(&list));
    }
    if let Some(list) = filter.threat_types {
        check_in(&list, "threatTypes")?;
        sql.any("threat_type", list);
    }
    finish_bucketed(&mut sql);
    Ok(sql.statement())
}

/// The statement of `securityEventTotals`: one pass, two grouping sets.
pub fn event_totals_statement(
    scope: Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: EventCountFilter,
) -> Result<Statement, ApiError> {
    let mut sql = Sql::new();
    let (p_from, p_to) = (sql.bind(from), sql.bind(to));
    sql.text = format!(
        "select grouping(severity) = 0 as by_severity, \
                coalesce(severity, event_category)::text as key, count(*) as count \
         from security_events where \"timestamp\" >= {p_from} and \"timestamp\" < {p_to}"
    );
    event_conditions(&mut sql, scope, filter)?;
    sql.text
        .push_str(" group by grouping sets ((severity), (event_category))");
    Ok(sql.statement())
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Security events in [from, to) counted per UTC time bucket, optionally per severity,
    /// category or type (events:read; without it, the caller's own events). Buckets
    /// without events are omitted; the first and last bucket count only the part inside
    /// the range. Ordered by bucket, then key; at most 10,000 entries. HOUR spans at most
    /// 31 days, DAY at most 400.
    async fn security_event_counts(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: TimeBucket,
        group_by: Option<EventGroup>,
        filter: Option<EventCountFilter>,
    ) -> ApiResult<Vec<BucketCount>> {
        let scope = Scope::own_or(request(ctx).principal()?, Permission::EventsRead);
        check_range(from, to, bucket.max_days(), range_what(bucket))?;
        let statement =
            event_counts_statement(scope, from, to, bucket, group_by, filter.unwrap_or_default())?;
        bucket_counts(ctx, statement, |stored| match group_by {
            Some(EventGroup::Severity) => enum_name::<Severity>(stored),
            Some(EventGroup::Category) => enum_name::<EventCategory>(stored),
            _ => Ok(stored.to_string()),
        })
        .await
    }

    /// Threats detected in [from, to) counted per UTC time bucket, optionally per
    /// severity, type or status (threats:read). Same rules as `securityEventCounts`.
    async fn threat_counts(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: TimeBucket,
        group_by: Option<ThreatGroup>,
        filter: Option<ThreatCountFilter>,
    ) -> ApiResult<Vec<BucketCount>> {
        require(request(ctx).principal()?, Permission::ThreatsRead)?;
        check_range(from, to, bucket.max_days(), range_what(bucket))?;
        let statement = threat_counts_statement(from, to, bucket, group_by, filter.unwrap_or_default())?;
        bucket_counts(ctx, statement, |stored| match group_by {
            Some(ThreatGroup::Severity) => enum_name::<Severity>(stored),
            Some(ThreatGroup::Status) => enum_name::<ThreatStatus>(stored),
            _ => Ok(stored.to_string()),
        })
        .await
    }

    /// Security events in [from, to) by severity and by category, in one statement
    /// (events:read; without it, the caller's own). At most 400 days.
    async fn security_event_totals(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: Option<EventCountFilter>,
    ) -> ApiResult<SecurityEventTotals> {
        let scope = Scope::own_or(request(ctx).principal()?, Permission::EventsRead);
        check_range(from, to, MAX_DAY_RANGE_DAYS, "a totals range spans")?;
        let statement = event_totals_statement(scope, from, to, filter.unwrap_or_default())?;
        let rows = query_planned_for_its_range(ctx, statement).await?;
        let (mut severities, mut categories) = (vec![], vec![]);
        for row in &rows {
            let entry = (column::<String>(row, "key")?, column::<i64>(row, "count")?);
            if column::<bool>(row, "by_severity")? {
                severities.push(entry);
            } else {
                categories.push(entry);
            }
        }
        Ok(SecurityEventTotals {
            by_severity: every_key::<Severity>(&severities)?,
            by_category: every_key::<EventCategory>(&categories)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let t = Utc::now();
        assert!(check_range(t, t, 31, "x").is_err());
        assert!(check_range(t, t - Duration::hours(1), 31, "x").is_err());
        assert!(check_range(t, t + Duration::days(31), 31, "x").is_ok());
        assert!(check_range(t, t + Duration::days(31) + Duration::seconds(1), 31, "x").is_err());
    }

    #[test]
    fn enum_names() {
        assert_eq!(enum_name::<Severity>("high").unwrap(), "HIGH");
        assert_eq!(enum_name::<EventCategory>("rate_limit").unwrap(), "RATE_LIMIT");
        assert_eq!(enum_name::<ThreatStatus>("detected").unwrap(), "DETECTED");
        assert!(enum_name::<Severity>("bogus").is_err());
    }
}
