//! Prometheus metrics (`GET /metrics`), built on `prometheus-client`'s typed
//! label families and encoded in the OpenMetrics text format.
//!
//! Cardinality is bounded: a series labelled with a `stream_id` exists only
//! while that stream is live. [`Metrics::stream_started`] admits a stream,
//! [`Metrics::remove_stream`] deletes every series labelled with it, and the
//! recording methods ignore streams that are not live (a late segment request
//! for an ended stream creates no series). A live stream's series are held
//! as handles (a `prometheus-client` metric is a shared handle: the clone
//! and the family's series are one value), so recording a request, a tick's
//! gauges and [`Metrics::live_totals`] find them by the stream's id without
//! formatting it or looking the families up.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `streaming_active_streams` | gauge | |
//! | `streaming_ingest_bytes_total` | counter | `stream_id` |
//! | `streaming_egress_bytes_total` | counter | `stream_id`, `rendition` |
//! | `streaming_stream_errors_total` | counter | `stream_id`, `kind` |
//! | `streaming_segment_request_duration_seconds` | histogram | `kind` (playlist, segment, init, manifest) |
//! | `streaming_transcoder_speed` | gauge (f64) | `stream_id` |
//! | `streaming_concurrent_viewers` | gauge | `stream_id` |
//! | `streaming_buffering_ratio` | gauge (f64) | `stream_id` |
//! | `streaming_viewers_by_quality` | gauge | `stream_id`, `rendition` |
//! | `streaming_limit_hits_total` | counter | `kind` (which limit tripped, see [`crate::limits::LimitKind`]) |
//! | `streaming_open_connections` | gauge | `surface` (`rtmp`, `rtmp_pending`, `http`, `websocket`) |
//! | `streaming_held_requests` | gauge | none (requests held open now: LL-HLS blocking reloads, hinted parts, segments in progress) |
//! | `streaming_store_bytes` | gauge | none (bytes of media and rendered text the segment store holds now) |

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
/// The gauge type the `open_connections` and `held_requests` handles are.
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use uuid::Uuid;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the request-duration buckets. LL-HLS blocking
/// playlist reloads wait up to a few part durations, hence the long tail.
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// What a delivery request fetched (the `kind` label of the histogram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Playlist,
    Segment,
    Init,
    Manifest,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Playlist => "playlist",
            Self::Segment => "segment",
            Self::Init => "init",
            Self::Manifest => "manifest",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RenditionLabels {
    stream_id: String,
    rendition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    stream_id: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SurfaceLabels {
    surface: &'static str,
}

type F64Gauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The most qualities a stream gets `viewers_by_quality` series for.
const MAX_QUALITIES: usize = 32;

/// One live stream's series, as handles into the families.
struct StreamSeries {
    /// The `stream_id` label value, formatted once.
    label: String,
    ingest: Counter,
    concurrent_viewers: Gauge,
    buffering_ratio: F64Gauge,
    transcoder_speed: Option<F64Gauge>,
    /// `egress_bytes` by rendition (a ladder and `manifest`: a few).
    egress: Vec<(String, Counter)>,
    /// `stream_errors` by kind.
    errors: Vec<(String, Counter)>,
    /// `viewers_by_quality` by rendition (at most [`MAX_QUALITIES`]).
    qualities: Vec<(String, Gauge)>,
}

impl StreamSeries {
    fn labels(&self) -> StreamLabels {
        StreamLabels {
            stream_id: self.label.clone(),
        }
    }

    fn rendition(&self, rendition: &str) -> RenditionLabels {
        RenditionLabels {
            stream_id: self.label.clone(),
            rendition: rendition.to_string(),
        }
    }
}

/// The handle named `name` in a small list.
fn find<'a, M>(list: &'a [(String, M)], name: &str) -> Option<&'a M> {
    list.iter().find(|(n, _)| n == name).map(|(_, m)| m)
}

struct Inner {
    registry: Registry,
    /// Live streams and their series; a series labelled with a stream is
    /// created and removed under the write lock, so none outlives the stream.
    live: RwLock<HashMap<Uuid, StreamSeries>>,
    active_streams: Gauge,
    ingest_bytes: Family<StreamLabels, Counter>,
    egress_bytes: Family<RenditionLabels, Counter>,
    stream_errors: Family<ErrorLabels, Counter>,
    request_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    transcoder_speed: Family<StreamLabels, F64Gauge>,
    concurrent_viewers: Family<StreamLabels, Gauge>,
    buffering_ratio: Family<StreamLabels, F64Gauge>,
    viewers_by_quality: Family<RenditionLabels, Gauge>,
    limit_hits: Family<KindLabels, Counter>,
    open_connections: Family<SurfaceLabels, Gauge>,
    held_requests: Gauge,
    store_bytes: Gauge,
}

/// Running totals of one live stream (see [`Metrics::live_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamTotals {
    pub ingest_bytes: u64,
    /// Body bytes served, every rendition and manifest together.
    pub egress_bytes: u64,
    pub errors: u64,
    /// FFmpeg's latest speed, while a transcoder runs.
    pub transcoder_speed: Option<f64>,
}

/// The process's metrics: cheap to clone, shared by every role.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

fn stream(id: Uuid) -> StreamLabels {
    StreamLabels {
        stream_id: id.to_string(),
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let active_streams = Gauge::default();
        let ingest_bytes = Family::<StreamLabels, Counter>::default();
        let egress_bytes = Family::<RenditionLabels, Counter>::default();
        let stream_errors = Family::<ErrorLabels, Counter>::default();
        let request_duration =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let transcoder_speed = Family::<StreamLabels, F64Gauge>::default();
        let concurrent_viewers = Family::<StreamLabels, Gauge>::default();
        let buffering_ratio = Family::<StreamLabels, F64Gauge>::default();
        let viewers_by_quality = Family::<RenditionLabels, Gauge>::default();
        let limit_hits = Family::<KindLabels, Counter>::default();
        let open_connections = Family::<SurfaceLabels, Gauge>::default();
        let held_requests = Gauge::default();
        let store_bytes = Gauge::default();
        registry.register(
            "streaming_limit_hits",
            "Times a limit tripped (a timeout, cap or rate limit cut off or refused a client), by kind",
            limit_hits.clone(),
        );
        registry.register(
            "streaming_open_connections",
            "Connections open now, by surface (rtmp, rtmp_pending, http, websocket)",
            open_connections.clone(),
        );
        registry.register(
            "streaming_held_requests",
            "Requests held open now waiting for media (LL-HLS blocking playlist reloads, hinted parts, segments in progress)",
            held_requests.clone(),
        );
        registry.register(
            "streaming_store_bytes",
            "Bytes the segment store holds now (init segments, parts, segments, rendered playlists and manifests)",
            store_bytes.clone(),
        );
        for kind in crate::limits::LimitKind::ALL {
            drop(limit_hits.get_or_create(&KindLabels {
                kind: kind.as_str(),
            }));
        }
        registry.register(
            "streaming_viewers_by_quality",
            "Viewers watching a stream now, by the rendition they play",
            viewers_by_quality.clone(),
        );
        registry.register(
            "streaming_active_streams",
            "Streams live now (publishing media)",
            active_streams.clone(),
        );
        registry.register(
            "streaming_ingest_bytes",
            "Media bytes received from the encoder and sent to the hub",
            ingest_bytes.clone(),
        );
        registry.register(
            "streaming_egress_bytes",
            "Bytes of HLS/DASH bodies served to viewers",
            egress_bytes.clone(),
        );
        registry.register(
            "streaming_stream_errors",
            "Errors on a live stream (ingest protocol/IO, delivery HTTP errors)",
            stream_errors.clone(),
        );
        registry.register(
            "streaming_segment_request_duration_seconds",
            "Time to answer a delivery request (playlist, segment, init, manifest)",
            request_duration.clone(),
        );
        registry.register(
            "streaming_transcoder_speed",
            "FFmpeg speed relative to real time (1.0 = real time)",
            transcoder_speed.clone(),
        );
        registry.register(
            "streaming_concurrent_viewers",
            "Viewers watching a stream now",
            concurrent_viewers.clone(),
        );
        registry.register(
            "streaming_buffering_ratio",
            "Stall time divided by watch time",
            buffering_ratio.clone(),
        );
        // Every kind is present from the start, so rate() works on the first scrape.
        for kind in [
            RequestKind::Playlist,
            RequestKind::Segment,
            RequestKind::Init,
            RequestKind::Manifest,
        ] {
            drop(request_duration.get_or_create(&KindLabels {
                kind: kind.as_str(),
            }));
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                live: RwLock::default(),
                viewers_by_quality,
                active_streams,
                ingest_bytes,
                egress_bytes,
                stream_errors,
                request_duration,
                transcoder_speed,
                concurrent_viewers,
                buffering_ratio,
                limit_hits,
                open_connections,
                held_requests,
                store_bytes,
            }),
        }
    }

    /// A limit tripped (see [`crate::limits::Limits::trip`], which also logs).
    pub fn limit_hit(&self, kind: &'static str) {
        self.inner
            .limit_hits
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// How often the limit `kind` tripped so far.
    pub fn limit_hits(&self, kind: &'static str) -> u64 {
        self.inner
            .limit_hits
            .get_or_create(&KindLabels { kind })
            .get()
    }

    /// The gauge of open connections of a surface (`rtmp`, `http`, …).
    pub fn open_connections(&self, surface: &'static str) -> Gauge {
        self.inner
            .open_connections
            .get_or_create(&SurfaceLabels { surface })
            .clone()
    }

    /// The gauge of requests held open now (LL-HLS blocking reloads, hinted
    /// parts, segments in progress); moved by the delivery's held-request
    /// guards, which add one on entry and take it back when dropped.
    pub fn held_requests(&self) -> Gauge {
        self.inner.held_requests.clone()
    }

    /// The gauge of bytes the segment store holds, moved by the store
    /// ([`crate::store::MemoryStore::with_bytes_gauge`]).
    pub fn store_bytes(&self) -> Gauge {
        self.inner.store_bytes.clone()
    }

    /// A broadcast started: its series may exist from now on. Idempotent.
    pub fn stream_started(&self, id: Uuid) {
        let inner = &*self.inner;
        let mut live = write(&inner.live);
        live.entry(id).or_insert_with(|| {
            let labels = stream(id);
            StreamSeries {
                ingest: inner.ingest_bytes.get_or_create(&labels).clone(),
                concurrent_viewers: inner.concurrent_viewers.get_or_create(&labels).clone(),
                buffering_ratio: inner.buffering_ratio.get_or_create(&labels).clone(),
                transcoder_speed: None,
                egress: Vec::new(),
                errors: Vec::new(),
                qualities: Vec::new(),
                label: labels.stream_id,
            }
        });
        inner.active_streams.set(live.len() as i64);
    }

    /// A broadcast ended: deletes every series labelled with the stream. Idempotent.
    pub fn remove_stream(&self, id: Uuid) {
        let inner = &*self.inner;
        let mut live = write(&inner.live);
        if let Some(s) = live.remove(&id) {
            let labels = s.labels();
            inner.ingest_bytes.remove(&labels);
            inner.concurrent_viewers.remove(&labels);
            inner.buffering_ratio.remove(&labels);
            for (rendition, _) in &s.egress {
                inner.egress_bytes.remove(&s.rendition(rendition));
            }
            for (rendition, _) in &s.qualities {
                inner.viewers_by_quality.remove(&s.rendition(rendition));
            }
            for (kind, _) in &s.errors {
                inner.stream_errors.remove(&ErrorLabels {
                    stream_id: s.label.clone(),
                    kind: kind.clone(),
                });
            }
        }
        // FFmpeg may have reported once more after the last look.
        inner.transcoder_speed.remove(&stream(id));
        inner.active_streams.set(live.len() as i64);
    }

    /// Streams live now.
    pub fn active_streams(&self) -> usize {
        read(&self.inner.live).len()
    }

    /// Media bytes the encoder sent for a live stream.
    pub fn ingest_bytes(&self, id: Uuid, bytes: usize) {
        if let Some(s) = read(&self.inner.live).get(&id) {
            s.ingest.inc_by(bytes as u64);
        }
    }

    /// Body bytes served for a live stream's rendition (`manifest` for the
    /// master playlist and the MPD).
    pub fn egress_bytes(&self, id: Uuid, rendition: &str, bytes: u64) {
        {
            let live = read(&self.inner.live);
            let Some(s) = live.get(&id) else { return };
            if let Some(c) = find(&s.egress, rendition) {
                c.inc_by(bytes);
                return;
            }
        }
        // A rendition's first bytes: its series is created.
        let mut live = write(&self.inner.live);
        let Some(s) = live.get_mut(&id) else { return };
        if find(&s.egress, rendition).is_none() {
            let c = self
                .inner
                .egress_bytes
                .get_or_create(&s.rendition(rendition))
                .clone();
            s.egress.push((rendition.to_string(), c));
        }
        if let Some(c) = find(&s.egress, rendition) {
            c.inc_by(bytes);
        }
    }

    /// One error on a live stream, e.g. `protocol`, `io`, `timeout`, `http_5xx`.
    pub fn stream_error(&self, id: Uuid, kind: &str) {
        {
            let live = read(&self.inner.live);
            let Some(s) = live.get(&id) else { return };
            if let Some(c) = find(&s.errors, kind) {
                c.inc();
                return;
            }
        }
        let mut live = write(&self.inner.live);
        let Some(s) = live.get_mut(&id) else { return };
        if find(&s.errors, kind).is_none() {
            let labels = ErrorLabels {
                stream_id: s.label.clone(),
                kind: kind.to_string(),
            };
            let c = self.inner.stream_errors.get_or_create(&labels).clone();
            s.errors.push((kind.to_string(), c));
        }
        if let Some(c) = find(&s.errors, kind) {
            c.inc();
        }
    }

    /// How long a delivery request took. Unlabelled by stream, so always recorded.
    pub fn request_duration(&self, kind: RequestKind, seconds: f64) {
        self.inner
            .request_duration
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .observe(seconds);
    }

    /// FFmpeg's latest speed for a live stream.
    pub fn transcoder_speed(&self, id: Uuid, speed: f64) {
        {
            let live = read(&self.inner.live);
            let Some(s) = live.get(&id) else { return };
            if let Some(g) = &s.transcoder_speed {
                g.set(speed);
                return;
            }
        }
        let mut live = write(&self.inner.live);
        let Some(s) = live.get_mut(&id) else { return };
        let g = s.transcoder_speed.get_or_insert_with(|| {
            self.inner
                .transcoder_speed
                .get_or_create(&StreamLabels {
                    stream_id: s.label.clone(),
                })
                .clone()
        });
        g.set(speed);
    }

    /// Deletes the transcoder speed series (FFmpeg stopped for good).
    pub fn remove_transcoder(&self, id: Uuid) {
        let mut live = write(&self.inner.live);
        if let Some(s) = live.get_mut(&id) {
            s.transcoder_speed = None;
        }
        self.inner.transcoder_speed.remove(&stream(id));
    }

    /// Viewers watching a live stream now (filled by viewer sessions).
    pub fn set_concurrent_viewers(&self, id: Uuid, viewers: i64) {
        if let Some(s) = read(&self.inner.live).get(&id) {
            s.concurrent_viewers.set(viewers);
        }
    }

    /// Viewers of a live stream by quality; qualities no longer watched go to
    /// 0 and stay listed until the stream ends (bounded by its ladder).
    pub fn set_quality_distribution(
        &self,
        id: Uuid,
        distribution: &std::collections::BTreeMap<String, u32>,
    ) {
        let set = |s: &StreamSeries| {
            for (q, g) in &s.qualities {
                g.set(i64::from(distribution.get(q).copied().unwrap_or(0)));
            }
        };
        {
            let live = read(&self.inner.live);
            let Some(s) = live.get(&id) else { return };
            let known = |q: &String| find(&s.qualities, q).is_some();
            if s.qualities.len() >= MAX_QUALITIES || distribution.keys().all(known) {
                set(s);
                return;
            }
        }
        // A quality's first viewers: its series is created.
        let mut live = write(&self.inner.live);
        let Some(s) = live.get_mut(&id) else { return };
        for q in distribution.keys() {
            if find(&s.qualities, q).is_none() && s.qualities.len() < MAX_QUALITIES {
                let g = self
                    .inner
                    .viewers_by_quality
                    .get_or_create(&s.rendition(q))
                    .clone();
                s.qualities.push((q.clone(), g));
            }
        }
        set(s);
    }

    /// Stall time / watch time of a live stream (filled from player beacons).
    pub fn set_buffering_ratio(&self, id: Uuid, ratio: f64) {
        if let Some(s) = read(&self.inner.live).get(&id) {
            s.buffering_ratio.set(ratio);
        }
    }

    /// The running totals of every live stream, in one pass over their
    /// series (what the 1 s collector turns into rates).
    pub fn live_totals(&self) -> HashMap<Uuid, StreamTotals> {
        let live = read(&self.inner.live);
        live.iter()
            .map(|(id, s)| {
                let t = StreamTotals {
                    ingest_bytes: s.ingest.get(),
                    egress_bytes: s.egress.iter().map(|(_, c)| c.get()).sum(),
                    errors: s.errors.iter().map(|(_, c)| c.get()).sum(),
                    transcoder_speed: s.transcoder_speed.as_ref().map(|g| g.get()),
                };
                (*id, t)
            })
            .collect()
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(needle))
            .collect()
    }

    #[test]
    fn encode_names_every_family() {
        let m = Metrics::new();
        let fresh = m.encode();
        assert!(fresh.contains("streaming_active_streams 0"), "{fresh}");
        assert!(fresh.contains("streaming_held_requests 0"), "{fresh}");
        assert!(
            fresh.contains("streaming_segment_request_duration_seconds_count{kind=\"playlist\"} 0")
        );
        // prometheus-client leaves out families without series: give each one.
        let id = Uuid::new_v4();
        m.stream_started(id);
        m.egress_bytes(id, "source", 1);
        m.stream_error(id, "protocol");
        m.transcoder_speed(id, 1.0);
        m.set_quality_distribution(id, &[("480p".to_string(), 2)].into());
        let text = m.encode();
        assert!(
            text.contains(&format!(
                "streaming_viewers_by_quality{{stream_id=\"{id}\",rendition=\"480p\"}} 2"
            )),
            "{text}"
        );
        m.set_quality_distribution(id, &Default::default());
        assert!(m.encode().contains(&format!(
            "streaming_viewers_by_quality{{stream_id=\"{id}\",rendition=\"480p\"}} 0"
        )));
        m.remove_stream(id);
        assert!(!m.encode().contains("streaming_viewers_by_quality{"));
        m.stream_started(id);
        m.egress_bytes(id, "source", 1);
        m.stream_error(id, "protocol");
        m.transcoder_speed(id, 1.0);
        let text = m.encode();
        for name in [
            "streaming_active_streams",
            "streaming_ingest_bytes_total",
            "streaming_egress_bytes_total",
            "streaming_stream_errors_total",
            "streaming_segment_request_duration_seconds",
            "streaming_transcoder_speed",
            "streaming_concurrent_viewers",
            "streaming_buffering_ratio",
        ] {
            let base = name.trim_end_matches("_total");
            assert!(
                text.contains(&format!("# TYPE {base} ")),
                "{name} missing in:\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "streaming_concurrent_viewers{{stream_id=\"{id}\"}} 0"
            )),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn live_totals_sum_every_rendition_and_error_kind_of_live_streams() {
        let m = Metrics::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        m.stream_started(a);
        m.ingest_bytes(a, 1000);
        m.egress_bytes(a, "source", 300);
        m.egress_bytes(a, "480p", 200);
        m.stream_error(a, "protocol");
        m.stream_error(a, "http_5xx");
        m.stream_error(a, "http_5xx");
        m.transcoder_speed(a, 1.5);
        m.ingest_bytes(b, 7); // not live: ignored
        let t = m.live_totals();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[&a],
            StreamTotals {
                ingest_bytes: 1000,
                egress_bytes: 500,
                errors: 3,
                transcoder_speed: Some(1.5)
            }
        );
        m.remove_stream(a);
        assert!(m.live_totals().is_empty());
        // Live again: new series from 0, none of the old handles.
        m.stream_started(a);
        m.egress_bytes(a, "source", 5);
        m.stream_error(a, "protocol");
        assert_eq!(
            m.live_totals()[&a],
            StreamTotals {
                ingest_bytes: 0,
                egress_bytes: 5,
                errors: 1,
                transcoder_speed: None
            }
        );
        m.transcoder_speed(a, 1.0);
        m.remove_transcoder(a);
        assert_eq!(m.live_totals()[&a].transcoder_speed, None);
        assert!(!m.encode().contains("streaming_transcoder_speed{"));
    }

    #[test]
    fn records_only_live_streams_and_remove_stream_deletes_their_series() {
        let m = Metrics::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        // Not live yet: nothing is recorded.
        m.ingest_bytes(a, 10);
        m.egress_bytes(a, "source", 10);
        assert!(!m.encode().contains(&a.to_string()));

        m.stream_started(a);
        m.stream_started(a);
        m.stream_started(b);
        assert_eq!(m.active_streams(), 2);
        m.ingest_bytes(a, 1000);
        m.egress_bytes(a, "source", 500);
        m.egress_bytes(a, "480p", 200);
        m.stream_error(a, "protocol");
        m.transcoder_speed(a, 1.25);
        m.ingest_bytes(b, 7);
        m.request_duration(RequestKind::Segment, 0.002);
        let text = m.encode();
        let a_id = a.to_string();
        assert!(text.contains("streaming_active_streams 2"), "{text}");
        assert!(
            text.contains(&format!(
                "streaming_ingest_bytes_total{{stream_id=\"{a_id}\"}} 1000"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "streaming_egress_bytes_total{{stream_id=\"{a_id}\",rendition=\"480p\"}} 200"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "streaming_transcoder_speed{{stream_id=\"{a_id}\"}} 1.25"
            )),
            "{text}"
        );
        assert!(
            text.contains("streaming_segment_request_duration_seconds_count{kind=\"segment\"} 1"),
            "{text}"
        );
        assert!(lines_with(&text, &a_id).len() >= 7, "{text}");

        m.remove_stream(a);
        let text = m.encode();
        assert!(
            lines_with(&text, &a_id).is_empty(),
            "series of {a_id} left:\n{text}"
        );
        assert!(text.contains("streaming_active_streams 1"), "{text}");
        assert!(!lines_with(&text, &b.to_string()).is_empty());
        // Late traffic for an ended stream creates no series.
        m.egress_bytes(a, "source", 1);
        m.stream_error(a, "http_5xx");
        assert!(lines_with(&m.encode(), &a_id).is_empty());

        m.remove_stream(b);
        m.remove_stream(b);
        assert!(m.encode().contains("streaming_active_streams 0"));
        assert_eq!(m.active_streams(), 0);
    }
}
