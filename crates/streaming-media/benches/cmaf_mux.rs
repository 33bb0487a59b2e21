//! Packager throughput: a 6 Mb/s, 30 fps H.264 stream with 128 kb/s AAC (48 kHz),
//! 20 s of it per iteration, muxed into CMAF parts and segments.
//!
//! `cargo bench -p streaming-media --bench cmaf_mux`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::packager::{Packager, PackagerConfig, PackagerEvent};

const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];
const SECONDS: u32 = 20;
const VIDEO_BPS: usize = 6_000_000;
const AUDIO_BPS: usize = 128_000;

fn video_frame(ts: u32, key: bool, size: usize) -> Frame {
    let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    body.extend_from_slice(&((size - 4) as u32).to_be_bytes());
    body.push(if key { 0x65 } else { 0x41 });
    body.resize(5 + size, 0xa5);
    Frame::new(FrameKind::Video, ts, Bytes::from(body))
}

/// The stream as an encoder would send it: headers, then interleaved by time.
fn stream() -> (Vec<Frame>, usize) {
    let mut frames = vec![
        Frame::new(
            FrameKind::Video,
            0,
            Bytes::from([&[0x17, 0, 0, 0, 0][..], AVCC].concat()),
        ),
        Frame::new(
            FrameKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0, 0x11, 0x90]),
        ),
    ];
    let gop_bytes = VIDEO_BPS / 8 * 2; // key frame every 2 s
    let key_size = gop_bytes / 6;
    let inter_size = (gop_bytes - key_size) / 59;
    let audio_size = AUDIO_BPS / 8 * 1024 / 48_000;
    let (mut v, mut a) = (0u32, 0u32);
    loop {
        let vt = (v * 1000).div_ceil(30);
        let at = a * 1024 * 1000 / 48_000;
        if vt >= SECONDS * 1000 && at >= SECONDS * 1000 {
            break;
        }
        if vt <= at {
            let key = v.is_multiple_of(60);
            frames.push(video_frame(
                vt,
                key,
                if key { key_size } else { inter_size },
            ));
            v += 1;
        } else {
            let mut body = vec![0xaf, 1];
            body.resize(2 + audio_size, 0x5a);
            frames.push(Frame::new(FrameKind::Audio, at, Bytes::from(body)));
            a += 1;
        }
    }
    let bytes = frames.iter().map(Frame::len).sum();
    (frames, bytes)
}

fn mux(frames: &[Frame]) -> usize {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = 0;
    for f in frames {
        p.push(f).unwrap();
        while let Some(ev) = p.poll_output() {
            if let PackagerEvent::Part(part) = ev {
                out += part.data.len();
            }
        }
    }
    p.finish();
    while let Some(ev) = p.poll_output() {
        black_box(ev);
    }
    out
}

fn bench(c: &mut Criterion) {
    let (frames, bytes) = stream();
    let muxed = mux(&frames);
    eprintln!(
        "{} frames, {bytes} bytes in, {muxed} bytes of parts out",
        frames.len()
    );
    let mut group = c.benchmark_group("cmaf_mux_6mbps_30fps_aac");
    group.sample_size(20);
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("frames", |b| b.iter(|| mux(black_box(&frames))));
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("bytes", |b| b.iter(|| mux(black_box(&frames))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
