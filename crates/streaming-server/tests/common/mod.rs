//! Shared harness of the end-to-end tests: an in-process server on 127.0.0.1
//! with ephemeral ports and a temporary data dir, and helpers to drive the real
//! peers (FFmpeg, ffprobe, GStreamer, Chromium).
#![allow(dead_code)]

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
            admin_token: Some("test-admin-token".into()),
            ..Config::default()
        };
        tweak(&mut config);
        let server = streaming_server::start(config).await.expect("server starts");
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
        let c = self.server.repo.create_stream(name).await.expect("create stream");
        (c.stream.id, c.plaintext_key)
    }

    pub fn publish_url(&self, key: &str) -> String {
        format!("{}/{key}", self.rtmp)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("HTTP request")
    }

    pub async fn get_text(&self, path: &str) -> Option<String> {
        let r = self.get(path).await;
        if r.status().is_success() { r.text().await.ok() } else { None }
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
    pub async fn wait_for_text(&self, path: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
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
        .arg(format!("testsrc2=size={}x{}:rate={}", p.width, p.height, p.fps))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &p.seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"])
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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}
