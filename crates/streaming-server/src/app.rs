//! Wiring: one process with every role, and its graceful shutdown.
//!
//! Shutdown order: stop accepting RTMP, end every live broadcast exactly as an
//! encoder stop would (the hub's `End` makes the packagers close the
//! playlists; the ingest tasks persist ENDED and publish `StreamEnded`), wait
//! for those tasks, then stop HTTP. The whole sequence is bounded (5 s).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use streaming_core::config::Config;
use streaming_core::events::EventBus;
use streaming_core::hub::{CancellationToken, StreamHub};
use streaming_core::limits::Limits;
use streaming_core::metrics::Metrics;
use streaming_core::repo::{self, DynRepository};
use streaming_core::sessions::{SessionPolicy, ViewerSessions};
use streaming_core::store::SegmentStore;
use streaming_delivery::{CollectorDeps, DeliveryState, LiveFeed};
use streaming_ingest::IngestContext;
use streaming_transcode::Transcoder;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// A started server: its bound addresses and the handles to stop it.
pub struct RunningServer {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub repo: DynRepository,
    pub events: EventBus,
    pub hub: StreamHub,
    pub store: SegmentStore,
    pub transcoder: Arc<Transcoder>,
    pub metrics: Metrics,
    /// Viewer sessions (counts, quality distribution).
    pub sessions: ViewerSessions,
    pub config: Config,
    pub admin_token: String,
    shutdown: CancellationToken,
    done: JoinHandle<()>,
}

impl RunningServer {
    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the server and waits (at most ~5 s) for it to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the shutdown token fires, then for the server to stop.
    pub async fn wait_for_stop(self) {
        self.shutdown.cancelled().await;
        self.wait().await;
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) {
        if tokio::time::timeout(Duration::from_secs(5), self.done)
            .await
            .is_err()
        {
            warn!("shutdown took longer than 5 s; exiting anyway");
        }
    }
}

/// Opens the configured repository (creating the data dir for SQLite).
pub async fn open_repo(config: &Config) -> anyhow::Result<DynRepository> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let url = config.database_url();
    repo::connect(&url)
        .await
        .with_context(|| format!("opening database {}", redact(&url)))
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((_, rest)) => format!("…@{rest}"),
        None => url.to_string(),
    }
}

/// Starts every role; returns once the listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let repo = open_repo(&config).await?;
    let admin_token = crate::secrets::load_or_generate(
        &crate::secrets::ADMIN_TOKEN,
        config.admin_token.as_ref(),
        &config.data_dir,
    )?;
    let events = EventBus::default();
    let hub = StreamHub::new();
    let store = SegmentStore::new(
        config
            .media
            .retained_segments
            .max(config.media.playlist_segments + 2),
    );
    let shutdown = CancellationToken::new();
    let packagers = TaskTracker::new();
    streaming_delivery::spawn_packagers(
        &hub,
        store.clone(),
        config.media.clone(),
        packagers.clone(),
        shutdown.clone(),
    );
    let metrics = Metrics::new();
    let transcoder = Transcoder::new(
        config.transcode.clone(),
        config.media.segment_duration_ms,
        events.clone(),
    );
    transcoder.set_metrics(metrics.clone());
    transcoder.spawn(&hub, packagers.clone(), shutdown.clone());
    let session_secret = crate::secrets::load_or_generate(
        &crate::secrets::SESSION_SECRET,
        config.sessions.secret.as_ref(),
        &config.data_dir,
    )?;
    let sessions = ViewerSessions::with_policy(
        session_secret.as_bytes(),
        SessionPolicy::from_config(&config.sessions, &config.http),
        Limits::new(metrics.clone()),
    );
    let feed = LiveFeed::new();
    streaming_delivery::spawn_collector(
        CollectorDeps {
            sessions: sessions.clone(),
            repo: repo.clone(),
            metrics: metrics.clone(),
            store: store.clone(),
            feed: feed.clone(),
            inactivity: streaming_delivery::sessions::inactivity_timeout(
                config.media.segment_duration_ms,
            ),
            config: config.metrics.clone(),
            session_retention: Duration::from_secs(
                u64::from(config.sessions.retention_days.max(1)) * 86_400,
            ),
        },
        packagers.clone(),
        shutdown.clone(),
    );

    let rtmp = streaming_ingest::bind(config.rtmp_addr)
        .await
        .with_context(|| format!("binding RTMP on {}", config.rtmp_addr))?;
    let http = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    let rtmp_addr = rtmp.local_addr()?;
    let http_addr = http.local_addr()?;
    let mut shown = config.clone();
    shown.rtmp_addr = rtmp_addr;
    shown.http_addr = http_addr;

    let api = streaming_api::router(streaming_api::ApiState {
        repo: repo.clone(),
        admin_token: Some(Arc::from(admin_token.as_str())),
        rtmp_base: Arc::from(shown.rtmp_base()),
        http_base: Arc::from(shown.http_base()),
        hub: hub.clone(),
        store: Some(store.clone()),
        sessions: sessions.clone(),
        readiness: streaming_api::Readiness::new(
            vec![("rtmp", rtmp_addr), ("http", http_addr)],
            config.transcode.ffmpeg.clone(),
            Some(shutdown.clone()),
        ),
    });
    let delivery = streaming_delivery::router(DeliveryState {
        store: store.clone(),
        media: config.media.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        repo: repo.clone(),
        sessions: sessions.clone(),
        cdn_mode: config.delivery.cdn_mode,
        feed,
    });
    let app = api
        .merge(delivery)
        .layer(tower_http::trace::TraceLayer::new_for_http());

    let ingest_ctx = Arc::new(
        IngestContext::new(
            repo.clone(),
            hub.clone(),
            events.clone(),
            config.ingest.clone(),
        )
        .with_metrics(metrics.clone()),
    );
    let ingest = tokio::spawn(streaming_ingest::serve(rtmp, ingest_ctx, shutdown.clone()));
    let http_stop = CancellationToken::new();
    let http_task = {
        let stop = http_stop.clone();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(http, app)
                .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serve.await {
                warn!(error = %e, "HTTP server failed");
            }
        })
    };
    info!(%rtmp_addr, %http_addr, "streaming server started");

    let done = {
        let shutdown = shutdown.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            info!("shutting down: ending live streams");
            hub.kick_all();
            let _ = ingest.await;
            packagers.close();
            if tokio::time::timeout(Duration::from_secs(3), packagers.wait())
                .await
                .is_err()
            {
                warn!("packagers did not finish in time");
            }
            http_stop.cancel();
            if tokio::time::timeout(Duration::from_secs(1), http_task)
                .await
                .is_err()
            {
                info!("HTTP connections still open at exit");
            }
            info!("shutdown complete");
        })
    };

    Ok(RunningServer {
        rtmp_addr,
        http_addr,
        repo,
        events,
        hub,
        store,
        transcoder,
        metrics,
        sessions,
        config: shown,
        admin_token,
        shutdown,
        done,
    })
}
