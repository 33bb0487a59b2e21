//! RTMP chunk stream decoding throughput and AMF0 decoding of a connect.
//!
//! The stream: an OBS-like publish at 6 Mb/s — 25 video messages of 30 KB per
//! second (a 120 KB key frame every 2 s) and 43 AAC frames of 372 bytes per
//! second, chunk size 4096, audio and video chunks interleaved — fed to a
//! server in 64 KiB reads, as a socket driver would.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use streaming_media::amf0::{Amf0Value, decode_all, encode_all};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::rtmp::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, ServerConfig, ServerEvent,
    ServerOutput, ServerSession,
};

const SECONDS: u32 = 4;

/// (bytes up to the accepted publish, media bytes after it).
fn transcript() -> (Vec<u8>, Vec<u8>) {
    let now = Instant::now();
    let mut client = ClientSession::new(ClientConfig::new("rtmp://127.0.0.1/live", "live", "key"));
    let mut server = ServerSession::new(ServerConfig::default());
    let mut pre = Vec::new();
    let mut started = false;
    while !started {
        while let Some(o) = client.poll_output() {
            match o {
                ClientOutput::Transmit(b) => {
                    pre.extend_from_slice(&b);
                    server.handle_input(now, &b).unwrap();
                }
                ClientOutput::Event(ClientEvent::PublishStarted { .. }) => started = true,
                ClientOutput::Event(_) => {}
            }
        }
        while let Some(o) = server.poll_output() {
            match o {
                ServerOutput::Transmit(b) => client.handle_input(now, &b).unwrap(),
                ServerOutput::Event(ServerEvent::PublishRequested { stream_id, .. }) => {
                    server.accept_publish(stream_id)
                }
                ServerOutput::Event(_) => {}
            }
        }
    }
    client.set_interleave(true);
    let mut frames = Vec::new();
    for i in 0..25 * SECONDS {
        let key = i % 50 == 0;
        let len = if key { 120_000 } else { 30_000 };
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        v.extend((0..len - 5).map(|j| (j as u32 ^ i) as u8));
        frames.push(Frame::new(FrameKind::Video, i * 40, Bytes::from(v)));
    }
    for i in 0..43 * SECONDS {
        let mut v = vec![0xaf, 1];
        v.extend((0..370).map(|j| (j as u32 + i) as u8));
        frames.push(Frame::new(FrameKind::Audio, i * 1024 / 44, Bytes::from(v)));
    }
    frames.sort_by_key(|f| f.timestamp);
    let mut media = Vec::new();
    for f in &frames {
        client.send_frame(f).unwrap();
    }
    while let Some(o) = client.poll_output() {
        if let ClientOutput::Transmit(b) = o {
            media.extend_from_slice(&b);
        }
    }
    (pre, media)
}

fn publishing_server(pre: &[u8]) -> ServerSession {
    let mut server = ServerSession::new(ServerConfig::default());
    server.handle_input(Instant::now(), pre).unwrap();
    while let Some(o) = server.poll_output() {
        if let ServerOutput::Event(ServerEvent::PublishRequested { stream_id, .. }) = o {
            server.accept_publish(stream_id);
        }
    }
    while server.poll_output().is_some() {}
    server
}

fn chunk_decoding(c: &mut Criterion) {
    let (pre, media) = transcript();
    let mut g = c.benchmark_group("rtmp_chunk");
    g.throughput(Throughput::Bytes(media.len() as u64));
    g.bench_function("decode_6mbps_publish_64k_reads", |b| {
        b.iter_batched(
            || publishing_server(&pre),
            |mut server| {
                let now = Instant::now();
                let mut frames = 0usize;
                for read in media.chunks(64 * 1024) {
                    server.handle_input(now, read).unwrap();
                    while let Some(o) = server.poll_output() {
                        if let ServerOutput::Event(ServerEvent::Media(f)) = o {
                            frames += 1;
                            black_box(f);
                        }
                    }
                }
                assert_eq!(frames as u32, 68 * SECONDS);
                server
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn amf0_connect(c: &mut Criterion) {
    // OBS's connect: app, type, flashVer, swfUrl, tcUrl.
    let obj = Amf0Value::Object(vec![
        ("app".into(), "live".into()),
        ("type".into(), "nonprivate".into()),
        ("flashVer".into(), "FMLE/3.0 (compatible; FMSc/1.0)".into()),
        ("swfUrl".into(), "rtmp://127.0.0.1:1935/live".into()),
        ("tcUrl".into(), "rtmp://127.0.0.1:1935/live".into()),
    ]);
    let body = encode_all(&["connect".into(), 1.0.into(), obj]);
    let mut g = c.benchmark_group("amf0");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_connect", |b| {
        b.iter(|| decode_all(black_box(&body)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, chunk_decoding, amf0_connect);
criterion_main!(benches);
