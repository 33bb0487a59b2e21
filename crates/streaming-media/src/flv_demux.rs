//! Incremental FLV demuxer (Adobe FLV 10.1 §E.2–E.3): bytes in as they arrive
//! from a pipe or socket, [`Frame`]s out. Used to read FFmpeg's rendition
//! outputs. Sans-IO; malformed input is an error, never a panic.

use bytes::{Buf, BytesMut};

use crate::frame::{Frame, FrameKind};

const FILE_HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
/// Largest tag body accepted (a 4K keyframe fits easily).
pub const MAX_TAG_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlvDemuxError {
    #[error("not an FLV stream (signature {0:02x?})")]
    BadSignature([u8; 3]),
    #[error("FLV header data offset {0} is shorter than the header")]
    BadDataOffset(u32),
    #[error(
        "FLV tag at stream offset {offset} has body size {size}, above the {MAX_TAG_BODY}-byte bound"
    )]
    TagTooLarge { offset: u64, size: usize },
}

/// Push bytes with [`FlvDemuxer::push`], then drain [`FlvDemuxer::next_frame`] until `Ok(None)`.
#[derive(Debug, Default)]
pub struct FlvDemuxer {
    buf: BytesMut,
    header_done: bool,
    consumed: u64,
}

impl FlvDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete tag as a frame; unknown tag types are skipped.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FlvDemuxError> {
        loop {
            if !self.header_done {
                if self.buf.len() < FILE_HEADER_LEN {
                    return Ok(None);
                }
                if &self.buf[0..3] != b"FLV" {
                    return Err(FlvDemuxError::BadSignature([
                        self.buf[0],
                        self.buf[1],
                        self.buf[2],
                    ]));
                }
                let offset =
                    u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                if (offset as usize) < FILE_HEADER_LEN {
                    return Err(FlvDemuxError::BadDataOffset(offset));
                }
                // Header, then PreviousTagSize0.
                let skip = offset as usize + 4;
                if self.buf.len() < skip {
                    return Ok(None);
                }
                self.advance(skip);
                self.header_done = true;
            }
            if self.buf.len() < TAG_HEADER_LEN {
                return Ok(None);
            }
            let tag_type = self.buf[0] & 0x1f;
            let size = (usize::from(self.buf[1]) << 16)
                | (usize::from(self.buf[2]) << 8)
                | usize::from(self.buf[3]);
            if size > MAX_TAG_BODY {
                return Err(FlvDemuxError::TagTooLarge {
                    offset: self.consumed,
                    size,
                });
            }
            let total = TAG_HEADER_LEN + size + 4;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            let timestamp = (u32::from(self.buf[7]) << 24)
                | (u32::from(self.buf[4]) << 16)
                | (u32::from(self.buf[5]) << 8)
                | u32::from(self.buf[6]);
            let mut tag = self.buf.split_to(total);
            self.consumed += total as u64;
            tag.advance(TAG_HEADER_LEN);
            tag.truncate(size);
            let kind = match tag_type {
                8 => FrameKind::Audio,
                9 => FrameKind::Video,
                18 => FrameKind::Script,
                _ => continue,
            };
            return Ok(Some(Frame::new(kind, timestamp, tag.freeze())));
        }
    }

    fn advance(&mut self, n: usize) {
        self.buf.advance(n);
        self.consumed += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{write_header, write_tag};
    use bytes::Bytes;

    #[test]
    fn frames_come_out_at_every_split() {
        let frames = vec![
            Frame::new(
                FrameKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2]),
            ),
            Frame::new(FrameKind::Audio, 21, Bytes::from_static(&[0xaf, 1, 9])),
            Frame::new(
                FrameKind::Video,
                0x0100_0033,
                Bytes::from_static(&[0x27, 1, 0, 0, 0, 5]),
            ),
        ];
        let mut out = BytesMut::new();
        write_header(&mut out, true, true);
        for f in &frames {
            write_tag(&mut out, f).unwrap();
        }
        for split in 0..out.len() {
            let mut d = FlvDemuxer::new();
            let mut got = Vec::new();
            d.push(&out[..split]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
            d.push(&out[split..]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
            assert_eq!(got, frames, "split at {split}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut d = FlvDemuxer::new();
        d.push(b"GIF89a\0\0\0\0\0");
        assert!(matches!(
            d.next_frame(),
            Err(FlvDemuxError::BadSignature(_))
        ));
        let mut d = FlvDemuxer::new();
        d.push(b"FLV\x01\x05\0\0\0\x09\0\0\0\0\x09\xff\xff\xff\0\0\0\0\0\0\0");
        assert!(matches!(
            d.next_frame(),
            Err(FlvDemuxError::TagTooLarge { .. })
        ));
    }
}
