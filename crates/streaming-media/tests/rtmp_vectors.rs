//! Byte-exact vectors: what FFmpeg sends (hand-built from its rtmpproto.c
//! behaviour: commands on chunk stream 3, `publish` on 8, audio on 4, video on
//! 6, chunk size 128) and what the server must answer. Replies are read back
//! with a small chunk parser written here, independent of the crate's decoder.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use streaming_media::amf0::{Amf0Value, decode_all, encode_all};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::rtmp::{
    ClientConfig, ClientOutput, ClientSession, HANDSHAKE_SIZE, ServerConfig, ServerEvent,
    ServerOutput, ServerSession,
};

/// FFmpeg's `connect` for rtmp://127.0.0.1:1935/live, 134 bytes of AMF0 at
/// chunk size 128: a type 0 chunk on csid 3 and a type 3 continuation (0xc3).
fn ffmpeg_connect() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"\x02\x00\x07connect");
    body.extend_from_slice(b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00");
    body.extend_from_slice(b"\x03");
    body.extend_from_slice(b"\x00\x03app\x02\x00\x04live");
    body.extend_from_slice(b"\x00\x04type\x02\x00\x0anonprivate");
    body.extend_from_slice(b"\x00\x08flashVer\x02\x00\x1fFMLE/3.0 (compatible; FMSc/1.0)");
    body.extend_from_slice(b"\x00\x05tcUrl\x02\x00\x1artmp://127.0.0.1:1935/live");
    body.extend_from_slice(b"\x00\x00\x09");
    assert_eq!(body.len(), 134);
    let mut wire = vec![0x03, 0, 0, 0, 0, 0, 134, 0x14, 0, 0, 0, 0];
    wire.extend_from_slice(&body[..128]);
    wire.push(0xc3);
    wire.extend_from_slice(&body[128..]);
    wire
}

/// C0, a plain C1 (time 0, zero, pattern), and a C2 of anything.
fn c0c1() -> Vec<u8> {
    let mut v = vec![3, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend((0..HANDSHAKE_SIZE - 8).map(|i| i as u8));
    v
}

/// One message as chunks: type 0 header, type 3 continuations (csid < 64,
/// timestamps below 2^24).
fn chunks(csid: u8, ts: u32, type_id: u8, msid: u32, body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut v = vec![csid];
    v.extend_from_slice(&ts.to_be_bytes()[1..]);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&msid.to_le_bytes());
    for (i, c) in body.chunks(chunk_size).enumerate() {
        if i > 0 {
            v.push(0xc0 | csid);
        }
        v.extend_from_slice(c);
    }
    v
}

fn command(csid: u8, msid: u32, values: &[Amf0Value]) -> Vec<u8> {
    chunks(csid, 0, 0x14, msid, &encode_all(values), 128)
}

#[derive(Debug, Clone, PartialEq)]
struct Msg {
    csid: u32,
    ts: u32,
    type_id: u8,
    msid: u32,
    body: Vec<u8>,
}

impl Msg {
    fn amf(&self) -> Vec<Amf0Value> {
        assert_eq!(self.type_id, 0x14, "{self:?}");
        decode_all(&self.body).unwrap()
    }
}

/// A minimal chunk parser: 1-byte chunk stream ids, no extended timestamps,
/// whole chunks per call, follows the peer's Set Chunk Size.
#[derive(Default)]
struct Parser {
    chunk_size: Option<usize>,
    prev: HashMap<u32, (u32, usize, u8, u32, u32)>, // ts, len, type, msid, delta
    partial: HashMap<u32, Vec<u8>>,
}

impl Parser {
    fn parse(&mut self, mut d: &[u8]) -> Vec<Msg> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let fmt = d[0] >> 6;
            let csid = u32::from(d[0] & 0x3f);
            assert!(csid >= 2, "test parser: 1-byte csid only");
            let be = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
            let (mut ts, mut len, mut ty, mut msid, mut delta) =
                self.prev.get(&csid).copied().unwrap_or_default();
            let in_progress = self.partial.contains_key(&csid);
            let hlen = [12, 8, 4, 1][fmt as usize];
            let h = &d[..hlen];
            if fmt <= 2 {
                assert_ne!(
                    be(&h[1..]),
                    0xff_ffff,
                    "test parser: no extended timestamps"
                );
            }
            match fmt {
                0 => {
                    ts = be(&h[1..]);
                    delta = ts;
                    len = be(&h[4..]) as usize;
                    ty = h[7];
                    msid = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
                }
                1 | 2 => {
                    delta = be(&h[1..]);
                    ts += delta;
                    if fmt == 1 {
                        len = be(&h[4..]) as usize;
                        ty = h[7];
                    }
                }
                _ if !in_progress => ts += delta,
                _ => {}
            }
            self.prev.insert(csid, (ts, len, ty, msid, delta));
            d = &d[hlen..];
            let buf = self.partial.entry(csid).or_default();
            let n = (len - buf.len()).min(self.chunk_size.unwrap_or(128));
            buf.extend_from_slice(&d[..n]);
            d = &d[n..];
            if buf.len() == len {
                let body = self.partial.remove(&csid).unwrap();
                if ty == 1 {
                    self.chunk_size =
                        Some(u32::from_be_bytes(body[..4].try_into().unwrap()) as usize);
                }
                out.push(Msg {
                    csid,
                    ts,
                    type_id: ty,
                    msid,
                    body,
                });
            }
        }
        out
    }
}

struct Server {
    s: ServerSession,
    parser: Parser,
    wire: Vec<u8>,
    events: Vec<ServerEvent>,
}

impl Server {
    fn new() -> Self {
        Self {
            s: ServerSession::new(ServerConfig::default()),
            parser: Parser::default(),
            wire: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Feed bytes; returns the messages the server answered with.
    fn feed(&mut self, data: &[u8]) -> Vec<Msg> {
        self.s.handle_input(Instant::now(), data).unwrap();
        self.drain()
    }

    fn drain(&mut self) -> Vec<Msg> {
        let mut wire = Vec::new();
        while let Some(o) = self.s.poll_output() {
            match o {
                ServerOutput::Transmit(b) => wire.extend_from_slice(&b),
                ServerOutput::Event(e) => self.events.push(e),
            }
        }
        self.wire = wire.clone();
        self.parser.parse(&wire)
    }

    /// Handshake and FFmpeg's connect; returns the replies to connect.
    fn connected() -> (Self, Vec<Msg>) {
        let mut s = Self::new();
        let c1 = c0c1();
        assert!(s.feed(&c1[..100]).is_empty());
        s.s.handle_input(Instant::now(), &c1[100..]).unwrap();
        let mut hs = Vec::new();
        while let Some(ServerOutput::Transmit(b)) = s.s.poll_output() {
            hs.extend_from_slice(&b);
        }
        assert_eq!(hs.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(hs[0], 3);
        assert_eq!(&hs[1 + HANDSHAKE_SIZE..], &c1[1..], "S2 echoes C1");
        let mut input = vec![0x55; HANDSHAKE_SIZE]; // C2: content not checked
        input.extend_from_slice(&ffmpeg_connect());
        let replies = s.feed(&input);
        (s, replies)
    }
}

fn obj(props: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(
        props
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect(),
    )
}

fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    obj(&[
        ("level", level.into()),
        ("code", code.into()),
        ("description", description.into()),
    ])
}

#[test]
fn client_connect_matches_ffmpeg_bytes() {
    let mut c = ClientSession::new(ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1:1935/live".into(),
        stream_key: "key".into(),
        chunk_size: 128,
        complex_handshake: false,
    });
    let Some(ClientOutput::Transmit(c0c1)) = c.poll_output() else {
        panic!("C0+C1 first")
    };
    assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
    assert_eq!(&c0c1[..9], &[3, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut s012 = vec![3];
    s012.extend(std::iter::repeat_n(0xab, HANDSHAKE_SIZE));
    s012.extend_from_slice(&c0c1[1..]);
    c.handle_input(Instant::now(), &s012).unwrap();
    let Some(ClientOutput::Transmit(out)) = c.poll_output() else {
        panic!("C2 + connect")
    };
    assert_eq!(
        &out[..HANDSHAKE_SIZE],
        &s012[1..1 + HANDSHAKE_SIZE],
        "C2 echoes S1"
    );
    let mut want = vec![0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0, 0, 0, 128];
    want.extend_from_slice(&ffmpeg_connect());
    assert_eq!(&out[HANDSHAKE_SIZE..], &want[..]);
}

#[test]
fn server_answers_ffmpeg_connect() {
    let (s, replies) = Server::connected();
    assert_eq!(
        s.events,
        [ServerEvent::Connected {
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1:1935/live".into())
        }]
    );
    // Window Ack Size, Set Peer Bandwidth (dynamic), Set Chunk Size 4096,
    // byte for byte: later headers on chunk stream 2 are type 1.
    let control: &[u8] = &[
        0x02, 0, 0, 0, 0, 0, 4, 0x05, 0, 0, 0, 0, 0x00, 0x26, 0x25, 0xa0, //
        0x42, 0, 0, 0, 0, 0, 5, 0x06, 0x00, 0x26, 0x25, 0xa0, 0x02, //
        0x42, 0, 0, 0, 0, 0, 4, 0x01, 0x00, 0x00, 0x10, 0x00,
    ];
    assert_eq!(&s.wire[..control.len()], control);
    assert_eq!(replies.len(), 4);
    assert_eq!((replies[3].csid, replies[3].msid), (3, 0));
    assert_eq!(
        replies[3].amf(),
        [
            "_result".into(),
            Amf0Value::Number(1.0),
            obj(&[
                ("fmsVer", "FMS/3,0,1,123".into()),
                ("capabilities", Amf0Value::Number(31.0))
            ]),
            obj(&[
                ("level", "status".into()),
                ("code", "NetConnection.Connect.Success".into()),
                ("description", "Connection succeeded.".into()),
                ("objectEncoding", Amf0Value::Number(0.0)),
            ]),
        ]
    );
}

/// The whole FFmpeg publish conversation after connect.
#[test]
fn ffmpeg_publish_conversation() {
    let (mut s, _) = Server::connected();
    let null = Amf0Value::Null;
    let r = s.feed(&command(
        3,
        0,
        &[
            "releaseStream".into(),
            2.0.into(),
            null.clone(),
            "key".into(),
        ],
    ));
    assert_eq!(
        r[0].amf(),
        [
            "_result".into(),
            2.0.into(),
            null.clone(),
            Amf0Value::Undefined
        ]
    );
    let r = s.feed(&command(
        3,
        0,
        &["FCPublish".into(), 3.0.into(), null.clone(), "key".into()],
    ));
    assert_eq!(r[0].amf()[0], "onFCPublish".into());
    assert_eq!(
        r[1].amf(),
        [
            "_result".into(),
            3.0.into(),
            null.clone(),
            Amf0Value::Undefined
        ]
    );
    let r = s.feed(&command(
        3,
        0,
        &["createStream".into(), 4.0.into(), null.clone()],
    ));
    assert_eq!(
        r[0].amf(),
        ["_result".into(), 4.0.into(), null.clone(), 1.0.into()]
    );

    let publish = [
        "publish".into(),
        5.0.into(),
        null.clone(),
        "key?t=1".into(),
        "live".into(),
    ];
    assert!(
        s.feed(&command(8, 1, &publish)).is_empty(),
        "waits for accept"
    );
    assert_eq!(
        s.events[1],
        ServerEvent::PublishRequested {
            stream_id: 1,
            app: "live".into(),
            stream_key: "key?t=1".into(),
            publish_type: "live".into()
        }
    );
    s.s.accept_publish(1);
    let r = s.drain();
    assert_eq!(
        (r[0].type_id, &r[0].body[..]),
        (4, &[0, 0, 0, 0, 0, 1][..]),
        "Stream Begin 1"
    );
    assert_eq!((r[1].csid, r[1].msid), (5, 1));
    assert_eq!(
        r[1].amf(),
        [
            "onStatus".into(),
            0.0.into(),
            null.clone(),
            status("status", "NetStream.Publish.Start", "Start publishing.")
        ]
    );

    // Metadata as FFmpeg sends it: @setDataFrame, onMetaData, ECMA array.
    let meta = Amf0Value::EcmaArray(vec![("duration".into(), 0.0.into())]);
    let script = encode_all(&["onMetaData".into(), meta]);
    let mut data = encode_all(&["@setDataFrame".into()]);
    data.extend_from_slice(&script);
    s.feed(&chunks(8, 0, 0x12, 1, &data, 128));
    // Audio sequence header on csid 4, a 300-byte key frame on csid 6.
    s.feed(&chunks(4, 0, 8, 1, &[0xaf, 0, 0x12, 0x10], 128));
    let key: Vec<u8> = [0x17, 1, 0, 0, 0]
        .into_iter()
        .chain((0..295).map(|i| i as u8))
        .collect();
    s.feed(&chunks(6, 40, 9, 1, &key, 128));
    // Media on a stream that is not publishing is dropped.
    s.feed(&chunks(4, 0, 8, 7, &[0xaf, 1], 128));
    let media: Vec<_> = s.events[2..].to_vec();
    assert_eq!(
        media,
        [
            ServerEvent::Media(Frame::new(FrameKind::Script, 0, Bytes::from(script))),
            ServerEvent::Media(Frame::new(
                FrameKind::Audio,
                0,
                Bytes::from_static(&[0xaf, 0, 0x12, 0x10])
            )),
            ServerEvent::Media(Frame::new(FrameKind::Video, 40, Bytes::from(key))),
        ]
    );

    // Ping request → ping response with the same timestamp.
    let r = s.feed(&chunks(2, 0, 4, 0, &[0, 6, 0, 1, 2, 3], 128));
    assert_eq!(
        (r[0].csid, r[0].type_id, &r[0].body[..]),
        (2, 4, &[0, 7, 0, 1, 2, 3][..])
    );
    // Unsupported calls get _error (when they carry a transaction id), play an onStatus error.
    for (name, txn) in [
        ("getStreamLength", 6.0),
        ("_checkbw", 7.0),
        ("noSuchCommand", 8.0),
    ] {
        let r = s.feed(&command(
            3,
            0,
            &[name.into(), txn.into(), null.clone(), "key".into()],
        ));
        let v = r[0].amf();
        assert_eq!((&v[0], &v[1]), (&"_error".into(), &txn.into()), "{name}");
    }
    assert!(
        s.feed(&command(3, 0, &["noSuchCommand".into(), 0.0.into()]))
            .is_empty()
    );
    let r = s.feed(&command(
        8,
        1,
        &["play".into(), 0.0.into(), null.clone(), "key".into()],
    ));
    assert_eq!(
        r[0].amf()[3],
        status(
            "error",
            "NetStream.Play.Failed",
            "playback over RTMP is not supported"
        )
    );

    // FCUnpublish ends the publish; deleteStream does not report it again.
    // Neither is answered: the encoder is closing the connection.
    let n = s.events.len();
    let r = s.feed(&command(
        3,
        0,
        &[
            "FCUnpublish".into(),
            9.0.into(),
            null.clone(),
            "key?t=1".into(),
        ],
    ));
    assert!(r.is_empty());
    let r = s.feed(&command(
        3,
        0,
        &["deleteStream".into(), 10.0.into(), null.clone(), 1.0.into()],
    ));
    assert!(r.is_empty());
    assert_eq!(s.events[n..], [ServerEvent::Unpublished { stream_id: 1 }]);
}

#[test]
fn aggregate_message_becomes_frames() {
    let (mut s, _) = Server::connected();
    let null = Amf0Value::Null;
    s.feed(&command(
        3,
        0,
        &["createStream".into(), 2.0.into(), null.clone()],
    ));
    s.feed(&command(
        8,
        1,
        &["publish".into(), 3.0.into(), null, "k".into()],
    ));
    s.s.accept_publish(1);
    s.drain();
    let mut agg = Vec::new();
    for (ty, ts, body) in [(9u8, 500u32, &[0x17u8, 1, 9][..]), (8, 520, &[0xaf, 1, 7])] {
        agg.push(ty);
        agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        agg.extend_from_slice(&ts.to_be_bytes()[1..]);
        agg.extend_from_slice(&[0, 0, 0, 0]);
        agg.extend_from_slice(body);
        agg.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }
    s.feed(&chunks(6, 1000, 22, 1, &agg, 128));
    assert_eq!(
        s.events[2..],
        [
            ServerEvent::Media(Frame::new(
                FrameKind::Video,
                1000,
                Bytes::from_static(&[0x17, 1, 9])
            )),
            ServerEvent::Media(Frame::new(
                FrameKind::Audio,
                1020,
                Bytes::from_static(&[0xaf, 1, 7])
            )),
        ]
    );
}

#[test]
fn acknowledgement_follows_the_peer_window() {
    let (mut s, _) = Server::connected();
    // The client asks for an Acknowledgement every 1000 bytes (librtmp sends
    // 2 500 000). More than that arrived already (3073 handshake + 147 connect
    // + 16), so the answer is immediate, with the byte count so far.
    let r = s.feed(&chunks(2, 0, 5, 0, &1000u32.to_be_bytes(), 128));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].csid, r[0].type_id), (2, 3));
    assert_eq!(s.s.bytes_received(), 3073 + 147 + 16);
    assert_eq!(r[0].body, (3073u32 + 147 + 16).to_be_bytes());
    // Nothing more until another 1000 bytes arrived.
    let filler = command(
        3,
        0,
        &["noSuchCommand".into(), 0.0.into(), "x".repeat(400).into()],
    );
    assert!(s.feed(&filler).is_empty());
    assert!(s.feed(&filler).is_empty());
    let r = s.feed(&filler);
    assert_eq!(r[0].type_id, 3);
}

#[test]
fn abort_message_discards_a_partial_message() {
    let (mut s, _) = Server::connected();
    s.feed(&command(
        3,
        0,
        &["createStream".into(), 2.0.into(), Amf0Value::Null],
    ));
    s.feed(&command(
        8,
        1,
        &["publish".into(), 3.0.into(), Amf0Value::Null, "k".into()],
    ));
    s.s.accept_publish(1);
    s.drain();
    let big = chunks(6, 0, 9, 1, &[0x27; 300], 128);
    s.feed(&big[..12 + 128]); // first chunk only
    s.feed(&chunks(2, 0, 2, 0, &6u32.to_be_bytes(), 128)); // Abort csid 6
    s.feed(&chunks(6, 10, 9, 1, &[0x17, 1], 128));
    assert_eq!(
        s.events[2..],
        [ServerEvent::Media(Frame::new(
            FrameKind::Video,
            10,
            Bytes::from_static(&[0x17, 1])
        ))]
    );
}
