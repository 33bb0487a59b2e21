//! FLV tags and files (Adobe Flash Video File Format Specification 10.1, Annex E).
//!
//! - [`parse_video_tag`] reads a VIDEODATA tag body (§E.4.3.1): frame type, codec id,
//!   `AVCPacketType` and the 24-bit signed `CompositionTime`; Enhanced RTMP v2
//!   (`IsExHeader`) headers are understood too, with the FourCC as codec.
//! - [`parse_audio_tag`] reads an AUDIODATA tag body (§E.4.2.1): sound format, rate,
//!   size, type and, for AAC, the `AACPacketType`.
//! - [`FlvReader`] walks an FLV file (header §E.2, body §E.3, tags §E.4.1) and yields
//!   [`Frame`]s; [`write_header`] and [`write_tag`] produce one (for example to feed
//!   FFmpeg on stdin).
//!
//! Payloads are [`Bytes`] slices of the input: nothing is copied while parsing. No
//! function here panics, whatever the input.

mod file;

use bytes::Bytes;

pub use file::{
    FlvHeader, FlvReader, write_config_tag, write_file, write_header, write_media_tag, write_tag,
};

/// FLV `CodecID` of AVC (H.264).
pub const CODEC_ID_AVC: u8 = 7;
/// FLV `SoundFormat` of AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;
/// FLV `SoundFormat` 9: Enhanced RTMP `ExHeader` audio.
pub const SOUND_FORMAT_EX_HEADER: u8 = 9;

/// FLV tag types (§E.4.1).
const TAG_AUDIO: u8 = 8;
const TAG_VIDEO: u8 = 9;
const TAG_SCRIPT: u8 = 18;
/// Tag header: type, DataSize(24), Timestamp(24), TimestampExtended(8), StreamID(24).
const TAG_HEADER_LEN: usize = 11;
const FILE_HEADER_LEN: usize = 9;
/// Largest tag body the 24-bit `DataSize` can describe.
pub const MAX_TAG_BODY: usize = 0x00ff_ffff;

/// Errors reading or writing FLV; each names the structure and the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    #[error("{what} truncated: need {needed} bytes at offset {offset}, have {available}")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("not an FLV file: signature {found:02x?} at offset 0 (expected \"FLV\")")]
    BadSignature { found: [u8; 3] },
    #[error("FLV header DataOffset {0} is smaller than the 9-byte header")]
    BadDataOffset(u32),
    #[error("tag at offset {offset}: unknown TagType {tag_type}")]
    UnknownTagType { offset: usize, tag_type: u8 },
    #[error("tag at offset {offset} is encrypted (Filter bit set), not supported")]
    Encrypted { offset: usize },
    #[error("tag at offset {offset}: PreviousTagSize is {found}, expected {expected}")]
    PreviousTagSize {
        offset: usize,
        found: u32,
        expected: u32,
    },
    #[error("tag body of {len} bytes exceeds the 24-bit DataSize field")]
    TagTooLarge { len: usize },
    #[error("AVC video tag: unknown AVCPacketType {0}")]
    UnknownAvcPacketType(u8),
    #[error("Enhanced RTMP video PacketType {0} is not supported")]
    UnsupportedExPacketType(u8),
    #[error("Enhanced RTMP audio (SoundFormat 9) is not supported")]
    UnsupportedExAudio,
}

fn need(what: &'static str, data: &[u8], offset: usize, needed: usize) -> Result<(), FlvError> {
    if data.len().saturating_sub(offset) < needed {
        return Err(FlvError::Truncated {
            what,
            offset,
            needed,
            available: data.len().saturating_sub(offset),
        });
    }
    Ok(())
}

/// Video `FrameType` (§E.4.3.1; 3 bits in Enhanced RTMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFrameType {
    Key,
    Inter,
    DisposableInter,
    GeneratedKey,
    /// Video info / command frame (no picture).
    Command,
    Reserved(u8),
}

impl VideoFrameType {
    fn from_bits(v: u8) -> Self {
        match v {
            1 => Self::Key,
            2 => Self::Inter,
            3 => Self::DisposableInter,
            4 => Self::GeneratedKey,
            5 => Self::Command,
            other => Self::Reserved(other),
        }
    }

    pub fn is_key(self) -> bool {
        matches!(self, Self::Key | Self::GeneratedKey)
    }
}

/// The codec of a video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// Legacy 4-bit `CodecID` (7 = AVC).
    Legacy(u8),
    /// Enhanced RTMP FourCC (`avc1`, `hvc1`, `av01`, `vp09`).
    FourCc([u8; 4]),
}

impl VideoCodec {
    /// True for H.264 in either header form.
    pub fn is_avc(self) -> bool {
        matches!(
            self,
            Self::Legacy(CODEC_ID_AVC) | Self::FourCc([b'a', b'v', b'c', b'1'])
        )
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Legacy(id) => write!(f, "FLV CodecID {id}"),
            Self::FourCc(cc) => write!(f, "FourCC {}", String::from_utf8_lossy(cc)),
        }
    }
}

/// What a video tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacketType {
    /// Decoder configuration (AVCDecoderConfigurationRecord for AVC).
    SequenceHeader,
    /// Coded frame(s): length-prefixed NAL units for AVC.
    Coded,
    /// End of sequence.
    EndOfSequence,
    /// Enhanced RTMP metadata (AMF), carried as-is.
    Metadata,
}

/// A parsed VIDEODATA tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTag {
    pub frame_type: VideoFrameType,
    pub codec: VideoCodec,
    pub packet_type: VideoPacketType,
    /// `CompositionTime` in milliseconds (PTS − DTS); 0 where the header has none.
    pub composition_time: i32,
    /// The bytes after the header (a slice of the body, not a copy).
    pub payload: Bytes,
}

/// Big-endian unsigned value of up to 4 bytes.
fn be(b: &[u8]) -> u32 {
    b.iter().fold(0, |acc, x| acc << 8 | u32::from(*x))
}

/// Sign-extended 24-bit big-endian value.
fn read_si24(b: &[u8]) -> i32 {
    ((be(b) << 8) as i32) >> 8
}

/// Parse a VIDEODATA tag body (FLV 10.1 §E.4.3.1, Enhanced RTMP v2 `ExVideoTagHeader`).
pub fn parse_video_tag(body: &Bytes) -> Result<VideoTag, FlvError> {
    need("video tag header", body, 0, 1)?;
    let b0 = body[0];
    if b0 & 0x80 != 0 {
        return parse_ex_video_tag(body);
    }
    let frame_type = VideoFrameType::from_bits(b0 >> 4);
    let codec_id = b0 & 0x0f;
    if codec_id != CODEC_ID_AVC {
        return Ok(VideoTag {
            frame_type,
            codec: VideoCodec::Legacy(codec_id),
            packet_type: VideoPacketType::Coded,
            composition_time: 0,
            payload: body.slice(1..),
        });
    }
    need("AVC video tag header", body, 0, 5)?;
    let packet_type = match body[1] {
        0 => VideoPacketType::SequenceHeader,
        1 => VideoPacketType::Coded,
        2 => VideoPacketType::EndOfSequence,
        other => return Err(FlvError::UnknownAvcPacketType(other)),
    };
    Ok(VideoTag {
        frame_type,
        codec: VideoCodec::Legacy(codec_id),
        packet_type,
        composition_time: read_si24(&body[2..5]),
        payload: body.slice(5..),
    })
}

fn parse_ex_video_tag(body: &Bytes) -> Result<VideoTag, FlvError> {
    need("Enhanced RTMP video tag header", body, 0, 5)?;
    let frame_type = VideoFrameType::from_bits((body[0] >> 4) & 0x07);
    let mut fourcc = [0u8; 4];
    fourcc.copy_from_slice(&body[1..5]);
    let (packet_type, has_cts) = match body[0] & 0x0f {
        0 => (VideoPacketType::SequenceHeader, false),
        // CodedFrames carries a CompositionTime only for avc1 and hvc1.
        1 => (VideoPacketType::Coded, matches!(&fourcc, b"avc1" | b"hvc1")),
        2 => (VideoPacketType::EndOfSequence, false),
        3 => (VideoPacketType::Coded, false),
        4 => (VideoPacketType::Metadata, false),
        other => return Err(FlvError::UnsupportedExPacketType(other)),
    };
    let (composition_time, start) = if has_cts {
        need("Enhanced RTMP CompositionTime", body, 5, 3)?;
        (read_si24(&body[5..8]), 8)
    } else {
        (0, 5)
    };
    Ok(VideoTag {
        frame_type,
        codec: VideoCodec::FourCc(fourcc),
        packet_type,
        composition_time,
        payload: body.slice(start..),
    })
}

/// What an audio tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacketType {
    /// AAC AudioSpecificConfig (`AACPacketType` 0).
    SequenceHeader,
    /// A raw audio frame.
    Raw,
}

/// A parsed AUDIODATA tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    /// `SoundFormat` (10 = AAC).
    pub sound_format: u8,
    /// `SoundRate` index (0 = 5.5 kHz … 3 = 44 kHz); meaningless for AAC.
    pub sound_rate: u8,
    /// `SoundSize`: 0 = 8-bit, 1 = 16-bit.
    pub sound_size: u8,
    /// `SoundType`: 0 = mono, 1 = stereo.
    pub sound_type: u8,
    pub packet_type: AudioPacketType,
    /// The bytes after the header (a slice of the body, not a copy).
    pub payload: Bytes,
}

/// Parse an AUDIODATA tag body (FLV 10.1 §E.4.2.1).
pub fn parse_audio_tag(body: &Bytes) -> Result<AudioTag, FlvError> {
    need("audio tag header", body, 0, 1)?;
    let b0 = body[0];
    let sound_format = b0 >> 4;
    if sound_format == SOUND_FORMAT_EX_HEADER {
        return Err(FlvError::UnsupportedExAudio);
    }
    let (packet_type, start) = if sound_format == SOUND_FORMAT_AAC {
        need("AAC audio tag header", body, 0, 2)?;
        match body[1] {
            0 => (AudioPacketType::SequenceHeader, 2),
            _ => (AudioPacketType::Raw, 2),
        }
    } else {
        (AudioPacketType::Raw, 1)
    };
    Ok(AudioTag {
        sound_format,
        sound_rate: (b0 >> 2) & 0x03,
        sound_size: (b0 >> 1) & 0x01,
        sound_type: b0 & 0x01,
        packet_type,
        payload: body.slice(start..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_video_tag_with_negative_cts() {
        let body = Bytes::from_static(&[0x27, 0x01, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x41]);
        let tag = parse_video_tag(&body).unwrap();
        assert_eq!(tag.frame_type, VideoFrameType::Inter);
        assert!(tag.codec.is_avc());
        assert_eq!(tag.packet_type, VideoPacketType::Coded);
        assert_eq!(tag.composition_time, -2);
        assert_eq!(&tag.payload[..], &[0, 0, 0, 1, 0x41]);
    }

    #[test]
    fn avc_sequence_header_and_positive_cts() {
        let body = Bytes::from_static(&[0x17, 0x00, 0x00, 0x00, 0x43, 1, 0x64]);
        let tag = parse_video_tag(&body).unwrap();
        assert!(tag.frame_type.is_key());
        assert_eq!(tag.packet_type, VideoPacketType::SequenceHeader);
        assert_eq!(tag.composition_time, 67);
        assert_eq!(&tag.payload[..], &[1, 0x64]);
    }

    #[test]
    fn enhanced_video_headers() {
        let body = Bytes::from_static(b"\x91hvc1\x00\x00\x10xyz");
        let tag = parse_video_tag(&body).unwrap();
        assert_eq!(tag.codec, VideoCodec::FourCc(*b"hvc1"));
        assert!(tag.frame_type.is_key());
        assert_eq!(tag.composition_time, 16);
        assert_eq!(&tag.payload[..], b"xyz");
        let body = Bytes::from_static(b"\xa3av01abc");
        let tag = parse_video_tag(&body).unwrap();
        assert_eq!(tag.frame_type, VideoFrameType::Inter);
        assert_eq!(tag.packet_type, VideoPacketType::Coded);
        assert_eq!(&tag.payload[..], b"abc");
        assert_eq!(
            parse_video_tag(&Bytes::from_static(b"\x96avc1")),
            Err(FlvError::UnsupportedExPacketType(6))
        );
        assert!(matches!(
            parse_video_tag(&Bytes::from_static(b"\x91avc1\x00")),
            Err(FlvError::Truncated { .. })
        ));
    }

    #[test]
    fn malformed_video_tags() {
        for bad in [
            &[][..],
            &[0x17],
            &[0x17, 0x01, 0x00],
            &[0x17, 0x05, 0, 0, 0],
        ] {
            assert!(
                parse_video_tag(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        // A non-AVC legacy codec passes through.
        let tag = parse_video_tag(&Bytes::from_static(&[0x22, 9])).unwrap();
        assert_eq!(tag.codec, VideoCodec::Legacy(2));
    }

    #[test]
    fn audio_tags() {
        let tag = parse_audio_tag(&Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10])).unwrap();
        assert_eq!(tag.sound_format, SOUND_FORMAT_AAC);
        assert_eq!((tag.sound_rate, tag.sound_size, tag.sound_type), (3, 1, 1));
        assert_eq!(tag.packet_type, AudioPacketType::SequenceHeader);
        assert_eq!(&tag.payload[..], &[0x12, 0x10]);
        let tag = parse_audio_tag(&Bytes::from_static(&[0xaf, 0x01, 0x21])).unwrap();
        assert_eq!(tag.packet_type, AudioPacketType::Raw);
        let mp3 = parse_audio_tag(&Bytes::from_static(&[0x2f, 0xff])).unwrap();
        assert_eq!((mp3.sound_format, mp3.payload.len()), (2, 1));
        assert!(parse_audio_tag(&Bytes::new()).is_err());
        assert!(parse_audio_tag(&Bytes::from_static(&[0xaf])).is_err());
        assert_eq!(
            parse_audio_tag(&Bytes::from_static(&[0x90, 0])),
            Err(FlvError::UnsupportedExAudio)
        );
    }
}
