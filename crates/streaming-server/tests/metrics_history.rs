//! The 1-second collector end to end, on SQLite and on PostgreSQL: three
//! beacon-only viewers (one of them stalls for 2 s) watch an FFmpeg publish;
//! the WebSocket pushes their count and buffering ratio each second; the
//! history API returns the same values for the same seconds (`step=1s`),
//! 10-second averages and 1-minute roll-ups; the sessions are persisted with
//! what the beacons said; analytics names the buffering.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, BackendServer, Publish, TestServer, ffmpeg_publish, send_json};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

async fn start(backend: Backend) -> BackendServer {
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(streaming_core::repo::scratch::ScratchDatabase::create().await),
    };
    let url = db.as_ref().map(|d| d.url().to_string());
    let ts = TestServer::start_with(|c| {
        c.database_url = url.map(Into::into);
        c.metrics.flush_secs = 1;
    })
    .await;
    BackendServer { ts, backend, db }
}

/// A signed session id for a beacon-only player of `stream`, as a player
/// behind a CDN gets it.
async fn mint(ts: &TestServer, stream: Uuid) -> String {
    let resp = ts
        .client
        .post(ts.url(&format!("/api/v1/streams/{stream}/sessions")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["session_id"].as_str().unwrap().to_string()
}

async fn beacon(ts: &TestServer, sid: &str, body: Value) {
    let resp = ts
        .client
        .post(ts.url(&format!("/api/v1/sessions/{sid}/events")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{body}: {:?}", resp.text().await);
}

async fn history_matches_what_was_pushed(backend: Backend) {
    let ts = start(backend).await;
    let (id, key) = ts.create_stream("history").await;
    let child = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            width: 640,
            height: 360,
            seconds: 25.0,
            ..Publish::default()
        },
    );
    ts.wait_for_text(
        &format!("/hls/{id}/source/index.m3u8"),
        Duration::from_secs(20),
        |t| t.contains("#EXTINF"),
    )
    .await
    .expect("live playlist");

    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/stream/{id}", ts.server.http_addr))
            .await
            .expect("WebSocket");
    let pushed: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = pushed.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "metrics" {
                    sink.lock().unwrap().push(v);
                }
            }
        }
    });
    let from = chrono::Utc::now();

    // Three players behind a "CDN": beacons only. `a` stalls for 2 s.
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(mint(&ts, id).await);
    }
    for (i, sid) in viewers.iter().enumerate() {
        let q = if i == 2 { "audio" } else { "source" };
        beacon(
            &ts,
            sid,
            json!({"type": "startup", "stream_id": id, "startup_ms": 700 + i, "quality": q}),
        )
        .await;
    }
    for second in 0..8 {
        for sid in &viewers {
            beacon(&ts, sid, json!({"type": "heartbeat", "stream_id": id})).await;
        }
        match second {
            2 => {
                beacon(
                    &ts,
                    &viewers[0],
                    json!({"type": "stall_start", "stream_id": id}),
                )
                .await
            }
            4 => {
                beacon(
                    &ts,
                    &viewers[0],
                    json!([{"type": "stall_end", "stream_id": id}]),
                )
                .await
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let to = chrono::Utc::now();
    // The batch of the last seconds reaches the database (flush every 1 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, _, history) = send_json(ts.admin(
        Method::GET,
        &format!(
            "/api/v1/metrics/{id}?from={}&to={}&step=1s",
            fmt(from),
            fmt(to)
        ),
    ))
    .await;
    assert_eq!(status, 200, "{history}");
    let points = history["points"].as_array().unwrap().clone();
    let mut compared = 0;
    let mut stalled_seconds = 0;
    for m in pushed.lock().unwrap().iter() {
        let at = chrono::DateTime::parse_from_rfc3339(m["at"].as_str().unwrap()).unwrap();
        if at.timestamp() < from.timestamp() || at >= to {
            continue;
        }
        let Some(p) = points.iter().find(|p| {
            chrono::DateTime::parse_from_rfc3339(p["at"].as_str().unwrap()).unwrap() == at
        }) else {
            panic!("{backend:?}: no stored point for pushed {m}; history {history}");
        };
        assert_eq!(
            p["concurrent_viewers"].as_f64(),
            m["concurrent_viewers"].as_f64(),
            "{p} {m}"
        );
        assert_eq!(
            p["buffering_ratio"].as_f64(),
            m["buffering_ratio"].as_f64(),
            "{p} {m}"
        );
        assert_eq!(p["errors"].as_u64(), m["errors"].as_u64(), "{p} {m}");
        for (q, n) in m["quality_distribution"].as_object().unwrap() {
            assert_eq!(p["quality_distribution"][q].as_f64(), n.as_f64(), "{p} {m}");
        }
        if m["concurrent_viewers"] == 3 && m["buffering_ratio"].as_f64() > Some(0.0) {
            stalled_seconds += 1;
        }
        compared += 1;
    }
    assert!(
        compared >= 6,
        "{backend:?}: only {compared} seconds compared"
    );
    assert!(
        stalled_seconds >= 1,
        "{backend:?}: the 2 s stall never showed as buffering: {:?}",
        pushed.lock().unwrap()
    );

    let (_, _, tens) = send_json(ts.admin(
        Method::GET,
        &format!(
            "/api/v1/metrics/{id}?from={}&to={}&step=10s",
            fmt(from),
            fmt(to)
        ),
    ))
    .await;
    assert!(!tens["points"].as_array().unwrap().is_empty(), "{tens}");
    let (_, _, minutes) = send_json(ts.admin(
        Method::GET,
        &format!(
            "/api/v1/metrics/{id}?from={}&to={}&step=1m",
            fmt(from),
            fmt(to)
        ),
    ))
    .await;
    let rollups = minutes["points"].as_array().unwrap();
    assert!(
        rollups
            .iter()
            .map(|r| r["samples"].as_u64().unwrap())
            .sum::<u64>()
            >= compared,
        "{minutes}"
    );
    assert!(rollups.iter().any(|r| r["viewers_max"] == 3), "{minutes}");

    let (_, _, health) = send_json(ts.admin(
        Method::GET,
        &format!("/api/v1/analytics/{id}?from={}", fmt(from)),
    ))
    .await;
    let buffering = health["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "buffering")
        .unwrap_or_else(|| panic!("no buffering factor: {health}"));
    assert!(buffering["value"].as_f64() > Some(0.0), "{health}");

    // Beacons stopped: the sessions end (6 s) and are saved with what the
    // players reported.
    let mut saved = Value::Null;
    for _ in 0..100 {
        let (_, _, page) =
            send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{id}/viewers"))).await;
        if page["total"] == 3
            && page["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["ended_at"].is_string())
        {
            saved = page;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = saved["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{backend:?}: sessions not saved"));
    let a = items
        .iter()
        .find(|v| v["id"] == viewers[0][..36])
        .expect("the stalling viewer");
    assert_eq!(a["startup_ms"], 700, "{a}");
    assert_eq!(a["stalls"], 1, "{a}");
    let stall = a["stall_ms"].as_u64().unwrap();
    assert!((1500..3500).contains(&stall), "stall of ~2 s: {a}");
    assert_eq!(a["protocol"], "beacon", "{a}");

    reader.abort();
    let _ = common::wait_child(child, Duration::from_millis(10)).await;
    ts.ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_matches_what_was_pushed_on_sqlite() {
    history_matches_what_was_pushed(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_matches_what_was_pushed_on_postgres() {
    history_matches_what_was_pushed(Backend::Postgres).await;
}
