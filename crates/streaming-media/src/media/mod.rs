//! Codec-neutral media: what the hub carries once the ingest has parsed a
//! publisher's FLV tags (docs/ARCHITECTURE.md, "One binary, one data path").
//!
//! - [`TrackConfig`]: a decoder configuration parsed once — the raw record
//!   (ISO/IEC 14496-15 §5.3.3.1 `AVCDecoderConfigurationRecord`, ISO/IEC 14496-3
//!   §1.6.2.1 `AudioSpecificConfig`), what players and the packager need of it, and
//!   its CMAF init segment (ISO/IEC 23000-19 §7.3), made here once for every consumer.
//! - [`MediaFrame`]: one access unit without container header (an AVCC sample,
//!   ISO/IEC 14496-15 §5.3.2, or a raw AAC access unit) with its RTMP times.
//! - [`FlvTagParser`]: FLV tag bodies (FLV 10.1 §E.4.2–E.4.3) in, configurations and
//!   media frames out; one per publisher (or transcoded rendition).
//!
//! Sans-IO and panic-free, like the rest of the crate.

mod config;
mod parser;

use bytes::Bytes;

pub use config::{Codec, ConfigError, TrackConfig};
pub use parser::{FlvTagParser, ParseError, Parsed};

/// Video media timescale (Hz).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Which kind of track a configuration or frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// What players need to know about a track (HLS `CODECS`, `RESOLUTION`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    pub kind: TrackKind,
    /// RFC 6381 codec string (`avc1.64001F`, `mp4a.40.2`).
    pub codec: String,
    pub timescale: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

/// One coded access unit, its container header stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    pub kind: TrackKind,
    /// Decode time: the RTMP timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// Presentation minus decode time in milliseconds (FLV `CompositionTime`; 0 for audio).
    pub composition_time: i32,
    /// A random access point: a video key frame; every audio frame.
    pub key: bool,
    /// An AVCC sample (length-prefixed NAL units, validated against the track's
    /// configuration) or a raw AAC access unit; never empty.
    pub data: Bytes,
}

impl MediaFrame {
    /// Presentation time in RTMP milliseconds (wrapping).
    pub fn presentation_time(&self) -> u32 {
        self.timestamp.wrapping_add_signed(self.composition_time)
    }

    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
