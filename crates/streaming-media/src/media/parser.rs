//! [`FlvTagParser`]: FLV tag bodies (FLV 10.1 §E.4.2.1 AUDIODATA, §E.4.3.1
//! VIDEODATA, Enhanced RTMP v2 video headers) in, [`Parsed`] out.
//!
//! One parser per publisher (or transcoded rendition): it remembers each track's
//! decoder configuration, so that
//!
//! - a sequence header identical to the one in force is [`Parsed::Skip`]ped and a
//!   changed one becomes a new [`Parsed::Config`];
//! - coded frames before their track's sequence header are refused, and AVCC samples
//!   are validated against the configuration's NAL unit length size (ISO/IEC
//!   14496-15 §5.3.2) before anyone downstream sees them;
//! - script data, AVC end-of-sequence and Enhanced RTMP metadata are skipped.
//!
//! Only H.264 video and AAC audio are accepted. Errors are typed and name the
//! frame; the parser stays usable after one (the frame is simply dropped).

use std::sync::Arc;

use bytes::Bytes;

use super::{ConfigError, MediaFrame, TrackConfig, TrackKind};
use crate::avc::{self, AvcError};
use crate::flv::{self, AudioPacketType, FlvError, SOUND_FORMAT_AAC, VideoPacketType};
use crate::frame::{Frame, FrameKind};

/// What a tag body turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A new (or changed) decoder configuration for its track.
    Config(Arc<TrackConfig>),
    /// A coded frame of a configured track.
    Media(MediaFrame),
    /// Nothing to pass on: script data, end of sequence, a repeated sequence header.
    Skip,
}

/// Why a tag body was dropped. None is fatal: the parser stays usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("{kind:?} frame at {timestamp} ms: malformed FLV tag: {source}")]
    Flv {
        kind: TrackKind,
        timestamp: u32,
        #[source]
        source: FlvError,
    },
    #[error("{kind:?} sequence header at {timestamp} ms: {source}")]
    Config {
        kind: TrackKind,
        timestamp: u32,
        #[source]
        source: ConfigError,
    },
    #[error("video frame at {timestamp} ms: {source}")]
    Sample {
        timestamp: u32,
        #[source]
        source: AvcError,
    },
    #[error("{kind:?} frame at {timestamp} ms: unsupported codec {codec}")]
    UnsupportedCodec {
        kind: TrackKind,
        timestamp: u32,
        codec: String,
    },
    #[error("{kind:?} frame at {timestamp} ms arrived before any sequence header")]
    NoSequenceHeader { kind: TrackKind, timestamp: u32 },
    #[error("{kind:?} frame at {timestamp} ms has no payload")]
    EmptyFrame { kind: TrackKind, timestamp: u32 },
}

impl ParseError {
    /// The track of the dropped frame.
    pub fn kind(&self) -> TrackKind {
        match self {
            Self::Flv { kind, .. }
            | Self::Config { kind, .. }
            | Self::UnsupportedCodec { kind, .. }
            | Self::NoSequenceHeader { kind, .. }
            | Self::EmptyFrame { kind, .. } => *kind,
            Self::Sample { .. } => TrackKind::Video,
        }
    }
}

/// Turns one publisher's FLV tag bodies into configurations and media frames.
#[derive(Debug, Default, Clone)]
pub struct FlvTagParser {
    video: Option<Arc<TrackConfig>>,
    audio: Option<Arc<TrackConfig>>,
}

impl FlvTagParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration in force for a track.
    pub fn config(&self, kind: TrackKind) -> Option<&Arc<TrackConfig>> {
        match kind {
            TrackKind::Video => self.video.as_ref(),
            TrackKind::Audio => self.audio.as_ref(),
        }
    }

    /// Parse one tag body.
    pub fn parse(&mut self, frame: &Frame) -> Result<Parsed, ParseError> {
        match frame.kind {
            FrameKind::Script => Ok(Parsed::Skip),
            FrameKind::Video => self.video(frame),
            FrameKind::Audio => self.audio(frame),
        }
    }

    fn video(&mut self, frame: &Frame) -> Result<Parsed, ParseError> {
        let (kind, timestamp) = (TrackKind::Video, frame.timestamp);
        let tag = flv::parse_video_tag(&frame.data).map_err(|source| ParseError::Flv {
            kind,
            timestamp,
            source,
        })?;
        if !tag.codec.is_avc() {
            return Err(ParseError::UnsupportedCodec {
                kind,
                timestamp,
                codec: tag.codec.to_string(),
            });
        }
        match tag.packet_type {
            VideoPacketType::SequenceHeader => install(
                &mut self.video,
                kind,
                tag.payload,
                timestamp,
                TrackConfig::h264,
            ),
            VideoPacketType::EndOfSequence | VideoPacketType::Metadata => Ok(Parsed::Skip),
            VideoPacketType::Coded => {
                let Some(config) = &self.video else {
                    return Err(ParseError::NoSequenceHeader { kind, timestamp });
                };
                avc::validate_avcc_sample(&tag.payload, config.nal_length_size)
                    .map_err(|source| ParseError::Sample { timestamp, source })?;
                Ok(Parsed::Media(MediaFrame {
                    kind,
                    timestamp,
                    composition_time: tag.composition_time,
                    key: tag.frame_type.is_key(),
                    data: tag.payload,
                }))
            }
        }
    }

    fn audio(&mut self, frame: &Frame) -> Result<Parsed, ParseError> {
        let (kind, timestamp) = (TrackKind::Audio, frame.timestamp);
        let tag = flv::parse_audio_tag(&frame.data).map_err(|source| ParseError::Flv {
            kind,
            timestamp,
            source,
        })?;
        if tag.sound_format != SOUND_FORMAT_AAC {
            return Err(ParseError::UnsupportedCodec {
                kind,
                timestamp,
                codec: format!("FLV SoundFormat {}", tag.sound_format),
            });
        }
        match tag.packet_type {
            AudioPacketType::SequenceHeader => install(
                &mut self.audio,
                kind,
                tag.payload,
                timestamp,
                TrackConfig::aac,
            ),
            AudioPacketType::Raw if self.audio.is_none() => {
                Err(ParseError::NoSequenceHeader { kind, timestamp })
            }
            AudioPacketType::Raw if tag.payload.is_empty() => {
                Err(ParseError::EmptyFrame { kind, timestamp })
            }
            AudioPacketType::Raw => Ok(Parsed::Media(MediaFrame {
                kind,
                timestamp,
                composition_time: 0,
                key: true,
                data: tag.payload,
            })),
        }
    }
}

/// Adopt `record` as the track's configuration unless it is the one in force.
fn install(
    slot: &mut Option<Arc<TrackConfig>>,
    kind: TrackKind,
    record: Bytes,
    timestamp: u32,
    parse: fn(Bytes) -> Result<TrackConfig, ConfigError>,
) -> Result<Parsed, ParseError> {
    if slot.as_ref().is_some_and(|c| c.record == record) {
        return Ok(Parsed::Skip);
    }
    let config = parse(record).map_err(|source| ParseError::Config {
        kind,
        timestamp,
        source,
    })?;
    let config = Arc::new(config);
    *slot = Some(config.clone());
    Ok(Parsed::Config(config))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const AVCC: &[u8] = &[
        0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41,
        0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1,
        0x42, 0x99, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8,
        0x00,
    ];

    fn tag(kind: FrameKind, ts: u32, body: &[u8]) -> Frame {
        Frame::new(kind, ts, Bytes::copy_from_slice(body))
    }

    fn video_seq(record: &[u8]) -> Frame {
        tag(
            FrameKind::Video,
            0,
            &[&[0x17, 0, 0, 0, 0][..], record].concat(),
        )
    }

    fn video(ts: u32, key: bool, cts: [u8; 3], sample: &[u8]) -> Frame {
        let head = [if key { 0x17 } else { 0x27 }, 1, cts[0], cts[1], cts[2]];
        tag(FrameKind::Video, ts, &[&head[..], sample].concat())
    }

    #[test]
    fn configs_once_then_frames_without_their_flv_header() {
        let mut p = FlvTagParser::new();
        let Parsed::Config(v) = p.parse(&video_seq(AVCC)).unwrap() else {
            panic!("a first sequence header is a configuration");
        };
        assert_eq!((v.kind, &v.record[..]), (TrackKind::Video, AVCC));
        assert_eq!(p.parse(&video_seq(AVCC)).unwrap(), Parsed::Skip, "repeated");
        let asc = tag(FrameKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]);
        assert!(matches!(p.parse(&asc).unwrap(), Parsed::Config(a) if a.kind == TrackKind::Audio));
        assert_eq!(p.parse(&asc).unwrap(), Parsed::Skip);

        let sample = [0, 0, 0, 2, 0x65, 0x88];
        let frame = p
            .parse(&video(40, true, [0xff, 0xff, 0xfe], &sample))
            .unwrap();
        assert_eq!(
            frame,
            Parsed::Media(MediaFrame {
                kind: TrackKind::Video,
                timestamp: 40,
                composition_time: -2,
                key: true,
                data: Bytes::copy_from_slice(&sample),
            })
        );
        let Parsed::Media(inter) = p.parse(&video(73, false, [0, 0, 33], &sample)).unwrap() else {
            panic!("a coded frame is media");
        };
        assert!(!inter.key);
        assert_eq!(inter.presentation_time(), 106);
        let raw = p
            .parse(&tag(FrameKind::Audio, 21, &[0xaf, 1, 0x21, 0x10]))
            .unwrap();
        assert!(matches!(raw, Parsed::Media(m) if m.key && m.data[..] == [0x21, 0x10]));

        // A changed configuration is a new one; skipped tags carry nothing.
        let mut other = AVCC.to_vec();
        other[3] = 0x1e;
        other[11] = 0x1e; // level 3.0 in the record and its SPS
        assert!(
            matches!(p.parse(&video_seq(&other)).unwrap(), Parsed::Config(c) if c.info.codec == "avc1.64001E")
        );
        assert_eq!(p.config(TrackKind::Video).unwrap().record[..], other[..]);
        let eos = tag(FrameKind::Video, 90, &[0x17, 2, 0, 0, 0]);
        assert_eq!(p.parse(&eos).unwrap(), Parsed::Skip);
        let script = tag(FrameKind::Script, 0, b"\x02\x00\x0aonMetaData");
        assert_eq!(p.parse(&script).unwrap(), Parsed::Skip);
    }

    #[test]
    fn bad_frames_are_typed_errors_and_the_parser_goes_on() {
        let mut p = FlvTagParser::new();
        let sample = [0, 0, 0, 1, 0x65];
        assert!(matches!(
            p.parse(&video(0, true, [0; 3], &sample)),
            Err(ParseError::NoSequenceHeader {
                kind: TrackKind::Video,
                timestamp: 0
            })
        ));
        assert!(matches!(
            p.parse(&tag(FrameKind::Audio, 5, &[0xaf, 1, 1])),
            Err(ParseError::NoSequenceHeader {
                kind: TrackKind::Audio,
                timestamp: 5
            })
        ));
        assert!(matches!(
            p.parse(&video_seq(&AVCC[..9])),
            Err(ParseError::Config {
                kind: TrackKind::Video,
                ..
            })
        ));
        assert!(matches!(
            p.parse(&tag(FrameKind::Audio, 0, &[0xaf, 0])),
            Err(ParseError::Config {
                kind: TrackKind::Audio,
                ..
            })
        ));
        assert!(
            p.config(TrackKind::Video).is_none(),
            "a bad record installs nothing"
        );
        assert!(matches!(p.parse(&video_seq(AVCC)), Ok(Parsed::Config(_))));
        assert!(matches!(
            p.parse(&video_seq(&AVCC[..9])),
            Err(ParseError::Config { .. })
        ));
        assert_eq!(
            p.config(TrackKind::Video).unwrap().record[..],
            AVCC[..],
            "kept"
        );
        assert!(matches!(
            p.parse(&tag(FrameKind::Video, 1, &[0x17, 1])),
            Err(ParseError::Flv {
                kind: TrackKind::Video,
                timestamp: 1,
                ..
            })
        ));
        assert!(matches!(
            p.parse(&tag(FrameKind::Video, 2, &[0x17, 9, 0, 0, 0])),
            Err(ParseError::Flv { .. })
        ));
        assert!(matches!(
            p.parse(&video(3, true, [0; 3], &[0, 0, 0, 9, 0x65])),
            Err(ParseError::Sample { timestamp: 3, .. })
        ));
        assert!(matches!(
            p.parse(&video(3, true, [0; 3], &[])),
            Err(ParseError::Sample { .. })
        ));
        let hevc = tag(FrameKind::Video, 4, b"\x91hvc1\x00\x00\x00xyz");
        assert!(matches!(
            p.parse(&hevc),
            Err(ParseError::UnsupportedCodec {
                kind: TrackKind::Video,
                ..
            })
        ));
        let mp3 = tag(FrameKind::Audio, 4, &[0x2f, 0xff]);
        let err = p.parse(&mp3).unwrap_err();
        assert_eq!(err.kind(), TrackKind::Audio);
        assert!(err.to_string().contains("FLV SoundFormat 2"), "{err}");
        assert!(matches!(
            p.parse(&tag(FrameKind::Audio, 0, &[0xaf, 0, 0x12, 0x10])),
            Ok(Parsed::Config(_))
        ));
        assert!(matches!(
            p.parse(&tag(FrameKind::Audio, 6, &[0xaf, 1])),
            Err(ParseError::EmptyFrame {
                kind: TrackKind::Audio,
                timestamp: 6
            })
        ));
        assert!(matches!(
            p.parse(&video(7, false, [0; 3], &sample)),
            Ok(Parsed::Media(_))
        ));
    }

    proptest::proptest! {
        /// Whatever the bytes, an error or a value, never a panic; media frames are
        /// never empty and always of their tag's kind.
        #[test]
        fn any_bytes_parse_without_panic(bodies in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(proptest::num::u8::ANY, 0..24)), 0..24)) {
            let mut p = FlvTagParser::new();
            let _ = p.parse(&video_seq(AVCC));
            let _ = p.parse(&tag(FrameKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]));
            for (kind, body) in bodies {
                let kind = [FrameKind::Video, FrameKind::Audio, FrameKind::Script][usize::from(kind)];
                if let Ok(Parsed::Media(m)) = p.parse(&tag(kind, 0, &body)) {
                    proptest::prop_assert!(!m.data.is_empty());
                    let expected = if kind == FrameKind::Video { TrackKind::Video } else { TrackKind::Audio };
                    proptest::prop_assert_eq!(m.kind, expected);
                }
            }
        }
    }
}
