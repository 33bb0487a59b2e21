//! The RTMP chunk stream (RTMP 1.0 §5.3): messages are cut into chunks of at
//! most the negotiated chunk size, each with a basic header (§5.3.1.1: chunk
//! stream id in 1, 2 or 3 bytes), a message header of type 0–3 (§5.3.1.2) and
//! an optional extended timestamp (§5.3.1.3).

mod decoder;
mod encoder;

pub(crate) use decoder::ChunkDecoder;
pub(crate) use encoder::{ChunkEncoder, MessageHeader};

use bytes::Bytes;

/// The chunk size both sides start with (RTMP 1.0 §5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size RTMP allows (31 bits, RTMP 1.0 §5.4.1).
pub const MAX_CHUNK_SIZE: u32 = 0x7fff_ffff;
/// A timestamp field with this value means "see the extended timestamp".
pub(crate) const EXTENDED_TIMESTAMP: u32 = 0x00ff_ffff;

/// A complete, reassembled RTMP message (RTMP 1.0 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawMessage {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping at 2^32).
    pub timestamp: u32,
    pub type_id: u8,
    /// Message stream id.
    pub msid: u32,
    pub payload: Bytes,
    /// Connection offset of the message's first chunk header.
    pub offset: u64,
}
