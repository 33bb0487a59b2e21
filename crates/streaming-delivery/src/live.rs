//! The per-stream feed of the 1-second `metrics` WebSocket message.
//!
//! The collector serialises each stream's message once per tick and
//! broadcasts the text; every WebSocket client of that stream holds a
//! receiver and forwards the shared bytes (no per-client work but the copy
//! into its socket). A client that lags skips to the newest message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use streaming_core::model::StreamStatus;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Messages buffered per stream for a receiver that has not read yet.
const BACKLOG: usize = 4;

#[derive(Debug)]
struct Entry {
    tx: broadcast::Sender<Utf8Bytes>,
    /// Status shown in metrics messages while the stream is not live.
    status: StreamStatus,
}

/// Per-stream broadcast of the `metrics` message (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct LiveFeed {
    inner: Arc<Mutex<HashMap<Uuid, Entry>>>,
}

impl LiveFeed {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client of `stream_id` joins; `status` is what it read on connect.
    pub fn subscribe(
        &self,
        stream_id: Uuid,
        status: StreamStatus,
    ) -> broadcast::Receiver<Utf8Bytes> {
        let mut map = self.lock();
        let e = map.entry(stream_id).or_insert_with(|| Entry {
            tx: broadcast::channel(BACKLOG).0,
            status,
        });
        e.tx.subscribe()
    }

    /// Records a status change (the WebSocket clients see the events).
    pub fn set_status(&self, stream_id: Uuid, status: StreamStatus) {
        if let Some(e) = self.lock().get_mut(&stream_id) {
            e.status = status;
        }
    }

    /// Streams with clients, with their last known status; forgets streams
    /// whose clients all left.
    pub fn watched(&self) -> Vec<(Uuid, StreamStatus)> {
        let mut map = self.lock();
        map.retain(|_, e| e.tx.receiver_count() > 0);
        map.iter().map(|(id, e)| (*id, e.status)).collect()
    }

    /// Sends one message to every client of `stream_id` (none: dropped).
    pub fn publish(&self, stream_id: Uuid, text: Utf8Bytes) {
        if let Some(e) = self.lock().get(&stream_id) {
            let _ = e.tx.send(text);
        }
    }

    /// Clients connected, all streams together.
    pub fn clients(&self) -> usize {
        self.lock().values().map(|e| e.tx.receiver_count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_client_gets_the_shared_text_and_empty_streams_are_forgotten() {
        let feed = LiveFeed::new();
        let id = Uuid::new_v4();
        let mut a = feed.subscribe(id, StreamStatus::Active);
        let mut b = feed.subscribe(id, StreamStatus::Active);
        assert_eq!(feed.clients(), 2);
        feed.publish(id, Utf8Bytes::from_static("{\"type\":\"metrics\"}"));
        assert_eq!(a.recv().await.unwrap().as_str(), "{\"type\":\"metrics\"}");
        assert_eq!(b.recv().await.unwrap().as_str(), "{\"type\":\"metrics\"}");
        feed.set_status(id, StreamStatus::Ended);
        assert_eq!(feed.watched(), vec![(id, StreamStatus::Ended)]);
        drop((a, b));
        assert!(feed.watched().is_empty());
        feed.publish(id, Utf8Bytes::from_static("x")); // nobody: no error
    }
}
