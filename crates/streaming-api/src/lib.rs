//! REST control plane under `/api/v1` plus `/health` and `/ready`.
//!
//! Admin endpoints need `Authorization: Bearer <token>` (constant-time check);
//! the stream status endpoint that the watch page polls is public.

mod auth;
mod health;
mod streams;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use streaming_core::repo::DynRepository;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub repo: DynRepository,
    /// The admin bearer token; `None` disables admin endpoints (401).
    pub admin_token: Option<Arc<str>>,
    /// `rtmp://HOST:PORT/live`, shown with new keys.
    pub rtmp_base: Arc<str>,
    /// `http://HOST:PORT`, base of the playback URLs shown with new streams.
    pub http_base: Arc<str>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/api/v1/streams", get(streams::list).post(streams::create))
        .route("/api/v1/streams/{id}", get(streams::get))
        .route("/api/v1/streams/{id}/status", get(streams::status))
        .with_state(state)
}

pub use streams::StreamUrls;
