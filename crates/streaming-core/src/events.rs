//! Domain events and the in-process event bus.
//!
//! Every stage publishes what happened; the WebSocket hub, metrics and the
//! database consume it. In-process this is a `tokio::sync::broadcast`; Kafka
//! takes its place when the server is scaled out.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Event {
    /// First media of a broadcast arrived; the stream is ACTIVE.
    StreamStarted { stream_id: Uuid, at: DateTime<Utc> },
    /// The broadcast ended (encoder stopped, connection lost or server shutdown).
    StreamEnded {
        stream_id: Uuid,
        at: DateTime<Utc>,
        reason: String,
    },
    /// A second publish with the stream's key took the stream over.
    PublisherTakeover { stream_id: Uuid, at: DateTime<Utc> },
    /// The ladder of transcoded renditions changed (names, highest first).
    QualityLevelsChanged {
        stream_id: Uuid,
        at: DateTime<Utc>,
        old: Vec<String>,
        new: Vec<String>,
    },
    /// The source's measured bitrate or resolution changed enough to matter.
    BitrateAdapted {
        stream_id: Uuid,
        at: DateTime<Utc>,
        old_kbps: u32,
        new_kbps: u32,
        old_resolution: Option<(u32, u32)>,
        new_resolution: Option<(u32, u32)>,
    },
    /// The transcoder died and was restarted (or gave up).
    TranscoderRestarted {
        stream_id: Uuid,
        at: DateTime<Utc>,
        reason: String,
    },
    /// A publish attempt was refused.
    PublishRejected {
        stream_id: Option<Uuid>,
        at: DateTime<Utc>,
        reason: String,
    },
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self { tx }
    }

    /// Publishes an event; having no subscriber is not an error.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}
