//! PostgreSQL stops while a stream is live: the stream keeps playing,
//! `/ready` turns 503, API calls answer a 503 problem; once PostgreSQL is
//! back everything recovers without restarting the server.
//!
//! The test runs a PostgreSQL of its own (`initdb` into a temporary folder,
//! its own port, as the `postgres` user when run as root) so that stopping
//! it disturbs nothing else.

mod common;
#[path = "support/own_postgres.rs"]
mod own_postgres;

use std::time::{Duration, Instant};

use common::{
    Publish, TestServer, assert_problem, ffmpeg_publish, playlist_uris, send_json, wait_child,
};
use own_postgres::OwnPostgres;
use reqwest::Method;
use serde_json::json;

fn last_segment(playlist: &str) -> u64 {
    playlist_uris(playlist)
        .last()
        .and_then(|u| {
            u.trim_start_matches("segment-")
                .trim_end_matches(".m4s")
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_while_live() {
    let pg = OwnPostgres::start();
    let url = pg.url();
    let ts = TestServer::start_with(|c| c.database_url = Some(url.into())).await;
    assert_eq!(ts.server.repo.backend(), "postgres");
    let (status, _, created) = send_json(
        ts.admin(Method::POST, "/api/v1/streams")
            .json(&json!({ "name": "outage" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let publish = Publish {
        width: 320,
        height: 240,
        fps: 15,
        seconds: 35.0,
        gop_secs: 1,
        video_kbps: 300,
    };
    let encoder = ffmpeg_publish(created["publish_url"].as_str().unwrap(), &publish);
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(20)).await,
        "the stream did not go live"
    );
    let media = format!("/hls/{id}/source/index.m3u8");
    let before = ts
        .wait_for_text(&media, Duration::from_secs(10), |t| last_segment(t) >= 1)
        .await
        .expect("segments");
    let detail_path = format!("/api/v1/streams/{id}");

    // PostgreSQL goes away.
    pg.ctl_stop();
    let stopped = Instant::now();

    // /ready: 503 naming the database; the other checks still pass.
    let mut ready = json!(null);
    while stopped.elapsed() < Duration::from_secs(10) {
        let got = send_json(ts.client.get(ts.url("/ready"))).await;
        ready = got.2;
        if got.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        ready["status"], "not_ready",
        "/ready did not turn 503: {ready}"
    );
    assert_eq!(ready["checks"]["database"]["status"], "fail", "{ready}");
    assert_eq!(ready["checks"]["listeners"]["status"], "pass", "{ready}");

    // The API: a clear 503 problem, within the pool's acquire timeout.
    let asked = Instant::now();
    let got = send_json(ts.admin(Method::GET, &detail_path)).await;
    assert_problem(&got, 503, "database-unavailable");
    assert_eq!(got.1["retry-after"], "5");
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "the 503 took {:?}",
        asked.elapsed()
    );
    let got = send_json(
        ts.admin(Method::POST, "/api/v1/streams")
            .json(&json!({ "name": "x" })),
    )
    .await;
    assert_problem(&got, 503, "database-unavailable");
    let got = send_json(
        ts.client
            .get(ts.url(&format!("/api/v1/streams/{id}/status"))),
    )
    .await;
    assert_problem(&got, 503, "database-unavailable");

    // The stream keeps playing: new segments keep coming during the outage.
    let first = last_segment(&before);
    let during = ts
        .wait_for_text(&media, Duration::from_secs(8), |t| {
            last_segment(t) >= first + 3
        })
        .await
        .expect("the live stream stopped growing while PostgreSQL was down");
    assert!(ts.server.hub.is_live(id));
    assert!(
        ts.get_bytes(&format!(
            "/hls/{id}/source/segment-{}.m4s",
            last_segment(&during)
        ))
        .await
        .is_some()
    );

    // PostgreSQL comes back: everything recovers, no restart.
    pg.ctl_start();
    let back = Instant::now();
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(15) {
        if send_json(ts.client.get(ts.url("/ready"))).await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "/ready did not recover after PostgreSQL came back"
    );
    let (status, _, detail) = send_json(ts.admin(Method::GET, &detail_path)).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["status"], "ACTIVE");
    assert_eq!(detail["live"], true);
    let (status, _, other) = send_json(
        ts.admin(Method::POST, "/api/v1/streams")
            .json(&json!({ "name": "after" })),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    let after = last_segment(&ts.get_text(&media).await.expect("playlist"));
    assert!(after > first, "segments {first} → {after}");

    // The broadcast ends normally and is recorded.
    let (ok, err) = wait_child(encoder, Duration::from_secs(60)).await;
    assert!(ok, "publisher failed: {err}");
    assert!(
        ts.wait_status(id, "ENDED", Duration::from_secs(5)).await,
        "ENDED was not recorded after recovery"
    );
    ts.server.shutdown().await;
    drop(pg);
}
