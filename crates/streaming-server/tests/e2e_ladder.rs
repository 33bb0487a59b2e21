//! Acceptance of the ladder: FFmpeg renditions planned below the source,
//! keyframe-aligned with it segment by segment, at their target bitrates, and
//! resilient to FFmpeg dying.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Publish, TestServer, ffmpeg_publish, mp4_boxes, require, run, wait_child};
use streaming_core::config::RungConfig;

/// These tests each keep both cores busy (an encoder and a transcoder): run them
/// one at a time so none of them measures a starved FFmpeg.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn test_ladder(c: &mut streaming_core::config::Config) {
    let rung = |name: &str, height, video_kbps| RungConfig {
        name: name.into(),
        height,
        video_kbps,
        max_fps: 30.0,
    };
    c.transcode.rungs = vec![
        rung("360p", 360, 700),
        rung("240p", 240, 350),
        rung("1080p", 1080, 8000),
    ];
    c.transcode.preset = "veryfast".into();
    c.media.playlist_segments = 30;
    c.media.retained_segments = 40;
}

/// `qualities[].behind_source_ms` of a live stream, by name, once every
/// transcoded rendition has one (or `timeout` passed).
async fn behind_source_ms(
    ts: &TestServer,
    id: uuid::Uuid,
    timeout: Duration,
) -> BTreeMap<String, Option<u64>> {
    let deadline = Instant::now() + timeout;
    loop {
        let body: serde_json::Value = ts
            .client
            .get(ts.url(&format!("/api/v1/streams/{id}")))
            .header("authorization", "Bearer test-admin-token-0123456789abcdef")
            .send()
            .await
            .expect("GET stream")
            .json()
            .await
            .expect("stream JSON");
        let got: BTreeMap<String, Option<u64>> = body["qualities"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|q| {
                (
                    q["name"].as_str().unwrap_or("?").to_string(),
                    q["behind_source_ms"].as_u64(),
                )
            })
            .collect();
        let done = got
            .iter()
            .filter(|(n, _)| *n != "source" && *n != "audio")
            .all(|(_, v)| v.is_some());
        if (done && got.len() > 1) || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Segment number → (tfdt, timescale, first sample is a sync sample).
fn segment_facts(data: &[u8]) -> Option<(u64, bool)> {
    let mut tfdt = None;
    let mut key = None;
    for b in mp4_boxes(data) {
        if let mp4_atom::Any::Moof(moof) = b {
            let traf = moof.traf.first()?;
            if tfdt.is_none() {
                tfdt = traf.tfdt.as_ref().map(|t| t.base_media_decode_time);
                let trun = traf.trun.first()?;
                let flags = match &trun.samples {
                    mp4_atom::TrunSamples::Explicit(e) => e.first().and_then(|e| e.flags),
                    mp4_atom::TrunSamples::Inherited { first_flags, .. } => *first_flags,
                }
                .or(traf.tfhd.default_sample_flags)?;
                // sample_is_non_sync_sample is bit 16.
                key = Some(flags & 0x0001_0000 == 0);
            }
        }
    }
    Some((tfdt?, key?))
}

fn uris(playlist: &str) -> Vec<(u64, f64)> {
    let mut out = Vec::new();
    let mut dur = 0.0;
    for l in playlist.lines() {
        if let Some(d) = l.strip_prefix("#EXTINF:") {
            dur = d.trim_end_matches(',').parse().unwrap_or(0.0);
        } else if let Some(n) = l
            .strip_prefix("segment-")
            .and_then(|s| s.strip_suffix(".m4s"))
        {
            out.push((n.parse().unwrap(), dur));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ladder_is_planned_aligned_and_on_bitrate() {
    let _serial = HEAVY.lock().await;
    require("ffprobe", "ffmpeg");
    let ts = TestServer::start_with(test_ladder).await;
    assert!(
        ts.server.transcoder.available(),
        "FFmpeg must be found for this test"
    );
    let (id, key) = ts.create_stream("ladder").await;
    let publisher = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            width: 1280,
            height: 720,
            seconds: 26.0,
            video_kbps: 2500,
            ..Publish::default()
        },
    );
    assert!(ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await);
    let active = Instant::now();
    let master = ts
        .wait_for_text(
            &format!("/hls/{id}/master.m3u8"),
            Duration::from_secs(15),
            |t| t.contains("360p/index.m3u8") && t.contains("240p/index.m3u8"),
        )
        .await
        .expect("master lists the renditions");
    eprintln!(
        "renditions listed {:?} after the first media",
        active.elapsed()
    );
    // While live, the API says how far each rendition's parts trail the
    // source's (FFmpeg's share of a viewer's latency on it).
    let behind = behind_source_ms(&ts, id, Duration::from_secs(10)).await;
    eprintln!("behind the source (ms): {behind:?}");
    for r in ["360p", "240p"] {
        let ms = behind.get(r).copied().flatten();
        assert!(
            ms.is_some_and(|ms| ms < 10_000),
            "{r}: behind_source_ms {ms:?} ({behind:?})"
        );
    }
    assert_eq!(behind.get("source").copied().flatten(), None, "{behind:?}");
    // A 720p source gets source + the rungs below it, never the 1080p rung.
    assert!(!master.contains("1080p"), "{master}");
    assert!(
        master.contains("RESOLUTION=640x360") && master.contains("RESOLUTION=426x240"),
        "{master}"
    );

    let (ok, err) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(ok, "publisher: {err}");
    let mut playlists = BTreeMap::new();
    for r in ["source", "360p", "240p"] {
        let p = ts
            .wait_for_text(
                &format!("/hls/{id}/{r}/index.m3u8"),
                Duration::from_secs(5),
                |t| t.contains("#EXT-X-ENDLIST"),
            )
            .await
            .unwrap_or_else(|| panic!("{r} playlist ends"));
        playlists.insert(r, p);
    }

    // ffprobe on each rendition's playlist reports its planned resolution.
    for (r, want) in [
        ("source", "1280,720"),
        ("360p", "640,360"),
        ("240p", "426,240"),
    ] {
        let url = ts.url(&format!("/hls/{id}/{r}/index.m3u8"));
        let (ok, out, err) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
                &url,
            ],
            Duration::from_secs(30),
        )
        .await;
        assert!(ok, "ffprobe {r}: {err}");
        // ffprobe lists the stream once per program too: read the first line.
        assert_eq!(
            out.lines().find(|l| !l.trim().is_empty()),
            Some(want),
            "{r}: {out}"
        );
    }

    // Alignment: every number present everywhere has the same tfdt (within a
    // frame) and starts with a keyframe; bitrates within ±25 % of the targets.
    let mut facts: BTreeMap<u64, Vec<(String, u64)>> = BTreeMap::new();
    for (r, p) in &playlists {
        let mut bytes = 0usize;
        let mut secs = 0.0;
        for (n, d) in uris(p) {
            let seg = ts
                .get_bytes(&format!("/hls/{id}/{r}/segment-{n}.m4s"))
                .await
                .expect("segment");
            let (tfdt, key) = segment_facts(&seg).expect("moof with tfdt and trun");
            assert!(key, "{r} segment {n} does not start with a keyframe");
            facts.entry(n).or_default().push((r.to_string(), tfdt));
            bytes += seg.len();
            secs += d;
        }
        let kbps = bytes as f64 * 8.0 / secs / 1000.0;
        eprintln!("{r}: {kbps:.0} kb/s over {secs:.1} s");
        let target = match *r {
            "360p" => Some(700.0),
            "240p" => Some(350.0),
            _ => None,
        };
        if let Some(t) = target {
            assert!(secs >= 18.0, "{r}: only {secs:.1} s of segments");
            assert!(
                (kbps - t).abs() <= t * 0.25,
                "{r}: {kbps:.0} kb/s vs target {t}"
            );
        }
    }
    let common: Vec<_> = facts.iter().filter(|(_, v)| v.len() == 3).collect();
    assert!(
        common.len() >= 8,
        "too few segments common to all renditions: {}",
        common.len()
    );
    for (n, v) in common {
        let first = v[0].1;
        for (r, t) in v {
            // One frame at 30 fps in 90 kHz units.
            assert!(
                t.abs_diff(first) <= 3000,
                "segment {n}: {r} tfdt {t} vs {first}"
            );
        }
    }
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ffmpeg_comes_back_and_never_outlives_the_stream() {
    let _serial = HEAVY.lock().await;
    let ts = TestServer::start_with(test_ladder).await;
    let (id, key) = ts.create_stream("kill").await;
    let publisher = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            width: 640,
            height: 480,
            seconds: 22.0,
            ..Publish::default()
        },
    );
    let path_360 = format!("/hls/{id}/360p/index.m3u8");
    ts.wait_for_text(&path_360, Duration::from_secs(20), |t| {
        t.contains("#EXTINF")
    })
    .await
    .expect("360p up");
    let pids = ts.server.transcoder.pids();
    assert_eq!(pids.len(), 1, "one FFmpeg for the stream: {pids:?}");
    let source_before = ts
        .get_text(&format!("/hls/{id}/source/index.m3u8"))
        .await
        .unwrap();
    let (ok, _, err) = run(
        "kill",
        &["-9", &pids[0].to_string()],
        Duration::from_secs(5),
    )
    .await;
    assert!(ok, "kill: {err}");
    let killed = Instant::now();

    // The rendition comes back (a new FFmpeg, a discontinuity) within 5 s.
    let back = ts
        .wait_for_text(&path_360, Duration::from_secs(8), |t| {
            t.contains("#EXT-X-DISCONTINUITY")
        })
        .await
        .expect("360p resumes after the kill");
    assert!(
        killed.elapsed() <= Duration::from_secs(5) + Duration::from_millis(500),
        "came back after {:?}",
        killed.elapsed()
    );
    let new_pids = ts.server.transcoder.pids();
    assert!(
        !new_pids.is_empty() && new_pids != pids,
        "FFmpeg restarted: {new_pids:?}"
    );
    assert!(back.contains("#EXTINF"));

    // The source went on without a gap: its numbers stay consecutive.
    let (ok, err) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(ok, "publisher: {err}");
    let source = ts
        .wait_for_text(
            &format!("/hls/{id}/source/index.m3u8"),
            Duration::from_secs(3),
            |t| t.contains("#EXT-X-ENDLIST"),
        )
        .await
        .unwrap();
    assert!(!source.contains("#EXT-X-DISCONTINUITY"), "{source}");
    let nums: Vec<u64> = uris(&source).iter().map(|u| u.0).collect();
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "source numbers have a gap: {nums:?}"
    );
    assert!(uris(&source).len() > uris(&source_before).len());
    // The rendition keeps the source's numbering: segments lost to the kill are
    // listed as EXT-X-GAP, so the same number is the same instant everywhere.
    let rendition = ts.get_text(&path_360).await.unwrap();
    let rnums: Vec<u64> = uris(&rendition).iter().map(|u| u.0).collect();
    assert!(
        rnums.windows(2).all(|w| w[1] == w[0] + 1),
        "360p numbers: {rnums:?}\n{rendition}"
    );
    assert!(
        rnums.iter().all(|n| nums.contains(n)),
        "360p numbers outside the source's: {rnums:?} vs {nums:?}"
    );

    // Within 2 s of the end no FFmpeg of ours remains.
    let ended = Instant::now();
    let mut left = Vec::new();
    while ended.elapsed() < Duration::from_secs(2) {
        left = new_pids
            .iter()
            .copied()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| !s.contains(") Z "))
            })
            .collect();
        if left.is_empty() && ts.server.transcoder.pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        left.is_empty(),
        "FFmpeg still running 2 s after the stream ended: {left:?}"
    );
    // And no zombie: every child of ours was reaped.
    for p in pids.iter().chain(&new_pids) {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(!stat.contains(") Z "), "zombie FFmpeg {p}");
    }
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ffmpeg_the_server_warns_and_serves_source_only() {
    let _serial = HEAVY.lock().await;
    require("ffmpeg", "ffmpeg");
    let bin = env!("CARGO_BIN_EXE_streaming-server");
    let dir = tempfile::tempdir().unwrap();
    let port = |l: std::net::TcpListener| l.local_addr().unwrap().port();
    let http_port = port(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let rtmp_port = port(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let key_json = std::process::Command::new(bin)
        .args([
            "keys",
            "create",
            "--name",
            "no-ffmpeg",
            "--json",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("PATH", "/nonexistent")
        .output()
        .expect("keys create");
    let v: serde_json::Value = serde_json::from_slice(&key_json.stdout).expect("one JSON object");
    let (id, key) = (
        v["stream_id"].as_str().unwrap().to_string(),
        v["stream_key"].as_str().unwrap().to_string(),
    );
    let log = dir.path().join("server.log");
    let mut server = std::process::Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args([
            "--http-addr",
            &format!("127.0.0.1:{http_port}"),
            "--rtmp-addr",
            &format!("127.0.0.1:{rtmp_port}"),
        ])
        .env("PATH", "/nonexistent")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("server starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http_port}");
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server without FFmpeg did not start");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("FFmpeg not found"),
        "no warning in the log:\n{text}"
    );

    let publisher = ffmpeg_publish(
        &format!("rtmp://127.0.0.1:{rtmp_port}/live/{key}"),
        &Publish {
            width: 1280,
            height: 720,
            seconds: 8.0,
            ..Publish::default()
        },
    );
    let mut master = String::new();
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("{base}/hls/{id}/master.m3u8"))
            .send()
            .await
            && r.status().is_success()
        {
            master = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        master.contains("source/index.m3u8"),
        "source served: {master}"
    );
    assert_eq!(
        master.matches("#EXT-X-STREAM-INF").count(),
        1,
        "source only: {master}"
    );
    let _ = wait_child(publisher, Duration::from_secs(30)).await;
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ladder_from_a_1080p_source() {
    let _serial = HEAVY.lock().await;
    require("ffmpeg", "ffmpeg");
    // Encode the 1080p source first (not in real time), then publish it as-is with -re,
    // so the machine's two cores go to the transcoder, not to the test's encoder.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src1080.flv");
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            "14",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "6M",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            src.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    )
    .await;
    assert!(ok, "encoding the 1080p source: {err}");
    let ts = TestServer::start().await;
    assert_eq!(
        ts.server.config.transcode.rungs.len(),
        3,
        "the default ladder"
    );
    let (id, key) = ts.create_stream("default ladder").await;
    let publisher = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re", "-i"])
        .arg(&src)
        .args(["-c", "copy", "-f", "flv", &ts.publish_url(&key)])
        .spawn()
        .expect("publisher");
    let master = ts
        .wait_for_text(
            &format!("/hls/{id}/master.m3u8"),
            Duration::from_secs(20),
            |t| t.contains("720p/index.m3u8") && t.contains("480p/index.m3u8"),
        )
        .await
        .expect("the default ladder below 1080p is offered");
    assert!(
        !master.contains("1080p/index.m3u8"),
        "never re-encode at the source height: {master}"
    );
    assert!(
        master.contains("RESOLUTION=1920x1080")
            && master.contains("RESOLUTION=1280x720")
            && master.contains("RESOLUTION=854x480"),
        "{master}"
    );
    // Same numbers, same decode times, in every rendition listed so far.
    let mut firsts = Vec::new();
    for r in ["source", "720p", "480p"] {
        let p = ts
            .get_text(&format!("/hls/{id}/{r}/index.m3u8"))
            .await
            .expect("playlist");
        let (n, _) = *uris(&p).last().expect("a segment");
        firsts.push((r, n));
    }
    let common = firsts.iter().map(|(_, n)| *n).min().unwrap();
    let mut tfdts = Vec::new();
    for r in ["source", "720p", "480p"] {
        let seg = ts
            .get_bytes(&format!("/hls/{id}/{r}/segment-{common}.m4s"))
            .await
            .expect("common segment");
        let (tfdt, key) = segment_facts(&seg).expect("moof");
        assert!(key, "{r} segment {common} starts with a keyframe");
        tfdts.push(tfdt);
    }
    assert!(
        tfdts.iter().all(|t| t.abs_diff(tfdts[0]) <= 3000),
        "tfdt {tfdts:?}"
    );
    let stats = ts.server.transcoder.stats(id).expect("transcoder stats");
    eprintln!(
        "default ladder: FFmpeg speed {:.2}x, fps {:.1}, ladder {:?}",
        stats.speed, stats.fps, stats.ladder
    );
    let _ = wait_child(publisher, Duration::from_secs(40)).await;
    ts.server.shutdown().await;
}
