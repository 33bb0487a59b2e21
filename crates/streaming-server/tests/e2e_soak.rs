//! The soak's leak check at small scale (`bench/soak.sh` runs the same for 30
//! minutes at 20 streams and 1,000 viewers): the real server binary, two live
//! FFmpeg streams (1 s GOPs, 1 s segments, 4 retained), 12 player-like
//! viewers and 4 clients reloading playlists and fetching segments and parts
//! as fast as the server answers, for about a minute.
//!
//! - Every viewer keeps getting new segments, with no failed request.
//! - Memory is flat once the window is full: the server's RSS at the end is
//!   within 5 % (+ 2 MiB of allocator slack) of its RSS 20 s in, after tens
//!   of thousands of requests in between.
//! - `streaming_store_bytes` (what the segment store holds) stays the size of
//!   the window and does not creep up.
//! - A complete segment fetched over HTTP is, byte for byte, its parts
//!   fetched over HTTP (the store keeps parts as views of the segment's
//!   buffer; the bodies go out of it without a copy).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::abuse::{HlsViewer, LivePublish, ServerProcess};
use common::playlist_uris;
use uuid::Uuid;

const CONFIG: &str = "[media]\nsegment_duration_ms = 1000\nplaylist_segments = 3\n\
retained_segments = 4\n[sessions]\nnew_per_addr_per_sec = 1000\n[http]\n\
public_requests_per_sec = 100000\n";

/// `streaming_store_bytes` now.
async fn store_bytes(server: &ServerProcess) -> i64 {
    let text = server.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix("streaming_store_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
        .unwrap_or_else(|| panic!("no streaming_store_bytes in /metrics:\n{text}"))
}

/// The source media playlist of `id` (absolute URL) from its master playlist.
async fn media_url(server: &ServerProcess, id: Uuid) -> String {
    let master = server
        .client
        .get(server.url(&format!("/hls/{id}/master.m3u8")))
        .send()
        .await
        .expect("master")
        .text()
        .await
        .unwrap_or_default();
    let uri = playlist_uris(&master)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no variant in {master}"));
    server.url(&format!("/hls/{id}/{uri}"))
}

/// Reloads `playlist` and fetches its newest part and segment, as fast as
/// the server answers, until aborted; counts requests and failures.
fn hammer(
    client: reqwest::Client,
    playlist: String,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let dir = playlist
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap();
    tokio::spawn(async move {
        loop {
            let text = match client.get(&playlist).send().await {
                Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
                _ => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    String::new()
                }
            };
            requests.fetch_add(1, Ordering::Relaxed);
            let newest_part = text
                .lines()
                .rev()
                .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
                .find_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
                .map(str::to_string);
            let newest_segment = playlist_uris(&text).into_iter().last();
            for uri in newest_part.into_iter().chain(newest_segment) {
                match client.get(format!("{dir}/{uri}")).send().await {
                    Ok(r) if r.status().is_success() => {
                        if r.bytes().await.is_err() {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                requests.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// A complete segment whose parts are still listed, fetched whole and part
/// by part over HTTP: the same bytes.
async fn segment_is_its_parts(server: &ServerProcess, playlist: &str) {
    let text = server
        .client
        .get(playlist)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = playlist
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap();
    // The parts listed before the first complete segment line that follows
    // them belong to it (RFC 8216bis §4.4.4.9).
    let mut parts = Vec::new();
    let mut segment = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("#EXT-X-PART:") {
            let uri = p.split("URI=\"").nth(1).and_then(|u| u.split('"').next());
            parts.push(uri.unwrap().to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            if !parts.is_empty() {
                segment = Some(line.trim().to_string());
                break;
            }
            parts.clear();
        }
    }
    let segment = segment.unwrap_or_else(|| panic!("no segment with listed parts in:\n{text}"));
    let get = |uri: String| {
        let url = format!("{dir}/{uri}");
        let client = server.client.clone();
        async move {
            let r = client.get(&url).send().await.unwrap();
            assert!(r.status().is_success(), "GET {url}: {}", r.status());
            r.bytes().await.unwrap()
        }
    };
    let whole = get(segment.clone()).await;
    let mut joined = Vec::new();
    for p in &parts {
        joined.extend_from_slice(&get(p.clone()).await);
    }
    assert!(whole.len() > 1000, "{segment}: {} bytes", whole.len());
    assert!(
        whole[..] == joined[..],
        "{segment} ({} bytes) differs from its {} parts joined ({} bytes)",
        whole.len(),
        parts.len(),
        joined.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_stays_flat_while_streams_and_viewers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), CONFIG).await;
    let a = LivePublish::start(&server, 90).await;
    let b = LivePublish::start(&server, 90).await;
    let mut viewers = Vec::new();
    for i in 0..12 {
        let id = if i % 2 == 0 { a.stream_id } else { b.stream_id };
        viewers.push(HlsViewer::start(&server.http, id));
    }
    for v in &viewers {
        v.wait_first_segment(Duration::from_secs(20)).await;
    }
    let (requests, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut hammers = Vec::new();
    for id in [a.stream_id, b.stream_id, a.stream_id, b.stream_id] {
        let url = media_url(&server, id).await;
        hammers.push(hammer(
            server.client.clone(),
            url,
            requests.clone(),
            failures.clone(),
        ));
    }

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (rss_first, store_first) = (server.rss_kib(), store_bytes(&server).await);
    let requests_first = requests.load(Ordering::Relaxed);
    let mut store_max = store_first;
    while started.elapsed() < Duration::from_secs(50) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        store_max = store_max.max(store_bytes(&server).await);
        for v in &viewers {
            v.assert_playing(Duration::from_secs(5), "during the soak");
        }
    }
    let (rss_last, store_last) = (server.rss_kib(), store_bytes(&server).await);
    let requests_between = requests.load(Ordering::Relaxed) - requests_first;
    segment_is_its_parts(&server, &media_url(&server, a.stream_id).await).await;
    for h in &hammers {
        h.abort();
    }
    eprintln!(
        "RSS {rss_first} → {rss_last} KiB over {requests_between} hammer requests; \
         store bytes {store_first} → {store_last} (max {store_max})"
    );

    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "hammer requests failed"
    );
    for (i, v) in viewers.iter().enumerate() {
        let s = v.stats();
        assert_eq!(s.errors, 0, "viewer {i}: {:?}", s.last_error);
        assert!(s.segments >= 30, "viewer {i} fell behind: {s:?}");
    }
    assert!(
        requests_between >= 2_000,
        "too few requests between the samples to tell a leak: {requests_between}"
    );
    assert!(
        rss_last <= rss_first + rss_first / 20 + 2048,
        "RSS grew from {rss_first} to {rss_last} KiB with the window full"
    );
    // Two streams of ~300 kb/s, 4 s retained plus parts and text: well under
    // a megabyte, and no more at the end than the window's variation allows.
    assert!(
        store_first > 0 && store_max < 2 * 1024 * 1024,
        "{store_max}"
    );
    assert!(
        store_last <= store_first * 3 / 2,
        "the store grew from {store_first} to {store_last} bytes"
    );
    drop((a, b));
}
