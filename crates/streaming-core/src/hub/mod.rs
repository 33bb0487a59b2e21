//! The stream hub: per-stream fan-out of a broadcast's tracks from its publisher
//! (and the transcoder) to its consumers (the packager, the transcoder, later
//! other nodes).
//!
//! A broadcast has named tracks: [`SOURCE`] (the encoder's video), [`AUDIO`] and one
//! per transcoded rendition (`720p`, …). The ingest parses every FLV tag once
//! (`streaming_media::media::FlvTagParser`); the hub carries what came out —
//! [`TrackConfig`]s and codec-neutral [`MediaFrame`]s (shared `Bytes`, never copied)
//! — and a few control messages, all on one channel per stream.
//!
//! The hub keeps each track's configuration and current group (`groups.rs`), so a
//! consumer that subscribes late receives them first, atomically with its receiver:
//! the group is updated and the message sent under the same per-stream lock, so
//! there is no gap and no duplicate, and it starts at a key frame at once.
//!
//! A second publisher for a live stream takes it over: the first one's
//! cancellation token fires and consumers see [`HubMessage::Discontinuity`] with no
//! track.

mod groups;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use streaming_media::media::{MediaFrame, TrackConfig, TrackKind};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};
pub use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use groups::GroupLimits;
use groups::Groups;

/// The encoder's video track.
pub const SOURCE: &str = "source";
/// The encoder's audio track.
pub const AUDIO: &str = "audio";

#[derive(Debug, Clone)]
pub enum HubMessage {
    /// A track's decoder configuration (before its first frame, and when it changes).
    Config {
        track: Arc<str>,
        config: Arc<TrackConfig>,
    },
    Frame {
        track: Arc<str>,
        frame: MediaFrame,
    },
    /// `None`: the publisher changed (takeover/reconnect), every track's timestamps
    /// restart; `Some(track)`: that rendition's encoder restarted.
    Discontinuity {
        track: Option<Arc<str>>,
    },
    /// The transcoded ladder now in force (highest first); empty means source only.
    Ladder(Arc<[RenditionSpec]>),
    /// The broadcast is over; no more messages follow.
    End,
}

/// A rung of the transcoded ladder in force.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionSpec {
    /// `1080p`, `720p`, `480p`, …: also the name of its track.
    pub name: Arc<str>,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub frame_rate: f64,
}

/// A consumer's receiving end: what the hub kept of the broadcast when it joined,
/// then everything sent since.
#[derive(Debug)]
pub struct Subscription {
    replay: VecDeque<HubMessage>,
    rx: broadcast::Receiver<HubMessage>,
}

impl Subscription {
    /// The next message (cancel-safe). `Err(Lagged(n))`: `n` messages were lost
    /// because this consumer fell behind.
    pub async fn recv(&mut self) -> Result<HubMessage, RecvError> {
        if let Some(msg) = self.replay.pop_front() {
            return Ok(msg);
        }
        self.rx.recv().await
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Result<HubMessage, TryRecvError> {
        if let Some(msg) = self.replay.pop_front() {
            return Ok(msg);
        }
        self.rx.try_recv()
    }
}

/// Announced to consumers when a stream's broadcast begins.
pub struct OpenedStream {
    pub stream_id: Uuid,
    pub rx: Subscription,
    /// Publishes the transcoder's renditions into this broadcast.
    pub tracks: TrackSender,
}

/// One broadcast's channel and kept state, behind its own lock.
struct Broadcast {
    tx: broadcast::Sender<HubMessage>,
    groups: Groups,
    publisher_conn: u64,
    ended: bool,
}

impl Broadcast {
    fn send(&mut self, msg: HubMessage) {
        match &msg {
            HubMessage::Config { track, config } => self.groups.config(track, config),
            HubMessage::Frame { track, frame } => self.groups.frame(track, frame),
            HubMessage::Discontinuity { track } => self.groups.discontinuity(track.as_deref()),
            HubMessage::Ladder(specs) => self.groups.ladder(specs),
            HubMessage::End => self.ended = true,
        }
        let _ = self.tx.send(msg);
    }

    fn subscribe(&self) -> Subscription {
        Subscription {
            replay: self.groups.replay(),
            rx: self.tx.subscribe(),
        }
    }
}

type Shared = Arc<Mutex<Broadcast>>;

fn lock(b: &Shared) -> MutexGuard<'_, Broadcast> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

struct Entry {
    broadcast: Shared,
    /// The stream key the live publisher authenticated with.
    publisher_key: Option<Uuid>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<Uuid, Entry>,
    consumers: Vec<mpsc::UnboundedSender<OpenedStream>>,
    limits: GroupLimits,
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
    /// Messages buffered per consumer before a slow one starts losing them (the
    /// source, its audio and every rendition share the channel).
    const CAPACITY: usize = 4096;

    pub fn new() -> Self {
        Self::default()
    }

    /// A hub whose broadcasts keep groups within `limits`.
    pub fn with_limits(limits: GroupLimits) -> Self {
        let hub = Self::default();
        hub.lock().limits = limits;
        hub
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
            entry.publisher_key = key_id;
            {
                let mut b = lock(&entry.broadcast);
                b.publisher_conn = conn_id;
                b.send(HubMessage::Discontinuity { track: None });
            }
            let publisher = Publisher::new(self, stream_id, conn_id, &entry.broadcast, cancel);
            return (publisher, PublishStart::TookOver);
        }
        let (tx, _) = broadcast::channel(Self::CAPACITY);
        let broadcast: Shared = Arc::new(Mutex::new(Broadcast {
            tx,
            groups: Groups::new(inner.limits),
            publisher_conn: conn_id,
            ended: false,
        }));
        inner.consumers.retain(|c| {
            c.send(OpenedStream {
                stream_id,
                rx: lock(&broadcast).subscribe(),
                tracks: TrackSender {
                    broadcast: broadcast.clone(),
                },
            })
            .is_ok()
        });
        inner.streams.insert(
            stream_id,
            Entry {
                broadcast: broadcast.clone(),
                publisher_key: key_id,
                cancel: cancel.clone(),
            },
        );
        let publisher = Publisher::new(self, stream_id, conn_id, &broadcast, cancel);
        (publisher, PublishStart::New)
    }

    /// Subscribes to a live stream (late joiners): the ladder, the configurations
    /// and the current groups come first, then what is sent from now on.
    pub fn subscribe(&self, stream_id: Uuid) -> Option<Subscription> {
        let broadcast = self.lock().streams.get(&stream_id)?.broadcast.clone();
        let b = lock(&broadcast);
        (!b.ended).then(|| b.subscribe())
    }

    /// A handle that publishes renditions into a live stream's broadcast.
    pub fn tracks(&self, stream_id: Uuid) -> Option<TrackSender> {
        let broadcast = self.lock().streams.get(&stream_id)?.broadcast.clone();
        Some(TrackSender { broadcast })
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

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side held by one ingest connection: the [`SOURCE`] and [`AUDIO`]
/// tracks.
pub struct Publisher {
    stream_id: Uuid,
    conn_id: u64,
    broadcast: Shared,
    cancel: CancellationToken,
    hub: StreamHub,
    source: Arc<str>,
    audio: Arc<str>,
}

impl Publisher {
    fn new(
        hub: &StreamHub,
        stream_id: Uuid,
        conn_id: u64,
        broadcast: &Shared,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            stream_id,
            conn_id,
            broadcast: broadcast.clone(),
            cancel,
            hub: hub.clone(),
            source: SOURCE.into(),
            audio: AUDIO.into(),
        }
    }

    pub fn stream_id(&self) -> Uuid {
        self.stream_id
    }

    fn track(&self, kind: TrackKind) -> Arc<str> {
        match kind {
            TrackKind::Video => self.source.clone(),
            TrackKind::Audio => self.audio.clone(),
        }
    }

    /// Sends `msg` unless this publisher was taken over, kicked or ended (checked
    /// under the broadcast's lock, so nothing of it follows a takeover).
    fn send(&self, msg: HubMessage) {
        let mut b = lock(&self.broadcast);
        if b.ended || b.publisher_conn != self.conn_id || self.cancel.is_cancelled() {
            return;
        }
        b.send(msg);
    }

    /// A decoder configuration of the encoder's video ([`SOURCE`]) or audio ([`AUDIO`]).
    pub fn config(&self, config: Arc<TrackConfig>) {
        let track = self.track(config.kind);
        self.send(HubMessage::Config { track, config });
    }

    /// A frame of the encoder's video or audio.
    pub fn frame(&self, frame: MediaFrame) {
        let track = self.track(frame.kind);
        self.send(HubMessage::Frame { track, frame });
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
        let current = inner.streams.get(&self.stream_id).is_some_and(|e| {
            Arc::ptr_eq(&e.broadcast, &self.broadcast)
                && lock(&e.broadcast).publisher_conn == self.conn_id
        });
        if current {
            inner.streams.remove(&self.stream_id);
            lock(&self.broadcast).send(HubMessage::End);
        }
        current
    }
}

/// Publishes transcoded renditions into a broadcast, each as a track named after
/// its [`RenditionSpec`]. Sends after the broadcast ended, and to the encoder's own
/// tracks, are ignored.
#[derive(Clone)]
pub struct TrackSender {
    broadcast: Shared,
}

impl TrackSender {
    fn send(&self, track: Option<&Arc<str>>, msg: HubMessage) {
        if track.is_some_and(|t| &**t == SOURCE || &**t == AUDIO) {
            return;
        }
        let mut b = lock(&self.broadcast);
        if !b.ended {
            b.send(msg);
        }
    }

    /// A rendition's decoder configuration.
    pub fn config(&self, track: &Arc<str>, config: Arc<TrackConfig>) {
        let msg = HubMessage::Config {
            track: track.clone(),
            config,
        };
        self.send(Some(track), msg);
    }

    /// A rendition's frame.
    pub fn frame(&self, track: &Arc<str>, frame: MediaFrame) {
        let msg = HubMessage::Frame {
            track: track.clone(),
            frame,
        };
        self.send(Some(track), msg);
    }

    /// A rendition's encoder restarted: its timeline breaks here.
    pub fn restarted(&self, track: &Arc<str>) {
        let msg = HubMessage::Discontinuity {
            track: Some(track.clone()),
        };
        self.send(Some(track), msg);
    }

    /// The ladder now in force (highest first); empty means source only.
    pub fn ladder(&self, specs: Arc<[RenditionSpec]>) {
        self.send(None, HubMessage::Ladder(specs));
    }

    /// The broadcast is over.
    pub fn is_ended(&self) -> bool {
        lock(&self.broadcast).ended
    }
}
