//! `GET /ws/stream/{stream_id}`: the real-time channel of one stream.
//!
//! Messages (server → client), JSON objects each with a `type`:
//!
//! - `snapshot` on connect: `{"type":"snapshot","stream_id","status","viewers",
//!   "concurrent_viewers","qualities":[…]}` (video renditions in the segment
//!   store, best first; `source` leads);
//! - `status` within 1 s of the stream's `StreamStarted` / `StreamEnded`
//!   event: `{"type":"status","status":"ACTIVE"|"ENDED"|"ERROR","at":RFC 3339}`;
//! - `qualities` when the transcoded ladder changes: `{"type":"qualities","qualities":[…]}`;
//! - `metrics` every second: `{"type":"metrics","at","tick_ms","status",
//!   "concurrent_viewers","quality_distribution":{"source":7,"audio":3},
//!   "ingest_kbps","egress_kbps","buffering_ratio","errors","transcoder_speed",
//!   "qualities"}` — the 1-second sample of the [`crate::collector`], made
//!   once per stream and shared by every client ([`crate::live::LiveFeed`]);
//!   `at` is the sample's whole second, the same instant as the point stored
//!   for `GET /api/v1/metrics/{id}`, and `tick_ms` the Unix ms the tick ran.
//!   Viewer figures are those of `streaming_concurrent_viewers` and the REST
//!   `concurrent_viewers`.
//!
//! Before the upgrade: an `Origin` outside `cors.playback_origins` is 403,
//! beyond `websocket.max_clients` 503 and beyond
//! `websocket.max_clients_per_addr` 429, an unknown stream 404. Inbound
//! frames and messages are capped at `websocket.max_message_bytes` (4 KiB;
//! a client that sends more is closed) and the socket buffers are small, so
//! an idle client costs a few KiB. Every connection has
//! its own task and a bounded outgoing queue filled with `try_send`: a client
//! whose queue is full, whose socket write takes longer than 2 s, or which
//! leaves a ping (every 15 s) unanswered until the next one is dropped, so a
//! slow client never holds up the others.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::ws::{
    Message, Utf8Bytes, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use std::net::{IpAddr, Ipv4Addr};

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use streaming_core::events::Event;
use streaming_core::limits::{ClientAddr, LimitKind, SlotRefused};
use streaming_core::model::{StreamMetrics, StreamStatus};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{MissedTickBehavior, interval};
use tracing::debug;
use uuid::Uuid;

use super::DeliveryState;
use super::response::not_found;
use crate::packaging::SOURCE;

/// Interval of pings; a ping still unanswered at the next one drops the client.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Longest a single socket write may take before the client is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Outgoing messages queued per client before it counts as slow.
const QUEUE: usize = 16;
/// Read buffer of a client's socket (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 4096;
/// Bytes a client may leave unsent before the connection fails (our
/// messages are a few hundred bytes; the queue above bounds them first).
const MAX_WRITE_BUFFER: usize = 64 * 1024;

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WsMessage {
    Snapshot {
        stream_id: Uuid,
        status: &'static str,
        viewers: u64,
        concurrent_viewers: u64,
        qualities: Vec<String>,
    },
    Status {
        status: &'static str,
        at: String,
    },
    Qualities {
        qualities: Vec<String>,
    },
}

/// The `metrics` message, serialised from borrowed parts of a sample.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "metrics")]
struct MetricsMessage<'a> {
    /// The sample's second (RFC 3339, UTC).
    at: &'a str,
    /// When the collector's tick ran (Unix ms).
    tick_ms: i64,
    status: &'static str,
    concurrent_viewers: u64,
    /// Active viewers by current quality (rendition name).
    quality_distribution: &'a BTreeMap<String, u32>,
    ingest_kbps: u64,
    egress_kbps: u64,
    /// Stall time / watch time of beaconing players during the second.
    buffering_ratio: f64,
    /// Errors during the second.
    errors: u64,
    transcoder_speed: Option<f64>,
    qualities: &'a [String],
}

/// The `metrics` message of one sample, serialised (once per stream and tick).
pub(crate) fn metrics_text(
    s: &StreamMetrics,
    status: StreamStatus,
    qualities: Vec<String>,
    tick_ms: i64,
) -> Utf8Bytes {
    let at = rfc3339(s.at);
    let m = MetricsMessage {
        at: &at,
        tick_ms,
        status: status_str(status),
        concurrent_viewers: s.concurrent_viewers,
        quality_distribution: &s.quality_distribution,
        ingest_kbps: s.ingest_bitrate_kbps,
        egress_kbps: s.egress_bitrate_kbps,
        buffering_ratio: s.buffering_ratio,
        errors: s.errors,
        transcoder_speed: s.transcoder_speed,
        qualities: &qualities,
    };
    let mut out = Vec::with_capacity(384);
    match serde_json::to_writer(&mut out, &m) {
        // serde_json writes UTF-8 only.
        Ok(()) => String::from_utf8(out).unwrap_or_default().into(),
        Err(_) => Utf8Bytes::default(),
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Refusal of an upgrade, as a short plain-text answer.
fn refuse(status: StatusCode, retry: bool, why: &'static str) -> Response {
    let mut resp = (status, why).into_response();
    if retry {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    resp
}

/// The handler: the origin check (`cors.playback_origins`), the client caps
/// (`websocket.max_clients`, `websocket.max_clients_per_addr`), 404 for an
/// unknown stream, else the upgrade with small buffers and a 4 KiB cap on
/// inbound frames and messages (the server reads none of them anyway).
pub async fn stream_ws(
    State(state): State<DeliveryState>,
    Path(stream_id): Path<String>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&stream_id) else {
        return not_found("stream");
    };
    let guard = &state.guard;
    let ip = client
        .map(|Extension(c)| c.0)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !guard.playback_origins.permits(origin) {
        guard.limits.trip(LimitKind::WsOrigin, Some(ip), || {
            format!("WebSocket from origin {origin:?} refused (cors.playback_origins)")
        });
        return refuse(StatusCode::FORBIDDEN, false, "origin not allowed\n");
    }
    let slot = match guard.ws_slots.try_acquire(ip) {
        Ok(slot) => slot,
        Err(SlotRefused::Total) => {
            guard.limits.trip(LimitKind::WsClients, Some(ip), || {
                "WebSocket refused: websocket.max_clients reached".into()
            });
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                true,
                "too many WebSocket clients\n",
            );
        }
        Err(SlotRefused::PerAddr) => {
            guard
                .limits
                .trip(LimitKind::WsClientsPerAddr, Some(ip), || {
                    "WebSocket refused: websocket.max_clients_per_addr reached".into()
                });
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                true,
                "too many WebSocket clients from this address\n",
            );
        }
    };
    let status = match state.repo.get_stream(id).await {
        Ok(Some(s)) => s.status,
        Ok(None) => return not_found("stream"),
        Err(e) => {
            debug!(error = %e, "ws: stream lookup failed");
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "repository unavailable\n",
            )
                .into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let max = guard.ws_max_message_bytes.max(128);
    let ws = ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(max)
        .max_frame_size(max);
    // Subscribe before the snapshot so no event between the two is missed.
    let events = state.events.subscribe();
    ws.on_upgrade(move |socket| async move {
        let gauge = state.guard.limits.metrics().open_connections("websocket");
        gauge.inc();
        connection(state, id, status, events, socket, ip).await;
        gauge.dec();
        drop(slot);
    })
}

pub(crate) use super::hls::qualities_of;

fn status_str(s: StreamStatus) -> &'static str {
    s.as_str()
}

/// One client: forwards the stream's events and a metrics tick until the
/// client leaves, falls behind or stops answering pings.
async fn connection(
    state: DeliveryState,
    id: Uuid,
    initial: StreamStatus,
    mut events: broadcast::Receiver<Event>,
    socket: WebSocket,
    ip: IpAddr,
) {
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);

    // The writer: one socket write at a time, each bounded.
    let mut writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let closing = matches!(msg, Message::Close(_));
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(msg)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    debug!("ws: send took longer than {SEND_TIMEOUT:?}; dropping client");
                    return;
                }
            }
            if closing {
                return;
            }
        }
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
    });

    let mut status = initial;
    let mut feed = state.feed.subscribe(id, status);
    let send_text = |tx: &mpsc::Sender<Message>, text: Utf8Bytes| -> bool {
        match tx.try_send(Message::Text(text)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                debug!(%id, "ws: client queue full; dropping slow client");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    };
    let queue = |tx: &mpsc::Sender<Message>, m: &WsMessage| -> bool {
        match serde_json::to_string(m) {
            Ok(t) => send_text(tx, t.into()),
            Err(_) => true,
        }
    };

    let q = state
        .store
        .summary(id)
        .map(|s| qualities_of(&s))
        .unwrap_or_default();
    let viewers = state.sessions.count(id);
    let alive = queue(
        &tx,
        &WsMessage::Snapshot {
            stream_id: id,
            status: status_str(status),
            viewers,
            concurrent_viewers: viewers,
            qualities: q,
        },
    );
    if !alive {
        writer.abort();
        return;
    }

    let mut pings = interval(PING_EVERY);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    pings.tick().await; // the first tick is immediate
    let mut awaiting_pong = false;

    loop {
        let ok = tokio::select! {
            _ = &mut writer => break,
            ev = events.recv() => match ev {
                Ok(Event::StreamStarted { stream_id, at }) if stream_id == id => {
                    status = StreamStatus::Active;
                    state.feed.set_status(id, status);
                    queue(&tx, &WsMessage::Status { status: "ACTIVE", at: rfc3339(at) })
                }
                Ok(Event::StreamEnded { stream_id, at, .. }) if stream_id == id => {
                    // The repository knows whether the end was an error.
                    status = match state.repo.get_stream(id).await {
                        Ok(Some(s)) if s.status == StreamStatus::Error => StreamStatus::Error,
                        _ => StreamStatus::Ended,
                    };
                    state.feed.set_status(id, status);
                    queue(&tx, &WsMessage::Status { status: status_str(status), at: rfc3339(at) })
                }
                Ok(Event::QualityLevelsChanged { stream_id, new, .. }) if stream_id == id => {
                    let mut q = vec![SOURCE.to_string()];
                    q.extend(new.into_iter().filter(|n| n != SOURCE));
                    queue(&tx, &WsMessage::Qualities { qualities: q })
                }
                Ok(_) => true,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!(%id, missed = n, "ws: event bus lagged; re-reading status");
                    if let Ok(Some(s)) = state.repo.get_stream(id).await
                        && s.status != status
                    {
                        status = s.status;
                        queue(&tx, &WsMessage::Status { status: status_str(status), at: rfc3339(Utc::now()) })
                    } else {
                        true
                    }
                }
                Err(broadcast::error::RecvError::Closed) => false,
            },
            m = feed.recv() => match m {
                Ok(text) => send_text(&tx, text),
                // Behind: the next message is the newest anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => false,
            },
            _ = pings.tick() => {
                if awaiting_pong {
                    debug!(%id, "ws: ping unanswered; dropping client");
                    false
                } else {
                    awaiting_pong = true;
                    tx.try_send(Message::Ping(Default::default())).is_ok()
                }
            }
            msg = incoming.next() => match msg {
                Some(Ok(Message::Pong(_))) => {
                    awaiting_pong = false;
                    true
                }
                Some(Err(e)) => {
                    // tungstenite's capacity error: "Space limit exceeded: Message too long".
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        state.guard.limits.trip(LimitKind::WsMessageSize, Some(ip), || {
                            format!("WebSocket client sent an oversized message ({text}); closed")
                        });
                    }
                    false
                }
                Some(Ok(Message::Close(_))) | None => false,
                Some(Ok(_)) => true,
            },
        };
        if !ok {
            break;
        }
    }
    drop(tx);
    // Let the writer flush what is queued (bounded by its own timeouts).
    if tokio::time::timeout(SEND_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let m = WsMessage::Status {
            status: "ENDED",
            at: "2026-01-01T00:00:00.000Z".into(),
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "status");
        assert_eq!(v["status"], "ENDED");
        let sample = StreamMetrics {
            at: chrono::DateTime::from_timestamp(1_800_000_001, 0).unwrap(),
            quality_distribution: BTreeMap::from([("source".to_string(), 2)]),
            ingest_bitrate_kbps: 12,
            transcoder_speed: Some(1.5),
            ..StreamMetrics::default()
        };
        let text = metrics_text(&sample, StreamStatus::Active, vec!["source".into()], 7);
        assert!(
            text.as_str()
                .starts_with(r#"{"type":"metrics","at":"2027-01-15T08:00:01.000Z","tick_ms":7,"#),
            "{}",
            text.as_str()
        );
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(v["at"], "2027-01-15T08:00:01.000Z");
        assert_eq!(v["tick_ms"], 7);
        assert_eq!(v["ingest_kbps"], 12);
        assert_eq!(v["transcoder_speed"], 1.5);
        assert_eq!(v["status"], "ACTIVE");
        assert_eq!(v["type"], "metrics");
        assert_eq!(v["concurrent_viewers"], 0);
        assert_eq!(v["qualities"][0], "source");
        assert_eq!(v["quality_distribution"]["source"], 2);
    }
}
