//! Acceptance of LL-HLS (RFC 8216bis §4.4.3.7–4.4.5.2, §6.2.5–6.2.6) with
//! FFmpeg publishing for real:
//! - every media playlist passes the independent LL-HLS checker
//!   (`common::llhls`, m3u8-rs plus our own reading of the LL tags);
//! - a blocking reload for the hinted part answers, with the part listed,
//!   within one part duration plus 100 ms of the part's production (taken as
//!   the moment a held request for that very part is answered);
//! - `_HLS_skip=YES` answers a delta update with `EXT-X-SKIP`; a request too
//!   far ahead answers 400;
//! - ffmpeg reads the same master playlist as ordinary HLS and decodes 10 s;
//! - 1,000 held blocking reloads on one stream are all answered when the
//!   part appears, and the server (a child process) spends little CPU while
//!   they wait.

mod common;

use std::time::{Duration, Instant};

use common::abuse::{LivePublish, ServerProcess};
use common::llhls::{check_media_playlist, hint};
use common::{Publish, TestServer, ffmpeg_publish, run, wait_child};

/// Segments of 1 s (GOP 1 s) and ten listed, so a delta update has
/// segments to skip (CAN-SKIP-UNTIL is six target durations) within seconds.
fn short_segments(c: &mut streaming_core::config::Config) {
    c.media.segment_duration_ms = 1000;
    c.media.playlist_segments = 10;
    c.media.retained_segments = 12;
    c.transcode.enabled = false;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_playlists_blocking_reload_skip_and_plain_players() {
    let ts = TestServer::start_with(short_segments).await;
    let (id, key) = ts.create_stream("ll-hls").await;
    let child = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            seconds: 40.0,
            gop_secs: 1,
            ..Publish::default()
        },
    );
    let playlist = format!("/hls/{id}/source/index.m3u8");
    ts.wait_for_text(&playlist, Duration::from_secs(20), |t| {
        t.matches("#EXTINF").count() >= 2
    })
    .await
    .expect("a live LL playlist with two segments");

    // Every playlist served over a few seconds passes the checker, for
    // video and audio.
    for round in 0..6 {
        for rendition in ["source", "audio"] {
            let text = ts
                .get_text(&format!("/hls/{id}/{rendition}/index.m3u8"))
                .await
                .expect("playlist");
            let pl = check_media_playlist(&text)
                .unwrap_or_else(|e| panic!("round {round} {rendition}: {e:?}\n{text}"));
            assert!(pl.part_target > 0.0, "{text}");
        }
        tokio::time::sleep(Duration::from_millis(450)).await;
    }

    // Blocking reload for the hinted part vs. a held request for the part.
    let part_target =
        f64::from(streaming_core::config::MediaConfig::default().part_duration_ms) / 1000.0;
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let text = ts.get_text(&playlist).await.unwrap();
        let (n, p) = hint(&text);
        let t0 = Instant::now();
        let pl_url = ts.url(&format!("{playlist}?_HLS_msn={n}&_HLS_part={p}"));
        let part_url = ts.url(&format!("/hls/{id}/source/segment-{n}.{p}.m4s"));
        let client = reqwest::Client::new();
        let (pl, part) = tokio::join!(
            async {
                let r = client.get(&pl_url).send().await.unwrap();
                let status = r.status();
                (status, r.text().await.unwrap(), t0.elapsed())
            },
            async {
                let r = client.get(&part_url).send().await.unwrap();
                let status = r.status();
                (status, r.bytes().await.unwrap(), t0.elapsed())
            }
        );
        assert_eq!(pl.0, 200, "{}", pl.1);
        assert_eq!(part.0, 200);
        assert!(!part.1.is_empty(), "the held part has bytes");
        assert!(
            pl.1.contains(&format!("segment-{n}.{p}.m4s")),
            "the answer lists the part it waited for:\n{}",
            pl.1
        );
        check_media_playlist(&pl.1).unwrap_or_else(|e| panic!("{e:?}\n{}", pl.1));
        let gap = pl.2.as_secs_f64() - part.2.as_secs_f64();
        gaps.push(gap);
        assert!(
            gap <= part_target + 0.1,
            "blocking reload answered {gap:.3} s after the part (limit {:.1} s)",
            part_target + 0.1
        );
    }
    println!("blocking reload minus part production (s): {gaps:?}");

    // Too far ahead: 400 at once.
    let text = ts.get_text(&playlist).await.unwrap();
    let (n, _) = hint(&text);
    let r = ts
        .get(&format!("{playlist}?_HLS_msn={}&_HLS_part=0", n + 5))
        .await;
    assert_eq!(r.status(), 400);
    let r = ts.get(&format!("{playlist}?_HLS_part=0")).await;
    assert_eq!(r.status(), 400, "_HLS_part without _HLS_msn");

    // Delta update once the playlist is longer than CAN-SKIP-UNTIL (6 s).
    let full = ts
        .wait_for_text(&playlist, Duration::from_secs(20), |t| {
            t.matches("#EXTINF").count() >= 9
        })
        .await
        .expect("ten segments listed");
    let delta = ts
        .get_text(&format!("{playlist}?_HLS_skip=YES"))
        .await
        .unwrap();
    let d = check_media_playlist(&delta).unwrap_or_else(|e| panic!("{e:?}\n{delta}"));
    assert!(d.skipped > 0, "delta update skips segments:\n{delta}");
    assert!(delta.len() < full.len(), "the delta update is shorter");
    let v2 = ts
        .get_text(&format!("{playlist}?_HLS_skip=v2"))
        .await
        .unwrap();
    assert!(v2.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{v2}");

    // An ordinary HLS client reads the same master playlist.
    let (ok, _out, err) = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            &ts.url(&format!("/hls/{id}/master.m3u8")),
            "-t",
            "10",
            "-f",
            "null",
            "-",
        ],
        Duration::from_secs(40),
    )
    .await;
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg decoding the LL master: {err}"
    );
    let (_, _) = wait_child(child, Duration::from_millis(10)).await;
}

/// 1,000 blocking reloads held on one stream: all answered with the part,
/// and the server's CPU while they wait is reported (and stays low).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_held_reloads_are_answered_when_the_part_appears() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        "[http]\nmax_connections_per_addr = 5000\nmax_held_requests_per_addr = 5000\n",
    )
    .await;
    let live = LivePublish::start(&server, 40).await;
    let id = live.stream_id;
    let playlist = server.url(&format!("/hls/{id}/source/index.m3u8"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1100)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(r) = client.get(&playlist).send().await
            && r.status() == 200
        {
            text = r.text().await.unwrap();
            if text.contains("#EXT-X-PRELOAD-HINT") && text.contains("#EXTINF") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Ask for a part two ahead of the hint, so every request is held a while.
    let (n, p) = hint(&text);
    let want = format!("segment-{n}.{}.m4s", p + 2);
    let url = format!("{playlist}?_HLS_msn={n}&_HLS_part={}", p + 2);
    let cpu_before = server.cpu_ticks();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.get(&url).send().await.ok()?;
            let status = r.status().as_u16();
            let body = r.text().await.ok()?;
            Some((status, body, t0.elapsed()))
        }));
    }
    let mut answered = Vec::new();
    for t in tasks {
        answered.push(t.await.unwrap());
    }
    let cpu = server.cpu_ticks() - cpu_before;
    let wall = t0.elapsed().as_secs_f64();
    let ok: Vec<_> = answered
        .iter()
        .flatten()
        .filter(|(s, b, _)| *s == 200 && b.contains(&want))
        .collect();
    // A segment may close before part P+2 exists: then the next segment's
    // first part answers the wait, and the playlist lists segment N whole.
    let ok_or_closed = answered
        .iter()
        .flatten()
        .filter(|(s, b, _)| {
            *s == 200 && (b.contains(&want) || b.contains(&format!("segment-{n}.m4s")))
        })
        .count();
    assert_eq!(
        ok_or_closed,
        1000,
        "every held reload answered with the part ({} listed it)",
        ok.len()
    );
    let times: Vec<f64> = answered
        .iter()
        .flatten()
        .map(|(_, _, t)| t.as_secs_f64())
        .collect();
    let first = times.iter().copied().fold(f64::MAX, f64::min);
    let last = times.iter().copied().fold(0.0, f64::max);
    let ticks_per_sec = 100.0;
    println!(
        "1000 held reloads: answered between {first:.3} s and {last:.3} s; server CPU {:.2} s over {wall:.2} s",
        cpu as f64 / ticks_per_sec
    );
    // All answered by the same production, close together.
    assert!(
        last - first < 1.0,
        "answers spread over {:.3} s",
        last - first
    );
    // CPU: the whole exchange (1,000 requests in and out, the stream's own
    // packaging) costs well under a core for its wall time.
    assert!(
        (cpu as f64 / ticks_per_sec) < wall.max(0.5) * 0.9,
        "server CPU {} ticks over {wall:.2} s",
        cpu
    );
}
