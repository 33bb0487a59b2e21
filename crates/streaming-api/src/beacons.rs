//! Player beacons: `POST /api/v1/sessions/{session_id}/events`.
//!
//! Players report what the origin cannot see: startup time, stalls, quality
//! changes, errors, and a heartbeat (every 2 s from the watch page). A
//! session id the server does not know starts a session, so a viewer whose
//! playlists and segments come from a CDN is counted from its beacons alone;
//! a player that put its own id on the master URL (`?sid=`) has its requests
//! and its beacons in one session. Public (players hold no token); CORS is
//! open so players on other origins may send them.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use streaming_core::sessions::{Beacon, BeaconError};
use tracing::{debug, info};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::docs::BeaconErrors;
use crate::extract::{ApiJson, ApiPath, parse_id};
use crate::problem::{Problem, ProblemKind};

/// Most events in one body.
pub const MAX_EVENTS: usize = 50;
/// Longest quality name accepted.
const MAX_QUALITY: usize = 64;
/// Longest error message kept.
const MAX_MESSAGE: usize = 500;

/// What happened in the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BeaconType {
    /// Still watching (send at least every 2 s).
    Heartbeat,
    /// First frame shown; `startup_ms` is required.
    Startup,
    /// Playback stalled (buffer ran dry).
    StallStart,
    /// Playback resumed; `duration_ms` optional.
    StallEnd,
    /// The player switched rendition; `quality` is required.
    QualityChange,
    /// A playback error; `message` optional.
    Error,
}

/// One player event.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BeaconEvent {
    #[serde(rename = "type")]
    pub kind: BeaconType,
    /// The stream watched.
    pub stream_id: Uuid,
    /// The rendition playing (`source`, `720p`, …).
    #[schema(max_length = 64)]
    pub quality: Option<String>,
    /// Time from the player's start to the first frame.
    #[schema(maximum = 600000)]
    pub startup_ms: Option<u32>,
    /// Length of the stall that ended.
    pub duration_ms: Option<u64>,
    /// What went wrong (errors).
    #[schema(max_length = 500)]
    pub message: Option<String>,
}

/// One event, or up to 50 in an array.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BeaconBody {
    One(BeaconEvent),
    Many(Vec<BeaconEvent>),
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::InvalidInput, detail)
}

/// Checks an event and turns it into the registry's [`Beacon`].
fn to_beacon(e: &BeaconEvent) -> Result<Beacon, Problem> {
    let quality = match &e.quality {
        Some(q) if q.is_empty() || q.len() > MAX_QUALITY || q.chars().any(char::is_control) => {
            return Err(invalid(format!(
                "quality must be 1 to {MAX_QUALITY} printable characters"
            )));
        }
        q => q.clone(),
    };
    Ok(match e.kind {
        BeaconType::Heartbeat => Beacon::Heartbeat { quality },
        BeaconType::Startup => Beacon::Startup {
            startup_ms: e
                .startup_ms
                .filter(|ms| *ms <= 600_000)
                .ok_or_else(|| invalid("a startup event needs startup_ms (0 to 600000)"))?,
            quality,
        },
        BeaconType::StallStart => Beacon::StallStart,
        BeaconType::StallEnd => Beacon::StallEnd {
            duration_ms: e.duration_ms.map(|d| d.min(3_600_000)),
        },
        BeaconType::QualityChange => Beacon::QualityChange {
            quality: quality.ok_or_else(|| invalid("a quality_change event needs quality"))?,
        },
        BeaconType::Error => Beacon::Error,
    })
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
    if list.is_empty() || list.len() > MAX_EVENTS {
        return Err(invalid(format!("send 1 to {MAX_EVENTS} events")));
    }
    let stream_id = list[0].stream_id;
    if list.iter().any(|e| e.stream_id != stream_id) {
        return Err(invalid("all events of one body must name the same stream"));
    }
    let beacons = list.iter().map(to_beacon).collect::<Result<Vec<_>, _>>()?;
    match state.sessions.stream_of(sid) {
        Some(s) if s == stream_id => {}
        Some(_) => return Err(invalid("the session belongs to another stream")),
        None => {
            // A new session: the stream must exist.
            state.stream(stream_id).await?;
        }
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect::<String>());
    for (event, beacon) in list.iter().zip(beacons) {
        if let Beacon::Error = beacon {
            let message: String = event
                .message
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(MAX_MESSAGE)
                .collect();
            info!(%stream_id, session = %sid, %message, "player reported an error");
        }
        match state.sessions.beacon(sid, stream_id, beacon, ua.clone()) {
            Ok(()) => {}
            Err(BeaconError::OtherStream) => {
                return Err(invalid("the session belongs to another stream"));
            }
        }
    }
    debug!(%stream_id, session = %sid, events = list.len(), "beacons recorded");
    Ok(StatusCode::NO_CONTENT)
}

/// Open CORS for the beacon route (players may live on other origins): the
/// preflight is answered here, every answer carries the allow headers.
pub async fn cors(req: Request, next: Next) -> Response {
    let is_beacon = req.uri().path().starts_with("/api/v1/sessions/");
    if !is_beacon {
        return next.run(req).await;
    }
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> BeaconEvent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn events_parse_and_are_checked() {
        let sid = Uuid::nil();
        let e = event(&format!(
            r#"{{"type":"startup","stream_id":"{sid}","startup_ms":850,"quality":"720p"}}"#
        ));
        assert_eq!(
            to_beacon(&e).unwrap(),
            Beacon::Startup {
                startup_ms: 850,
                quality: Some("720p".into())
            }
        );
        let e = event(&format!(
            r#"{{"type":"quality_change","stream_id":"{sid}"}}"#
        ));
        assert!(to_beacon(&e).is_err(), "quality_change needs a quality");
        let e = event(&format!(r#"{{"type":"startup","stream_id":"{sid}"}}"#));
        assert!(to_beacon(&e).is_err(), "startup needs startup_ms");
        let e = event(&format!(
            r#"{{"type":"heartbeat","stream_id":"{sid}","quality":"a\u0007"}}"#
        ));
        assert!(to_beacon(&e).is_err(), "control characters are refused");
        let many: BeaconBody = serde_json::from_str(&format!(
            r#"[{{"type":"stall_start","stream_id":"{sid}"}},{{"type":"stall_end","stream_id":"{sid}","duration_ms":300}}]"#
        ))
        .unwrap();
        assert!(matches!(many, BeaconBody::Many(v) if v.len() == 2));
        assert!(serde_json::from_str::<BeaconBody>(r#"{"type":"nope"}"#).is_err());
    }
}
