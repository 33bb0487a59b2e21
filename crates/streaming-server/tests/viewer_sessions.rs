//! Acceptance (issue 5, item 1): viewer sessions. FFmpeg publishes 640x360;
//! ten simulated HLS viewers (in-process, reqwest) follow the session URLs,
//! three of them switch to the audio-only rendition. The registry, `/metrics`,
//! the REST API and the WebSocket metrics message all report 10 viewers and
//! the same quality distribution; a made-up session id is charged to nobody;
//! once the viewers stop, the count reaches 0 within the inactivity timeout
//! (+2 s) and every session is persisted with its bytes.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Publish, TestServer, ffmpeg_publish};
use futures::StreamExt;
use serde_json::Value;
use streaming_core::model::PageRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const VIEWERS: usize = 10;
const SWITCHERS: usize = 3;

/// The non-comment lines of a playlist and the URIs in `URI="…"` attributes.
fn uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(rest) = line.split("URI=\"").nth(1) {
            out.push(rest.split('"').next().unwrap_or_default().to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push(line.trim().to_string());
        }
    }
    out
}

/// One simulated viewer: master, then every second the media playlist and
/// every segment not yet fetched. A switcher moves to `audio` after 2 polls.
/// Returns its session id.
async fn viewer(
    client: reqwest::Client,
    base: String,
    switcher: bool,
    stop: Arc<AtomicBool>,
) -> Uuid {
    let master = client
        .get(format!("{base}/master.m3u8"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let children = uris(&master);
    let video = children
        .iter()
        .find(|u| u.starts_with("source/"))
        .expect("source variant")
        .clone();
    let audio = children
        .iter()
        .find(|u| u.starts_with("audio/"))
        .expect("audio rendition")
        .clone();
    // A signed id: `{uuid}.{mac}`; the uuid is the session's id.
    let token = video
        .split("sid=")
        .nth(1)
        .expect("the master's child URIs carry sid")
        .to_string();
    assert_eq!(token.len(), 69, "{token}");
    let sid: Uuid = token[..36].parse().expect("a uuid before the tag");
    assert!(audio.ends_with(&format!("?sid={token}")), "{audio}");
    let mut fetched = HashSet::new();
    let mut polls = 0;
    while !stop.load(Ordering::Relaxed) {
        let playlist = if switcher && polls >= 2 {
            &audio
        } else {
            &video
        };
        let dir = playlist.split('/').next().unwrap();
        let resp = client
            .get(format!("{base}/{playlist}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        for uri in uris(&text) {
            assert!(uri.ends_with(&format!("?sid={token}")), "{uri}");
            let key = format!("{dir}/{uri}");
            if fetched.insert(key.clone()) {
                let r = client.get(format!("{base}/{key}")).send().await.unwrap();
                assert_eq!(r.status(), 200, "{key}");
                assert!(r.headers().contains_key("etag"));
                r.bytes().await.unwrap();
            }
        }
        polls += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    sid
}

async fn poll<T>(timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_viewers_are_counted_everywhere_and_persisted() {
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("viewers").await;
    let mut ffmpeg = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            seconds: 40.0,
            ..Publish::default()
        },
    );
    let base = ts.url(&format!("/hls/{id}"));
    ts.wait_for_text(
        &format!("/hls/{id}/master.m3u8"),
        Duration::from_secs(20),
        |t| t.contains("audio/index.m3u8"),
    )
    .await
    .expect("master playlist with audio");
    let sessions = ts.server.sessions.clone();
    // A master fetch that nothing follows is no viewer.
    assert_eq!(sessions.count(id), 0);

    let stop = Arc::new(AtomicBool::new(false));
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|i| {
            tokio::spawn(viewer(
                ts.client.clone(),
                base.clone(),
                i < SWITCHERS,
                stop.clone(),
            ))
        })
        .collect();
    let started = Instant::now();

    // Within 3 s: the registry, /metrics and the REST API say 10.
    let counted = poll(Duration::from_secs(3), async || {
        (sessions.count(id) == VIEWERS as u64).then_some(())
    })
    .await;
    assert!(counted.is_some(), "registry count {}", sessions.count(id));
    let gauge = format!("streaming_concurrent_viewers{{stream_id=\"{id}\"}} {VIEWERS}");
    let metrics = poll(Duration::from_secs(3), async || {
        let text = ts.get_text("/metrics").await?;
        text.contains(&gauge).then_some(())
    })
    .await;
    assert!(
        metrics.is_some(),
        "/metrics lacks {gauge}: {}",
        ts.get_text("/metrics").await.unwrap_or_default()
    );
    let admin = |path: String| {
        ts.client
            .get(ts.url(&path))
            .bearer_auth("test-admin-token-0123456789abcdef")
            .send()
    };
    let detail: Value = admin(format!("/api/v1/streams/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["concurrent_viewers"], VIEWERS as u64, "{detail}");
    let listing: Value = admin(format!("/api/v1/streams/{id}/viewers?active=true"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["concurrent_viewers"], VIEWERS as u64, "{listing}");
    assert_eq!(listing["total"], VIEWERS as u64, "{listing}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // A made-up session id is charged to nobody: the media playlist plays,
    // without the id on its segments, and no viewer appears.
    let forged = format!("{}.{}", Uuid::new_v4(), "0".repeat(32));
    for _ in 0..5 {
        let text = ts
            .get_text(&format!("/hls/{id}/source/index.m3u8?sid={forged}"))
            .await
            .expect("media playlist with a made-up sid");
        assert!(!text.contains("sid="), "{text}");
        let seg = uris(&text).pop().expect("a segment");
        assert!(
            ts.get_bytes(&format!("/hls/{id}/source/{seg}?sid={forged}"))
                .await
                .is_some(),
            "{seg}"
        );
    }
    assert_eq!(sessions.count(id), VIEWERS as u64);

    // The switchers settle on audio (no video request for a few seconds):
    // the WebSocket metrics message carries 10 and the distribution.
    let want: BTreeMap<String, u32> = [
        ("audio".to_string(), SWITCHERS as u32),
        ("source".to_string(), (VIEWERS - SWITCHERS) as u32),
    ]
    .into();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/stream/{id}", ts.server.http_addr))
            .await
            .expect("WebSocket connects");
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut last = Value::Null;
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await
        else {
            continue;
        };
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "snapshot" {
            assert_eq!(v["concurrent_viewers"], VIEWERS as u64, "{v}");
        }
        if v["type"] == "metrics" {
            assert_eq!(v["concurrent_viewers"], VIEWERS as u64, "{v}");
            let dist: BTreeMap<String, u32> =
                serde_json::from_value(v["quality_distribution"].clone()).unwrap();
            seen = dist == want;
            last = v;
        }
    }
    assert!(seen, "no metrics message with {want:?}; last {last}");
    assert_eq!(sessions.quality_distribution(id), want);

    // The viewers stop: every session ends within the timeout + 2 s.
    stop.store(true, Ordering::Relaxed);
    let mut sids = HashSet::new();
    for v in viewers {
        sids.insert(v.await.unwrap());
    }
    assert_eq!(sids.len(), VIEWERS, "every viewer had its own session");
    let stopped = Instant::now();
    let timeout = streaming_delivery::sessions::inactivity_timeout(
        ts.server.config.media.segment_duration_ms,
    ) + Duration::from_secs(2);
    let ended = poll(timeout, async || (sessions.count(id) == 0).then_some(())).await;
    let took = stopped.elapsed();
    assert!(
        ended.is_some(),
        "count still {} after {took:?}",
        sessions.count(id)
    );
    assert!(took <= timeout + Duration::from_millis(200), "{took:?}");
    eprintln!("viewer count reached 0 {took:?} after the viewers stopped");

    // Persisted through the repository: ended, with their bytes.
    let saved = poll(Duration::from_secs(3), async || {
        let page = ts
            .server
            .repo
            .page_viewer_sessions(id, false, PageRequest::new(1, 100).unwrap())
            .await
            .ok()?;
        (page.items.len() == VIEWERS && page.items.iter().all(|s| s.ended_at.is_some()))
            .then_some(page.items)
    })
    .await
    .expect("10 ended sessions persisted");
    for s in &saved {
        assert!(sids.contains(&s.id), "{s:?}");
        assert!(s.bytes_sent > 0, "{s:?}");
        assert_eq!(s.protocol, "hls");
        assert!(s.ended_at.unwrap() >= s.started_at);
    }
    let audio = saved
        .iter()
        .filter(|s| s.quality.as_deref() == Some("audio"))
        .count();
    assert_eq!(audio, SWITCHERS);

    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    ts.server.shutdown().await;
}

/// CDN mode: the `sid` stays on playlist URLs only; init/segment URLs are the
/// same for every viewer, and the viewer polling its playlist is still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_mode_keeps_segment_urls_shared() {
    let ts = TestServer::start_with(|c| c.delivery.cdn_mode = true).await;
    let (id, key) = ts.create_stream("cdn").await;
    let mut ffmpeg = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            seconds: 12.0,
            ..Publish::default()
        },
    );
    let master = ts
        .wait_for_text(
            &format!("/hls/{id}/master.m3u8"),
            Duration::from_secs(20),
            |_| true,
        )
        .await
        .expect("master playlist");
    let child = uris(&master)
        .into_iter()
        .find(|u| u.starts_with("source/"))
        .expect("source variant");
    assert!(child.contains("?sid="), "{child}");
    let media = ts
        .get_text(&format!("/hls/{id}/{child}"))
        .await
        .expect("media playlist");
    let segs = uris(&media);
    assert!(!segs.is_empty(), "{media}");
    for u in &segs {
        assert!(
            !u.contains('?'),
            "segment URL with a query in CDN mode: {u}"
        );
    }
    assert_eq!(ts.server.sessions.count(id), 1);
    assert_eq!(
        ts.server.sessions.quality_distribution(id),
        BTreeMap::from([("source".to_string(), 1)])
    );
    // The MPD: templates without sid, refresh URL (Location) with it.
    let mpd = ts
        .get_manifest(&format!("/dash/{id}/manifest.mpd"))
        .await
        .expect("MPD");
    assert!(mpd.contains("<Location>manifest.mpd?sid="), "{mpd}");
    assert!(!mpd.contains("m4s?sid="), "{mpd}");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    ts.server.shutdown().await;
}
