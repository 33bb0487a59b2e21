//! Issue 5's audience acceptance, with the load tool as the audience:
//!
//! 1. 100 simulated HLS viewers (30 switching quality every 4 s, all sending
//!    beacons in the same sessions) on one live stream with a 240p rung: the
//!    REST API, the WebSocket `metrics` messages and Prometheus `/metrics`
//!    all report 100 concurrent viewers once steady, with the same quality
//!    distribution;
//! 2. `GET /api/v1/metrics/{id}?step=1s` over the run returns 1-second points
//!    whose viewer counts and distributions equal what the WebSocket pushed
//!    at those seconds, and `step=1m` returns roll-ups;
//! 3. when the viewers stop, the count reaches 0 within the inactivity
//!    timeout (3 × 2 s) and all 100 sessions are persisted with bytes;
//! 4. one viewer's quality switch (a request for another rendition) shows in
//!    `quality_distribution` within 2 s;
//! 5. beacon-only viewers (no origin requests, as behind a CDN) are counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

mod common;

use common::{config_with_240p, flv_fixture, load};

const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// Runs the tool (bounded); returns its exit code, JSON summary and stderr.
async fn run(args: Vec<String>, timeout: Duration) -> (Option<i32>, Value, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = load(&args, timeout).await;
    (
        code,
        serde_json::from_str(out.trim()).unwrap_or(Value::Null),
        err,
    )
}

type Log = Arc<Mutex<Vec<Value>>>;

/// A WebSocket client recording every `metrics` message.
async fn ws_client(url: &str) -> (Log, tokio::task::JoinHandle<()>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connects");
    let log: Log = Arc::default();
    let sink = log.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("JSON message");
                if v["type"] == "metrics" {
                    sink.lock().unwrap().push(v);
                }
            }
        }
    });
    (log, task)
}

fn last(log: &Log) -> Option<Value> {
    log.lock().unwrap().last().cloned()
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    /// `streaming_concurrent_viewers` and `streaming_viewers_by_quality` of a stream.
    async fn prometheus(&self, id: Uuid) -> (Option<u64>, BTreeMap<String, u64>) {
        let (_, text) = self.get("/metrics").await;
        let mut viewers = None;
        let mut by_quality = BTreeMap::new();
        let sid = format!("stream_id=\"{id}\"");
        for line in text.lines().filter(|l| l.contains(&sid)) {
            let value = line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok());
            if line.starts_with("streaming_concurrent_viewers{") {
                viewers = value;
            } else if line.starts_with("streaming_viewers_by_quality{")
                && let (Some(q), Some(v)) = (line.split("rendition=\"").nth(1), value)
                && v > 0
            {
                by_quality.insert(q.split('"').next().unwrap_or_default().to_string(), v);
            }
        }
        (viewers, by_quality)
    }
}

fn distribution(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_f64()? as u64)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for(timeout: Duration, mut pred: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_viewers_are_counted_alike_everywhere_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let flv = flv_fixture(dir.path(), 10);
    let mut config = config_with_240p(dir.path(), TOKEN);
    config.metrics.flush_secs = 2;
    let server = streaming_server::start(config)
        .await
        .expect("server starts");
    let created = server.repo.create_stream("audience").await.unwrap();
    let id = created.stream.id;
    let http = server.http_addr;
    let rtmp = format!("rtmp://{}/live/{}", server.rtmp_addr, created.plaintext_key);
    let master = format!("http://{http}/hls/{id}/master.m3u8");
    let api = Api {
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        base: format!("http://{http}"),
    };

    let publisher = tokio::spawn(run(
        ["publish", "--rtmp", &rtmp, "--flv", flv.to_str().unwrap()]
            .into_iter()
            .map(String::from)
            .chain(["--loop", "--duration", "75s"].map(String::from))
            .collect(),
        Duration::from_secs(120),
    ));
    // Both renditions listing segments.
    let ready = wait_for(Duration::from_secs(30), async || {
        let (_, text) = api.get(&format!("/hls/{id}/240p/index.m3u8")).await;
        text.matches("#EXTINF").count() >= 2
    })
    .await;
    assert!(ready, "the 240p rendition never listed two segments");

    let (log, ws_task) = ws_client(&format!("ws://{http}/ws/stream/{id}")).await;
    let run_started = chrono::Utc::now();

    // 1. 100 viewers, 30 switching, with beacons, for 24 s.
    let viewers = tokio::spawn(run(
        [
            "viewers",
            "--url",
            &master,
            "--viewers",
            "100",
            "--switchers",
            "30",
            "--switch-every",
            "4s",
            "--beacons",
            "--ramp",
            "2s",
            "--duration",
            "24s",
        ]
        .map(String::from)
        .to_vec(),
        Duration::from_secs(60),
    ));
    tokio::time::sleep(Duration::from_secs(2 + 5)).await;
    // Steady state: everyone is counted, in each of the three places.
    let mut agreed = 0;
    for _ in 0..30 {
        if agreed >= 3 {
            break;
        }
        // Right after a tick, so that all three read the same second.
        let n = log.lock().unwrap().len();
        wait_for(Duration::from_secs(2), async || {
            log.lock().unwrap().len() > n
        })
        .await;
        let ws = last(&log).expect("metrics messages");
        let detail = api.json(&format!("/api/v1/streams/{id}")).await;
        let (prom, prom_q) = api.prometheus(id).await;
        let ws_q = distribution(&ws["quality_distribution"]);
        let api_q = distribution(&detail["quality_distribution"]);
        assert_eq!(ws["concurrent_viewers"], 100, "WebSocket: {ws}");
        assert_eq!(detail["concurrent_viewers"], 100, "REST: {detail}");
        assert_eq!(prom, Some(100), "Prometheus");
        assert_eq!(
            ws_q.values().sum::<u64>(),
            100,
            "every viewer has a quality: {ws}"
        );
        // Switchers move between ticks: the three must agree on a quiet tick.
        if ws_q == api_q && ws_q == prom_q {
            agreed += 1;
        } else {
            eprintln!(
                "distributions differ this second: ws {ws_q:?} api {api_q:?} prom {prom_q:?}"
            );
        }
    }
    assert!(
        agreed >= 3,
        "API, WebSocket and /metrics never agreed on the distribution"
    );
    let active = api
        .json(&format!(
            "/api/v1/streams/{id}/viewers?active=true&per_page=100"
        ))
        .await;
    assert_eq!(active["total"], 100, "{active}");

    let (code, summary, err) = viewers.await.unwrap();
    assert_eq!(code, Some(0), "viewers run: {err}");
    let stopped = Instant::now();
    eprintln!("viewers summary: {summary}");
    assert_eq!(summary["errors"]["total"], 0, "{summary}");
    assert!(
        summary["viewers"]["switches"].as_u64().unwrap_or(0) >= 30,
        "{summary}"
    );
    assert!(
        summary["viewers"]["beacons_sent"].as_u64().unwrap_or(0) >= 100,
        "{summary}"
    );

    // 3. Back to 0 within the inactivity timeout (6 s) and the next tick.
    let drained = wait_for(Duration::from_secs(9), async || {
        last(&log).is_some_and(|m| m["concurrent_viewers"] == 0)
            && api.prometheus(id).await.0 == Some(0)
    })
    .await;
    assert!(drained, "viewers not back to 0: {:?}", last(&log));
    eprintln!(
        "count reached 0 {:?} after the viewers stopped",
        stopped.elapsed()
    );
    let detail = api.json(&format!("/api/v1/streams/{id}")).await;
    assert_eq!(detail["concurrent_viewers"], 0, "{detail}");
    let saved = wait_for(Duration::from_secs(5), async || {
        let page = api
            .json(&format!("/api/v1/streams/{id}/viewers?per_page=100"))
            .await;
        page["total"] == 100
            && page["items"].as_array().unwrap().iter().all(|v| {
                v["bytes_sent"].as_u64() > Some(0)
                    && v["ended_at"].is_string()
                    && v["startup_ms"].is_u64()
            })
    })
    .await;
    assert!(
        saved,
        "not every session was persisted ended with bytes and startup time: {}",
        api.json(&format!("/api/v1/streams/{id}/viewers?per_page=100"))
            .await
    );

    // 2. History equals what the WebSocket pushed, second by second.
    let from = run_started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tokio::time::sleep(Duration::from_secs(3)).await; // one flush (2 s) after `to`
    let history = api
        .json(&format!("/api/v1/metrics/{id}?from={from}&to={to}&step=1s"))
        .await;
    let points = history["points"].as_array().expect("points");
    let by_at: BTreeMap<String, &Value> = points
        .iter()
        .map(|p| {
            let at = chrono::DateTime::parse_from_rfc3339(p["at"].as_str().unwrap()).unwrap();
            (at.timestamp().to_string(), p)
        })
        .collect();
    let mut matched = 0;
    for m in log.lock().unwrap().iter() {
        let at = chrono::DateTime::parse_from_rfc3339(m["at"].as_str().unwrap()).unwrap();
        if at < chrono::DateTime::parse_from_rfc3339(&from).unwrap()
            || at >= chrono::DateTime::parse_from_rfc3339(&to).unwrap()
        {
            continue;
        }
        let p = by_at
            .get(&at.timestamp().to_string())
            .unwrap_or_else(|| panic!("no stored point for the pushed second {m}"));
        assert_eq!(
            p["concurrent_viewers"].as_f64(),
            m["concurrent_viewers"].as_f64(),
            "{p} vs {m}"
        );
        assert_eq!(
            distribution(&p["quality_distribution"]),
            distribution(&m["quality_distribution"]),
            "{p} vs {m}"
        );
        assert_eq!(
            p["ingest_kbps"].as_f64(),
            m["ingest_kbps"].as_f64(),
            "{p} vs {m}"
        );
        matched += 1;
    }
    assert!(matched >= 25, "only {matched} pushed seconds compared");
    let minutes = api
        .json(&format!("/api/v1/metrics/{id}?from={from}&to={to}&step=1m"))
        .await;
    let rollups = minutes["points"].as_array().expect("points");
    assert!(!rollups.is_empty(), "{minutes}");
    // Whole minutes: they may hold seconds just outside [from, to).
    assert!(
        rollups
            .iter()
            .map(|r| r["samples"].as_u64().unwrap())
            .sum::<u64>() as usize
            >= points.len(),
        "roll-ups cover the seconds: {minutes}"
    );
    assert!(rollups.iter().any(|r| r["viewers_max"] == 100), "{minutes}");
    let tens = api
        .json(&format!(
            "/api/v1/metrics/{id}?from={from}&to={to}&step=10s"
        ))
        .await;
    assert!(tens["points"].as_array().unwrap().len() < points.len());
    let health = api
        .json(&format!("/api/v1/analytics/{id}?from={from}"))
        .await;
    eprintln!("analytics: {health}");
    assert!(health["health_score"].is_u64(), "{health}");
    assert_eq!(health["summary"]["peak_viewers"], 100, "{health}");

    // 4. One viewer switches by requesting another rendition.
    let client = &api.client;
    let text =
        |url: String| async move { client.get(url).send().await.unwrap().text().await.unwrap() };
    let m = text(master.clone()).await;
    let source_uri = m
        .lines()
        .find(|l| l.starts_with("source/"))
        .expect("source uri");
    let low_uri = m
        .lines()
        .find(|l| l.starts_with("240p/"))
        .expect("240p uri");
    let base = format!("http://{http}/hls/{id}/");
    text(format!("{base}{source_uri}")).await;
    let seen = |q: &'static str| {
        let log = log.clone();
        async move {
            wait_for(Duration::from_secs(2), async || {
                last(&log).is_some_and(|m| {
                    distribution(&m["quality_distribution"]) == BTreeMap::from([(q.to_string(), 1)])
                })
            })
            .await
        }
    };
    assert!(
        seen("source").await,
        "the viewer never showed on source: {:?}",
        last(&log)
    );
    let switched = Instant::now();
    text(format!("{base}{low_uri}")).await;
    assert!(
        seen("240p").await,
        "a switch to 240p did not show within 2 s: {:?}",
        last(&log)
    );
    eprintln!("quality switch visible after {:?}", switched.elapsed());

    // 5. Beacon-only viewers (their media would come from a CDN).
    let beaconers = tokio::spawn(run(
        [
            "viewers",
            "--url",
            &master,
            "--viewers",
            "10",
            "--beacon-only",
            "--quality",
            "240p",
            "--duration",
            "8s",
        ]
        .map(String::from)
        .to_vec(),
        Duration::from_secs(40),
    ));
    // 10 beaconing viewers, plus the switching viewer until its session expires.
    let counted = wait_for(Duration::from_secs(6), async || {
        last(&log).is_some_and(|m| {
            let n = m["concurrent_viewers"].as_u64().unwrap_or(0);
            n >= 10 && m["quality_distribution"]["240p"].as_u64() == Some(n)
        })
    })
    .await;
    assert!(counted, "beacon-only viewers not counted: {:?}", last(&log));
    let detail = api.json(&format!("/api/v1/streams/{id}")).await;
    assert!(
        detail["concurrent_viewers"].as_u64() >= Some(10),
        "{detail}"
    );
    let (code, summary, err) = beaconers.await.unwrap();
    assert_eq!(code, Some(0), "beacon-only run: {err}");
    assert_eq!(summary["errors"]["total"], 0, "{summary}");

    ws_task.abort();
    publisher.abort();
    server.shutdown().await;
}
