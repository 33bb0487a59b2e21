//! What the API, the collector and the WebSocket channel read about a
//! stream's media: renditions, bit rates, recent segment lengths. Written by
//! the packaging task when a segment completes, read without locks held.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a rendition carries, as the playlists need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RenditionKind {
    Video,
    Audio,
}

/// One rendition as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionSummary {
    pub name: Arc<str>,
    pub info: RenditionInfo,
    /// Peak and average bits per second over the retained window.
    pub peak_bps: u64,
    pub average_bps: u64,
    /// The newest complete segment.
    pub newest_segment: Option<u64>,
    /// Durations (s) of the newest segments, newest first (up to five).
    pub recent_durations_secs: Vec<f64>,
    /// Listed in the playlists (has an init segment and a segment).
    pub playable: bool,
    /// A transcoded rendition: how long after the source's first part of a
    /// segment (the key frame that starts it, packaged) this rendition's
    /// first part of the same segment came out, in ms; the median of the
    /// newest segments. What FFmpeg adds to a viewer's latency on it.
    #[serde(default)]
    pub behind_source_ms: Option<u32>,
}

/// One broadcast's media as it stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    pub ended: bool,
    /// Wall-clock time (Unix ms) at which media time 0 was captured.
    pub availability_start_ms: i64,
    /// Renditions, video best first (the source leads), audio last.
    pub renditions: Vec<RenditionSummary>,
}

impl StreamSummary {
    pub fn rendition(&self, name: &str) -> Option<&RenditionSummary> {
        self.renditions.iter().find(|r| &*r.name == name)
    }

    /// Playable video renditions, best first.
    pub fn videos(&self) -> impl Iterator<Item = &RenditionSummary> {
        self.renditions
            .iter()
            .filter(|r| r.info.kind == RenditionKind::Video && r.playable)
    }
}
