//! Prometheus `/metrics` end to end: FFmpeg publishes 640x360 for ~10 s, a
//! client fetches playlists and segments, the scrape shows the live stream's
//! ingest and egress bytes, the request histogram and one active stream; after
//! the encoder stops every series labelled with the stream is gone.

mod common;

use std::time::Duration;

use common::{Publish, TestServer, ffmpeg_publish, playlist_uris, wait_child};
use uuid::Uuid;

/// Sum of the samples whose line starts with `prefix` (labels included).
fn sum_of(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn lines_of(text: &str, id: Uuid) -> Vec<&str> {
    let id = id.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&id))
        .collect()
}

async fn scrape(ts: &TestServer) -> String {
    let r = ts.get("/metrics").await;
    assert!(r.status().is_success(), "GET /metrics: {}", r.status());
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        ct.starts_with("application/openmetrics-text"),
        "content type {ct}"
    );
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_broadcast_and_forget_it_when_it_ends() {
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("metrics").await;
    let child = ffmpeg_publish(&ts.publish_url(&key), &Publish::default());
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "stream never became ACTIVE"
    );

    let media_path = format!("/hls/{id}/source/index.m3u8");
    let media = ts
        .wait_for_text(&media_path, Duration::from_secs(10), |t| {
            t.contains("#EXTINF")
        })
        .await
        .expect("media playlist with a segment");
    assert!(
        ts.get_manifest(&format!("/hls/{id}/master.m3u8"))
            .await
            .is_some()
    );
    assert!(
        ts.get_manifest(&format!("/dash/{id}/manifest.mpd"))
            .await
            .is_some()
    );
    assert!(
        ts.get_bytes(&format!("/hls/{id}/source/init.mp4"))
            .await
            .is_some(),
        "init segment"
    );
    let mut fetched = 0;
    for uri in playlist_uris(&media) {
        if ts
            .get_bytes(&format!("/hls/{id}/source/{uri}"))
            .await
            .is_some()
        {
            fetched += 1;
        }
    }
    assert!(fetched >= 1, "at least one segment fetched: {media}");

    let text = scrape(&ts).await;
    let sid = format!("stream_id=\"{id}\"");
    assert!(text.contains("\nstreaming_active_streams 1\n"), "{text}");
    let ingest = sum_of(&text, &format!("streaming_ingest_bytes_total{{{sid}}}"));
    assert!(ingest > 0.0, "ingest bytes {ingest}\n{text}");
    let egress = sum_of(&text, &format!("streaming_egress_bytes_total{{{sid}"));
    assert!(egress > 0.0, "egress bytes {egress}\n{text}");
    let source = sum_of(
        &text,
        &format!("streaming_egress_bytes_total{{{sid},rendition=\"source\"}}"),
    );
    assert!(source > 0.0, "egress bytes of the source rendition\n{text}");
    for kind in ["playlist", "segment", "init", "manifest"] {
        let n = sum_of(
            &text,
            &format!("streaming_segment_request_duration_seconds_count{{kind=\"{kind}\"}}"),
        );
        assert!(n > 0.0, "no {kind} request counted\n{text}");
    }
    assert!(
        text.contains(&format!("streaming_concurrent_viewers{{{sid}}} 0")),
        "{text}"
    );
    assert!(
        text.contains(&format!("streaming_buffering_ratio{{{sid}}} 0")),
        "{text}"
    );

    let (ok, err) = wait_child(child, Duration::from_secs(60)).await;
    assert!(ok, "ffmpeg publisher failed: {err}");
    assert!(
        ts.wait_status(id, "ENDED", Duration::from_secs(5)).await,
        "stream ENDED"
    );
    // The segments stay fetchable for a while; fetching them adds no series.
    let _ = ts.get_text(&media_path).await;
    let mut text = scrape(&ts).await;
    for _ in 0..20 {
        if lines_of(&text, id).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape(&ts).await;
    }
    assert!(
        lines_of(&text, id).is_empty(),
        "series left after the broadcast ended:\n{text}"
    );
    assert!(text.contains("\nstreaming_active_streams 0\n"), "{text}");
    ts.server.shutdown().await;
}
