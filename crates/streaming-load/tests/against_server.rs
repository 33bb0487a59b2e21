//! The load tool against a real in-process server: its own publisher replays
//! an FFmpeg-made FLV (640x360, 15 s) over RTMP while 20 simulated viewers (5
//! of them switching between the source and a 240p rung) watch for 8 s; and
//! non-loopback targets are refused.

use std::time::{Duration, Instant};

mod common;

use common::{config_with_240p, flv_fixture, load};

fn summary(stdout: &str, stderr: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("summary is not one JSON object ({e}): {stdout}\nstderr: {stderr}")
    })
}

async fn get_text(client: &reqwest::Client, url: &str) -> Option<String> {
    let r = client.get(url).send().await.ok()?;
    if r.status().is_success() {
        r.text().await.ok()
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_and_publisher_against_a_live_stream() {
    let dir = tempfile::tempdir().unwrap();
    let flv = flv_fixture(dir.path(), 15);
    let config = config_with_240p(dir.path(), "test-admin-token-0123456789abcdef");
    let server = streaming_server::start(config)
        .await
        .expect("server starts");
    let created = server
        .repo
        .create_stream("load")
        .await
        .expect("create stream");
    let id = created.stream.id;
    let rtmp = format!("rtmp://{}/live/{}", server.rtmp_addr, created.plaintext_key);
    let master = format!("http://{}/hls/{id}/master.m3u8", server.http_addr);

    // The tool's own publisher, replaying the fixture in real time.
    let publisher = tokio::spawn(async move {
        load(
            &[
                "publish",
                "--rtmp",
                &rtmp,
                "--flv",
                flv.to_str().unwrap(),
                "--duration",
                "20s",
            ],
            Duration::from_secs(60),
        )
        .await
    });

    // A second stream fed by a looping publisher: a 3 s file replayed for 7 s.
    let short = flv_fixture(dir.path(), 3);
    let second = server
        .repo
        .create_stream("loop")
        .await
        .expect("create stream");
    let rtmp2 = format!("rtmp://{}/live/{}", server.rtmp_addr, second.plaintext_key);
    let looper = tokio::spawn(async move {
        load(
            &[
                "publish",
                "--rtmp",
                &rtmp2,
                "--flv",
                short.to_str().unwrap(),
                "--loop",
                "--duration",
                "7s",
            ],
            Duration::from_secs(40),
        )
        .await
    });

    // Wait until both renditions list segments (the 240p rung needs FFmpeg).
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        assert!(
            Instant::now() < deadline,
            "the stream never offered two renditions with segments"
        );
        if let Some(m) = get_text(&client, &master).await {
            let uris: Vec<&str> = m
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            let mut all = uris.len() >= 2;
            for u in &uris {
                let url = reqwest::Url::parse(&master).unwrap().join(u).unwrap();
                all &= get_text(&client, url.as_str())
                    .await
                    .is_some_and(|t| t.matches("#EXTINF").count() >= 2);
            }
            if all {
                break m;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let started = Instant::now();
    // Alongside, 2 viewers with beacons (`POST /api/v1/sessions/{id}/events`).
    let main_args = [
        "viewers",
        "--url",
        &master,
        "--viewers",
        "20",
        "--duration",
        "8s",
        "--switchers",
        "5",
        "--switch-every",
        "3s",
    ];
    let beacon_args = [
        "viewers",
        "--url",
        &master,
        "--viewers",
        "2",
        "--duration",
        "3s",
        "--beacons",
        "--lowest",
    ];
    let ((code, out, err), (bcode, bout, berr)) = tokio::join!(
        load(&main_args, Duration::from_secs(40),),
        load(&beacon_args, Duration::from_secs(30)),
    );
    let took = started.elapsed();
    eprintln!("beacon viewers summary: {bout}");
    assert_eq!(bcode, Some(0), "beacon run failed: {berr}");
    let b = summary(&bout, &berr);
    assert!(b["requests"]["beacon"].as_u64().unwrap() >= 2, "{b}");
    assert_eq!(
        b["requests"]["beacon"],
        b["viewers"]["beacons_sent"].as_u64().unwrap() + b["errors"]["total"].as_u64().unwrap(),
        "{b}"
    );
    assert_eq!(b["errors"]["total"], 0, "beacons are accepted: {b}");
    eprintln!("viewers summary: {out}\n{err}");
    assert_eq!(code, Some(0), "viewers run failed: {err}");
    assert!(
        took < Duration::from_secs(8 + 15),
        "the run must be bounded by --duration; took {took:?}"
    );
    let s = summary(&out, &err);
    assert_eq!(s["mode"], "viewers");
    assert_eq!(
        s["errors"]["total"], 0,
        "errors: {}\nmaster: {ready}",
        s["errors"]
    );
    assert!(s["bytes"]["total"].as_u64().unwrap() > 0, "{s}");
    assert!(s["bytes"]["segment"].as_u64().unwrap() > 0, "{s}");
    let per: Vec<u64> = s["viewers"]["segments_per_viewer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(per.len(), 20, "{s}");
    assert!(
        per.iter().all(|&n| n >= 2),
        "every viewer fetches ≥ 2 segments: {per:?}"
    );
    // 5 switchers, every 3 s over 8 s: two switches each.
    assert!(s["viewers"]["switches"].as_u64().unwrap() >= 5, "{s}");
    for kind in ["playlist", "segment"] {
        let l = &s["latency_ms"][kind];
        assert!(l["count"].as_u64().unwrap() > 0, "{kind}: {s}");
        assert!(
            l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap(),
            "{kind}: {l}"
        );
        assert!(
            l["p99"].as_f64().unwrap() <= l["max"].as_f64().unwrap(),
            "{kind}: {l}"
        );
    }
    assert!(
        s["requests"]["init"].as_u64().unwrap() >= 20,
        "each viewer fetches the init: {s}"
    );

    // The publisher replayed the 15 s file once, in real time, with no error.
    let (code, out, err) = publisher.await.unwrap();
    eprintln!("publisher summary: {out}\n{err}");
    assert_eq!(code, Some(0), "publisher run failed: {err}");
    let p = summary(&out, &err);
    assert_eq!(p["errors"]["total"], 0, "{p}");
    assert!(
        p["publishers"]["frames_sent"].as_u64().unwrap() > 15 * 30,
        "{p}"
    );
    assert!(
        p["publishers"]["bytes_sent"].as_u64().unwrap() > 100_000,
        "{p}"
    );
    assert!(
        p["elapsed_s"].as_f64().unwrap() >= 14.0,
        "replayed in real time: {p}"
    );

    // The looping publisher went round the 3 s file more than twice, stopping at --duration.
    let (code, out, err) = looper.await.unwrap();
    eprintln!("looping publisher summary: {out}\n{err}");
    assert_eq!(code, Some(0), "looping publisher failed: {err}");
    let p = summary(&out, &err);
    assert_eq!(p["errors"]["total"], 0, "{p}");
    assert!(p["publishers"]["passes"].as_u64().unwrap() >= 2, "{p}");
    assert!(
        p["publishers"]["frames_sent"].as_u64().unwrap() > 6 * 30,
        "{p}"
    );
    let elapsed = p["elapsed_s"].as_f64().unwrap();
    assert!(
        (6.5..9.0).contains(&elapsed),
        "bounded by --duration 7s: {p}"
    );
    let loop_id = second.stream.id;
    let media = get_text(
        &client,
        &format!(
            "http://{}/hls/{loop_id}/source/index.m3u8",
            server.http_addr
        ),
    )
    .await
    .expect("the looped stream is served");
    assert!(media.matches("#EXTINF").count() >= 2, "{media}");
    server.shutdown().await;
}

#[tokio::test]
async fn non_loopback_targets_and_unbounded_runs_are_refused() {
    let cases: &[&[&str]] = &[
        &[
            "viewers",
            "--url",
            "http://10.1.2.3:8080/hls/x/master.m3u8",
            "--viewers",
            "1",
            "--duration",
            "1s",
        ],
        &[
            "viewers",
            "--url",
            "http://example.com/hls/x/master.m3u8",
            "--duration",
            "1s",
        ],
        &[
            "viewers",
            "--url",
            "http://[2001:db8::1]/hls/x/master.m3u8",
            "--duration",
            "1s",
        ],
        &[
            "publish",
            "--rtmp",
            "rtmp://192.0.2.1/live/k",
            "--flv",
            "/nonexistent.flv",
            "--duration",
            "1s",
        ],
    ];
    for args in cases {
        let (code, out, err) = load(args, Duration::from_secs(10)).await;
        assert!(
            matches!(code, Some(c) if c != 0),
            "{args:?} must fail: {out} {err}"
        );
        assert!(err.contains("not a loopback"), "{args:?}: {err}");
        assert!(
            out.trim().is_empty(),
            "{args:?}: no summary on refusal: {out}"
        );
    }
    // No --duration, or more than 1 h: refused.
    for args in [
        &["viewers", "--url", "http://127.0.0.1:9/x.m3u8"][..],
        &[
            "viewers",
            "--url",
            "http://127.0.0.1:9/x.m3u8",
            "--duration",
            "2h",
        ][..],
    ] {
        let (code, _, err) = load(args, Duration::from_secs(10)).await;
        assert!(matches!(code, Some(c) if c != 0), "{args:?}: {err}");
    }
}
