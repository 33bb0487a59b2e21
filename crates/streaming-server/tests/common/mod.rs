//! Shared harness of the end-to-end tests: an in-process server on 127.0.0.1
//! with ephemeral ports and a temporary data dir, and helpers to drive the real
//! peers (FFmpeg, ffprobe, GStreamer, Chromium).
#![allow(dead_code)]

pub mod abuse;
pub mod certs;
pub mod llhls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streaming_core::config::Config;
use streaming_server::RunningServer;
use uuid::Uuid;

pub struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub http: String,
    pub rtmp: String,
    pub client: reqwest::Client,
}

/// Fails the test with an install hint when a required program is missing.
pub fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is required by this test and was not found on PATH; install it with `apt-get install -y {package}` (scripts/test does this)"
    );
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The general suites hammer the API from 127.0.0.1 and scrape `/metrics`
/// without a token: rate limits off, `/metrics` public. The abuse suites
/// (`abuse_*.rs`, a server process with the defaults) test the limits.
pub fn relax_limits(config: &mut Config) {
    config.http.api_requests_per_min = 0;
    config.http.public_requests_per_sec = 0;
    config.http.admin_failures_per_min = 0;
    config.http.max_connections_per_addr = 10_000;
    config.http.max_held_requests_per_addr = 10_000;
    config.websocket.max_clients_per_addr = 10_000;
    config.metrics.public = true;
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            rtmp_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            admin_token: Some("test-admin-token-0123456789abcdef".into()),
            ..Config::default()
        };
        relax_limits(&mut config);
        tweak(&mut config);
        let server = streaming_server::start(config)
            .await
            .expect("server starts");
        let http = format!("http://{}", server.http_addr);
        let rtmp = format!("rtmp://{}/live", server.rtmp_addr);
        Self {
            server,
            dir,
            http,
            rtmp,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// Creates a stream; returns its id and (plaintext) key.
    pub async fn create_stream(&self, name: &str) -> (Uuid, String) {
        let c = self
            .server
            .repo
            .create_stream(name)
            .await
            .expect("create stream");
        (c.stream.id, c.plaintext_key)
    }

    pub fn publish_url(&self, key: &str) -> String {
        format!("{}/{key}", self.rtmp)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("HTTP request")
    }

    pub async fn get_text(&self, path: &str) -> Option<String> {
        let r = self.get(path).await;
        if r.status().is_success() {
            r.text().await.ok()
        } else {
            None
        }
    }

    pub async fn get_bytes(&self, path: &str) -> Option<Vec<u8>> {
        let r = self.get(path).await;
        if r.status().is_success() {
            r.bytes().await.ok().map(|b| b.to_vec())
        } else {
            None
        }
    }

    /// Polls `path` until it answers 200 and `pred` accepts the body.
    pub async fn wait_for_text(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(t) = self.get_text(path).await
                && pred(&t)
            {
                return Some(t);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// A master playlist or MPD: polled for up to 5 s, since neither is
    /// served between the first video segment and the first audio one.
    pub async fn get_manifest(&self, path: &str) -> Option<String> {
        self.wait_for_text(path, Duration::from_secs(5), |_| true)
            .await
    }

    pub async fn status(&self, id: Uuid) -> String {
        self.server
            .repo
            .get_stream(id)
            .await
            .unwrap()
            .map(|s| s.status.to_string())
            .unwrap_or_default()
    }

    pub async fn wait_status(&self, id: Uuid, want: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.status(id).await == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// Options of a synthetic FFmpeg publish (lavfi testsrc2 + sine, x264 + AAC).
pub struct Publish {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds: f64,
    pub gop_secs: u32,
    pub video_kbps: u32,
}

impl Default for Publish {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            fps: 30,
            seconds: 10.0,
            gop_secs: 2,
            video_kbps: 1000,
        }
    }
}

/// Starts `ffmpeg -re … -f flv URL`; the caller waits for it.
pub fn ffmpeg_publish(url: &str, p: &Publish) -> Child {
    require("ffmpeg", "ffmpeg");
    let gop = (p.fps * p.gop_secs).to_string();
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={}x{}:rate={}",
            p.width, p.height, p.fps
        ))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &p.seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
        .args(["-b:v", &format!("{}k", p.video_kbps)])
        .args(["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"])
        .args(["-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg")
}

/// Waits for a child with a timeout (kills it on timeout); returns (success, stderr).
pub async fn wait_child(mut child: Child, timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait child") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, "timed out".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a program to completion (bounded), returning (success, stdout, stderr).
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(Ok(o)) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Ok(Err(e)) => (false, String::new(), format!("spawn {program}: {e}")),
        Err(_) => (false, String::new(), format!("{program} timed out")),
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Helpers added for the GStreamer, keys, lifecycle, HTTP and parser tests.
// ---------------------------------------------------------------------------

use std::sync::{Arc, Mutex, OnceLock};

/// The tracing output of the whole test process, captured in memory.
#[derive(Clone)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// A position to read from later with [`LogCapture::since`].
    pub fn mark(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// What was captured after `mark`.
    pub fn since(&self, mark: usize) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf[mark.min(buf.len())..]).into_owned()
    }

    /// Waits (bounded) until the text captured after `mark` satisfies `pred`.
    pub async fn wait_since(
        &self,
        mark: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.since(mark);
            if pred(&t) {
                return Some(t);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CaptureWriter {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs (once per test binary) a global subscriber that writes every
/// event of the server's crates at DEBUG and above (plus sqlx statements) into
/// a shared buffer, and the usual filtered output to the test writer.
///
/// Must run before anything else installs a subscriber: call it first in
/// every test of a file that uses it (before [`TestServer::start`]).
pub fn capture_logs() -> LogCapture {
    use tracing_subscriber::prelude::*;
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buf = LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        // A field formatter of its own type: two layers sharing `DefaultFields`
        // would share (and double) the formatted span fields.
        let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
            if field.name() == "message" {
                write!(w, "{value:?}")
            } else {
                write!(w, "{field}={value:?}")
            }
        })
        .delimited(" ");
        let capture = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(fields)
            .with_writer(CaptureWriter(buf.clone()))
            .with_filter(tracing_subscriber::EnvFilter::new(
                "info,streaming_server=debug,streaming_core=debug,streaming_ingest=debug,\
                 streaming_delivery=debug,streaming_api=debug,streaming_transcode=debug,\
                 streaming_media=debug,sqlx=debug,tower_http=debug",
            ));
        let console = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,tower_http=warn".into()),
            );
        let installed = tracing_subscriber::registry()
            .with(capture)
            .with(console)
            .try_init()
            .is_ok();
        assert!(
            installed,
            "capture_logs() must be called before any other tracing subscriber is installed \
             (call it first in every test of this file, before TestServer::start)"
        );
        buf
    });
    LogCapture(buf.clone())
}

/// Fails the test with an install hint when a GStreamer element is missing.
pub fn require_gst_element(element: &str, package: &str) {
    require("gst-inspect-1.0", "gstreamer1.0-tools");
    let found = Command::new("gst-inspect-1.0")
        .arg(element)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "GStreamer element `{element}` is required by this test; install it with `apt-get install -y {package}` (scripts/test does this)"
    );
}

/// Starts a GStreamer publish through `rtmp2sink`: a live test pattern (x264)
/// and a live sine (avenc_aac) muxed into FLV. The sources stop after
/// `seconds` (`num-buffers`) and `-e` turns that into a clean EOS.
pub fn gst_publish(url: &str, width: u32, height: u32, fps: u32, seconds: u32) -> Child {
    require("gst-launch-1.0", "gstreamer1.0-tools");
    for (element, package) in [
        ("rtmp2sink", "gstreamer1.0-plugins-bad"),
        ("flvmux", "gstreamer1.0-plugins-good"),
        ("x264enc", "gstreamer1.0-plugins-ugly"),
        ("avenc_aac", "gstreamer1.0-libav"),
        ("h264parse", "gstreamer1.0-plugins-bad"),
        ("aacparse", "gstreamer1.0-plugins-good"),
        ("videotestsrc", "gstreamer1.0-plugins-base"),
        ("audiotestsrc", "gstreamer1.0-plugins-base"),
    ] {
        require_gst_element(element, package);
    }
    // audiotestsrc: 1024 samples per buffer at 48 kHz.
    let audio_buffers = (seconds * 48_000).div_ceil(1024);
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers={vb} \
         ! video/x-raw,width={width},height={height},framerate={fps}/1,format=I420 \
         ! x264enc tune=zerolatency key-int-max={gop} speed-preset=ultrafast bitrate=800 \
         ! h264parse ! queue ! flvmux streamable=true name=m \
         ! rtmp2sink location={url} \
         audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=1024 \
         ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! aacparse ! queue ! m.",
        vb = seconds * fps,
        gop = 2 * fps,
    );
    Command::new("gst-launch-1.0")
        .arg("-e")
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gst-launch-1.0")
}

/// A well-formed stream key (`sk_` + 40 base62 characters) that no stream has.
pub fn well_formed_unknown_key() -> String {
    let seed = Uuid::new_v4().simple().to_string(); // 32 hex characters
    format!("sk_Zz{seed}000000")
}

/// Makes an HTTP request with headers, returning status, headers and body.
pub async fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    (status, headers, body)
}

/// Top-level boxes of an ISO BMFF buffer, decoded by mp4-atom.
pub fn mp4_boxes(data: &[u8]) -> Vec<mp4_atom::Any> {
    use mp4_atom::Decode;
    let mut buf = data;
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(mp4_atom::Any::decode(&mut buf).expect("mp4-atom decodes every top-level box"));
    }
    out
}

/// The URIs listed in a media playlist (lines that are not tags).
pub fn playlist_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Helpers added for the Rust-client and hostile-input tests: a tokio driver of
// the sans-IO `ClientSession`, and an FFmpeg-made FLV fixture.
// ---------------------------------------------------------------------------

use streaming_media::frame::Frame;
use streaming_media::rtmp::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Our own publisher (`ClientSession`) on a real TCP connection: a thin
/// driver that writes what the engine queues and feeds it what the server
/// sends (read without blocking between frames).
pub struct RustPublisher {
    pub socket: TcpStream,
    pub session: ClientSession,
    pub events: Vec<ClientEvent>,
}

impl RustPublisher {
    /// Connects to `rtmp_addr` and drives handshake, connect and publish until
    /// `NetStream.Publish.Start` (panics on rejection, error or after `timeout`).
    pub async fn publish(
        rtmp_addr: std::net::SocketAddr,
        config: ClientConfig,
        timeout: Duration,
    ) -> Self {
        let socket = tokio::time::timeout(timeout, TcpStream::connect(rtmp_addr))
            .await
            .expect("RTMP connect timed out")
            .expect("RTMP connect");
        socket.set_nodelay(true).unwrap();
        let mut p = Self {
            socket,
            session: ClientSession::new(config),
            events: Vec::new(),
        };
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            p.flush().await;
            if p.events
                .iter()
                .any(|e| matches!(e, ClientEvent::PublishStarted { .. }))
            {
                return p;
            }
            if let Some(e) = p
                .events
                .iter()
                .find(|e| matches!(e, ClientEvent::PublishRejected { .. }))
            {
                panic!("publish rejected: {e:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, p.socket.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no PublishStarted within {timeout:?}; events {:?}",
                        p.events
                    )
                })
                .expect("RTMP read");
            assert!(
                n > 0,
                "server closed the connection before PublishStarted; events {:?}",
                p.events
            );
            p.session
                .handle_input(std::time::Instant::now(), &buf[..n])
                .expect("server speaks valid RTMP");
        }
    }

    /// Writes everything the engine queued; records its events.
    pub async fn flush(&mut self) {
        while let Some(out) = self.session.poll_output() {
            match out {
                ClientOutput::Transmit(b) => {
                    tokio::time::timeout(Duration::from_secs(10), self.socket.write_all(&b))
                        .await
                        .expect("RTMP write timed out")
                        .expect("RTMP write")
                }
                ClientOutput::Event(e) => self.events.push(e),
            }
        }
    }

    /// Feeds the engine whatever the server sent meanwhile (acknowledgements),
    /// without waiting; panics if the server closed the connection.
    pub fn read_available(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.try_read(&mut buf) {
                Ok(0) => panic!(
                    "server closed the publishing connection; events {:?}",
                    self.events
                ),
                Ok(n) => self
                    .session
                    .handle_input(std::time::Instant::now(), &buf[..n])
                    .expect("server speaks valid RTMP"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("RTMP read: {e}"),
            }
        }
    }

    /// Sends one frame now.
    pub async fn send(&mut self, frame: &Frame) {
        self.read_available();
        self.session
            .send_frame(frame)
            .expect("send_frame while publishing");
        self.flush().await;
    }

    /// Sends `frames` in real time: each at `start + (timestamp - first) ms`,
    /// calling `before(self, frame)` ahead of each (to change chunk size …).
    pub async fn replay_realtime(
        &mut self,
        frames: &[Frame],
        mut before: impl FnMut(&mut ClientSession, &Frame),
    ) {
        let Some(first) = frames.first().map(|f| f.timestamp) else {
            return;
        };
        let start = tokio::time::Instant::now();
        for f in frames {
            let at = start + Duration::from_millis(u64::from(f.timestamp.wrapping_sub(first)));
            tokio::time::sleep_until(at).await;
            before(&mut self.session, f);
            self.send(f).await;
        }
    }

    /// `FCUnpublish` + `deleteStream`, then closes the connection.
    pub async fn finish(mut self) {
        self.session.finish();
        self.flush().await;
        let _ = self.socket.shutdown().await;
    }
}

/// `ffmpeg -f lavfi testsrc2 + sine → x264 + AAC → FLV` of `seconds`, read back
/// with [`streaming_media::flv::FlvReader`] (tags as FFmpeg wrote them).
pub fn ffmpeg_flv_fixture(
    dir: &Path,
    width: u32,
    height: u32,
    seconds: u32,
    gop_secs: u32,
) -> Vec<Frame> {
    require("ffmpeg", "ffmpeg");
    let path = dir.join(format!("fixture-{width}x{height}-{seconds}s.flv"));
    let fps = 30;
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate={fps}"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "400k",
        ])
        .args([
            "-g",
            &(fps * gop_secs).to_string(),
            "-keyint_min",
            &(fps * gop_secs).to_string(),
        ])
        .args(["-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-ac", "2"])
        .args(["-f", "flv"])
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = bytes::Bytes::from(std::fs::read(&path).expect("read fixture"));
    streaming_media::flv::FlvReader::new(data)
        .expect("FLV header")
        .map(|f| f.expect("FLV tag"))
        .collect()
}

/// Sum of the `#EXTINF` durations of a media playlist, in seconds.
pub fn extinf_sum(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.split(',').next()?.trim().parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------
// Helpers added for the API tests (`api_*.rs`): one server per backend.
// ---------------------------------------------------------------------------

/// The database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the server's temporary data dir.
    Sqlite,
    /// A scratch database `test_<random>` on `DATABASE_URL` (else
    /// 127.0.0.1:5432), dropped when the test ends.
    Postgres,
}

/// A test server and, on PostgreSQL, the scratch database it uses. Field
/// order matters: the server is dropped before its database.
pub struct BackendServer {
    pub ts: TestServer,
    pub backend: Backend,
    pub db: Option<streaming_core::repo::scratch::ScratchDatabase>,
}

impl std::ops::Deref for BackendServer {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.ts
    }
}

impl TestServer {
    /// Starts a server on `backend` (PostgreSQL: panics with a clear message
    /// when it is unreachable).
    pub async fn start_on(backend: Backend) -> BackendServer {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                Some(streaming_core::repo::scratch::ScratchDatabase::create().await)
            }
        };
        let url = db.as_ref().map(|d| d.url().to_string());
        let ts = TestServer::start_with(|c| c.database_url = url.map(Into::into)).await;
        assert_eq!(
            ts.server.repo.backend(),
            match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            }
        );
        BackendServer { ts, backend, db }
    }

    /// An admin request (`Authorization: Bearer test-admin-token-0123456789abcdef`).
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("authorization", "Bearer test-admin-token-0123456789abcdef")
    }
}

/// Sends a request; returns status, headers and the body as JSON (`Null` if empty).
pub async fn send_json(
    req: reqwest::RequestBuilder,
) -> (
    reqwest::StatusCode,
    reqwest::header::HeaderMap,
    serde_json::Value,
) {
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, headers, body)
}

/// Asserts an RFC 9457 problem answer with the given status and `type` slug.
pub fn assert_problem(
    got: &(
        reqwest::StatusCode,
        reqwest::header::HeaderMap,
        serde_json::Value,
    ),
    status: u16,
    slug: &str,
) {
    let (s, h, body) = got;
    assert_eq!(s.as_u16(), status, "{body}");
    assert_eq!(
        h.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{h:?}"
    );
    assert_eq!(
        body["type"],
        format!("https://streaming.invalid/problems/{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}
