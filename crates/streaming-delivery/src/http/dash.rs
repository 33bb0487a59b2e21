//! MPEG-DASH (ISO/IEC 23009-1, DASH-IF IOP live, LL-DASH): the manifest the
//! packaging task rendered over the very segments HLS serves. Dynamic while
//! live, static once the stream ends; the segment in progress is sent as it
//! is made by the segment route (`hls::segment`).

use axum::extract::{Path, RawQuery, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use streaming_core::sessions::SignedSid;
use streaming_core::store::Key;

use super::DeliveryState;
use super::hls::{manifest_request, text_response};
use super::response::{CACHE_IMMUTABLE, CACHE_LIVE, MPD, not_found};

pub async fn manifest(
    State(state): State<DeliveryState>,
    Path(stream_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ext: Extensions,
) -> Response {
    let (id, object, ended, session) = match manifest_request(
        &state,
        &stream_id,
        query.as_deref(),
        &ext,
        "manifest",
        &Key::Mpd,
    ) {
        Ok(r) => r,
        Err(missing) => return not_found(&missing),
    };
    // In CDN mode segment URLs carry no `sid`; the MPD refresh URL
    // (`Location`) still does, so DASH viewers are counted by their refreshes.
    let sid = session.signed().map(SignedSid::as_str);
    let cache = if ended { CACHE_IMMUTABLE } else { CACHE_LIVE };
    let mut resp = text_response(&headers, MPD, cache, &object, sid);
    session.settle(&mut resp, &state.sessions, id, "dash", &headers);
    resp
}
