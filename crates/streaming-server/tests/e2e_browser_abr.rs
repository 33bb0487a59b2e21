//! Acceptance of the ladder in a real browser: hls.js in headless Chromium
//! starts on one level and is forced to switch levels twice while playing (no
//! stall over 1 s, currentTime advancing, frames decoded); dash.js plays the
//! MPD and lists every video representation. The browser side is
//! `web/tests/abr.mjs`; it prints one JSON line, echoed here.

mod common;

use std::time::{Duration, Instant};

use common::{Publish, TestServer, ffmpeg_publish, repo_root, require, run, wait_child};
use streaming_core::config::RungConfig;

/// The small CI ladder of `e2e_ladder.rs`: a 720p source gets source + 360p + 240p.
fn test_ladder(c: &mut streaming_core::config::Config) {
    let rung = |name: &str, height, video_kbps| RungConfig {
        name: name.into(),
        height,
        video_kbps,
        max_fps: 30.0,
    };
    c.transcode.rungs = vec![rung("360p", 360, 700), rung("240p", 240, 350)];
    c.transcode.preset = "veryfast".into();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_switches_levels_and_dashjs_lists_representations() {
    require("node", "nodejs");
    require("ffmpeg", "ffmpeg");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is required: apt-get install -y chromium (scripts/test does this)"
    );
    assert!(
        repo_root().join("web/node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in web/ (scripts/test does this)"
    );
    let ts = TestServer::start_with(test_ladder).await;
    assert!(ts.server.transcoder.available(), "FFmpeg must be found for this test");
    let (id, key) = ts.create_stream("abr").await;
    let began = Instant::now();
    let publisher = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            width: 1280,
            height: 720,
            seconds: 90.0,
            video_kbps: 2500,
            ..Publish::default()
        },
    );
    assert!(ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await, "stream ACTIVE");
    let master = ts
        .wait_for_text(&format!("/hls/{id}/master.m3u8"), Duration::from_secs(20), |t| {
            t.contains("360p/index.m3u8") && t.contains("240p/index.m3u8")
        })
        .await
        .expect("master lists 360p and 240p");
    for r in ["source", "360p", "240p"] {
        ts.wait_for_text(&format!("/hls/{id}/{r}/index.m3u8"), Duration::from_secs(20), |t| {
            t.matches("#EXTINF").count() >= 2
        })
        .await
        .unwrap_or_else(|| panic!("{r} playlist has two segments\n{master}"));
    }
    eprintln!("renditions ready after {:?}", began.elapsed());

    if let Some(secs) = std::env::var("ABR_HOLD_SECS").ok().and_then(|s| s.parse().ok()) {
        eprintln!("HOLD {} {id}", ts.http);
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let script = repo_root().join("web/tests/abr.mjs");
    let watch = ts.url(&format!("/watch/{id}"));
    let dash = ts.url(&format!("/watch/{id}/dash"));
    let ran = Instant::now();
    let (ok, out, err) = run(
        "node",
        &[script.to_str().unwrap(), &watch, &dash, "--start-timeout", "30", "--switch-timeout", "20"],
        Duration::from_secs(120),
    )
    .await;
    eprintln!("abr.mjs ran {:?}: {out}", ran.elapsed());
    if !err.trim().is_empty() {
        eprintln!("abr.mjs stderr: {err}");
    }

    // The publisher is done with; stop it before asserting.
    let _ = wait_child(publisher, Duration::from_millis(10)).await;
    ts.server.shutdown().await;

    let line = out.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("abr.mjs printed no JSON ({e}): {out} {err}"));
    assert!(ok && json["ok"] == true, "ABR in Chromium failed: {json:#}\n{err}");
    let hls = &json["hls"];
    assert!(hls["levels"].as_u64() >= Some(3), "{hls}");
    assert_eq!(hls["switches"].as_array().map(Vec::len), Some(2), "{hls}");
    assert!(hls["longestStall"].as_f64().is_some_and(|s| s <= 1.0), "{hls}");
    assert!(json["dash"]["representations"].as_u64() >= Some(3), "{json}");
}
