//! Prometheus metrics (the `metrics` facade, rendered by `metrics-exporter-prometheus` at
//! `GET /metrics`). One recorder per process, installed by the first gateway.
//!
//! Labels are bounded: operation names are kept only when short and plain, and at most
//! [`MAX_OPERATION_NAMES`] distinct ones are labelled before the rest become `other`, so
//! a client inventing names cannot grow the series without bound.
//!
//! Traces go to an OpenTelemetry collector when built with the `otlp` feature ([`otlp`]).

#[cfg(feature = "otlp")]
pub mod otlp;

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::DatabaseConnection;

/// Distinct operation names labelled before the rest are counted as `other`.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Latency buckets in seconds: from a cached `me` to a slow report.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static OPERATION_NAMES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();

/// Installs the process's recorder (once); None when another recorder was installed
/// first (then /metrics answers 503).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "ultracore_graphql_operations_total",
        "GraphQL operations by kind, name and outcome"
    );
    describe_histogram!(
        "ultracore_graphql_operation_duration_seconds",
        "GraphQL operation latency by kind and outcome"
    );
    describe_histogram!(
        "ultracore_db_transaction_duration_seconds",
        "time an operation's tenant transaction was open"
    );
    describe_gauge!(
        "ultracore_db_pool_connections",
        "serving pool connections by state, and operations waiting for one"
    );
    describe_histogram!(
        "ultracore_db_acquire_seconds",
        "time to get a pooled connection and begin an operation's transaction"
    );
    describe_gauge!("ultracore_websocket_connections", "open WebSocket connections");
    describe_gauge!("ultracore_subscriptions_active", "running subscriptions");
    describe_counter!("ultracore_logins_total", "sign-ins by outcome");
    describe_counter!("ultracore_lockouts_total", "accounts locked by failed sign-ins");
    describe_counter!(
        "ultracore_rate_limited_total",
        "requests refused by the rate limiter, by kind"
    );
    describe_counter!(
        "ultracore_threats_detected_total",
        "threat events raised by the detectors, by type"
    );
    describe_counter!(
        "ultracore_notifications_total",
        "notification deliveries by outcome"
    );
    describe_counter!(
        "ultracore_http_requests_total",
        "HTTP requests by route and status class"
    );
}

/// The text exposition, with the pool gauges read now.
pub fn render(db: &DatabaseConnection) -> Option<String> {
    let handle = install()?;
    let pool = db.get_postgres_connection_pool();
    let size = pool.size() as f64;
    let idle = pool.num_idle() as f64;
    metrics::gauge!("ultracore_db_pool_connections", "state" => "in_use").set((size - idle).max(0.0));
    metrics::gauge!("ultracore_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("ultracore_db_pool_connections", "state" => "max")
        .set(f64::from(pool.options().get_max_connections()));
    metrics::gauge!("ultracore_db_pool_connections", "state" => "waiting")
        .set(crate::db::tenant::waiting_for_connection() as f64);
    handle.run_upkeep();
    Some(handle.render())
}

/// The label for an operation name: the name when short and plain and among the first
/// [`MAX_OPERATION_NAMES`], `anonymous` without one, `other` otherwise.
pub fn operation_label(name: Option<&str>) -> String {
    let Some(name) = name else {
        return "anonymous".into();
    };
    let plain =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return "other".into();
    }
    let names = OPERATION_NAMES.get_or_init(|| Mutex::new(HashSet::new()));
    let mut names = names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if names.contains(name) || names.len() < MAX_OPERATION_NAMES {
        names.insert(name.to_string());
        name.to_string()
    } else {
        "other".into()
    }
}

/// Counts one GraphQL operation and its latency.
pub fn operation(kind: &'static str, name: Option<&str>, outcome: &str, elapsed: Duration) {
    metrics::counter!(
        "ultracore_graphql_operations_total",
        "kind" => kind,
        "operation" => operation_label(name),
        "outcome" => outcome.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "ultracore_graphql_operation_duration_seconds",
        "kind" => kind,
        "outcome" => outcome.to_string()
    )
    .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("Me")), "Me");
        assert_eq!(operation_label(Some("bad\nname")), "other");
        assert_eq!(operation_label(Some(&"x".repeat(65))), "other");
        for i in 0..MAX_OPERATION_NAMES {
            operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(operation_label(Some("OneTooMany")), "other");
        assert_eq!(operation_label(Some("Me")), "Me", "a known name keeps its label");
    }
}
