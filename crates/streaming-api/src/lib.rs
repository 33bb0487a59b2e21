//! REST control plane under `/api/v1`, plus `/health`, `/ready`, the OpenAPI
//! 3.1 document at `/api/openapi.json` and Swagger UI at `/api/docs`.
//!
//! - JSON in and out; every error is an RFC 9457 problem document with a
//!   stable `type` ([`problem`]).
//! - Admin endpoints need `Authorization: Bearer <token>` (constant-time
//!   check); the stream status that the watch page polls is public.
//! - The OpenAPI document is generated from the handlers themselves
//!   (`utoipa`), so routes and document cannot drift apart.
//! - Swagger UI's files are compiled into the binary (`vendored`): the docs
//!   work without any network.

mod beacons;
mod docs;
mod extract;
pub mod guard;
mod health;
mod history;
mod insights;
mod keys;
pub mod problem;
mod sessions;
mod streams;
mod viewers;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use docs::BearerAuth;
use streaming_core::hub::{CancellationToken, StreamHub};
use streaming_core::repo::DynRepository;
use streaming_core::sessions::ViewerSessions;
use streaming_core::store::SharedStore;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use health::FfmpegProbe;

/// The AsyncAPI 3.0 document of `/ws/stream/{stream_id}` (served at
/// `/api/asyncapi.json`); `tests/ws_stream.rs` checks live messages against it.
pub const ASYNCAPI: &str = include_str!("../asyncapi.json");
pub use problem::{Problem, ProblemKind};
pub use views::StreamUrls;

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
    /// The live streams: revoking a key or deleting a stream cuts its publisher.
    pub hub: StreamHub,
    /// The segment store: the renditions a live stream offers right now.
    pub store: Option<SharedStore>,
    /// Active viewer sessions: the `concurrent_viewers` figures and the
    /// active-session listing.
    pub sessions: ViewerSessions,
    /// Inputs of `/ready` besides the database.
    pub readiness: Readiness,
    /// Per-address rate limits, failed-token budget and CORS rules.
    pub guard: Arc<guard::Guard>,
    /// Largest API request body (bytes); beacons have their own, smaller limit.
    pub max_body_bytes: usize,
}

/// What `/ready` reports besides the database.
#[derive(Clone, Default)]
pub struct Readiness {
    /// The bound listeners, by name (`rtmp`, `http`).
    pub listeners: Vec<(&'static str, SocketAddr)>,
    /// FFmpeg's presence (a degraded check: without it streams run source-only).
    pub ffmpeg: FfmpegProbe,
    /// Fires at shutdown: the server is then no longer ready.
    pub shutdown: Option<CancellationToken>,
    /// The last database check: one probe at a time, its answer (pass or
    /// fail) reused for a second, so a flood of `/ready` costs no writes.
    pub(crate) db_check: health::DbCheckCache,
}

impl Readiness {
    /// Readiness of a server that bound `listeners`, looking for FFmpeg as
    /// `program` (`None`: `ffmpeg` on `PATH`).
    pub fn new(
        listeners: Vec<(&'static str, SocketAddr)>,
        program: Option<PathBuf>,
        shutdown: Option<CancellationToken>,
    ) -> Self {
        Self {
            listeners,
            ffmpeg: FfmpegProbe::new(program),
            shutdown,
            db_check: Default::default(),
        }
    }
}

/// The OpenAPI document's fixed parts; paths come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "streaming-server API",
        description = "Control plane of the live streaming server: streams, stream keys, viewers, \
                       metrics, health. Errors are RFC 9457 problem documents \
                       (`application/problem+json`) whose `type` is stable. The real-time \
                       WebSocket channel `/ws/stream/{stream_id}` is described by the AsyncAPI \
                       document at `/api/asyncapi.json`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "streams", description = "Streams and their life cycle"),
        (name = "keys", description = "Stream keys (shown once, stored hashed)"),
        (name = "analytics", description = "Viewer sessions and metrics"),
        (name = "operations", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// The OpenAPI document and the router it describes.
fn parts() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(streams::list, streams::create))
        .routes(routes!(
            streams::get_stream,
            streams::rename,
            streams::delete
        ))
        .routes(routes!(streams::status))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(viewers::viewers))
        .routes(routes!(history::metrics))
        .routes(routes!(insights::analytics))
        .routes(routes!(sessions::mint))
        .routes(routes!(beacons::events))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .split_for_parts()
}

/// The OpenAPI 3.1 document served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The API's routes (merge them with delivery's into the server's router).
pub fn router(state: ApiState) -> Router {
    let (api, doc) = parts();
    let guard = state.guard.clone();
    let body_limit = state.max_body_bytes;
    let api = api
        .route("/api/v1", any(docs::unknown_route))
        .route("/api/v1/{*rest}", any(docs::unknown_route))
        .method_not_allowed_fallback(docs::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state);
    api.merge(docs::router(doc))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            guard::middleware,
        ))
}
