//! The stream hub: per-stream fan-out of frames from one publisher to the
//! packagers (and later the transcoder).
//!
//! The hub knows no codec: it moves [`Frame`]s (shared `Bytes`, never copied)
//! and three control messages. A second publisher for a live stream takes it
//! over: the first one's cancellation token fires and consumers see a
//! [`HubMessage::Discontinuity`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use streaming_media::frame::Frame;
use tokio::sync::{broadcast, mpsc};
pub use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub enum HubMessage {
    Frame(Frame),
    /// The publisher changed (takeover/reconnect): timestamps restart.
    Discontinuity,
    /// The broadcast is over; no more messages follow.
    End,
}

/// A rung of the transcoded ladder in force.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionSpec {
    /// `1080p`, `720p`, `480p`, …
    pub name: Arc<str>,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub frame_rate: f64,
}

/// What the transcoder sends to the packager of a stream.
#[derive(Debug, Clone)]
pub enum RenditionMessage {
    /// The ladder now in force (highest first); empty means source only.
    Ladder(Arc<[RenditionSpec]>),
    /// A frame of one rendition (FLV video tag body, source timestamps).
    Frame { rendition: Arc<str>, frame: Frame },
    /// The transcoder restarted: every rendition's timeline breaks here.
    Restarted,
}

/// Announced to consumers when a stream's broadcast begins.
pub struct OpenedStream {
    pub stream_id: Uuid,
    pub rx: broadcast::Receiver<HubMessage>,
    /// The transcoder's output for this broadcast (sender and a receiver).
    pub renditions_tx: broadcast::Sender<RenditionMessage>,
    pub renditions_rx: broadcast::Receiver<RenditionMessage>,
}

struct Entry {
    tx: broadcast::Sender<HubMessage>,
    publisher_conn: u64,
    /// The stream key the live publisher authenticated with.
    publisher_key: Option<Uuid>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<Uuid, Entry>,
    consumers: Vec<mpsc::UnboundedSender<OpenedStream>>,
}

#[derive(Clone, Default)]
pub struct StreamHub {
    inner: Arc<Mutex<Inner>>,
}

/// How a publish began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStart {
    New,
    TookOver,
}

impl StreamHub {
    /// Frames buffered per consumer before a slow one starts losing them.
    const CAPACITY: usize = 2048;

    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a consumer: it learns of every broadcast that begins from now on.
    pub fn consumer(&self) -> mpsc::UnboundedReceiver<OpenedStream> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().consumers.push(tx);
        rx
    }

    /// Starts publishing `stream_id` from connection `conn_id` (authenticated
    /// with `key_id`), taking the stream over if another connection is publishing it.
    pub fn publish(
        &self,
        stream_id: Uuid,
        conn_id: u64,
        key_id: Option<Uuid>,
    ) -> (Publisher, PublishStart) {
        let mut inner = self.lock();
        let cancel = CancellationToken::new();
        if let Some(entry) = inner.streams.get_mut(&stream_id) {
            entry.cancel.cancel();
            entry.cancel = cancel.clone();
            entry.publisher_conn = conn_id;
            entry.publisher_key = key_id;
            let _ = entry.tx.send(HubMessage::Discontinuity);
            let publisher = Publisher {
                stream_id,
                conn_id,
                tx: entry.tx.clone(),
                cancel,
                hub: self.clone(),
            };
            return (publisher, PublishStart::TookOver);
        }
        let (tx, _) = broadcast::channel(Self::CAPACITY);
        let (renditions, _) = broadcast::channel(Self::CAPACITY * 2);
        inner.consumers.retain(|c| {
            c.send(OpenedStream {
                stream_id,
                rx: tx.subscribe(),
                renditions_tx: renditions.clone(),
                renditions_rx: renditions.subscribe(),
            })
            .is_ok()
        });
        inner.streams.insert(
            stream_id,
            Entry {
                tx: tx.clone(),
                publisher_conn: conn_id,
                publisher_key: key_id,
                cancel: cancel.clone(),
            },
        );
        let publisher = Publisher {
            stream_id,
            conn_id,
            tx,
            cancel,
            hub: self.clone(),
        };
        (publisher, PublishStart::New)
    }

    /// Subscribes to a live stream (late joiners such as a transcoder).
    pub fn subscribe(&self, stream_id: Uuid) -> Option<broadcast::Receiver<HubMessage>> {
        self.lock()
            .streams
            .get(&stream_id)
            .map(|e| e.tx.subscribe())
    }

    pub fn is_live(&self, stream_id: Uuid) -> bool {
        self.lock().streams.contains_key(&stream_id)
    }

    pub fn live_streams(&self) -> Vec<Uuid> {
        self.lock().streams.keys().copied().collect()
    }

    /// Cuts the live publisher of a stream (key revoked, shutdown).
    pub fn kick(&self, stream_id: Uuid) -> bool {
        match self.lock().streams.get(&stream_id) {
            Some(e) => {
                e.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Cuts the live publisher of a stream if it authenticated with `key_id`
    /// (that key was revoked); publishers using another key go on.
    pub fn kick_key(&self, stream_id: Uuid, key_id: Uuid) -> bool {
        match self.lock().streams.get(&stream_id) {
            Some(e) if e.publisher_key == Some(key_id) => {
                e.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Cuts every live publisher (graceful shutdown).
    pub fn kick_all(&self) {
        for e in self.lock().streams.values() {
            e.cancel.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side held by one ingest connection.
pub struct Publisher {
    stream_id: Uuid,
    conn_id: u64,
    tx: broadcast::Sender<HubMessage>,
    cancel: CancellationToken,
    hub: StreamHub,
}

impl Publisher {
    pub fn stream_id(&self) -> Uuid {
        self.stream_id
    }

    /// Fans a frame out; frames of a publisher that was taken over are dropped.
    pub fn send(&self, frame: Frame) {
        if self.cancel.is_cancelled() {
            return;
        }
        let _ = self.tx.send(HubMessage::Frame(frame));
    }

    /// Fires when this publisher was taken over or kicked.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Ends this publisher's broadcast. Returns `true` if it was still the
    /// stream's publisher (the broadcast is over), `false` if another
    /// connection had taken over (the broadcast goes on).
    pub fn end(self) -> bool {
        let mut inner = self.hub.lock();
        let current = inner
            .streams
            .get(&self.stream_id)
            .is_some_and(|e| e.publisher_conn == self.conn_id);
        if current {
            inner.streams.remove(&self.stream_id);
            let _ = self.tx.send(HubMessage::End);
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use streaming_media::frame::FrameKind;

    #[tokio::test]
    async fn fan_out_takeover_and_end() {
        let hub = StreamHub::new();
        let mut consumer = hub.consumer();
        let id = Uuid::new_v4();
        let (p1, start) = hub.publish(id, 1, None);
        assert_eq!(start, PublishStart::New);
        let mut opened = consumer.recv().await.unwrap();
        assert_eq!(opened.stream_id, id);
        p1.send(Frame::new(
            FrameKind::Audio,
            5,
            Bytes::from_static(b"\xaf\x01x"),
        ));
        assert!(
            matches!(opened.rx.recv().await.unwrap(), HubMessage::Frame(f) if f.timestamp == 5)
        );

        let key = Uuid::new_v4();
        let (p2, start) = hub.publish(id, 2, Some(key));
        assert_eq!(start, PublishStart::TookOver);
        assert!(p1.cancelled().is_cancelled());
        assert!(matches!(
            opened.rx.recv().await.unwrap(),
            HubMessage::Discontinuity
        ));
        assert!(
            !p1.end(),
            "a taken-over publisher does not end the broadcast"
        );
        assert!(
            !hub.kick_key(id, Uuid::new_v4()),
            "another key's revocation spares it"
        );
        assert!(!p2.cancelled().is_cancelled());
        assert!(hub.kick_key(id, key));
        assert!(p2.cancelled().is_cancelled());
        assert!(hub.is_live(id));
        assert!(p2.end());
        assert!(matches!(opened.rx.recv().await.unwrap(), HubMessage::End));
        assert!(!hub.is_live(id));
    }
}
