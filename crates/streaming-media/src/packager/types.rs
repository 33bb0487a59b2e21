//! The packager's public types: configuration, outputs and errors.

use bytes::Bytes;

use crate::cmaf::CmafError;
use crate::media::ParseError;
pub use crate::media::{TrackInfo, TrackKind};

/// Segmenting parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagerConfig {
    /// Segment duration target in milliseconds (cut at the next key frame after it).
    pub target_segment_ms: u32,
    /// Part (CMAF chunk) duration target in milliseconds; parts never exceed it unless
    /// a single sample does.
    pub part_target_ms: u32,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            target_segment_ms: 2000,
            part_target_ms: 500,
        }
    }
}

/// A CMAF header (`ftyp`+`moov`). `version` starts at 1 and grows on config changes.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSegment {
    pub track: TrackKind,
    pub version: u32,
    pub data: Bytes,
    pub info: TrackInfo,
}

/// A CMAF chunk (`moof`+`mdat`; the first of a segment starts with `styp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub track: TrackKind,
    /// Number of the segment this part belongs to.
    pub segment: u64,
    /// Index within the segment, from 0.
    pub index: u32,
    pub data: Bytes,
    /// `tfdt` of its first sample, in timescale units.
    pub start: u64,
    /// Duration in timescale units.
    pub duration: u64,
    pub timescale: u32,
    /// Starts with a key frame (always true for audio).
    pub independent: bool,
}

/// A complete CMAF segment: all its parts concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub track: TrackKind,
    /// From 1, shared by both tracks.
    pub number: u64,
    /// `tfdt` of the first sample, in timescale units.
    pub start: u64,
    /// Sum of the sample durations, in timescale units.
    pub duration: u64,
    pub timescale: u32,
    pub data: Bytes,
    /// The timeline or decoder configuration changed before this segment.
    pub discontinuity: bool,
    /// Version of the [`InitSegment`] that decodes this segment.
    pub init_version: u32,
    pub starts_with_keyframe: bool,
}

/// The source [`Packager`](super::Packager) opened video segment `number`: what a
/// [`FollowerPackager`](super::FollowerPackager) needs to cut a rendition of the same
/// stream at the same instant. Drained with
/// [`Packager::poll_segment_start`](super::Packager::poll_segment_start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentStart {
    /// The segment's number (shared by every track and rendition).
    pub number: u64,
    /// RTMP timestamp in ms (decode time, as received, before any rebasing) of the
    /// video key frame that opens the segment.
    pub input_timestamp: u32,
    /// That key frame's FLV `CompositionTime` in ms: it is presented at
    /// `input_timestamp + composition_time`. Encoders such as FFmpeg keep presentation
    /// times (`-copyts`), not decode times, so this is the instant renditions match.
    pub composition_time: i32,
    /// The segment's `tfdt`: the key frame's output decode time, 90 kHz.
    pub start: u64,
    /// The segment will be flagged [`Segment::discontinuity`].
    pub discontinuity: bool,
}

impl SegmentStart {
    /// RTMP presentation time (ms, wrapping) of the key frame opening the segment.
    pub fn input_presentation_time(&self) -> u32 {
        self.input_timestamp
            .wrapping_add_signed(self.composition_time)
    }
}

/// Output of the packager, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum PackagerEvent {
    Init(InitSegment),
    Part(Part),
    Segment(Segment),
    /// The open segments were closed because of `reason`; the next are flagged.
    Discontinuity {
        reason: String,
    },
}

/// Why a frame was dropped. None is fatal: the packager stays usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackagerError {
    /// [`Packager::push`](super::Packager::push) could not parse an FLV tag body.
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{kind:?} frame at {timestamp} ms arrived before its track was configured")]
    NotConfigured { kind: TrackKind, timestamp: u32 },
    #[error("{kind:?} track: writing CMAF: {source}")]
    Cmaf {
        kind: TrackKind,
        #[source]
        source: CmafError,
    },
}
