//! The packaging task's own record of a broadcast: per rendition, the init
//! versions, the retained window of segments (with their parts' timing) and
//! the segment being produced. Playlists and the MPD are rendered from it
//! (`render_hls`, `render_dash`); nothing here is read back from the store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use streaming_core::store::{
    PartRef, Progress, RenditionInfo, RenditionKind, RenditionSummary, StreamSummary,
};

use crate::packaging::{AUDIO, SOURCE};

/// One part of a segment: timing only (the bytes are in the store).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartMeta {
    /// In the rendition's timescale.
    pub duration: u64,
    pub independent: bool,
    pub bytes: usize,
}

/// A complete segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMeta {
    pub number: u64,
    /// `tfdt` of the first sample, in the rendition's timescale.
    pub start: u64,
    pub duration: u64,
    pub bytes: usize,
    pub discontinuity: bool,
    pub init_version: u32,
    /// Wall-clock time (Unix ms) of the first sample.
    pub program_date_time_ms: i64,
    /// Its parts, while they are still kept (the recent segments only).
    pub parts: Vec<PartMeta>,
}

/// The segment being produced: the parts out so far.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSegment {
    pub number: u64,
    /// Expected `tfdt` (the previous segment's end), when known.
    pub start: Option<u64>,
    pub discontinuity: bool,
    pub init_version: u32,
    pub parts: Vec<PartMeta>,
    /// The parts' bytes as stored (shared, not copied): joined into the
    /// segment when it closes, so parts and segment share one buffer.
    pub data: Vec<bytes::Bytes>,
}

/// One rendition of the broadcast.
#[derive(Debug, Clone)]
pub struct RenditionModel {
    pub name: Arc<str>,
    pub info: RenditionInfo,
    /// Init versions stored (newest last).
    pub init_versions: Vec<u32>,
    pub segments: VecDeque<SegmentMeta>,
    pub open: Option<OpenSegment>,
    /// `EXT-X-DISCONTINUITY` tags that slid out of the retained window.
    pub dropped_discontinuities: u64,
    /// The next segment starts a discontinuity (publisher changed, encoder
    /// restarted, decoder configuration changed).
    pub pending_discontinuity: bool,
    pub modified_ms: i64,
    /// Transcoded renditions: ms from the source's first part of a segment
    /// to this rendition's first part of it, newest last (a few kept).
    pub behind_source_ms: VecDeque<u32>,
}

impl RenditionModel {
    pub fn new(name: Arc<str>, info: RenditionInfo, now_ms: i64) -> Self {
        Self {
            name,
            info,
            init_versions: Vec::new(),
            segments: VecDeque::new(),
            open: None,
            dropped_discontinuities: 0,
            pending_discontinuity: false,
            modified_ms: now_ms,
            behind_source_ms: VecDeque::new(),
        }
    }

    pub fn timescale(&self) -> f64 {
        f64::from(self.info.timescale.max(1))
    }

    pub fn latest_init(&self) -> u32 {
        self.init_versions.last().copied().unwrap_or(1)
    }

    /// Listed in playlists: an init segment and a complete segment. (Parts
    /// alone are not enough: hls.js 1.7 and Shaka 5.2 start only once a
    /// playlist lists a complete segment, and dash.js fails on an empty
    /// timeline; an earlier master only makes them poll.)
    pub fn playable(&self) -> bool {
        !self.init_versions.is_empty() && !self.segments.is_empty()
    }

    /// Listable in the MPD before its first segment is complete (low
    /// latency): the first segment is in progress with a part out and its
    /// start known. dash.js in low-latency mode starts in it, so the first
    /// frame need not wait for a whole GOP.
    pub fn starting(&self) -> bool {
        !self.init_versions.is_empty()
            && self.segments.is_empty()
            && self
                .open
                .as_ref()
                .is_some_and(|o| o.start.is_some() && !o.parts.is_empty())
    }

    /// Start (media time) of the segment in progress, when it follows the
    /// listed ones (or is the first).
    pub fn open_start(&self) -> Option<u64> {
        match self.segments.back() {
            Some(last)
                if self
                    .open
                    .as_ref()
                    .is_none_or(|o| o.number == last.number + 1) =>
            {
                Some(last.start + last.duration)
            }
            Some(_) => None,
            None => self
                .open
                .as_ref()
                .filter(|o| !o.parts.is_empty())
                .and_then(|o| o.start),
        }
    }

    /// The part a preload hint names (RFC 8216bis §4.4.5.3): the next part
    /// of the open segment, or part 0 of the next segment when the open one
    /// is expected to close before another part. A segment closes at the
    /// first key frame at or past the target (`target` in the rendition's
    /// timescale), so below it the next part is certainly the open
    /// segment's; at or past it, when the last two segments were equally
    /// long (a fixed GOP, within half a frame), key frames are taken to keep
    /// that rhythm: an open segment as long as they were gets the next
    /// segment's first part. Otherwise the next part of the open segment is
    /// named, and may never be made (a 404 that players back off from);
    /// hls.js also stalls when a part it did not expect appears, so the
    /// guess is only made on that evidence.
    pub fn hinted_part(&self, target: u64, part: u64) -> Option<PartRef> {
        let Some(o) = &self.open else {
            return self.next_number().map(|msn| PartRef { msn, part: 0 });
        };
        let next = PartRef {
            msn: o.number,
            part: o.parts.len() as u32,
        };
        let made: u64 = o.parts.iter().map(|p| p.duration).sum();
        let ts = f64::from(self.info.timescale.max(1));
        let half_frame = match (self.info.frame_rate, self.info.sample_rate) {
            (Some(fps), _) if fps > 0.0 => (ts / fps / 2.0) as u64,
            // AAC: 1,024 samples a frame.
            (_, Some(rate)) if rate > 0 => (ts * 512.0 / f64::from(rate)) as u64,
            _ => part / 8,
        };
        let mut recent = self.segments.iter().rev();
        let closes = match (recent.next(), recent.next()) {
            (Some(last), Some(before)) if last.number + 1 == o.number => {
                made >= target
                    && last.duration.abs_diff(before.duration) <= half_frame
                    && made + half_frame >= last.duration
            }
            _ => false,
        };
        Some(if closes {
            PartRef {
                msn: o.number + 1,
                part: 0,
            }
        } else {
            next
        })
    }

    pub fn segment(&self, number: u64) -> Option<&SegmentMeta> {
        let first = self.segments.front()?.number;
        let idx = number.checked_sub(first)? as usize;
        self.segments.get(idx).filter(|s| s.number == number)
    }

    /// The newest part: in the open segment, else the last of the newest
    /// segment that still has its parts.
    pub fn last_part(&self) -> Option<PartRef> {
        if let Some(o) = self.open.as_ref().filter(|o| !o.parts.is_empty()) {
            return Some(PartRef {
                msn: o.number,
                part: o.parts.len() as u32 - 1,
            });
        }
        let s = self.segments.back()?;
        (!s.parts.is_empty()).then(|| PartRef {
            msn: s.number,
            part: s.parts.len() as u32 - 1,
        })
    }

    pub fn progress(&self, ended: bool) -> Progress {
        Progress {
            last_part: self.last_part(),
            last_segment: self.segments.back().map(|s| s.number),
            ended,
        }
    }

    /// The number the next segment will most likely carry.
    pub fn next_number(&self) -> Option<u64> {
        match (&self.open, self.segments.back()) {
            (Some(o), _) => Some(o.number),
            (None, Some(s)) => Some(s.number + 1),
            (None, None) => None,
        }
    }

    /// Peak and average bits per second over the window.
    pub fn bandwidth(&self) -> (u64, u64) {
        let ts = self.timescale();
        let mut peak = 0f64;
        let (mut bytes, mut secs) = (0usize, 0f64);
        for s in &self.segments {
            let d = s.duration as f64 / ts;
            if d > 0.0 {
                peak = peak.max(s.bytes as f64 * 8.0 / d);
            }
            bytes += s.bytes;
            secs += d;
        }
        if self.segments.is_empty()
            && let Some(o) = &self.open
        {
            // Only parts so far: estimate from them.
            let d = o.parts.iter().map(|p| p.duration as f64).sum::<f64>() / ts;
            bytes = o.parts.iter().map(|p| p.bytes).sum();
            secs = d;
            if d > 0.0 {
                peak = bytes as f64 * 8.0 / d;
            }
        }
        let avg = if secs > 0.0 {
            bytes as f64 * 8.0 / secs
        } else {
            0.0
        };
        (peak.ceil() as u64, avg.ceil() as u64)
    }

    pub fn summary(&self) -> RenditionSummary {
        let (peak_bps, average_bps) = self.bandwidth();
        let ts = self.timescale();
        RenditionSummary {
            name: self.name.clone(),
            info: self.info.clone(),
            peak_bps,
            average_bps,
            newest_segment: self.segments.back().map(|s| s.number),
            recent_durations_secs: self
                .segments
                .iter()
                .rev()
                .take(5)
                .map(|s| s.duration as f64 / ts)
                .collect(),
            playable: self.playable(),
            behind_source_ms: median(&self.behind_source_ms),
        }
    }
}

/// How many delays [`RenditionModel::behind_source_ms`] keeps.
pub const BEHIND_SOURCE_KEPT: usize = 5;

fn median(values: &VecDeque<u32>) -> Option<u32> {
    let mut v: Vec<u32> = values.iter().copied().collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// The whole broadcast.
#[derive(Debug, Clone, Default)]
pub struct BroadcastModel {
    pub renditions: BTreeMap<Arc<str>, RenditionModel>,
    pub ended: bool,
    /// Wall-clock time (Unix ms) of media time 0; set with the first part.
    pub availability_start_ms: Option<i64>,
    pub modified_ms: i64,
}

impl BroadcastModel {
    /// Playable video renditions, best first (the source leads).
    pub fn videos(&self) -> Vec<&RenditionModel> {
        self.videos_where(RenditionModel::playable)
    }

    fn videos_where(&self, listed: impl Fn(&RenditionModel) -> bool) -> Vec<&RenditionModel> {
        let mut v: Vec<_> = self
            .renditions
            .values()
            .filter(|r| r.info.kind == RenditionKind::Video && listed(r))
            .collect();
        v.sort_by_key(|r| {
            (
                &*r.name != SOURCE,
                std::cmp::Reverse(r.info.height.unwrap_or(0)),
            )
        });
        v
    }

    pub fn audio(&self) -> Option<&RenditionModel> {
        self.renditions.get(AUDIO).filter(|r| r.playable())
    }

    /// The source announced audio (its init is stored) but its first segment
    /// is not out yet: a master playlist or MPD written now would offer video
    /// only, and players read the master once.
    pub fn audio_pending(&self) -> bool {
        !self.ended
            && self
                .renditions
                .get(AUDIO)
                .is_some_and(|r| !r.init_versions.is_empty() && !r.playable())
    }

    /// A master playlist or MPD can be written.
    pub fn manifest_ready(&self) -> bool {
        !self.audio_pending() && (!self.videos().is_empty() || self.audio().is_some())
    }

    /// Nothing is playable yet, but the first segment is in progress: an
    /// LL-DASH manifest can list it (`render_dash`). Audio, when announced,
    /// must have started too, as for [`Self::manifest_ready`].
    pub fn starting(&self) -> bool {
        if self.ended || !self.videos().is_empty() || self.audio().is_some() {
            return false;
        }
        let audio_waits = self
            .renditions
            .get(AUDIO)
            .is_some_and(|r| !r.init_versions.is_empty() && !r.starting());
        !audio_waits && self.renditions.values().any(RenditionModel::starting)
    }

    /// Video renditions whose first segment is in progress, best first.
    pub fn starting_videos(&self) -> Vec<&RenditionModel> {
        self.videos_where(RenditionModel::starting)
    }

    pub fn summary(&self) -> StreamSummary {
        let mut renditions: Vec<_> = self.videos().into_iter().map(|r| r.summary()).collect();
        renditions.extend(
            self.renditions
                .values()
                .filter(|r| !(r.info.kind == RenditionKind::Video && r.playable()))
                .map(|r| r.summary()),
        );
        StreamSummary {
            ended: self.ended,
            availability_start_ms: self.availability_start_ms.unwrap_or(self.modified_ms),
            renditions,
        }
    }
}
