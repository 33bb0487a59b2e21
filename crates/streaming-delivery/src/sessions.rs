//! Viewer sessions over HTTP: the signed `sid` query parameter, the
//! middleware that charges every request to its session, and the session
//! timeout.
//!
//! Session ids are minted and signed by the server
//! ([`streaming_core::sessions::signing`]): `{uuid}.{mac}`, valid for one
//! stream. A master playlist or MPD fetched without a valid `sid` opens a new
//! session (within the caps: `sessions.max_live` per node,
//! `sessions.new_per_addr_per_sec` per address; beyond them it still plays,
//! without a session) and writes its id into the child URIs
//! (`source/index.m3u8?sid=…`). A media playlist fetched with a valid `sid`
//! writes it into its init/segment URIs too, unless `delivery.cdn_mode` is
//! set (then segment URLs stay the same for everyone so a CDN caches them
//! once). Every answered request carrying a valid `sid` refreshes its
//! session: quality (the rendition in the path), bytes sent, last seen
//! (a streamed body — the segment in progress — is charged, and refreshes
//! the session, chunk by chunk as it is sent). A
//! `sid` the server did not sign (or signed for another stream) is counted
//! (`sessions_unsigned`) and charged to nobody. The collector's 1 s tick
//! ([`crate::collector::task`]) ends sessions idle for 3 × the target
//! segment duration, persists them and publishes the per-stream counts.
//! Players also report through beacons (`POST /api/v1/sessions/{id}/events`,
//! in `streaming-api`), which alone keep a session counted (CDN mode).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use streaming_core::limits::ClientAddr;
use streaming_core::sessions::{Served, SignedSid, ViewerSessions};
use uuid::Uuid;

use crate::http::DeliveryState;

/// The query parameter that carries a viewer-session id.
pub const SID: &str = "sid";
/// Longest `sid` value looked at (a signed id is 69 characters).
const MAX_SID_CHARS: usize = 128;

/// What a playlist handler made of the request's session, left on its
/// response for [`track`] (which then does not verify the `sid` again).
#[derive(Debug, Clone, Copy)]
pub struct ResolvedSession {
    /// The session to charge: the request's valid `sid`, or the one the
    /// handler opened; `None` when there is none (absent, forged, capped).
    pub sid: Option<Uuid>,
    /// The handler opened it with this response (its first request).
    pub opened: bool,
}

/// The raw `sid` of a query string (not verified), if present and short.
pub fn sid_of(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == SID)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= MAX_SID_CHARS)
}

/// `uri` with `?sid=…` appended when there is a session (a signed id is
/// URL-safe: hex digits, hyphens and a dot).
pub fn with_sid(uri: String, sid: Option<&str>) -> String {
    match sid {
        Some(s) => format!("{uri}?{SID}={s}"),
        None => uri,
    }
}

/// The ETag of a playlist or MPD as if it carried no `sid`: every viewer's
/// copy validates alike, so a revalidation (`If-None-Match`) of a master
/// playlist answers 304 — the client keeps its copy and its session.
pub fn etag_without_sid(text: &str, sid: Option<&str>) -> String {
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

/// The address a request is charged to: the HTTP server's [`ClientAddr`],
/// else the TCP peer ([`ConnectInfo`]), else `0.0.0.0` (router-only tests).
pub fn client_ip(ext: &Extensions) -> IpAddr {
    ext.get::<ClientAddr>()
        .map(|c| c.0)
        .or_else(|| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Inactivity after which a session ends: 3 × the target segment duration.
pub fn inactivity_timeout(segment_duration_ms: u32) -> Duration {
    Duration::from_millis(3 * u64::from(segment_duration_ms.max(1)))
}

/// The session a master playlist or MPD is written for.
#[derive(Debug)]
pub enum ManifestSession {
    /// The request's valid `sid` of a session open here.
    Known(SignedSid),
    /// A new session (not open yet: open it once the answer is a success).
    New(SignedSid),
    /// None: the caps refused a new one; the manifest plays without `sid`.
    Refused,
}

impl ManifestSession {
    /// The id to write into the child URIs.
    pub fn signed(&self) -> Option<&SignedSid> {
        match self {
            ManifestSession::Known(s) | ManifestSession::New(s) => Some(s),
            ManifestSession::Refused => None,
        }
    }
}

impl ManifestSession {
    /// Leaves on a manifest answer the session it was written for, for
    /// [`track`]: a known one as is; a new one is opened (with the viewer's
    /// user agent) only when the answer is a success, so a revalidation or an
    /// error opens nothing.
    pub fn settle(
        self,
        resp: &mut Response,
        sessions: &ViewerSessions,
        stream_id: Uuid,
        protocol: &str,
        headers: &axum::http::HeaderMap,
    ) {
        let resolved = match self {
            ManifestSession::Known(s) => ResolvedSession {
                sid: Some(s.id()),
                opened: false,
            },
            ManifestSession::New(s) if resp.status().is_success() => {
                sessions.open(s.id(), stream_id, protocol, user_agent(headers));
                ResolvedSession {
                    sid: Some(s.id()),
                    opened: true,
                }
            }
            _ => ResolvedSession {
                sid: None,
                opened: false,
            },
        };
        resp.extensions_mut().insert(resolved);
    }
}

/// Decides the session of a master playlist or MPD request for `stream_id`
/// that carried `given` (raw `sid`, if any) from `peer`: a valid id of an
/// open session is kept; anything else (no id, a forged one, a valid one
/// not open here) asks the caps for a new session.
pub fn manifest_session(
    sessions: &ViewerSessions,
    stream_id: Uuid,
    given: Option<&str>,
    peer: IpAddr,
    now: Instant,
) -> ManifestSession {
    let valid = given.and_then(|t| sessions.verify(stream_id, t, peer));
    if let Some(id) = valid
        && sessions.contains(id)
    {
        return ManifestSession::Known(sessions.signer().sign(stream_id, id));
    }
    if sessions.admit(peer, now).is_err() {
        return ManifestSession::Refused;
    }
    // A valid id not open here (expired, or minted by a replica) keeps its
    // id, so the player's beacons and requests still meet.
    let signed = match valid {
        Some(id) => sessions.signer().sign(stream_id, id),
        None => sessions.signer().mint(stream_id),
    };
    ManifestSession::New(signed)
}

/// The stream, rendition (`None` for master/MPD) and protocol of a delivery path.
fn target(path: &str) -> Option<(Uuid, Option<&str>, &'static str)> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (root, id) = (parts.next()?, parts.next()?);
    let id = Uuid::parse_str(id).ok()?;
    let rest: Vec<&str> = parts.collect();
    match (root, rest.as_slice()) {
        ("hls", ["master.m3u8"]) => Some((id, None, "hls")),
        ("dash", ["manifest.mpd"]) => Some((id, None, "dash")),
        ("hls", [rendition, _]) => Some((id, Some(rendition), "hls")),
        _ => None,
    }
}

/// Middleware around the HLS/DASH routes: charges each answered request
/// carrying a valid session id (or opening a session) to it.
pub async fn track(State(state): State<DeliveryState>, req: Request, next: Next) -> Response {
    let Some((stream_id, rendition, protocol)) = target(req.uri().path()) else {
        return next.run(req).await;
    };
    let rendition = rendition.map(str::to_string);
    let given = sid_of(req.uri().query()).map(str::to_string);
    let peer = client_ip(req.extensions());
    let head = req.method() == Method::HEAD;
    let ua = user_agent(req.headers());
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return resp;
    }
    let sessions = &state.sessions;
    let resolved = match resp.extensions().get::<ResolvedSession>() {
        Some(r) => *r,
        None => ResolvedSession {
            sid: given.and_then(|t| sessions.verify(stream_id, &t, peer)),
            opened: false,
        },
    };
    let Some(sid) = resolved.sid else {
        return resp;
    };
    // A valid id this node does not hold (expired, or another replica's)
    // is adopted within the caps; refused, the request is charged to nobody.
    if !resolved.opened && !sessions.adopt(sid, stream_id, peer, ua, Instant::now()) {
        return resp;
    }
    // A body of known length is charged now; a streamed one (the segment
    // in progress) chunk by chunk as it goes out.
    let known = if status.is_success() && !head {
        crate::http::body_len(&resp)
    } else {
        Some(0)
    };
    let returning = !resolved.opened;
    let sessions = sessions.clone();
    let charge = move |bytes: u64| {
        sessions.served(
            sid,
            Served {
                stream_id,
                protocol: Some(protocol),
                quality: rendition.as_deref(),
                bytes,
                returning,
            },
        );
    };
    charge(known.unwrap_or(0));
    if known.is_some() {
        return resp;
    }
    crate::http::count_body(resp, charge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_parsing_and_targets() {
        assert_eq!(sid_of(Some("a=1&sid=abc.def")), Some("abc.def"));
        assert_eq!(sid_of(Some("sid=")), None);
        assert_eq!(sid_of(Some(&format!("sid={}", "x".repeat(200)))), None);
        assert_eq!(sid_of(None), None);
        assert_eq!(with_sid("x.m4s".into(), None), "x.m4s");
        assert_eq!(with_sid("x.m4s".into(), Some("s.1")), "x.m4s?sid=s.1");
        let s = Uuid::new_v4();
        assert_eq!(
            target(&format!("/hls/{s}/master.m3u8")),
            Some((s, None, "hls"))
        );
        assert_eq!(
            target(&format!("/hls/{s}/audio/segment-3.m4s")),
            Some((s, Some("audio"), "hls"))
        );
        assert_eq!(
            target(&format!("/dash/{s}/manifest.mpd")),
            Some((s, None, "dash"))
        );
        assert_eq!(target("/time"), None);
        assert_eq!(inactivity_timeout(2000), Duration::from_secs(6));
        let mut ext = Extensions::new();
        assert_eq!(client_ip(&ext), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        ext.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 9], 1))));
        assert_eq!(client_ip(&ext), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
        ext.insert(ClientAddr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(client_ip(&ext), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn manifests_keep_valid_open_sessions_and_replace_the_rest() {
        let sessions = ViewerSessions::new();
        let stream = Uuid::new_v4();
        let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let now = Instant::now();
        let minted = sessions.mint(stream, peer, None, now).unwrap();
        match manifest_session(&sessions, stream, Some(minted.as_str()), peer, now) {
            ManifestSession::Known(s) => assert_eq!(s, minted),
            other => panic!("{other:?}"),
        }
        // A made-up id gets a fresh one (and is counted as unsigned).
        let forged = format!("{}.{}", Uuid::new_v4(), "0".repeat(32));
        let fresh = manifest_session(&sessions, stream, Some(&forged), peer, now);
        assert!(
            matches!(&fresh, ManifestSession::New(s) if !forged.starts_with(&s.id().to_string()))
        );
        // Another stream's valid id is not taken over either.
        let other = manifest_session(&sessions, Uuid::new_v4(), Some(minted.as_str()), peer, now);
        assert!(matches!(&other, ManifestSession::New(s) if s.id() != minted.id()));
        // A valid id not open here keeps its id.
        let elsewhere = sessions.signer().mint(stream);
        match manifest_session(&sessions, stream, Some(elsewhere.as_str()), peer, now) {
            ManifestSession::New(s) => assert_eq!(s, elsewhere),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            sessions
                .limits()
                .hits(streaming_core::limits::LimitKind::SessionsUnsigned),
            2
        );
    }

    #[test]
    fn beyond_the_per_address_rate_manifests_play_without_a_session() {
        let sessions = ViewerSessions::new();
        let stream = Uuid::new_v4();
        let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        let now = Instant::now();
        let per_sec = sessions.policy().new_per_addr_per_sec;
        for _ in 0..per_sec {
            let m = manifest_session(&sessions, stream, None, peer, now);
            assert!(m.signed().is_some());
        }
        let m = manifest_session(&sessions, stream, None, peer, now);
        assert!(matches!(m, ManifestSession::Refused), "{m:?}");
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
        assert!(
            manifest_session(&sessions, stream, None, other, now)
                .signed()
                .is_some()
        );
    }
}
