//! Abuse suite (issue 9, point 3 and the beacon limits of point 2): viewer
//! sessions cannot be forged, and beacons cannot flood memory, the database
//! or the log.
//!
//! One server process (the real binary, so `/proc` tells its memory), a live
//! FFmpeg publish from 127.0.0.1 and a player-like HLS viewer from 127.0.0.1;
//! the attackers come from 127.0.0.2 and up. The attacks, one after the
//! other:
//!
//! 1. ≈45,000 beacons and playlist/segment GETs with made-up session ids from
//!    4 addresses × 8 concurrent clients: no viewer is made from them (REST
//!    `concurrent_viewers` and the active listing show the real viewer only),
//!    forged beacons are 403, the sessions a master hands out per address are
//!    capped (50/s), no session row is written for them, the log stays small;
//! 2. oversized beacon bodies (2 MiB with a length, 2 MiB chunked, 21 events):
//!    413, at most one log line each; 20 error events log one line;
//! 3. beacons for a stream that is not live (409) or naming another stream
//!    than their id was signed for (403); minting for an unknown stream (404);
//! 4. one session beaconing as fast as it can: 429 beyond 10/s;
//! 5. one address minting as fast as it can: 429 beyond 50/s.
//!
//! After each: the server's RSS stays under its bound, the live publish is
//! still running, the viewer still gets new segments, and a new publish is
//! accepted. The figures (peak RSS, attacker request rate, refusals) are
//! printed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::abuse::{
    ADMIN_TOKEN, HlsViewer, LivePublish, ServerProcess, client_from, connect_from,
    new_publish_is_accepted,
};
use common::playlist_uris;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Requests of the made-up-session flood, in all.
const FLOOD_REQUESTS: u64 = 45_000;
/// Attacker addresses (127.0.0.2 ..) and concurrent clients per address.
const FLOOD_ADDRS: u8 = 4;
const CLIENTS_PER_ADDR: usize = 8;
/// New sessions per address per second (the default of `[sessions]`).
const NEW_PER_SEC: f64 = 50.0;
/// The server's resident memory must stay under this (KiB), whatever the attack.
const RSS_BOUND_KIB: u64 = 96 * 1024;
/// …and grow by no more than this over its level before the attacks.
const RSS_GROWTH_KIB: u64 = 32 * 1024;

/// A session id of the right shape that the server never signed.
fn made_up_id(i: u64) -> String {
    match i % 3 {
        0 => format!("{}.{}", Uuid::new_v4(), Uuid::new_v4().simple()),
        1 => Uuid::new_v4().to_string(),
        _ => format!("{}.{i:032x}", Uuid::new_v4()),
    }
}

/// The live status of the attacks, as the server sees it.
struct Check<'a> {
    server: &'a ServerProcess,
    publish: LivePublish,
    viewer: HlsViewer,
    baseline_kib: u64,
}

impl Check<'_> {
    /// After (and during) an attack: memory bounded, publish and viewer going,
    /// a new publish accepted.
    async fn still_serving(&mut self, phase: &str) {
        let rss = self.server.rss_kib();
        let peak = self.server.peak_rss_kib();
        eprintln!(
            "[{phase}] RSS {} MiB (peak so far {} MiB, before the attacks {} MiB)",
            rss / 1024,
            peak / 1024,
            self.baseline_kib / 1024
        );
        assert!(
            peak <= RSS_BOUND_KIB,
            "[{phase}] peak RSS {peak} KiB above {RSS_BOUND_KIB} KiB"
        );
        assert!(
            rss <= self.baseline_kib + RSS_GROWTH_KIB,
            "[{phase}] RSS {rss} KiB grew more than {RSS_GROWTH_KIB} KiB over {} KiB",
            self.baseline_kib
        );
        assert!(
            self.publish.running(),
            "[{phase}] the live publish was cut off"
        );
        self.viewer.assert_playing(Duration::from_secs(8), phase);
        new_publish_is_accepted(self.server, Duration::from_secs(10)).await;
    }

    /// `concurrent_viewers` of the live stream over REST, and the active listing's total.
    async fn viewers(&self) -> (u64, u64) {
        self.viewers_of(self.publish.stream_id).await
    }

    /// `concurrent_viewers` of stream `id`, and its active listing's total.
    async fn viewers_of(&self, id: Uuid) -> (u64, u64) {
        let get = |path: String| async move {
            let v: Value = self
                .server
                .client
                .get(self.server.url(&path))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("admin GET")
                .json()
                .await
                .expect("JSON");
            v
        };
        let detail = get(format!("/api/v1/streams/{id}")).await;
        let active = get(format!("/api/v1/streams/{id}/viewers?active=true")).await;
        (
            detail["concurrent_viewers"].as_u64().unwrap_or(u64::MAX),
            active["total"].as_u64().unwrap_or(u64::MAX),
        )
    }

    /// Rows in the database for the live stream (ended and open).
    async fn session_rows(&self) -> u64 {
        let id = self.publish.stream_id;
        let v: Value = self
            .server
            .client
            .get(self.server.url(&format!("/api/v1/streams/{id}/viewers")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin GET")
            .json()
            .await
            .expect("JSON");
        v["total"].as_u64().unwrap_or(u64::MAX)
    }
}

/// Mints a signed id for `stream` from 127.0.0.`n`.
async fn mint(server: &ServerProcess, n: u8, stream: Uuid) -> (u16, Value) {
    let r = client_from(n)
        .post(server.url(&format!("/api/v1/streams/{stream}/sessions")))
        .send()
        .await
        .expect("POST sessions");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// POSTs a beacon body; returns the status, `Retry-After` and the problem `type`.
async fn post_beacon(
    client: &reqwest::Client,
    server: &ServerProcess,
    sid: &str,
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let r = client
        .post(server.url(&format!("/api/v1/sessions/{sid}/events")))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST beacon");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        retry,
        v["type"].as_str().unwrap_or_default().to_string(),
    )
}

/// POSTs `body` to `path` over a raw connection from 127.0.0.`n`, with a
/// `Content-Length` or chunked, without waiting to finish sending before
/// reading the answer (the server may answer early). Returns the status line.
async fn raw_post(
    server: &ServerProcess,
    n: u8,
    path: &str,
    body: Vec<u8>,
    chunked: bool,
) -> String {
    let sock = connect_from(n, server.http_addr).await.expect("connect");
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         {framing}\r\nConnection: close\r\n\r\n"
    );
    let (mut rd, mut wr) = sock.into_split();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for chunk in body.chunks(16 * 1024) {
            let bytes = if chunked {
                [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk.to_vec(),
                    b"\r\n".to_vec(),
                ]
                .concat()
            } else {
                chunk.to_vec()
            };
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        if chunked {
            let _ = wr.write_all(b"0\r\n\r\n").await;
        }
    });
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap_or(0);
    writer.abort();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Waits (bounded) until the live stream shows `want` (viewers, active sessions).
async fn wait_viewers(check: &Check<'_>, want: (u64, u64), timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = check.viewers().await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "viewers {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn log_lines(server: &ServerProcess) -> usize {
    server.logs().lines().count()
}

type Tally = BTreeMap<(&'static str, u16), u64>;

/// Attack 1: the made-up-session flood.
async fn flood(check: &mut Check<'_>) {
    let server = check.server;
    let id = check.publish.stream_id;
    let segment = {
        let text = server
            .client
            .get(server.url(&format!("/hls/{id}/source/index.m3u8")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        playlist_uris(&text).pop().expect("a segment listed")
    };
    let (unsigned0, new0) = (
        server.limit_hits("sessions_unsigned").await,
        server.limit_hits("sessions_new_per_addr").await,
    );
    let logs0 = log_lines(server);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..FLOOD_ADDRS {
        let client = client_from(2 + a);
        for _ in 0..CLIENTS_PER_ADDR {
            let (client, next) = (client.clone(), next.clone());
            let base = server.http.clone();
            let segment = segment.clone();
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut fresh_sessions = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= FLOOD_REQUESTS {
                        break;
                    }
                    let sid = made_up_id(i);
                    let (kind, req) = match i % 4 {
                        0 => (
                            "beacon",
                            client
                                .post(format!("{base}/api/v1/sessions/{sid}/events"))
                                .json(&json!({"type": "heartbeat", "stream_id": id, "quality": "source"})),
                        ),
                        1 => (
                            "master",
                            client.get(format!("{base}/hls/{id}/master.m3u8?sid={sid}")),
                        ),
                        2 => (
                            "playlist",
                            client.get(format!("{base}/hls/{id}/source/index.m3u8?sid={sid}")),
                        ),
                        _ => (
                            "segment",
                            client.get(format!("{base}/hls/{id}/source/{segment}?sid={sid}")),
                        ),
                    };
                    let Ok(resp) = req.send().await else {
                        *tally.entry((kind, 0)).or_default() += 1;
                        continue;
                    };
                    let status = resp.status().as_u16();
                    let body = resp.bytes().await.unwrap_or_default();
                    *tally.entry((kind, status)).or_default() += 1;
                    if kind != "segment" {
                        let text = String::from_utf8_lossy(&body);
                        assert!(
                            !text.contains(&sid),
                            "{kind}: a made-up id was written back: {text}"
                        );
                        if kind == "master" && text.contains("?sid=") {
                            fresh_sessions += 1;
                        }
                        if kind == "playlist" {
                            assert!(!text.contains("sid="), "{text}");
                        }
                    }
                }
                (a, tally, fresh_sessions)
            }));
        }
    }
    // Mid-flood, the real viewer is the only one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mid = check.viewers().await;
    let mut tally = Tally::new();
    let mut fresh = [0u64; FLOOD_ADDRS as usize];
    for t in tasks {
        let (a, t, f) = t.await.expect("attacker task");
        for (k, v) in t {
            *tally.entry(k).or_default() += v;
        }
        fresh[a as usize] += f;
    }
    let secs = started.elapsed().as_secs_f64();
    let sent: u64 = tally.values().sum();
    let logged = log_lines(server) - logs0;
    let count = |kind: &str, status: u16| tally.get(&(kind, status)).copied().unwrap_or(0);
    eprintln!(
        "[flood] {sent} requests in {secs:.1} s = {:.0}/s from {} clients on {FLOOD_ADDRS} addresses; \
         outcomes {tally:?}; sessions handed out per address {fresh:?}; {logged} log lines",
        sent as f64 / secs,
        FLOOD_ADDRS as usize * CLIENTS_PER_ADDR,
    );
    assert_eq!(sent, FLOOD_REQUESTS);
    assert_eq!(
        mid,
        (1, 1),
        "mid-flood: (concurrent_viewers, active sessions)"
    );
    // Forged beacons: refused, never recorded.
    let beacons: u64 = tally
        .iter()
        .filter(|((k, _), _)| *k == "beacon")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        count("beacon", 204),
        0,
        "a beacon with a made-up id was taken"
    );
    // Forged beacons meet the public per-address rate first (429) or the
    // signature check (403); both refuse them.
    assert!(count("beacon", 403) >= 1, "{tally:?}");
    assert_eq!(
        count("beacon", 403) + count("beacon", 429),
        beacons,
        "{tally:?}"
    );
    assert!(
        tally
            .keys()
            .filter(|(k, _)| *k == "beacon")
            .all(|(_, s)| *s == 403 || *s == 429),
        "{tally:?}"
    );
    // Playlists play (a master without a session beyond the cap).
    assert_eq!(
        count("master", 200) + count("master", 429),
        beacons,
        "{tally:?}"
    );
    assert_eq!(count("playlist", 200), beacons, "{tally:?}");
    assert_eq!(
        count("segment", 200) + count("segment", 404),
        beacons,
        "{tally:?}"
    );
    // New sessions per address capped: a burst of 50, then 50/s.
    for (a, n) in fresh.iter().enumerate() {
        let cap = NEW_PER_SEC * (1.0 + secs) + 2.0;
        assert!(
            (*n as f64) <= cap,
            "address 127.0.0.{}: {n} sessions in {secs:.1} s (cap {cap:.0})",
            2 + a
        );
    }
    let unsigned = server.limit_hits("sessions_unsigned").await - unsigned0;
    let refused_new = server.limit_hits("sessions_new_per_addr").await - new0;
    eprintln!(
        "[flood] refused: {} forged beacons (403), {unsigned} unsigned ids counted, \
         {refused_new} new sessions refused (masters served without a session)",
        count("beacon", 403)
    );
    assert!(
        unsigned >= count("beacon", 403) + count("master", 200) + count("playlist", 200),
        "every made-up id is counted: {unsigned}"
    );
    assert!(refused_new > 0, "the per-address cap never tripped");
    // Limits log once a second per kind: a few lines a second, not thousands.
    assert!(
        (logged as f64) <= 6.0 * (secs + 2.0),
        "{logged} log lines in {secs:.1} s"
    );
    // After the sessions time out (6 s): still one viewer, one row.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(check.viewers().await, (1, 1), "after the flood");
    let rows = check.session_rows().await;
    eprintln!("[flood] viewer-session rows of the stream: {rows}");
    assert_eq!(rows, 1, "only the real viewer's session is stored");
    check.still_serving("flood").await;
}

/// Attack 2: oversized beacon bodies, and a body full of error reports.
async fn oversized(check: &mut Check<'_>) {
    let server = check.server;
    let id = check.publish.stream_id;
    let (status, minted) = mint(server, 10, id).await;
    assert_eq!(status, 201, "{minted}");
    let sid = minted["session_id"].as_str().unwrap().to_string();
    let client = client_from(10);
    let event = json!({"type": "heartbeat", "stream_id": id}).to_string();
    // 2 MiB of events (with a Content-Length).
    let mut big = String::from("[");
    while big.len() < 2 * 1024 * 1024 {
        big.push_str(&event);
        big.push(',');
    }
    big.push_str(&event);
    big.push(']');
    let rss0 = server.rss_kib();
    let path = format!("/api/v1/sessions/{sid}/events");
    for chunked in [false, true] {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = log_lines(server);
        let line = raw_post(server, 10, &path, big.clone().into_bytes(), chunked).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lines = log_lines(server) - before;
        let how = if chunked { "chunked" } else { "with a length" };
        eprintln!("[oversized] 2 MiB beacon {how}: {line:?}, {lines} log line(s)");
        assert!(line.starts_with("HTTP/1.1 413"), "{how}: {line}");
        assert!(lines <= 1, "one bad beacon made {lines} log lines");
    }

    // 21 small events: over the event cap.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = log_lines(server);
    let many = format!("[{}]", vec![event.as_str(); 21].join(","));
    let (status, _, _) = post_beacon(&client, server, &sid, many.into_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status, 413, "21 events");
    assert!(log_lines(server) - before <= 1);

    // 20 error reports with long messages: taken, one log line.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = log_lines(server);
    let message = "x".repeat(2000);
    let errors: Vec<Value> = (0..20)
        .map(|_| json!({"type": "error", "stream_id": id, "message": message}))
        .collect();
    let (status, _, _) =
        post_beacon(&client, server, &sid, serde_json::to_vec(&errors).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = log_lines(server) - before;
    eprintln!("[oversized] 20 error reports: {status}, {lines} log line(s)");
    assert_eq!(status, 204);
    assert!(lines <= 1, "20 error reports made {lines} log lines");
    let rss = server.rss_kib();
    eprintln!("[oversized] RSS {} → {} MiB", rss0 / 1024, rss / 1024);
    assert!(rss <= rss0 + 16 * 1024, "RSS grew from {rss0} to {rss} KiB");
    check.still_serving("oversized").await;
}

/// Attack 3: beacons for a stream that is not live, or for another stream.
async fn not_live(check: &mut Check<'_>) {
    let server = check.server;
    let (pending, _) = server.create_stream("not live").await;
    let (status, minted) = mint(server, 11, pending).await;
    assert_eq!(status, 201, "a pending stream's watch page gets an id");
    let sid = minted["session_id"].as_str().unwrap().to_string();
    let client = client_from(11);
    let body = |stream: Uuid| {
        json!({"type": "heartbeat", "stream_id": stream})
            .to_string()
            .into_bytes()
    };
    let mut refused = 0;
    for _ in 0..20 {
        let (status, _, kind) = post_beacon(&client, server, &sid, body(pending)).await;
        assert_eq!(status, 409, "beacon for a stream that is not live");
        assert!(kind.ends_with("/conflict"), "{kind}");
        refused += 1;
    }
    // An id signed for the pending stream is worth nothing for the live one.
    let (status, _, kind) = post_beacon(&client, server, &sid, body(check.publish.stream_id)).await;
    assert_eq!(status, 403, "{kind}");
    assert!(kind.ends_with("/forbidden"), "{kind}");
    // No id for a stream that does not exist.
    let (status, v) = mint(server, 11, Uuid::new_v4()).await;
    assert_eq!(status, 404, "{v}");
    eprintln!("[not live] {refused} beacons refused (409), other stream 403, unknown stream 404");
    assert_eq!(
        check.viewers_of(pending).await,
        (0, 0),
        "no viewer of the pending stream"
    );
    check.still_serving("not live").await;
}

/// Attack 4: one session beaconing as fast as it can.
async fn beacon_rate(check: &mut Check<'_>) {
    let server = check.server;
    let id = check.publish.stream_id;
    let (status, minted) = mint(server, 12, id).await;
    assert_eq!(status, 201);
    let sid = minted["session_id"].as_str().unwrap().to_string();
    let client = client_from(12);
    let body = json!({"type": "heartbeat", "stream_id": id, "quality": "source"}).to_string();
    // The earlier phases' sessions have ended: the HLS viewer alone.
    wait_viewers(check, (1, 1), Duration::from_secs(10)).await;
    let hits0 = server.limit_hits("sessions_beacon_rate").await;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..60 {
        let (status, retry, kind) =
            post_beacon(&client, server, &sid, body.clone().into_bytes()).await;
        if status == 429 {
            assert!(retry.is_some(), "429 without Retry-After");
            assert!(kind.ends_with("/rate-limited"), "{kind}");
        }
        outcomes.push(status);
    }
    let secs = started.elapsed().as_secs_f64();
    let taken = outcomes.iter().filter(|s| **s == 204).count();
    let limited = outcomes.iter().filter(|s| **s == 429).count();
    eprintln!("[beacon rate] 60 beacons in {secs:.2} s: {taken} taken, {limited} refused (429)");
    assert!(outcomes[..10].iter().all(|s| *s == 204), "{outcomes:?}");
    assert_eq!(taken + limited, 60, "{outcomes:?}");
    assert!(
        (taken as f64) <= 10.0 + 10.0 * secs + 1.0,
        "{taken} beacons taken in {secs:.2} s"
    );
    assert!(limited > 0);
    assert_eq!(
        server.limit_hits("sessions_beacon_rate").await - hits0,
        limited as u64
    );
    // That session is one (beaconing) viewer beside the HLS one.
    assert_eq!(check.viewers().await, (2, 2));
    check.still_serving("beacon rate").await;
}

/// Attack 5: one address minting session ids as fast as it can.
async fn minting_rate(check: &mut Check<'_>) {
    let server = check.server;
    let id = check.publish.stream_id;
    let client = client_from(13);
    wait_viewers(check, (1, 1), Duration::from_secs(10)).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let url = server.url(&format!("/api/v1/streams/{id}/sessions"));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..50 {
                let r = client.post(&url).send().await.expect("POST");
                let retry = r.headers().contains_key("retry-after");
                out.push((r.status().as_u16(), retry));
            }
            out
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    let minted = outcomes.iter().filter(|(s, _)| *s == 201).count();
    let limited = outcomes.iter().filter(|(s, r)| *s == 429 && *r).count();
    eprintln!(
        "[minting] {} requests in {secs:.2} s ({:.0}/s): {minted} ids, {limited} refused (429)",
        outcomes.len(),
        outcomes.len() as f64 / secs
    );
    assert_eq!(minted + limited, outcomes.len(), "{outcomes:?}");
    assert!(minted >= 50, "the burst is served: {minted}");
    assert!(
        (minted as f64) <= NEW_PER_SEC * (1.0 + secs) + 1.0,
        "{minted} ids in {secs:.2} s"
    );
    // Minted ids nobody uses are no viewers.
    assert_eq!(check.viewers().await, (1, 1));
    check.still_serving("minting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_sessions_and_beacon_abuse_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The suite's own operator checks (viewer listings from 127.0.0.1 after
    // every attack) go beyond the control API's 100 requests a minute; that
    // limit has its own attack in abuse_http.rs. Everything else: defaults.
    let server = ServerProcess::start(dir.path(), "[http]\napi_requests_per_min = 1000\n").await;
    let publish = LivePublish::start(&server, 300).await;
    let viewer = HlsViewer::start(&server.http, publish.stream_id);
    viewer.wait_first_segment(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline_kib = server.rss_kib();
    let mut check = Check {
        server: &server,
        publish,
        viewer,
        baseline_kib,
    };
    assert_eq!(check.viewers().await, (1, 1), "the real viewer is counted");

    flood(&mut check).await;
    oversized(&mut check).await;
    not_live(&mut check).await;
    beacon_rate(&mut check).await;
    minting_rate(&mut check).await;

    let stats = check.viewer.stats();
    eprintln!(
        "peak RSS {} MiB (before the attacks {} MiB); the viewer got {} segments, {} errors, \
         longest gap {:?}",
        server.peak_rss_kib() / 1024,
        baseline_kib / 1024,
        stats.segments,
        stats.errors,
        stats.max_gap
    );
}
