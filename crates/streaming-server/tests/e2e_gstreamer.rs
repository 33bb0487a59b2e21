//! Acceptance: GStreamer publishes through `rtmp2sink` (x264 + AAC in FLV);
//! the server serves HLS that ffprobe and FFmpeg read back without errors, and
//! the encoder's EOS closes the broadcast.

mod common;

use std::time::Duration;

use common::{TestServer, gst_publish, require, run, wait_child};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publish_is_served_as_hls() {
    require("ffprobe", "ffmpeg");
    require("ffmpeg", "ffmpeg");
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("gstreamer").await;
    let child = gst_publish(&ts.publish_url(&key), 640, 360, 30, 10);

    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "the GStreamer publish never made the stream ACTIVE"
    );
    let master_path = format!("/hls/{id}/master.m3u8");
    let master = ts
        .wait_for_text(&master_path, Duration::from_secs(10), |_| true)
        .await
        .expect("master playlist served for a GStreamer publish");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(
        master.contains("avc1.") && master.contains("mp4a.40.2"),
        "{master}"
    );
    for rendition in ["source", "audio"] {
        let media = ts
            .wait_for_text(
                &format!("/hls/{id}/{rendition}/index.m3u8"),
                Duration::from_secs(5),
                |t| t.contains("#EXTINF"),
            )
            .await
            .unwrap_or_else(|| panic!("{rendition} media playlist with a segment served"));
        assert!(media.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{media}");
    }

    // ffprobe reads the master playlist: H.264 640x360 and AAC.
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            &ts.url(&master_path),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(ok, "ffprobe of the master playlist failed: {err}");
    assert!(out.contains("h264,640,360"), "ffprobe: {out}");
    assert!(out.lines().any(|l| l.starts_with("aac")), "ffprobe: {out}");

    // FFmpeg decodes 4 s of it with nothing on its error output.
    let (ok, progress, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-nostats",
            "-i",
            &ts.url(&master_path),
            "-t",
            "4",
            "-progress",
            "pipe:1",
            "-f",
            "null",
            "-",
        ],
        Duration::from_secs(40),
    )
    .await;
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg decode of the GStreamer-fed HLS reported errors: {err}"
    );
    let frames: u64 = progress
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    assert!(
        frames >= 60,
        "ffmpeg decoded only {frames} video frames:\n{progress}"
    );

    // The EOS of `gst-launch-1.0 -e` ends the broadcast.
    let (ok, err) = wait_child(child, Duration::from_secs(40)).await;
    assert!(ok, "gst-launch-1.0 failed: {err}");
    let ended = ts
        .wait_for_text(
            &format!("/hls/{id}/source/index.m3u8"),
            Duration::from_secs(3),
            |t| t.contains("#EXT-X-ENDLIST"),
        )
        .await
        .expect("EXT-X-ENDLIST after GStreamer's EOS");
    assert!(
        ts.wait_status(id, "ENDED", Duration::from_secs(3)).await,
        "status ENDED after EOS"
    );
    let total: f64 = ended
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.split(',').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        total >= 6.0,
        "only {total:.2} s listed for a 10 s GStreamer publish:\n{ended}"
    );
    ts.server.shutdown().await;
}
