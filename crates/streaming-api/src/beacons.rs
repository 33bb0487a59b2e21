//! Player beacons: `POST /api/v1/sessions/{session_id}/events`.
//!
//! Players report what the origin cannot see: startup time, stalls, quality
//! changes, errors, and a heartbeat (every 2 s from the watch page). A
//! session id the server does not know starts a session, so a viewer whose
//! playlists and segments come from a CDN is counted from its beacons alone;
//! a player that put its own id on the master URL (`?sid=`) has its requests
//! and its beacons in one session. Public (players hold no token); CORS is
//! open so players on other origins may send them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use streaming_core::sessions::{Beacon, BeaconError};
use tracing::{debug, info};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::docs::BeaconErrors;
use crate::extract::{ApiJson, ApiPath, parse_id};
use crate::problem::{Problem, ProblemKind};

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

/// One event, or several in an array (the body is at most 2 MiB).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BeaconBody {
    One(BeaconEvent),
    Many(Vec<BeaconEvent>),
}

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

/// Records player events for a viewer session.
#[utoipa::path(
    post, path = "/api/v1/sessions/{session_id}/events", tag = "analytics",
    params(("session_id" = Uuid, Path, description = "The viewer session (the `sid` of the playback URLs, or one the player drew)")),
    request_body(content = BeaconBody, content_type = "application/json"),
    responses((status = 204, description = "Recorded"), BeaconErrors)
)]
pub async fn events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<BeaconBody>,
) -> Result<StatusCode, Problem> {
    let sid = parse_id(&id, "session")?;
    let list = match body {
        BeaconBody::One(e) => vec![e],
        BeaconBody::Many(v) => v,
    };
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect::<String>());
    for event in &list {
        let stream_id = event.stream_id();
        match state.sessions.stream_of(sid) {
            Some(s) if s == stream_id => {}
            Some(_) => return Err(other_stream()),
            // A new session: the stream must exist.
            None => drop(state.stream(stream_id).await?),
        }
        if let BeaconEvent::Error { message, .. } = event {
            let message: String = message
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_MESSAGE)
                .collect();
            info!(%stream_id, session = %sid, %message, "player reported an error");
        }
        match state
            .sessions
            .beacon(sid, stream_id, to_beacon(event), ua.clone())
        {
            Ok(()) => {}
            Err(BeaconError::OtherStream) => return Err(other_stream()),
        }
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
        assert!(matches!(many, BeaconBody::Many(v) if v.len() == 2));
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
}
