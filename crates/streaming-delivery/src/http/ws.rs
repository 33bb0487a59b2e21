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
//! - `metrics` every second: `{"type":"metrics","at","status","concurrent_viewers",
//!   "quality_distribution":{"source":7,"audio":3},"ingest_kbps","qualities"}`;
//!   `ingest_kbps` is the bitrate of the newest three segments of the source
//!   video and audio renditions (0 when not live). Viewer figures come from the
//!   viewer sessions ([`crate::sessions`]): the same number as
//!   `streaming_concurrent_viewers` and the REST `concurrent_viewers`.
//!
//! An unknown stream is answered 404 before the upgrade. Every connection has
//! its own task and a bounded outgoing queue filled with `try_send`: a client
//! whose queue is full, whose socket write takes longer than 2 s, or which
//! leaves a ping (every 15 s) unanswered until the next one is dropped, so a
//! slow client never holds up the others.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use streaming_core::events::Event;
use streaming_core::model::StreamStatus;
use streaming_core::store::StreamMediaState;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior, interval, interval_at};
use tracing::debug;
use uuid::Uuid;

use super::DeliveryState;
use super::hls::video_renditions;
use super::response::not_found;
use crate::packaging::{AUDIO, SOURCE};

/// Interval of `metrics` messages.
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// Interval of pings; a ping still unanswered at the next one drops the client.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Longest a single socket write may take before the client is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Outgoing messages queued per client before it counts as slow.
const QUEUE: usize = 16;
/// Segments per rendition that `ingest_kbps` is measured over.
const INGEST_WINDOW: usize = 3;

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
    Metrics {
        at: String,
        status: &'static str,
        concurrent_viewers: u64,
        /// Active viewers by current quality (rendition name).
        quality_distribution: BTreeMap<String, u32>,
        ingest_kbps: u64,
        qualities: Vec<String>,
    },
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The handler: 404 for an unknown stream, else the upgrade.
pub async fn stream_ws(
    State(state): State<DeliveryState>,
    Path(stream_id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&stream_id) else {
        return not_found("stream");
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
    // Subscribe before the snapshot so no event between the two is missed.
    let events = state.events.subscribe();
    ws.on_upgrade(move |socket| connection(state, id, status, events, socket))
}

/// Video renditions of the stream in the store, best first.
fn qualities(st: &StreamMediaState) -> Vec<String> {
    video_renditions(st)
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect()
}

/// Bitrate of the newest segments of the source video and audio, in kbit/s.
fn ingest_kbps(st: &StreamMediaState) -> u64 {
    if st.ended {
        return 0;
    }
    // Video and audio run in parallel: their rates add.
    let mut kbps = 0f64;
    for name in [SOURCE, AUDIO] {
        let Some(r) = st.renditions.get(name) else {
            continue;
        };
        let (mut b, mut s) = (0u64, 0f64);
        for seg in r.segments.iter().rev().take(INGEST_WINDOW) {
            b += seg.data.len() as u64;
            s += seg.duration_secs();
        }
        if s > 0.0 {
            kbps += b as f64 * 8.0 / s / 1000.0;
        }
    }
    kbps.round() as u64
}

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
    let media_view = |f: &dyn Fn(&StreamMediaState) -> (Vec<String>, u64)| {
        state
            .store
            .get(id)
            .map(|m| m.with(|st| f(st)))
            .unwrap_or_default()
    };
    let queue = |tx: &mpsc::Sender<Message>, m: &WsMessage| -> bool {
        let text = match serde_json::to_string(m) {
            Ok(t) => t,
            Err(_) => return true,
        };
        match tx.try_send(Message::Text(text.into())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                debug!(%id, "ws: client queue full; dropping slow client");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    };

    let (q, _) = media_view(&|st| (qualities(st), 0));
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

    let mut metrics = interval_at(Instant::now() + METRICS_EVERY, METRICS_EVERY);
    metrics.set_missed_tick_behavior(MissedTickBehavior::Skip);
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
                    queue(&tx, &WsMessage::Status { status: "ACTIVE", at: rfc3339(at) })
                }
                Ok(Event::StreamEnded { stream_id, at, .. }) if stream_id == id => {
                    // The repository knows whether the end was an error.
                    status = match state.repo.get_stream(id).await {
                        Ok(Some(s)) if s.status == StreamStatus::Error => StreamStatus::Error,
                        _ => StreamStatus::Ended,
                    };
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
            _ = metrics.tick() => {
                let (q, kbps) = media_view(&|st| (qualities(st), ingest_kbps(st)));
                queue(&tx, &WsMessage::Metrics {
                    at: rfc3339(Utc::now()),
                    status: status_str(status),
                    concurrent_viewers: state.sessions.count(id),
                    quality_distribution: state.sessions.quality_distribution(id),
                    ingest_kbps: kbps,
                    qualities: q,
                })
            }
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
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => false,
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
    use streaming_core::store::{Rendition, RenditionInfo, RenditionKind, StoredSegment};

    #[test]
    fn messages_are_tagged_json() {
        let m = WsMessage::Status {
            status: "ENDED",
            at: "2026-01-01T00:00:00.000Z".into(),
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "status");
        assert_eq!(v["status"], "ENDED");
        let m = WsMessage::Metrics {
            at: String::new(),
            status: "ACTIVE",
            concurrent_viewers: 0,
            quality_distribution: BTreeMap::from([("source".to_string(), 2)]),
            ingest_kbps: 12,
            qualities: vec!["source".into()],
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "metrics");
        assert_eq!(v["concurrent_viewers"], 0);
        assert_eq!(v["qualities"][0], "source");
        assert_eq!(v["quality_distribution"]["source"], 2);
    }

    fn rendition(kind: RenditionKind, sizes: &[usize]) -> Rendition {
        Rendition {
            info: RenditionInfo {
                kind,
                codec: String::new(),
                timescale: 1000,
                width: None,
                height: None,
                frame_rate: None,
                sample_rate: None,
                channels: None,
            },
            inits: Default::default(),
            segments: sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| StoredSegment {
                    number: i as u64,
                    start: i as u64 * 2000,
                    duration: 2000,
                    timescale: 1000,
                    data: vec![0u8; n].into(),
                    discontinuity: false,
                    init_version: 1,
                    program_date_time_ms: 0,
                })
                .collect(),
            updated_ms: 0,
        }
    }

    #[test]
    fn ingest_kbps_adds_source_video_and_audio_over_the_newest_three() {
        let mut st = StreamMediaState {
            renditions: Default::default(),
            ended: false,
            availability_start_ms: 0,
            updated_ms: 0,
            discontinuity_sequence: Default::default(),
        };
        assert_eq!(ingest_kbps(&st), 0);
        // Oldest segment is outside the window: 3 × 250 kB over 6 s = 1000 kbit/s.
        st.renditions.insert(
            SOURCE.into(),
            rendition(
                RenditionKind::Video,
                &[1_000_000, 250_000, 250_000, 250_000],
            ),
        );
        // 32 kB per 2 s = 128 kbit/s.
        st.renditions
            .insert(AUDIO.into(), rendition(RenditionKind::Audio, &[32_000; 5]));
        // Transcoded rungs do not count.
        st.renditions.insert(
            "480p".into(),
            rendition(RenditionKind::Video, &[999_999; 3]),
        );
        assert_eq!(ingest_kbps(&st), 1128);
        st.ended = true;
        assert_eq!(ingest_kbps(&st), 0);
    }
}
