//! The collector's tokio driver: one tick per whole wall-clock second.
//!
//! Each tick: sweep the viewer sessions (end idle ones), publish viewer counts
//! and buffering ratios to Prometheus, run the [`Collector`], send every
//! watched stream's `metrics` WebSocket message (serialised once, shared by
//! all its clients), and queue the samples. Every `metrics.flush_secs` the
//! queued samples and the roll-ups go to the repository in one batch; raw
//! samples older than `metrics.raw_retention_hours` are pruned every minute.
//! Viewer sessions go to the repository in one batch per tick (those
//! confirmed and those ended); ended sessions older than
//! `sessions.retention_days` are pruned at start and every hour.
//! Writes run in order on one writer task behind a bounded queue: a slow
//! database delays history, never the tick (a full queue drops the batch with
//! a warning). On shutdown every session ends and the last batch is written.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use streaming_core::config::MetricsConfig;
use streaming_core::hub::CancellationToken;
use streaming_core::metrics::Metrics;
use streaming_core::model::{MetricsRollup, StreamMetrics, StreamStatus, ViewerSession};
use streaming_core::repo::DynRepository;
use streaming_core::sessions::ViewerSessions;
use streaming_core::store::SharedStore;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};
use uuid::Uuid;

use super::{Collector, live_inputs};
use crate::http::ws::{metrics_text, qualities_of};
use crate::live::LiveFeed;

/// Writes queued before the writer counts as stuck.
const WRITE_QUEUE: usize = 64;
/// Interval of raw-sample pruning.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Interval of viewer-session pruning.
const PRUNE_SESSIONS_EVERY: Duration = Duration::from_secs(3600);

/// What the collector reads and where it writes.
#[derive(Clone)]
pub struct CollectorDeps {
    pub sessions: ViewerSessions,
    pub repo: DynRepository,
    pub metrics: Metrics,
    pub store: SharedStore,
    pub feed: LiveFeed,
    /// Viewer-session inactivity timeout.
    pub inactivity: Duration,
    pub config: MetricsConfig,
    /// How long ended viewer sessions are kept (`sessions.retention_days`).
    pub session_retention: Duration,
}

enum Write {
    Sessions(Vec<ViewerSession>),
    History(Vec<StreamMetrics>, Vec<MetricsRollup>),
    Prune(chrono::DateTime<Utc>),
    PruneSessions(chrono::DateTime<Utc>),
}

/// Starts the collector and its writer on `tasks`; both stop on `shutdown`
/// after a last write.
pub fn spawn_collector(deps: CollectorDeps, tasks: TaskTracker, shutdown: CancellationToken) {
    let (tx, rx) = mpsc::channel::<Write>(WRITE_QUEUE);
    tasks.spawn(writer(deps.repo.clone(), rx));
    tasks.spawn(run(deps, tx, shutdown));
}

async fn writer(repo: DynRepository, mut rx: mpsc::Receiver<Write>) {
    while let Some(w) = rx.recv().await {
        match w {
            Write::Sessions(list) => match repo.upsert_viewer_sessions(&list).await {
                Ok(()) => debug!(sessions = list.len(), "viewer sessions saved"),
                Err(e) => warn!(sessions = list.len(), error = %e,
                    "saving viewer sessions failed"),
            },
            Write::History(samples, rollups) => {
                if !samples.is_empty()
                    && let Err(e) = repo.record_metrics_batch(&samples).await
                {
                    warn!(samples = samples.len(), error = %e, "saving metrics samples failed");
                }
                if !rollups.is_empty()
                    && let Err(e) = repo.upsert_rollups(&rollups).await
                {
                    warn!(rollups = rollups.len(), error = %e, "saving metrics roll-ups failed");
                }
            }
            Write::Prune(before) => match repo.prune_metrics(before).await {
                Ok(n) if n > 0 => debug!(removed = n, %before, "pruned raw metrics samples"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "pruning metrics samples failed"),
            },
            Write::PruneSessions(before) => match repo.prune_viewer_sessions(before).await {
                Ok(n) if n > 0 => debug!(removed = n, %before, "pruned ended viewer sessions"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "pruning viewer sessions failed"),
            },
        }
    }
}

fn queue(tx: &mpsc::Sender<Write>, w: Write) {
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(w) {
        warn!("the database is not keeping up; dropping a metrics write");
    }
}

/// Milliseconds until just after the next whole second.
fn until_next_second() -> Duration {
    let ms = Utc::now().timestamp_millis().rem_euclid(1000);
    Duration::from_millis(u64::try_from(1000 - ms).unwrap_or(1000) + 2)
}

async fn run(deps: CollectorDeps, tx: mpsc::Sender<Write>, shutdown: CancellationToken) {
    let mut collector = Collector::new();
    let mut pending: Vec<StreamMetrics> = Vec::new();
    let flush_every = Duration::from_secs(u64::from(deps.config.flush_secs.max(1)));
    let retention = chrono::Duration::hours(i64::from(deps.config.raw_retention_hours.max(1)));
    let mut last_flush = Instant::now();
    let mut last_prune: Option<Instant> = None;
    let mut last_session_prune: Option<Instant> = None;
    let session_retention =
        chrono::Duration::from_std(deps.session_retention).unwrap_or(chrono::Duration::MAX);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(until_next_second()) => {}
        }
        let now_ms = Utc::now().timestamp_millis();
        let samples = tick(&deps, &mut collector, now_ms, &tx);
        pending.extend(samples);
        if last_flush.elapsed() >= flush_every {
            last_flush = Instant::now();
            let rollups = collector.take_rollups();
            queue(&tx, Write::History(std::mem::take(&mut pending), rollups));
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            queue(&tx, Write::Prune(Utc::now() - retention));
        }
        if last_session_prune.is_none_or(|t| t.elapsed() >= PRUNE_SESSIONS_EVERY) {
            last_session_prune = Some(Instant::now());
            if let Some(before) = Utc::now().checked_sub_signed(session_retention) {
                queue(&tx, Write::PruneSessions(before));
            }
        }
    }
    // Every session ends with the server; the minutes in progress close.
    let sweep = deps
        .sessions
        .sweep(Instant::now() + deps.inactivity, deps.inactivity);
    collector.tick(0, &HashMap::new(), &mut HashMap::new());
    let last = [
        Write::Sessions(sweep.persist),
        Write::History(pending, collector.take_rollups()),
    ];
    for w in last {
        if tokio::time::timeout(Duration::from_secs(1), tx.send(w))
            .await
            .is_err()
        {
            warn!("the database is not keeping up; final metrics not saved");
        }
    }
}

/// One tick; returns the samples of live streams (to persist).
fn tick(
    deps: &CollectorDeps,
    collector: &mut Collector,
    now_ms: i64,
    tx: &mpsc::Sender<Write>,
) -> Vec<StreamMetrics> {
    let at_ms = now_ms - now_ms.rem_euclid(1000);
    let mut sweep = deps.sessions.sweep(Instant::now(), deps.inactivity);
    if !sweep.persist.is_empty() {
        queue(tx, Write::Sessions(std::mem::take(&mut sweep.persist)));
    }
    for (id, n) in &sweep.counts {
        deps.metrics
            .set_concurrent_viewers(*id, i64::try_from(*n).unwrap_or(i64::MAX));
    }
    let live = live_inputs(&deps.metrics, &deps.store);
    // Takes the audiences of live streams; those of the others stay for below.
    let samples = collector.tick(at_ms, &live, &mut sweep.audiences);
    let qualities = |id: Uuid| {
        deps.store
            .summary(id)
            .map(|s| qualities_of(&s))
            .unwrap_or_default()
    };
    for s in &samples {
        deps.metrics
            .set_buffering_ratio(s.stream_id, s.buffering_ratio);
        deps.metrics
            .set_quality_distribution(s.stream_id, &s.quality_distribution);
    }
    let by_id: HashMap<Uuid, &StreamMetrics> = samples.iter().map(|s| (s.stream_id, s)).collect();
    for (id, status) in deps.feed.watched() {
        let text = match by_id.get(&id) {
            Some(s) => metrics_text(s, StreamStatus::Active, qualities(id), now_ms),
            None => {
                // Not live here (pending, ended, or live on another replica):
                // the audience only, with the status the clients last saw.
                let aud = sweep.audiences.get(&id);
                let idle = StreamMetrics {
                    stream_id: id,
                    at: super::ms_to_utc(at_ms),
                    concurrent_viewers: aud.map_or(0, |a| a.viewers),
                    quality_distribution: aud
                        .map(|a| a.quality_distribution.clone())
                        .unwrap_or_default(),
                    buffering_ratio: aud.map_or(0.0, |a| a.buffering_ratio()),
                    ..StreamMetrics::default()
                };
                metrics_text(&idle, status, qualities(id), now_ms)
            }
        };
        deps.feed.publish(id, text);
    }
    samples
}
