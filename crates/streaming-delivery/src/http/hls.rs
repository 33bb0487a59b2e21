//! HLS (RFC 8216bis) and LL-HLS over the stored, pre-rendered playlists:
//! `master.m3u8`, `{rendition}/index.m3u8` (with blocking reload
//! `_HLS_msn`/`_HLS_part` and delta updates `_HLS_skip`, §6.2.5), init
//! segments, parts `segment-{N}.{P}.m4s` (a preload-hinted part is held until
//! it is made, §6.2.6) and segments `segment-{N}.m4s` (the segment in
//! progress is sent part by part as it is made: LL-DASH chunked delivery).
//!
//! Handlers never render: the packaging task renders each playlist once per
//! change; a request only fills in its viewer's `sid` and, when blocking,
//! sleeps on the rendition's progress channel.
//!
//! A request that is about to wait takes a held-request slot first
//! ([`super::held`]: a cap on the node and per address, 503 beyond them);
//! the slot is given back when the wait ends or the client goes away.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use streaming_core::sessions::SignedSid;
use streaming_core::store::{Key, Object, PartRef, Progress, StreamSummary, WaitOutcome, wait_for};
use uuid::Uuid;

use super::DeliveryState;
use super::response::{self, CACHE_IMMUTABLE, CACHE_LIVE, M3U8, not_found};
use crate::publish::personalize;
use crate::publish::render_hls::FIRST_INIT;
use crate::sessions::{ManifestSession, ResolvedSession, manifest_session, sid_of};

/// What a master playlist or MPD request starts with: the stream (404 if
/// unknown), the rendered manifest (404 until one can be written), whether
/// the broadcast ended, and the session the manifest is written for (see
/// [`manifest_session`]). `what` names the manifest.
pub(crate) fn manifest_request(
    state: &DeliveryState,
    stream_id: &str,
    query: Option<&str>,
    ext: &Extensions,
    what: &str,
    key: &Key,
) -> Result<(Uuid, Object, bool, ManifestSession), String> {
    let Some((id, summary)) = Uuid::parse_str(stream_id)
        .ok()
        .and_then(|id| Some((id, state.store.summary(id)?)))
    else {
        return Err("stream".into());
    };
    let Some(object) = state.store.get(id, key) else {
        return Err(format!("{what} (the stream has no media yet)"));
    };
    let peer = crate::sessions::client_ip(ext);
    let session = manifest_session(&state.sessions, id, sid_of(query), peer, Instant::now());
    Ok((id, object, summary.ended, session))
}

/// A rendered text answered for one viewer (`sid` filled in).
pub(crate) fn text_response(
    headers: &HeaderMap,
    content_type: &str,
    cache: &str,
    object: &Object,
    sid: Option<&str>,
) -> Response {
    let data = personalize(&object.data, sid);
    response::body(
        headers,
        content_type,
        cache,
        object.modified_ms,
        object.etag.to_string(),
        data,
    )
}

pub async fn master(
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
        "playlist",
        &Key::Master,
    ) {
        Ok(r) => r,
        Err(missing) => return not_found(&missing),
    };
    let sid = session.signed().map(SignedSid::as_str);
    let cache = if ended { CACHE_IMMUTABLE } else { CACHE_LIVE };
    let mut resp = text_response(&headers, M3U8, cache, &object, sid);
    session.settle(&mut resp, &state.sessions, id, "hls", &headers);
    resp
}

/// Video renditions of a stream, best first (the source leads).
pub(crate) fn qualities_of(summary: &StreamSummary) -> Vec<String> {
    summary.videos().map(|r| r.name.to_string()).collect()
}

/// `GET /hls/{id}/{rendition}/{index.m3u8 | init.mp4 | init-V.mp4 | segment-N.m4s | segment-N.P.m4s}`
pub async fn rendition_file(
    State(state): State<DeliveryState>,
    Path((stream_id, rendition, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ext: Extensions,
) -> Response {
    let Some((id, summary)) = Uuid::parse_str(&stream_id)
        .ok()
        .and_then(|id| Some((id, state.store.summary(id)?)))
    else {
        return not_found("stream");
    };
    let name: std::sync::Arc<str> = rendition.as_str().into();
    if file == "index.m3u8" {
        return media_playlist(&state, id, name, query.as_deref(), &headers, &ext).await;
    }
    let kind = summary.rendition(&rendition).map(|r| r.info.kind);
    let content_type = match kind {
        Some(streaming_core::store::RenditionKind::Audio) => "audio/mp4",
        _ => "video/mp4",
    };
    if let Some(version) = parse_init(&file) {
        let Some(o) = state.store.get(
            id,
            &Key::Init {
                rendition: name,
                version,
            },
        ) else {
            return not_found("init segment");
        };
        // Not immutable: a later broadcast of the stream may bring another
        // decoder configuration under the same URL. It is tiny; revalidate.
        return response::body(
            &headers,
            content_type,
            CACHE_LIVE,
            o.modified_ms,
            o.etag.to_string(),
            o.data,
        );
    }
    let peer = crate::sessions::client_ip(&ext);
    match parse_media(&file) {
        Some((msn, Some(part))) => {
            held_part(
                &state,
                id,
                name,
                PartRef { msn, part },
                &headers,
                content_type,
                peer,
            )
            .await
        }
        Some((msn, None)) => segment(&state, id, name, msn, &headers, content_type, peer).await,
        None => not_found("file"),
    }
}

/// How long a blocking reload or a hinted part is held.
fn hold(state: &DeliveryState) -> Duration {
    let target = u64::from(state.media.segment_duration_ms.max(1));
    Duration::from_millis(target * u64::from(state.media.hold_target_durations.max(1)))
}

/// The LL-HLS delivery directives of a playlist request (§6.2.5).
#[derive(Debug, Default, PartialEq, Eq)]
struct Directives {
    msn: Option<u64>,
    part: Option<u32>,
    skip: bool,
}

fn directives(query: Option<&str>) -> Result<Directives, &'static str> {
    let mut d = Directives::default();
    for (k, v) in query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        match k {
            "_HLS_msn" => d.msn = Some(v.parse().map_err(|_| "_HLS_msn is not a number")?),
            "_HLS_part" => d.part = Some(v.parse().map_err(|_| "_HLS_part is not a number")?),
            "_HLS_skip" => match v {
                "YES" | "v2" => d.skip = true,
                _ => return Err("_HLS_skip must be YES or v2"),
            },
            _ => {}
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err("_HLS_part without _HLS_msn");
    }
    Ok(d)
}

fn bad_request(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        format!("{why}\n"),
    )
        .into_response()
}

/// The answer to a request that would wait beyond the held-request caps.
fn too_many_held() -> Response {
    unavailable("too many requests held open; retry")
}

fn unavailable(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::RETRY_AFTER, "1"),
        ],
        format!("{why}\n"),
    )
        .into_response()
}

/// Parts a request may ask for beyond the newest (RFC 8216bis §6.2.5.2,
/// "Advance Part Limit").
const ADVANCE_PART_LIMIT: u32 = 3;

/// Too far ahead of what exists to be held: msn beyond the last segment + 2,
/// or a part beyond the newest by more than the advance part limit.
fn too_far(p: &Progress, msn: u64, part: Option<u32>) -> bool {
    let Some(open) = p.open_msn() else {
        return msn > 2;
    };
    let last_listed = p.last_segment.unwrap_or(open);
    if msn > last_listed + 2 {
        return true;
    }
    match (part, p.last_part) {
        (Some(part), Some(lp)) if msn == lp.msn => part > lp.part + ADVANCE_PART_LIMIT,
        (Some(part), _) if msn > open => part > ADVANCE_PART_LIMIT,
        _ => false,
    }
}

async fn media_playlist(
    state: &DeliveryState,
    id: Uuid,
    rendition: std::sync::Arc<str>,
    query: Option<&str>,
    headers: &HeaderMap,
    ext: &Extensions,
) -> Response {
    let d = match directives(query) {
        Ok(d) => d,
        Err(why) => return bad_request(why),
    };
    let Some(mut rx) = state.store.progress(id, &rendition) else {
        return not_found("rendition");
    };
    let blocking = d.msn.is_some() && state.media.low_latency;
    if let (Some(msn), true) = (d.msn, blocking) {
        let now = *rx.borrow();
        if too_far(&now, msn, d.part) {
            return bad_request("_HLS_msn/_HLS_part too far ahead of the playlist");
        }
        let ready = |p: &Progress| match d.part {
            Some(part) => p.has_part(PartRef { msn, part }),
            None => p.has_segment(msn),
        };
        // Only a request that will wait takes a held-request slot.
        let held = if ready(&now) || now.ended {
            None
        } else {
            let peer = crate::sessions::client_ip(ext);
            match state.guard.held.admit(peer, "blocking playlist reload") {
                Some(h) => Some(h),
                None => return too_many_held(),
            }
        };
        let outcome = wait_for(&mut rx, hold(state), ready).await;
        drop(held);
        if let WaitOutcome::TimedOut(_) = outcome {
            return unavailable("the requested part did not appear in time");
        }
    }
    let key = |skip| Key::Playlist {
        rendition: rendition.clone(),
        skip,
    };
    let object = match state.store.get(id, &key(d.skip)) {
        Some(o) => o,
        None => match state.store.get(id, &key(false)) {
            Some(o) => o,
            None => return not_found("rendition"),
        },
    };
    // Only an id this server signed for this stream goes on to the
    // segment URIs; anything else is counted and dropped.
    let peer = crate::sessions::client_ip(ext);
    let valid = sid_of(query)
        .and_then(|t| state.sessions.verify(id, t, peer))
        .map(|sid| state.sessions.signer().sign(id, sid));
    let sid = valid.as_ref().map(SignedSid::as_str);
    let ended = state.store.summary(id).is_some_and(|s| s.ended);
    // A blocking response is the answer for its full URL (a CDN may keep it
    // briefly); a plain reload changes every part.
    let blocked_cache;
    let cache = if ended {
        CACHE_IMMUTABLE
    } else if blocking {
        blocked_cache = format!(
            "public, max-age={}",
            (state.media.segment_duration_ms / 1000).max(1)
        );
        blocked_cache.as_str()
    } else {
        CACHE_LIVE
    };
    let mut resp = text_response(headers, M3U8, cache, &object, sid);
    resp.extensions_mut().insert(ResolvedSession {
        sid: valid.map(|s| s.id()),
        opened: false,
    });
    resp
}

/// A part: at once if it exists; held if it is the hinted (next) one.
async fn held_part(
    state: &DeliveryState,
    id: Uuid,
    rendition: std::sync::Arc<str>,
    want: PartRef,
    headers: &HeaderMap,
    content_type: &str,
    peer: IpAddr,
) -> Response {
    let key = Key::Part {
        rendition: rendition.clone(),
        msn: want.msn,
        part: want.part,
    };
    if let Some(o) = state.store.get(id, &key) {
        return media_body(headers, content_type, &o);
    }
    let Some(mut rx) = state.store.progress(id, &rendition) else {
        return not_found("part");
    };
    let now = *rx.borrow();
    if now.has_part(want) || too_far(&now, want.msn, Some(want.part)) || !state.media.low_latency {
        return not_found("part");
    }
    let Some(held) = state.guard.held.admit(peer, "hinted part") else {
        return too_many_held();
    };
    let outcome = wait_for(&mut rx, hold(state), |p| p.has_part(want)).await;
    drop(held);
    match outcome {
        WaitOutcome::TimedOut(_) => unavailable("the part did not appear in time"),
        _ => match state.store.get(id, &key) {
            Some(o) => media_body(headers, content_type, &o),
            None => not_found("part"),
        },
    }
}

fn media_body(headers: &HeaderMap, content_type: &str, o: &Object) -> Response {
    response::body(
        headers,
        content_type,
        CACHE_IMMUTABLE,
        o.modified_ms,
        o.etag.to_string(),
        o.data.clone(),
    )
}

/// A segment: at once if complete; the segment in progress part by part
/// as it is made (chunked transfer), for LL-DASH clients. The segment in
/// progress holds a held-request slot for as long as its body streams.
async fn segment(
    state: &DeliveryState,
    id: Uuid,
    rendition: std::sync::Arc<str>,
    msn: u64,
    headers: &HeaderMap,
    content_type: &str,
    peer: IpAddr,
) -> Response {
    let key = Key::Segment {
        rendition: rendition.clone(),
        msn,
    };
    if let Some(o) = state.store.get(id, &key) {
        return media_body(headers, content_type, &o);
    }
    let Some(rx) = state.store.progress(id, &rendition) else {
        return not_found("segment");
    };
    let now = *rx.borrow();
    let in_progress = state.media.low_latency
        && !now.has_segment(msn)
        && now
            .open_msn()
            .is_some_and(|open| msn == open || msn == open + 1);
    if !in_progress {
        return not_found("segment");
    }
    let Some(held) = state.guard.held.admit(peer, "segment in progress") else {
        return too_many_held();
    };
    let store = state.store.clone();
    let hold = hold(state);
    // The slot lives in the stream's state: it is given back when the body
    // ends or is dropped (the client went away).
    let stream = futures::stream::unfold((rx, 0u32, Some(held)), move |(mut rx, part, held)| {
        let store = store.clone();
        let rendition = rendition.clone();
        async move {
            let held = held?;
            let want = PartRef { msn, part };
            let out = wait_for(&mut rx, hold, |p| p.has_part(want)).await;
            let key = Key::Part {
                rendition,
                msn,
                part,
            };
            match (out, store.get(id, &key)) {
                (_, Some(o)) => Some((
                    Ok::<Bytes, std::io::Error>(o.data),
                    (rx, part + 1, Some(held)),
                )),
                // The segment closed (or the broadcast ended): it is complete.
                (WaitOutcome::Ready(_) | WaitOutcome::Ended(_), None) => None,
                (WaitOutcome::TimedOut(_), None) => Some((
                    Err(std::io::Error::other("part did not appear in time")),
                    (rx, part, None),
                )),
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("video/mp4")),
    );
    // The bytes are final, but a cache must not keep a response cut short.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let _ = headers;
    resp
}

fn parse_init(file: &str) -> Option<u32> {
    if file == "init.mp4" {
        return Some(FIRST_INIT);
    }
    let v = file.strip_prefix("init-")?.strip_suffix(".mp4")?;
    digits(v)?.try_into().ok().filter(|v| *v > FIRST_INIT)
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `segment-N.m4s` → (N, None); `segment-N.P.m4s` → (N, Some(P)).
fn parse_media(file: &str) -> Option<(u64, Option<u32>)> {
    let n = file.strip_prefix("segment-")?.strip_suffix(".m4s")?;
    match n.split_once('.') {
        Some((msn, part)) => Some((digits(msn)?, Some(digits(part)?.try_into().ok()?))),
        None => Some((digits(n)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(parse_init("init.mp4"), Some(1));
        assert_eq!(parse_init("init-3.mp4"), Some(3));
        assert_eq!(parse_init("init-1.mp4"), None);
        assert_eq!(parse_init("init-x.mp4"), None);
        assert_eq!(parse_media("segment-12.m4s"), Some((12, None)));
        assert_eq!(parse_media("segment-12.3.m4s"), Some((12, Some(3))));
        assert_eq!(parse_media("segment-+1.m4s"), None);
        assert_eq!(parse_media("segment-1.+1.m4s"), None);
        assert_eq!(parse_media("segment-1..m4s"), None);
        assert_eq!(parse_media("segment-1.99999999999.m4s"), None);
        assert_eq!(parse_media("segment-99999999999999999999999.m4s"), None);
        assert_eq!(parse_media("../segment-1.m4s"), None);
    }

    #[test]
    fn delivery_directives() {
        assert_eq!(directives(None), Ok(Directives::default()));
        let d = directives(Some("sid=x&_HLS_msn=7&_HLS_part=2&_HLS_skip=YES")).unwrap();
        assert_eq!((d.msn, d.part, d.skip), (Some(7), Some(2), true));
        assert!(directives(Some("_HLS_part=1")).is_err());
        assert!(directives(Some("_HLS_msn=x")).is_err());
        assert!(directives(Some("_HLS_skip=NO")).is_err());
        assert!(directives(Some("_HLS_skip=v2")).unwrap().skip);
    }

    #[test]
    fn requests_too_far_ahead_are_refused() {
        let p = Progress {
            last_part: Some(PartRef { msn: 10, part: 1 }),
            last_segment: Some(9),
            ended: false,
        };
        assert!(!too_far(&p, 10, Some(2)));
        assert!(!too_far(&p, 10, Some(4)));
        assert!(too_far(&p, 10, Some(5)));
        assert!(!too_far(&p, 11, Some(0)));
        assert!(!too_far(&p, 11, None));
        assert!(too_far(&p, 12, None));
        assert!(too_far(&p, 11, Some(9)));
        assert!(!too_far(&Progress::default(), 1, Some(0)));
    }
}
