//! Domain models and the stream state machine.
//!
//! Models: [`Stream`], [`StreamKey`] (hash only), [`ViewerSession`],
//! [`StreamMetrics`] (one sample) and [`QualityLevel`] (one rung of the
//! ladder), plus the paging types the repositories share. Ids are UUIDs and
//! every timestamp is UTC with microsecond precision (what both databases
//! keep), so a value reads back exactly as it was written.
//!
//! ```text
//!  PENDING ──first media──▶ ACTIVE ──encoder stops──▶ ENDED ──publishes again──▶ ACTIVE
//!     │                      │
//!     └──────────────────────┴──fatal failure──▶ ERROR ──publishes again──▶ ACTIVE
//! ```
//! A stream key is reusable, as with every hosted service: an ENDED stream goes
//! ACTIVE again when its broadcaster publishes once more.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Pending,
    Active,
    Ended,
    Error,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Pending => "PENDING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Ended => "ENDED",
            StreamStatus::Error => "ERROR",
        }
    }

    /// Whether the state machine allows `self -> to`.
    pub fn can_transition_to(self, to: StreamStatus) -> bool {
        use StreamStatus::*;
        matches!(
            (self, to),
            (Pending, Active)
                | (Pending, Error)
                | (Active, Ended)
                | (Active, Error)
                | (Ended, Active)
                | (Error, Active)
        )
    }
}

impl fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PENDING" | "PENDING_INGEST" => Ok(StreamStatus::Pending),
            "ACTIVE" => Ok(StreamStatus::Active),
            "ENDED" => Ok(StreamStatus::Ended),
            "ERROR" => Ok(StreamStatus::Error),
            other => Err(format!("unknown stream status {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub id: Uuid,
    pub name: String,
    pub status: StreamStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A stream key as stored: never the key itself, only its SHA-256 and a
/// short public prefix used to find the row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamKey {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub prefix: String,
    #[serde(skip)]
    pub hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl StreamKey {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A viewer's playback session, kept by the delivery side (analytics fill it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ViewerSession {
    pub id: Uuid,
    pub stream_id: Uuid,
    /// `hls`, `ll-hls` or `dash`.
    pub protocol: String,
    /// The rendition last fetched (`source`, `720p`, …), if known.
    pub quality: Option<String>,
    pub user_agent: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub bytes_sent: u64,
    /// Quality changes seen (from requests or player beacons).
    pub quality_switches: u32,
    /// Time to first frame the player reported (beacon `startup`), in ms.
    pub startup_ms: Option<u32>,
    /// Stalls the player reported (beacon `stall_start`).
    pub stalls: u32,
    /// Total stall time, in ms (from `stall_start`/`stall_end` beacons).
    pub stall_ms: u64,
    /// Playback errors the player reported (beacon `error`).
    pub errors: u32,
}

impl ViewerSession {
    pub fn is_active(&self) -> bool {
        self.ended_at.is_none()
    }
}

/// One 1-second sample of a stream's health and audience, taken by the
/// metrics collector (`at` is a whole second, UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StreamMetrics {
    pub stream_id: Uuid,
    pub at: DateTime<Utc>,
    pub concurrent_viewers: u64,
    pub ingest_bitrate_kbps: u64,
    pub egress_bitrate_kbps: u64,
    pub frames_dropped: u64,
    pub segments_produced: u64,
    /// Active viewers by current quality (rendition name).
    pub quality_distribution: BTreeMap<String, u32>,
    /// Stall time / watch time of the beaconing viewers during this second (0..=1).
    pub buffering_ratio: f64,
    /// Stream errors (ingest, delivery, player-reported) during this second.
    pub errors: u64,
    /// The transcoder's speed (1.0 = real time), when one runs.
    pub transcoder_speed: Option<f64>,
}

/// One minute of a stream's samples rolled up (`minute` is the start of the
/// minute, UTC). Kept after raw 1-second samples expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRollup {
    pub stream_id: Uuid,
    pub minute: DateTime<Utc>,
    /// How many 1-second samples went into it.
    pub samples: u32,
    pub viewers_avg: f64,
    pub viewers_min: u64,
    pub viewers_max: u64,
    pub ingest_kbps_avg: f64,
    pub ingest_kbps_min: u64,
    pub ingest_kbps_max: u64,
    pub egress_kbps_avg: f64,
    pub buffering_ratio_avg: f64,
    pub errors: u64,
    pub transcoder_speed_min: Option<f64>,
    /// Average viewers per quality over the minute.
    pub quality_distribution: BTreeMap<String, f64>,
}

/// One rung of a stream's ladder as offered to players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityLevel {
    /// `source`, `1080p`, `720p`, `480p`, `audio`.
    pub name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    pub frame_rate: Option<f64>,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec: Option<String>,
}

/// Which page of a listing to read: 1-based, at most [`PageRequest::MAX_PER_PAGE`] items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: u32,
    per_page: u32,
}

impl PageRequest {
    pub const MAX_PER_PAGE: u32 = 100;
    pub const DEFAULT_PER_PAGE: u32 = 20;

    /// A valid request, or `None` when `page` is 0 or `per_page` is outside 1..=100.
    pub fn new(page: u32, per_page: u32) -> Option<Self> {
        (page >= 1 && (1..=Self::MAX_PER_PAGE).contains(&per_page))
            .then_some(Self { page, per_page })
    }

    pub fn page(self) -> u32 {
        self.page
    }

    pub fn per_page(self) -> u32 {
        self.per_page
    }

    /// Rows to skip (never overflows: at most `u32::MAX * 100`).
    pub fn offset(self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.per_page)
    }

    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: Self::DEFAULT_PER_PAGE,
        }
    }
}

/// One page of a listing and the total number of matching items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

/// The current time as the databases keep it (UTC, whole microseconds).
pub fn now() -> DateTime<Utc> {
    to_db_precision(Utc::now())
}

/// Truncates a timestamp to the microsecond precision both databases keep.
pub fn to_db_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use StreamStatus::*;
        assert!(Pending.can_transition_to(Active));
        assert!(Active.can_transition_to(Ended));
        assert!(Ended.can_transition_to(Active));
        assert!(!Pending.can_transition_to(Ended));
        assert!(!Ended.can_transition_to(Pending));
        assert!(!Active.can_transition_to(Active));
        assert_eq!("active".parse::<StreamStatus>().unwrap(), Active);
        assert!("bogus".parse::<StreamStatus>().is_err());
    }

    #[test]
    fn page_requests_are_bounded() {
        assert!(PageRequest::new(0, 10).is_none());
        assert!(PageRequest::new(1, 0).is_none());
        assert!(PageRequest::new(1, 101).is_none());
        let p = PageRequest::new(u32::MAX, 100).unwrap();
        assert_eq!(p.offset(), (i64::from(u32::MAX) - 1) * 100);
        assert_eq!(PageRequest::new(3, 20).unwrap().offset(), 40);
    }
}
