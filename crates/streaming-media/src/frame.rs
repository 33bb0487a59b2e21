//! The FLV/RTMP tag: what an RTMP audio, video or data message carries (FLV 10.1
//! §E.4 tag bodies), with the RTMP timestamp and two flags read from its first
//! byte(s). The RTMP engines, the FLV reader, writer and demuxer and the fuzz
//! targets work on it; the ingest turns it into [`crate::media`] types once, with a
//! [`crate::media::FlvTagParser`], before anything else sees it.

use bytes::Bytes;

/// What kind of RTMP/FLV tag a frame carries (FLV TagType 8, 9, 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Audio,
    Video,
    /// Script data such as `onMetaData` (AMF0 encoded, `@setDataFrame` stripped).
    Script,
}

/// One FLV tag body with its RTMP timestamp (milliseconds, 32-bit wrapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    /// RTMP message timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// The FLV tag body exactly as received (not copied).
    pub data: Bytes,
}

impl Frame {
    pub fn new(kind: FrameKind, timestamp: u32, data: Bytes) -> Self {
        Self {
            kind,
            timestamp,
            data,
        }
    }

    /// True for a video key frame (FLV FrameType 1), legacy or enhanced RTMP header.
    pub fn is_keyframe(&self) -> bool {
        self.kind == FrameKind::Video && self.data.first().is_some_and(|b| (b >> 4) & 0x07 == 1)
    }

    /// True for an AVC/HEVC sequence header or an AAC AudioSpecificConfig.
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            FrameKind::Video => match self.data.first() {
                // Enhanced RTMP: IsExHeader bit set, PacketType 0 = SequenceStart.
                Some(b) if b & 0x80 != 0 => b & 0x0f == 0,
                Some(_) => self.data.get(1) == Some(&0),
                None => false,
            },
            FrameKind::Audio => {
                self.data.first().is_some_and(|b| b >> 4 == 10) && self.data.get(1) == Some(&0)
            }
            FrameKind::Script => false,
        }
    }

    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_from_first_bytes() {
        let key = Frame::new(
            FrameKind::Video,
            0,
            Bytes::from_static(&[0x17, 0x01, 0, 0, 0]),
        );
        assert!(key.is_keyframe());
        assert!(!key.is_sequence_header());
        let seq = Frame::new(
            FrameKind::Video,
            0,
            Bytes::from_static(&[0x17, 0x00, 0, 0, 0]),
        );
        assert!(seq.is_sequence_header());
        let inter = Frame::new(FrameKind::Video, 0, Bytes::from_static(&[0x27, 0x01]));
        assert!(!inter.is_keyframe());
        let asc = Frame::new(
            FrameKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]),
        );
        assert!(asc.is_sequence_header());
        let raw = Frame::new(FrameKind::Audio, 0, Bytes::from_static(&[0xaf, 0x01, 0x21]));
        assert!(!raw.is_sequence_header());
        assert!(!Frame::new(FrameKind::Video, 0, Bytes::new()).is_keyframe());
    }
}
