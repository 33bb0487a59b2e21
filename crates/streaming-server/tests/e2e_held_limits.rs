//! Held LL requests under attack (the held-request caps of
//! `streaming-delivery/src/http/held.rs`): the real server binary with small
//! caps (`http.max_held_requests = 80`, `max_held_requests_per_addr = 50`)
//! serves a live FFmpeg stream, and everything connects from 127.0.0.1,
//! which is a trusted proxy here, so `X-Forwarded-For` gives every client its
//! own address (the rule every per-address limit follows):
//!
//! 1. attacker A (203.0.113.7) keeps 70 blocking playlist reloads open, each
//!    for the segment after next (`_HLS_msn` = last complete + 2, the farthest
//!    that is held), re-asking as soon as one is answered. 50 are held, the
//!    rest get `503` + `Retry-After: 1` + `Cache-Control: no-store` at once;
//!    `/metrics` shows `streaming_held_requests` at A's cap and
//!    `held_requests_per_addr` trips; the trips are logged at most once a
//!    second, charged to A's forwarded address. Meanwhile an LL viewer
//!    (198.51.100.7) follows the live edge with blocking reloads for the
//!    hinted part and the part itself: every one answered 200, with the part,
//!    close to the part's production, and segments keep coming.
//! 2. attacker B (203.0.113.8) adds 40 more: the node's cap trips
//!    (`held_requests`) and the gauge stays at exactly 80.
//! 3. the attackers disconnect: the gauge returns to 0.
//! 4. a fresh wave (30 blocking reloads and 10 requests for the next segment
//!    in progress, streamed part by part) is held, then disconnects long
//!    before the segment it waits for exists: the gauge is back at 0 while
//!    that segment is still not there, so the slots were freed by the
//!    disconnect, not by an answer.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::abuse::{LivePublish, ServerProcess};
use common::llhls::{check_media_playlist, hint};
use tokio::task::JoinHandle;

const ATTACKER_A: &str = "203.0.113.7";
const ATTACKER_B: &str = "203.0.113.8";
const ATTACKER_C: &str = "203.0.113.9";
const VIEWER: &str = "198.51.100.7";
const PER_ADDR: i64 = 50;
const TOTAL: i64 = 80;

/// `streaming_held_requests` now.
async fn held_gauge(server: &ServerProcess) -> i64 {
    let text = server.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix("streaming_held_requests "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
        .unwrap_or_else(|| panic!("no streaming_held_requests in /metrics:\n{text}"))
}

/// Polls the gauge (every 50 ms, at most `limit`) until `pred` holds;
/// returns the time it took, or `None` with the last value.
async fn gauge_until(
    server: &ServerProcess,
    limit: Duration,
    pred: impl Fn(i64) -> bool,
) -> Result<Duration, i64> {
    let t = Instant::now();
    loop {
        let g = held_gauge(server).await;
        if pred(g) {
            return Ok(t.elapsed());
        }
        if t.elapsed() > limit {
            return Err(g);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last complete segment of a media playlist (media sequence + listed
/// segments − 1), if any is listed.
fn last_segment(playlist: &str) -> Option<u64> {
    let seq: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let n = playlist.matches("#EXTINF").count() as u64;
    (n > 0).then(|| seq + n - 1)
}

/// The body of a GET that must succeed.
async fn text_of(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(200)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// What the attackers saw.
#[derive(Default)]
struct AttackStats {
    /// Reloads answered 200 (held until their segment existed).
    answered: AtomicU64,
    /// Refused by a cap (503 "too many requests held").
    refused: AtomicU64,
    /// Refusals without `Retry-After: 1` and `Cache-Control: no-store`.
    bad_refusals: AtomicU64,
    /// Time to each refusal (ms).
    refused_ms: Mutex<Vec<f64>>,
    /// Anything else (status or error).
    other: Mutex<Vec<String>>,
}

/// One attacking task from `xff`: a blocking reload for the segment after
/// next, again and again (after a refusal, 100 ms later).
fn attacker(
    playlist: String,
    xff: &'static str,
    newest: Arc<AtomicU64>,
    stats: Arc<AttackStats>,
    client: reqwest::Client,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let target = newest.load(Ordering::SeqCst) + 2;
            let t = Instant::now();
            let r = client
                .get(format!("{playlist}?_HLS_msn={target}"))
                .header("x-forwarded-for", xff)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => {
                    let body = r.text().await.unwrap_or_default();
                    if let Some(l) = last_segment(&body) {
                        newest.fetch_max(l, Ordering::SeqCst);
                    }
                    stats.answered.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                Ok(r) if r.status() == 503 => {
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let h = r.headers();
                    let good = h.get("retry-after").is_some_and(|v| v == "1")
                        && h.get("cache-control").is_some_and(|v| v == "no-store");
                    let body = r.text().await.unwrap_or_default();
                    if body.contains("too many requests held") {
                        stats.refused.fetch_add(1, Ordering::SeqCst);
                        stats.refused_ms.lock().unwrap().push(ms);
                        if !good {
                            stats.bad_refusals.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        stats.other.lock().unwrap().push(format!("503 {body}"));
                    }
                }
                Ok(r) => stats
                    .other
                    .lock()
                    .unwrap()
                    .push(format!("HTTP {}", r.status())),
                Err(e) => stats.other.lock().unwrap().push(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// What the LL viewer saw.
#[derive(Debug, Default)]
struct ViewerStats {
    rounds: u64,
    /// Reload or part not 200, or the reload without the part.
    failures: Vec<String>,
    /// Send → answer of each blocking reload (s).
    reload_secs: Vec<f64>,
    /// Reload answered minus part answered (s), per round.
    gaps: Vec<f64>,
    /// Complete segments downloaded (new ones, 200, non-empty).
    segments: u64,
    first_segment: Option<u64>,
    last_segment: Option<u64>,
    /// Every answered playlist passed the LL-HLS checker.
    checker_errors: Vec<String>,
}

/// An LL-HLS viewer from `VIEWER` at the live edge, as hls.js does it: a
/// blocking reload for the hinted part together with the part, then the
/// next hint of the answered playlist; every new complete segment is
/// downloaded too. Runs until `stop`.
fn ll_viewer(base: String, stop: Instant) -> JoinHandle<ViewerStats> {
    tokio::spawn(async move {
        let client = client();
        let get = |url: String| client.get(url).header("x-forwarded-for", VIEWER).send();
        let mut s = ViewerStats::default();
        let playlist = format!("{base}/index.m3u8");
        let mut text = get(playlist.clone()).await.unwrap().text().await.unwrap();
        while Instant::now() < stop {
            s.rounds += 1;
            let (n, p) = hint(&text);
            let t0 = Instant::now();
            let (pl, part) = tokio::join!(
                async {
                    let r = get(format!("{playlist}?_HLS_msn={n}&_HLS_part={p}")).await;
                    let at = t0.elapsed();
                    match r {
                        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default(), at),
                        Err(e) => (0, e.to_string(), at),
                    }
                },
                async {
                    let r = get(format!("{base}/segment-{n}.{p}.m4s")).await;
                    let at = t0.elapsed();
                    match r {
                        Ok(r) => (
                            r.status().as_u16(),
                            r.bytes().await.unwrap_or_default().len(),
                            at,
                        ),
                        Err(_) => (0, 0, at),
                    }
                }
            );
            let part_name = format!("segment-{n}.{p}.m4s");
            // A segment may close before part P exists: then the segment is
            // listed whole (and the part is 404).
            let closed = pl.1.contains(&format!("segment-{n}.m4s"));
            if pl.0 != 200 || !(pl.1.contains(&part_name) || closed) {
                s.failures
                    .push(format!("reload {n}.{p}: {} {}", pl.0, pl.1));
                tokio::time::sleep(Duration::from_millis(200)).await;
                text = get(playlist.clone()).await.unwrap().text().await.unwrap();
                continue;
            }
            if !closed && (part.0 != 200 || part.1 == 0) {
                s.failures
                    .push(format!("part {n}.{p}: {} ({} bytes)", part.0, part.1));
            }
            s.reload_secs.push(pl.2.as_secs_f64());
            if part.0 == 200 {
                s.gaps.push(pl.2.as_secs_f64() - part.2.as_secs_f64());
            }
            if let Err(e) = check_media_playlist(&pl.1) {
                s.checker_errors.push(format!("{e:?}"));
            }
            // New complete segments.
            if let Some(last) = last_segment(&pl.1) {
                let from = s.last_segment.map_or(last, |l| l + 1);
                for m in from..=last {
                    let r = get(format!("{base}/segment-{m}.m4s")).await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            if r.bytes().await.is_ok_and(|b| !b.is_empty()) {
                                s.segments += 1;
                            } else {
                                s.failures.push(format!("segment {m}: empty"));
                            }
                        }
                        Ok(r) => s.failures.push(format!("segment {m}: {}", r.status())),
                        Err(e) => s.failures.push(format!("segment {m}: {e}")),
                    }
                }
                s.first_segment.get_or_insert(last);
                s.last_segment = Some(last);
            }
            text = pl.1;
        }
        s
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_request_caps_refuse_an_attacker_while_an_ll_viewer_plays() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &format!(
            "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n\
             max_held_requests = {TOTAL}\nmax_held_requests_per_addr = {PER_ADDR}\n"
        ),
    )
    .await;
    let mut live = LivePublish::start(&server, 90).await;
    let id = live.stream_id;
    let base = server.url(&format!("/hls/{id}/source"));
    let playlist = format!("{base}/index.m3u8");
    let plain = reqwest::Client::new();
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(r) = plain.get(&playlist).send().await
            && r.status() == 200
        {
            text = r.text().await.unwrap();
            if text.contains("#EXT-X-PRELOAD-HINT") && text.matches("#EXTINF").count() >= 2 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let newest = Arc::new(AtomicU64::new(
        last_segment(&text).unwrap_or_else(|| panic!("no segment listed:\n{text}")),
    ));
    assert_eq!(held_gauge(&server).await, 0);

    // 1. Attacker A against its per-address share, the viewer alongside.
    let phase1 = Duration::from_secs(12);
    let viewer = ll_viewer(base.clone(), Instant::now() + phase1);
    let stats_a = Arc::new(AttackStats::default());
    let client_a = client();
    let mut attackers: Vec<JoinHandle<()>> = (0..70)
        .map(|_| {
            attacker(
                playlist.clone(),
                ATTACKER_A,
                newest.clone(),
                stats_a.clone(),
                client_a.clone(),
            )
        })
        .collect();
    let t1 = Instant::now();
    let mut samples = Vec::new();
    while t1.elapsed() < phase1 {
        samples.push(held_gauge(&server).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v = viewer.await.unwrap();
    let max1 = samples.iter().copied().max().unwrap_or(0);
    let per_addr_trips = server.limit_hits("held_requests_per_addr").await;
    let refused_ms = stats_a.refused_ms.lock().unwrap().clone();
    let worst_refusal = refused_ms.iter().copied().fold(0.0, f64::max);
    let worst_reload = v.reload_secs.iter().copied().fold(0.0, f64::max);
    let worst_gap = v.gaps.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "phase 1 ({:.0} s): gauge max {max1} (samples {}), A answered {} refused {} \
         (slowest refusal {worst_refusal:.1} ms), held_requests_per_addr trips {per_addr_trips}; \
         viewer {} rounds, slowest blocking reload {worst_reload:.3} s, \
         reload − part at most {worst_gap:.3} s, segments {} ({:?}..{:?})",
        phase1.as_secs_f64(),
        samples.len(),
        stats_a.answered.load(Ordering::SeqCst),
        stats_a.refused.load(Ordering::SeqCst),
        v.rounds,
        v.segments,
        v.first_segment,
        v.last_segment,
    );
    assert!(
        stats_a.other.lock().unwrap().is_empty(),
        "attacker A saw: {:?}",
        stats_a.other.lock().unwrap()
    );
    assert!(
        (PER_ADDR..=PER_ADDR + 2).contains(&max1),
        "gauge max {max1}: A's {PER_ADDR} plus at most the viewer's 2 ({samples:?})"
    );
    assert!(stats_a.refused.load(Ordering::SeqCst) > 0, "A was refused");
    assert_eq!(stats_a.bad_refusals.load(Ordering::SeqCst), 0);
    assert!(
        worst_refusal < 1000.0,
        "refusals answer at once: slowest {worst_refusal:.1} ms"
    );
    assert!(stats_a.answered.load(Ordering::SeqCst) >= PER_ADDR as u64);
    assert!(per_addr_trips > 0);
    // The viewer played on, at normal LL pace.
    assert!(v.failures.is_empty(), "viewer failures: {:?}", v.failures);
    assert!(v.checker_errors.is_empty(), "{:?}", v.checker_errors);
    assert!(v.rounds >= 15, "viewer rounds {} in {phase1:?}", v.rounds);
    assert!(
        worst_reload < 3.0,
        "a blocking reload took {worst_reload:.3} s (parts are 0.3 s)"
    );
    assert!(
        worst_gap <= 0.3 + 0.25,
        "a blocking reload answered {worst_gap:.3} s after its part ({:?})",
        v.gaps
    );
    let (first, last) = (v.first_segment.unwrap(), v.last_segment.unwrap());
    assert!(
        last >= first + 4 && v.segments >= 4,
        "segments kept coming: {first}..{last}, {} downloaded",
        v.segments
    );
    // Trips are logged at most once a second, for A's forwarded address.
    let logs = server.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("limit reached") && l.contains("held_requests_per_addr"))
        .collect();
    assert!(!lines.is_empty(), "no log line for the trips");
    assert!(
        lines.iter().all(|l| l.contains(ATTACKER_A)),
        "trips charged to the forwarded address: {lines:?}"
    );
    let secs = t1.elapsed().as_secs() + 2;
    assert!(
        (lines.len() as u64) <= secs,
        "{} lines in {secs} s for {per_addr_trips} trips",
        lines.len()
    );

    // 2. Attacker B fills the node.
    let stats_b = Arc::new(AttackStats::default());
    let client_b = client();
    attackers.extend((0..40).map(|_| {
        attacker(
            playlist.clone(),
            ATTACKER_B,
            newest.clone(),
            stats_b.clone(),
            client_b.clone(),
        )
    }));
    let t2 = Instant::now();
    let mut samples = Vec::new();
    while t2.elapsed() < Duration::from_secs(6) {
        samples.push(held_gauge(&server).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let max2 = samples.iter().copied().max().unwrap_or(0);
    let total_trips = server.limit_hits("held_requests").await;
    println!(
        "phase 2: gauge max {max2} (cap {TOTAL}), B answered {} refused {}, held_requests trips {total_trips}",
        stats_b.answered.load(Ordering::SeqCst),
        stats_b.refused.load(Ordering::SeqCst),
    );
    assert_eq!(
        max2, TOTAL,
        "the gauge reaches the node's cap, never more: {samples:?}"
    );
    assert!(total_trips > 0);
    assert!(stats_b.refused.load(Ordering::SeqCst) > 0);
    assert!(
        stats_b.other.lock().unwrap().is_empty(),
        "{:?}",
        stats_b.other.lock().unwrap()
    );

    // 3. The attackers disconnect.
    for a in &attackers {
        a.abort();
    }
    drop((client_a, client_b));
    let drained = gauge_until(&server, Duration::from_secs(8), |g| g == 0).await;
    println!("phase 3: gauge 0 {drained:?} after the attackers disconnected");
    assert!(drained.is_ok(), "the gauge stayed at {drained:?}");

    // 4. A fresh wave, dropped long before what it waits for exists.
    let text = text_of(&plain, &playlist).await;
    let target = last_segment(&text).unwrap() + 2;
    let client_c = client();
    let mut wave = Vec::new();
    for i in 0..40 {
        let c = client_c.clone();
        let url = if i < 30 {
            format!("{playlist}?_HLS_msn={target}")
        } else {
            format!("{base}/segment-{target}.m4s")
        };
        wave.push(tokio::spawn(async move {
            let mut r = c
                .get(url)
                .header("x-forwarded-for", ATTACKER_C)
                .send()
                .await
                .ok()?;
            // A segment in progress: keep reading its body.
            while let Ok(Some(_)) = r.chunk().await {}
            Some(r.status().as_u16())
        }));
    }
    let held = gauge_until(&server, Duration::from_secs(2), |g| g == 40).await;
    assert!(held.is_ok(), "the wave was not held: gauge {held:?}");
    let still_open = |t: &str| last_segment(t).is_some_and(|l| l < target);
    assert!(still_open(&text));
    for w in &wave {
        w.abort();
    }
    drop(client_c);
    let freed = gauge_until(&server, Duration::from_secs(2), |g| g == 0).await;
    let after = text_of(&plain, &playlist).await;
    println!(
        "phase 4: 40 held (30 reloads, 10 segments in progress) for segment {target}; \
         gauge 0 {freed:?} after the disconnect; last complete segment then {:?}",
        last_segment(&after)
    );
    assert!(freed.is_ok(), "the gauge stayed at {freed:?}");
    assert!(
        still_open(&after),
        "segment {target} exists already: the test cannot tell a disconnect from an answer"
    );
    assert!(live.running(), "the publisher is still live");
}
