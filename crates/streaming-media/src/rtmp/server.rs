//! The server side of an RTMP publish session (RTMP 1.0 §5.2 handshake, §5.3
//! chunk stream, §5.4 protocol control, §7.2.1 NetConnection commands `connect`
//! and `createStream`, §7.2.2 NetStream commands `publish`, `deleteStream`,
//! `closeStream`), answering exactly what OBS (librtmp) and FFmpeg expect,
//! including the Flash Media Server extras `releaseStream`, `FCPublish` and
//! `FCUnpublish`.
//!
//! Sans-IO: feed received bytes to [`ServerSession::handle_input`], then call
//! [`ServerSession::poll_output`] until it returns `None`, writing every
//! [`ServerOutput::Transmit`] to the socket in order and acting on every
//! [`ServerOutput::Event`]. Do the same after [`ServerSession::accept_publish`]
//! and [`ServerSession::reject_publish`].
//!
//! Limits (see [`super::limits`]): [`ServerConfig::pre_publish`] until a
//! publish is accepted on the connection, [`ServerConfig::publishing`] after;
//! reassembly buffers are charged to [`ServerConfig::reassembly_budget`].
//! Timers (handshake and publish deadlines, idle publish) belong to the
//! driver: the session reports [`ServerSession::handshake_done`] and
//! [`ServerSession::publish_accepted`].

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::chunk::{MAX_CHUNK_SIZE, RawMessage};
use super::conn::Conn;
use super::handshake::ServerHandshake;
use super::message::{self, Command, csid, msg_type, status, user_control};
use super::{ReassemblyBudget, RtmpError, SessionLimits};
use crate::amf0::{self, Amf0Value, DecodeLimits};
use crate::frame::{Frame, FrameKind};

/// Limits and the values the server announces after `connect`. Cheap to
/// construct and clone (the budget is a shared handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Limits until a publish is accepted on the connection (each bound
    /// capped by the `publishing` one). Default [`SessionLimits::PRE_PUBLISH`].
    pub pre_publish: SessionLimits,
    /// Limits once a publish was accepted. Default [`SessionLimits::PUBLISHING`].
    pub publishing: SessionLimits,
    /// Reassembly bytes shared with other sessions; `None`: not counted.
    pub reassembly_budget: Option<ReassemblyBudget>,
    /// Window Acknowledgement Size sent to the client (RTMP 1.0 §5.4.4).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth sent to the client (RTMP 1.0 §5.4.5), limit type dynamic.
    pub peer_bandwidth: u32,
    /// Chunk size the server sends with (RTMP 1.0 §5.4.1). Default 4096.
    pub out_chunk_size: u32,
    /// Largest Set Chunk Size accepted from the client, 1..=2^31-1 (the
    /// default). Buffers are never sized by it.
    pub max_in_chunk_size: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            pre_publish: SessionLimits::PRE_PUBLISH,
            publishing: SessionLimits::PUBLISHING,
            reassembly_budget: None,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            out_chunk_size: 4096,
            max_in_chunk_size: MAX_CHUNK_SIZE,
        }
    }
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerOutput {
    /// Write these bytes to the peer.
    Transmit(Bytes),
    Event(ServerEvent),
}

/// Something the caller must know about.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect` was answered (Window Ack Size, Set Peer Bandwidth, Set Chunk
    /// Size, `_result` NetConnection.Connect.Success).
    Connected { app: String, tc_url: Option<String> },
    /// `publish` on a created stream. The session waits for
    /// [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`];
    /// media on the stream is dropped until it is accepted. `stream_key` is the
    /// publish name as sent, `?query` included.
    PublishRequested {
        stream_id: u32,
        app: String,
        stream_key: String,
        publish_type: String,
    },
    /// Audio, video, or `onMetaData` script data (with `@setDataFrame`
    /// stripped) of an accepted stream. `data` shares the received message.
    Media(Frame),
    /// A stream that had a `PublishRequested` ended: `FCUnpublish`,
    /// `closeStream` or `deleteStream`. Emitted once per publish.
    Unpublished { stream_id: u32 },
}

#[derive(Debug, Clone, PartialEq)]
enum Publish {
    Idle,
    Pending { name: String },
    Live { name: String },
}

#[derive(Debug)]
struct NetStream {
    id: u32,
    publish: Publish,
}

/// Streams one connection may create (encoders create one).
const MAX_STREAMS: usize = 16;

/// The server engine of one RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    handshake: ServerHandshake,
    conn: Conn,
    events: VecDeque<ServerEvent>,
    app: Option<String>,
    streams: Vec<NetStream>,
    next_stream_id: u32,
    failed: bool,
    /// A publish was accepted on this connection: the publishing limits apply.
    published: bool,
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> Self {
        let limits = config.pre_publish.min(config.publishing);
        let mut conn = Conn::new(limits.max_message_len, config.max_in_chunk_size);
        conn.decoder
            .set_limits(limits.max_message_len, limits.max_partial_messages as usize);
        conn.decoder.set_budget(config.reassembly_budget.clone());
        Self {
            config,
            handshake: ServerHandshake::new(),
            conn,
            events: VecDeque::new(),
            app: None,
            streams: Vec::new(),
            next_stream_id: 1,
            failed: false,
            published: false,
        }
    }

    /// Feed received bytes (any amount, split anywhere). On `Err` the caller
    /// closes the connection, after first draining [`Self::poll_output`] (it
    /// may hold a last message to send); later calls return
    /// [`RtmpError::Closed`].
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::Closed);
        }
        let _ = now; // no timers yet: RTMP publish needs none
        let r = self.input(data);
        if r.is_err() {
            self.failed = true;
            // Nothing more is decoded: give the reassembly bytes back now.
            self.conn.decoder.release_all();
        }
        r
    }

    /// The handshake (C0–C2) is complete.
    pub fn handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// A publish was accepted on this connection (it may have ended since).
    pub fn publish_accepted(&self) -> bool {
        self.published
    }

    /// The limits in force now.
    pub fn limits(&self) -> SessionLimits {
        if self.published {
            self.config.publishing
        } else {
            self.config.pre_publish.min(self.config.publishing)
        }
    }

    fn amf_limits(&self) -> DecodeLimits {
        self.limits().amf()
    }

    /// Next output; drain until `None` after every `handle_input`,
    /// `accept_publish` or `reject_publish` call.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        if let Some(b) = self.conn.take_output() {
            return Some(ServerOutput::Transmit(b));
        }
        self.events.pop_front().map(ServerOutput::Event)
    }

    /// Accept a requested publish: queues User Control Stream Begin and
    /// `onStatus` NetStream.Publish.Start. No effect unless the stream is
    /// waiting for a decision.
    pub fn accept_publish(&mut self, stream_id: u32) {
        let Some(s) = self.streams.iter_mut().find(|s| s.id == stream_id) else {
            return;
        };
        let Publish::Pending { name } = &mut s.publish else {
            return;
        };
        s.publish = Publish::Live {
            name: std::mem::take(name),
        };
        if !self.published {
            self.published = true;
            let l = self.config.publishing;
            self.conn
                .decoder
                .set_limits(l.max_message_len, l.max_partial_messages as usize);
        }
        self.conn
            .send_user_control(user_control::STREAM_BEGIN, &stream_id.to_be_bytes());
        self.on_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            "Start publishing.",
        );
    }

    /// Refuse a requested (or stop a live) publish: queues `onStatus` with level
    /// "error" and `code` (e.g. "NetStream.Publish.BadName"). The stream can
    /// publish again; the caller usually closes the connection after draining.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        let Some(s) = self.streams.iter_mut().find(|s| s.id == stream_id) else {
            return;
        };
        if s.publish == Publish::Idle {
            return;
        }
        s.publish = Publish::Idle;
        self.on_status(stream_id, "error", code, description);
    }

    /// All bytes received so far, handshake included.
    pub fn bytes_received(&self) -> u64 {
        self.conn.bytes_received
    }

    fn input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.conn.bytes_received += data.len() as u64;
        let mut pos = 0;
        if !self.handshake.is_done() {
            pos = self.handshake.feed(data, &mut self.conn.out)?;
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

    fn on_message(&mut self, msg: RawMessage) -> Result<(), RtmpError> {
        let Some(msg) = self.conn.handle_control(msg)? else {
            return Ok(());
        };
        match msg.type_id {
            msg_type::AUDIO => self.media(msg.msid, FrameKind::Audio, msg.timestamp, msg.payload),
            msg_type::VIDEO => self.media(msg.msid, FrameKind::Video, msg.timestamp, msg.payload),
            msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => {
                let body = message::amf_body(&msg);
                let data = script_data(&body, self.amf_limits())
                    .map_err(|e| message::amf_error(&msg, e))?;
                if let Some(data) = data {
                    self.media(msg.msid, FrameKind::Script, msg.timestamp, data);
                }
            }
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let cmd = Command::parse(&msg, self.amf_limits())?;
                self.command(msg.msid, cmd);
            }
            // Before a stream is live its media is dropped anyway: no need
            // to split (and hold) an aggregate's sub-messages.
            msg_type::AGGREGATE if self.is_live(msg.msid) => {
                let limits = self.amf_limits();
                for sub in message::split_aggregate(&msg)? {
                    let kind = match sub.type_id {
                        msg_type::AUDIO => FrameKind::Audio,
                        msg_type::VIDEO => FrameKind::Video,
                        msg_type::DATA_AMF0 => {
                            let data = script_data(&sub.payload, limits)
                                .map_err(|e| message::amf_error(&msg, e))?;
                            if let Some(data) = data {
                                self.media(msg.msid, FrameKind::Script, sub.timestamp, data);
                            }
                            continue;
                        }
                        _ => {
                            return Err(message::malformed(
                                &msg,
                                "aggregate: sub-message is not audio, video or data",
                            ));
                        }
                    };
                    self.media(msg.msid, kind, sub.timestamp, sub.payload);
                }
            }
            msg_type::AGGREGATE => {}
            msg_type::SHARED_OBJECT_AMF0 | msg_type::SHARED_OBJECT_AMF3 => {
                return Err(RtmpError::UnsupportedMessageType {
                    csid: msg.csid,
                    type_id: msg.type_id,
                    msid: msg.msid,
                });
            }
            _ => {
                return Err(RtmpError::UnknownMessageType {
                    csid: msg.csid,
                    type_id: msg.type_id,
                    msid: msg.msid,
                });
            }
        }
        Ok(())
    }

    fn is_live(&self, msid: u32) -> bool {
        self.streams
            .iter()
            .any(|s| s.id == msid && matches!(s.publish, Publish::Live { .. }))
    }

    fn media(&mut self, msid: u32, kind: FrameKind, timestamp: u32, data: Bytes) {
        if self.is_live(msid) && !data.is_empty() {
            self.events
                .push_back(ServerEvent::Media(Frame::new(kind, timestamp, data)));
        }
    }

    fn command(&mut self, msid: u32, cmd: Command) {
        let Some(app) = self.app.clone() else {
            if cmd.name == "connect" {
                self.connect(&cmd);
            } else {
                self.error_reply(&cmd, "NetConnection.Call.Failed", "connect first");
            }
            return;
        };
        match cmd.name.as_str() {
            "connect" => {
                self.error_reply(&cmd, "NetConnection.Connect.Rejected", "already connected")
            }
            "releaseStream" => self.result(&cmd, Amf0Value::Undefined),
            "FCPublish" => {
                let info = status("status", "NetStream.Publish.Start", "FCPublish");
                let args = [Amf0Value::Null, info];
                self.conn
                    .send_command(csid::COMMAND, 0, "onFCPublish", 0.0, &args);
                self.result(&cmd, Amf0Value::Undefined);
            }
            "FCUnpublish" => {
                let name = cmd.arg_str(0).unwrap_or_default();
                let ids: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|s| match &s.publish {
                        Publish::Pending { name: n } | Publish::Live { name: n } => n == name,
                        Publish::Idle => false,
                    })
                    .map(|s| s.id)
                    .collect();
                for id in ids {
                    self.unpublish(id);
                }
                // No reply: encoders close the socket right after FCUnpublish
                // and deleteStream, and bytes arriving after their close make
                // the peer's kernel reset the connection.
            }
            "createStream" => {
                if self.streams.len() >= MAX_STREAMS {
                    self.error_reply(&cmd, "NetConnection.Call.Failed", "too many streams");
                    return;
                }
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
                self.streams.push(NetStream {
                    id,
                    publish: Publish::Idle,
                });
                self.result(&cmd, Amf0Value::Number(f64::from(id)));
            }
            "publish" => self.publish(msid, app, &cmd),
            "closeStream" => self.unpublish(msid),
            "deleteStream" => {
                let id = cmd
                    .args
                    .first()
                    .and_then(Amf0Value::as_f64)
                    .map_or(msid, f64_to_id);
                self.unpublish(id);
                self.streams.retain(|s| s.id != id);
            }
            "play" | "play2" => self.on_status(
                msid,
                "error",
                "NetStream.Play.Failed",
                "playback over RTMP is not supported",
            ),
            // Replies and notifications from the client need no answer.
            "_result" | "_error" | "onStatus" | "onBWDone" => {}
            _ => self.error_reply(&cmd, "NetConnection.Call.Failed", "method not supported"),
        }
    }

    fn connect(&mut self, cmd: &Command) {
        let field = |k: &str| {
            cmd.object
                .get(k)
                .and_then(Amf0Value::as_str)
                .map(str::to_owned)
        };
        let app = field("app").unwrap_or_default();
        let tc_url = field("tcUrl");
        let c = &self.config;
        let (was, bw, chunk) = (c.window_ack_size, c.peer_bandwidth, c.out_chunk_size);
        self.conn
            .send_control(msg_type::WINDOW_ACK_SIZE, &was.to_be_bytes());
        let mut spb = bw.to_be_bytes().to_vec();
        spb.push(2); // limit type: dynamic
        self.conn.send_control(msg_type::SET_PEER_BANDWIDTH, &spb);
        self.conn.send_chunk_size(chunk);
        let props = message::object(vec![
            ("fmsVer", "FMS/3,0,1,123".into()),
            ("capabilities", Amf0Value::Number(31.0)),
        ]);
        let info = message::object(vec![
            ("level", "status".into()),
            ("code", "NetConnection.Connect.Success".into()),
            ("description", "Connection succeeded.".into()),
            ("objectEncoding", Amf0Value::Number(0.0)),
        ]);
        self.conn
            .send_command(csid::COMMAND, 0, "_result", cmd.txn, &[props, info]);
        self.app = Some(app.clone());
        self.events
            .push_back(ServerEvent::Connected { app, tc_url });
    }

    fn publish(&mut self, msid: u32, app: String, cmd: &Command) {
        let Some(name) = cmd.arg_str(0).filter(|n| !n.is_empty()) else {
            self.on_status(
                msid,
                "error",
                "NetStream.Publish.BadName",
                "publish without a stream name",
            );
            return;
        };
        let Some(s) = self.streams.iter_mut().find(|s| s.id == msid) else {
            self.on_status(
                msid,
                "error",
                "NetStream.Publish.Failed",
                "publish on a stream that createStream did not create",
            );
            return;
        };
        if s.publish != Publish::Idle {
            self.on_status(
                msid,
                "error",
                "NetStream.Publish.BadName",
                "stream is already publishing",
            );
            return;
        }
        s.publish = Publish::Pending {
            name: name.to_owned(),
        };
        self.events.push_back(ServerEvent::PublishRequested {
            stream_id: msid,
            app,
            stream_key: name.to_owned(),
            publish_type: cmd.arg_str(1).unwrap_or("live").to_owned(),
        });
    }

    fn unpublish(&mut self, stream_id: u32) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.id == stream_id)
            && s.publish != Publish::Idle
        {
            s.publish = Publish::Idle;
            self.events
                .push_back(ServerEvent::Unpublished { stream_id });
        }
    }

    fn on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = status(level, code, description);
        self.conn.send_command(
            csid::DATA,
            stream_id,
            "onStatus",
            0.0,
            &[Amf0Value::Null, info],
        );
    }

    /// `_result` for commands that expect one (transaction id > 0).
    fn result(&mut self, cmd: &Command, value: Amf0Value) {
        if cmd.txn > 0.0 {
            self.conn.send_command(
                csid::COMMAND,
                0,
                "_result",
                cmd.txn,
                &[Amf0Value::Null, value],
            );
        }
    }

    fn error_reply(&mut self, cmd: &Command, code: &str, description: &str) {
        if cmd.txn > 0.0 {
            let info = status("error", code, description);
            self.conn.send_command(
                csid::COMMAND,
                0,
                "_error",
                cmd.txn,
                &[Amf0Value::Null, info],
            );
        }
    }
}

fn f64_to_id(n: f64) -> u32 {
    if n.is_finite() && n >= 0.0 && n <= f64::from(u32::MAX) {
        n as u32
    } else {
        0
    }
}

/// The FLV script tag body of a data message: `@setDataFrame` stripped, or
/// the whole body when it starts with `onMetaData`; `None` for other data
/// messages (`onTextData`, `@clearDataFrame`, `|RtmpSampleAccess`, ...).
fn script_data(body: &Bytes, limits: DecodeLimits) -> Result<Option<Bytes>, amf0::Amf0Error> {
    if body.is_empty() {
        return Ok(None);
    }
    let (first, n) = amf0::decode_one_with(body, limits)?;
    Ok(match first.as_str() {
        Some("@setDataFrame") if n < body.len() => Some(body.slice(n..)),
        Some("onMetaData") => Some(body.clone()),
        _ => None,
    })
}
