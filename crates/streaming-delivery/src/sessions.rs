//! Viewer sessions over HTTP: the `sid` query parameter, the middleware that
//! charges every request to its session, and the 1 s sweeper.
//!
//! A master playlist or MPD fetched without `sid` opens a session
//! ([`ViewerSessions::start`]); its id is written into the child URIs
//! (`source/index.m3u8?sid=…`). A media playlist fetched with `sid` writes it
//! into its init/segment URIs too, unless `delivery.cdn_mode` is set (then
//! segment URLs stay the same for everyone so a CDN caches them once). Every
//! answered request carrying `sid` refreshes the session: quality (the
//! rendition in the path), bytes sent, last seen. The collector's 1 s tick
//! ([`crate::collector::task`]) ends sessions idle for 3 × the target segment
//! duration, persists them and publishes the per-stream counts. Players also
//! report through beacons (`POST /api/v1/sessions/{id}/events`, in
//! `streaming-api`), which alone keep a session counted (CDN mode).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use crate::http::DeliveryState;

/// The query parameter that carries a viewer-session id.
pub const SID: &str = "sid";

/// The session id a handler opened, left on its response for [`track`].
#[derive(Debug, Clone, Copy)]
pub struct OpenedSession(pub Uuid);

/// The `sid` of a query string, if it is a UUID.
pub fn sid_of(query: Option<&str>) -> Option<Uuid> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == SID)
        .and_then(|(_, v)| Uuid::parse_str(v).ok())
}

/// `uri` with `?sid=…` appended when there is a session.
pub fn with_sid(uri: String, sid: Option<Uuid>) -> String {
    match sid {
        Some(s) => format!("{uri}?{SID}={s}"),
        None => uri,
    }
}

/// The ETag of a playlist or MPD as if it carried no `sid`: every viewer's
/// copy validates alike, so a revalidation (`If-None-Match`) of a master
/// playlist answers 304 — the client keeps its copy and its session.
pub fn etag_without_sid(text: &str, sid: Option<Uuid>) -> String {
    match sid {
        Some(s) => crate::http::etag_of(text.replace(&format!("?{SID}={s}"), "").as_bytes()),
        None => crate::http::etag_of(text.as_bytes()),
    }
}

/// The `User-Agent` of a request, bounded, for the session record.
pub fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

/// Inactivity after which a session ends: 3 × the target segment duration.
pub fn inactivity_timeout(segment_duration_ms: u32) -> Duration {
    Duration::from_millis(3 * u64::from(segment_duration_ms.max(1)))
}

/// The stream and rendition (`None` for master/MPD) of a delivery path.
fn target(path: &str) -> Option<(Uuid, Option<&str>)> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (root, id) = (parts.next()?, parts.next()?);
    let id = Uuid::parse_str(id).ok()?;
    let rest: Vec<&str> = parts.collect();
    match (root, rest.as_slice()) {
        ("hls", ["master.m3u8"]) | ("dash", ["manifest.mpd"]) => Some((id, None)),
        ("hls", [rendition, _]) => Some((id, Some(rendition))),
        _ => None,
    }
}

/// Middleware around the HLS/DASH routes: charges each answered request
/// carrying (or opening) a session to it.
pub async fn track(State(state): State<DeliveryState>, req: Request, next: Next) -> Response {
    let Some((stream_id, rendition)) = target(req.uri().path()) else {
        return next.run(req).await;
    };
    let rendition = rendition.map(str::to_string);
    let sid = sid_of(req.uri().query());
    let head = req.method() == Method::HEAD;
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return resp;
    }
    let opened = resp.extensions().get::<OpenedSession>().map(|o| o.0);
    let returning = opened.is_none();
    let Some(sid) = opened.or(sid) else {
        return resp;
    };
    let bytes = if status.is_success() && !head {
        resp.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    } else {
        0
    };
    state
        .sessions
        .touch(sid, stream_id, rendition.as_deref(), bytes, returning);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_parsing_and_targets() {
        let id = Uuid::new_v4();
        assert_eq!(sid_of(Some(&format!("a=1&sid={id}"))), Some(id));
        assert_eq!(sid_of(Some("sid=nope")), None);
        assert_eq!(sid_of(None), None);
        assert_eq!(with_sid("x.m4s".into(), None), "x.m4s");
        assert_eq!(
            with_sid("x.m4s".into(), Some(id)),
            format!("x.m4s?sid={id}")
        );
        let s = Uuid::new_v4();
        assert_eq!(target(&format!("/hls/{s}/master.m3u8")), Some((s, None)));
        assert_eq!(
            target(&format!("/hls/{s}/audio/segment-3.m4s")),
            Some((s, Some("audio")))
        );
        assert_eq!(target(&format!("/dash/{s}/manifest.mpd")), Some((s, None)));
        assert_eq!(target("/time"), None);
        assert_eq!(inactivity_timeout(2000), Duration::from_secs(6));
    }
}
