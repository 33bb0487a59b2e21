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

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{Frame, FrameKind};

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

/// The FLV file header (§E.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
}

/// Reads an FLV file held in memory and yields its tags as [`Frame`]s.
///
/// Iteration stops after the first error (which is yielded once).
#[derive(Debug, Clone)]
pub struct FlvReader {
    data: Bytes,
    pos: usize,
    header: FlvHeader,
    done: bool,
}

impl FlvReader {
    /// Parse the file header and the first `PreviousTagSize0`.
    pub fn new(data: Bytes) -> Result<Self, FlvError> {
        need("FLV header", &data, 0, FILE_HEADER_LEN)?;
        if &data[0..3] != b"FLV" {
            return Err(FlvError::BadSignature {
                found: [data[0], data[1], data[2]],
            });
        }
        let header = FlvHeader {
            version: data[3],
            has_audio: data[4] & 0x04 != 0,
            has_video: data[4] & 0x01 != 0,
        };
        let data_offset = be(&data[5..9]);
        if (data_offset as usize) < FILE_HEADER_LEN {
            return Err(FlvError::BadDataOffset(data_offset));
        }
        let pos = data_offset as usize;
        need("PreviousTagSize0", &data, pos, 4)?;
        Ok(Self {
            pos: pos + 4,
            data,
            header,
            done: false,
        })
    }

    pub fn header(&self) -> FlvHeader {
        self.header
    }

    fn next_tag(&mut self) -> Result<Option<Frame>, FlvError> {
        let start = self.pos;
        if start >= self.data.len() {
            return Ok(None);
        }
        let d = &self.data;
        need("FLV tag header", d, start, TAG_HEADER_LEN)?;
        let type_byte = d[start];
        if type_byte & 0x20 != 0 {
            return Err(FlvError::Encrypted { offset: start });
        }
        let tag_type = type_byte & 0x1f;
        let size = be(&d[start + 1..start + 4]) as usize;
        let timestamp = u32::from(d[start + 7]) << 24 | be(&d[start + 4..start + 7]);
        let body_start = start + TAG_HEADER_LEN;
        need("FLV tag body", d, body_start, size)?;
        let body_end = body_start + size;
        need("PreviousTagSize", d, body_end, 4)?;
        let found = be(&d[body_end..body_end + 4]);
        let expected = (TAG_HEADER_LEN + size) as u32;
        if found != expected {
            return Err(FlvError::PreviousTagSize {
                offset: start,
                found,
                expected,
            });
        }
        self.pos = body_end + 4;
        let kind = match tag_type {
            TAG_AUDIO => FrameKind::Audio,
            TAG_VIDEO => FrameKind::Video,
            TAG_SCRIPT => FrameKind::Script,
            other => {
                return Err(FlvError::UnknownTagType {
                    offset: start,
                    tag_type: other,
                });
            }
        };
        Ok(Some(Frame::new(
            kind,
            timestamp,
            self.data.slice(body_start..body_end),
        )))
    }
}

impl Iterator for FlvReader {
    type Item = Result<Frame, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_tag() {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Append the FLV file header (version 1) and `PreviousTagSize0`.
pub fn write_header(out: &mut BytesMut, has_audio: bool, has_video: bool) {
    out.put_slice(b"FLV\x01");
    out.put_u8(if has_audio { 0x04 } else { 0 } | if has_video { 0x01 } else { 0 });
    out.put_u32(FILE_HEADER_LEN as u32);
    out.put_u32(0);
}

/// Append one tag (header, body, `PreviousTagSize`) for `frame`.
pub fn write_tag(out: &mut BytesMut, frame: &Frame) -> Result<(), FlvError> {
    let len = frame.data.len();
    if len > MAX_TAG_BODY {
        return Err(FlvError::TagTooLarge { len });
    }
    let tag_type = match frame.kind {
        FrameKind::Audio => TAG_AUDIO,
        FrameKind::Video => TAG_VIDEO,
        FrameKind::Script => TAG_SCRIPT,
    };
    let ts = frame.timestamp;
    out.reserve(TAG_HEADER_LEN + len + 4);
    out.put_u8(tag_type);
    out.put_uint(len as u64, 3);
    out.put_uint(u64::from(ts & 0x00ff_ffff), 3);
    out.put_u8((ts >> 24) as u8);
    out.put_uint(0, 3);
    out.put_slice(&frame.data);
    out.put_u32((TAG_HEADER_LEN + len) as u32);
    Ok(())
}

/// A whole FLV file made of `frames`.
pub fn write_file<'a>(
    has_audio: bool,
    has_video: bool,
    frames: impl IntoIterator<Item = &'a Frame>,
) -> Result<Bytes, FlvError> {
    let mut out = BytesMut::new();
    write_header(&mut out, has_audio, has_video);
    for frame in frames {
        write_tag(&mut out, frame)?;
    }
    Ok(out.freeze())
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

    #[test]
    fn file_round_trip_with_extended_timestamp() {
        let frames = vec![
            Frame::new(
                FrameKind::Script,
                0,
                Bytes::from_static(b"\x02\x00\x0aonMetaData"),
            ),
            Frame::new(
                FrameKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            ),
            Frame::new(
                FrameKind::Audio,
                0x0123_4567,
                Bytes::from_static(&[0xaf, 1, 9]),
            ),
            Frame::new(FrameKind::Video, u32::MAX, Bytes::new()),
        ];
        let file = write_file(true, true, &frames).unwrap();
        let reader = FlvReader::new(file.clone()).unwrap();
        assert_eq!(
            reader.header(),
            FlvHeader {
                version: 1,
                has_audio: true,
                has_video: true
            }
        );
        let back: Vec<Frame> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(back, frames);

        // Truncated anywhere: an error or fewer tags, never a panic.
        for cut in 0..file.len() {
            let tags = FlvReader::new(file.slice(..cut)).map(|r| r.filter(Result::is_ok).count());
            assert!(!matches!(tags, Ok(n) if n >= frames.len()), "cut at {cut}");
        }
    }

    #[test]
    fn file_errors() {
        assert!(matches!(
            FlvReader::new(Bytes::from_static(b"FLX\x01\x05\0\0\0\x09\0\0\0\0")),
            Err(FlvError::BadSignature { .. })
        ));
        assert_eq!(
            FlvReader::new(Bytes::from_static(b"FLV\x01\x05\0\0\0\x02\0\0\0\0")).err(),
            Some(FlvError::BadDataOffset(2))
        );
        let mut file = BytesMut::new();
        write_header(&mut file, false, true);
        write_tag(
            &mut file,
            &Frame::new(FrameKind::Video, 5, Bytes::from_static(&[0x17, 1, 0, 0, 0])),
        )
        .unwrap();
        let n = file.len();
        file[n - 1] ^= 1;
        let mut r = FlvReader::new(file.clone().freeze()).unwrap();
        assert!(matches!(
            r.next(),
            Some(Err(FlvError::PreviousTagSize { offset: 13, .. }))
        ));
        assert!(r.next().is_none());
        file[n - 1] ^= 1;
        file[13] = 0x07;
        let mut r = FlvReader::new(file.clone().freeze()).unwrap();
        assert!(matches!(
            r.next(),
            Some(Err(FlvError::UnknownTagType { tag_type: 7, .. }))
        ));
        file[13] = 0x29;
        let mut r = FlvReader::new(file.freeze()).unwrap();
        assert!(matches!(r.next(), Some(Err(FlvError::Encrypted { .. }))));
    }
}
