//! What the media writer costs per part, and a viewer's playlist per request.
//!
//! - `part`: one `MediaWriter::event(Part)` on a live LL broadcast (source
//!   video, 2 s segments of 300 ms parts at 90 kHz, a window of 6 segments):
//!   the part stored (with its `prft` box), both media playlists (full and
//!   delta) rendered and stored, the progress published. Every part a
//!   rendition makes costs this once, whatever the number of viewers.
//! - `segment`: the closing `Segment` event (the same, plus the master
//!   playlist, the MPD and the summary).
//! - `personalize`: filling a viewer's `sid` into the rendered LL playlist,
//!   the per-request work of a playlist GET, against a plain copy.
//!
//! `cargo bench -p streaming-delivery --bench publish`

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streaming_core::store::{Key, MemoryStore, SegmentStore, SharedStore};
use streaming_delivery::publish::{MediaWriter, RenderConfig, personalize};
use streaming_media::packager::{InitSegment, PackagerEvent, Part, Segment, TrackInfo, TrackKind};
use uuid::Uuid;

const TS: u64 = 90_000;
const PART: u64 = 27_000; // 300 ms
const PARTS: u32 = 7; // 6 × 300 ms + a 200 ms last part
const SEG: u64 = 180_000;

fn config() -> RenderConfig {
    RenderConfig {
        segment_target_ms: 2000,
        part_target_ms: 300,
        playlist_segments: 6,
        retained_segments: 8,
        cdn_mode: false,
        low_latency: true,
    }
}

fn part(n: u64, i: u32) -> PackagerEvent {
    let duration = if i + 1 == PARTS { SEG - 6 * PART } else { PART };
    PackagerEvent::Part(Part {
        track: TrackKind::Video,
        segment: n,
        index: i,
        // ~2.5 Mb/s: 300 ms of video.
        data: Bytes::from(vec![0u8; 94_000]),
        start: (n - 1) * SEG + u64::from(i) * PART,
        duration,
        timescale: TS as u32,
        independent: i == 0,
    })
}

fn segment(n: u64) -> PackagerEvent {
    PackagerEvent::Segment(Segment {
        track: TrackKind::Video,
        number: n,
        start: (n - 1) * SEG,
        duration: SEG,
        timescale: TS as u32,
        data: Bytes::from(vec![0u8; 625_000]),
        discontinuity: false,
        init_version: 1,
        starts_with_keyframe: true,
    })
}

/// A writer with `segments` complete segments out.
fn live_writer(segments: u64) -> (MediaWriter, Arc<MemoryStore>, Uuid) {
    let store = Arc::new(MemoryStore::new());
    let shared: SharedStore = store.clone();
    let id = Uuid::new_v4();
    let mut w = MediaWriter::open(id, shared, config(), 0);
    w.event(
        PackagerEvent::Init(InitSegment {
            track: TrackKind::Video,
            version: 1,
            data: Bytes::from_static(b"init"),
            info: TrackInfo {
                kind: TrackKind::Video,
                codec: "avc1.64001f".into(),
                timescale: TS as u32,
                width: Some(1280),
                height: Some(720),
                frame_rate: Some(30.0),
                sample_rate: None,
                channels: None,
            },
        }),
        None,
    );
    for n in 1..=segments {
        for i in 0..PARTS {
            w.event(part(n, i), None);
        }
        w.event(segment(n), None);
    }
    (w, store, id)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    let (mut w, _store, _id) = live_writer(8);
    let mut n = 9u64;
    let mut i = 0u32;
    // Parts of ever new segments (closed by a segment every PARTS parts,
    // not timed here), so the window stays at its steady size.
    g.bench_function("part", |b| {
        b.iter(|| {
            w.event(black_box(part(n, i)), None);
            i += 1;
            if i == PARTS {
                w.event(segment(n), None);
                n += 1;
                i = 0;
            }
        })
    });
    let (w, _store, _id) = live_writer(8);
    let w = std::cell::RefCell::new(w);
    let n = std::cell::Cell::new(9u64);
    g.bench_function("segment", |b| {
        b.iter_batched(
            || {
                for i in 0..PARTS {
                    w.borrow_mut().event(part(n.get(), i), None);
                }
            },
            |()| {
                w.borrow_mut().event(black_box(segment(n.get())), None);
                n.set(n.get() + 1);
            },
            criterion::BatchSize::PerIteration,
        )
    });

    let (mut w, store, id) = live_writer(8);
    for i in 0..3 {
        w.event(part(9, i), None);
    }
    let text = store
        .get(
            id,
            &Key::Playlist {
                rendition: "source".into(),
                skip: false,
            },
        )
        .expect("playlist")
        .data;
    let sid = "3f9a1c2e-8b7d-4e6f-a5b4-c3d2e1f0a9b8.AbCdEfGhIjKlMnOpQrStUvWxYz012345";
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("personalize", |b| {
        b.iter(|| personalize(black_box(&text), black_box(Some(sid))))
    });
    g.bench_function("copy", |b| {
        b.iter(|| Bytes::copy_from_slice(black_box(&text)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
