//! Streams: create (with the first key, shown once), list, get, public status.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streaming_core::CoreError;
use streaming_core::model::{Stream, StreamStatus};
use tracing::warn;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::require_admin;

/// The URLs a user needs for a stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamUrls {
    pub rtmp_url: String,
    pub hls_url: String,
    pub dash_url: String,
    pub watch_url: String,
}

impl StreamUrls {
    pub fn new(rtmp_base: &str, http_base: &str, id: Uuid) -> Self {
        Self {
            rtmp_url: rtmp_base.to_string(),
            hls_url: format!("{http_base}/hls/{id}/master.m3u8"),
            dash_url: format!("{http_base}/dash/{id}/manifest.mpd"),
            watch_url: format!("{http_base}/watch/{id}"),
        }
    }
}

/// An RFC 9457 problem document.
pub fn problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({
            "type": format!("https://streaming.invalid/problems/{kind}"),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": detail,
        })
        .to_string(),
    )
        .into_response()
}

fn core_problem(e: CoreError) -> Response {
    match e {
        CoreError::StreamNotFound(_) | CoreError::KeyNotFound(_) => {
            problem(StatusCode::NOT_FOUND, "not-found", &e.to_string())
        }
        CoreError::Invalid(d) => problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", &d),
        CoreError::InvalidTransition { .. } => problem(StatusCode::CONFLICT, "invalid-transition", &e.to_string()),
        other => {
            warn!(error = %other, "database unavailable");
            problem(StatusCode::SERVICE_UNAVAILABLE, "database-unavailable", "the database is unavailable")
        }
    }
}

#[derive(Deserialize)]
pub struct CreateStream {
    pub name: String,
}

#[derive(Serialize)]
struct StreamView {
    #[serde(flatten)]
    stream: Stream,
    #[serde(flatten)]
    urls: StreamUrls,
}

pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Option<Json<CreateStream>>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers) {
        return r.into_response();
    }
    let Some(Json(body)) = body else {
        return problem(StatusCode::BAD_REQUEST, "invalid-body", "expected a JSON body {\"name\": \"...\"}");
    };
    match state.repo.create_stream(&body.name).await {
        Ok(created) => {
            let urls = StreamUrls::new(&state.rtmp_base, &state.http_base, created.stream.id);
            let body = json!({
                "id": created.stream.id,
                "name": created.stream.name,
                "status": created.stream.status,
                "stream_key": created.plaintext_key,
                "key_id": created.key.id,
                "rtmp_url": urls.rtmp_url,
                "hls_url": urls.hls_url,
                "dash_url": urls.dash_url,
                "watch_url": urls.watch_url,
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => core_problem(e),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
}

pub async fn list(State(state): State<ApiState>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Err(r) = require_admin(&state, &headers) {
        return r.into_response();
    }
    let status = match q.status.as_deref().map(str::parse::<StreamStatus>).transpose() {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid-query", &e),
    };
    match state.repo.list_streams(status).await {
        Ok(streams) => {
            let items: Vec<_> = streams
                .into_iter()
                .map(|s| StreamView {
                    urls: StreamUrls::new(&state.rtmp_base, &state.http_base, s.id),
                    stream: s,
                })
                .collect();
            Json(json!({ "items": items })).into_response()
        }
        Err(e) => core_problem(e),
    }
}

pub async fn get(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = require_admin(&state, &headers) {
        return r.into_response();
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "no such stream");
    };
    match state.repo.get_stream(id).await {
        Ok(Some(s)) => Json(StreamView {
            urls: StreamUrls::new(&state.rtmp_base, &state.http_base, s.id),
            stream: s,
        })
        .into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not-found", "no such stream"),
        Err(e) => core_problem(e),
    }
}

/// Public: what the watch page needs to show (no secrets).
pub async fn status(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "no such stream");
    };
    match state.repo.get_stream(id).await {
        Ok(Some(s)) => (
            [(header::CACHE_CONTROL, "no-cache")],
            Json(json!({ "id": s.id, "name": s.name, "status": s.status })),
        )
            .into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not-found", "no such stream"),
        Err(e) => core_problem(e),
    }
}
