//! Player beacons: `POST /api/v1/sessions/{session_id}/events`.
//!
//! Players report what the origin cannot see: startup time, stalls, quality
//! changes, errors, and a heartbeat (every 2 s from the watch page). The
//! session id is one the server signed for the stream the events name (from
//! a master playlist's `sid`, or `POST /api/v1/streams/{id}/sessions`); any
//! other is refused (403, counted as `sessions_unsigned`). Beacons are taken
//! for live streams only (409 otherwise), at most
//! `sessions.beacons_per_session_per_sec` per session (429). A valid id this
//! node does not hold opens a session (within the caps of
//! [`streaming_core::sessions`]), so a viewer whose playlists and segments
//! come from a CDN is counted from its beacons alone. Bodies: at most
//! `http.max_beacon_body_bytes` and `http.max_beacon_events` events (413).
//! Nothing a player sends makes more than one log line per second.
//! Public (players hold no token).

use std::collections::BTreeSet;
use std::time::Instant;

use axum::extract::{FromRequest, Request, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use serde::Deserialize;
use streaming_core::limits::LimitKind;
use streaming_core::sessions::{Beacon, BeaconError};
use tracing::debug;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::docs::BeaconErrors;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::{Problem, ProblemKind};
use crate::sessions::{client_ip, is_live, refusal, user_agent};

/// Longest quality name accepted.
const MAX_QUALITY: usize = 64;
/// Longest error message kept.
const MAX_MESSAGE: usize = 500;

/// A rendition name as a player reports it (`source`, `720p`, …).
type Quality = String;

/// One player event; `type` names it, `stream_id` is the stream watched.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BeaconEvent {
    /// Still watching (send at least every 2 s).
    Heartbeat {
        stream_id: Uuid,
        #[schema(min_length = 1, max_length = 64)]
        quality: Option<Quality>,
    },
    /// First frame shown, `startup_ms` after the player started.
    Startup {
        stream_id: Uuid,
        /// Milliseconds (JSON numbers such as `850` or `850.0`).
        #[schema(value_type = u32, maximum = 600000)]
        startup_ms: f64,
        #[schema(min_length = 1, max_length = 64)]
        quality: Option<Quality>,
    },
    /// Playback stalled (the buffer ran dry).
    StallStart { stream_id: Uuid },
    /// Playback resumed; `duration_ms` when the player measured the stall.
    StallEnd {
        stream_id: Uuid,
        #[schema(value_type = Option<u64>)]
        duration_ms: Option<f64>,
    },
    /// The player switched rendition.
    QualityChange {
        stream_id: Uuid,
        #[schema(min_length = 1, max_length = 64)]
        quality: Quality,
    },
    /// A playback error.
    Error {
        stream_id: Uuid,
        #[schema(max_length = 500)]
        message: Option<String>,
    },
}

impl BeaconEvent {
    pub fn stream_id(&self) -> Uuid {
        match self {
            BeaconEvent::Heartbeat { stream_id, .. }
            | BeaconEvent::Startup { stream_id, .. }
            | BeaconEvent::StallStart { stream_id }
            | BeaconEvent::StallEnd { stream_id, .. }
            | BeaconEvent::QualityChange { stream_id, .. }
            | BeaconEvent::Error { stream_id, .. } => *stream_id,
        }
    }
}

/// One event, or several in an array (at most 20 events and 64 KiB by default).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BeaconBody {
    One(BeaconEvent),
    Many(BeaconList),
}

/// Several events (1 to 20 by default, `http.max_beacon_events`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(min_items = 1, max_items = 20)]
pub struct BeaconList(Vec<BeaconEvent>);

/// A reported quality, cleaned: control characters dropped, at most
/// [`MAX_QUALITY`] characters; nothing left is no quality.
fn clean_quality(q: Option<&str>) -> Option<String> {
    let q: String = q?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_QUALITY)
        .collect();
    let q = q.trim();
    (!q.is_empty()).then(|| q.to_string())
}

/// A reported duration as whole milliseconds (negative or NaN: 0).
fn millis(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// The registry's [`Beacon`] of an event (`None`: nothing to record but presence).
fn to_beacon(e: &BeaconEvent) -> Beacon {
    match e {
        BeaconEvent::Heartbeat { quality, .. } => Beacon::Heartbeat {
            quality: clean_quality(quality.as_deref()),
        },
        BeaconEvent::Startup {
            startup_ms,
            quality,
            ..
        } => Beacon::Startup {
            startup_ms: millis(*startup_ms).min(600_000) as u32,
            quality: clean_quality(quality.as_deref()),
        },
        BeaconEvent::StallStart { .. } => Beacon::StallStart,
        BeaconEvent::StallEnd { duration_ms, .. } => Beacon::StallEnd {
            duration_ms: duration_ms.map(|d| millis(d).min(3_600_000)),
        },
        BeaconEvent::QualityChange { quality, .. } => match clean_quality(Some(quality)) {
            Some(quality) => Beacon::QualityChange { quality },
            None => Beacon::Heartbeat { quality: None },
        },
        BeaconEvent::Error { .. } => Beacon::Error,
    }
}

fn other_stream() -> Problem {
    Problem::new(
        ProblemKind::Conflict,
        "the session belongs to another stream",
    )
}

/// A body limit tripped: counted, 413.
fn too_large(state: &ApiState, peer: std::net::IpAddr, detail: String) -> Problem {
    state
        .sessions
        .limits()
        .trip(LimitKind::HttpBodySize, Some(peer), || {
            format!("beacon refused: {detail}")
        });
    Problem::new(ProblemKind::PayloadTooLarge, detail)
}

/// Reads and parses a beacon body within the limits (size, then events).
async fn read_events(
    state: &ApiState,
    peer: std::net::IpAddr,
    req: Request,
) -> Result<Vec<BeaconEvent>, Problem> {
    let policy = state.sessions.policy();
    let max_bytes = policy.max_beacon_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large(
            state,
            peer,
            format!("the body is larger than {max_bytes} bytes"),
        ));
    }
    let (parts, body) = req.into_parts();
    // A body that cannot be read in full within the limit is too large
    // (an undeclared length above it; the reader never holds more).
    let Ok(bytes) = axum::body::to_bytes(body, max_bytes).await else {
        return Err(too_large(
            state,
            peer,
            format!("the body is larger than {max_bytes} bytes"),
        ));
    };
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let ApiJson(body) = ApiJson::<BeaconBody>::from_request(req, &()).await?;
    let list = match body {
        BeaconBody::One(e) => vec![e],
        BeaconBody::Many(BeaconList(v)) => v,
    };
    if list.len() > policy.max_beacon_events {
        return Err(too_large(
            state,
            peer,
            format!(
                "{} events in one body; at most {} are taken",
                list.len(),
                policy.max_beacon_events
            ),
        ));
    }
    if list.is_empty() {
        return Err(Problem::new(ProblemKind::InvalidInput, "no events"));
    }
    Ok(list)
}

/// Records player events for a viewer session.
#[utoipa::path(
    post, path = "/api/v1/sessions/{session_id}/events", tag = "analytics",
    params(("session_id" = String, Path,
        description = "The signed session id (`{uuid}.{mac}`): the `sid` of the playback URLs, or `session_id` from `POST /api/v1/streams/{id}/sessions`",
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\.[0-9a-fA-F]{32}$")),
    request_body(content = BeaconBody, content_type = "application/json"),
    responses((status = 204, description = "Recorded"), BeaconErrors)
)]
pub async fn events(
    State(state): State<ApiState>,
    ApiPath(token): ApiPath<String>,
    headers: HeaderMap,
    ext: Extensions,
    req: Request,
) -> Result<StatusCode, Problem> {
    let peer = client_ip(&ext);
    let list = read_events(&state, peer, req).await?;
    let sessions = &state.sessions;
    // The id must be signed for the stream every event names.
    let streams: BTreeSet<Uuid> = list.iter().map(BeaconEvent::stream_id).collect();
    let mut sid = None;
    for stream_id in &streams {
        match sessions.verify(*stream_id, &token, peer) {
            Some(id) => sid = Some(id),
            None => {
                return Err(Problem::new(
                    ProblemKind::Forbidden,
                    "not a session id this server signed for this stream; get one from \
                     POST /api/v1/streams/{id}/sessions or the master playlist",
                ));
            }
        }
    }
    let (Some(sid), Some(&stream_id)) = (sid, streams.first()) else {
        return Err(Problem::new(ProblemKind::InvalidInput, "no events"));
    };
    if !is_live(&state, stream_id) {
        return Err(Problem::new(
            ProblemKind::Conflict,
            format!("stream {stream_id} is not live; beacons are taken for live streams only"),
        ));
    }
    let ua = user_agent(&headers);
    let now = Instant::now();
    sessions
        .accept_beacons(sid, stream_id, peer, ua.clone(), now)
        .map_err(refusal)?;
    for event in &list {
        if let BeaconEvent::Error { message, .. } = event {
            let message: String = message
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_MESSAGE)
                .collect();
            sessions.log_player_error(stream_id, sid, &message, now);
        }
    }
    // The whole body under one lock of the registry.
    let beacons: Vec<Beacon> = list.iter().map(to_beacon).collect();
    if let Err(BeaconError::OtherStream) = sessions.beacons(sid, stream_id, beacons, ua) {
        return Err(other_stream());
    }
    debug!(session = %sid, events = list.len(), "beacons recorded");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> BeaconEvent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn events_parse_by_type_and_are_cleaned() {
        let sid = Uuid::nil();
        let e = event(&format!(
            r#"{{"type":"startup","stream_id":"{sid}","startup_ms":850,"quality":"720p"}}"#
        ));
        assert_eq!(e.stream_id(), sid);
        assert_eq!(
            to_beacon(&e),
            Beacon::Startup {
                startup_ms: 850,
                quality: Some("720p".into())
            }
        );
        assert!(
            serde_json::from_str::<BeaconEvent>(&format!(
                r#"{{"type":"quality_change","stream_id":"{sid}"}}"#
            ))
            .is_err(),
            "quality_change needs a quality"
        );
        assert!(
            serde_json::from_str::<BeaconEvent>(&format!(
                r#"{{"type":"startup","stream_id":"{sid}"}}"#
            ))
            .is_err(),
            "startup needs startup_ms"
        );
        let e = event(&format!(
            r#"{{"type":"heartbeat","stream_id":"{sid}","quality":"a\u0007"}}"#
        ));
        assert_eq!(
            to_beacon(&e),
            Beacon::Heartbeat {
                quality: Some("a".into())
            }
        );
        let e = event(&format!(
            r#"{{"type":"quality_change","stream_id":"{sid}","quality":""}}"#
        ));
        assert_eq!(to_beacon(&e), Beacon::Heartbeat { quality: None });
        let many: BeaconBody = serde_json::from_str(&format!(
            r#"[{{"type":"stall_start","stream_id":"{sid}"}},{{"type":"stall_end","stream_id":"{sid}","duration_ms":300}}]"#
        ))
        .unwrap();
        assert!(matches!(many, BeaconBody::Many(BeaconList(v)) if v.len() == 2));
        assert!(serde_json::from_str::<BeaconBody>(r#"{"type":"nope"}"#).is_err());
        let e = event(&format!(
            r#"{{"type":"stall_end","stream_id":"{sid}","duration_ms":2406.0}}"#
        ));
        assert_eq!(
            to_beacon(&e),
            Beacon::StallEnd {
                duration_ms: Some(2406)
            }
        );
    }

    #[test]
    fn the_document_states_the_event_limits_and_the_id_shape() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let list = &doc["components"]["schemas"]["BeaconList"];
        assert_eq!(
            (list["minItems"].as_u64(), list["maxItems"].as_u64()),
            (Some(1), Some(20)),
            "{list}"
        );
        let op = &doc["paths"]["/api/v1/sessions/{session_id}/events"]["post"];
        let pattern = op["parameters"][0]["schema"]["pattern"]
            .as_str()
            .unwrap_or_default();
        assert!(pattern.contains(r"\.[0-9a-fA-F]{32}$"), "{op}");
        for status in ["403", "409", "413", "429"] {
            assert!(op["responses"][status].is_object(), "{status}: {op}");
        }
        let mint = &doc["paths"]["/api/v1/streams/{id}/sessions"]["post"];
        for status in ["201", "404", "429", "503"] {
            assert!(mint["responses"][status].is_object(), "{status}: {mint}");
        }
    }
}
