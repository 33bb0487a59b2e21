//! Viewer sessions held in memory: who is watching which stream, at what
//! quality, how many bytes they took, when they were last seen.
//!
//! Ids are minted and signed by the server ([`signing`]): a viewer gets one
//! from a master playlist or MPD fetched without a valid `sid` (written into
//! the child URLs), or from `POST /api/v1/streams/{id}/sessions` (players
//! that need it before loading the master, and beacon-only CDN viewers).
//! Ids the server did not sign never reach this registry. Opening a session
//! is capped ([`SessionPolicy`]): live sessions per node, new sessions per
//! address per second; beacons per session per second.
//!
//! The delivery side feeds it (every request carrying a valid `sid`
//! refreshes its session) and sweeps it every second; the API and the
//! WebSocket channel read counts from it. A session is *counted* once a
//! request comes back carrying its id — a rendition request, a beacon, or a
//! second master/MPD fetch; a bare master/MPD fetch that nothing follows is
//! never a viewer. One std `Mutex`, never held across `.await`.

mod admission;
pub mod signing;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::ViewerSession;

pub use admission::{Refusal, SessionPolicy};
pub use signing::{SessionSigner, SignedSid};

/// The audio-only rendition's name: it is the session's quality only while no
/// video rendition was requested recently (players fetch both).
const AUDIO: &str = "audio";
/// How long a video request keeps an audio request from changing the quality.
const VIDEO_GRACE: Duration = Duration::from_secs(4);
/// The protocol of a session known from its beacons only.
const BEACON: &str = "beacon";

/// 32 random bytes (two v4 uuids: 244 random bits).
pub(crate) fn random_secret() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    key
}

#[derive(Debug)]
struct Entry {
    record: ViewerSession,
    /// A rendition request or a beacon confirmed the session; it counts as a viewer.
    confirmed: bool,
    last_seen: Instant,
    last_video: Option<Instant>,
    /// The player sends beacons: its watch and stall time count towards the
    /// stream's buffering ratio.
    beaconing: bool,
    /// A `stall_start` not yet ended.
    stalled_since: Option<Instant>,
    /// A master playlist or MPD was served to it (a second one confirms it).
    manifest_seen: bool,
    /// `record.protocol` is the delivery protocol seen, not a placeholder.
    protocol_known: bool,
}

impl Entry {
    fn new(record: ViewerSession, now: Instant) -> Self {
        Self {
            record,
            confirmed: false,
            last_seen: now,
            last_video: None,
            beaconing: false,
            stalled_since: None,
            manifest_seen: false,
            protocol_known: true,
        }
    }

    /// Sets the current quality, counting a change as a switch.
    fn set_quality(&mut self, q: &str) {
        if self.record.quality.as_deref() == Some(q) {
            return;
        }
        if self.record.quality.is_some() {
            self.record.quality_switches = self.record.quality_switches.saturating_add(1);
        }
        self.record.quality = Some(q.to_string());
    }

    /// Records one beacon's content; true for a player error.
    fn apply(&mut self, beacon: Beacon, now: Instant) -> bool {
        match beacon {
            Beacon::Heartbeat { quality } => {
                if let Some(q) = quality {
                    self.set_quality(&q);
                }
            }
            Beacon::Startup {
                startup_ms,
                quality,
            } => {
                self.record.startup_ms = Some(startup_ms);
                if let Some(q) = quality {
                    self.set_quality(&q);
                }
            }
            Beacon::StallStart => {
                if self.stalled_since.is_none() {
                    self.stalled_since = Some(now);
                    self.record.stalls = self.record.stalls.saturating_add(1);
                }
            }
            Beacon::StallEnd { duration_ms } => match (self.stalled_since, duration_ms) {
                (Some(_), _) => self.end_stall(now),
                // The start was lost (or sent elsewhere): trust the player's figure.
                (None, Some(ms)) => {
                    self.record.stalls = self.record.stalls.max(1);
                    self.record.stall_ms = self.record.stall_ms.saturating_add(ms);
                }
                (None, None) => {}
            },
            Beacon::QualityChange { quality } => self.set_quality(&quality),
            Beacon::Error => {
                self.record.errors = self.record.errors.saturating_add(1);
                return true;
            }
        }
        false
    }

    /// Ends a stall in progress at `now`, adding its length.
    fn end_stall(&mut self, now: Instant) {
        if let Some(since) = self.stalled_since.take() {
            let ms = now.saturating_duration_since(since).as_millis();
            self.record.stall_ms = self
                .record
                .stall_ms
                .saturating_add(u64::try_from(ms).unwrap_or(u64::MAX));
        }
    }
}

/// What a player reports about its playback (`POST /api/v1/sessions/{id}/events`).
#[derive(Debug, Clone, PartialEq)]
pub enum Beacon {
    /// Still watching (optionally at this quality).
    Heartbeat {
        quality: Option<String>,
    },
    /// Time from the player's start to the first frame.
    Startup {
        startup_ms: u32,
        quality: Option<String>,
    },
    StallStart,
    /// A stall ended; `duration_ms` when the player measured it itself.
    StallEnd {
        duration_ms: Option<u64>,
    },
    QualityChange {
        quality: String,
    },
    Error,
}

/// Why a beacon was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("the session belongs to another stream")]
    OtherStream,
}

/// One stream's audience as a sweep saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audience {
    pub viewers: u64,
    pub quality_distribution: BTreeMap<String, u32>,
    /// Watch time of beaconing viewers since the previous sweep, in ms.
    pub watch_ms: u64,
    /// Of which stalled, in ms.
    pub stall_ms: u64,
    /// Errors players reported since the previous sweep.
    pub player_errors: u64,
}

impl Audience {
    /// Stall time / watch time since the previous sweep (0 without beacons).
    pub fn buffering_ratio(&self) -> f64 {
        if self.watch_ms == 0 {
            0.0
        } else {
            (self.stall_ms as f64 / self.watch_ms as f64).min(1.0)
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<Uuid, Entry>,
    /// Records to persist (confirmed starts and ends), in order.
    outbox: Vec<ViewerSession>,
    /// Streams whose count was published last sweep (so a drop to 0 is published).
    published: HashMap<Uuid, u64>,
    /// Player-reported errors per stream since the previous sweep.
    player_errors: HashMap<Uuid, u64>,
    last_sweep: Option<Instant>,
}

/// What one sweep found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Records to persist, in order (sessions confirmed, sessions ended).
    pub persist: Vec<ViewerSession>,
    /// Active viewers per stream, for every stream that has or just had some.
    pub counts: HashMap<Uuid, u64>,
    /// Every stream with viewers (or player errors) now: counts, qualities,
    /// buffering since the previous sweep.
    pub audiences: HashMap<Uuid, Audience>,
}

/// What a delivery request brought to its session (see [`ViewerSessions::served`]).
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    pub stream_id: Uuid,
    /// `hls` or `dash` (fixes the protocol of a session minted before its
    /// first request); `None` keeps the session's.
    pub protocol: Option<&'a str>,
    /// The rendition in the path; `None` for a master playlist or MPD.
    pub quality: Option<&'a str>,
    /// Body bytes sent.
    pub bytes: u64,
    /// The request carried the id (false for the fetch that opened it).
    pub returning: bool,
}

/// The in-memory registry of viewer sessions (cheap to clone).
#[derive(Debug, Clone)]
pub struct ViewerSessions {
    inner: Arc<Mutex<Inner>>,
    ctl: Arc<admission::Control>,
}

impl Default for ViewerSessions {
    fn default() -> Self {
        Self::new()
    }
}

impl ViewerSessions {
    /// A registry with a random secret (its ids are valid in this process
    /// only), the default caps and its own limit counters; servers use
    /// [`ViewerSessions::with_policy`].
    pub fn new() -> Self {
        Self::with_policy(
            &random_secret(),
            SessionPolicy::default(),
            crate::limits::Limits::new(crate::metrics::Metrics::new()),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session under a new random id, without caps (in-process
    /// callers; requests go through [`ViewerSessions::admit`]).
    pub fn start(&self, stream_id: Uuid, protocol: &str, user_agent: Option<String>) -> Uuid {
        let id = Uuid::new_v4();
        self.open(id, stream_id, protocol, user_agent);
        id
    }

    /// Opens a session under an id the caller drew (and already handed out),
    /// without caps; an open session of that id is replaced.
    pub fn open(&self, id: Uuid, stream_id: Uuid, protocol: &str, user_agent: Option<String>) {
        let entry = Entry::new(
            new_record(id, stream_id, protocol, user_agent),
            Instant::now(),
        );
        self.lock().sessions.insert(id, entry);
    }

    /// Opens a session whose protocol is not known yet (minted for a player
    /// that has not fetched anything): `beacon` until a request says more.
    /// An open session of that id is kept as it is.
    fn open_pending(&self, id: Uuid, stream_id: Uuid, user_agent: Option<String>) {
        let mut entry = Entry::new(
            new_record(id, stream_id, BEACON, user_agent),
            Instant::now(),
        );
        entry.protocol_known = false;
        self.lock().sessions.entry(id).or_insert(entry);
    }

    /// Whether session `sid` is open here.
    pub fn contains(&self, sid: Uuid) -> bool {
        self.lock().sessions.contains_key(&sid)
    }

    /// Sessions held now, counted or not (the figure `max_live` caps).
    pub fn held(&self) -> usize {
        self.lock().sessions.len()
    }

    /// A request of session `sid` was answered (compatibility form of
    /// [`ViewerSessions::served`]).
    pub fn touch(
        &self,
        sid: Uuid,
        stream_id: Uuid,
        quality: Option<&str>,
        bytes: u64,
        returning: bool,
    ) {
        self.served(
            sid,
            Served {
                stream_id,
                protocol: None,
                quality,
                bytes,
                returning,
            },
        );
    }

    /// A request of open session `sid` was answered: refreshes it (last
    /// seen, bytes, quality). The session counts from the first returning
    /// rendition request, or the second master/MPD fetch. Returns false (and
    /// records nothing) for a session not open here or of another stream.
    pub fn served(&self, sid: Uuid, s: Served<'_>) -> bool {
        let now = Instant::now();
        let wall = Utc::now();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(entry) = inner.sessions.get_mut(&sid) else {
            return false;
        };
        if entry.record.stream_id != s.stream_id {
            // A session id belongs to one stream; a foreign one is ignored.
            return false;
        }
        entry.last_seen = now;
        entry.record.last_seen_at = wall;
        entry.record.bytes_sent = entry.record.bytes_sent.saturating_add(s.bytes);
        if let Some(p) = s.protocol
            && !entry.protocol_known
        {
            entry.record.protocol = p.to_string();
            entry.protocol_known = true;
        }
        let confirms = s.returning && (s.quality.is_some() || entry.manifest_seen);
        if s.quality.is_none() {
            entry.manifest_seen = true;
        }
        if confirms && !entry.confirmed {
            entry.confirmed = true;
            inner.outbox.push(entry.record.clone());
        }
        let Some(q) = s.quality else { return true };
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
            entry.set_quality(q);
        }
        true
    }

    /// A player beacon for session `sid` of `stream_id`. An id the registry
    /// does not know starts a session without caps (requests go through
    /// [`ViewerSessions::accept_beacons`] first); a beacon confirms the
    /// session at once (a player behind a CDN, whose requests the origin
    /// never sees, is counted from its beacons alone).
    pub fn beacon(
        &self,
        sid: Uuid,
        stream_id: Uuid,
        beacon: Beacon,
        user_agent: Option<String>,
    ) -> Result<(), BeaconError> {
        self.beacons(sid, stream_id, [beacon], user_agent)
    }

    /// Several beacons of one session (a request body), in order, under
    /// one lock; otherwise as [`ViewerSessions::beacon`].
    pub fn beacons<I>(
        &self,
        sid: Uuid,
        stream_id: Uuid,
        beacons: I,
        user_agent: Option<String>,
    ) -> Result<(), BeaconError>
    where
        I: IntoIterator<Item = Beacon>,
    {
        let now = Instant::now();
        let wall = Utc::now();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let entry = inner
            .sessions
            .entry(sid)
            .or_insert_with(|| Entry::new(new_record(sid, stream_id, BEACON, user_agent), now));
        if entry.record.stream_id != stream_id {
            return Err(BeaconError::OtherStream);
        }
        entry.last_seen = now;
        entry.record.last_seen_at = wall;
        entry.beaconing = true;
        if !entry.confirmed {
            entry.confirmed = true;
            inner.outbox.push(entry.record.clone());
        }
        for beacon in beacons {
            if entry.apply(beacon, now) {
                *inner.player_errors.entry(stream_id).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    /// The stream a session belongs to, if it is known.
    pub fn stream_of(&self, sid: Uuid) -> Option<Uuid> {
        self.lock().sessions.get(&sid).map(|e| e.record.stream_id)
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

    /// Quality switches of an active session.
    pub fn switches(&self, sid: Uuid) -> Option<u32> {
        self.lock()
            .sessions
            .get(&sid)
            .map(|e| e.record.quality_switches)
    }

    /// An active session's record as it stands.
    pub fn get(&self, sid: Uuid) -> Option<ViewerSession> {
        self.lock().sessions.get(&sid).map(|e| e.record.clone())
    }

    /// Ends sessions not seen for `timeout`, and reports what to persist, the
    /// viewer count of every stream that has (or just lost) viewers, and each
    /// stream's audience (qualities, buffering since the previous sweep).
    pub fn sweep(&self, now: Instant, timeout: Duration) -> Sweep {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut persist = std::mem::take(&mut inner.outbox);
        let wall: DateTime<Utc> = Utc::now();
        let since = inner.last_sweep.replace(now).unwrap_or(now);
        let tick_ms = |from: Instant| {
            u64::try_from(now.saturating_duration_since(from.max(since)).as_millis())
                .unwrap_or(u64::MAX)
        };
        // As many streams as the last sweep found, most likely.
        let mut audiences: HashMap<Uuid, Audience> = HashMap::with_capacity(inner.published.len());
        inner.sessions.retain(|_, e| {
            if now.saturating_duration_since(e.last_seen) >= timeout {
                if e.confirmed {
                    e.end_stall(e.last_seen.max(e.stalled_since.unwrap_or(e.last_seen)));
                    let mut r = e.record.clone();
                    // The viewer left when last seen; the timeout is not watch time.
                    r.ended_at = Some(r.last_seen_at.min(wall));
                    persist.push(r);
                }
                return false;
            }
            if e.confirmed {
                let a = audiences.entry(e.record.stream_id).or_default();
                a.viewers += 1;
                if let Some(q) = &e.record.quality {
                    match a.quality_distribution.get_mut(q) {
                        Some(n) => *n += 1,
                        None => {
                            a.quality_distribution.insert(q.clone(), 1);
                        }
                    }
                }
                if e.beaconing {
                    a.watch_ms += tick_ms(since);
                    if let Some(s) = e.stalled_since {
                        a.stall_ms += tick_ms(s);
                    }
                }
            }
            true
        });
        for (id, n) in inner.player_errors.drain() {
            audiences.entry(id).or_default().player_errors += n;
        }
        let mut counts: HashMap<Uuid, u64> =
            audiences.iter().map(|(k, a)| (*k, a.viewers)).collect();
        for id in inner.published.keys() {
            counts.entry(*id).or_insert(0);
        }
        inner.published = counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, v)| (*k, *v))
            .collect();
        Sweep {
            persist,
            counts,
            audiences,
        }
    }
}

fn new_record(
    id: Uuid,
    stream_id: Uuid,
    protocol: &str,
    user_agent: Option<String>,
) -> ViewerSession {
    let now = Utc::now();
    ViewerSession {
        id,
        stream_id,
        protocol: protocol.to_string(),
        user_agent,
        started_at: now,
        last_seen_at: now,
        ..ViewerSession::default()
    }
}

#[cfg(test)]
mod tests;
