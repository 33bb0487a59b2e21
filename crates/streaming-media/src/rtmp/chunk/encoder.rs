//! Chunk stream encoding (RTMP 1.0 §5.3.1), compressing headers as FFmpeg and
//! librtmp do: type 0 for the first message on a chunk stream (or when the
//! message stream changes or time goes backwards), type 1 when length or type
//! change, type 2 when only the delta differs, type 3 when the delta repeats.
//!
//! A type 3 header is never used for a message that directly follows a type 0
//! header: RTMP 1.0 §5.3.1.2.4 makes the type 0 timestamp the repeated delta
//! there, which nginx-rtmp reads as 0 — avoiding the case keeps every reader
//! in agreement. Extended timestamps (§5.3.1.3) are written after any header
//! whose field would be ≥ 0xFFFFFF and repeated on every type 3 chunk of such a
//! chunk stream, like FFmpeg.

use bytes::{BufMut, BytesMut};

use super::{DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP};

/// The header fields of one outgoing message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageHeader {
    pub csid: u32,
    pub timestamp: u32,
    pub type_id: u8,
    pub msid: u32,
}

#[derive(Debug)]
struct OutStream {
    csid: u32,
    msid: u32,
    type_id: u8,
    length: u32,
    timestamp: u32,
    /// Delta a type 3 header would repeat (None right after a type 0 header).
    delta: Option<u32>,
    /// The last type 0–2 header carried an extended timestamp.
    extended: bool,
}

#[derive(Debug)]
pub(crate) struct ChunkEncoder {
    chunk_size: u32,
    streams: Vec<OutStream>,
}

impl ChunkEncoder {
    pub(crate) fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
        }
    }

    /// Use `size` (1..=2^31-1, validated by the caller) for following messages.
    pub(crate) fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.max(1);
    }

    /// Write one message as chunks into `out`. When `boundaries` is given, the
    /// `out` offset at the end of each chunk is pushed to it.
    pub(crate) fn write(
        &mut self,
        h: MessageHeader,
        payload: &[u8],
        out: &mut BytesMut,
        mut boundaries: Option<&mut Vec<usize>>,
    ) {
        let MessageHeader {
            csid,
            timestamp,
            type_id,
            msid,
        } = h;
        // The message header's length field has 24 bits; callers stay below.
        let length = payload.len().min(0x00ff_ffff) as u32;
        let payload = &payload[..length as usize];
        let found = self.streams.iter().position(|s| s.csid == csid);
        let (fmt, value) = match found.map(|i| &self.streams[i]) {
            Some(p) if p.msid == msid && timestamp >= p.timestamp => {
                let delta = timestamp - p.timestamp;
                if p.length != length || p.type_id != type_id {
                    (1, delta)
                } else if p.delta == Some(delta) {
                    (3, delta)
                } else {
                    (2, delta)
                }
            }
            _ => (0, timestamp),
        };
        let index = found.unwrap_or_else(|| {
            self.streams.push(OutStream {
                csid,
                msid,
                type_id,
                length,
                timestamp,
                delta: None,
                extended: false,
            });
            self.streams.len() - 1
        });
        let st = &mut self.streams[index];
        let extended = if fmt == 3 {
            st.extended
        } else {
            value >= EXTENDED_TIMESTAMP
        };
        let field = value.min(EXTENDED_TIMESTAMP);
        let chunk = self.chunk_size as usize;
        let chunks = payload.len().div_ceil(chunk).max(1);
        out.reserve(payload.len() + 18 + (chunks - 1) * 7);

        basic_header(out, fmt, csid);
        if fmt <= 2 {
            put_u24(out, field);
        }
        if fmt <= 1 {
            put_u24(out, length);
            out.put_u8(type_id);
        }
        if fmt == 0 {
            out.put_u32_le(msid);
        }
        if extended {
            out.put_u32(value);
        }
        let mut rest = payload;
        loop {
            let n = rest.len().min(chunk);
            out.put_slice(&rest[..n]);
            rest = &rest[n..];
            if let Some(b) = boundaries.as_deref_mut() {
                b.push(out.len());
            }
            if rest.is_empty() {
                break;
            }
            basic_header(out, 3, csid);
            if extended {
                out.put_u32(value);
            }
        }

        st.msid = msid;
        st.type_id = type_id;
        st.length = length;
        st.timestamp = timestamp;
        match fmt {
            0 => st.delta = None,
            1 | 2 => st.delta = Some(value),
            _ => {}
        }
        if fmt != 3 {
            st.extended = extended;
        }
    }
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

/// Basic header (RTMP 1.0 §5.3.1.1): csid 2–63 in one byte, 64–319 in two,
/// 320–65599 in three.
fn basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let f = fmt << 6;
    match csid {
        0..=63 => out.put_u8(f | csid as u8),
        64..=319 => {
            out.put_u8(f);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let v = csid.clamp(320, 65599) - 64;
            out.put_u8(f | 1);
            out.put_u16_le(v as u16);
        }
    }
}
