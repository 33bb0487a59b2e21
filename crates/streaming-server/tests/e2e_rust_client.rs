//! Our own RTMP client (`streaming_media::rtmp::ClientSession`, driven over
//! TCP by `common::RustPublisher`) publishes an FFmpeg-made FLV (320x240,
//! 2 s GOP, AAC, 6 s) in real time to the full server, with the chunk-level
//! variations real encoders use. Each case must end in a VOD playlist
//! (`EXT-X-ENDLIST`) whose EXTINFs add up to the published duration and whose
//! segments all decode with FFmpeg; the first also checks the master playlist
//! with ffprobe and a full FFmpeg decode.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{
    RustPublisher, TestServer, extinf_sum, ffmpeg_flv_fixture, playlist_uris, require, run,
};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::rtmp::{ClientConfig, ClientSession};
use uuid::Uuid;

const SECONDS: u32 = 6;

/// The fixture, made once per test binary.
fn fixture() -> &'static [Frame] {
    static FRAMES: OnceLock<Vec<Frame>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let frames = ffmpeg_flv_fixture(dir.path(), 320, 240, SECONDS, 2);
        let kinds = |k| frames.iter().filter(|f| f.kind == k).count();
        assert!(
            kinds(FrameKind::Video) >= 170 && kinds(FrameKind::Audio) >= 270,
            "fixture too short"
        );
        frames
    })
}

/// Seconds of video in the fixture: last minus first coded video frame
/// (AVC packet type 1: not the sequence header nor FFmpeg's end-of-sequence
/// tag), plus one frame.
fn published_secs(frames: &[Frame]) -> f64 {
    let video: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Video && f.data.get(1) == Some(&1))
        .map(|f| f.timestamp)
        .collect();
    let (first, last) = (video[0], *video.last().unwrap());
    f64::from(last.wrapping_sub(first)) / 1000.0 + 1.0 / 30.0
}

async fn start() -> (TestServer, Uuid, String) {
    require("ffmpeg", "ffmpeg");
    require("ffprobe", "ffmpeg");
    let ts = TestServer::start_with(|c| {
        c.media.playlist_segments = 30;
        c.media.retained_segments = 40;
    })
    .await;
    let (id, key) = ts.create_stream("rust-client").await;
    (ts, id, key)
}

async fn publisher(ts: &TestServer, key: &str, chunk_size: u32, complex: bool) -> RustPublisher {
    let config = ClientConfig {
        chunk_size,
        complex_handshake: complex,
        ..ClientConfig::new(&ts.rtmp, "live", key)
    };
    RustPublisher::publish(ts.server.rtmp_addr, config, Duration::from_secs(10)).await
}

/// After the publish ended: ENDLIST on both media playlists, EXTINFs sum to the
/// published duration (±50 ms), every segment decodes (init + segment) with
/// FFmpeg without an error, and the stream is ENDED.
async fn verify_vod(ts: &TestServer, id: Uuid, published: f64, case: &str) {
    let dir = tempfile::tempdir().unwrap();
    for rendition in ["source", "audio"] {
        let path = format!("/hls/{id}/{rendition}/index.m3u8");
        let playlist = ts
            .wait_for_text(&path, Duration::from_secs(10), |t| {
                t.contains("#EXT-X-ENDLIST")
            })
            .await
            .unwrap_or_else(|| panic!("{case}: {path} never got EXT-X-ENDLIST"));
        let total = extinf_sum(&playlist);
        assert!(
            (total - published).abs() <= 0.05,
            "{case}: {rendition} EXTINFs sum to {total:.3} s, published {published:.3} s\n{playlist}"
        );
        assert!(
            !playlist.contains("#EXT-X-DISCONTINUITY"),
            "{case}: unexpected discontinuity\n{playlist}"
        );
        let init = ts
            .get_bytes(&format!("/hls/{id}/{rendition}/init.mp4"))
            .await
            .unwrap_or_else(|| panic!("{case}: {rendition} init.mp4"));
        let segments = playlist_uris(&playlist);
        eprintln!(
            "{case}: {rendition}: {} segments, EXTINFs {total:.3} s, published {published:.3} s",
            segments.len()
        );
        assert!(segments.len() >= 3, "{case}: {rendition}: {segments:?}");
        for uri in segments {
            let seg = ts
                .get_bytes(&format!("/hls/{id}/{rendition}/{uri}"))
                .await
                .unwrap_or_else(|| panic!("{case}: fetch {rendition}/{uri}"));
            let file = dir.path().join(format!("{rendition}-{uri}.mp4"));
            std::fs::write(&file, [init.as_slice(), seg.as_slice()].concat()).unwrap();
            let (ok, _, err) = run(
                "ffmpeg",
                &[
                    "-v",
                    "error",
                    "-nostdin",
                    "-i",
                    file.to_str().unwrap(),
                    "-f",
                    "null",
                    "-",
                ],
                Duration::from_secs(20),
            )
            .await;
            assert!(
                ok && err.trim().is_empty(),
                "{case}: {rendition}/{uri} does not decode cleanly: {err}"
            );
        }
    }
    assert!(
        ts.wait_status(id, "ENDED", Duration::from_secs(5)).await,
        "{case}: stream not ENDED"
    );
}

/// ffprobe on the master playlist reports h264 320x240 + aac, and FFmpeg
/// decodes the whole stream through it without an error.
async fn verify_master(ts: &TestServer, id: Uuid) {
    ts.get_manifest(&format!("/hls/{id}/master.m3u8"))
        .await
        .expect("master playlist");
    let master = ts.url(&format!("/hls/{id}/master.m3u8"));
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            &master,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(ok, "ffprobe master failed: {err}");
    assert!(out.contains("h264,320,240"), "ffprobe master: {out}");
    assert!(
        out.lines().any(|l| l.starts_with("aac")),
        "ffprobe master: {out}"
    );
    let (ok, _, err) = run(
        "ffmpeg",
        &["-v", "error", "-nostdin", "-i", &master, "-f", "null", "-"],
        Duration::from_secs(60),
    )
    .await;
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg decode of the master playlist reported errors: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_publish_is_playable_hls() {
    let frames = fixture();
    let (ts, id, key) = start().await;
    let mut p = publisher(&ts, &key, 4096, false).await;
    p.replay_realtime(frames, |_, _| {}).await;
    assert_eq!(ts.status(id).await, "ACTIVE", "live while publishing");
    p.finish().await;
    verify_vod(&ts, id, published_secs(frames), "plain").await;
    verify_master(&ts, id).await;
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_size_changes_mid_stream() {
    let frames = fixture();
    let (ts, id, key) = start().await;
    let mut p = publisher(&ts, &key, 128, false).await;
    // 128 from the start, then 4096, 60000 and 1 (a 2-byte chunk per payload byte).
    let mut steps = vec![(4_500, 1), (3_000, 60_000), (1_500, 4096)];
    p.replay_realtime(frames, |s: &mut ClientSession, f: &Frame| {
        if let Some(&(at, size)) = steps.last()
            && f.timestamp >= at
        {
            s.set_chunk_size(size);
            steps.pop();
        }
    })
    .await;
    assert!(steps.is_empty(), "every chunk size was used");
    p.finish().await;
    verify_vod(
        &ts,
        id,
        published_secs(frames),
        "chunk sizes 128/4096/60000/1",
    )
    .await;
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_timestamps_cross_0xffffff() {
    // Start 2 s before 0xFFFFF0 ms, so the 24-bit timestamp field overflows
    // into the extended timestamp mid-stream (RTMP 1.0 §5.3.1.3).
    let offset = 0x00ff_fff0 - 2_000;
    let frames: Vec<Frame> = fixture()
        .iter()
        .map(|f| Frame::new(f.kind, f.timestamp + offset, f.data.clone()))
        .collect();
    assert!(
        frames.iter().any(|f| f.timestamp < 0x00ff_ffff)
            && frames.iter().any(|f| f.timestamp > 0x00ff_ffff)
    );
    let (ts, id, key) = start().await;
    let mut p = publisher(&ts, &key, 4096, false).await;
    p.replay_realtime(&frames, |_, _| {}).await;
    p.finish().await;
    verify_vod(&ts, id, published_secs(&frames), "extended timestamps").await;
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_audio_and_video_chunks() {
    let frames = fixture();
    let (ts, id, key) = start().await;
    // Chunk size 128, so that every video message spans many chunks; frames
    // are queued per 100 ms window and their chunks go out round-robin across
    // the audio and video chunk streams, as encoders interleave them.
    let mut p = publisher(&ts, &key, 128, false).await;
    p.session.set_interleave(true);
    let start = tokio::time::Instant::now();
    let first = frames[0].timestamp;
    for window in frames.chunk_by(|a, b| (a.timestamp - first) / 100 == (b.timestamp - first) / 100)
    {
        let at = start + Duration::from_millis(u64::from(window[0].timestamp - first));
        tokio::time::sleep_until(at).await;
        p.read_available();
        for f in window {
            p.session.send_frame(f).expect("send_frame");
        }
        p.flush().await;
    }
    p.finish().await;
    verify_vod(&ts, id, published_secs(frames), "interleaved").await;
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complex_handshake_publish() {
    let frames = fixture();
    let (ts, id, key) = start().await;
    let mut p = publisher(&ts, &key, 4096, true).await;
    p.replay_realtime(frames, |_, _| {}).await;
    p.finish().await;
    verify_vod(&ts, id, published_secs(frames), "complex handshake").await;
    ts.server.shutdown().await;
}
