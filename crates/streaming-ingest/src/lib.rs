//! RTMP(S) ingest: a tokio listener and one task per connection driving the
//! sans-IO [`streaming_media::rtmp::ServerSession`].
//!
//! The task reads the socket, feeds the engine, writes what it returns and acts
//! on its events: it checks the stream key against the repository (only hashes
//! are stored), moves the stream through its states, parses every FLV tag once
//! (`media.rs`) and pushes the configurations and frames into the
//! [`StreamHub`](streaming_core::hub::StreamHub). A second publish with a
//! live stream's key takes the stream over; the old connection is closed.
//!
//! Limits (issue 9, "RTMP"; every one counted through
//! [`Limits::trip`](streaming_core::limits::Limits::trip)): bans, connection
//! caps and the pending pool at accept (see `admission.rs`); the handshake
//! (TLS included, for RTMPS) within `handshake_timeout_secs` and an accepted
//! publish within `publish_timeout_secs` of accept; a publisher that sends no
//! media for `idle_publish_timeout_secs` is closed; the engine's pre-publish
//! and publishing limits, with one [`ReassemblyBudget`] for all connections.

mod admission;
mod connection;
mod media;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use streaming_core::config::IngestConfig;
use streaming_core::events::EventBus;
use streaming_core::hub::{CancellationToken, StreamHub};
use streaming_core::limits::Limits;
use streaming_core::metrics::Metrics;
use streaming_core::repo::DynRepository;
use streaming_core::status::StatusWriter;
use streaming_media::rtmp::{ReassemblyBudget, ServerConfig, SessionLimits};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use admission::{Admission, LogGate};

/// What every connection task shares.
pub struct IngestContext {
    pub repo: DynRepository,
    pub hub: StreamHub,
    pub events: EventBus,
    /// The limits in it are read when the context is built.
    pub config: IngestConfig,
    /// Prometheus metrics (a private registry unless [`IngestContext::with_metrics`] is used).
    pub metrics: Metrics,
    /// Records status changes, retrying through database faults (without
    /// one, see [`IngestContext::with_status_writer`], changes are written
    /// directly and lost when the database fails).
    pub status: Option<StatusWriter>,
    /// Counts and logs limit hits (on `metrics` unless [`IngestContext::with_limits`] is used).
    pub limits: Limits,
    next_conn: AtomicU64,
    admission: Admission,
    budget: ReassemblyBudget,
    /// Log lines hostile connections can cause (closed on error, refused keys).
    conn_log: LogGate,
    refusal_log: LogGate,
}

/// Lines of each outsider-caused kind logged at once before the gate
/// narrows to one a second.
const LOG_BURST: u32 = 10;

impl IngestContext {
    pub fn new(
        repo: DynRepository,
        hub: StreamHub,
        events: EventBus,
        config: IngestConfig,
    ) -> Self {
        let metrics = Metrics::default();
        let limits = Limits::new(metrics.clone());
        let admission = Admission::new(&config, limits.clone(), metrics.clone());
        Self {
            repo,
            hub,
            events,
            budget: ReassemblyBudget::new(config.reassembly_budget_bytes),
            config,
            metrics,
            limits,
            status: None,
            next_conn: AtomicU64::new(1),
            admission,
            conn_log: LogGate::new(LOG_BURST),
            refusal_log: LogGate::new(LOG_BURST),
        }
    }

    /// Records into the server's shared metrics (limit hits included, unless
    /// [`IngestContext::with_limits`] comes after).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        let limits = Limits::new(metrics.clone());
        self.with_metrics_and_limits(metrics, limits)
    }

    /// Counts limit hits with the server's shared [`Limits`] (and records
    /// into its metrics).
    pub fn with_limits(self, limits: Limits) -> Self {
        let metrics = limits.metrics().clone();
        self.with_metrics_and_limits(metrics, limits)
    }

    fn with_metrics_and_limits(mut self, metrics: Metrics, limits: Limits) -> Self {
        self.admission = Admission::new(&self.config, limits.clone(), metrics.clone());
        self.metrics = metrics;
        self.limits = limits;
        self
    }

    /// Records status changes through the process's status writer.
    pub fn with_status_writer(mut self, status: StatusWriter) -> Self {
        self.status = Some(status);
        self
    }

    /// The reassembly budget all connections share.
    pub fn reassembly_budget(&self) -> &ReassemblyBudget {
        &self.budget
    }

    /// The engine configuration of one connection.
    pub(crate) fn session_config(&self) -> ServerConfig {
        let c = &self.config;
        ServerConfig {
            pre_publish: SessionLimits {
                max_message_len: c.pre_publish_max_message_bytes,
                max_amf_values: c.max_amf_values,
                max_amf_depth: c.max_amf_depth,
                max_partial_messages: c.max_partial_messages,
            },
            publishing: SessionLimits {
                max_message_len: c.max_message_bytes,
                ..SessionLimits::PUBLISHING
            },
            reassembly_budget: Some(self.budget.clone()),
            ..ServerConfig::default()
        }
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.config.read_timeout_secs.max(1))
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.config.write_timeout_secs.max(1))
    }

    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.config.handshake_timeout_secs.max(1))
    }

    pub(crate) fn publish_timeout(&self) -> Duration {
        Duration::from_secs(self.config.publish_timeout_secs.max(1))
    }

    pub(crate) fn idle_publish_timeout(&self) -> Duration {
        Duration::from_secs(self.config.idle_publish_timeout_secs.max(1))
    }
}

/// Accepts RTMP connections (RTMPS when `tls` is given: the TLS handshake
/// runs in the connection's task, within its handshake deadline) until
/// `shutdown` fires, then waits for every connection task to end its
/// broadcast the way an encoder stop would.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<IngestContext>,
    shutdown: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    let tracker = TaskTracker::new();
    let local = listener.local_addr().ok();
    let scheme = if tls.is_some() { "RTMPS" } else { "RTMP" };
    info!(addr = ?local, "{scheme} ingest listening");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "{scheme} accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let accepted_at = Instant::now();
        // A refusal is counted and logged by `admit`; the socket just closes.
        let Some(admitted) = ctx.admission.admit(peer.ip(), accepted_at) else {
            continue;
        };
        let conn_id = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let accepted = connection::Accepted {
                peer,
                conn_id,
                at: tokio::time::Instant::from_std(accepted_at),
                admitted,
            };
            connection::run(socket, tls, accepted, ctx, shutdown).await;
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    info!("{scheme} ingest stopped");
}

/// Binds the RTMP listener (separately, so callers learn the bound address).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
