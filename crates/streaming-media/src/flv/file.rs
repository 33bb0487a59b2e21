//! FLV files and tags written or read whole (Adobe FLV 10.1 §E.2 header, §E.3 body,
//! §E.4.1 tags): [`FlvReader`] over a file in memory, [`write_header`] and
//! [`write_tag`] for FLV tag bodies, and [`write_media_tag`] / [`write_config_tag`]
//! that rebuild AVC and AAC tag bodies (§E.4.2.1, §E.4.3.1) from parsed media, for
//! example to feed FFmpeg on stdin without parsing anything again.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    FILE_HEADER_LEN, FlvError, MAX_TAG_BODY, TAG_AUDIO, TAG_HEADER_LEN, TAG_SCRIPT, TAG_VIDEO, be,
    need,
};
use crate::frame::{Frame, FrameKind};
use crate::media::{MediaFrame, TrackConfig, TrackKind};

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
    let tag_type = match frame.kind {
        FrameKind::Audio => TAG_AUDIO,
        FrameKind::Video => TAG_VIDEO,
        FrameKind::Script => TAG_SCRIPT,
    };
    put_tag(out, tag_type, frame.timestamp, &[], &frame.data)
}

/// Append the tag of a coded frame, its FLV header rebuilt: an AVC `NALU` video tag
/// (frame type key or inter, `CompositionTime` clamped to 24 bits) or an AAC raw
/// audio tag.
pub fn write_media_tag(out: &mut BytesMut, frame: &MediaFrame) -> Result<(), FlvError> {
    match frame.kind {
        TrackKind::Video => {
            let head = video_header(frame.key, 1, frame.composition_time);
            put_tag(out, TAG_VIDEO, frame.timestamp, &head, &frame.data)
        }
        TrackKind::Audio => put_tag(out, TAG_AUDIO, frame.timestamp, &AAC_RAW, &frame.data),
    }
}

/// Append the sequence header tag of a configuration (AVC sequence header or AAC
/// `AudioSpecificConfig`) at RTMP time `timestamp`.
pub fn write_config_tag(
    out: &mut BytesMut,
    config: &TrackConfig,
    timestamp: u32,
) -> Result<(), FlvError> {
    match config.kind {
        TrackKind::Video => {
            let head = video_header(true, 0, 0);
            put_tag(out, TAG_VIDEO, timestamp, &head, &config.record)
        }
        TrackKind::Audio => put_tag(out, TAG_AUDIO, timestamp, &AAC_CONFIG, &config.record),
    }
}

/// AAC, 44 kHz, 16-bit, stereo (what FLV requires for AAC), `AACPacketType` 1 / 0.
const AAC_RAW: [u8; 2] = [0xaf, 1];
const AAC_CONFIG: [u8; 2] = [0xaf, 0];

/// The 5-byte AVC VIDEODATA header.
fn video_header(key: bool, packet_type: u8, composition_time: i32) -> [u8; 5] {
    let frame_type = if key { 0x10 } else { 0x20 };
    let cts = composition_time.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    [
        frame_type | super::CODEC_ID_AVC,
        packet_type,
        (cts >> 16) as u8,
        (cts >> 8) as u8,
        cts as u8,
    ]
}

/// Append a tag whose body is `head` followed by `payload`.
fn put_tag(
    out: &mut BytesMut,
    tag_type: u8,
    ts: u32,
    head: &[u8],
    payload: &[u8],
) -> Result<(), FlvError> {
    let len = head.len() + payload.len();
    if len > MAX_TAG_BODY {
        return Err(FlvError::TagTooLarge { len });
    }
    out.reserve(TAG_HEADER_LEN + len + 4);
    out.put_u8(tag_type);
    out.put_uint(len as u64, 3);
    out.put_uint(u64::from(ts & 0x00ff_ffff), 3);
    out.put_u8((ts >> 24) as u8);
    out.put_uint(0, 3);
    out.put_slice(head);
    out.put_slice(payload);
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

    #[test]
    fn media_tags_round_trip_through_the_parser() {
        use crate::media::{FlvTagParser, Parsed};
        use std::sync::Arc;
        let avcc = Bytes::from_static(&[
            0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9,
            0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03,
            0xc0, 0xf1, 0x42, 0x99, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0,
            0xfd, 0xf8, 0xf8, 0x00,
        ]);
        let video = Arc::new(TrackConfig::h264(avcc).unwrap());
        let audio = Arc::new(TrackConfig::aac(Bytes::from_static(&[0x12, 0x10])).unwrap());
        let frames = [
            MediaFrame {
                kind: TrackKind::Video,
                timestamp: 0x0123_4567,
                composition_time: -(1 << 23),
                key: true,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            },
            MediaFrame {
                kind: TrackKind::Video,
                timestamp: u32::MAX,
                composition_time: 67,
                key: false,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            },
            MediaFrame {
                kind: TrackKind::Audio,
                timestamp: 21,
                composition_time: 0,
                key: true,
                data: Bytes::from_static(&[0x21, 0x10, 0x04]),
            },
        ];
        let mut file = BytesMut::new();
        write_header(&mut file, true, true);
        write_config_tag(&mut file, &video, 7).unwrap();
        write_config_tag(&mut file, &audio, 7).unwrap();
        for f in &frames {
            write_media_tag(&mut file, f).unwrap();
        }
        let tags: Vec<Frame> = FlvReader::new(file.freeze())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags[0].timestamp, 7);
        let mut parser = FlvTagParser::new();
        let parsed: Vec<Parsed> = tags.iter().map(|t| parser.parse(t).unwrap()).collect();
        assert_eq!(parsed[0], Parsed::Config(video));
        assert_eq!(parsed[1], Parsed::Config(audio));
        let media: Vec<Parsed> = frames.into_iter().map(Parsed::Media).collect();
        assert_eq!(&parsed[2..], &media[..]);
    }
}
