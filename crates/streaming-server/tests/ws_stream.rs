//! Acceptance of `GET /ws/stream/{stream_id}`: twenty WebSocket clients connected
//! before an FFmpeg publish get a PENDING snapshot, ACTIVE, per-second metrics
//! with a non-zero ingest bitrate, and ENDED within 2 s of the encoder stopping;
//! an unknown stream is 404 before the upgrade; a client that stops reading is
//! dropped while another keeps its 1 s metrics.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Publish, TestServer, ffmpeg_publish, wait_child};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;

type Log = Arc<Mutex<Vec<(Instant, Value)>>>;

/// Checks a message against its schema in the AsyncAPI document: required
/// fields present, no undocumented field, JSON types and enums as declared.
fn conforms(doc: &Value, m: &Value) -> Result<(), String> {
    let ty = m["type"].as_str().ok_or("no type")?;
    let schema = &doc["components"]["schemas"][ty];
    let props = schema["properties"]
        .as_object()
        .ok_or(format!("undocumented message type {ty}"))?;
    let obj = m.as_object().ok_or("not an object")?;
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        if !obj.contains_key(r) {
            return Err(format!("{ty}: missing {r}"));
        }
    }
    for (k, v) in obj {
        let p = props
            .get(k)
            .ok_or(format!("{ty}: undocumented field {k}"))?;
        let types: Vec<&str> = match &p["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok_type = types.is_empty()
            || types.iter().any(|t| match *t {
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "string" => v.is_string(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                "null" => v.is_null(),
                _ => false,
            });
        if !ok_type {
            return Err(format!("{ty}.{k} = {v} is not {types:?}"));
        }
        if let Some(options) = p["enum"].as_array()
            && !options.contains(v)
        {
            return Err(format!("{ty}.{k} = {v} not in {options:?}"));
        }
        if let Some(c) = p.get("const")
            && c != v
        {
            return Err(format!("{ty}.{k} = {v}, documented {c}"));
        }
    }
    Ok(())
}

/// Connects and records every text message (as JSON) with its arrival time.
async fn client(url: &str) -> (Log, tokio::task::JoinHandle<()>) {
    let (mut ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connects");
    assert_eq!(resp.status().as_u16(), 101);
    let log: Log = Arc::default();
    let sink = log.clone();
    let task = tokio::spawn(async move {
        // Reading also answers the server's pings.
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("message is JSON");
                sink.lock().unwrap().push((Instant::now(), v));
            }
        }
    });
    (log, task)
}

fn of_type(log: &Log, ty: &str) -> Vec<(Instant, Value)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["type"] == ty)
        .cloned()
        .collect()
}

async fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pred()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_follows_a_broadcast() {
    let started = Instant::now();
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("ws").await;
    let ws_base = format!("ws://{}/ws/stream", ts.server.http_addr);

    // Unknown stream: 404 before the upgrade, for WebSocket and plain GET alike.
    match tokio_tungstenite::connect_async(format!("{ws_base}/{}", Uuid::new_v4())).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 404),
        Err(e) => panic!("unknown stream: expected HTTP 404, got {e}"),
        Ok(_) => panic!("unknown stream: the upgrade was accepted"),
    }
    assert_eq!(
        ts.get(&format!("/ws/stream/{}", Uuid::new_v4()))
            .await
            .status(),
        404
    );
    assert_eq!(ts.get("/ws/stream/not-a-uuid").await.status(), 404);

    let url = format!("{ws_base}/{id}");
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(client(&url).await);
    }
    for (log, _) in &clients {
        assert!(
            wait_until(Duration::from_secs(2), || !log.lock().unwrap().is_empty()).await,
            "no snapshot"
        );
        let first = log.lock().unwrap()[0].1.clone();
        assert_eq!(first["type"], "snapshot", "{first}");
        assert_eq!(first["status"], "PENDING", "{first}");
        assert_eq!(first["stream_id"], id.to_string(), "{first}");
        assert_eq!(first["viewers"], 0, "{first}");
        assert!(first["qualities"].is_array(), "{first}");
    }

    let publish = Publish {
        width: 640,
        height: 360,
        seconds: 6.0,
        ..Publish::default()
    };
    let child = ffmpeg_publish(&ts.publish_url(&key), &publish);
    let (ok, err) = wait_child(child, Duration::from_secs(30)).await;
    assert!(ok, "ffmpeg publisher failed: {err}");
    let stopped = Instant::now();

    for (i, (log, _)) in clients.iter().enumerate() {
        assert!(
            wait_until(Duration::from_secs(3), || of_type(log, "status")
                .iter()
                .any(|(_, v)| v["status"] == "ENDED"))
            .await,
            "client {i}: no ENDED; got {:?}",
            log.lock().unwrap()
        );
        let statuses = of_type(log, "status");
        let names: Vec<_> = statuses.iter().map(|(_, v)| v["status"].clone()).collect();
        assert_eq!(names, ["ACTIVE", "ENDED"], "client {i}");
        for (_, v) in &statuses {
            let at = v["at"].as_str().expect("at");
            chrono::DateTime::parse_from_rfc3339(at).expect("at is RFC 3339");
        }
        let ended_at = statuses[1].0;
        // FFmpeg unpublishes before it exits, so ENDED may even come first.
        let after = ended_at.saturating_duration_since(stopped);
        let before = stopped.saturating_duration_since(ended_at);
        assert!(
            after <= Duration::from_secs(2),
            "client {i}: ENDED {after:?} after FFmpeg exited"
        );

        let live: Vec<_> = of_type(log, "metrics")
            .into_iter()
            .filter(|(_, v)| v["status"] == "ACTIVE" && v["ingest_kbps"].as_u64() > Some(0))
            .collect();
        assert!(
            live.len() >= 2,
            "client {i}: {} live metrics messages with ingest_kbps > 0; got {:?}",
            live.len(),
            of_type(log, "metrics")
        );
        for (_, m) in &live {
            assert_eq!(m["concurrent_viewers"], 0, "{m}");
            let at = m["at"].as_str().expect("at");
            let at = chrono::DateTime::parse_from_rfc3339(at).expect("at is RFC 3339");
            assert_eq!(at.timestamp_subsec_millis(), 0, "a whole second: {m}");
            let tick = m["tick_ms"].as_i64().expect("tick_ms");
            assert!((0..1000).contains(&(tick - at.timestamp_millis())), "{m}");
            assert!(m["egress_kbps"].is_u64(), "{m}");
            assert!(m["buffering_ratio"].is_number(), "{m}");
            // Empty until the first segment is out; then the source leads.
            let q = m["qualities"].as_array().expect("qualities");
            assert!(q.is_empty() || q[0] == "source", "{m}");
            let kbps = m["ingest_kbps"].as_u64().unwrap();
            assert!(
                (200..5000).contains(&kbps),
                "ingest_kbps {kbps} implausible for 1000k video + 128k audio"
            );
        }
        assert!(
            live.iter().any(|(_, m)| m["qualities"][0] == "source"),
            "client {i}: no metrics message lists the source rendition"
        );
        eprintln!(
            "client {i}: ENDED {after:?} after / {before:?} before FFmpeg's exit was seen; {} live metrics, kbps {:?}",
            live.len(),
            live.iter()
                .map(|(_, m)| m["ingest_kbps"].as_u64().unwrap())
                .collect::<Vec<_>>()
        );
    }
    // Every message received matches the published AsyncAPI document.
    let doc: Value = serde_json::from_str(
        &ts.get_text("/api/asyncapi.json")
            .await
            .expect("/api/asyncapi.json"),
    )
    .expect("AsyncAPI JSON");
    let mut seen = std::collections::BTreeSet::new();
    for (log, _) in &clients {
        for (_, m) in log.lock().unwrap().iter() {
            conforms(&doc, m).unwrap_or_else(|e| panic!("{e}: {m}"));
            seen.insert(m["type"].as_str().unwrap().to_string());
        }
    }
    assert!(seen.len() >= 3, "message types seen: {seen:?}");
    for (_, task) in clients {
        task.abort();
    }
    ts.server.shutdown().await;
    eprintln!("ws_stream: {:?}", started.elapsed());
}

/// A client that stops reading (and so never answers pings) is dropped by
/// the server within two ping intervals (30 s), while a client beside it
/// keeps getting its metrics message every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_others_carry_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ts = TestServer::start().await;
    let (id, _) = ts.create_stream("slow").await;
    let (fast, fast_task) = client(&format!("ws://{}/ws/stream/{id}", ts.server.http_addr)).await;

    // The slow client: a bare upgrade, then silence.
    let mut slow = tokio::net::TcpStream::connect(ts.server.http_addr)
        .await
        .unwrap();
    let req = format!(
        "GET /ws/stream/{id} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ts.server.http_addr
    );
    slow.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = slow.read(&mut head).await.unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(31)).await;

    // The server gave up on it: what it sent drains, then the socket ends.
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(
        closed,
        "the silent client was still connected after {:?}",
        started.elapsed()
    );

    // Meanwhile the other client got a metrics message every second.
    let times: Vec<Instant> = of_type(&fast, "metrics")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert!(
        times.len() >= 28,
        "{} metrics messages in 31 s",
        times.len()
    );
    let worst = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap();
    assert!(
        worst < Duration::from_millis(1500),
        "a gap of {worst:?} between metrics messages"
    );
    fast_task.abort();
    ts.server.shutdown().await;
}
