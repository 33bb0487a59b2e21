//! The abuse suites' harness: the real `streaming-server` binary as a child
//! process (so its memory and CPU can be read from `/proc`), a live FFmpeg
//! publish, an HLS viewer that plays the stream the way a player does, and
//! attackers on their own loopback source addresses.
//!
//! Addresses: the legitimate publisher and viewer connect from 127.0.0.1;
//! every attacker binds a source address 127.0.0.N (N ≥ 2), so per-address
//! limits cut the attacker off and never the legitimate peers. All traffic
//! goes to 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use uuid::Uuid;

use super::{Publish, ffmpeg_publish, playlist_uris, require};

/// The admin token every [`ServerProcess`] runs with.
pub const ADMIN_TOKEN: &str = "abuse-suite-admin-token-0123456789abcdef";
/// The `/metrics` bearer token every [`ServerProcess`] runs with.
pub const METRICS_TOKEN: &str = "abuse-suite-metrics-token-0123456789abcdef";

/// `127.0.0.n`, an attacker's (or a peer's) own loopback source address.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A TCP connection to `to` from source address `127.0.0.n`.
pub async fn connect_from(n: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(loopback(n), 0))?;
    socket.connect(to).await
}

/// An HTTP client whose connections come from `127.0.0.n`.
pub fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(loopback(n))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// `VmRSS`/`VmHWM` (KiB) of a process, from `/proc/PID/status`.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of a process so far, in clock ticks (1/100 s).
pub fn proc_cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (3).
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12) // utime (14th field) and stime (15th)
}

/// Reads until the server closes (or resets) the connection: how long that
/// took, or `None` if it was still open after `limit`.
pub async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// The address after `marker` (e.g. `"rtmps://"`) in the server's banner line.
pub fn banner_addr(banner: &str, marker: &str) -> Option<SocketAddr> {
    let at = banner.find(marker)? + marker.len();
    banner[at..]
        .split(|c: char| c == '/' || c.is_whitespace())
        .next()?
        .parse()
        .ok()
}

/// The server binary running as a child, with a data dir of its own.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub http: String,
    pub http_addr: SocketAddr,
    pub rtmp_addr: SocketAddr,
    /// Every line the server wrote to stderr (its log) and stdout.
    pub output: Arc<Mutex<String>>,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    /// The line the server printed with its listeners.
    pub banner: String,
}

impl ServerProcess {
    /// Starts `streaming-server serve` on ephemeral 127.0.0.1 ports with
    /// `extra_toml` appended to its config file (transcoding off unless
    /// `extra_toml` says otherwise), and waits until it prints its addresses.
    pub async fn start(data_dir: &Path, extra_toml: &str) -> Self {
        Self::start_env(data_dir, extra_toml, &[]).await
    }

    /// [`ServerProcess::start`] with extra environment variables.
    pub async fn start_env(data_dir: &Path, extra_toml: &str, env: &[(&str, &str)]) -> Self {
        Self::start_custom(data_dir, extra_toml, env, true).await
    }

    /// [`ServerProcess::start_env`]; `with_tokens`: set [`ADMIN_TOKEN`] and
    /// [`METRICS_TOKEN`] in the environment.
    pub async fn start_custom(
        data_dir: &Path,
        extra_toml: &str,
        env: &[(&str, &str)],
        with_tokens: bool,
    ) -> Self {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let mut toml = String::from("rtmp_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n");
        if !extra_toml.contains("[transcode]") {
            toml.push_str("[transcode]\nenabled = false\n");
        }
        toml.push_str(extra_toml);
        let config = data_dir.join("server.toml");
        std::fs::write(&config, toml).expect("write config");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_streaming-server"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .env_remove("STREAMING_ADMIN_TOKEN")
            .env_remove("STREAMING_METRICS_TOKEN")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if with_tokens {
            cmd.env("STREAMING_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("STREAMING_METRICS_TOKEN", METRICS_TOKEN);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn streaming-server");
        let pid = child.id().expect("server pid");
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let mut o = output.lock().unwrap_or_else(|p| p.into_inner());
                    o.push_str(&l);
                    o.push('\n');
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        {
            let output = output.clone();
            tokio::spawn(async move {
                let mut tx = Some(tx);
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l.starts_with("streaming-server:")
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(l.clone());
                    }
                    let mut o = output.lock().unwrap_or_else(|p| p.into_inner());
                    o.push_str(&l);
                    o.push('\n');
                }
            });
        }
        let banner = match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(l)) => l,
            _ => {
                let _ = child.start_kill();
                panic!(
                    "streaming-server did not start; output:\n{}",
                    output.lock().unwrap_or_else(|p| p.into_inner())
                );
            }
        };
        let http_addr = banner_addr(&banner, " HTTP http://")
            .or_else(|| banner_addr(&banner, "HTTPS https://"))
            .expect("HTTP address in the banner");
        let rtmp_addr = banner_addr(&banner, "rtmp://")
            .or_else(|| banner_addr(&banner, "rtmps://"))
            .expect("RTMP address in the banner");
        Self {
            child,
            pid,
            http: format!("http://{http_addr}"),
            http_addr,
            rtmp_addr,
            output,
            banner,
            data_dir: data_dir.to_path_buf(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    /// Resident memory now (KiB).
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS")
    }

    /// Peak resident memory so far (KiB).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmHWM")
    }

    pub fn cpu_ticks(&self) -> u64 {
        proc_cpu_ticks(self.pid)
    }

    /// Everything the server printed so far.
    pub fn logs(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Creates a stream over the REST API; returns its id and key.
    pub async fn create_stream(&self, name: &str) -> (Uuid, String) {
        let resp = self
            .client
            .post(self.url("/api/v1/streams"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("POST /api/v1/streams");
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.expect("JSON body");
        assert_eq!(status, 201, "create stream: {body}");
        let id = body["stream"]["id"]
            .as_str()
            .or_else(|| body["id"].as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("stream id in {body}"));
        let key = body["stream_key"]
            .as_str()
            .or_else(|| body["key"]["stream_key"].as_str())
            .unwrap_or_else(|| panic!("stream key in {body}"))
            .to_string();
        (id, key)
    }

    /// The public status of a stream (`ACTIVE`, …).
    pub async fn status(&self, id: Uuid) -> String {
        let Ok(r) = self
            .client
            .get(self.url(&format!("/api/v1/streams/{id}/status")))
            .send()
            .await
        else {
            return String::new();
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        v["status"].as_str().unwrap_or_default().to_string()
    }

    pub async fn wait_status(&self, id: Uuid, want: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.status(id).await == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// `/metrics` text (with the metrics token).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap_or_default()
    }

    /// The value of `streaming_limit_hits_total{kind="…"}`.
    pub async fn limit_hits(&self, kind: &str) -> u64 {
        let text = self.metrics_text().await;
        let needle = format!("streaming_limit_hits_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    }

    /// Sends SIGKILL and waits for the process to go.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// A live FFmpeg publish of a small test pattern for `seconds` (from
/// 127.0.0.1), with the stream it publishes to.
pub struct LivePublish {
    pub child: std::process::Child,
    pub stream_id: Uuid,
    pub key: String,
}

impl LivePublish {
    /// Creates a stream on `server` and publishes to it until `seconds` pass;
    /// returns once the stream is ACTIVE (panics after 20 s).
    pub async fn start(server: &ServerProcess, seconds: u32) -> Self {
        require("ffmpeg", "ffmpeg");
        let (stream_id, key) = server.create_stream("live under attack").await;
        let url = format!("rtmp://{}/live/{key}", server.rtmp_addr);
        let child = ffmpeg_publish(
            &url,
            &Publish {
                width: 320,
                height: 180,
                fps: 15,
                seconds: f64::from(seconds),
                gop_secs: 1,
                video_kbps: 300,
            },
        );
        assert!(
            server
                .wait_status(stream_id, "ACTIVE", Duration::from_secs(20))
                .await,
            "the legitimate publish did not go live; server output:\n{}",
            server.logs()
        );
        Self {
            child,
            stream_id,
            key,
        }
    }

    /// The FFmpeg publisher is still running (not refused or cut off).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for LivePublish {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an [`HlsViewer`] saw.
#[derive(Debug, Clone, Default)]
pub struct ViewerStats {
    /// Media segments downloaded in full.
    pub segments: u64,
    pub bytes: u64,
    /// Failed playlist or segment requests.
    pub errors: u64,
    /// Longest time between two newly downloaded segments (after the first).
    pub max_gap: Duration,
    /// Segment GET latencies (ms), in order.
    pub segment_ms: Vec<f64>,
    /// Playlist GET latencies (ms), in order.
    pub playlist_ms: Vec<f64>,
    pub last_error: Option<String>,
}

/// A player-like HLS viewer from 127.0.0.1: reads the master playlist,
/// then reloads the first variant's media playlist every second and
/// downloads every segment it has not downloaded yet.
pub struct HlsViewer {
    stats: Arc<Mutex<(ViewerStats, Option<Instant>)>>,
    task: tokio::task::JoinHandle<()>,
}

impl HlsViewer {
    pub fn start(http: &str, stream_id: Uuid) -> Self {
        let stats: Arc<Mutex<(ViewerStats, Option<Instant>)>> = Arc::default();
        let base = format!("{http}/hls/{stream_id}");
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let err = |s: &Arc<Mutex<(ViewerStats, Option<Instant>)>>, e: String| {
                let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
                g.0.errors += 1;
                g.0.last_error = Some(e);
            };
            // The master playlist (retried: it appears a moment after going live).
            let media_url = loop {
                match client.get(format!("{base}/master.m3u8")).send().await {
                    Ok(r) if r.status().is_success() => {
                        let text = r.text().await.unwrap_or_default();
                        if let Some(uri) = playlist_uris(&text).into_iter().next() {
                            break format!("{base}/{uri}");
                        }
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            let dir = media_url
                .rsplit_once('/')
                .map(|(d, _)| d.to_string())
                .unwrap_or_default();
            let mut seen = std::collections::HashSet::new();
            loop {
                let t = Instant::now();
                let playlist = match client.get(&media_url).send().await {
                    Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
                    Ok(r) => {
                        err(&shared, format!("playlist: HTTP {}", r.status()));
                        String::new()
                    }
                    Err(e) => {
                        err(&shared, format!("playlist: {e}"));
                        String::new()
                    }
                };
                shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .0
                    .playlist_ms
                    .push(t.elapsed().as_secs_f64() * 1000.0);
                for uri in playlist_uris(&playlist) {
                    let name = uri.split('?').next().unwrap_or_default().to_string();
                    if !name.starts_with("segment-") || !seen.insert(name) {
                        continue;
                    }
                    let t = Instant::now();
                    match client.get(format!("{dir}/{uri}")).send().await {
                        Ok(r) if r.status().is_success() => match r.bytes().await {
                            Ok(b) => {
                                let ms = t.elapsed().as_secs_f64() * 1000.0;
                                let now = Instant::now();
                                let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
                                let (s, last) = &mut *g;
                                if let Some(prev) = *last {
                                    s.max_gap = s.max_gap.max(now - prev);
                                }
                                *last = Some(now);
                                s.segments += 1;
                                s.bytes += b.len() as u64;
                                s.segment_ms.push(ms);
                            }
                            Err(e) => err(&shared, format!("segment body: {e}")),
                        },
                        Ok(r) => err(&shared, format!("segment: HTTP {}", r.status())),
                        Err(e) => err(&shared, format!("segment: {e}")),
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Self { stats, task }
    }

    pub fn stats(&self) -> ViewerStats {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Time since the last newly downloaded segment (`None` before the first).
    pub fn since_last_segment(&self) -> Option<Duration> {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .map(|t| t.elapsed())
    }

    /// Panics unless the viewer downloaded a new segment within `within`.
    pub fn assert_playing(&self, within: Duration, what: &str) {
        let since = self.since_last_segment();
        assert!(
            since.is_some_and(|d| d <= within),
            "{what}: the viewer got no new segment for {since:?} (stats {:?})",
            self.stats()
        );
    }

    /// Waits (bounded) for the first downloaded segment.
    pub async fn wait_first_segment(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.since_last_segment().is_none() {
            assert!(
                Instant::now() < deadline,
                "the viewer got no segment within {timeout:?}: {:?}",
                self.stats()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for HlsViewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// p50 and p99 of a list of latencies (ms).
pub fn p50_p99(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// A new legitimate publish (our own RTMP client, from 127.0.0.1) to a new
/// stream is accepted: `NetStream.Publish.Start` within `timeout`.
pub async fn new_publish_is_accepted(server: &ServerProcess, timeout: Duration) {
    use streaming_media::rtmp::ClientConfig;
    let (_, key) = server.create_stream("publish during attack").await;
    let tc_url = format!("rtmp://{}/live", server.rtmp_addr);
    let p = super::RustPublisher::publish(
        server.rtmp_addr,
        ClientConfig::new(&tc_url, "live", &key),
        timeout,
    )
    .await;
    p.finish().await;
}
