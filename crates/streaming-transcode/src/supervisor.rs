//! One supervisor task per live stream: plans the ladder from the source
//! track's configuration (as the hub parsed it: size and frame rate), runs
//! FFmpeg, restarts it with back-off, drops the top rung when FFmpeg cannot keep
//! up, and stops it when the broadcast ends. The renditions go back into the
//! same broadcast as tracks, through the hub's [`TrackSender`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use streaming_core::config::TranscodeConfig;
use streaming_core::events::{Event, EventBus};
use streaming_core::hub::{
    CancellationToken, HubMessage, RenditionSpec, SOURCE, StreamHub, Subscription, TrackSender,
};
use streaming_core::metrics::Metrics;
use streaming_media::media::{MediaFrame, TrackConfig, TrackKind};
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use crate::child::{ChildEvent, FfmpegChild};
use crate::ladder::plan;
use crate::meter::BitrateMeter;

/// What operators see of a stream's transcoder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscodeStats {
    pub ladder: Vec<String>,
    pub pid: Option<u32>,
    pub speed: f64,
    pub fps: f64,
    pub drop_frames: u64,
    pub dup_frames: u64,
    pub restarts: u32,
}

/// Finds the FFmpeg program: the configured path, else `ffmpeg` on `PATH`.
pub fn find_ffmpeg(configured: Option<&Path>) -> Option<PathBuf> {
    let runs = |p: &Path| {
        std::process::Command::new(p)
            .arg("-version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(p) = configured {
        return runs(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ffmpeg"))
        .find(|p| p.is_file() && runs(p))
}

pub struct Transcoder {
    config: TranscodeConfig,
    segment_ms: u32,
    ffmpeg: Option<PathBuf>,
    events: EventBus,
    stats: Mutex<HashMap<Uuid, TranscodeStats>>,
    metrics: OnceLock<Metrics>,
}

impl Transcoder {
    pub fn new(config: TranscodeConfig, segment_ms: u32, events: EventBus) -> Arc<Self> {
        let ffmpeg = if config.enabled {
            find_ffmpeg(config.ffmpeg.as_deref())
        } else {
            None
        };
        match (&ffmpeg, config.enabled) {
            (Some(p), _) => info!(ffmpeg = %p.display(), "transcoding enabled"),
            (None, true) => warn!(
                "FFmpeg not found (install it with `apt-get install -y ffmpeg` or set transcode.ffmpeg): streams run source-only"
            ),
            (None, false) => {
                info!("transcoding disabled by configuration: streams run source-only")
            }
        }
        Arc::new(Self {
            config,
            segment_ms,
            ffmpeg,
            events,
            stats: Mutex::new(HashMap::new()),
            metrics: OnceLock::new(),
        })
    }

    /// Reports FFmpeg's speed into the server's metrics (the first call wins).
    pub fn set_metrics(&self, metrics: Metrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Whether lower rungs can be made at all.
    pub fn available(&self) -> bool {
        self.ffmpeg.is_some()
    }

    pub fn ffmpeg_path(&self) -> Option<&Path> {
        self.ffmpeg.as_deref()
    }

    pub fn stats(&self, stream_id: Uuid) -> Option<TranscodeStats> {
        self.lock().get(&stream_id).cloned()
    }

    /// PIDs of the FFmpeg processes running now.
    pub fn pids(&self) -> Vec<u32> {
        self.lock().values().filter_map(|s| s.pid).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, TranscodeStats>> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, id: Uuid, f: impl FnOnce(&mut TranscodeStats)) {
        f(self.lock().entry(id).or_default());
    }

    /// Supervises every broadcast the hub opens, until `stop` fires.
    pub fn spawn(self: &Arc<Self>, hub: &StreamHub, tracker: TaskTracker, stop: CancellationToken) {
        if !self.available() {
            return;
        }
        let mut opened = hub.consumer();
        let this = self.clone();
        let inner = tracker.clone();
        tracker.spawn(async move {
            loop {
                let s = tokio::select! {
                    _ = stop.cancelled() => break,
                    s = opened.recv() => match s { Some(s) => s, None => break },
                };
                let span = info_span!("transcoder", stream_id = %s.stream_id);
                let task = Supervisor::new(this.clone(), s.stream_id, s.tracks).run(s.rx);
                inner.spawn(task.instrument(span));
            }
        });
    }
}

struct Supervisor {
    t: Arc<Transcoder>,
    stream_id: Uuid,
    out: TrackSender,
    /// The source video's configuration in force.
    video_config: Option<Arc<TrackConfig>>,
    source: Option<(u32, u32, f64)>,
    ladder: Vec<RenditionSpec>,
    child: Option<FfmpegChild>,
    restart_at: Instant,
    backoff: Duration,
    meter: BitrateMeter,
    reported_kbps: Option<u32>,
    slow_since: Option<Instant>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(8);

impl Supervisor {
    fn new(t: Arc<Transcoder>, stream_id: Uuid, out: TrackSender) -> Self {
        Self {
            t,
            stream_id,
            out,
            video_config: None,
            source: None,
            ladder: Vec::new(),
            child: None,
            restart_at: Instant::now(),
            backoff: Duration::from_millis(500),
            meter: BitrateMeter::new(5000),
            reported_kbps: None,
            slow_since: None,
        }
    }

    async fn run(mut self, mut rx: Subscription) {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(HubMessage::Config { track, config }) if &*track == SOURCE => {
                        self.on_config(config).await
                    }
                    Ok(HubMessage::Frame { track, frame }) if &*track == SOURCE => {
                        self.on_frame(frame).await
                    }
                    Ok(HubMessage::Discontinuity { track: None }) => {
                        // A new publisher: its timestamps start over, so does FFmpeg.
                        self.stop_child("publisher changed").await;
                        self.restart_at = Instant::now();
                    }
                    Ok(HubMessage::End) | Err(broadcast::error::RecvError::Closed) => break,
                    // Audio, and the renditions this task publishes itself.
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(lost = n, "transcoder fell behind the hub; restarting FFmpeg");
                        self.stop_child("fell behind").await;
                        self.restart_at = Instant::now();
                    }
                },
                ev = next_child_event(&mut self.child) => self.on_child_event(ev).await,
            }
        }
        self.stop_child("broadcast ended").await;
        self.t.lock().remove(&self.stream_id);
        if let Some(m) = self.t.metrics.get() {
            m.remove_transcoder(self.stream_id);
        }
        info!("transcoder stopped");
    }

    async fn on_frame(&mut self, f: MediaFrame) {
        if f.kind != TrackKind::Video {
            return;
        }
        self.meter.add(f.timestamp, f.len());
        self.check_bitrate();
        if self.child.is_none() {
            if self.ladder.is_empty() || !f.key || Instant::now() < self.restart_at {
                return;
            }
            let Some(config) = self.video_config.clone() else {
                return;
            };
            self.start_child(&config, &f).await;
            return;
        }
        let fed = self.child.as_mut().is_some_and(|c| c.feed(&f));
        if !fed {
            warn!("FFmpeg is not taking input fast enough; dropping the top rung");
            self.drop_top_rung("FFmpeg input backlog").await;
        }
    }

    async fn on_config(&mut self, config: Arc<TrackConfig>) {
        if config.kind != TrackKind::Video {
            return;
        }
        let changed = self
            .video_config
            .as_ref()
            .is_none_or(|c| !c.same_as(&config));
        let info = &config.info;
        let (Some(w), Some(h)) = (info.width, info.height) else {
            warn!("the source's configuration has no picture size; no transcoding");
            return;
        };
        let fps = info.frame_rate.unwrap_or(30.0);
        self.video_config = Some(config);
        let old_source = self.source.replace((w, h, fps));
        if old_source.map(|(ow, oh, _)| (ow, oh)) != Some((w, h)) {
            let old = old_source.map(|(ow, oh, _)| (ow, oh));
            info!(width = w, height = h, fps, "source format");
            if old.is_some() {
                let kbps = self.meter.kbps().unwrap_or_default();
                self.t.events.publish(Event::BitrateAdapted {
                    stream_id: self.stream_id,
                    at: Utc::now(),
                    old_kbps: self.reported_kbps.unwrap_or(kbps),
                    new_kbps: kbps,
                    old_resolution: old,
                    new_resolution: Some((w, h)),
                });
            }
            let ladder = plan(&self.t.config.rungs, w, h, fps);
            self.set_ladder(ladder).await;
        } else if changed && self.child.is_some() {
            // Same size, new parameters: FFmpeg must start over on them.
            self.stop_child("new sequence header").await;
            self.restart_at = Instant::now();
        }
    }

    async fn set_ladder(&mut self, ladder: Vec<RenditionSpec>) {
        if ladder == self.ladder {
            return;
        }
        let names = |l: &[RenditionSpec]| l.iter().map(|r| r.name.to_string()).collect::<Vec<_>>();
        info!(old = ?names(&self.ladder), new = ?names(&ladder), "ladder");
        self.t.events.publish(Event::QualityLevelsChanged {
            stream_id: self.stream_id,
            at: Utc::now(),
            old: names(&self.ladder),
            new: names(&ladder),
        });
        self.stop_child("ladder changed").await;
        self.ladder = ladder;
        self.out.ladder(self.ladder.clone().into());
        self.t
            .update(self.stream_id, |s| s.ladder = names(&self.ladder));
        self.restart_at = Instant::now();
        self.slow_since = None;
    }

    async fn drop_top_rung(&mut self, why: &str) {
        if self.ladder.is_empty() {
            return;
        }
        warn!(reason = why, rung = %self.ladder[0].name, "dropping the highest rung");
        let rest = self.ladder[1..].to_vec();
        self.set_ladder(rest).await;
    }

    fn check_bitrate(&mut self) {
        let Some(kbps) = self.meter.kbps() else {
            return;
        };
        match self.reported_kbps {
            None => self.reported_kbps = Some(kbps),
            Some(old) if kbps.abs_diff(old) * 100 > old.max(1) * 30 => {
                info!(old_kbps = old, new_kbps = kbps, "source bitrate changed");
                let res = self.source.map(|(w, h, _)| (w, h));
                self.t.events.publish(Event::BitrateAdapted {
                    stream_id: self.stream_id,
                    at: Utc::now(),
                    old_kbps: old,
                    new_kbps: kbps,
                    old_resolution: res,
                    new_resolution: res,
                });
                self.reported_kbps = Some(kbps);
            }
            Some(_) => {}
        }
    }

    async fn start_child(&mut self, config: &TrackConfig, key: &MediaFrame) {
        let Some(ffmpeg) = self.t.ffmpeg.clone() else {
            return;
        };
        let fps = self.source.map(|s| s.2).unwrap_or(30.0);
        match FfmpegChild::spawn(
            &ffmpeg,
            &self.ladder,
            &self.t.config.preset,
            fps,
            self.t.segment_ms,
            self.out.clone(),
        )
        .await
        {
            Ok(mut child) => {
                info!(pid = ?child.pid(), rungs = self.ladder.len(), "FFmpeg started");
                child.feed_config(config, key.timestamp);
                child.feed(key);
                self.t.update(self.stream_id, |s| s.pid = child.pid());
                self.child = Some(child);
            }
            Err(e) => {
                warn!(error = %e, "could not start FFmpeg");
                self.restart_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Every rendition's timeline breaks here (its encoder is gone).
    fn renditions_restarted(&self) {
        for spec in &self.ladder {
            self.out.restarted(&spec.name);
        }
    }

    async fn stop_child(&mut self, why: &str) {
        if let Some(child) = self.child.take() {
            debug!(reason = why, "stopping FFmpeg");
            child.stop().await;
            self.renditions_restarted();
            self.t.update(self.stream_id, |s| s.pid = None);
        }
    }

    async fn on_child_event(&mut self, ev: Option<ChildEvent>) {
        match ev {
            Some(ChildEvent::Progress(p)) => {
                let started = self
                    .child
                    .as_ref()
                    .map(|c| c.started())
                    .unwrap_or_else(Instant::now);
                self.t.update(self.stream_id, |s| {
                    s.speed = p.speed;
                    s.fps = p.fps;
                    s.drop_frames = p.drop_frames;
                    s.dup_frames = p.dup_frames;
                });
                if let Some(m) = self.t.metrics.get() {
                    m.transcoder_speed(self.stream_id, p.speed);
                }
                debug!(
                    speed = p.speed,
                    fps = p.fps,
                    drop = p.drop_frames,
                    dup = p.dup_frames,
                    "FFmpeg progress"
                );
                // Judge speed only after warm-up; then sustained slowness drops the top rung.
                if started.elapsed() < Duration::from_secs(8) || p.speed <= 0.0 {
                    return;
                }
                if p.speed < self.t.config.min_speed {
                    let since = *self.slow_since.get_or_insert_with(Instant::now);
                    warn!(speed = p.speed, "FFmpeg slower than real time");
                    if since.elapsed() >= Duration::from_secs(6) && self.ladder.len() > 1 {
                        self.drop_top_rung(&format!("FFmpeg speed {:.2}x", p.speed))
                            .await;
                    }
                } else {
                    self.slow_since = None;
                    self.backoff = Duration::from_millis(500);
                }
            }
            Some(ChildEvent::Exited(why)) => self.on_exit(why),
            None => self.on_exit("FFmpeg's output ended".into()),
        }
    }

    fn on_exit(&mut self, why: String) {
        if self.child.take().is_none() {
            return;
        }
        warn!(reason = %why, backoff = ?self.backoff, "FFmpeg exited; the source goes on, restarting");
        self.renditions_restarted();
        self.t.update(self.stream_id, |s| {
            s.pid = None;
            s.restarts += 1;
        });
        self.t.events.publish(Event::TranscoderRestarted {
            stream_id: self.stream_id,
            at: Utc::now(),
            reason: why,
        });
        self.restart_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

async fn next_child_event(child: &mut Option<FfmpegChild>) -> Option<ChildEvent> {
    match child {
        Some(c) => c.next_event().await,
        None => std::future::pending().await,
    }
}
