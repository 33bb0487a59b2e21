//! Errors of the RTMP engines. Every variant carries the context needed to find
//! the offending byte: chunk stream id (`csid`), message type id (`type_id`),
//! message stream id (`msid`) and `offset`, the position in the connection's
//! received byte stream (handshake included) where the offending chunk began.

use super::RtmpLimit;
use crate::amf0::Amf0Error;

/// A fatal RTMP protocol error: the connection should be closed (after
/// draining `poll_output`, which may hold a last message for the peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// C0/S0 carried a version other than 3 (RTMP 1.0 §5.2.2).
    #[error("unsupported RTMP version {version} in handshake (3 expected)")]
    UnsupportedVersion { version: u8 },
    /// C0/S0 asked for RTMPE (version 6 or 8), which is not supported.
    #[error("encrypted RTMP (RTMPE, handshake version {version}) is not supported")]
    EncryptedHandshake { version: u8 },
    /// Set Chunk Size of 0 or with the top bit set (RTMP 1.0 §5.4.1).
    #[error("invalid chunk size {size} at offset {offset}")]
    InvalidChunkSize { size: u32, offset: u64 },
    /// Set Chunk Size above the configured `max_in_chunk_size`.
    #[error("chunk size {size} above the limit {max} at offset {offset}")]
    ChunkSizeTooLarge { size: u32, max: u32, offset: u64 },
    /// A message header announced more than the session's current
    /// [`super::SessionLimits::max_message_len`] (refused before any of its
    /// payload is buffered).
    #[error(
        "message of {length} bytes (type {type_id}) on chunk stream {csid} exceeds the limit {max} at offset {offset}"
    )]
    MessageTooLarge {
        csid: u32,
        type_id: u8,
        length: u32,
        max: u32,
        offset: u64,
    },
    /// A type 1, 2 or 3 chunk header on a chunk stream that has no previous
    /// header to inherit from (RTMP 1.0 §5.3.1.2).
    #[error(
        "chunk header type {fmt} on chunk stream {csid} without a previous header at offset {offset}"
    )]
    NoPreviousHeader { csid: u32, fmt: u8, offset: u64 },
    /// A type 0, 1 or 2 chunk header in the middle of a message, where only type
    /// 3 continuation chunks are allowed.
    #[error(
        "chunk header type {fmt} interrupts a message on chunk stream {csid} ({received} of {length} bytes read) at offset {offset}"
    )]
    InterruptedMessage {
        csid: u32,
        fmt: u8,
        received: u32,
        length: u32,
        offset: u64,
    },
    /// More distinct chunk streams than any encoder uses.
    #[error("too many chunk streams ({what}, limit {max}) at chunk stream {csid}, offset {offset}")]
    TooManyChunkStreams {
        csid: u32,
        what: &'static str,
        max: usize,
        offset: u64,
    },
    /// A message started while [`super::SessionLimits::max_partial_messages`]
    /// others were still in reassembly.
    #[error(
        "too many messages in reassembly (limit {max}): another one starts on chunk stream {csid} at offset {offset}"
    )]
    TooManyPartialMessages { csid: u32, max: usize, offset: u64 },
    /// Growing a reassembly buffer by `requested` bytes would exceed the
    /// [`super::ReassemblyBudget`] all sessions share (`used` of `limit` bytes
    /// held when it was tried).
    #[error(
        "reassembly budget spent ({used} of {limit} bytes held by all connections): {requested} more bytes for chunk stream {csid} refused at offset {offset}"
    )]
    ReassemblyBudget {
        csid: u32,
        requested: u64,
        used: u64,
        limit: u64,
        offset: u64,
    },
    /// A message type id that RTMP 1.0 §5.4 / §7.1 does not define.
    #[error("unknown message type {type_id} on chunk stream {csid}, message stream {msid}")]
    UnknownMessageType { csid: u32, type_id: u8, msid: u32 },
    /// A defined message type that a publish session never uses (shared objects).
    #[error("unsupported message type {type_id} on chunk stream {csid}, message stream {msid}")]
    UnsupportedMessageType { csid: u32, type_id: u8, msid: u32 },
    /// A protocol control or user control message with a bad body.
    #[error("malformed message type {type_id} on chunk stream {csid} ({length} bytes): {reason}")]
    MalformedMessage {
        csid: u32,
        type_id: u8,
        length: usize,
        reason: &'static str,
    },
    /// The AMF0 body of a command or data message did not decode, or went
    /// over the session's AMF0 limits (`source` says which; its offset is
    /// within the body, `offset` is where the message began).
    #[error(
        "bad AMF0 in message type {type_id} on chunk stream {csid}, message stream {msid} at offset {offset}: {source}"
    )]
    Amf {
        csid: u32,
        type_id: u8,
        msid: u32,
        offset: u64,
        #[source]
        source: Amf0Error,
    },
    /// The peer answered one of our commands with `_error` (or a failed status).
    #[error("{command} failed: {code} ({description})")]
    CommandFailed {
        command: String,
        code: String,
        description: String,
    },
    /// A media frame was offered before `NetStream.Publish.Start` or after `finish`.
    #[error("not publishing: frames can be sent only after PublishStarted and before finish")]
    NotPublishing,
    /// The session already failed; the connection must be closed.
    #[error("session already failed; close the connection")]
    Closed,
}

impl RtmpError {
    /// The resource limit this error reports, if it is one (so a driver can
    /// count it); `None` for protocol violations.
    pub fn limit(&self) -> Option<RtmpLimit> {
        match self {
            RtmpError::MessageTooLarge { .. } => Some(RtmpLimit::MessageSize),
            RtmpError::TooManyChunkStreams { .. } => Some(RtmpLimit::ChunkStreams),
            RtmpError::TooManyPartialMessages { .. } => Some(RtmpLimit::PartialMessages),
            RtmpError::ReassemblyBudget { .. } => Some(RtmpLimit::ReassemblyBudget),
            RtmpError::Amf {
                source: Amf0Error::TooManyValues { .. },
                ..
            } => Some(RtmpLimit::AmfValues),
            RtmpError::Amf {
                source: Amf0Error::TooDeep { .. },
                ..
            } => Some(RtmpLimit::AmfDepth),
            _ => None,
        }
    }
}
