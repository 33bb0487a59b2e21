//! The CMAF packager: FLV-bodied [`Frame`]s in, CMAF init segments, LL-HLS parts and
//! segments out (ISO/IEC 23000-19 CMAF; parts per RFC 8216bis §4.4.4.9).
//!
//! Sans-IO: call [`Packager::push`] for every frame, then drain
//! [`Packager::poll_output`] until it returns `None`. Time comes only from the frames.
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

use bytes::Bytes;

use crate::aac::AudioSpecificConfig;
use crate::avc::{self, AvcDecoderConfig};
use crate::cmaf;
use crate::flv::{self, AudioPacketType, SOUND_FORMAT_AAC, VideoPacketType};
use crate::frame::{Frame, FrameKind};
pub use follower::FollowerPackager;
use schedule::Cut;
use timeline::TrackClock;
use track::Muxer;
pub use types::{
    InitSegment, PackagerConfig, PackagerError, PackagerEvent, Part, Segment, SegmentStart,
    TrackInfo, TrackKind,
};

/// Video media timescale (Hz).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Buffered media that starts segment 1 even if a sequence header is still missing.
const STARTUP_WAIT_MS: i64 = 1_000;
/// Buffered frames that start segment 1 regardless.
const STARTUP_MAX_FRAMES: usize = 2_000;

/// A media frame, parsed, waiting to be timed.
#[derive(Debug, Clone)]
struct Media {
    kind: TrackKind,
    ts: u32,
    key: bool,
    cts_ms: i32,
    data: Bytes,
}

/// Per-track state.
#[derive(Debug)]
struct Track {
    raw_config: Option<Bytes>,
    info: Option<TrackInfo>,
    /// AVCC NAL unit length size (video).
    nal_length_size: u8,
    clock: Option<TrackClock>,
    muxer: Option<Muxer>,
    init_version: u32,
}

impl Track {
    fn new() -> Self {
        Self {
            raw_config: None,
            info: None,
            nal_length_size: 4,
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
        }
    }

    /// Feed one frame. On error the frame is dropped (the caller logs it) and the
    /// packager stays usable. Drain [`Packager::poll_output`] afterwards.
    pub fn push(&mut self, frame: &Frame) -> Result<(), PackagerError> {
        let ts = frame.timestamp;
        match frame.kind {
            FrameKind::Script => Ok(()),
            FrameKind::Video => {
                let nal_length_size = self.video.raw_config.is_some();
                let nal_length_size = nal_length_size.then_some(self.video.nal_length_size);
                match parse_video(&frame.data, ts, nal_length_size)? {
                    VideoTag::Config(payload) => self.video_config(payload, ts),
                    VideoTag::Other => Ok(()),
                    VideoTag::Coded { key, cts_ms, data } => self.media(Media {
                        kind: TrackKind::Video,
                        ts,
                        key,
                        cts_ms,
                        data,
                    }),
                }
            }
            FrameKind::Audio => {
                let tag =
                    flv::parse_audio_tag(&frame.data).map_err(|source| PackagerError::Flv {
                        kind: TrackKind::Audio,
                        timestamp: ts,
                        source,
                    })?;
                if tag.sound_format != SOUND_FORMAT_AAC {
                    return Err(PackagerError::UnsupportedCodec {
                        kind: TrackKind::Audio,
                        timestamp: ts,
                        codec: format!("FLV SoundFormat {}", tag.sound_format),
                    });
                }
                match tag.packet_type {
                    AudioPacketType::SequenceHeader => self.audio_config(tag.payload, ts),
                    AudioPacketType::Raw if self.audio.raw_config.is_none() => {
                        Err(PackagerError::NoSequenceHeader {
                            kind: TrackKind::Audio,
                            timestamp: ts,
                        })
                    }
                    AudioPacketType::Raw if tag.payload.is_empty() => {
                        Err(PackagerError::EmptyFrame {
                            kind: TrackKind::Audio,
                            timestamp: ts,
                        })
                    }
                    AudioPacketType::Raw => self.media(Media {
                        kind: TrackKind::Audio,
                        ts,
                        key: true,
                        cts_ms: 0,
                        data: tag.payload,
                    }),
                }
            }
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
        self.track(kind).info.as_ref()
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

    fn video_config(&mut self, payload: Bytes, ts: u32) -> Result<(), PackagerError> {
        if self.video.raw_config.as_ref() == Some(&payload) {
            return Ok(());
        }
        let setup = VideoSetup::parse(&payload, ts)?;
        self.video.nal_length_size = setup.nal_length_size;
        let reason = "video decoder configuration changed";
        let (info, init, nominal) = (setup.info, setup.init, setup.nominal);
        self.install(TrackKind::Video, payload, info, init, None, nominal, reason)
    }

    fn audio_config(&mut self, payload: Bytes, ts: u32) -> Result<(), PackagerError> {
        if self.audio.raw_config.as_ref() == Some(&payload) {
            return Ok(());
        }
        let asc = AudioSpecificConfig::parse(&payload).map_err(|source| PackagerError::Aac {
            timestamp: ts,
            source,
        })?;
        let init = cmaf::audio_init(&payload, &asc).map_err(|source| PackagerError::Cmaf {
            kind: TrackKind::Audio,
            source,
        })?;
        let info = TrackInfo {
            kind: TrackKind::Audio,
            codec: asc.codec_string(),
            timescale: asc.sample_rate,
            width: None,
            height: None,
            frame_rate: None,
            sample_rate: Some(asc.sample_rate),
            channels: asc.channels(),
        };
        let frame = asc.frame_length;
        let reason = "audio decoder configuration changed";
        self.install(
            TrackKind::Audio,
            payload,
            info,
            init,
            Some(frame),
            frame.into(),
            reason,
        )
    }

    /// Adopt a new decoder configuration: close what was packaged with the old one,
    /// emit the init segment, and start segment 1 if this completes the set.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &mut self,
        kind: TrackKind,
        raw: Bytes,
        info: TrackInfo,
        init: Bytes,
        frame_length: Option<u32>,
        nominal: u64,
        reason: &str,
    ) -> Result<(), PackagerError> {
        if self.track(kind).raw_config.is_some() {
            self.start_if_needed()?;
            self.discontinuity(reason.into(), false)?;
        }
        let part_target = self.config.part_target_ms;
        let track = self.track_mut(kind);
        let timescale = info.timescale;
        let old_end = track.clock.as_ref().and_then(TrackClock::end_ms);
        if track
            .clock
            .as_ref()
            .is_none_or(|c| c.timescale != timescale)
        {
            let mut clock = TrackClock::new(timescale, frame_length, nominal);
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
        track.raw_config = Some(raw);
        track.info = Some(info.clone());
        let version = track.init_version;
        self.events.push_back(PackagerEvent::Init(InitSegment {
            track: kind,
            version,
            data: init,
            info,
        }));
        if !self.started && self.video.info.is_some() && self.audio.info.is_some() {
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
        self.video_active = self.video.info.is_some();
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

/// What a packager makes of an FLV video tag body.
pub(super) enum VideoTag {
    /// An AVC sequence header: the `AVCDecoderConfigurationRecord`.
    Config(Bytes),
    /// A coded frame (AVCC NAL units, validated).
    Coded { key: bool, cts_ms: i32, data: Bytes },
    /// End of sequence or metadata: nothing to package.
    Other,
}

/// Parse a video tag at RTMP time `ts`; H.264 only. `nal_length_size` is `None`
/// until a sequence header has been installed (coded frames are refused before).
pub(super) fn parse_video(
    data: &Bytes,
    ts: u32,
    nal_length_size: Option<u8>,
) -> Result<VideoTag, PackagerError> {
    let tag = flv::parse_video_tag(data).map_err(|source| PackagerError::Flv {
        kind: TrackKind::Video,
        timestamp: ts,
        source,
    })?;
    if !tag.codec.is_avc() {
        return Err(PackagerError::UnsupportedCodec {
            kind: TrackKind::Video,
            timestamp: ts,
            codec: tag.codec.to_string(),
        });
    }
    match tag.packet_type {
        VideoPacketType::SequenceHeader => Ok(VideoTag::Config(tag.payload)),
        VideoPacketType::EndOfSequence | VideoPacketType::Metadata => Ok(VideoTag::Other),
        VideoPacketType::Coded => {
            let Some(nal_length_size) = nal_length_size else {
                return Err(PackagerError::NoSequenceHeader {
                    kind: TrackKind::Video,
                    timestamp: ts,
                });
            };
            avc::validate_avcc_sample(&tag.payload, nal_length_size).map_err(|source| {
                PackagerError::Avc {
                    timestamp: ts,
                    source,
                }
            })?;
            Ok(VideoTag::Coded {
                key: tag.frame_type.is_key(),
                cts_ms: tag.composition_time,
                data: tag.payload,
            })
        }
    }
}

/// A parsed AVC decoder configuration and what a video track makes of it.
pub(super) struct VideoSetup {
    pub nal_length_size: u8,
    pub info: TrackInfo,
    /// The CMAF init segment.
    pub init: Bytes,
    /// Nominal frame duration in 90 kHz ticks (from the SPS, else 30 fps).
    pub nominal: u64,
}

impl VideoSetup {
    pub fn parse(payload: &Bytes, ts: u32) -> Result<Self, PackagerError> {
        let err = |source| PackagerError::Avc {
            timestamp: ts,
            source,
        };
        let config = AvcDecoderConfig::parse(payload).map_err(err)?;
        let sps = config.sps_info().map_err(err)?;
        let init = cmaf::video_init(&config, &sps, VIDEO_TIMESCALE).map_err(|source| {
            PackagerError::Cmaf {
                kind: TrackKind::Video,
                source,
            }
        })?;
        let info = TrackInfo {
            kind: TrackKind::Video,
            codec: sps.codec_string(),
            timescale: VIDEO_TIMESCALE,
            width: Some(sps.width),
            height: Some(sps.height),
            frame_rate: sps.frame_rate,
            sample_rate: None,
            channels: None,
        };
        let nominal = sps.frame_rate.map_or(3000, |fps| {
            (f64::from(VIDEO_TIMESCALE) / fps).round().max(1.0) as u64
        });
        Ok(Self {
            nal_length_size: config.nal_length_size,
            info,
            init,
            nominal,
        })
    }
}
