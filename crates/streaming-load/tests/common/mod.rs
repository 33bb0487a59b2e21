//! Shared by the load tool's integration tests: the FFmpeg-made FLV fixture
//! and a bounded run of the tool's binary.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_streaming-load");

pub fn require_ffmpeg() {
    let found = Command::new("sh")
        .args(["-c", "command -v ffmpeg"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`ffmpeg` is required by this test; install it with `apt-get install -y ffmpeg` (scripts/test does this)"
    );
}

/// testsrc2 + sine → x264 + AAC → FLV of `seconds` (2 s GOP).
pub fn flv_fixture(dir: &Path, seconds: u32) -> std::path::PathBuf {
    require_ffmpeg();
    let path = dir.join(format!("fixture-{seconds}s.flv"));
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
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
            "600k",
        ])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
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
    path
}

/// Runs the tool (bounded); returns (exit code, stdout, stderr).
pub async fn load(args: &[&str], timeout: Duration) -> (Option<i32>, String, String) {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn streaming-load");
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .expect("streaming-load exceeded its time bound")
        .expect("streaming-load output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A loopback server config with a temporary data dir, the given admin token
/// and one 240p rung (ultrafast x264), so viewers have two qualities.
pub fn config_with_240p(dir: &Path, admin_token: &str) -> streaming_core::config::Config {
    let mut c = streaming_core::config::Config {
        rtmp_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        admin_token: Some(admin_token.into()),
        transcode: streaming_core::config::TranscodeConfig {
            preset: "ultrafast".into(),
            rungs: vec![streaming_core::config::RungConfig {
                name: "240p".into(),
                height: 240,
                video_kbps: 300,
                max_fps: 30.0,
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    // Hundreds of simulated viewers share 127.0.0.1: no per-address API
    // rate limits; `/metrics` is scraped without a token.
    c.http.api_requests_per_min = 0;
    c.http.public_requests_per_sec = 0;
    c.http.admin_failures_per_min = 0;
    c.websocket.max_clients_per_addr = 10_000;
    c.http.max_connections_per_addr = 10_000;
    c.http.max_held_requests_per_addr = 10_000;
    c.metrics.public = true;
    c
}
