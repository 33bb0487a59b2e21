//! Acceptance: headless Chromium (playwright-core) plays the watch page with
//! hls.js and a test page with dash.js; frames decode and currentTime advances;
//! the watch page's beacons and requests make one counted session, under the
//! signed id it obtained from the server.

mod common;

use std::time::Duration;

use common::{Publish, TestServer, ffmpeg_publish, repo_root, require, run, wait_child};

async fn play(page_url: &str) -> (bool, String, String) {
    let script = repo_root().join("web/tests/play.mjs");
    assert!(
        repo_root()
            .join("web/node_modules/playwright-core")
            .exists(),
        "playwright-core is missing: run `npm ci` in web/ (scripts/test does this)"
    );
    run(
        "node",
        &[
            script.to_str().unwrap(),
            page_url,
            "--seconds",
            "7",
            "--min-advance",
            "5",
            "--start-timeout",
            "30",
        ],
        Duration::from_secs(90),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_and_dashjs_play_in_chromium() {
    require("node", "nodejs");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is required: apt-get install -y chromium (scripts/test does this)"
    );
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("browser").await;
    let child = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            seconds: 60.0,
            ..Publish::default()
        },
    );
    ts.wait_for_text(
        &format!("/hls/{id}/source/index.m3u8"),
        Duration::from_secs(20),
        |t| t.matches("#EXTINF").count() >= 2,
    )
    .await
    .expect("live playlist with two segments");

    let (ok, out, err) = play(&ts.url(&format!("/watch/{id}"))).await;
    assert!(ok, "hls.js watch page did not play: {out} {err}");
    assert!(out.contains("\"ok\":true"), "{out}");
    // The page's beacons and its playlist/segment requests made one session
    // (its own `sid` on the master URL), with the startup time it measured.
    let viewers: serde_json::Value = reqwest::Client::new()
        .get(ts.url(&format!("/api/v1/streams/{id}/viewers?active=true")))
        .bearer_auth(&ts.server.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = viewers["items"].as_array().expect("items");
    assert_eq!(sessions.len(), 1, "one watch page, one session: {viewers}");
    let s = &sessions[0];
    assert!(
        s["startup_ms"].as_u64().is_some_and(|ms| ms < 30_000),
        "{s}"
    );
    assert!(
        s["bytes_sent"].as_u64() > Some(100_000),
        "segments charged to it: {s}"
    );
    assert_eq!(s["quality"], "source", "{s}");
    // Minted for the page (POST /api/v1/streams/{id}/sessions), then taken
    // over by its HLS requests; no id the page used was refused.
    assert_eq!(s["protocol"], "hls", "{s}");
    let metrics = ts.get_text("/metrics").await.unwrap_or_default();
    assert!(
        metrics.contains("streaming_limit_hits_total{kind=\"sessions_unsigned\"} 0"),
        "the watch page used an unsigned session id: {}",
        metrics
            .lines()
            .filter(|l| l.contains("sessions_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        s["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.contains("Chrome")),
        "{s}"
    );

    let (ok, out, err) = play(&ts.url(&format!("/watch/{id}/dash"))).await;
    assert!(ok, "dash.js page did not play: {out} {err}");
    assert!(out.contains("\"ok\":true"), "{out}");

    let (_, _) = wait_child(child, Duration::from_millis(10)).await;
    ts.server.shutdown().await;
}
