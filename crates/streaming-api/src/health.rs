//! `/health` (the process is alive) and `/ready` (it can serve: the database answers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ApiState;

pub async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub async fn ready(State(state): State<ApiState>) -> Response {
    let db = tokio::time::timeout(std::time::Duration::from_secs(2), state.repo.ping()).await;
    let (ok, detail) = match db {
        Ok(Ok(())) => (true, "ok".to_string()),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (false, "timed out".to_string()),
    };
    let body = Json(json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": { "database": { "ok": ok, "detail": detail } },
    }));
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body).into_response()
}
