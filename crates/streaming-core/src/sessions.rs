//! Viewer sessions held in memory: who is watching which stream, at what
//! quality, how many bytes they took, when they were last seen.
//!
//! The delivery side feeds it (a master playlist or MPD fetch without a
//! session id opens a session; every request carrying `sid` refreshes it) and
//! sweeps it every second; the API and the WebSocket channel read counts from
//! it. A session is *counted* once a request comes back carrying its id — a
//! bare master/MPD fetch that nothing follows is never a viewer. One std `Mutex`, never held across `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::ViewerSession;

/// The audio-only rendition's name: it is the session's quality only while no
/// video rendition was requested recently (players fetch both).
const AUDIO: &str = "audio";
/// How long a video request keeps an audio request from changing the quality.
const VIDEO_GRACE: Duration = Duration::from_secs(4);

#[derive(Debug)]
struct Entry {
    record: ViewerSession,
    /// A rendition request confirmed the session; it counts as a viewer.
    confirmed: bool,
    last_seen: Instant,
    last_video: Option<Instant>,
    switches: u32,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<Uuid, Entry>,
    /// Records to persist (confirmed starts and ends), in order.
    outbox: Vec<ViewerSession>,
    /// Streams whose count was published last sweep (so a drop to 0 is published).
    published: HashMap<Uuid, u64>,
}

/// What one sweep found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Records to persist, in order (sessions confirmed, sessions ended).
    pub persist: Vec<ViewerSession>,
    /// Active viewers per stream, for every stream that has or just had some.
    pub counts: HashMap<Uuid, u64>,
}

/// The in-memory registry of viewer sessions (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct ViewerSessions {
    inner: Arc<Mutex<Inner>>,
}

impl ViewerSessions {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session (a master playlist or MPD fetched without `sid`) and
    /// returns its new random id.
    pub fn start(&self, stream_id: Uuid, protocol: &str, user_agent: Option<String>) -> Uuid {
        let id = Uuid::new_v4();
        self.open(id, stream_id, protocol, user_agent);
        id
    }

    /// Opens a session under an id the caller drew (and already handed out).
    pub fn open(&self, id: Uuid, stream_id: Uuid, protocol: &str, user_agent: Option<String>) {
        let now = Utc::now();
        let entry = Entry {
            record: ViewerSession {
                id,
                stream_id,
                protocol: protocol.to_string(),
                quality: None,
                user_agent,
                started_at: now,
                last_seen_at: now,
                ended_at: None,
                bytes_sent: 0,
                ..ViewerSession::default()
            },
            confirmed: false,
            last_seen: Instant::now(),
            last_video: None,
            switches: 0,
        };
        self.lock().sessions.insert(id, entry);
    }

    /// A request of session `sid` was answered: `quality` is the rendition in
    /// its path (`None` for a master playlist or MPD), `bytes` the body sent;
    /// `returning` is true when the request carried the id (the viewer came
    /// back with it: the session counts from then on) and false for the
    /// fetch that opened it. An id the registry does not know (expired, or
    /// opened by another replica) is adopted as a new session of `stream_id`.
    pub fn touch(
        &self,
        sid: Uuid,
        stream_id: Uuid,
        quality: Option<&str>,
        bytes: u64,
        returning: bool,
    ) {
        let now = Instant::now();
        let wall = Utc::now();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let entry = inner.sessions.entry(sid).or_insert_with(|| Entry {
            record: ViewerSession {
                id: sid,
                stream_id,
                protocol: "hls".into(),
                quality: None,
                user_agent: None,
                started_at: wall,
                last_seen_at: wall,
                ended_at: None,
                bytes_sent: 0,
                ..ViewerSession::default()
            },
            confirmed: false,
            last_seen: now,
            last_video: None,
            switches: 0,
        });
        if entry.record.stream_id != stream_id {
            // A session id belongs to one stream; a foreign one is ignored.
            return;
        }
        entry.last_seen = now;
        entry.record.last_seen_at = wall;
        entry.record.bytes_sent = entry.record.bytes_sent.saturating_add(bytes);
        if returning && !entry.confirmed {
            entry.confirmed = true;
            inner.outbox.push(entry.record.clone());
        }
        let Some(q) = quality else { return };
        let is_video = q != AUDIO;
        if is_video {
            entry.last_video = Some(now);
        }
        // Players fetch the audio rendition beside the video one: audio is
        // the quality only when no video was requested for a while.
        let video_recent = entry.last_video.is_some_and(|t| {
            now.duration_since(t) < VIDEO_GRACE && entry.record.quality.as_deref() != Some(AUDIO)
        });
        if is_video || !video_recent {
            if let Some(old) = entry.record.quality.as_deref()
                && old != q
            {
                entry.switches += 1;
            }
            if entry.record.quality.as_deref() != Some(q) {
                entry.record.quality = Some(q.to_string());
            }
        }
    }

    /// Active (counted) viewers of a stream.
    pub fn count(&self, stream_id: Uuid) -> u64 {
        self.lock()
            .sessions
            .values()
            .filter(|e| e.confirmed && e.record.stream_id == stream_id)
            .count() as u64
    }

    /// Active viewers of a stream by current quality.
    pub fn quality_distribution(&self, stream_id: Uuid) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for e in self.lock().sessions.values() {
            if e.confirmed
                && e.record.stream_id == stream_id
                && let Some(q) = &e.record.quality
            {
                *out.entry(q.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    /// The active sessions of a stream, newest first.
    pub fn active(&self, stream_id: Uuid) -> Vec<ViewerSession> {
        let mut v: Vec<_> = self
            .lock()
            .sessions
            .values()
            .filter(|e| e.confirmed && e.record.stream_id == stream_id)
            .map(|e| e.record.clone())
            .collect();
        v.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        v
    }

    /// Quality switches of an active session (not persisted).
    pub fn switches(&self, sid: Uuid) -> Option<u32> {
        self.lock().sessions.get(&sid).map(|e| e.switches)
    }

    /// Ends sessions not seen for `timeout`, and reports what to persist and
    /// the viewer count of every stream that has (or just lost) viewers.
    pub fn sweep(&self, now: Instant, timeout: Duration) -> Sweep {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut persist = std::mem::take(&mut inner.outbox);
        let wall: DateTime<Utc> = Utc::now();
        inner.sessions.retain(|_, e| {
            if now.saturating_duration_since(e.last_seen) < timeout {
                return true;
            }
            if e.confirmed {
                let mut r = e.record.clone();
                // The viewer left when last seen; the timeout is not watch time.
                r.ended_at = Some(r.last_seen_at.min(wall));
                persist.push(r);
            }
            false
        });
        let mut counts: HashMap<Uuid, u64> = HashMap::new();
        for e in inner.sessions.values().filter(|e| e.confirmed) {
            *counts.entry(e.record.stream_id).or_insert(0) += 1;
        }
        for id in inner.published.keys() {
            counts.entry(*id).or_insert(0);
        }
        inner.published = counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, v)| (*k, *v))
            .collect();
        Sweep { persist, counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_count_once_confirmed_and_end_after_inactivity() {
        let reg = ViewerSessions::new();
        let stream = Uuid::new_v4();
        let a = reg.start(stream, "hls", None);
        let idle = reg.start(stream, "hls", None);
        reg.touch(a, stream, None, 100, false);
        assert_eq!(reg.count(stream), 0);
        reg.touch(a, stream, Some("source"), 1000, true);
        reg.touch(a, stream, Some("audio"), 10, true);
        assert_eq!(reg.count(stream), 1);
        assert_eq!(reg.quality_distribution(stream)["source"], 1);
        // Another stream's id is not moved over.
        reg.touch(a, Uuid::new_v4(), Some("720p"), 5, true);
        assert_eq!(reg.quality_distribution(stream)["source"], 1);
        reg.touch(a, stream, Some("720p"), 0, true);
        assert_eq!(reg.switches(a), Some(1));
        let s = reg.sweep(Instant::now(), Duration::from_secs(60));
        assert_eq!(s.persist.len(), 1);
        assert_eq!(s.counts[&stream], 1);
        let later = Instant::now() + Duration::from_secs(61);
        let s = reg.sweep(later, Duration::from_secs(60));
        assert_eq!(s.counts[&stream], 0);
        assert_eq!(s.persist.len(), 1, "the unconfirmed one is dropped unsaved");
        let ended = &s.persist[0];
        assert_eq!(ended.id, a);
        assert_eq!(ended.bytes_sent, 1110, "the foreign touch is not charged");
        assert!(ended.ended_at.is_some());
        assert_eq!(reg.count(stream), 0);
        assert!(reg.switches(idle).is_none());
        // Once reported at 0, the stream drops out of the counts.
        assert!(reg.sweep(later, Duration::from_secs(60)).counts.is_empty());
    }

    #[test]
    fn audio_is_the_quality_only_without_recent_video() {
        let reg = ViewerSessions::new();
        let stream = Uuid::new_v4();
        let a = reg.start(stream, "hls", None);
        reg.touch(a, stream, Some("audio"), 1, true);
        assert_eq!(reg.quality_distribution(stream)["audio"], 1);
        let b = reg.start(stream, "hls", None);
        reg.touch(b, stream, Some("source"), 1, true);
        reg.touch(b, stream, Some("audio"), 1, true);
        assert_eq!(reg.quality_distribution(stream)["source"], 1);
    }
}
