//! A video-only packager for a transcoded rendition that cuts its segments where the
//! source [`Packager`](super::Packager) cut, never on its own (ISO/IEC 23000-19 CMAF
//! switching sets need aligned segments; RFC 8216bis §6.2.4 requires it for variant
//! streams).
//!
//! Sans-IO, like the source packager: [`FollowerPackager::configure`] and
//! [`FollowerPackager::push_media`] the rendition's video (or
//! [`FollowerPackager::push`] its FLV tag bodies), [`FollowerPackager::cut`] every
//! [`SegmentStart`] from
//! [`Packager::poll_segment_start`](super::Packager::poll_segment_start), then drain
//! [`FollowerPackager::poll_output`] until it returns `None`.
//!
//! # How a rendition is matched to the source
//!
//! The rendition comes from an encoder (FFmpeg) fed the source and writing the same
//! RTMP millisecond times (`-copyts -enc_time_base -1 -fps_mode passthrough`) with a
//! key frame forced at every source key frame (`-force_key_frames source`). Encoders
//! keep *presentation* times, not decode times (the source may have B-frames, the
//! rendition none), so instants are compared as presentation times, `timestamp +
//! composition time`, 32-bit wrap-aware, within a tolerance of half the rendition's
//! frame interval (15 ms until it is known).
//!
//! - Pending [`SegmentStart`]s are queued (64 at most, oldest dropped); they may come
//!   before or after the rendition reaches their time. A rendition key frame at a
//!   pending start's time opens that segment (numbers may skip); starts it has passed
//!   are dropped.
//! - A key frame at no known start may still be one that the source has not announced
//!   yet: it is held back (with the frames after it) until a [`SegmentStart`] decides,
//!   unless it is less than `target_segment_ms − 500 ms` after the previous start (the
//!   source never cuts sooner, so pass the source's [`PackagerConfig`]), a later start
//!   is already known, or 6 s of rendition have piled up behind it.
//! - Decode times: the segment's first sample gets exactly the source's `start`, the
//!   others `start + (dts − key frame dts) × 90`; presentation times are the source's,
//!   `start + (pts − input_timestamp) × 90`, so composition offsets become
//!   `(key frame dts − input_timestamp + composition time) × 90`. A segment closes when
//!   the next one opens, its last sample lasting until the next start, so durations
//!   tile exactly with the source's.
//! - A start whose time the rendition reaches on a frame that is not a key frame is
//!   dropped with a [`PackagerEvent::Discontinuity`] (nothing is cut: the open segment
//!   grows over it and still tiles). Frames before the first matching key frame, and
//!   between [`FollowerPackager::restart`] and the next one, are dropped.
//! - [`Segment::discontinuity`](super::Segment::discontinuity) is set after
//!   [`FollowerPackager::restart`] or a new decoder configuration, and where the
//!   source's segment has it (so that the discontinuity sequences match), never on the
//!   first segment.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::track::{Muxer, Pending};
use super::{
    PackagerConfig, PackagerError, PackagerEvent, SegmentStart, TrackInfo, TrackKind,
    VIDEO_TIMESCALE,
};
use crate::cmaf::CmafError;
use crate::frame::{Frame, FrameKind};
use crate::media::{FlvTagParser, MediaFrame, Parsed, TrackConfig};

/// Matching tolerance until the rendition's frame interval is known.
const DEFAULT_TOLERANCE_MS: i64 = 15;
/// Bounds of the tolerance (half a frame interval).
const TOLERANCE_RANGE_MS: (i64, i64) = (2, 50);
/// Pending segment starts kept.
const MAX_PENDING: usize = 64;
/// Rendition media held back behind an undecided key frame, at most.
const MAX_HOLD_MS: i64 = 6_000;
const MAX_HOLD_FRAMES: usize = 1_000;
/// A key frame this much less than `target_segment_ms` after the previous segment
/// start cannot start a segment (covers composition-time differences between GOPs).
const INFER_MARGIN_MS: i64 = 500;
/// Frame intervals remembered to estimate the rendition's frame interval.
const INTERVALS: usize = 16;

/// `a − b` in ms, 32-bit wrap-aware.
fn diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn ticks(ms: i64) -> i64 {
    ms * i64::from(VIDEO_TIMESCALE) / 1000
}

/// A coded rendition frame waiting to be placed.
#[derive(Debug)]
struct RFrame {
    ts: u32,
    cts_ms: i32,
    key: bool,
    data: Bytes,
}

impl RFrame {
    fn pts(&self) -> u32 {
        self.ts.wrapping_add_signed(self.cts_ms)
    }
}

/// The open segment and its time mapping.
#[derive(Debug)]
struct Open {
    number: u64,
    start: u64,
    /// The source key frame's RTMP decode time.
    input_timestamp: u32,
    /// The rendition key frame's RTMP decode time.
    key_ts: u32,
    last_dts: u64,
}

enum Decision {
    Open(SegmentStart),
    Place,
    Wait,
}

/// Packages one transcoded rendition (video only) on the source's segment boundaries.
#[derive(Debug)]
pub struct FollowerPackager {
    config: PackagerConfig,
    events: VecDeque<PackagerEvent>,
    track: Option<Arc<TrackConfig>>,
    /// Parses what [`FollowerPackager::push`] is given.
    parser: FlvTagParser,
    init_version: u32,
    muxer: Option<Muxer>,
    pending: VecDeque<SegmentStart>,
    /// Highest segment number announced by [`FollowerPackager::cut`].
    last_announced: u64,
    held: VecDeque<RFrame>,
    open: Option<Open>,
    /// Presentation time (RTMP ms) of the latest segment start reached.
    floor_pts: Option<u32>,
    last_ts: Option<u32>,
    intervals: VecDeque<i64>,
    /// Matching tolerance in ms.
    tolerance: i64,
    /// A segment has been opened since creation (later ones may be discontinuities).
    opened_any: bool,
    /// A start flagged `discontinuity` was passed without a cut: flag the next segment.
    missed_discontinuity: bool,
}

impl FollowerPackager {
    /// `part_target_ms` sizes the parts; `target_segment_ms` must be the source's (no
    /// segment is shorter, which lets key frames between starts through at once).
    pub fn new(config: PackagerConfig) -> Self {
        Self {
            config,
            events: VecDeque::new(),
            track: None,
            parser: FlvTagParser::new(),
            init_version: 0,
            muxer: None,
            pending: VecDeque::new(),
            last_announced: 0,
            held: VecDeque::new(),
            open: None,
            floor_pts: None,
            last_ts: None,
            intervals: VecDeque::new(),
            tolerance: DEFAULT_TOLERANCE_MS,
            opened_any: false,
            missed_discontinuity: false,
        }
    }

    /// Adopt the rendition's decoder configuration (audio ones and one identical to
    /// the one in force are ignored). A change drops the open segment, which was coded
    /// with the old one. Drain [`FollowerPackager::poll_output`] afterwards.
    pub fn configure(&mut self, config: &Arc<TrackConfig>) -> Result<(), PackagerError> {
        if config.kind != TrackKind::Video || self.track.as_ref().is_some_and(|c| c.same_as(config))
        {
            return Ok(());
        }
        self.install(config.clone());
        Ok(())
    }

    /// Feed one coded rendition frame (audio frames are ignored). On error the frame is
    /// dropped and the packager stays usable. Drain [`FollowerPackager::poll_output`]
    /// afterwards.
    pub fn push_media(&mut self, frame: &MediaFrame) -> Result<(), PackagerError> {
        if frame.kind != TrackKind::Video {
            return Ok(());
        }
        if self.track.is_none() {
            return Err(PackagerError::NotConfigured {
                kind: TrackKind::Video,
                timestamp: frame.timestamp,
            });
        }
        let ts = frame.timestamp;
        self.measure(ts);
        self.held.push_back(RFrame {
            ts,
            cts_ms: frame.composition_time,
            key: frame.key,
            data: frame.data.clone(),
        });
        self.drain(false);
        Ok(())
    }

    /// Feed one FLV tag body of the rendition, parsed by the packager's own
    /// [`FlvTagParser`]; audio and script frames are ignored.
    pub fn push(&mut self, frame: &Frame) -> Result<(), PackagerError> {
        if frame.kind != FrameKind::Video {
            return Ok(());
        }
        match self.parser.parse(frame)? {
            Parsed::Config(config) => self.configure(&config),
            Parsed::Media(media) => self.push_media(&media),
            Parsed::Skip => Ok(()),
        }
    }

    /// The source opened segment `start.number`: cut the rendition at the same instant
    /// (now, or when it gets there). Numbers not above the last announced are ignored.
    pub fn cut(&mut self, start: &SegmentStart) {
        if start.number <= self.last_announced {
            return;
        }
        self.last_announced = start.number;
        self.pending.push_back(*start);
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
        }
        self.drain(false);
    }

    /// The encoder was restarted: drop the open segment unfinished (its parts already
    /// emitted are abandoned; a [`PackagerEvent::Discontinuity`] says so) and the time
    /// mapping. The next segment, at the next start the new encoder reaches with a key
    /// frame, is flagged `discontinuity`.
    pub fn restart(&mut self) {
        self.held.clear();
        self.open = None;
        self.last_ts = None;
        self.intervals.clear();
        self.tolerance = DEFAULT_TOLERANCE_MS;
        let dropped = self.muxer.as_mut().and_then(Muxer::discard);
        if let (true, Some(muxer)) = (self.opened_any, self.muxer.as_mut()) {
            muxer.next_discontinuity = true;
            let reason = match dropped {
                Some(n) => format!("rendition encoder restarted: segment {n} dropped unfinished"),
                None => "rendition encoder restarted".to_string(),
            };
            self.events
                .push_back(PackagerEvent::Discontinuity { reason });
        }
    }

    /// End of stream: place what is held back, then close the open segment (its last
    /// sample lasts as long as the one before it).
    pub fn finish(&mut self) {
        self.drain(true);
        self.open = None;
        if let Some(Err(e)) = self.muxer.as_mut().map(|m| m.flush(&mut self.events)) {
            self.cmaf_error(e);
        }
    }

    /// The next output, in order; `None` when there is nothing more for now.
    pub fn poll_output(&mut self) -> Option<PackagerEvent> {
        self.events.pop_front()
    }

    /// What is known of the rendition, once its sequence header has been seen.
    pub fn track_info(&self) -> Option<&TrackInfo> {
        self.track.as_ref().map(|c| &c.info)
    }

    /// Remember the interval since the previous frame; the matching tolerance is half
    /// the median of the recent ones.
    fn measure(&mut self, ts: u32) {
        if let Some(last) = self.last_ts {
            let d = diff(ts, last);
            if (1..=1000).contains(&d) {
                self.intervals.push_back(d);
                if self.intervals.len() > INTERVALS {
                    self.intervals.pop_front();
                }
                let mut recent: Vec<i64> = self.intervals.iter().copied().collect();
                recent.sort_unstable();
                let (lo, hi) = TOLERANCE_RANGE_MS;
                self.tolerance = (recent[recent.len() / 2] / 2).clamp(lo, hi);
            }
        }
        self.last_ts = Some(ts);
    }

    /// CMAF writing errors (absurd sizes only) have no frame to blame: report them.
    fn cmaf_error(&mut self, source: CmafError) {
        let error = PackagerError::Cmaf {
            kind: TrackKind::Video,
            source,
        };
        let reason = error.to_string();
        self.events
            .push_back(PackagerEvent::Discontinuity { reason });
    }

    /// Adopt a new decoder configuration, dropping the open segment if there was one.
    fn install(&mut self, config: Arc<TrackConfig>) {
        if self.track.is_some() {
            self.held.clear();
            self.open = None;
            let dropped = self.muxer.as_mut().and_then(Muxer::discard);
            if let Some(n) = dropped {
                let reason = format!(
                    "rendition decoder configuration changed: segment {n} dropped unfinished"
                );
                self.events
                    .push_back(PackagerEvent::Discontinuity { reason });
            }
        }
        let part_target = self.config.part_target_ms;
        let nominal = u32::try_from(config.nominal_duration).unwrap_or(3000);
        let muxer = self.muxer.get_or_insert_with(|| {
            Muxer::new(TrackKind::Video, VIDEO_TIMESCALE, part_target, nominal)
        });
        muxer.next_discontinuity |= self.opened_any;
        self.init_version += 1;
        muxer.init_version = self.init_version;
        self.events
            .push_back(PackagerEvent::Init(super::InitSegment {
                track: TrackKind::Video,
                version: self.init_version,
                data: config.init.clone(),
                info: config.info.clone(),
            }));
        self.track = Some(config);
    }

    /// Place the held frames that can be placed; `force` decides every key frame.
    fn drain(&mut self, force: bool) {
        while let Some(front) = self.held.front() {
            let (pts, key) = (front.pts(), front.key);
            let decision = self.decide(pts, key, force);
            if matches!(decision, Decision::Wait) {
                break;
            }
            let Some(frame) = self.held.pop_front() else {
                break;
            };
            match decision {
                Decision::Open(start) => self.open_segment(&start, frame),
                _ => self.place(frame),
            }
        }
    }

    /// Where the frame presented at `pts` goes.
    fn decide(&mut self, pts: u32, key: bool, force: bool) -> Decision {
        let tol = self.tolerance;
        if key {
            let at = |s: &SegmentStart| diff(pts, s.input_presentation_time()).abs() <= tol;
            if let Some(j) = self.pending.iter().position(at) {
                let passed: Vec<_> = self.pending.drain(..j).collect();
                for start in passed {
                    self.missed(&start, pts);
                }
                if let Some(start) = self.pending.pop_front() {
                    return Decision::Open(start);
                }
            }
        }
        let reached = |s: &SegmentStart| diff(pts, s.input_presentation_time()) >= -tol;
        let n = self.pending.iter().take_while(|s| reached(s)).count();
        let passed: Vec<_> = self.pending.drain(..n).collect();
        for start in passed {
            self.missed(&start, pts);
        }
        if !key || force || !self.pending.is_empty() {
            return Decision::Place; // a later start is known: this is not one
        }
        let earliest = i64::from(self.config.target_segment_ms) - INFER_MARGIN_MS;
        if self.floor_pts.is_some_and(|f| diff(pts, f) < earliest) {
            return Decision::Place; // too soon after the previous start to be one
        }
        let newest = self.held.back().map_or(pts, RFrame::pts);
        if diff(newest, pts) > MAX_HOLD_MS || self.held.len() > MAX_HOLD_FRAMES {
            return Decision::Place; // no start came for it: not one
        }
        Decision::Wait
    }

    /// The rendition got to `start` on a frame (at `pts`) that cannot open it.
    fn missed(&mut self, start: &SegmentStart, pts: u32) {
        self.floor_pts = Some(start.input_presentation_time());
        self.missed_discontinuity |= start.discontinuity;
        if let Some(open) = &self.open {
            let reason = format!(
                "rendition reached the start of segment {} (source {} ms) on a frame \
                 at {pts} ms that cannot open it (no key frame there, or the start came \
                 too late): segment {} goes on over it",
                start.number,
                start.input_presentation_time(),
                open.number
            );
            self.events
                .push_back(PackagerEvent::Discontinuity { reason });
        }
    }

    fn open_segment(&mut self, start: &SegmentStart, frame: RFrame) {
        self.floor_pts = Some(start.input_presentation_time());
        // Discontinuities where the source has them too keep the HLS discontinuity
        // sequence the same across renditions (the first segment is never one).
        let inherited = std::mem::take(&mut self.missed_discontinuity) || start.discontinuity;
        if let (true, Some(muxer)) = (self.opened_any && inherited, self.muxer.as_mut()) {
            muxer.next_discontinuity = true;
        }
        self.open = Some(Open {
            number: start.number,
            start: start.start,
            input_timestamp: start.input_timestamp,
            key_ts: frame.ts,
            last_dts: start.start,
        });
        self.opened_any = true;
        self.write(frame, start.start);
    }

    /// Time a frame on the open segment's mapping (dropped when none is open).
    fn place(&mut self, frame: RFrame) {
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let mapped = i128::from(open.start) + i128::from(ticks(diff(frame.ts, open.key_ts)));
        let floor = i128::from(open.last_dts) + 1;
        let dts = u64::try_from(mapped.max(floor)).unwrap_or(u64::MAX);
        self.write(frame, dts);
    }

    fn write(&mut self, frame: RFrame, dts: u64) {
        let (Some(open), Some(muxer)) = (self.open.as_mut(), self.muxer.as_mut()) else {
            return;
        };
        open.last_dts = dts;
        let offset = diff(open.key_ts, open.input_timestamp) + i64::from(frame.cts_ms);
        let cts = ticks(offset).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        let sample = Pending {
            dts,
            cts,
            key: frame.key,
            data: frame.data,
        };
        let number = open.number;
        if let Err(e) = muxer.push(sample, number, &mut self.events) {
            self.cmaf_error(e);
        }
    }
}
