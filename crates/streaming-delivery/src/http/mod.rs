//! HTTP delivery: HLS playlists, DASH manifest, CMAF segments, the watch page.
//!
//! URLs (README, "What it serves"):
//! `/hls/{id}/master.m3u8`, `/hls/{id}/{rendition}/index.m3u8`,
//! `/hls/{id}/{rendition}/init.mp4` (`init-{v}.mp4` after a codec change),
//! `/hls/{id}/{rendition}/segment-{n}.m4s`, `/dash/{id}/manifest.mpd`, `/time`,
//! `/watch/{id}`, `/static/{asset}`, `/metrics` (Prometheus), `/ws/stream/{id}`
//! (WebSocket, see [`ws`]). Unknown streams
//! and segments are 404, never 500; `HEAD` is answered by the GET routes
//! without a body. The HLS/DASH routes are measured by [`metrics::track`].

mod dash;
pub mod held;
mod hls;
mod metrics;
mod response;
#[cfg(test)]
mod tests;
mod watch;
pub(crate) mod ws;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use http_types::Method;
use std::sync::Arc;
use streaming_core::config::MediaConfig;
use streaming_core::events::EventBus;
use streaming_core::metrics::Metrics;
use streaming_core::repo::DynRepository;
use streaming_core::sessions::ViewerSessions;

use streaming_core::limits::{AddrSlots, Limits, Origins};
use streaming_core::store::SharedStore;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

pub(crate) use axum::http as http_types;
pub(crate) use response::{body_len, count_body, etag_of};

/// What the delivery handlers share.
#[derive(Clone)]
pub struct DeliveryState {
    pub store: SharedStore,
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
    /// Limits and access rules (CORS, `/metrics` token, WebSocket caps).
    pub guard: DeliveryGuard,
}

/// Limits and access rules of the delivery routes.
#[derive(Clone)]
pub struct DeliveryGuard {
    pub limits: Limits,
    /// `cors.playback_origins`: CORS of playlists and segments, and the
    /// WebSocket's `Origin` check.
    pub playback_origins: Origins,
    /// The bearer token `/metrics` requires; `None` serves it publicly.
    pub metrics_token: Option<Arc<str>>,
    /// WebSocket clients in all and per address.
    pub ws_slots: AddrSlots,
    /// Largest inbound WebSocket frame and message.
    pub ws_max_message_bytes: usize,
    /// Held LL requests (blocking reloads, hinted parts, segments in
    /// progress) in all and per address, and their gauge.
    pub held: held::HeldRequests,
}

impl DeliveryGuard {
    /// Open access (any origin, public `/metrics`) with the default WebSocket
    /// and held-request caps.
    pub fn open(metrics: Metrics) -> Self {
        let ws = streaming_core::config::WebSocketConfig::default();
        let limits = Limits::new(metrics);
        Self {
            held: held::HeldRequests::with_defaults(limits.clone()),
            limits,
            playback_origins: Origins::new(&["*".to_string()]),
            metrics_token: None,
            ws_slots: AddrSlots::new(ws.max_clients, ws.max_clients_per_addr),
            ws_max_message_bytes: ws.max_message_bytes,
        }
    }
}

/// The CORS layer of the playback routes (`cors.playback_origins`).
fn cors_layer(origins: &Origins) -> CorsLayer {
    let allow = if origins.is_any() {
        AllowOrigin::any()
    } else {
        let origins = origins.clone();
        AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|o| origins.allow(o).is_some())
        })
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any)
}

/// The delivery routes, with CORS for the playback origins (any by default).
pub fn router(state: DeliveryState) -> Router {
    let cors = cors_layer(&state.guard.playback_origins);
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
        .route("/watch/{stream_id}/shaka", get(watch::shaka_page))
        .route("/static/{asset}", get(watch::asset))
        .route("/metrics", get(metrics::scrape))
        .route("/ws/stream/{stream_id}", get(ws::stream_ws))
        .with_state(state)
}

/// A router serving only `/metrics`, without a token: for the separate
/// `metrics.listen_addr` listener (bind it to a private interface).
pub fn metrics_router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape_open))
        .with_state(metrics)
}
