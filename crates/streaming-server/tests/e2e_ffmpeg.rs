//! Acceptance: FFmpeg publishes 1280x720 30 fps H.264 + AAC over RTMP; the
//! server serves playable HLS and DASH that FFmpeg/ffprobe read back.

mod common;

use std::time::{Duration, Instant};

use common::{Publish, TestServer, ffmpeg_publish, require, run, wait_child};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_is_served_as_hls_and_dash() {
    require("ffprobe", "ffmpeg");
    // A window large enough to list the whole broadcast, so EXTINFs can be summed.
    let ts = TestServer::start_with(|c| {
        c.media.playlist_segments = 30;
        c.media.retained_segments = 40;
    })
    .await;
    let (id, key) = ts.create_stream("acceptance").await;
    let seconds = 14.0;
    let publish = Publish {
        width: 1280,
        height: 720,
        fps: 30,
        seconds,
        gop_secs: 2,
        video_kbps: 2500,
    };
    let child = ffmpeg_publish(&ts.publish_url(&key), &publish);

    // First media turns the stream ACTIVE; the first keyframe is the first video frame.
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "stream never became ACTIVE"
    );
    let active_at = Instant::now();
    let master_path = format!("/hls/{id}/master.m3u8");
    let master = ts
        .wait_for_text(&master_path, Duration::from_secs(10), |_| true)
        .await
        .expect("master playlist served");
    let master_after = active_at.elapsed();
    let media = ts
        .wait_for_text(
            &format!("/hls/{id}/source/index.m3u8"),
            Duration::from_secs(5),
            |t| t.contains("#EXTINF"),
        )
        .await
        .expect("media playlist served");
    let media_after = active_at.elapsed();
    assert!(
        master_after <= Duration::from_secs(3) && media_after <= Duration::from_secs(3),
        "playlists must be served within 3 s of the first keyframe (master {master_after:?}, media {media_after:?})"
    );
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert!(
        master.contains("avc1.") && master.contains("mp4a.40.2"),
        "{master}"
    );
    assert!(media.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{media}");

    // ffprobe reads the master playlist and the MPD: h264 1280x720 + aac.
    for path in [master_path.clone(), format!("/dash/{id}/manifest.mpd")] {
        let url = ts.url(&path);
        let (ok, out, err) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
                &url,
            ],
            Duration::from_secs(30),
        )
        .await;
        assert!(ok, "ffprobe {path} failed: {err}");
        assert!(out.contains("h264,1280,720"), "ffprobe {path}: {out}");
        assert!(
            out.lines().any(|l| l.starts_with("aac")),
            "ffprobe {path}: {out}"
        );
    }

    // FFmpeg decodes 10 s of the live stream with no error.
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-i",
            &ts.url(&master_path),
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
        "ffmpeg decode of the live HLS reported errors: {err}"
    );

    let (ok, err) = wait_child(child, Duration::from_secs(60)).await;
    assert!(ok, "ffmpeg publisher failed: {err}");
    let stopped = Instant::now();

    // Encoder stopped: ENDLIST within 2 s, ENDED persisted.
    let ended = ts
        .wait_for_text(
            &format!("/hls/{id}/source/index.m3u8"),
            Duration::from_secs(2),
            |t| t.contains("#EXT-X-ENDLIST"),
        )
        .await
        .expect("EXT-X-ENDLIST within 2 s of the encoder stopping");
    assert!(stopped.elapsed() <= Duration::from_millis(2500));
    assert!(
        ts.wait_status(id, "ENDED", Duration::from_secs(2)).await,
        "status ENDED persisted"
    );
    let mpd = ts
        .get_manifest(&format!("/dash/{id}/manifest.mpd"))
        .await
        .unwrap();
    assert!(mpd.contains("type=\"static\""), "MPD turns static: {mpd}");

    // The listed EXTINFs add up to the published duration within 1%.
    let total: f64 = ended
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| {
            l.trim_end_matches(',')
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum();
    assert!(
        (total - seconds).abs() <= seconds * 0.01,
        "EXTINFs sum to {total:.3} s, published {seconds} s\n{ended}"
    );

    // Every segment starts with a keyframe: decode init+segment and check the first frame.
    let init = ts
        .get_bytes(&format!("/hls/{id}/source/init.mp4"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for uri in ended.lines().filter(|l| l.starts_with("segment-")) {
        let seg = ts
            .get_bytes(&format!("/hls/{id}/source/{uri}"))
            .await
            .unwrap();
        let path = dir.path().join(format!("{uri}.mp4"));
        std::fs::write(&path, [init.as_slice(), seg.as_slice()].concat()).unwrap();
        let (ok, out, err) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "frame=key_frame,pict_type",
                "-read_intervals",
                "%+#1",
                "-of",
                "csv=p=0",
                path.to_str().unwrap(),
            ],
            Duration::from_secs(20),
        )
        .await;
        assert!(ok, "ffprobe {uri}: {err}");
        let first = out.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("1,I"),
            "{uri} does not start with a keyframe: {out}"
        );
    }
    ts.server.shutdown().await;
}
