//! Signed viewer-session ids for players that need theirs before loading
//! the master playlist: `POST /api/v1/streams/{id}/sessions`.
//!
//! The watch page (so that its requests and its beacons meet in one session)
//! and players counted by beacons alone (their media comes from a CDN) ask
//! for an id here, then load `master_url` and send beacons to `beacon_url`.
//! Public (players hold no token). Opening a session is capped
//! ([`streaming_core::sessions`]): `sessions.new_per_addr_per_sec` per
//! address (429 with `Retry-After`), `sessions.max_live` per node (503). The
//! id is valid for this stream only (`{uuid}.{mac}`, see
//! [`streaming_core::sessions::signing`]); the uuid is the session's id in
//! the viewer listings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use streaming_core::limits::ClientAddr;
use streaming_core::sessions::Refusal;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::docs::MintErrors;
use crate::extract::{ApiPath, parse_id};
use crate::problem::{Problem, ProblemKind};

/// A new viewer session.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintedSession {
    /// The signed session id (`{uuid}.{mac}`): the `sid` of the playback URLs
    /// and the `{session_id}` of the beacon URL, for this stream only.
    #[schema(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[0-9a-f]{32}$",
        example = "0b6c3c1e-8f1a-4a57-9a51-1d2f3e4a5b6c.4f1d2c3b4a5968778695a4b3c2d1e0f1"
    )]
    pub session_id: String,
    pub stream_id: Uuid,
    /// The master playlist carrying the session (`…/master.m3u8?sid=…`).
    pub master_url: String,
    /// Where the player POSTs its beacons.
    pub beacon_url: String,
}

/// The address a request is charged to: the HTTP server's [`ClientAddr`],
/// else the TCP peer, else `0.0.0.0` (router-only tests).
pub(crate) fn client_ip(ext: &Extensions) -> IpAddr {
    ext.get::<ClientAddr>()
        .map(|c| c.0)
        .or_else(|| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The `User-Agent` of a request, bounded, for the session record.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect())
}

/// Live on this node: the hub holds its publish, or the segment store has
/// media that has not ended (a delivery node that only reads the store).
pub(crate) fn is_live(state: &ApiState, stream_id: Uuid) -> bool {
    state.hub.is_live(stream_id)
        || state
            .store
            .as_ref()
            .and_then(|s| s.summary(stream_id))
            .is_some_and(|m| !m.ended)
}

/// The problem answering a refused session or beacon.
pub(crate) fn refusal(r: Refusal) -> Problem {
    match r {
        Refusal::Full => Problem::new(
            ProblemKind::Overloaded,
            "this node holds its maximum of live viewer sessions; retry later",
        ),
        Refusal::TooManyNew { retry_after } => Problem::rate_limited(
            "too many new viewer sessions from this address",
            retry_after,
        ),
        Refusal::BeaconRate { retry_after } => {
            Problem::rate_limited("too many beacons for this session", retry_after)
        }
    }
}

/// Mints a signed viewer-session id for a player of the stream.
#[utoipa::path(
    post, path = "/api/v1/streams/{id}/sessions", tag = "analytics",
    params(("id" = Uuid, Path, description = "Stream id")),
    responses(
        (status = 201, description = "A new session: load `master_url`, send beacons to `beacon_url`", body = MintedSession),
        MintErrors
    )
)]
pub async fn mint(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ext: Extensions,
) -> Result<Response, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    if !is_live(&state, stream_id) {
        // Not live (yet): the page may wait for it; unknown streams are 404.
        state.stream(stream_id).await?;
    }
    let sid = state
        .sessions
        .mint(
            stream_id,
            client_ip(&ext),
            user_agent(&headers),
            Instant::now(),
        )
        .map_err(refusal)?;
    let base = &state.http_base;
    let body = MintedSession {
        session_id: sid.to_string(),
        stream_id,
        master_url: format!("{base}/hls/{stream_id}/master.m3u8?sid={sid}"),
        beacon_url: format!("{base}/api/v1/sessions/{sid}/events"),
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}
