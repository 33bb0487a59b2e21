//! Player beacons: `POST /api/v1/sessions/{session_id}/events` with one JSON
//! event (`heartbeat`, `startup`, `quality_change`, …), and the names the
//! tool derives from URLs (stream id, rendition name).

use reqwest::Url;
use serde_json::{Value, json};

/// The beacon endpoint of `session` on the server of `base`.
pub fn events_url(base: &Url, session: &str) -> Option<Url> {
    let mut u = base.join("/api/v1/sessions/").ok()?;
    u.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .push(session)
        .push("events");
    Some(u)
}

/// Where a player of `stream_id` gets a signed session id (`POST`).
pub fn sessions_url(base: &Url, stream_id: &str) -> Option<Url> {
    let mut u = base.join("/api/v1/streams/").ok()?;
    u.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .push(stream_id)
        .push("sessions");
    Some(u)
}

/// The `session_id` of a minting answer (`{"session_id": …}`).
pub fn session_id_from(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let id = v["session_id"].as_str()?;
    // URL-safe as the server makes them: hex digits, hyphens, one dot.
    id.bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'.')
        .then(|| id.to_string())
}

/// `{"type":"heartbeat","stream_id":…,"quality":…}`.
pub fn heartbeat(stream_id: &str, quality: Option<&str>) -> Value {
    with_quality(
        json!({"type": "heartbeat", "stream_id": stream_id}),
        quality,
    )
}

/// `{"type":"startup","stream_id":…,"startup_ms":…,"quality":…}`.
pub fn startup(stream_id: &str, startup_ms: u64, quality: Option<&str>) -> Value {
    with_quality(
        json!({"type": "startup", "stream_id": stream_id, "startup_ms": startup_ms}),
        quality,
    )
}

/// `{"type":"quality_change","stream_id":…,"quality":…}` (quality required).
pub fn quality_change(stream_id: &str, quality: &str) -> Value {
    json!({"type": "quality_change", "stream_id": stream_id, "quality": quality})
}

fn with_quality(mut v: Value, quality: Option<&str>) -> Value {
    if let Some(q) = quality {
        v["quality"] = json!(q);
    }
    v
}

/// The stream id in `/hls/{id}/…` or `/dash/{id}/…` (e.g. the master playlist
/// `/hls/{id}/master.m3u8`).
pub fn stream_id_from(url: &Url) -> Option<String> {
    let mut segs = url.path_segments()?;
    match segs.next()? {
        "hls" | "dash" => {}
        _ => return None,
    }
    let id = segs.next()?;
    // At least one more segment (the file); `/hls/{id}` alone is not a stream URL.
    segs.next()?;
    (!id.is_empty()).then(|| id.to_string())
}

/// The rendition name of a media playlist URL `/hls/{id}/{name}/index.m3u8`.
pub fn quality_from(url: &Url) -> Option<String> {
    let segs: Vec<&str> = url.path_segments()?.collect();
    match segs.as_slice() {
        ["hls", _, name, file] if file.ends_with(".m3u8") && !name.is_empty() => {
            Some((*name).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = "0b6c3c1e-8f1a-4a57-9a51-1d2f3e4a5b6c";
        assert_eq!(
            heartbeat(id, Some("720p")).to_string(),
            format!(r#"{{"quality":"720p","stream_id":"{id}","type":"heartbeat"}}"#)
        );
        assert_eq!(
            heartbeat(id, None),
            json!({"type": "heartbeat", "stream_id": id})
        );
        assert_eq!(
            startup(id, 850, Some("source")),
            json!({"type": "startup", "stream_id": id, "startup_ms": 850, "quality": "source"})
        );
        assert_eq!(
            quality_change(id, "480p"),
            json!({"type": "quality_change", "stream_id": id, "quality": "480p"})
        );
    }

    #[test]
    fn urls() {
        let m = Url::parse("http://127.0.0.1:8080/hls/abc-1/master.m3u8?x=1").unwrap();
        assert_eq!(stream_id_from(&m).as_deref(), Some("abc-1"));
        let d = Url::parse("http://127.0.0.1/dash/xyz/manifest.mpd").unwrap();
        assert_eq!(stream_id_from(&d).as_deref(), Some("xyz"));
        for bad in [
            "http://127.0.0.1/hls/abc",
            "http://127.0.0.1/x/abc/master.m3u8",
        ] {
            assert_eq!(stream_id_from(&Url::parse(bad).unwrap()), None, "{bad}");
        }
        let v = Url::parse("http://127.0.0.1/hls/abc/720p/index.m3u8?sid=s").unwrap();
        assert_eq!(quality_from(&v).as_deref(), Some("720p"));
        assert_eq!(quality_from(&m), None);
        assert_eq!(
            events_url(&m, "s-1").unwrap().as_str(),
            "http://127.0.0.1:8080/api/v1/sessions/s-1/events"
        );
        assert_eq!(
            sessions_url(&m, "abc-1").unwrap().as_str(),
            "http://127.0.0.1:8080/api/v1/streams/abc-1/sessions"
        );
        assert_eq!(
            session_id_from(br#"{"session_id":"0b6c-1.f00d","stream_id":"x"}"#).as_deref(),
            Some("0b6c-1.f00d")
        );
        assert_eq!(session_id_from(br#"{"session_id":"a/../b"}"#), None);
        assert_eq!(session_id_from(b"not json"), None);
    }
}
