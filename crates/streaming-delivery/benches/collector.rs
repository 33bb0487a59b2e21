//! Cost of one 1-second metrics-collector tick at 100, 1,000 and 10,000 live
//! streams (issue 11 asks for at most 10× from 1,000 to 10,000).
//!
//! Each stream is set up as production does: `Metrics::stream_started`,
//! ingest bytes, egress bytes on three renditions and `manifest`, one or two
//! error kinds, a transcoder speed; 10 confirmed viewers (opened, then touched
//! with a quality and `returning = true`), 3 of them sending beacons (one
//! stalled); one WebSocket subscriber on the `LiveFeed`. The `SegmentStore`
//! holds no media (the newest-segment look-up finds nothing).
//!
//! Timed, in the order of `collector::task::tick`: `sessions.sweep(now, 6 s)`,
//! `set_concurrent_viewers` per count, `metrics.live_totals()` (+ the store
//! look-up), `Collector::tick`, per sample `set_buffering_ratio` and
//! `set_quality_distribution`, then per watched stream the `metrics`
//! WebSocket text and its `LiveFeed::publish`. Between ticks (not timed) the
//! viewers come back (touch + heartbeats), the counters grow and the simulated
//! clock moves on by one second, so every tick sees a production-like state
//! (5 s of rate history, sessions never expire, roll-ups taken).
//!
//! Before criterion runs, a per-phase breakdown is printed (100 ticks; 20 at
//! 10,000 streams).
//!
//! `cargo bench -p streaming-delivery --bench collector -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use streaming_core::metrics::Metrics;
use streaming_core::model::{StreamMetrics, StreamStatus};
use streaming_core::sessions::{Beacon, ViewerSessions};
use streaming_core::store::{MemoryStore, SharedStore};
use streaming_delivery::LiveFeed;
use streaming_delivery::collector::{Collector, bench_metrics_text, live_inputs, ms_to_utc};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Live streams per case.
const SIZES: [usize; 3] = [100, 1000, 10_000];
const VIEWERS_PER_STREAM: usize = 10;
const BEACONING_PER_STREAM: usize = 3;
const RENDITIONS: [&str; 3] = ["source", "720p", "480p"];
const INACTIVITY: Duration = Duration::from_secs(6);
/// A whole minute, so the roll-up boundaries fall every 60 ticks.
const T0_MS: i64 = 1_800_000_000_000;

struct Viewer {
    sid: Uuid,
    stream: Uuid,
    quality: &'static str,
    beaconing: bool,
}

struct World {
    metrics: Metrics,
    sessions: ViewerSessions,
    store: SharedStore,
    feed: LiveFeed,
    collector: Collector,
    streams: Vec<Uuid>,
    viewers: Vec<Viewer>,
    ladder: Vec<String>,
    /// Keeps every stream watched (never read: the broadcast overwrites).
    _subscribers: Vec<broadcast::Receiver<Utf8Bytes>>,
    now_ms: i64,
}

impl World {
    fn new(n: usize) -> Self {
        let metrics = Metrics::new();
        let sessions = ViewerSessions::new();
        let feed = LiveFeed::new();
        let mut streams = Vec::with_capacity(n);
        let mut viewers = Vec::with_capacity(n * VIEWERS_PER_STREAM);
        let mut subscribers = Vec::with_capacity(n);
        for i in 0..n {
            let id = Uuid::new_v4();
            metrics.stream_started(id);
            metrics.ingest_bytes(id, 375_000);
            for r in RENDITIONS {
                metrics.egress_bytes(id, r, 250_000);
            }
            metrics.egress_bytes(id, "manifest", 2_000);
            metrics.stream_error(id, "io");
            if i % 2 == 0 {
                metrics.stream_error(id, "timeout");
            }
            metrics.transcoder_speed(id, 1.02);
            for v in 0..VIEWERS_PER_STREAM {
                let sid = Uuid::new_v4();
                let quality = RENDITIONS[v % RENDITIONS.len()];
                sessions.open(sid, id, "hls", Some("Mozilla/5.0 (bench)".into()));
                sessions.touch(sid, id, Some(quality), 250_000, true);
                let beaconing = v < BEACONING_PER_STREAM;
                if beaconing {
                    let b = Beacon::Startup {
                        startup_ms: 900,
                        quality: Some(quality.to_string()),
                    };
                    sessions.beacon(sid, id, b, None).unwrap();
                    if v == 0 {
                        sessions.beacon(sid, id, Beacon::StallStart, None).unwrap();
                    }
                }
                viewers.push(Viewer {
                    sid,
                    stream: id,
                    quality,
                    beaconing,
                });
            }
            subscribers.push(feed.subscribe(id, StreamStatus::Active));
            streams.push(id);
        }
        let mut w = Self {
            metrics,
            sessions,
            store: std::sync::Arc::new(MemoryStore::new()),
            feed,
            collector: Collector::new(),
            streams,
            viewers,
            ladder: RENDITIONS.iter().map(|r| r.to_string()).collect(),
            _subscribers: subscribers,
            now_ms: T0_MS,
        };
        // Fill the 5 s rate window before measuring.
        for _ in 0..6 {
            w.between_ticks();
            black_box(w.tick(&mut Phases::default()));
        }
        w
    }

    /// What happens during the second between two ticks (not timed).
    fn between_ticks(&mut self) {
        self.now_ms += 1000;
        for (i, id) in self.streams.iter().enumerate() {
            self.metrics.ingest_bytes(*id, 375_000);
            for r in RENDITIONS {
                self.metrics.egress_bytes(*id, r, 250_000);
            }
            self.metrics.egress_bytes(*id, "manifest", 2_000);
            if (self.now_ms / 1000 + i as i64) % 7 == 0 {
                self.metrics.stream_error(*id, "io");
            }
        }
        for v in &self.viewers {
            self.sessions
                .touch(v.sid, v.stream, Some(v.quality), 250_000, true);
            if v.beaconing {
                let b = Beacon::Heartbeat {
                    quality: Some(v.quality.to_string()),
                };
                self.sessions.beacon(v.sid, v.stream, b, None).unwrap();
            }
        }
        black_box(self.collector.take_rollups());
    }

    /// One tick, as `collector::task::tick` does it (the writer queue aside).
    fn tick(&mut self, ph: &mut Phases) -> Vec<StreamMetrics> {
        let now_ms = self.now_ms + 2;
        let at_ms = now_ms - now_ms.rem_euclid(1000);

        let t = Instant::now();
        let mut sweep = self.sessions.sweep(Instant::now(), INACTIVITY);
        for (id, n) in &sweep.counts {
            self.metrics
                .set_concurrent_viewers(*id, i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let t = ph.add(0, t);

        let store = &self.store;
        let live = live_inputs(&self.metrics, store);
        let t = ph.add(1, t);

        let samples = self.collector.tick(at_ms, &live, &mut sweep.audiences);
        let t = ph.add(2, t);

        for s in &samples {
            self.metrics
                .set_buffering_ratio(s.stream_id, s.buffering_ratio);
            self.metrics
                .set_quality_distribution(s.stream_id, &s.quality_distribution);
        }
        let t = ph.add(3, t);

        // No media in the store: the ladder stands in for `qualities_of`.
        let qualities = |id: Uuid| {
            store.summary(id).map_or_else(
                || self.ladder.clone(),
                |m| m.renditions.iter().map(|r| r.name.to_string()).collect(),
            )
        };
        let by_id: HashMap<Uuid, &StreamMetrics> =
            samples.iter().map(|s| (s.stream_id, s)).collect();
        for (id, status) in self.feed.watched() {
            let text = match by_id.get(&id) {
                Some(s) => bench_metrics_text(s, StreamStatus::Active, qualities(id), now_ms),
                None => {
                    let idle = StreamMetrics {
                        stream_id: id,
                        at: ms_to_utc(at_ms),
                        ..StreamMetrics::default()
                    };
                    bench_metrics_text(&idle, status, qualities(id), now_ms)
                }
            };
            self.feed.publish(id, text);
        }
        drop(sweep);
        ph.add(4, t);
        samples
    }
}

/// Time per phase: sweep, totals, collector, prometheus, websocket.
#[derive(Default)]
struct Phases([Duration; 5]);

impl Phases {
    fn add(&mut self, i: usize, since: Instant) -> Instant {
        let now = Instant::now();
        self.0[i] += now - since;
        now
    }
}

fn breakdown(n: usize) {
    let ticks: u32 = if n > 1000 { 20 } else { 100 };
    let mut w = World::new(n);
    let mut ph = Phases::default();
    let mut total = Duration::ZERO;
    for _ in 0..ticks {
        w.between_ticks();
        let t = Instant::now();
        let s = w.tick(&mut ph);
        total += t.elapsed();
        assert_eq!(s.len(), n);
        assert!(
            s.iter()
                .all(|s| s.concurrent_viewers == VIEWERS_PER_STREAM as u64)
        );
        black_box(s);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(ticks);
    let names = [
        "sweep+viewers",
        "live_totals",
        "Collector::tick",
        "prometheus",
        "ws text+publish",
    ];
    let parts: Vec<String> = names
        .iter()
        .zip(ph.0)
        .map(|(name, d)| format!("{name} {:.3}", ms(d)))
        .collect();
    eprintln!(
        "collector breakdown N={n} ({ticks} ticks): {:.3} ms/tick = {:.2}% of one core; {}",
        ms(total),
        ms(total) / 10.0,
        parts.join(", ")
    );
}

fn bench(c: &mut Criterion) {
    for n in SIZES {
        breakdown(n);
    }
    let mut g = c.benchmark_group("collector_tick");
    for n in SIZES {
        if n > 1000 {
            // A tick takes tens of milliseconds: fewer, equal samples.
            g.sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        let mut w = World::new(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut ph = Phases::default();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    w.between_ticks();
                    let t = Instant::now();
                    black_box(w.tick(&mut ph));
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
