//! The segment store: what the packagers make (init segments, LL-HLS parts,
//! segments, rendered playlists and manifests) as bytes under keys, and the
//! progress of every rendition as events a request can wait on.
//!
//! The packaging task of a broadcast is the only writer of its stream: it
//! decides every number and time, renders the playlists once per change and
//! puts the results here; HTTP handlers only read. [`SegmentStore`] is the
//! interface; [`MemoryStore`] keeps everything in this process (the embedded
//! default). Its data are bytes under [`Key`]s and its notifications are
//! [`Progress`] values on a `watch` channel per rendition, so an
//! implementation over Redis (keys with a TTL, pub/sub for progress) fits the
//! same shape.
//!
//! Waiting for "part P of segment N of rendition R" (an LL-HLS blocking
//! playlist reload, RFC 8216bis §6.2.5.2, or a preload-hinted part) is
//! [`wait_for`]: it sleeps on the rendition's progress channel, so thousands
//! of held requests cost memory only.

mod memory;
mod progress;
mod summary;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use uuid::Uuid;

pub use memory::MemoryStore;
pub use progress::{PartRef, Progress, WaitOutcome, wait_for};
pub use summary::{RenditionInfo, RenditionKind, RenditionSummary, StreamSummary};

/// What is stored for a stream; `rendition` names a rendition (`source`,
/// `audio`, `720p`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The CMAF header of a rendition, by version (1 first; a new decoder
    /// configuration makes the next).
    Init { rendition: Arc<str>, version: u32 },
    /// An LL-HLS part (a CMAF chunk): part `part` (from 0) of segment `msn`.
    Part {
        rendition: Arc<str>,
        msn: u64,
        part: u32,
    },
    /// A complete CMAF segment.
    Segment { rendition: Arc<str>, msn: u64 },
    /// A rendered media playlist, full or as a delta update (`_HLS_skip`).
    Playlist { rendition: Arc<str>, skip: bool },
    /// The rendered multivariant playlist.
    Master,
    /// The rendered DASH manifest.
    Mpd,
}

/// Stored bytes and what HTTP needs to answer with them.
#[derive(Debug, Clone)]
pub struct Object {
    pub data: Bytes,
    /// Unix ms of the write (`Last-Modified`).
    pub modified_ms: i64,
    /// A strong validator computed by the writer (`ETag`, quoted).
    pub etag: Arc<str>,
}

/// One broadcast's place in the store: writes through a handle whose
/// broadcast was replaced by a newer one are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generation(pub u64);

/// Where segments live. Writers are the packaging tasks (one per live
/// stream); readers are the HTTP handlers, the API and the collector.
pub trait SegmentStore: Send + Sync + 'static {
    /// Begins a new broadcast of `stream`, replacing the media of any earlier
    /// one (their URLs answer 404 from now on).
    fn open(&self, stream: Uuid, now_ms: i64) -> Generation;
    /// Stores `object` under `key`, if `generation` is still the stream's.
    fn put(&self, stream: Uuid, generation: Generation, key: Key, object: Object);
    /// Forgets `key` (it slid out of the window).
    fn delete(&self, stream: Uuid, generation: Generation, key: &Key);
    /// Publishes a rendition's progress: waiters wake.
    fn set_progress(&self, stream: Uuid, generation: Generation, rendition: &str, p: Progress);
    /// Forgets a rendition that left the ladder (with its keys).
    fn remove_rendition(&self, stream: Uuid, generation: Generation, rendition: &str);
    /// Replaces the stream's summary (what the API and the collector read).
    fn set_summary(&self, stream: Uuid, generation: Generation, summary: Arc<StreamSummary>);
    /// Drops the broadcast's media if `generation` is still the stream's.
    /// Returns whether it was removed.
    fn remove(&self, stream: Uuid, generation: Generation) -> bool;

    fn get(&self, stream: Uuid, key: &Key) -> Option<Object>;
    /// The stream's summary; `None` when the store has no media for it.
    fn summary(&self, stream: Uuid) -> Option<Arc<StreamSummary>>;
    /// A rendition's progress channel: its current value and every change.
    fn progress(&self, stream: Uuid, rendition: &str) -> Option<watch::Receiver<Progress>>;
    /// Streams with media in the store.
    fn streams(&self) -> Vec<Uuid>;
}

/// The store as the server shares it.
pub type SharedStore = Arc<dyn SegmentStore>;
