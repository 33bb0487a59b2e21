//! Acceptance: the life of a broadcast. A second encoder with the same key
//! takes a live stream over without changing the viewers' URLs, and a graceful
//! shutdown ends every live stream the way an encoder stop would, in time.
//!
//! Every test calls `common::capture_logs()` first: it installs the process's
//! tracing subscriber that the shutdown assertions read.

mod common;

use std::time::{Duration, Instant};

use common::{Publish, TestServer, capture_logs, ffmpeg_publish, playlist_uris, run, wait_child};
use streaming_core::events::Event;
use tokio::sync::broadcast;
use uuid::Uuid;

fn publish(seconds: f64) -> Publish {
    Publish {
        width: 320,
        height: 240,
        fps: 30,
        seconds,
        gop_secs: 1,
        video_kbps: 400,
    }
}

/// The number of the last segment a media playlist lists.
fn last_segment(playlist: &str) -> u64 {
    playlist_uris(playlist)
        .last()
        .and_then(|u| {
            u.strip_prefix("segment-")?
                .strip_suffix(".m4s")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Waits (bounded) for an event of one stream that `pick` accepts.
async fn next_event<T>(
    rx: &mut broadcast::Receiver<Event>,
    timeout: Duration,
    pick: impl Fn(&Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(timeout, async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(&e) {
                        return Some(t);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

fn ended_of(id: Uuid) -> impl Fn(&Event) -> Option<String> {
    move |e| match e {
        Event::StreamEnded {
            stream_id, reason, ..
        } if *stream_id == id => Some(reason.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_encoder_takes_over_and_playlists_continue() {
    capture_logs();
    let ts = TestServer::start_with(|c| {
        c.media.playlist_segments = 30;
        c.media.retained_segments = 40;
    })
    .await;
    let (id, key) = ts.create_stream("takeover").await;
    let mut events = ts.server.events.subscribe();
    let media_path = format!("/hls/{id}/source/index.m3u8");

    // Publisher A goes live (and would run for 30 s on its own).
    let a = ffmpeg_publish(&ts.publish_url(&key), &publish(30.0));
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "A never went ACTIVE"
    );
    let before = ts
        .wait_for_text(&media_path, Duration::from_secs(10), |t| {
            playlist_uris(t).len() >= 2
        })
        .await
        .expect("A's media playlist lists two segments");
    assert!(!before.contains("#EXT-X-DISCONTINUITY"), "{before}");
    let last_before = last_segment(&before);

    // Publisher B, same key, while A is still connected: B takes over.
    let b = ffmpeg_publish(&ts.publish_url(&key), &publish(7.0));
    let took_over = next_event(&mut events, Duration::from_secs(15), |e| {
        matches!(e, Event::PublisherTakeover { stream_id, .. } if *stream_id == id).then_some(())
    })
    .await;
    assert!(
        took_over.is_some(),
        "no PublisherTakeover event for B's publish"
    );

    // A is cut off: its FFmpeg ends long before its 30 s (non-zero is fine).
    let (_, a_err) = wait_child(a, Duration::from_secs(10)).await;
    assert_ne!(
        a_err, "timed out",
        "publisher A was not disconnected by the takeover"
    );

    // Same URL, still growing, with a discontinuity; the stream stays ACTIVE.
    let after = ts
        .wait_for_text(&media_path, Duration::from_secs(10), |t| {
            t.contains("#EXT-X-DISCONTINUITY") && last_segment(t) >= last_before + 2
        })
        .await
        .unwrap_or_else(|| {
            panic!("the media playlist did not continue with a discontinuity after the takeover; before:\n{before}")
        });
    assert!(
        !after.contains("#EXT-X-ENDLIST"),
        "the takeover must not end the playlist:\n{after}"
    );
    let uris = playlist_uris(&after);
    for u in playlist_uris(&before) {
        assert!(
            uris.contains(&u),
            "segment {u} of A vanished from the playlist after the takeover:\n{after}"
        );
    }
    assert_eq!(ts.status(id).await, "ACTIVE", "status while B publishes");
    assert!(
        ts.get_manifest(&format!("/hls/{id}/master.m3u8"))
            .await
            .is_some(),
        "master playlist still served after the takeover"
    );
    let no_end_yet = next_event(&mut events, Duration::from_millis(200), ended_of(id)).await;
    assert!(
        no_end_yet.is_none(),
        "a takeover must not end the broadcast: {no_end_yet:?}"
    );

    // B stops: the broadcast ends.
    let (ok, err) = wait_child(b, Duration::from_secs(30)).await;
    assert!(ok, "publisher B failed: {err}");
    let ended = ts
        .wait_for_text(&media_path, Duration::from_secs(3), |t| {
            t.contains("#EXT-X-ENDLIST")
        })
        .await
        .expect("EXT-X-ENDLIST after B stops");
    assert!(
        ts.wait_status(id, "ENDED", Duration::from_secs(3)).await,
        "status ENDED after B stops"
    );
    assert_eq!(
        ended.matches("#EXT-X-DISCONTINUITY\n").count()
            + ended.matches("#EXT-X-DISCONTINUITY\r\n").count(),
        1,
        "exactly one discontinuity (the takeover):\n{ended}"
    );

    // The whole recording, across the discontinuity, decodes without errors.
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-i",
            &ts.url(&media_path),
            "-f",
            "null",
            "-",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        ok && err.trim().is_empty(),
        "decoding the taken-over playlist reported errors: {err}"
    );
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_ends_live_streams_in_time() {
    let logs = capture_logs();
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("shutdown").await;
    let encoder = ffmpeg_publish(&ts.publish_url(&key), &publish(30.0));
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "never went ACTIVE"
    );
    let media = ts
        .wait_for_text(
            &format!("/hls/{id}/source/index.m3u8"),
            Duration::from_secs(10),
            |t| t.contains("#EXTINF"),
        )
        .await
        .expect("live media playlist");
    assert!(!media.contains("#EXT-X-ENDLIST"));

    let mut events = ts.server.events.subscribe();
    let repo = ts.server.repo.clone();
    let store = ts.server.store.clone();
    let hub = ts.server.hub.clone();
    let (rtmp_addr, http_addr) = (ts.server.rtmp_addr, ts.server.http_addr);
    assert!(!store.summary(id).expect("media of the live stream").ended);

    let mark = logs.mark();
    let started = Instant::now();
    ts.server.shutdown().await;
    let took = started.elapsed();
    // `shutdown` gives up waiting after 5 s; finishing clearly before that
    // shows the sequence completed rather than timed out.
    assert!(
        took < Duration::from_millis(4500),
        "graceful shutdown took {took:?} (limit 5 s)"
    );
    // Every stage finished on its own: no stage was abandoned on a timeout.
    let log = logs.since(mark);
    assert!(
        log.contains("shutdown complete"),
        "no `shutdown complete` in the log:\n{log}"
    );
    for stuck in [
        "packagers did not finish in time",
        "shutdown took longer than 5 s",
    ] {
        assert!(
            !log.contains(stuck),
            "shutdown reported `{stuck}` (took {took:?}):\n{log}"
        );
    }
    assert!(
        !log.contains("stream taken over by a new publish"),
        "a shutdown is not a takeover, but the connection log says so:\n{log}"
    );

    let reason = next_event(&mut events, Duration::from_secs(1), ended_of(id))
        .await
        .expect("a StreamEnded event for the live stream on shutdown");
    assert!(
        reason.contains("shutdown"),
        "StreamEnded reason: {reason:?}"
    );
    let status = repo
        .get_stream(id)
        .await
        .expect("db readable")
        .expect("stream row")
        .status;
    assert_eq!(status.to_string(), "ENDED", "status persisted on shutdown");
    assert!(
        store.summary(id).expect("media kept").ended,
        "the packager closed the playlists"
    );
    assert!(!hub.is_live(id), "nothing live in the hub after shutdown");

    // The encoder was disconnected, and both ports are closed.
    let (_, err) = wait_child(encoder, Duration::from_secs(10)).await;
    assert_ne!(
        err, "timed out",
        "the encoder was not disconnected by the shutdown"
    );
    for addr in [rtmp_addr, http_addr] {
        let connect =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await;
        assert!(
            !matches!(connect, Ok(Ok(_))),
            "{addr} still accepts connections after shutdown"
        );
    }
}
