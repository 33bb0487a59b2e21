//! Events per second through the in-process event pipeline (issue 11 goal 3:
//! 1M events/s on one node). Kafka does not exist in the code yet (issue 12),
//! so there is no producer to measure here.
//!
//! Two paths carry events in-process:
//!
//! - the domain [`EventBus`] (`tokio::sync::broadcast`): stream started,
//!   ended, ladder changes… — a handful per stream per hour, read by every
//!   WebSocket client and the status writer. `bus/*`: publish a batch of
//!   events and let 1 or 4 subscribers receive them all (one thread: the
//!   CPU a delivered event costs, sender and receivers together);
//!   `json/event`: one event serialised as the WebSocket feed and a
//!   producer would (into a reused buffer).
//! - player beacons (`POST /api/v1/sessions/{sid}/events`, up to 20 events
//!   a body) and delivery requests, both recorded in the viewer-session
//!   registry that the 1-second collector sweeps into metrics: the
//!   high-volume path. `sessions/beacon`: one heartbeat of one of 10,000
//!   sessions (100 streams) per event; `sessions/beacons_batch20`: a body's 20
//!   events recorded under one lock; `sessions/served`: the per-request
//!   update of a segment GET.
//!
//! Throughput is in events: criterion's `elem/s` is events per second.
//!
//! `cargo bench -p streaming-core --bench events -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use streaming_core::events::{Event, EventBus};
use streaming_core::model::StreamMetrics;
use streaming_core::sessions::{Beacon, Served, ViewerSessions};
use tokio::sync::broadcast::error::TryRecvError;
use uuid::Uuid;

/// Events published between two drains of the subscribers (the bus holds 1,024).
const BATCH: usize = 256;
const STREAMS: usize = 100;
const VIEWERS_PER_STREAM: usize = 100;

fn bus(c: &mut Criterion) {
    let mut g = c.benchmark_group("bus");
    g.throughput(Throughput::Elements(BATCH as u64));
    let stream_id = Uuid::new_v4();
    let at = Utc::now();
    for subscribers in [1usize, 4] {
        let bus = EventBus::default();
        let mut rx: Vec<_> = (0..subscribers).map(|_| bus.subscribe()).collect();
        g.bench_with_input(
            BenchmarkId::new("publish_receive", subscribers),
            &subscribers,
            |b, _| {
                b.iter(|| {
                    for _ in 0..BATCH {
                        bus.publish(Event::StreamStarted { stream_id, at });
                    }
                    for r in &mut rx {
                        loop {
                            match r.try_recv() {
                                Ok(e) => {
                                    black_box(e);
                                }
                                Err(TryRecvError::Empty) => break,
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                    }
                })
            },
        );
    }
    g.finish();
}

fn json(c: &mut Criterion) {
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(512);
    let event = Event::StreamEnded {
        stream_id: Uuid::new_v4(),
        at: Utc::now(),
        reason: "encoder disconnected".into(),
    };
    g.bench_function("event", |b| {
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&event)).unwrap();
            black_box(buf.len())
        })
    });
    let sample = StreamMetrics {
        stream_id: Uuid::new_v4(),
        at: Utc::now(),
        concurrent_viewers: 100,
        ingest_bitrate_kbps: 3000,
        egress_bitrate_kbps: 250_000,
        quality_distribution: [("source", 50), ("720p", 30), ("480p", 20)]
            .into_iter()
            .map(|(q, n)| (q.to_string(), n))
            .collect(),
        buffering_ratio: 0.0123,
        transcoder_speed: Some(1.02),
        ..StreamMetrics::default()
    };
    g.bench_function("stream_metrics", |b| {
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&sample)).unwrap();
            black_box(buf.len())
        })
    });
    g.finish();
}

/// 10,000 confirmed sessions over 100 streams: `(sid, stream)`.
fn audience(sessions: &ViewerSessions) -> Vec<(Uuid, Uuid)> {
    let mut out = Vec::with_capacity(STREAMS * VIEWERS_PER_STREAM);
    for _ in 0..STREAMS {
        let stream = Uuid::new_v4();
        for _ in 0..VIEWERS_PER_STREAM {
            let sid = sessions.start(stream, "hls", Some("Mozilla/5.0 (bench)".into()));
            sessions.touch(sid, stream, Some("720p"), 1000, true);
            out.push((sid, stream));
        }
    }
    out
}

fn sessions(c: &mut Criterion) {
    let mut g = c.benchmark_group("sessions");
    let sessions = ViewerSessions::new();
    let viewers = audience(&sessions);
    let ua = Some("Mozilla/5.0 (bench)".to_string());
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("beacon", |b| {
        b.iter(|| {
            let (sid, stream) = viewers[i % viewers.len()];
            i = i.wrapping_add(7919);
            let beacon = Beacon::Heartbeat {
                quality: Some("720p".into()),
            };
            sessions.beacon(sid, stream, beacon, ua.clone()).unwrap();
        })
    });
    g.throughput(Throughput::Elements(20));
    g.bench_function("beacon_loop20", |b| {
        b.iter(|| {
            let (sid, stream) = viewers[i % viewers.len()];
            i = i.wrapping_add(7919);
            for _ in 0..20 {
                let beacon = Beacon::Heartbeat {
                    quality: Some("720p".into()),
                };
                sessions.beacon(sid, stream, beacon, ua.clone()).unwrap();
            }
        })
    });
    g.bench_function("beacons_batch20", |b| {
        b.iter(|| {
            let (sid, stream) = viewers[i % viewers.len()];
            i = i.wrapping_add(7919);
            let body = (0..20).map(|_| Beacon::Heartbeat {
                quality: Some("720p".into()),
            });
            sessions.beacons(sid, stream, body, ua.clone()).unwrap();
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("served", |b| {
        b.iter(|| {
            let (sid, stream_id) = viewers[i % viewers.len()];
            i = i.wrapping_add(7919);
            black_box(sessions.served(
                sid,
                Served {
                    stream_id,
                    protocol: Some("hls"),
                    quality: Some("720p"),
                    bytes: 250_000,
                    returning: true,
                },
            ))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bus, json, sessions
}
criterion_main!(benches);
