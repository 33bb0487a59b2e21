//! Simulated publishers: replay an FLV file over RTMP in real time through
//! the sans-IO `ClientSession`, looping with offset timestamps if asked.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::{Value, json};
use streaming_media::frame::Frame;
use streaming_media::rtmp::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::stats::{Stats, latency_json};
use crate::target::{check_loopback_url, resolve_loopback};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one publisher connects: `rtmp://host[:port]/app/key[?query]`.
#[derive(Debug, Clone)]
pub struct RtmpTarget {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub key: String,
    pub tc_url: String,
}

impl RtmpTarget {
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = Url::parse(s).map_err(|e| format!("invalid RTMP URL `{s}`: {e}"))?;
        if url.scheme() != "rtmp" {
            return Err(format!("`{s}`: only rtmp:// URLs are supported"));
        }
        check_loopback_url(&url)?;
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port().unwrap_or(1935);
        let path = url.path().trim_start_matches('/');
        let (app, key) = path
            .split_once('/')
            .filter(|(a, k)| !a.is_empty() && !k.is_empty())
            .ok_or_else(|| format!("`{s}`: expected rtmp://host[:port]/app/stream-key"))?;
        let key = match url.query() {
            Some(q) => format!("{key}?{q}"),
            None => key.to_string(),
        };
        Ok(Self {
            tc_url: format!("rtmp://{host}:{port}/{app}"),
            host,
            port,
            app: app.to_string(),
            key,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PublishOpts {
    pub targets: Vec<RtmpTarget>,
    pub frames: Arc<Vec<Frame>>,
    pub publishers: usize,
    pub looped: bool,
    pub deadline: Instant,
}

#[derive(Debug, Default)]
pub struct PublisherResult {
    pub stats: Stats,
    pub frames: u64,
    pub payload_bytes: u64,
    pub wire_bytes: u64,
    pub loops: u64,
    pub connect_ms: Option<f64>,
    /// Largest delay of a frame behind its real-time schedule.
    pub max_lag_ms: f64,
}

/// Reads an FLV file into frames (tags as written).
pub fn read_flv(path: &std::path::Path) -> Result<Vec<Frame>, String> {
    let data = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let reader = streaming_media::flv::FlvReader::new(bytes::Bytes::from(data))
        .map_err(|e| format!("{}: not an FLV file: {e}", path.display()))?;
    let frames = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad FLV tag: {e}", path.display()))?;
    if frames.is_empty() {
        return Err(format!("{}: no tags to replay", path.display()));
    }
    Ok(frames)
}

struct Driver {
    socket: TcpStream,
    session: ClientSession,
    events: Vec<ClientEvent>,
    wire: u64,
}

impl Driver {
    async fn flush(&mut self) -> Result<(), &'static str> {
        while let Some(out) = self.session.poll_output() {
            match out {
                ClientOutput::Transmit(b) => {
                    self.wire += b.len() as u64;
                    match tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(&b)).await {
                        Err(_) => return Err("write_timeout"),
                        Ok(Err(_)) => return Err("write"),
                        Ok(Ok(())) => {}
                    }
                }
                ClientOutput::Event(e) => self.events.push(e),
            }
        }
        Ok(())
    }

    /// Feeds the engine what the server sent meanwhile, without waiting.
    fn read_available(&mut self) -> Result<(), &'static str> {
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.try_read(&mut buf) {
                Ok(0) => return Err("closed_by_server"),
                Ok(n) => self
                    .session
                    .handle_input(std::time::Instant::now(), &buf[..n])
                    .map_err(|_| "protocol")?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => return Err("read"),
            }
        }
    }

    fn rejected(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, ClientEvent::PublishRejected { .. }))
    }
}

/// Connects and drives handshake, connect and publish until `Publish.Start`.
async fn connect(t: &RtmpTarget, deadline: Instant) -> Result<Driver, &'static str> {
    let limit = deadline
        .saturating_duration_since(Instant::now())
        .min(CONNECT_TIMEOUT);
    let until = Instant::now() + limit;
    let addrs = resolve_loopback(&t.host, t.port)
        .await
        .map_err(|_| "resolve")?;
    let socket = match tokio::time::timeout_at(until, TcpStream::connect(&addrs[..])).await {
        Err(_) => return Err("connect_timeout"),
        Ok(Err(_)) => return Err("connect"),
        Ok(Ok(s)) => s,
    };
    let _ = socket.set_nodelay(true);
    let mut d = Driver {
        socket,
        session: ClientSession::new(ClientConfig::new(&t.tc_url, &t.app, &t.key)),
        events: Vec::new(),
        wire: 0,
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        d.flush().await?;
        if d.events
            .iter()
            .any(|e| matches!(e, ClientEvent::PublishStarted { .. }))
        {
            return Ok(d);
        }
        if d.rejected() {
            return Err("publish_rejected");
        }
        let n = match tokio::time::timeout_at(until, d.socket.read(&mut buf)).await {
            Err(_) => return Err("publish_timeout"),
            Ok(Err(_)) => return Err("read"),
            Ok(Ok(0)) => return Err("closed_by_server"),
            Ok(Ok(n)) => n,
        };
        d.session
            .handle_input(std::time::Instant::now(), &buf[..n])
            .map_err(|_| "protocol")?;
    }
}

pub async fn run_publisher(idx: usize, opts: Arc<PublishOpts>) -> PublisherResult {
    let mut r = PublisherResult::default();
    let target = &opts.targets[idx % opts.targets.len()];
    let deadline = opts.deadline;
    let started = Instant::now();
    let mut d = match connect(target, deadline).await {
        Ok(d) => d,
        Err(e) => {
            if Instant::now() < deadline {
                r.stats.error(format!("publish_{e}"));
            }
            return r;
        }
    };
    r.connect_ms = Some(started.elapsed().as_secs_f64() * 1000.0);

    let frames = &opts.frames;
    let first = frames[0].timestamp;
    let last = frames[frames.len() - 1].timestamp;
    // One pass lasts (last - first) plus one frame interval (≈ 33 ms).
    let pass_ms = u64::from(last.wrapping_sub(first)) + 33;
    let start = Instant::now();
    let mut offset_ms: u64 = 0;
    'outer: loop {
        for f in frames.iter() {
            let rel = u64::from(f.timestamp.wrapping_sub(first)) + offset_ms;
            let at = start + Duration::from_millis(rel);
            if at >= deadline {
                break 'outer;
            }
            tokio::time::sleep_until(at).await;
            let lag = at.elapsed().as_secs_f64() * 1000.0;
            r.max_lag_ms = r.max_lag_ms.max(lag);
            let frame = Frame::new(f.kind, rel as u32, f.data.clone());
            let step = async {
                d.read_available()?;
                d.session.send_frame(&frame).map_err(|_| "send_frame")?;
                d.flush().await
            };
            if let Err(e) = step.await {
                r.stats.error(format!("publish_{e}"));
                r.wire_bytes = d.wire;
                return r;
            }
            if d.rejected() {
                r.stats.error("publish_rejected".into());
                break 'outer;
            }
            r.frames += 1;
            r.payload_bytes += f.data.len() as u64;
        }
        r.loops += 1;
        if !opts.looped {
            break;
        }
        offset_ms += pass_ms;
    }
    d.session.finish();
    let _ = d.flush().await;
    let _ = d.socket.shutdown().await;
    r.wire_bytes = d.wire;
    r
}

/// Runs all publishers; returns the summary JSON and the merged stats.
pub async fn run(opts: PublishOpts) -> (Value, Stats) {
    let opts = Arc::new(opts);
    let started = Instant::now();
    let tasks: Vec<_> = (0..opts.publishers)
        .map(|i| tokio::spawn(run_publisher(i, opts.clone())))
        .collect();
    let mut stats = Stats::default();
    let (mut frames, mut payload, mut wire, mut loops) = (0u64, 0u64, 0u64, 0u64);
    let mut connect_ms = Vec::new();
    let mut per = Vec::new();
    let mut max_lag: f64 = 0.0;
    for t in tasks {
        match t.await {
            Ok(r) => {
                frames += r.frames;
                payload += r.payload_bytes;
                wire += r.wire_bytes;
                loops += r.loops;
                max_lag = max_lag.max(r.max_lag_ms);
                connect_ms.extend(r.connect_ms);
                per.push(json!({"frames": r.frames, "bytes": r.payload_bytes, "errors": r.stats.total_errors()}));
                stats.merge(r.stats);
            }
            Err(_) => stats.error("publisher_task_panic".into()),
        }
    }
    // Publishers make no HTTP requests: keep only the errors.
    let mut j = json!({ "errors": stats.to_json()["errors"].clone() });
    j["mode"] = json!("publish");
    j["elapsed_s"] = json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    j["publishers"] = json!({
        "count": opts.publishers,
        "frames_sent": frames,
        "bytes_sent": payload,
        "wire_bytes": wire,
        "passes": loops,
        "max_lag_ms": (max_lag * 100.0).round() / 100.0,
        "connect_ms": latency_json(&connect_ms),
        "per_publisher": per,
    });
    (j, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_targets() {
        let t = RtmpTarget::parse("rtmp://127.0.0.1:1936/live/sk_abc?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.app.as_str()),
            ("127.0.0.1", 1936, "live")
        );
        assert_eq!(t.key, "sk_abc?x=1");
        assert_eq!(t.tc_url, "rtmp://127.0.0.1:1936/live");
        assert_eq!(
            RtmpTarget::parse("rtmp://localhost/live/k").unwrap().port,
            1935
        );
        assert!(
            RtmpTarget::parse("rtmp://10.0.0.1/live/k")
                .unwrap_err()
                .contains("not a loopback")
        );
        assert!(RtmpTarget::parse("rtmp://127.0.0.1/live").is_err());
        assert!(RtmpTarget::parse("http://127.0.0.1/live/k").is_err());
    }
}
