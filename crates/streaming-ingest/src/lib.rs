//! RTMP ingest: a tokio listener and one task per connection driving the
//! sans-IO [`streaming_media::rtmp::ServerSession`].
//!
//! The task reads the socket, feeds the engine, writes what it returns and acts
//! on its events: it checks the stream key against the repository (only hashes
//! are stored), moves the stream through its states, and pushes frames into
//! the [`StreamHub`](streaming_core::hub::StreamHub). A second publish with a
//! live stream's key takes the stream over; the old connection is closed.

mod connection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use streaming_core::config::IngestConfig;
use streaming_core::events::EventBus;
use streaming_core::hub::{CancellationToken, StreamHub};
use streaming_core::metrics::Metrics;
use streaming_core::repo::DynRepository;
use streaming_core::status::StatusWriter;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// What every connection task shares.
pub struct IngestContext {
    pub repo: DynRepository,
    pub hub: StreamHub,
    pub events: EventBus,
    pub config: IngestConfig,
    /// Prometheus metrics (a private registry unless [`IngestContext::with_metrics`] is used).
    pub metrics: Metrics,
    /// Records status changes, retrying through database faults (without
    /// one, see [`IngestContext::with_status_writer`], changes are written
    /// directly and lost when the database fails).
    pub status: Option<StatusWriter>,
    next_conn: AtomicU64,
}

impl IngestContext {
    pub fn new(
        repo: DynRepository,
        hub: StreamHub,
        events: EventBus,
        config: IngestConfig,
    ) -> Self {
        Self {
            repo,
            hub,
            events,
            config,
            metrics: Metrics::default(),
            status: None,
            next_conn: AtomicU64::new(1),
        }
    }

    /// Records into the server's shared metrics.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Records status changes through the process's status writer.
    pub fn with_status_writer(mut self, status: StatusWriter) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.config.read_timeout_secs.max(1))
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.config.write_timeout_secs.max(1))
    }
}

/// Accepts RTMP connections until `shutdown` fires, then waits for every
/// connection task to end its broadcast the way an encoder stop would.
pub async fn serve(listener: TcpListener, ctx: Arc<IngestContext>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(ctx.config.max_connections.max(1)));
    let local = listener.local_addr().ok();
    info!(addr = ?local, "RTMP ingest listening");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%peer, "RTMP connection refused: connection limit reached");
            continue;
        };
        let conn_id = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            connection::run(socket, peer, conn_id, ctx, shutdown).await;
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    info!("RTMP ingest stopped");
}

/// Binds the RTMP listener (separately, so callers learn the bound address).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
