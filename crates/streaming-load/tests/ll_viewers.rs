//! The load tool's low-latency viewers and held requests against a scripted
//! LL-HLS origin on 127.0.0.1 (no streaming-server needed): blocking reloads
//! for the hinted part, every part fetched once per viewer, the viewer's
//! `sid` kept on every request, delta updates on request, ordinary viewers
//! reading the same playlists, held requests answered with the part listed.

use std::sync::atomic::Ordering;
use std::time::Duration;

mod common;
mod ll_origin;

use common::load;
use serde_json::Value;

fn summary(code: Option<i32>, stdout: &str, stderr: &str) -> Value {
    assert_eq!(code, Some(0), "exit status; stderr: {stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("summary is not one JSON object ({e}): {stdout}\nstderr: {stderr}")
    })
}

const BOUND: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_viewers_fetch_every_part_once_and_keep_up() {
    let (addr, origin) = ll_origin::start().await;
    let master = format!("http://{addr}/hls/s/master.m3u8");
    let (code, out, err) = load(
        &[
            "viewers",
            "--url",
            &master,
            "--viewers",
            "4",
            "--duration",
            "4s",
            "--ll",
            "--audio",
        ],
        BOUND,
    )
    .await;
    let j = summary(code, &out, &err);
    assert_eq!(j["mode"], "ll_viewers");
    assert_eq!(j["errors"]["total"], 0, "{j}");
    let ll = &j["ll"];
    assert_eq!(ll["keeping_up"], 4, "{j}");
    assert_eq!(ll["tracks_not_low_latency"], 0);
    // 4 s of 250 ms parts on two tracks, after a start 750 ms back.
    assert!(
        ll["parts_per_viewer_min"].as_u64().unwrap() >= 2 * 12,
        "{ll}"
    );
    assert!(
        j["requests"]["playlist_blocking"].as_u64().unwrap() >= 4 * 2 * 10,
        "{j}"
    );
    assert!(
        j["requests"]["part_hinted"].as_u64().unwrap() >= 4 * 2 * 10,
        "{j}"
    );
    assert_eq!(j["requests"]["init"], 8, "one init per viewer and track");
    assert_eq!(ll["delta_playlists"], 0);
    // Each blocking answer has its held part's answer to compare with.
    assert!(
        j["timings_ms"]["playlist_after_part"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
    // The origin saw every part once per viewer and track, and no segment.
    let (n, file) = origin.most_fetched(|k| k.contains("segment-"));
    assert_eq!(n, 1, "{file} fetched {n} times by one viewer");
    assert_eq!(origin.segment_requests.load(Ordering::Relaxed), 0);
    assert!(origin.blocking_requests.load(Ordering::Relaxed) > 0);
    let (n, file) = origin.most_fetched(|k| k.ends_with("init.mp4"));
    assert_eq!(n, 1, "{file}");
    let newest = &ll["server_newest_part"];
    assert!(newest["/hls/s/source/index.m3u8"].is_string(), "{ll}");
    assert!(newest["/hls/s/audio/index.m3u8"].is_string(), "{ll}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_skip_asks_for_delta_updates() {
    let (addr, origin) = ll_origin::start().await;
    let master = format!("http://{addr}/hls/s/master.m3u8");
    let (code, out, err) = load(
        &[
            "viewers",
            "--url",
            &master,
            "--viewers",
            "2",
            "--duration",
            "3s",
            "--ll",
            "--ll-skip",
        ],
        BOUND,
    )
    .await;
    let j = summary(code, &out, &err);
    assert_eq!(j["errors"]["total"], 0, "{j}");
    assert!(j["ll"]["delta_playlists"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["ll"]["skip_requested"], true);
    assert_eq!(j["ll"]["keeping_up"], 2, "{j}");
    assert!(origin.skip_requests.load(Ordering::Relaxed) > 0);
    let (n, file) = origin.most_fetched(|k| k.contains("segment-"));
    assert_eq!(n, 1, "{file}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_viewers_read_ll_playlists_as_plain_hls() {
    let (addr, origin) = ll_origin::start().await;
    let master = format!("http://{addr}/hls/s/master.m3u8");
    let (code, out, err) = load(
        &[
            "viewers",
            "--url",
            &master,
            "--viewers",
            "2",
            "--duration",
            "3s",
            "--audio",
        ],
        BOUND,
    )
    .await;
    let j = summary(code, &out, &err);
    assert_eq!(j["mode"], "viewers");
    assert_eq!(j["errors"]["total"], 0, "{j}");
    // Start 3 segments back, on both tracks of both viewers.
    assert!(
        j["viewers"]["min_segments"].as_u64().unwrap() >= 2 * 3,
        "{j}"
    );
    assert!(j.get("ll").is_none());
    assert_eq!(origin.part_requests.load(Ordering::Relaxed), 0);
    assert_eq!(origin.blocking_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_viewers_fall_back_to_plain_hls_without_ll() {
    let (addr, origin) = ll_origin::start_with(false).await;
    let master = format!("http://{addr}/hls/s/master.m3u8");
    let (code, out, err) = load(
        &[
            "viewers",
            "--url",
            &master,
            "--viewers",
            "2",
            "--duration",
            "3s",
            "--ll",
            "--audio",
        ],
        BOUND,
    )
    .await;
    let j = summary(code, &out, &err);
    assert_eq!(j["errors"]["by_kind"]["ll_not_offered"], 4, "{j}");
    assert_eq!(j["errors"]["total"], 4, "{j}");
    assert_eq!(j["ll"]["tracks_not_low_latency"], 4);
    // Both tracks followed at once: 3 segments back on each.
    assert!(
        j["viewers"]["min_segments"].as_u64().unwrap() >= 2 * 3,
        "{j}"
    );
    assert!(origin.count(|k| k.contains("/audio/segment-")) >= 2 * 3);
    assert!(origin.count(|k| k.contains("/source/segment-")) >= 2 * 3);
    assert_eq!(origin.blocking_requests.load(Ordering::Relaxed), 0);
    assert_eq!(origin.part_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_refuses_a_playlist_without_ll() {
    let (addr, _origin) = ll_origin::start_with(false).await;
    let master = format!("http://{addr}/hls/s/master.m3u8");
    let (code, _, err) = load(
        &[
            "held",
            "--url",
            &master,
            "--requests",
            "5",
            "--rounds",
            "1",
            "--duration",
            "5s",
        ],
        BOUND,
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a low-latency playlist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_are_answered_with_the_part_listed() {
    let (addr, _origin) = ll_origin::start().await;
    let master = format!("http://{addr}/hls/s/master.m3u8");
    let (code, out, err) = load(
        &[
            "held",
            "--url",
            &master,
            "--requests",
            "50",
            "--rounds",
            "3",
            "--duration",
            "20s",
        ],
        BOUND,
    )
    .await;
    let j = summary(code, &out, &err);
    assert_eq!(j["mode"], "held");
    assert_eq!(j["errors"]["total"], 0, "{j}");
    let h = &j["held"];
    assert_eq!(h["rounds"], 3);
    assert_eq!(h["answered"], 150, "{h}");
    assert_eq!(h["answers_without_part"], 0);
    assert_eq!(h["answers_undated"], 0);
    assert_eq!(h["sent_after_production"], 0, "all held: {h}");
    // The answers come after the part is made, not a part early or late
    // (a part is 250 ms here; this bounds an error in the arithmetic).
    let p50 = h["after_production_ms"]["p50"].as_f64().unwrap();
    assert!((-50.0..240.0).contains(&p50), "{h}");
    assert_eq!(h["after_first_answer_ms"]["count"], 150);
}

#[tokio::test]
async fn held_refuses_targets_off_this_machine() {
    let (code, _, err) = load(
        &[
            "held",
            "--url",
            "http://10.1.2.3/hls/s/master.m3u8",
            "--duration",
            "5s",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
}
