//! Chunk stream decoding (RTMP 1.0 §5.3.1–§5.3.2), incremental: input may be
//! split at any byte. Payload bytes are copied once, from the input straight
//! into the message being reassembled; a finished message is a frozen `Bytes`.
//!
//! Timestamps (§5.3.1.2): type 0 carries the absolute timestamp, types 1 and 2
//! a delta; a type 3 chunk that starts a new message repeats the previous delta,
//! where after a type 0 header the "delta" is that header's timestamp
//! (§5.3.1.2.4; FFmpeg reads it the same way).
//!
//! Extended timestamps (§5.3.1.3): present after a type 0–2 header whose
//! timestamp field is 0xFFFFFF, and — as FFmpeg and librtmp write and read them —
//! after every type 3 header on a chunk stream whose last type 0–2 header had
//! 0xFFFFFF, continuation chunks included. On a continuation chunk its value is
//! ignored; on a type 3 chunk that starts a message it is the delta.
//!
//! Limits: messages above `max_message_len` (refused at their first chunk
//! header, before any payload is buffered), more than [`MAX_CHUNK_STREAMS`]
//! chunk streams or `max_partials` concurrently reassembled messages are
//! errors. Buffers grow with the bytes that actually arrive, never by a
//! length field alone, and every byte of buffer capacity is charged to the
//! shared [`ReassemblyBudget`] (when one is set) before it is allocated; it is
//! given back when the message completes or is aborted, or the decoder is
//! dropped or cleared.

use bytes::{BufMut, BytesMut};

use super::{DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, RawMessage};
use crate::rtmp::{ReassemblyBudget, RtmpError};

/// Distinct chunk stream ids one connection may use (encoders use < 10).
pub(crate) const MAX_CHUNK_STREAMS: usize = 256;
/// Messages that may be in reassembly at the same time unless set otherwise
/// (encoders interleave 2–4).
pub(crate) const MAX_PARTIAL_MESSAGES: usize = 16;
/// Smallest first allocation for a message buffer.
const MIN_ALLOC: usize = 4096;

#[derive(Debug)]
struct InStream {
    csid: u32,
    msid: u32,
    type_id: u8,
    length: u32,
    /// Timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta a type 3 header starting a new message applies.
    delta: u32,
    /// The last type 0–2 header's timestamp field was 0xFFFFFF.
    extended: bool,
    /// The message being reassembled.
    partial: Option<BytesMut>,
    /// Capacity of `partial` charged to the budget.
    charged: usize,
    /// Connection offset of the current message's first chunk.
    start: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    /// Inside the payload of a chunk: `remaining` bytes of it still to come.
    Payload {
        index: usize,
        remaining: u32,
    },
}

#[derive(Debug)]
pub(crate) struct ChunkDecoder {
    chunk_size: u32,
    max_message_len: u32,
    max_partials: usize,
    budget: Option<ReassemblyBudget>,
    /// Bytes charged to `budget` now (the sum of the streams' `charged`).
    charged: u64,
    streams: Vec<InStream>,
    partials: usize,
    state: State,
    /// Header bytes collected so far (basic 3 + message 11 + extended 4).
    hdr: [u8; 18],
    hdr_len: usize,
    /// Connection offset of the next byte, and of the current chunk's header.
    offset: u64,
    chunk_start: u64,
}

impl ChunkDecoder {
    /// A decoder whose first byte is at connection offset `offset`.
    pub(crate) fn new(max_message_len: u32, offset: u64) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message_len,
            max_partials: MAX_PARTIAL_MESSAGES,
            budget: None,
            charged: 0,
            streams: Vec::new(),
            partials: 0,
            state: State::Header,
            hdr: [0; 18],
            hdr_len: 0,
            offset,
            chunk_start: offset,
        }
    }

    /// Apply a validated Set Chunk Size (RTMP 1.0 §5.4.1) to following chunks.
    pub(crate) fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size;
    }

    /// Limits for messages that start from now on (messages in reassembly
    /// keep going).
    pub(crate) fn set_limits(&mut self, max_message_len: u32, max_partials: usize) {
        self.max_message_len = max_message_len;
        self.max_partials = max_partials.max(1);
    }

    /// Charge reassembly buffers to `budget` from now on.
    pub(crate) fn set_budget(&mut self, budget: Option<ReassemblyBudget>) {
        self.release_all();
        self.budget = budget;
    }

    /// Abort Message (RTMP 1.0 §5.4.2): drop the partial message on `csid`.
    pub(crate) fn abort(&mut self, csid: u32) {
        if let Some(index) = self.streams.iter().position(|s| s.csid == csid)
            && self.streams[index].partial.is_some()
        {
            // Called between messages, so the decoder is never inside its payload.
            self.drop_partial(index);
        }
    }

    /// Drop every partial message and give their bytes back to the budget
    /// (the session failed; nothing more will be decoded).
    pub(crate) fn release_all(&mut self) {
        for index in 0..self.streams.len() {
            if self.streams[index].partial.is_some() {
                self.drop_partial(index);
            }
        }
        self.state = State::Header;
    }

    fn drop_partial(&mut self, index: usize) {
        let st = &mut self.streams[index];
        st.partial = None;
        let n = std::mem::take(&mut st.charged) as u64;
        self.partials = self.partials.saturating_sub(1);
        self.uncharge(n);
    }

    fn uncharge(&mut self, n: u64) {
        self.charged = self.charged.saturating_sub(n);
        if let Some(b) = &self.budget {
            b.release(n);
        }
    }

    /// Charge `n` more bytes of buffer for the message on `csid`.
    fn charge(&mut self, n: usize, csid: u32) -> Result<(), RtmpError> {
        let n = n as u64;
        if let Some(b) = &self.budget
            && !b.try_charge(n)
        {
            return Err(RtmpError::ReassemblyBudget {
                csid,
                requested: n,
                used: b.used(),
                limit: b.limit(),
                offset: self.chunk_start,
            });
        }
        self.charged += n;
        Ok(())
    }

    /// Make room for `n` more bytes in the partial message of stream
    /// `index`: exact-size allocations, at most doubling, so capacity stays
    /// within twice what arrived (plus the input at hand) and ends exactly at
    /// the message length. The growth is charged first.
    fn reserve(&mut self, index: usize, n: usize) -> Result<(), RtmpError> {
        let st = &self.streams[index];
        let Some(buf) = st.partial.as_ref() else {
            return Ok(());
        };
        if buf.capacity() - buf.len() >= n {
            return Ok(());
        }
        let want = (buf.len() + n)
            .max(2 * buf.capacity())
            .min(st.length as usize);
        let extra = want.saturating_sub(st.charged);
        let csid = st.csid;
        self.charge(extra, csid)?;
        let st = &mut self.streams[index];
        st.charged += extra;
        if let Some(buf) = st.partial.as_mut() {
            let mut grown = BytesMut::with_capacity(want);
            grown.put_slice(buf);
            *buf = grown;
        }
        Ok(())
    }

    /// Decode from `data` until one message is complete or `data` is used up.
    /// Returns the bytes consumed and the message, if one completed; the caller
    /// must act on the message (e.g. a chunk size change) before calling again.
    pub(crate) fn decode(&mut self, data: &[u8]) -> Result<(usize, Option<RawMessage>), RtmpError> {
        let mut pos = 0;
        while pos < data.len() {
            match self.state {
                State::Header => {
                    let (n, msg) = self.header(&data[pos..])?;
                    pos += n;
                    self.offset += n as u64;
                    if msg.is_some() {
                        return Ok((pos, msg));
                    }
                }
                State::Payload { index, remaining } => {
                    let avail = data.len() - pos;
                    let n = avail.min(remaining as usize);
                    self.reserve(index, n)?;
                    let st = &mut self.streams[index];
                    let length = st.length as usize;
                    // Invariant: a Payload state always has a partial buffer.
                    let Some(buf) = st.partial.as_mut() else {
                        self.state = State::Header;
                        continue;
                    };
                    buf.put_slice(&data[pos..pos + n]);
                    pos += n;
                    self.offset += n as u64;
                    let remaining = remaining - n as u32;
                    if remaining > 0 {
                        self.state = State::Payload { index, remaining };
                        continue;
                    }
                    self.state = State::Header;
                    self.chunk_start = self.offset;
                    if buf.len() == length {
                        return Ok((pos, Some(self.finish(index))));
                    }
                }
            }
        }
        Ok((pos, None))
    }

    fn finish(&mut self, index: usize) -> RawMessage {
        let st = &mut self.streams[index];
        self.partials -= 1;
        // A complete message is no longer reassembly: its bytes go back.
        let n = std::mem::take(&mut st.charged) as u64;
        let msg = RawMessage {
            csid: st.csid,
            timestamp: st.timestamp,
            type_id: st.type_id,
            msid: st.msid,
            payload: st.partial.take().unwrap_or_default().freeze(),
            offset: st.start,
        };
        self.uncharge(n);
        msg
    }

    /// Total header length implied by the bytes collected so far, if known.
    fn header_len(&self) -> Result<Option<usize>, RtmpError> {
        if self.hdr_len == 0 {
            return Ok(None);
        }
        let basic = match self.hdr[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if self.hdr_len < basic {
            return Ok(Some(basic));
        }
        let fmt = self.hdr[0] >> 6;
        let base = basic + [11, 7, 3, 0][fmt as usize];
        if self.hdr_len < base {
            return Ok(Some(base));
        }
        let extended = if fmt == 3 {
            let csid = self.csid(basic);
            match self.streams.iter().find(|s| s.csid == csid) {
                Some(st) => st.extended,
                None => {
                    return Err(RtmpError::NoPreviousHeader {
                        csid,
                        fmt,
                        offset: self.chunk_start,
                    });
                }
            }
        } else {
            be24(&self.hdr[basic..]) == EXTENDED_TIMESTAMP
        };
        Ok(Some(base + if extended { 4 } else { 0 }))
    }

    fn csid(&self, basic: usize) -> u32 {
        match basic {
            1 => u32::from(self.hdr[0] & 0x3f),
            2 => 64 + u32::from(self.hdr[1]),
            _ => 64 + u32::from(self.hdr[1]) + 256 * u32::from(self.hdr[2]),
        }
    }

    /// Collect and process one chunk header. Returns bytes used and, for a
    /// zero-length message, the (empty) message.
    fn header(&mut self, data: &[u8]) -> Result<(usize, Option<RawMessage>), RtmpError> {
        if self.hdr_len == 0 {
            self.chunk_start = self.offset;
        }
        let mut pos = 0;
        loop {
            let need = self.header_len()?.unwrap_or(1);
            if self.hdr_len == need {
                break;
            }
            let n = (need - self.hdr_len).min(data.len() - pos);
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[pos..pos + n]);
            self.hdr_len += n;
            pos += n;
            if self.hdr_len < need {
                return Ok((pos, None));
            }
        }
        let total = self.hdr_len;
        self.hdr_len = 0;
        let avail = data.len() - pos;
        let msg = self.process_header(total, avail)?;
        Ok((pos, msg))
    }

    fn process_header(
        &mut self,
        total: usize,
        avail: usize,
    ) -> Result<Option<RawMessage>, RtmpError> {
        let h = self.hdr;
        let fmt = h[0] >> 6;
        let basic = match h[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let csid = self.csid(basic);
        let offset = self.chunk_start;
        let m = &h[basic..];
        let ext = (total == basic + [11, 7, 3, 0][fmt as usize] + 4)
            .then(|| u32::from_be_bytes([h[total - 4], h[total - 3], h[total - 2], h[total - 1]]));
        let index = match self.streams.iter().position(|s| s.csid == csid) {
            Some(i) => i,
            // Type 1 without history: librtmp sends its first Acknowledgement and
            // User Control messages that way; inherit stream 0 and time 0.
            None if fmt <= 1 => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(RtmpError::TooManyChunkStreams {
                        csid,
                        what: "chunk stream ids",
                        max: MAX_CHUNK_STREAMS,
                        offset,
                    });
                }
                self.streams.push(InStream {
                    csid,
                    msid: 0,
                    type_id: 0,
                    length: 0,
                    timestamp: 0,
                    delta: 0,
                    extended: false,
                    partial: None,
                    charged: 0,
                    start: offset,
                });
                self.streams.len() - 1
            }
            None => return Err(RtmpError::NoPreviousHeader { csid, fmt, offset }),
        };
        let st = &mut self.streams[index];
        if let Some(partial) = &st.partial {
            if fmt != 3 {
                return Err(RtmpError::InterruptedMessage {
                    csid,
                    fmt,
                    received: partial.len() as u32,
                    length: st.length,
                    offset,
                });
            }
            // Continuation chunk: nothing in the header changes.
            let remaining = (st.length - partial.len() as u32).min(self.chunk_size);
            self.state = State::Payload { index, remaining };
            return Ok(None);
        }
        if fmt <= 1 {
            let length = be24(&m[3..]);
            let type_id = m[6];
            if length > self.max_message_len {
                return Err(RtmpError::MessageTooLarge {
                    csid,
                    type_id,
                    length,
                    max: self.max_message_len,
                    offset,
                });
            }
            st.length = length;
            st.type_id = type_id;
        }
        let field = if fmt <= 2 { Some(be24(m)) } else { None };
        let value = ext.or(field).unwrap_or(st.delta);
        match fmt {
            0 => {
                st.msid = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
                st.timestamp = value;
                st.delta = value;
            }
            _ => {
                st.timestamp = st.timestamp.wrapping_add(value);
                st.delta = value;
            }
        }
        if let Some(field) = field {
            st.extended = field == EXTENDED_TIMESTAMP;
        }
        st.start = offset;
        if st.length == 0 {
            return Ok(Some(RawMessage {
                csid,
                timestamp: st.timestamp,
                type_id: st.type_id,
                msid: st.msid,
                payload: bytes::Bytes::new(),
                offset,
            }));
        }
        if self.partials >= self.max_partials {
            return Err(RtmpError::TooManyPartialMessages {
                csid,
                max: self.max_partials,
                offset,
            });
        }
        let length = st.length;
        let cap = (length as usize).min(avail.max(MIN_ALLOC));
        self.charge(cap, csid)?;
        let st = &mut self.streams[index];
        st.partial = Some(BytesMut::with_capacity(cap));
        st.charged = cap;
        self.partials += 1;
        let remaining = length.min(self.chunk_size);
        self.state = State::Payload { index, remaining };
        Ok(None)
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

impl Drop for ChunkDecoder {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.charged);
        }
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
