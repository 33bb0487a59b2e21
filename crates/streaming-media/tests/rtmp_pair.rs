//! Client engine ↔ server engine in memory on a simulated clock (a deterministic pair harness), with impairments that deliver bytes one at
//! a time or split at every possible point.

use std::time::{Duration, Instant};

use bytes::Bytes;
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::rtmp::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, RtmpError, ServerConfig, ServerEvent,
    ServerOutput, ServerSession,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Every transmitted buffer arrives in one piece.
    Whole,
    /// Every byte arrives on its own.
    ByteByByte,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Policy {
    Accept,
    Reject(&'static str, &'static str),
}

struct Pair {
    client: ClientSession,
    server: ServerSession,
    now: Instant,
    delivery: Delivery,
    policy: Policy,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    /// Everything each side transmitted, in order.
    c2s: Vec<u8>,
    s2c: Vec<u8>,
}

fn config() -> ClientConfig {
    ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1:1935/live".into(),
        stream_key: "key?token=abc".into(),
        chunk_size: 4096,
        complex_handshake: false,
    }
}

impl Pair {
    fn new(config: ClientConfig, delivery: Delivery, policy: Policy) -> Self {
        Self {
            client: ClientSession::new(config),
            server: ServerSession::new(ServerConfig::default()),
            now: Instant::now(),
            delivery,
            policy,
            server_events: Vec::new(),
            client_events: Vec::new(),
            c2s: Vec::new(),
            s2c: Vec::new(),
        }
    }

    /// A pair that completed handshake, connect and publish.
    fn publishing(delivery: Delivery) -> Self {
        let mut p = Self::new(config(), delivery, Policy::Accept);
        p.drive();
        assert_eq!(
            p.client_events,
            [
                ClientEvent::Connected,
                ClientEvent::PublishStarted { stream_id: 1 }
            ]
        );
        p
    }

    fn deliver(delivery: Delivery, now: Instant, data: &[u8], mut f: impl FnMut(Instant, &[u8])) {
        match delivery {
            Delivery::Whole => f(now, data),
            Delivery::ByteByByte => data.iter().for_each(|b| f(now, std::slice::from_ref(b))),
        }
    }

    /// Exchange bytes until neither side has anything to say.
    fn drive(&mut self) {
        loop {
            let mut progress = false;
            while let Some(out) = self.client.poll_output() {
                progress = true;
                match out {
                    ClientOutput::Transmit(b) => {
                        self.c2s.extend_from_slice(&b);
                        let server = &mut self.server;
                        Self::deliver(self.delivery, self.now, &b, |now, d| {
                            server.handle_input(now, d).unwrap()
                        });
                    }
                    ClientOutput::Event(e) => self.client_events.push(e),
                }
            }
            while let Some(out) = self.server.poll_output() {
                progress = true;
                match out {
                    ServerOutput::Transmit(b) => {
                        self.s2c.extend_from_slice(&b);
                        let client = &mut self.client;
                        Self::deliver(self.delivery, self.now, &b, |now, d| {
                            client.handle_input(now, d).unwrap()
                        });
                    }
                    ServerOutput::Event(e) => {
                        if let ServerEvent::PublishRequested { stream_id, .. } = e {
                            match self.policy {
                                Policy::Accept => self.server.accept_publish(stream_id),
                                Policy::Reject(code, desc) => {
                                    self.server.reject_publish(stream_id, code, desc)
                                }
                            }
                        }
                        self.server_events.push(e);
                    }
                }
            }
            self.now += Duration::from_millis(1);
            if !progress {
                break;
            }
        }
    }

    fn send(&mut self, frames: &[Frame]) {
        for f in frames {
            self.client.send_frame(f).unwrap();
        }
        self.drive();
    }

    fn media(&self) -> Vec<Frame> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Media(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }
}

fn payload(first: &[u8], len: usize, seed: u32) -> Bytes {
    let mut v = first.to_vec();
    v.extend((0..len.saturating_sub(first.len())).map(|i| (i as u32 * 31 + seed) as u8));
    Bytes::from(v)
}

fn video(ts: u32, len: usize, key: bool) -> Frame {
    let head = if key {
        [0x17, 1, 0, 0, 0]
    } else {
        [0x27, 1, 0, 0, 0]
    };
    Frame::new(FrameKind::Video, ts, payload(&head, len, ts))
}

fn audio(ts: u32, len: usize) -> Frame {
    Frame::new(FrameKind::Audio, ts, payload(&[0xaf, 1], len, ts ^ 0x55))
}

/// `onMetaData` with an ECMA array, as an FLV script tag body.
fn metadata(ts: u32) -> Frame {
    use streaming_media::amf0::{Amf0Value, encode_all};
    let meta = Amf0Value::EcmaArray(vec![
        ("width".into(), Amf0Value::Number(1920.0)),
        ("height".into(), Amf0Value::Number(1080.0)),
        ("encoder".into(), "obs-output module".into()),
    ]);
    Frame::new(
        FrameKind::Script,
        ts,
        Bytes::from(encode_all(&["onMetaData".into(), meta])),
    )
}

/// A short, realistic start of a stream: metadata, sequence headers, frames.
fn stream_start() -> Vec<Frame> {
    vec![
        metadata(0),
        Frame::new(
            FrameKind::Video,
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
        ),
        Frame::new(
            FrameKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        ),
        video(0, 9000, true),
        audio(0, 300),
        audio(21, 300),
        video(33, 700, false),
        audio(42, 300),
        video(66, 128, false),
        video(100, 129, false),
    ]
}

#[test]
fn publish_flow_every_delivery() {
    for delivery in [Delivery::Whole, Delivery::ByteByByte] {
        for complex in [false, true] {
            let mut p = Pair::new(
                ClientConfig {
                    complex_handshake: complex,
                    ..config()
                },
                delivery,
                Policy::Accept,
            );
            p.drive();
            assert_eq!(
                p.server_events,
                [
                    ServerEvent::Connected {
                        app: "live".into(),
                        tc_url: Some("rtmp://127.0.0.1:1935/live".into())
                    },
                    ServerEvent::PublishRequested {
                        stream_id: 1,
                        app: "live".into(),
                        stream_key: "key?token=abc".into(),
                        publish_type: "live".into()
                    }
                ]
            );
            let frames = stream_start();
            p.send(&frames);
            assert_eq!(p.media(), frames, "{delivery:?} complex={complex}");
            p.client.finish();
            p.drive();
            assert_eq!(
                p.server_events.last(),
                Some(&ServerEvent::Unpublished { stream_id: 1 })
            );
            let unpublished = p
                .server_events
                .iter()
                .filter(|e| matches!(e, ServerEvent::Unpublished { .. }))
                .count();
            assert_eq!(unpublished, 1, "FCUnpublish + deleteStream report once");
            assert_eq!(p.server.bytes_received(), p.c2s.len() as u64);
            assert_eq!(
                p.client.send_frame(&audio(200, 10)),
                Err(RtmpError::NotPublishing)
            );
        }
    }
}

/// Server events when `pre` (up to publish) is fed in two pieces split at
/// `split_pre`, the publish accepted, then `media` split at `split_media`.
fn replay_server(
    pre: &[u8],
    split_pre: usize,
    media: &[u8],
    split_media: usize,
) -> Vec<ServerEvent> {
    let mut server = ServerSession::new(ServerConfig::default());
    let now = Instant::now();
    let mut events = Vec::new();
    let pieces = [
        &pre[..split_pre],
        &pre[split_pre..],
        &media[..split_media],
        &media[split_media..],
    ];
    for piece in pieces {
        server.handle_input(now, piece).unwrap();
        while let Some(out) = server.poll_output() {
            if let ServerOutput::Event(e) = out {
                if let ServerEvent::PublishRequested { stream_id, .. } = e {
                    server.accept_publish(stream_id);
                }
                events.push(e);
            }
        }
    }
    events
}

#[test]
fn every_split_point() {
    let mut p = Pair::new(
        ClientConfig {
            chunk_size: 128,
            ..config()
        },
        Delivery::Whole,
        Policy::Accept,
    );
    p.drive();
    let pre = p.c2s.clone();
    let s2c = p.s2c.clone();
    let client_events = p.client_events.clone();
    p.send(&[
        metadata(0),
        video(0, 300, true),
        audio(10, 130),
        video(33, 300, false),
    ]);
    p.client.finish();
    p.drive();
    let media = p.c2s[pre.len()..].to_vec();
    let want = p.server_events.clone();
    assert_eq!(want.len(), 2 + 4 + 1);

    for k in 0..=pre.len() {
        assert_eq!(replay_server(&pre, k, &media, 0), want, "pre split at {k}");
    }
    for k in 0..=media.len() {
        assert_eq!(
            replay_server(&pre, pre.len(), &media, k),
            want,
            "media split at {k}"
        );
    }
    // The client side: what the server said, split at every point.
    for k in 0..=s2c.len() {
        let mut client = ClientSession::new(config());
        let now = Instant::now();
        let mut events = Vec::new();
        for piece in [&s2c[..k], &s2c[k..]] {
            client.handle_input(now, piece).unwrap();
            while let Some(out) = client.poll_output() {
                if let ClientOutput::Event(e) = out {
                    events.push(e);
                }
            }
        }
        assert_eq!(events, client_events, "s2c split at {k}");
    }
}

#[test]
fn mid_stream_chunk_size_change() {
    for delivery in [Delivery::Whole, Delivery::ByteByByte] {
        let mut p = Pair::publishing(delivery);
        let mut sent = Vec::new();
        for (i, size) in [4096, 128, 1, 0x7fff_ffff, 60_000, 4096]
            .into_iter()
            .enumerate()
        {
            p.client.set_chunk_size(size);
            let ts = 1000 * i as u32;
            let frames = [
                video(ts, 5000, true),
                audio(ts + 5, 200),
                video(ts + 33, 129, false),
            ];
            p.send(&frames);
            sent.extend(frames);
        }
        assert_eq!(p.media(), sent, "{delivery:?}");
    }
}

#[test]
fn extended_timestamps_round_trip() {
    for delivery in [Delivery::Whole, Delivery::ByteByByte] {
        let mut p = Pair::publishing(delivery);
        p.client.set_chunk_size(128);
        let mut frames = Vec::new();
        // Video crossing 0xFFFFFF with small deltas, multi-chunk messages.
        for ts in (0xff_ff00..0x100_0100).step_by(33) {
            frames.push(video(ts, 300, false));
        }
        // First audio after the crossing: type 0 with an extended timestamp.
        frames.push(audio(0x100_0010, 300));
        frames.push(audio(0x100_0020, 300));
        // Deltas of 2^24 with equal sizes: type 2 then type 3 new messages,
        // all with extended timestamps on every chunk.
        for i in 2..6u32 {
            frames.push(video(i << 24, 300, false));
        }
        // Time going backwards forces a type 0 header.
        frames.push(audio(5, 300));
        frames.push(metadata(0xffff_fff0));
        p.send(&frames);
        assert_eq!(p.media(), frames, "{delivery:?}");
        // Video (csid 6) type 3 chunks with the 2^24 delta in the extended field.
        let wire = &p.c2s;
        assert!(
            wire.windows(5).any(|w| w == [0xc6, 0x01, 0, 0, 0]),
            "type 3 chunk with extended timestamp"
        );
    }
}

#[test]
fn interleaved_audio_and_video() {
    let mut p = Pair::publishing(Delivery::Whole);
    p.client.set_chunk_size(128);
    p.client.set_interleave(true);
    let frames = [
        video(0, 3000, true),
        audio(0, 300),
        audio(21, 300),
        video(33, 500, false),
    ];
    for f in &frames {
        p.client.send_frame(f).unwrap();
    }
    p.client.flush_interleaved();
    p.drive();
    let got = p.media();
    // Audio completes first: its chunks were interleaved with the key frame's.
    assert_eq!(got[0], frames[1]);
    assert_eq!(got[1], frames[2]);
    let mut sorted = got.clone();
    sorted.sort_by_key(|f| (f.timestamp, f.kind == FrameKind::Video));
    let mut want = frames.to_vec();
    want.sort_by_key(|f| (f.timestamp, f.kind == FrameKind::Video));
    assert_eq!(sorted, want);

    // Interleaving and a chunk size change with chunks still queued.
    p.client.send_frame(&video(66, 1000, false)).unwrap();
    p.client.send_frame(&audio(70, 200)).unwrap();
    p.client.set_chunk_size(64);
    p.client.send_frame(&video(100, 1000, false)).unwrap();
    p.client.send_frame(&audio(90, 200)).unwrap();
    p.client.set_interleave(false);
    p.client.send_frame(&audio(110, 20)).unwrap();
    p.drive();
    let got = p.media();
    assert_eq!(got.len(), 9);
    assert!(got[4..].contains(&video(66, 1000, false)));
    assert!(got[4..].contains(&video(100, 1000, false)));
    assert_eq!(got[8], audio(110, 20));
}

#[test]
fn rejected_publish() {
    let mut p = Pair::new(
        config(),
        Delivery::ByteByByte,
        Policy::Reject("NetStream.Publish.BadName", "unknown stream key"),
    );
    p.drive();
    assert_eq!(
        p.client_events,
        [
            ClientEvent::Connected,
            ClientEvent::PublishRejected {
                code: "NetStream.Publish.BadName".into(),
                description: "unknown stream key".into()
            }
        ]
    );
    assert_eq!(
        p.client.send_frame(&audio(0, 10)),
        Err(RtmpError::NotPublishing)
    );
    assert!(p.media().is_empty());
}

#[test]
fn media_of_a_pending_publish_is_dropped() {
    let mut p = Pair::publishing(Delivery::Whole);
    p.send(&stream_start());
    // Replay everything to a server that never accepts.
    let mut server = ServerSession::new(ServerConfig::default());
    server.handle_input(Instant::now(), &p.c2s).unwrap();
    let mut events = Vec::new();
    while let Some(out) = server.poll_output() {
        if let ServerOutput::Event(e) = out {
            events.push(e);
        }
    }
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[1], ServerEvent::PublishRequested { .. }));
}

#[test]
fn acknowledgement_after_window() {
    let mut p = Pair::publishing(Delivery::Whole);
    assert_eq!(p.client.peer_acknowledged(), None);
    let mut ts = 0;
    while p.c2s.len() < 2_500_000 {
        p.send(&[video(ts, 30_000, ts % 2000 == 0)]);
        ts += 33;
    }
    let acked = p.client.peer_acknowledged().expect("server acknowledged");
    assert!(
        acked >= 2_500_000 && acked as usize <= p.c2s.len(),
        "{acked}"
    );
    // The next one comes a window later, not before.
    let first = acked;
    while p.c2s.len() < first as usize + 2_400_000 {
        p.send(&[video(ts, 30_000, false)]);
        ts += 33;
    }
    assert_eq!(p.client.peer_acknowledged(), Some(first));
    while p.c2s.len() < first as usize + 2_600_000 {
        p.send(&[video(ts, 30_000, false)]);
        ts += 33;
    }
    assert!(p.client.peer_acknowledged().unwrap() >= first + 2_500_000);
}
