//! The client (publisher) side of an RTMP session, symmetric to
//! [`super::ServerSession`]: handshake (RTMP 1.0 §5.2), then `connect`
//! (§7.2.1.1), `releaseStream`, `FCPublish`, `createStream` (§7.2.1.3) and
//! `publish` (§7.2.2.6) on its own, the way FFmpeg and OBS do; afterwards media
//! goes out as audio (type 8, chunk stream 4), video (type 9, chunk stream 6)
//! and `@setDataFrame` data messages (type 18, chunk stream 5).
//!
//! Sans-IO like the server: `handle_input`, then drain `poll_output` until
//! `None`; also after `send_frame`, `set_chunk_size` and `finish`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::RtmpError;
use super::chunk::{MAX_CHUNK_SIZE, MessageHeader, RawMessage};
use super::conn::Conn;
use super::handshake::ClientHandshake;
use super::message::{self, Command, csid, msg_type};
use crate::amf0::{self, Amf0Value};
use crate::frame::{Frame, FrameKind};

/// What to publish where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Application, the first path segment of the RTMP URL (e.g. "live").
    pub app: String,
    /// The URL without the stream key (e.g. "rtmp://host:1935/live").
    pub tc_url: String,
    /// Publish name, `?query` included.
    pub stream_key: String,
    /// Chunk size to send with (Set Chunk Size right after the handshake).
    pub chunk_size: u32,
    /// Send C1 with the Flash Player 9 version field (the digest layout); the
    /// digest itself is not computed (see the handshake module docs).
    pub complex_handshake: bool,
}

impl ClientConfig {
    /// A config for `rtmp://host/app` with key `stream_key`, chunk size 4096.
    pub fn new(tc_url: &str, app: &str, stream_key: &str) -> Self {
        Self {
            app: app.to_owned(),
            tc_url: tc_url.to_owned(),
            stream_key: stream_key.to_owned(),
            chunk_size: 4096,
            complex_handshake: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientOutput {
    /// Write these bytes to the server.
    Transmit(Bytes),
    Event(ClientEvent),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// NetStream.Publish.Start: frames may be sent.
    PublishStarted { stream_id: u32 },
    /// The server refused the publish (`onStatus` with level "error").
    PublishRejected { code: String, description: String },
    /// Any other `onStatus`.
    Status {
        level: String,
        code: String,
        description: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    Publishing { stream_id: u32 },
    Live { stream_id: u32 },
    Rejected,
    Finished,
}

/// Transaction ids of the commands the client sends on its own.
const TXN_CONNECT: f64 = 1.0;
const TXN_RELEASE: f64 = 2.0;
const TXN_FCPUBLISH: f64 = 3.0;
const TXN_CREATE: f64 = 4.0;
const TXN_PUBLISH: f64 = 5.0;
/// Window Acknowledgement Size the client announces (librtmp's default).
const CLIENT_WINDOW: u32 = 2_500_000;
const FLASH_VER: &str = "FMLE/3.0 (compatible; FMSc/1.0)";

/// The publisher engine of one RTMP connection.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: ClientHandshake,
    conn: Conn,
    events: VecDeque<ClientEvent>,
    state: State,
    next_txn: f64,
    interleave: bool,
    /// Per chunk stream, chunks waiting to be interleaved.
    queued: Vec<(u32, VecDeque<Bytes>)>,
    failed: bool,
}

impl ClientSession {
    /// Start a session; C0 and C1 are queued at once.
    pub fn new(config: ClientConfig) -> Self {
        let mut conn = Conn::new(u32::MAX >> 8, MAX_CHUNK_SIZE);
        let handshake = ClientHandshake::start(config.complex_handshake, &mut conn.out);
        Self {
            config,
            handshake,
            conn,
            events: VecDeque::new(),
            state: State::Handshake,
            next_txn: TXN_PUBLISH + 1.0,
            interleave: false,
            queued: Vec::new(),
            failed: false,
        }
    }

    /// Feed bytes received from the server. On `Err` close the connection.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::Closed);
        }
        let _ = now; // no timers yet: RTMP publish needs none
        let r = self.input(data);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Next output; drain until `None`. Emits interleaved chunks still queued.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.flush_interleaved();
        if let Some(b) = self.conn.take_output() {
            return Some(ClientOutput::Transmit(b));
        }
        self.events.pop_front().map(ClientOutput::Event)
    }

    /// Queue one frame: audio, video, or script data (sent as `@setDataFrame`).
    /// Only between [`ClientEvent::PublishStarted`] and [`Self::finish`].
    pub fn send_frame(&mut self, frame: &Frame) -> Result<(), RtmpError> {
        let State::Live { stream_id } = self.state else {
            return Err(RtmpError::NotPublishing);
        };
        let (csid, type_id) = match frame.kind {
            FrameKind::Audio => (csid::AUDIO, msg_type::AUDIO),
            FrameKind::Video => (csid::VIDEO, msg_type::VIDEO),
            FrameKind::Script => (csid::DATA, msg_type::DATA_AMF0),
        };
        let script;
        let body: &[u8] = if frame.kind == FrameKind::Script {
            let mut b = Vec::with_capacity(16 + frame.data.len());
            amf0::encode(&Amf0Value::from("@setDataFrame"), &mut b);
            b.extend_from_slice(&frame.data);
            script = b;
            &script
        } else {
            &frame.data
        };
        if body.len() > 0x00ff_ffff {
            return Err(RtmpError::MessageTooLarge {
                csid,
                type_id,
                length: u32::try_from(body.len()).unwrap_or(u32::MAX),
                max: 0x00ff_ffff,
                offset: 0,
            });
        }
        let h = MessageHeader {
            csid,
            timestamp: frame.timestamp,
            type_id,
            msid: stream_id,
        };
        if !self.interleave {
            self.conn.encoder.write(h, body, &mut self.conn.out, None);
            return Ok(());
        }
        let mut buf = BytesMut::new();
        let mut ends = Vec::new();
        self.conn.encoder.write(h, body, &mut buf, Some(&mut ends));
        let q = match self.queued.iter().position(|(c, _)| *c == csid) {
            Some(i) => &mut self.queued[i].1,
            None => {
                self.queued.push((csid, VecDeque::new()));
                &mut self.queued.last_mut().expect("just pushed").1
            }
        };
        let mut start = 0;
        let mut buf = buf.freeze();
        for end in ends {
            q.push_back(buf.split_to(end - start));
            start = end;
        }
        Ok(())
    }

    /// Send Set Chunk Size now and use `size` (clamped to 1..=2^31-1) for the
    /// following messages. Interleaved chunks still queued go out first.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.flush_interleaved();
        self.conn.send_chunk_size(size);
    }

    /// When on, chunks of messages on different chunk streams are interleaved
    /// on the wire (audio chunk, video chunk, ...), as encoders do. Queued
    /// chunks go out on [`Self::flush_interleaved`] or the next `poll_output`.
    pub fn set_interleave(&mut self, on: bool) {
        if !on {
            self.flush_interleaved();
        }
        self.interleave = on;
    }

    /// Emit queued chunks round-robin across chunk streams.
    pub fn flush_interleaved(&mut self) {
        loop {
            let mut any = false;
            for (_, q) in &mut self.queued {
                if let Some(c) = q.pop_front() {
                    self.conn.put_raw(&c);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
    }

    /// End the publish: `FCUnpublish` and `deleteStream`.
    pub fn finish(&mut self) {
        self.flush_interleaved();
        let stream_id = match self.state {
            State::Publishing { stream_id } | State::Live { stream_id } => stream_id,
            _ => {
                self.state = State::Finished;
                return;
            }
        };
        let key = Amf0Value::from(self.config.stream_key.as_str());
        let txn = self.txn();
        self.conn.send_command(
            csid::COMMAND,
            0,
            "FCUnpublish",
            txn,
            &[Amf0Value::Null, key],
        );
        let txn = self.txn();
        let id = Amf0Value::Number(f64::from(stream_id));
        self.conn.send_command(
            csid::COMMAND,
            0,
            "deleteStream",
            txn,
            &[Amf0Value::Null, id],
        );
        self.state = State::Finished;
    }

    /// Sequence number of the server's last Acknowledgement (RTMP 1.0 §5.4.3).
    pub fn peer_acknowledged(&self) -> Option<u32> {
        self.conn.peer_acked
    }

    fn txn(&mut self) -> f64 {
        let t = self.next_txn;
        self.next_txn += 1.0;
        t
    }

    fn input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.conn.bytes_received += data.len() as u64;
        let mut pos = 0;
        if !self.handshake.is_done() {
            pos = self.handshake.feed(data, &mut self.conn.out)?;
            if !self.handshake.is_done() {
                return Ok(());
            }
            if self.state == State::Handshake {
                self.send_connect();
            }
        }
        while pos < data.len() {
            let (n, msg) = self.conn.decoder.decode(&data[pos..])?;
            pos += n;
            if let Some(msg) = msg {
                self.on_message(msg)?;
            }
        }
        self.conn.maybe_ack();
        Ok(())
    }

    fn send_connect(&mut self) {
        self.conn.send_chunk_size(self.config.chunk_size);
        let c = &self.config;
        let obj = message::object(vec![
            ("app", c.app.as_str().into()),
            ("type", "nonprivate".into()),
            ("flashVer", FLASH_VER.into()),
            ("tcUrl", c.tc_url.as_str().into()),
        ]);
        self.conn
            .send_command(csid::COMMAND, 0, "connect", TXN_CONNECT, &[obj]);
        self.state = State::Connecting;
    }

    fn on_message(&mut self, msg: RawMessage) -> Result<(), RtmpError> {
        let Some(msg) = self.conn.handle_control(msg)? else {
            return Ok(());
        };
        match msg.type_id {
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let cmd = Command::parse(&msg, crate::amf0::DecodeLimits::default())?;
                self.command(&msg, cmd)
            }
            // A publisher has no use for media or data from the server.
            msg_type::AUDIO
            | msg_type::VIDEO
            | msg_type::DATA_AMF0
            | msg_type::DATA_AMF3
            | msg_type::AGGREGATE
            | msg_type::SHARED_OBJECT_AMF0
            | msg_type::SHARED_OBJECT_AMF3 => Ok(()),
            _ => Err(RtmpError::UnknownMessageType {
                csid: msg.csid,
                type_id: msg.type_id,
                msid: msg.msid,
            }),
        }
    }

    fn command(&mut self, msg: &RawMessage, cmd: Command) -> Result<(), RtmpError> {
        match cmd.name.as_str() {
            "_result" if cmd.txn == TXN_CONNECT && self.state == State::Connecting => {
                self.events.push_back(ClientEvent::Connected);
                self.conn
                    .send_control(msg_type::WINDOW_ACK_SIZE, &CLIENT_WINDOW.to_be_bytes());
                let key = Amf0Value::from(self.config.stream_key.as_str());
                self.conn.send_command(
                    csid::COMMAND,
                    0,
                    "releaseStream",
                    TXN_RELEASE,
                    &[Amf0Value::Null, key.clone()],
                );
                self.conn.send_command(
                    csid::COMMAND,
                    0,
                    "FCPublish",
                    TXN_FCPUBLISH,
                    &[Amf0Value::Null, key],
                );
                self.conn.send_command(
                    csid::COMMAND,
                    0,
                    "createStream",
                    TXN_CREATE,
                    &[Amf0Value::Null],
                );
                self.state = State::CreatingStream;
            }
            "_result" if cmd.txn == TXN_CREATE && self.state == State::CreatingStream => {
                let id = cmd.args.first().and_then(Amf0Value::as_f64);
                let stream_id = match id {
                    Some(n) if n.is_finite() && n >= 1.0 && n <= f64::from(u32::MAX) => n as u32,
                    _ => {
                        return Err(message::malformed(
                            msg,
                            "createStream result without a stream id",
                        ));
                    }
                };
                let args = [
                    Amf0Value::Null,
                    self.config.stream_key.as_str().into(),
                    "live".into(),
                ];
                self.conn.send_command(
                    csid::STREAM_COMMAND,
                    stream_id,
                    "publish",
                    TXN_PUBLISH,
                    &args,
                );
                self.state = State::Publishing { stream_id };
            }
            "_error" if [TXN_CONNECT, TXN_CREATE, TXN_PUBLISH].contains(&cmd.txn) => {
                let (_, code, description) = message::status_fields(cmd.info());
                let command = match cmd.txn {
                    TXN_CONNECT => "connect",
                    TXN_CREATE => "createStream",
                    _ => "publish",
                };
                return Err(RtmpError::CommandFailed {
                    command: command.to_owned(),
                    code,
                    description,
                });
            }
            "onStatus" => {
                let (level, code, description) = message::status_fields(cmd.info());
                match self.state {
                    State::Publishing { stream_id } if code == "NetStream.Publish.Start" => {
                        self.state = State::Live { stream_id };
                        self.events
                            .push_back(ClientEvent::PublishStarted { stream_id });
                    }
                    State::Publishing { .. } | State::Live { .. } if level == "error" => {
                        self.state = State::Rejected;
                        self.events
                            .push_back(ClientEvent::PublishRejected { code, description });
                    }
                    _ => self.events.push_back(ClientEvent::Status {
                        level,
                        code,
                        description,
                    }),
                }
            }
            // Other replies (releaseStream, FCPublish, FCUnpublish) and notices.
            "_result" | "_error" | "onBWDone" | "onFCPublish" | "onFCUnpublish" => {}
            _ if cmd.txn > 0.0 => {
                let info =
                    message::status("error", "NetConnection.Call.Failed", "method not supported");
                self.conn.send_command(
                    csid::COMMAND,
                    0,
                    "_error",
                    cmd.txn,
                    &[Amf0Value::Null, info],
                );
            }
            _ => {}
        }
        Ok(())
    }
}
