//! Per-request cost of the viewer query: `with_query` over a rendered LL-HLS
//! media playlist (a 6-segment window of 2 s, parts of 0.5 s on the last
//! three, an open segment, hint and two rendition reports), against a plain
//! copy of the same text.
//!
//! `cargo bench -p streaming-media --bench hls_query`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streaming_media::hls::{
    LowLatency, MediaPlaylist, MediaSegment, OpenSegment, PartEntry, RenditionReport, with_query,
    write_media,
};

fn parts(n: u64, count: u32) -> Vec<PartEntry> {
    (0..count)
        .map(|p| PartEntry {
            duration_secs: 0.5,
            uri: format!("segment-{n}.{p}.m4s"),
            independent: p == 0,
            gap: false,
        })
        .collect()
}

fn playlist() -> String {
    let (first, end) = (1000u64, 1006u64);
    write_media(&MediaPlaylist {
        target_duration_secs: 2,
        media_sequence: first,
        independent_segments: true,
        segments: (first..end)
            .map(|n| MediaSegment {
                number: n,
                duration_secs: 2.0,
                uri: format!("segment-{n}.m4s"),
                map_uri: "init-1.mp4".into(),
                program_date_time_ms: Some(1_795_820_288_000 + n as i64 * 2000),
                parts: if n + 3 >= end { parts(n, 4) } else { vec![] },
                ..Default::default()
            })
            .collect(),
        low_latency: Some(LowLatency {
            part_target_secs: 0.5,
            part_hold_back_secs: 1.5,
            can_block_reload: true,
            can_skip_until_secs: Some(12.0),
            open_segment: Some(OpenSegment {
                number: end,
                map_uri: "init-1.mp4".into(),
                parts: parts(end, 2),
                ..Default::default()
            }),
            preload_hint: Some(format!("segment-{end}.2.m4s")),
            rendition_reports: ["720p", "480p"]
                .iter()
                .map(|r| RenditionReport {
                    uri: format!("../{r}/index.m3u8"),
                    last_msn: end,
                    last_part: Some(1),
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn bench(c: &mut Criterion) {
    let text = playlist();
    let sid = "sid=3f9a1c2e-8b7d-4e6f-a5b4-c3d2e1f0a9b8.AbCdEfGhIjKlMnOpQrStUvWxYz012345";
    let mut g = c.benchmark_group("hls_query");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("with_query", |b| {
        b.iter(|| with_query(black_box(&text), black_box(sid)))
    });
    g.bench_function("copy", |b| b.iter(|| black_box(&text).to_owned()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
