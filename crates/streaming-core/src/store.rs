//! The segment store: CMAF init and media segments of every live rendition,
//! made once by the packager and read by the HLS and DASH handlers.
//!
//! In memory for one machine (Redis takes over when scaled out). A rendition
//! keeps a sliding window: `listed` segments appear in playlists and a few more
//! stay fetchable for players that are a little behind. Locks are std locks,
//! held only for map operations, never across `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::watch;
use uuid::Uuid;

/// What a rendition carries, as the playlists need it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionInfo {
    pub kind: RenditionKind,
    /// RFC 6381 codec string, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub codec: String,
    pub timescale: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RenditionKind {
    Video,
    Audio,
}

#[derive(Debug, Clone)]
pub struct StoredSegment {
    pub number: u64,
    /// Decode time of the first sample, in `timescale` units.
    pub start: u64,
    pub duration: u64,
    pub timescale: u32,
    pub data: Bytes,
    pub discontinuity: bool,
    pub init_version: u32,
    /// Wall-clock time (Unix ms) of the segment's first sample.
    pub program_date_time_ms: i64,
}

impl StoredSegment {
    pub fn duration_secs(&self) -> f64 {
        self.duration as f64 / self.timescale.max(1) as f64
    }
}

#[derive(Debug, Clone)]
pub struct Rendition {
    pub info: RenditionInfo,
    pub inits: BTreeMap<u32, Bytes>,
    pub segments: VecDeque<StoredSegment>,
    /// Last modification (Unix ms), for `Last-Modified` of playlists.
    pub updated_ms: i64,
}

impl Rendition {
    /// Segments that playlists list (the newest `listed`).
    pub fn listed(&self, listed: usize) -> impl Iterator<Item = &StoredSegment> {
        let skip = self.segments.len().saturating_sub(listed);
        self.segments.iter().skip(skip)
    }

    pub fn segment(&self, number: u64) -> Option<&StoredSegment> {
        let first = self.segments.front()?.number;
        let idx = number.checked_sub(first)? as usize;
        self.segments.get(idx).filter(|s| s.number == number)
    }

    /// Peak and average bits per second over the stored window.
    pub fn bandwidth(&self) -> (u64, u64) {
        let mut peak = 0f64;
        let (mut bytes, mut secs) = (0u64, 0f64);
        for s in &self.segments {
            let d = s.duration_secs();
            if d > 0.0 {
                peak = peak.max(s.data.len() as f64 * 8.0 / d);
            }
            bytes += s.data.len() as u64;
            secs += d;
        }
        let avg = if secs > 0.0 {
            bytes as f64 * 8.0 / secs
        } else {
            0.0
        };
        (peak.ceil() as u64, avg.ceil() as u64)
    }
}

/// The media of one stream's current (or last) broadcast.
#[derive(Debug, Clone)]
pub struct StreamMediaState {
    pub renditions: BTreeMap<String, Rendition>,
    pub ended: bool,
    /// Wall-clock time (Unix ms) at which media time 0 was captured.
    pub availability_start_ms: i64,
    pub updated_ms: i64,
    /// Counts `EXT-X-DISCONTINUITY` tags that slid out of the window.
    pub discontinuity_sequence: BTreeMap<String, u64>,
}

pub struct StreamMedia {
    state: RwLock<StreamMediaState>,
    changed: watch::Sender<u64>,
    retained: usize,
}

impl StreamMedia {
    fn new(availability_start_ms: i64, retained: usize) -> Self {
        Self {
            state: RwLock::new(StreamMediaState {
                renditions: BTreeMap::new(),
                ended: false,
                availability_start_ms,
                updated_ms: availability_start_ms,
                discontinuity_sequence: BTreeMap::new(),
            }),
            changed: watch::channel(0).0,
            retained,
        }
    }

    /// A consistent copy of the state (cheap: segment bodies are `Bytes`).
    pub fn snapshot(&self) -> StreamMediaState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the state under the lock without cloning it.
    pub fn with<R>(&self, f: impl FnOnce(&StreamMediaState) -> R) -> R {
        f(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Wakes when anything changes (new segment, end of stream).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn write<R>(&self, now_ms: i64, f: impl FnOnce(&mut StreamMediaState) -> R) -> R {
        let r = {
            let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
            st.updated_ms = now_ms;
            f(&mut st)
        };
        self.changed.send_modify(|v| *v += 1);
        r
    }

    pub fn put_init(
        &self,
        name: &str,
        info: RenditionInfo,
        version: u32,
        data: Bytes,
        now_ms: i64,
    ) {
        self.write(now_ms, |st| {
            let r = st
                .renditions
                .entry(name.to_string())
                .or_insert_with(|| Rendition {
                    info: info.clone(),
                    inits: BTreeMap::new(),
                    segments: VecDeque::new(),
                    updated_ms: now_ms,
                });
            r.info = info;
            r.inits.insert(version, data);
            r.updated_ms = now_ms;
        });
    }

    /// Adds a finished segment; returns `false` if the rendition has no init yet.
    pub fn put_segment(&self, name: &str, seg: StoredSegment, now_ms: i64) -> bool {
        let retained = self.retained;
        self.write(now_ms, |st| {
            let Some(r) = st.renditions.get_mut(name) else {
                return false;
            };
            r.segments.push_back(seg);
            r.updated_ms = now_ms;
            let mut dropped_disc = 0;
            while r.segments.len() > retained {
                if let Some(old) = r.segments.pop_front() {
                    dropped_disc += u64::from(old.discontinuity);
                }
            }
            if dropped_disc > 0 {
                *st.discontinuity_sequence
                    .entry(name.to_string())
                    .or_default() += dropped_disc;
            }
            true
        })
    }

    /// Drops a rendition that left the ladder (its URLs answer 404 from now on).
    pub fn remove_rendition(&self, name: &str, now_ms: i64) {
        self.write(now_ms, |st| {
            st.renditions.remove(name);
            st.discontinuity_sequence.remove(name);
        });
    }

    /// Anchors media time 0 to the wall clock (set when the first segment completes).
    pub fn set_availability_start(&self, unix_ms: i64) {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        st.availability_start_ms = unix_ms;
    }

    pub fn mark_ended(&self, now_ms: i64) {
        self.write(now_ms, |st| st.ended = true);
    }

    pub fn is_ended(&self) -> bool {
        self.with(|s| s.ended)
    }
}

/// All streams' media, by stream id.
#[derive(Clone)]
pub struct SegmentStore {
    streams: Arc<RwLock<HashMap<Uuid, Arc<StreamMedia>>>>,
    retained: usize,
}

impl SegmentStore {
    /// `retained` segments are kept fetchable per rendition.
    pub fn new(retained: usize) -> Self {
        Self {
            streams: Arc::default(),
            retained: retained.max(2),
        }
    }

    /// Begins a new broadcast of a stream, replacing any earlier one's media.
    pub fn open(&self, stream_id: Uuid, availability_start_ms: i64) -> Arc<StreamMedia> {
        let media = Arc::new(StreamMedia::new(availability_start_ms, self.retained));
        self.streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream_id, media.clone());
        media
    }

    pub fn get(&self, stream_id: Uuid) -> Option<Arc<StreamMedia>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stream_id)
            .cloned()
    }

    /// Forgets an ended broadcast's media, unless a newer broadcast of the
    /// stream has replaced it meanwhile. Returns whether it was removed.
    pub fn remove_if_current(&self, stream_id: Uuid, media: &Arc<StreamMedia>) -> bool {
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        if streams
            .get(&stream_id)
            .is_some_and(|m| Arc::ptr_eq(m, media))
        {
            streams.remove(&stream_id);
            true
        } else {
            false
        }
    }

    pub fn remove(&self, stream_id: Uuid) {
        self.streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&stream_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RenditionInfo {
        RenditionInfo {
            kind: RenditionKind::Video,
            codec: "avc1.64001f".into(),
            timescale: 90_000,
            width: Some(1280),
            height: Some(720),
            frame_rate: Some(30.0),
            sample_rate: None,
            channels: None,
        }
    }

    fn seg(n: u64, disc: bool) -> StoredSegment {
        StoredSegment {
            number: n,
            start: n * 180_000,
            duration: 180_000,
            timescale: 90_000,
            data: Bytes::from(vec![0u8; 1000]),
            discontinuity: disc,
            init_version: 0,
            program_date_time_ms: 0,
        }
    }

    #[test]
    fn window_slides_and_counts_discontinuities() {
        let store = SegmentStore::new(3);
        let id = Uuid::new_v4();
        let m = store.open(id, 0);
        assert!(!m.put_segment("source", seg(1, false), 1), "no init yet");
        m.put_init("source", info(), 0, Bytes::from_static(b"init"), 1);
        for n in 1..=5 {
            assert!(m.put_segment("source", seg(n, n == 2), 2));
        }
        let st = m.snapshot();
        let r = &st.renditions["source"];
        assert_eq!(r.segments.len(), 3);
        assert!(r.segment(2).is_none());
        assert_eq!(r.segment(4).unwrap().number, 4);
        assert_eq!(
            r.listed(2).map(|s| s.number).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(st.discontinuity_sequence["source"], 1);
        assert_eq!(r.bandwidth(), (4000, 4000));
        m.mark_ended(3);
        assert!(store.get(id).unwrap().is_ended());
        let newer = store.open(id, 4);
        assert!(
            !store.remove_if_current(id, &m),
            "a newer broadcast is kept"
        );
        assert!(store.remove_if_current(id, &newer));
        assert!(store.get(id).is_none());
    }
}
