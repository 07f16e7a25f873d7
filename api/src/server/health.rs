//! /healthz (the process is up) and /readyz (the database answers and its schema is
//! the one this binary expects).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use serde_json::json;

use crate::graphql::Gateway;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(gateway): State<Gateway>) -> impl IntoResponse {
    let db = &gateway.services.db;
    let applied = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "select version from seaql_migrations",
        ))
        .await;
    let applied: Vec<String> = match applied {
        Ok(rows) => rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "version").ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "down" })),
            );
        }
    };
    let pending: Vec<String> = migration::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .filter(|name| !applied.contains(name))
        .collect();
    if pending.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "pendingMigrations": pending })),
        )
    }
}
