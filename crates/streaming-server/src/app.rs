//! Wiring: one process with every role, and its graceful shutdown.
//!
//! Shutdown order: stop accepting RTMP, end every live broadcast exactly as an
//! encoder stop would (the hub's `End` makes the packagers close the
//! playlists; the ingest tasks persist ENDED and publish `StreamEnded`), wait
//! for those tasks, then stop HTTP. The whole sequence is bounded (5 s).
//!
//! Listeners: see [`crate::listeners`] (which ones), [`crate::http_server`]
//! (HTTP caps and deadlines) and [`crate::tls`] (certificates).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use streaming_api::guard::Guard;
use streaming_core::config::Config;
use streaming_core::events::EventBus;
use streaming_core::hub::{CancellationToken, StreamHub};
use streaming_core::limits::{AddrSlots, Limits, Origins};
use streaming_core::metrics::Metrics;
use streaming_core::repo::{self, DynRepository};
use streaming_core::sessions::{SessionPolicy, ViewerSessions};
use streaming_core::store::{MemoryStore, SharedStore};
use streaming_delivery::http::DeliveryGuard;
use streaming_delivery::publish::RenderConfig;
use streaming_delivery::{CollectorDeps, DeliveryState, LiveFeed};
use streaming_ingest::IngestContext;
use streaming_transcode::Transcoder;
use tokio::task::JoinHandle;

use crate::http_server::{self, HttpListener};
use crate::listeners::{Listeners, addr_of};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// A started server: its bound addresses and the handles to stop it.
pub struct RunningServer {
    /// The plain RTMP listener (the RTMPS one when plain RTMP is off).
    pub rtmp_addr: SocketAddr,
    /// The plain HTTP listener (the HTTPS one when plain HTTP is off).
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub rtmps_addr: Option<SocketAddr>,
    /// The metrics-only listener, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The bearer token of `/metrics` (`None`: public).
    pub metrics_token: Option<String>,
    pub limits: Limits,
    /// The certificate store of the TLS listeners (reloaded from its files).
    pub tls: Option<Arc<crate::tls::CertStore>>,
    pub repo: DynRepository,
    pub events: EventBus,
    pub hub: StreamHub,
    pub store: SharedStore,
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

/// The addresses shown to users: plain listeners first, else the TLS ones.
fn primary_addrs(l: &Listeners) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let rtmp = addr_of(&l.rtmp)
        .or(addr_of(&l.rtmps))
        .context("no RTMP listener")?;
    let http = addr_of(&l.http)
        .or(addr_of(&l.https))
        .context("no HTTP listener")?;
    Ok((rtmp, http))
}

/// Starts every role; returns once the listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let repo = open_repo(&config).await?;
    // Crash recovery, before any publish: end what a crash of this node left ACTIVE.
    let node_id = streaming_core::recovery::node_id(&config.data_dir).context("node id")?;
    if let Err(e) = streaming_core::recovery::end_orphaned_at_start(&*repo, &node_id).await {
        warn!(error = %e, "crash recovery failed: streams left ACTIVE stay so");
    }
    let (status, status_task) =
        streaming_core::status::StatusWriter::spawn(repo.clone(), Some(node_id));
    let admin_token = crate::secrets::load_or_generate(
        &crate::secrets::ADMIN_TOKEN,
        config.admin_token.as_ref(),
        &config.data_dir,
    )?;
    // `/metrics` wants a token unless it is public (or on its own listener only).
    let metrics_token = if config.metrics.public {
        None
    } else {
        Some(crate::secrets::load_or_generate(
            &crate::secrets::METRICS_TOKEN,
            config.metrics.token.as_ref(),
            &config.data_dir,
        )?)
    };
    let events = EventBus::default();
    let hub = StreamHub::new();
    let metrics = Metrics::new();
    let store: SharedStore = Arc::new(MemoryStore::with_bytes_gauge(metrics.store_bytes()));
    let shutdown = CancellationToken::new();
    let packagers = TaskTracker::new();
    streaming_delivery::spawn_packagers(
        &hub,
        store.clone(),
        RenderConfig::new(&config.media, config.delivery.cdn_mode),
        packagers.clone(),
        shutdown.clone(),
    );
    let transcoder = Transcoder::new(
        config.transcode.clone(),
        config.media.segment_duration_ms,
        events.clone(),
    );
    transcoder.set_metrics(metrics.clone());
    transcoder.spawn(&hub, packagers.clone(), shutdown.clone());
    let limits = Limits::new(metrics.clone());
    let session_secret = crate::secrets::load_or_generate(
        &crate::secrets::SESSION_SECRET,
        config.sessions.secret.as_ref(),
        &config.data_dir,
    )?;
    let sessions = ViewerSessions::with_policy(
        session_secret.as_bytes(),
        SessionPolicy::from_config(&config.sessions, &config.http),
        limits.clone(),
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

    let listeners = Listeners::bind(&config).await?;
    let tls = crate::tls::acceptors(&config.tls, &shutdown)?;
    let named = listeners.named();
    let (rtmp_addr, http_addr) = primary_addrs(&listeners)?;
    let mut shown = config.clone();
    shown.rtmp_addr = rtmp_addr;
    shown.http_addr = http_addr;
    shown.tls.https_addr = addr_of(&listeners.https);
    shown.tls.rtmps_addr = addr_of(&listeners.rtmps);
    shown.metrics.listen_addr = addr_of(&listeners.metrics);

    let api = streaming_api::router(streaming_api::ApiState {
        repo: repo.clone(),
        admin_token: Some(Arc::from(admin_token.as_str())),
        rtmp_base: Arc::from(shown.rtmp_base()),
        http_base: Arc::from(shown.http_base()),
        hub: hub.clone(),
        store: Some(store.clone()),
        sessions: sessions.clone(),
        readiness: streaming_api::Readiness::new(
            named.clone(),
            config.transcode.ffmpeg.clone(),
            Some(shutdown.clone()),
        ),
        guard: Arc::new(Guard::new(&config.http, &config.cors, limits.clone())),
        max_body_bytes: config.http.max_api_body_bytes,
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
        guard: DeliveryGuard {
            limits: limits.clone(),
            playback_origins: Origins::new(&config.cors.playback_origins),
            metrics_token: metrics_token.as_deref().map(Arc::from),
            ws_slots: AddrSlots::new(
                config.websocket.max_clients,
                config.websocket.max_clients_per_addr,
            ),
            ws_max_message_bytes: config.websocket.max_message_bytes,
            held: streaming_delivery::http::held::HeldRequests::new(
                config.http.max_held_requests,
                config.http.max_held_requests_per_addr,
                limits.clone(),
            ),
        },
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
        .with_limits(limits.clone())
        .with_status_writer(status),
    );
    let Listeners {
        rtmp,
        rtmps,
        http,
        https,
        metrics: metrics_listener,
    } = listeners;
    // Both RTMP listeners share one context: pools, bans and the
    // reassembly budget hold across them.
    let ingest = TaskTracker::new();
    if let Some(l) = rtmp {
        ingest.spawn(streaming_ingest::serve(
            l,
            ingest_ctx.clone(),
            shutdown.clone(),
            None,
        ));
    }
    if let Some(l) = rtmps {
        let acceptor = tls.as_ref().map(|t| t.rtmps.clone());
        ingest.spawn(streaming_ingest::serve(
            l,
            ingest_ctx.clone(),
            shutdown.clone(),
            acceptor,
        ));
    }
    ingest.close();

    // HTTP(S): accept loops stop on `http_stop`, after the streams ended.
    let http_stop = CancellationToken::new();
    let http_tasks = TaskTracker::new();
    let http_conf = Arc::new(config.http.clone());
    let slots = AddrSlots::new(
        config.http.max_connections,
        config.http.max_connections_per_addr,
    );
    let listener = |name, app: axum::Router, tls| HttpListener {
        name,
        app,
        tls,
        config: http_conf.clone(),
        slots: slots.clone(),
        limits: limits.clone(),
    };
    if let Some(l) = http {
        http_server::spawn(
            l,
            listener("http", app.clone(), None),
            http_stop.clone(),
            &http_tasks,
        );
    }
    if let Some(l) = https {
        let acceptor = tls.as_ref().map(|t| t.https.clone());
        http_server::spawn(
            l,
            listener("https", app.clone(), acceptor),
            http_stop.clone(),
            &http_tasks,
        );
    }
    if let Some(l) = metrics_listener {
        let app = streaming_delivery::http::metrics_router(metrics.clone());
        http_server::spawn(
            l,
            listener("metrics", app, None),
            http_stop.clone(),
            &http_tasks,
        );
    }
    http_tasks.close();
    for (name, addr) in &named {
        info!(listener = *name, %addr, "listening");
    }
    info!(%rtmp_addr, %http_addr, "streaming server started");

    let done = {
        let shutdown = shutdown.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            info!("shutting down: ending live streams");
            hub.kick_all();
            ingest.wait().await;
            status_task.shutdown(Duration::from_millis(1500)).await;
            packagers.close();
            if tokio::time::timeout(Duration::from_secs(3), packagers.wait())
                .await
                .is_err()
            {
                warn!("packagers did not finish in time");
            }
            http_stop.cancel();
            if tokio::time::timeout(Duration::from_millis(1500), http_tasks.wait())
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
        https_addr: shown.tls.https_addr,
        rtmps_addr: shown.tls.rtmps_addr,
        metrics_addr: shown.metrics.listen_addr,
        metrics_token,
        limits,
        tls: tls.map(|t| t.store),
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
