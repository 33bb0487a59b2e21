//! One FFmpeg child process: its input writer (FLV rebuilt from the hub's
//! parsed frames, FLV 10.1 §E.2–E.4), its rendition readers (FFmpeg's FLV
//! demuxed and parsed once per rendition, then published into the broadcast as
//! that rendition's track), its progress and its exit. `kill_on_drop` and an
//! explicit stop make sure no FFmpeg outlives its stream; EOF on stdin ends it
//! if we die first. Once the child is stopped or dropped, its readers publish
//! nothing more.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use streaming_core::hub::{CancellationToken, RenditionSpec, TrackSender};
use streaming_media::flv::{write_config_tag, write_header, write_media_tag};
use streaming_media::flv_demux::FlvDemuxer;
use streaming_media::frame::FrameKind;
use streaming_media::media::{FlvTagParser, MediaFrame, Parsed, TrackConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

use crate::command::{Output, ffmpeg_args};
use crate::progress::{Progress, ProgressParser};

pub(crate) enum ChildEvent {
    Progress(Progress),
    Exited(String),
}

/// Frames buffered towards FFmpeg's stdin (about 10 s at 60 fps) before we
/// call it stalled.
const INPUT_BACKLOG: usize = 600;
/// How long FFmpeg gets to exit after EOF on stdin before it is killed.
const STOP_GRACE: Duration = Duration::from_millis(1500);

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

pub(crate) struct FfmpegChild {
    pid: Option<u32>,
    started: Instant,
    input: Option<mpsc::Sender<Bytes>>,
    events: mpsc::Receiver<ChildEvent>,
    kill: Option<oneshot::Sender<()>>,
    waiter: Option<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
    /// Fired on stop or drop: the readers publish nothing more.
    stopped: CancellationToken,
    dir: PathBuf,
}

impl FfmpegChild {
    pub(crate) async fn spawn(
        ffmpeg: &Path,
        ladder: &[RenditionSpec],
        preset: &str,
        source_fps: f64,
        segment_ms: u32,
        out: TrackSender,
    ) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "streaming-ffmpeg-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut outputs = Vec::new();
        let mut listeners = Vec::new();
        for spec in ladder {
            let socket = dir.join(format!("{}.sock", outputs.len()));
            listeners.push((spec.name.clone(), UnixListener::bind(&socket)?));
            outputs.push(Output {
                spec: spec.clone(),
                socket,
            });
        }
        let args = ffmpeg_args(&outputs, preset, source_fps, segment_ms);
        debug!(args = %args.join(" "), "spawning FFmpeg");
        let mut child = Command::new(ffmpeg)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id();
        let span = tracing::Span::current();
        let (ev_tx, events) = mpsc::channel(64);
        let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));

        // Input: FLV (video only) written as frames arrive.
        let (input, mut input_rx) = mpsc::channel::<Bytes>(INPUT_BACKLOG);
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut readers = vec![tokio::spawn(
            async move {
                let mut header = BytesMut::new();
                write_header(&mut header, false, true);
                if stdin.write_all(&header).await.is_err() {
                    return;
                }
                while let Some(tag) = input_rx.recv().await {
                    if let Err(e) = stdin.write_all(&tag).await {
                        debug!(error = %e, "FFmpeg stdin closed");
                        return;
                    }
                }
                let _ = stdin.shutdown().await;
            }
            .instrument(span.clone()),
        )];

        // Progress on stdout.
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = ev_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut parser = ProgressParser::default();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(p) = parser.line(&line) {
                    let _ = tx.try_send(ChildEvent::Progress(p));
                }
            }
        }));

        // Warnings on stderr: logged, and the last few kept for the exit reason.
        let stderr = child.stderr.take().expect("piped stderr");
        let kept = tail.clone();
        readers.push(tokio::spawn(
            async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    info!(target: "ffmpeg", "{line}");
                    let mut t = kept.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == 4 {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
            .instrument(span.clone()),
        ));

        // One reader per rung: FLV from FFmpeg's socket, parsed, into the hub.
        let stopped = CancellationToken::new();
        for (name, listener) in listeners {
            let (out, stopped) = (out.clone(), stopped.clone());
            readers.push(tokio::spawn(
                async move {
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(20), listener.accept()).await;
                    let Ok(Ok((sock, _))) = accepted else {
                        warn!(rendition = %name, "FFmpeg never connected its output");
                        return;
                    };
                    read_rendition(sock, &name, &out, &stopped).await;
                }
                .instrument(span.clone()),
            ));
        }

        let (kill, kill_rx) = oneshot::channel();
        let waiter = tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // Let stderr drain so the reason names FFmpeg's last words.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let last: Vec<String> = tail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            let why = match status {
                Ok(s) => format!("{s}; {}", last.join(" | ")),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = ev_tx.send(ChildEvent::Exited(why)).await;
        });

        Ok(Self {
            pid,
            started: Instant::now(),
            input: Some(input),
            events,
            kill: Some(kill),
            waiter: Some(waiter),
            readers,
            stopped,
            dir,
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Queues the source's decoder configuration for FFmpeg, at RTMP time `timestamp`.
    pub(crate) fn feed_config(&mut self, config: &TrackConfig, timestamp: u32) -> bool {
        let mut tag = BytesMut::with_capacity(config.record.len() + 20);
        if write_config_tag(&mut tag, config, timestamp).is_err() {
            return true;
        }
        self.queue(tag.freeze())
    }

    /// Queues a frame for FFmpeg; `false` when FFmpeg has fallen too far behind.
    pub(crate) fn feed(&mut self, frame: &MediaFrame) -> bool {
        let mut tag = BytesMut::with_capacity(frame.len() + 20);
        if write_media_tag(&mut tag, frame).is_err() {
            return true;
        }
        self.queue(tag.freeze())
    }

    fn queue(&mut self, tag: Bytes) -> bool {
        let Some(input) = &self.input else {
            return true;
        };
        match input.try_send(tag) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }

    pub(crate) async fn next_event(&mut self) -> Option<ChildEvent> {
        self.events.recv().await
    }

    /// EOF on stdin, a short grace, then kill; waits for the process.
    pub(crate) async fn stop(mut self) {
        self.stopped.cancel();
        self.input = None;
        if let Some(mut waiter) = self.waiter.take()
            && tokio::time::timeout(STOP_GRACE, &mut waiter).await.is_err()
        {
            if let Some(k) = self.kill.take() {
                let _ = k.send(());
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut waiter).await;
        }
        for r in &self.readers {
            r.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = self.events.try_recv();
    }
}

impl Drop for FfmpegChild {
    fn drop(&mut self) {
        self.stopped.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads one rendition's FLV from FFmpeg until it ends (or the child is stopped):
/// demuxed, parsed once, published as track `name`. A tag the parser refuses is
/// dropped (logged at most once a second).
async fn read_rendition(
    mut sock: UnixStream,
    name: &Arc<str>,
    out: &TrackSender,
    stopped: &CancellationToken,
) {
    let mut demux = FlvDemuxer::new();
    let mut parser = FlvTagParser::new();
    let mut warned: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        demux.push(&buf[..n]);
        loop {
            let frame = match demux.next_frame() {
                Ok(Some(frame)) if frame.kind == FrameKind::Video => frame,
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    warn!(rendition = %name, error = %e, "bad FLV from FFmpeg");
                    return;
                }
            };
            if stopped.is_cancelled() {
                return;
            }
            match parser.parse(&frame) {
                Ok(Parsed::Config(config)) => out.config(name, config),
                Ok(Parsed::Media(media)) => out.frame(name, media),
                Ok(Parsed::Skip) => {}
                Err(e) => {
                    if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        warned = Some(Instant::now());
                        warn!(rendition = %name, error = %e, "rendition frame dropped");
                    }
                }
            }
        }
    }
}
