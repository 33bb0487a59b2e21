//! The 1-second metrics collector: every second, one [`StreamMetrics`] sample
//! per live stream, from the running totals in [`Metrics`] (ingest and egress
//! bytes, errors, transcoder speed) and the audience a sweep of the viewer
//! sessions found (viewers, quality distribution, buffering from beacons).
//!
//! This module is the sans-IO core ([`Collector`]: totals and audiences in,
//! samples and roll-ups out); [`task`] is the tokio driver that runs it on
//! whole wall-clock seconds, pushes each sample to the WebSocket feed and to
//! Prometheus, and writes samples and roll-ups to the repository in batches.
//!
//! Rates are measured over a sliding window of [`RATE_WINDOW_MS`] (RTMP
//! delivers a keyframe in one burst; a 1 s difference would swing with the
//! GOP). Errors are the count *during* the second. Roll-ups cover whole UTC
//! minutes; the minute in progress is re-emitted (upserted) with every batch
//! so that `step=1m` includes it.
//!
//! [`Metrics`]: streaming_core::metrics::Metrics

pub mod task;

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use streaming_core::metrics::StreamTotals;
use streaming_core::model::{MetricsRollup, StreamMetrics};
use streaming_core::sessions::Audience;
use uuid::Uuid;

/// Window over which ingest and egress bitrates are measured.
pub const RATE_WINDOW_MS: i64 = 5_000;

/// One live stream's state between ticks.
#[derive(Debug, Default)]
struct Track {
    /// `(unix ms, totals)`, oldest first, spanning at most the rate window.
    history: VecDeque<(i64, StreamTotals)>,
    /// Source segments seen so far (the newest number).
    last_segment: Option<u64>,
}

/// A minute being rolled up.
#[derive(Debug, Clone)]
struct MinuteAcc {
    minute_ms: i64,
    samples: u32,
    viewers_sum: u64,
    viewers_min: u64,
    viewers_max: u64,
    ingest_sum: u64,
    ingest_min: u64,
    ingest_max: u64,
    egress_sum: u64,
    buffering_sum: f64,
    errors: u64,
    speed_min: Option<f64>,
    quality_sums: BTreeMap<String, u64>,
    /// Changed since last emitted.
    dirty: bool,
}

impl MinuteAcc {
    fn new(minute_ms: i64) -> Self {
        Self {
            minute_ms,
            samples: 0,
            viewers_sum: 0,
            viewers_min: u64::MAX,
            viewers_max: 0,
            ingest_sum: 0,
            ingest_min: u64::MAX,
            ingest_max: 0,
            egress_sum: 0,
            buffering_sum: 0.0,
            errors: 0,
            speed_min: None,
            quality_sums: BTreeMap::new(),
            dirty: false,
        }
    }

    fn add(&mut self, s: &StreamMetrics) {
        self.samples += 1;
        self.viewers_sum += s.concurrent_viewers;
        self.viewers_min = self.viewers_min.min(s.concurrent_viewers);
        self.viewers_max = self.viewers_max.max(s.concurrent_viewers);
        self.ingest_sum += s.ingest_bitrate_kbps;
        self.ingest_min = self.ingest_min.min(s.ingest_bitrate_kbps);
        self.ingest_max = self.ingest_max.max(s.ingest_bitrate_kbps);
        self.egress_sum += s.egress_bitrate_kbps;
        self.buffering_sum += s.buffering_ratio;
        self.errors += s.errors;
        if let Some(v) = s.transcoder_speed {
            self.speed_min = Some(self.speed_min.map_or(v, |m: f64| m.min(v)));
        }
        for (q, n) in &s.quality_distribution {
            match self.quality_sums.get_mut(q) {
                Some(sum) => *sum += u64::from(*n),
                None => {
                    self.quality_sums.insert(q.clone(), u64::from(*n));
                }
            }
        }
        self.dirty = true;
    }

    fn rollup(&self, stream_id: Uuid) -> MetricsRollup {
        let n = f64::from(self.samples.max(1));
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        MetricsRollup {
            stream_id,
            minute: ms_to_utc(self.minute_ms),
            samples: self.samples,
            viewers_avg: round(self.viewers_sum as f64 / n),
            viewers_min: if self.samples == 0 {
                0
            } else {
                self.viewers_min
            },
            viewers_max: self.viewers_max,
            ingest_kbps_avg: round(self.ingest_sum as f64 / n),
            ingest_kbps_min: if self.samples == 0 {
                0
            } else {
                self.ingest_min
            },
            ingest_kbps_max: self.ingest_max,
            egress_kbps_avg: round(self.egress_sum as f64 / n),
            buffering_ratio_avg: round(self.buffering_sum / n),
            errors: self.errors,
            transcoder_speed_min: self.speed_min,
            quality_distribution: self
                .quality_sums
                .iter()
                .map(|(q, v)| (q.clone(), round(*v as f64 / n)))
                .collect(),
        }
    }
}

/// Unix milliseconds to UTC (the epoch for values out of range).
pub fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The `metrics` WebSocket text of a sample, for the `collector` bench
/// (the serialiser itself is crate-private).
#[doc(hidden)]
pub fn bench_metrics_text(
    s: &StreamMetrics,
    status: streaming_core::model::StreamStatus,
    qualities: Vec<String>,
    tick_ms: i64,
) -> axum::extract::ws::Utf8Bytes {
    crate::http::ws::metrics_text(s, status, qualities, tick_ms)
}

/// Bytes over milliseconds as kbit/s.
fn kbps(bytes: u64, ms: i64) -> u64 {
    if ms <= 0 {
        return 0;
    }
    (bytes as f64 * 8.0 / ms as f64).round() as u64
}

/// Everything the collector needs to know about a live stream at a tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveInput {
    pub totals: StreamTotals,
    /// The newest source segment number, if any.
    pub newest_segment: Option<u64>,
}

/// The inputs of a tick: every live stream's running totals and its newest
/// source segment number (what both the driver and the bench feed [`Collector::tick`]).
pub fn live_inputs(
    metrics: &streaming_core::metrics::Metrics,
    store: &streaming_core::store::SharedStore,
) -> HashMap<Uuid, LiveInput> {
    metrics
        .live_totals()
        .into_iter()
        .map(|(id, totals)| {
            let newest_segment = store.summary(id).and_then(|s| {
                s.rendition(crate::packaging::SOURCE)
                    .and_then(|r| r.newest_segment)
            });
            (
                id,
                LiveInput {
                    totals,
                    newest_segment,
                },
            )
        })
        .collect()
}

/// The sans-IO collector (see the module docs).
#[derive(Debug, Default)]
pub struct Collector {
    tracks: HashMap<Uuid, Track>,
    minutes: HashMap<Uuid, MinuteAcc>,
    /// Minutes completed since the last [`Collector::take_rollups`].
    finished: Vec<MetricsRollup>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams being tracked.
    pub fn tracked(&self) -> usize {
        self.tracks.len()
    }

    /// One tick at `at_ms` (a whole second, unix ms): a sample for every
    /// stream in `live`. Streams no longer live are forgotten (their minute
    /// in progress is finished). The audiences of the streams in `live` are
    /// taken out of `audiences` (moved into their samples).
    pub fn tick(
        &mut self,
        at_ms: i64,
        live: &HashMap<Uuid, LiveInput>,
        audiences: &mut HashMap<Uuid, Audience>,
    ) -> Vec<StreamMetrics> {
        let gone: Vec<Uuid> = self
            .tracks
            .keys()
            .filter(|id| !live.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.tracks.remove(&id);
            if let Some(acc) = self.minutes.remove(&id)
                && acc.samples > 0
            {
                self.finished.push(acc.rollup(id));
            }
        }
        let at = ms_to_utc(at_ms);
        let mut out = Vec::with_capacity(live.len());
        for (id, input) in live {
            let track = self.tracks.entry(*id).or_default();
            let prev = track.history.back().map(|(_, t)| *t);
            track.history.push_back((at_ms, input.totals));
            while track
                .history
                .front()
                .is_some_and(|(t, _)| at_ms - t > RATE_WINDOW_MS)
            {
                track.history.pop_front();
            }
            let (t0, first) = track.history.front().copied().unwrap_or_default();
            let span = at_ms - t0;
            let ingest = kbps(
                input.totals.ingest_bytes.saturating_sub(first.ingest_bytes),
                span,
            );
            let egress = kbps(
                input.totals.egress_bytes.saturating_sub(first.egress_bytes),
                span,
            );
            let errors = prev.map_or(0, |p| input.totals.errors.saturating_sub(p.errors));
            let segments = match (track.last_segment, input.newest_segment) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => 0,
            };
            if input.newest_segment.is_some() {
                track.last_segment = input.newest_segment;
            }
            let aud = audiences.remove(id).unwrap_or_default();
            let buffering_ratio = (aud.buffering_ratio() * 10_000.0).round() / 10_000.0;
            let sample = StreamMetrics {
                stream_id: *id,
                at,
                concurrent_viewers: aud.viewers,
                ingest_bitrate_kbps: ingest,
                egress_bitrate_kbps: egress,
                frames_dropped: 0,
                segments_produced: segments,
                quality_distribution: aud.quality_distribution,
                buffering_ratio,
                errors: errors + aud.player_errors,
                transcoder_speed: input.totals.transcoder_speed,
            };
            self.roll(&sample, at_ms);
            out.push(sample);
        }
        out.sort_by_key(|s| s.stream_id);
        out
    }

    fn roll(&mut self, s: &StreamMetrics, at_ms: i64) {
        let minute_ms = at_ms - at_ms.rem_euclid(60_000);
        let acc = self
            .minutes
            .entry(s.stream_id)
            .or_insert_with(|| MinuteAcc::new(minute_ms));
        if acc.minute_ms != minute_ms {
            if acc.samples > 0 {
                self.finished.push(acc.rollup(s.stream_id));
            }
            *acc = MinuteAcc::new(minute_ms);
        }
        acc.add(s);
    }

    /// Roll-ups to write: minutes completed since the last call, and the
    /// minute in progress of every stream that got samples since.
    pub fn take_rollups(&mut self) -> Vec<MetricsRollup> {
        let mut out = std::mem::take(&mut self.finished);
        for (id, acc) in &mut self.minutes {
            if acc.dirty {
                acc.dirty = false;
                out.push(acc.rollup(*id));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(ingest: u64, egress: u64, errors: u64) -> LiveInput {
        LiveInput {
            totals: StreamTotals {
                ingest_bytes: ingest,
                egress_bytes: egress,
                errors,
                transcoder_speed: Some(1.25),
            },
            newest_segment: None,
        }
    }

    #[test]
    fn rates_over_the_window_errors_per_second_and_audience() {
        let id = Uuid::new_v4();
        let mut c = Collector::new();
        let t0 = 1_800_000_000_000i64; // a whole minute
        let mut aud = HashMap::new();
        aud.insert(
            id,
            Audience {
                viewers: 3,
                quality_distribution: BTreeMap::from([("480p".into(), 2), ("720p".into(), 1)]),
                watch_ms: 3000,
                stall_ms: 300,
                player_errors: 1,
            },
        );
        let live = |i, e, err| HashMap::from([(id, input(i, e, err))]);
        let s = c.tick(t0, &live(0, 0, 0), &mut aud.clone());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].ingest_bitrate_kbps, 0, "no rate from one point");
        assert_eq!(s[0].at.timestamp_millis(), t0);
        // 375 kB/s in → 3000 kbit/s; 1 MB/s out → 8000 kbit/s.
        let mut last = Vec::new();
        for k in 1..=7i64 {
            let k64 = k as u64;
            last = c.tick(
                t0 + k * 1000,
                &live(375_000 * k64, 1_000_000 * k64, 2 * k64),
                &mut aud.clone(),
            );
        }
        let s = &last[0];
        assert_eq!(s.ingest_bitrate_kbps, 3000);
        assert_eq!(s.egress_bitrate_kbps, 8000);
        assert_eq!(
            s.errors,
            2 + 1,
            "2 stream errors in the second + 1 from a player"
        );
        assert_eq!(s.concurrent_viewers, 3);
        assert_eq!(s.quality_distribution["480p"], 2);
        assert!((s.buffering_ratio - 0.1).abs() < 1e-9);
        assert_eq!(s.transcoder_speed, Some(1.25));
    }

    #[test]
    fn minutes_roll_up_and_the_current_one_is_re_emitted() {
        let id = Uuid::new_v4();
        let mut c = Collector::new();
        let t0 = 1_800_000_000_000i64;
        let mut aud = HashMap::new();
        let live = HashMap::from([(id, input(0, 0, 0))]);
        for k in 0..61i64 {
            aud.insert(
                id,
                Audience {
                    viewers: if k < 30 { 10 } else { 20 },
                    ..Audience::default()
                },
            );
            c.tick(t0 + k * 1000, &live, &mut aud.clone());
        }
        let r = c.take_rollups();
        assert_eq!(r.len(), 2, "the finished minute and the one in progress");
        let first = r
            .iter()
            .find(|r| r.minute.timestamp_millis() == t0)
            .unwrap();
        assert_eq!(first.samples, 60);
        assert_eq!(first.viewers_avg, 15.0);
        assert_eq!((first.viewers_min, first.viewers_max), (10, 20));
        assert_eq!(first.transcoder_speed_min, Some(1.25));
        let cur = r
            .iter()
            .find(|r| r.minute.timestamp_millis() == t0 + 60_000)
            .unwrap();
        assert_eq!(cur.samples, 1);
        assert!(c.take_rollups().is_empty(), "nothing new since");
        // The stream ends: its minute in progress is finished once more.
        c.tick(t0 + 61_000, &HashMap::new(), &mut aud.clone());
        let r = c.take_rollups();
        assert_eq!(r.len(), 1);
        assert_eq!(c.tracked(), 0);
    }

    #[test]
    fn segments_produced_counts_new_source_segments() {
        let id = Uuid::new_v4();
        let mut c = Collector::new();
        let aud = HashMap::new();
        let mut inp = input(0, 0, 0);
        let mut got = Vec::new();
        for (k, seg) in [None, Some(100), Some(100), Some(102)]
            .into_iter()
            .enumerate()
        {
            inp.newest_segment = seg;
            let s = c.tick(
                k as i64 * 1000,
                &HashMap::from([(id, inp)]),
                &mut aud.clone(),
            );
            got.push(s[0].segments_produced);
        }
        assert_eq!(got, vec![0, 0, 0, 2]);
    }
}
