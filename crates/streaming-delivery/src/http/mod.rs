//! HTTP delivery: HLS playlists, DASH manifest, CMAF segments, the watch page.
//!
//! URLs (DESIGN.md, "The contract users see"):
//! `/hls/{id}/master.m3u8`, `/hls/{id}/{rendition}/index.m3u8`,
//! `/hls/{id}/{rendition}/init.mp4` (`init-{v}.mp4` after a codec change),
//! `/hls/{id}/{rendition}/segment-{n}.m4s`, `/dash/{id}/manifest.mpd`, `/time`,
//! `/watch/{id}`, `/static/{asset}`, `/metrics` (Prometheus), `/ws/stream/{id}`
//! (WebSocket, see [`ws`]). Unknown streams
//! and segments are 404, never 500; `HEAD` is answered by the GET routes
//! without a body. The HLS/DASH routes are measured by [`metrics::track`].

mod dash;
mod hls;
mod metrics;
mod response;
mod watch;
pub(crate) mod ws;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use http_types::Method;
use streaming_core::config::MediaConfig;
use streaming_core::events::EventBus;
use streaming_core::metrics::Metrics;
use streaming_core::repo::DynRepository;
use streaming_core::sessions::ViewerSessions;
use streaming_core::store::SegmentStore;
use tower_http::cors::{Any, CorsLayer};

pub(crate) use axum::http as http_types;
pub(crate) use response::etag_of;

/// What the delivery handlers share.
#[derive(Clone)]
pub struct DeliveryState {
    pub store: SegmentStore,
    pub media: MediaConfig,
    pub metrics: Metrics,
    /// Where the WebSocket channel learns status changes and ladder changes.
    pub events: EventBus,
    /// Stream lookup (404 before upgrade) and current status.
    pub repo: DynRepository,
    /// Viewer sessions (see [`crate::sessions`]).
    pub sessions: ViewerSessions,
    /// `delivery.cdn_mode`: no `sid` in init/segment URLs.
    pub cdn_mode: bool,
    /// The shared 1 s `metrics` messages of the WebSocket channel.
    pub feed: crate::live::LiveFeed,
}

/// The delivery routes, with CORS open for playback from any origin.
pub fn router(state: DeliveryState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any);
    Router::new()
        .route("/hls/{stream_id}/master.m3u8", get(hls::master))
        .route(
            "/hls/{stream_id}/{rendition}/{file}",
            get(hls::rendition_file),
        )
        .route("/dash/{stream_id}/manifest.mpd", get(dash::manifest))
        .route_layer(from_fn_with_state(state.clone(), crate::sessions::track))
        .route_layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .route("/time", get(response::time))
        .layer(cors)
        .route("/watch/{stream_id}", get(watch::page))
        .route("/watch/{stream_id}/dash", get(watch::dash_page))
        .route("/static/{asset}", get(watch::asset))
        .route("/metrics", get(metrics::scrape))
        .route("/ws/stream/{stream_id}", get(ws::stream_ws))
        .with_state(state)
}
