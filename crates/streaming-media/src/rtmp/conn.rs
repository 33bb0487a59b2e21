//! The part of an RTMP session that client and server share once the
//! handshake is done: chunk decoding and encoding, the output buffer, and the
//! protocol control messages of RTMP 1.0 §5.4 (Set Chunk Size, Abort Message,
//! Acknowledgement, Window Acknowledgement Size, Set Peer Bandwidth) plus the
//! ping of the user control messages (§6.2, §7.1.7).

use bytes::{BufMut, BytesMut};

use super::RtmpError;
use super::chunk::{ChunkDecoder, ChunkEncoder, MAX_CHUNK_SIZE, MessageHeader, RawMessage};
use super::handshake::HANDSHAKE_SIZE;
use super::message::{self, csid, msg_type, user_control};
use crate::amf0::Amf0Value;

/// Bytes each side receives during the handshake (S0/C0 + two packets).
const HANDSHAKE_BYTES: u64 = 1 + 2 * HANDSHAKE_SIZE as u64;

#[derive(Debug)]
pub(crate) struct Conn {
    pub decoder: ChunkDecoder,
    pub encoder: ChunkEncoder,
    /// Bytes waiting to be transmitted.
    pub out: BytesMut,
    max_in_chunk_size: u32,
    /// All bytes received, handshake included.
    pub bytes_received: u64,
    /// Window the peer asked to be acknowledged at (its Window Ack Size).
    peer_window: Option<u32>,
    last_ack: u64,
    /// Sequence number of the peer's last Acknowledgement.
    pub peer_acked: Option<u32>,
}

impl Conn {
    pub(crate) fn new(max_message_len: u32, max_in_chunk_size: u32) -> Self {
        Self {
            decoder: ChunkDecoder::new(max_message_len, HANDSHAKE_BYTES),
            encoder: ChunkEncoder::new(),
            out: BytesMut::new(),
            max_in_chunk_size: max_in_chunk_size.clamp(1, MAX_CHUNK_SIZE),
            bytes_received: 0,
            peer_window: None,
            last_ack: 0,
            peer_acked: None,
        }
    }

    /// Queue one message.
    pub(crate) fn send(&mut self, csid: u32, msid: u32, type_id: u8, timestamp: u32, body: &[u8]) {
        let h = MessageHeader {
            csid,
            timestamp,
            type_id,
            msid,
        };
        self.encoder.write(h, body, &mut self.out, None);
    }

    /// Queue a protocol control message (chunk stream 2, message stream 0).
    pub(crate) fn send_control(&mut self, type_id: u8, body: &[u8]) {
        self.send(csid::CONTROL, 0, type_id, 0, body);
    }

    /// Queue Set Chunk Size and use the new size for everything after it.
    pub(crate) fn send_chunk_size(&mut self, size: u32) {
        let size = size.clamp(1, MAX_CHUNK_SIZE);
        self.send_control(msg_type::SET_CHUNK_SIZE, &size.to_be_bytes());
        self.encoder.set_chunk_size(size);
    }

    pub(crate) fn send_user_control(&mut self, event: u16, data: &[u8]) {
        let mut body = Vec::with_capacity(2 + data.len());
        body.extend_from_slice(&event.to_be_bytes());
        body.extend_from_slice(data);
        self.send_control(msg_type::USER_CONTROL, &body);
    }

    /// Queue an AMF0 command message.
    pub(crate) fn send_command(
        &mut self,
        csid: u32,
        msid: u32,
        name: &str,
        txn: f64,
        rest: &[Amf0Value],
    ) {
        let body = message::command(name, txn, rest);
        self.send(csid, msid, msg_type::COMMAND_AMF0, 0, &body);
    }

    /// Handle a protocol control or user control message; other messages are
    /// handed back.
    pub(crate) fn handle_control(
        &mut self,
        msg: RawMessage,
    ) -> Result<Option<RawMessage>, RtmpError> {
        match msg.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let size = message::be32(&msg, "Set Chunk Size shorter than 4 bytes")?;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(RtmpError::InvalidChunkSize {
                        size,
                        offset: msg.offset,
                    });
                }
                if size > self.max_in_chunk_size {
                    return Err(RtmpError::ChunkSizeTooLarge {
                        size,
                        max: self.max_in_chunk_size,
                        offset: msg.offset,
                    });
                }
                self.decoder.set_chunk_size(size);
            }
            msg_type::ABORT => {
                let csid = message::be32(&msg, "Abort Message shorter than 4 bytes")?;
                self.decoder.abort(csid);
            }
            msg_type::ACK => {
                self.peer_acked =
                    Some(message::be32(&msg, "Acknowledgement shorter than 4 bytes")?);
            }
            msg_type::WINDOW_ACK_SIZE => {
                let size = message::be32(&msg, "Window Acknowledgement Size shorter than 4 bytes")?;
                self.peer_window = (size > 0).then_some(size);
            }
            msg_type::SET_PEER_BANDWIDTH => {
                // A publisher's output is paced by the encoder, not by this limit.
                message::be32(&msg, "Set Peer Bandwidth shorter than 4 bytes")?;
            }
            msg_type::USER_CONTROL => {
                let p = &msg.payload;
                if p.len() < 2 {
                    return Err(message::malformed(
                        &msg,
                        "User Control shorter than 2 bytes",
                    ));
                }
                let event = u16::from_be_bytes([p[0], p[1]]);
                if event == user_control::PING_REQUEST {
                    let Some(ts) = p.get(2..6) else {
                        return Err(message::malformed(&msg, "PingRequest shorter than 6 bytes"));
                    };
                    let ts = [ts[0], ts[1], ts[2], ts[3]];
                    self.send_user_control(user_control::PING_RESPONSE, &ts);
                }
                // Stream Begin/EOF/Dry, Set Buffer Length, Stream Is Recorded and
                // Ping Response need no answer.
            }
            _ => return Ok(Some(msg)),
        }
        Ok(None)
    }

    /// Send an Acknowledgement (RTMP 1.0 §5.4.3) if the bytes received since
    /// the last one reached the window the peer announced.
    pub(crate) fn maybe_ack(&mut self) {
        if let Some(window) = self.peer_window
            && self.bytes_received - self.last_ack >= u64::from(window)
        {
            self.last_ack = self.bytes_received;
            // The sequence number wraps at 2^32 (RTMP 1.0 §5.4.3).
            let seq = self.bytes_received as u32;
            self.send_control(msg_type::ACK, &seq.to_be_bytes());
        }
    }

    /// Take what is queued for transmission.
    pub(crate) fn take_output(&mut self) -> Option<bytes::Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Append bytes that were chunked elsewhere (interleaving).
    pub(crate) fn put_raw(&mut self, b: &[u8]) {
        self.out.put_slice(b);
    }
}
