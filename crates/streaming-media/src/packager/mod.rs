//! The CMAF packager: decoder configurations and media frames in, CMAF init segments,
//! LL-HLS parts and segments out (ISO/IEC 23000-19 CMAF; parts per RFC 8216bis
//! §4.4.4.9).
//!
//! Sans-IO: call [`Packager::configure`] for every [`TrackConfig`] and
//! [`Packager::push_media`] for every [`MediaFrame`] (as the hub delivers them, parsed
//! once at ingest), then drain [`Packager::poll_output`] until it returns `None`.
//! [`Packager::push`] takes FLV tag bodies instead, through its own
//! [`FlvTagParser`]. Time comes only from the frames.
//!
//! # Rules
//!
//! - Video (H.264) uses a 90 kHz timescale, AAC its sampling rate. Each track is its
//!   own CMAF track (one-track init segment, track id 1).
//! - Segment numbers start at 1 and are shared: video and audio segment N cover the
//!   same time. A segment is cut at the first video key frame whose DTS is at least
//!   `target_segment_ms` after the segment start; audio is cut at its first frame at
//!   or after that time. Without video, audio is cut by time. Audio waits (buffered)
//!   until video has passed it, so that it knows on which side of a cut it falls; if
//!   video stalls for `2 × target + 1 s`, audio takes over and video rejoins at its
//!   next key frame.
//! - Segments are emitted as parts (CMAF chunks of about `part_target_ms`, each
//!   `moof`+`mdat`, the first with a leading `styp`) as soon as each is complete, then
//!   as a [`Segment`] when the next one starts.
//! - Segment 1 starts once both sequence headers are known, or after 1 s of buffered
//!   media; every video segment starts with a key frame (earlier video frames, and
//!   audio before that key frame, are dropped).
//! - A timestamp that goes backwards (> 50 ms; smaller steps are absorbed), jumps
//!   forward (> 5 s) or wraps at 2^32 emits [`PackagerEvent::Discontinuity`], closes
//!   the open segments and rebases the output so it continues where it stopped (both
//!   tracks share one offset, so A/V sync holds); the next segments are flagged
//!   `discontinuity`, and video resumes at its next key frame. So does
//!   [`Packager::mark_discontinuity`], and a changed decoder configuration (with a new
//!   [`InitSegment`] version, no rebase).
//! - Sample durations are DTS deltas (never zero); a segment's last sample lasts until
//!   the next sample, or as long as the one before it when the segment is flushed.
//! - The moment a key frame opens video segment N, a [`SegmentStart`] (its RTMP time,
//!   composition time and `tfdt`) is queued for [`Packager::poll_segment_start`]: the
//!   transcoded renditions' [`FollowerPackager`]s cut there, so segment N covers the
//!   same time in every rendition.

mod follower;
mod schedule;
mod timeline;
mod track;
mod types;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::frame::Frame;
pub use crate::media::VIDEO_TIMESCALE;
use crate::media::{FlvTagParser, MediaFrame, Parsed, TrackConfig};
pub use follower::FollowerPackager;
use schedule::Cut;
use timeline::TrackClock;
use track::Muxer;
pub use types::{
    InitSegment, PackagerConfig, PackagerError, PackagerEvent, Part, Segment, SegmentStart,
    TrackInfo, TrackKind,
};

/// Buffered media that starts segment 1 even if a sequence header is still missing.
const STARTUP_WAIT_MS: i64 = 1_000;
/// Buffered frames that start segment 1 regardless.
const STARTUP_MAX_FRAMES: usize = 2_000;

/// A media frame waiting to be timed.
#[derive(Debug, Clone)]
struct Media {
    kind: TrackKind,
    ts: u32,
    key: bool,
    cts_ms: i32,
    data: Bytes,
}

impl From<&MediaFrame> for Media {
    fn from(f: &MediaFrame) -> Self {
        Self {
            kind: f.kind,
            ts: f.timestamp,
            key: f.key,
            cts_ms: f.composition_time,
            data: f.data.clone(),
        }
    }
}

/// Per-track state.
#[derive(Debug)]
struct Track {
    config: Option<Arc<TrackConfig>>,
    clock: Option<TrackClock>,
    muxer: Option<Muxer>,
    init_version: u32,
}

impl Track {
    fn new() -> Self {
        Self {
            config: None,
            clock: None,
            muxer: None,
            init_version: 0,
        }
    }
}

/// Turns one stream's frames into CMAF init segments, parts and segments.
#[derive(Debug)]
pub struct Packager {
    config: PackagerConfig,
    events: VecDeque<PackagerEvent>,
    video: Track,
    audio: Track,
    started: bool,
    startup: Vec<Media>,
    /// Output ms = RTMP ms + offset.
    offset: Option<i64>,
    /// Recompute the offset on the next frame so the timeline continues.
    rebase_next: bool,
    /// Last segment number started (0: none yet).
    number: u64,
    cuts: VecDeque<Cut>,
    pending_audio: VecDeque<track::Pending>,
    video_active: bool,
    video_progress: Option<u64>,
    segment_starts: VecDeque<SegmentStart>,
    /// Parses what [`Packager::push`] is given.
    parser: FlvTagParser,
}

impl Packager {
    pub fn new(config: PackagerConfig) -> Self {
        Self {
            config,
            events: VecDeque::new(),
            video: Track::new(),
            audio: Track::new(),
            started: false,
            startup: Vec::new(),
            offset: None,
            rebase_next: false,
            number: 0,
            cuts: VecDeque::new(),
            pending_audio: VecDeque::new(),
            video_active: false,
            video_progress: None,
            segment_starts: VecDeque::new(),
            parser: FlvTagParser::new(),
        }
    }

    /// Adopt a track's decoder configuration (one identical to the one in force is
    /// ignored). A change closes what was packaged with the old one and emits a new
    /// [`InitSegment`] version. Drain [`Packager::poll_output`] afterwards.
    pub fn configure(&mut self, config: &Arc<TrackConfig>) -> Result<(), PackagerError> {
        let current = self.track(config.kind).config.as_ref();
        if current.is_some_and(|c| c.same_as(config)) {
            return Ok(());
        }
        let reason = match config.kind {
            TrackKind::Video => "video decoder configuration changed",
            TrackKind::Audio => "audio decoder configuration changed",
        };
        self.install(config.clone(), reason)
    }

    /// Feed one media frame of a configured track. On error the frame is dropped (the
    /// caller logs it) and the packager stays usable. Drain [`Packager::poll_output`]
    /// afterwards.
    pub fn push_media(&mut self, frame: &MediaFrame) -> Result<(), PackagerError> {
        if self.track(frame.kind).config.is_none() {
            return Err(PackagerError::NotConfigured {
                kind: frame.kind,
                timestamp: frame.timestamp,
            });
        }
        self.media(Media::from(frame))
    }

    /// Feed one FLV tag body: parsed by the packager's own [`FlvTagParser`], then
    /// [`Packager::configure`] or [`Packager::push_media`]; script data is ignored.
    pub fn push(&mut self, frame: &Frame) -> Result<(), PackagerError> {
        match self.parser.parse(frame)? {
            Parsed::Config(config) => self.configure(&config),
            Parsed::Media(media) => self.push_media(&media),
            Parsed::Skip => Ok(()),
        }
    }

    /// Publisher takeover or reconnect: close the open segments (emitting them and a
    /// [`PackagerEvent::Discontinuity`]); the next media starts a new segment flagged
    /// `discontinuity`, its timestamps rebased to continue the output timeline.
    pub fn mark_discontinuity(&mut self) {
        if !self.started && self.startup.is_empty() {
            return; // nothing packaged yet: nothing to close or continue
        }
        let mut result = self.start_if_needed();
        if result.is_ok() {
            result = self.discontinuity("publisher reconnected".into(), true);
        }
        self.record(result);
    }

    /// End of stream: emit everything still open (the last sample of each track lasts
    /// as long as the one before it).
    pub fn finish(&mut self) {
        let mut result = self.start_if_needed();
        if result.is_ok() {
            result = self.close_all();
        }
        self.record(result);
    }

    /// The next output, in order; `None` when there is nothing more for now.
    pub fn poll_output(&mut self) -> Option<PackagerEvent> {
        self.events.pop_front()
    }

    /// The start of each video segment, in order, as soon as the key frame that opens
    /// it arrives (before any of its parts): feed them to the renditions'
    /// [`FollowerPackager::cut`]. Never produced without video. Kept apart from
    /// [`Packager::poll_output`] so that existing consumers see no new event; up to 64
    /// are kept when nobody drains them (the oldest are dropped).
    pub fn poll_segment_start(&mut self) -> Option<SegmentStart> {
        self.segment_starts.pop_front()
    }

    /// What is known of a track, once its sequence header has been seen.
    pub fn track_info(&self, kind: TrackKind) -> Option<&TrackInfo> {
        self.track(kind).config.as_ref().map(|c| &c.info)
    }

    fn track(&self, kind: TrackKind) -> &Track {
        match kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        }
    }

    fn track_mut(&mut self, kind: TrackKind) -> &mut Track {
        match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        }
    }

    /// Errors with no frame to blame (flush paths) can only come from the CMAF writer
    /// on absurd sizes; they surface as a discontinuity so they are not lost silently.
    fn record(&mut self, result: Result<(), PackagerError>) {
        if let Err(e) = result {
            self.events.push_back(PackagerEvent::Discontinuity {
                reason: e.to_string(),
            });
        }
    }

    /// Adopt a new decoder configuration: close what was packaged with the old one,
    /// emit the init segment, and start segment 1 if this completes the set.
    fn install(&mut self, config: Arc<TrackConfig>, reason: &str) -> Result<(), PackagerError> {
        let kind = config.kind;
        if self.track(kind).config.is_some() {
            self.start_if_needed()?;
            self.discontinuity(reason.into(), false)?;
        }
        let part_target = self.config.part_target_ms;
        let track = self.track_mut(kind);
        let timescale = config.timescale();
        let nominal = config.nominal_duration;
        let old_end = track.clock.as_ref().and_then(TrackClock::end_ms);
        if track
            .clock
            .as_ref()
            .is_none_or(|c| c.timescale != timescale)
        {
            let mut clock = TrackClock::new(timescale, config.frame_length, nominal);
            if let Some(end) = old_end {
                clock.continue_after_ms(end);
            }
            track.clock = Some(clock);
            let mut muxer = Muxer::new(kind, timescale, part_target, nominal as u32);
            muxer.next_discontinuity = track.muxer.is_some();
            track.muxer = Some(muxer);
        }
        track.init_version += 1;
        if let Some(muxer) = track.muxer.as_mut() {
            muxer.init_version = track.init_version;
        }
        let init = InitSegment {
            track: kind,
            version: track.init_version,
            data: config.init.clone(),
            info: config.info.clone(),
        };
        track.config = Some(config);
        self.events.push_back(PackagerEvent::Init(init));
        if !self.started && self.video.config.is_some() && self.audio.config.is_some() {
            self.start()?;
        }
        Ok(())
    }

    /// A media frame: buffered until segment 1 can start, then timed and packaged.
    fn media(&mut self, media: Media) -> Result<(), PackagerError> {
        if self.started {
            return self.process(media);
        }
        self.startup.push(media);
        let first = self.startup[0].ts;
        let rel = |m: &Media| i64::from(m.ts.wrapping_sub(first) as i32);
        let lo = self.startup.iter().map(rel).min().unwrap_or(0);
        let hi = self.startup.iter().map(rel).max().unwrap_or(0);
        if hi - lo >= STARTUP_WAIT_MS || self.startup.len() >= STARTUP_MAX_FRAMES {
            self.start()?;
        }
        Ok(())
    }

    fn start_if_needed(&mut self) -> Result<(), PackagerError> {
        if self.started {
            return Ok(());
        }
        self.start()
    }

    /// Start segment 1 with the tracks known now, replaying the startup buffer.
    fn start(&mut self) -> Result<(), PackagerError> {
        self.started = true;
        self.video_active = self.video.config.is_some();
        let buffered = std::mem::take(&mut self.startup);
        if let Some(first) = buffered.first() {
            let lo = buffered
                .iter()
                .map(|m| i64::from(m.ts.wrapping_sub(first.ts) as i32))
                .min()
                .unwrap_or(0);
            self.offset = Some(-(i64::from(first.ts) + lo));
        }
        let mut result = Ok(());
        for media in buffered {
            let r = self.process(media);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}
