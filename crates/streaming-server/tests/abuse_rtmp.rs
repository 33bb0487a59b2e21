//! Abuse suite, RTMP (issue 9, "RTMP" and "Acceptance"): one real server
//! process with the default limits, a live FFmpeg publish from 127.0.0.1
//! played by an HLS viewer for the whole test, and attackers on their own
//! source addresses 127.0.0.N: slow drip, idle connections beyond the
//! per-address cap, a many-address idle flood of the pending pool, AMF0
//! amplification before `connect`, oversized and deeply nested AMF0, a
//! wrong-key storm, and an idle publish.
//!
//! For each attack: the attacker is cut off or refused as specified and the
//! right `streaming_limit_hits_total{kind}` grew; the server's RSS grows by
//! less than [`RSS_BOUND_KIB`] during the attack; the live publish keeps
//! going, the viewer keeps getting segments, and a new legitimate publish is
//! accepted while the attack runs. Each prints its peak RSS and how long
//! until the attacker was cut off.

#[path = "abuse_rtmp/attacks.rs"]
mod attacks;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use attacks::{
    Outcome, amf_amplification, idle_beyond_per_address_cap, idle_publish, many_address_flood,
    oversized_and_nested_amf, slow_drip, wrong_key_storm,
};
use common::abuse::{
    HlsViewer, LivePublish, ServerProcess, new_publish_is_accepted, proc_status_kib,
};
use common::ffmpeg_flv_fixture;

/// Peak RSS growth allowed during one attack (KiB). Measured on the debug
/// build: at most +3 MiB (the 320-connection flood), under 1 MiB for the
/// others (see the printed figures); 16 MiB leaves room for the live
/// stream's own churn. Before the limits, two 8 MiB AMF0 commands alone
/// raised RSS by 256–435 MiB.
const RSS_BOUND_KIB: u64 = 16 * 1024;

/// Default deadlines (the server runs with the defaults except the idle
/// publish timeout).
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
const PUBLISH_DEADLINE: Duration = Duration::from_secs(10);
/// Shortened from the default 30 s so the idle-publish attack takes
/// seconds, not half a minute (set in the server's TOML below).
const IDLE_PUBLISH: Duration = Duration::from_secs(6);
/// How late past a deadline a cut may come (scheduling on a loaded machine).
const SLACK: Duration = Duration::from_millis(2500);

/// Samples the server's RSS every 50 ms; the peak since it started.
struct RssSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(proc_status_kib(pid, "VmRSS")));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(proc_status_kib(pid, "VmRSS"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

struct Harness {
    server: ServerProcess,
    live: std::sync::Mutex<LivePublish>,
    viewer: HlsViewer,
    summary: std::sync::Mutex<Vec<String>>,
}

impl Harness {
    /// Runs `attack` while a new legitimate publish is tried (500 ms in, so
    /// the attack is in effect), then checks the server held up.
    async fn run<F>(&self, name: &str, kinds: &[&str], attack: F)
    where
        F: std::future::Future<Output = Outcome>,
    {
        let mut before = Vec::new();
        for k in kinds {
            before.push(self.server.limit_hits(k).await);
        }
        let baseline = self.server.rss_kib();
        let cpu_before = self.server.cpu_ticks();
        let sampler = RssSampler::start(self.server.pid);
        let started = Instant::now();
        let publish = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            new_publish_is_accepted(&self.server, Duration::from_secs(10)).await;
        };
        let (outcome, ()) = tokio::join!(attack, publish);
        let took = started.elapsed();
        let peak = sampler.stop();
        // Clock ticks are 1/100 s: ticks per second of wall time = % of a core.
        let cpu = (self.server.cpu_ticks() - cpu_before) as f64 / took.as_secs_f64();
        let growth = peak.saturating_sub(baseline);
        let mut grew = Vec::new();
        for (k, b) in kinds.iter().zip(before) {
            let now = self.server.limit_hits(k).await;
            assert!(
                now > b,
                "{name}: streaming_limit_hits_total{{kind=\"{k}\"}} did not grow ({b})"
            );
            grew.push(format!("{k} +{}", now - b));
        }
        let line = format!(
            "{name}: cut off after {:.2?} (max); RSS peak {} MiB (+{:.1} MiB over {} MiB); server CPU {cpu:.0}% of a core; attack {took:.1?}; {}; {}",
            outcome.cut_off,
            peak / 1024,
            growth as f64 / 1024.0,
            baseline / 1024,
            grew.join(", "),
            outcome.note
        );
        eprintln!("{line}");
        self.summary.lock().unwrap().push(line);
        assert!(
            growth < RSS_BOUND_KIB,
            "{name}: RSS grew by {growth} KiB (bound {RSS_BOUND_KIB} KiB)"
        );
        assert!(
            self.live.lock().unwrap().running(),
            "{name}: the live FFmpeg publish stopped"
        );
        self.viewer.assert_playing(Duration::from_secs(10), name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_attacks_are_cut_off_while_a_live_stream_plays() {
    let dir = tempfile::tempdir().unwrap();
    let frames = ffmpeg_flv_fixture(dir.path(), 160, 90, 1, 1);
    // The idle-publish timeout is shortened (default 30 s) to keep this test
    // short; every other limit has its default.
    let server = ServerProcess::start(
        &dir.path().join("server"),
        &format!(
            "[ingest]\nidle_publish_timeout_secs = {}\n",
            IDLE_PUBLISH.as_secs()
        ),
    )
    .await;
    let live = LivePublish::start(&server, 300).await;
    let viewer = HlsViewer::start(&server.http, live.stream_id);
    viewer.wait_first_segment(Duration::from_secs(30)).await;
    let rss_start = server.rss_kib();
    let h = Harness {
        server,
        live: std::sync::Mutex::new(live),
        viewer,
        summary: std::sync::Mutex::default(),
    };
    let to = h.server.rtmp_addr;

    h.run(
        "slow drip (10 connections, a byte every 5 s)",
        &["rtmp_handshake_timeout", "rtmp_publish_timeout"],
        slow_drip(to),
    )
    .await;
    h.run(
        "idle connections beyond the per-address cap (20 from one address)",
        &["rtmp_pending_per_addr", "rtmp_handshake_timeout"],
        idle_beyond_per_address_cap(to),
    )
    .await;
    h.run(
        "many-address idle flood (40 addresses × 8)",
        &["rtmp_pending", "rtmp_handshake_timeout"],
        many_address_flood(&h.server),
    )
    .await;
    h.run(
        "AMF0 amplification before connect (2 × 8 MiB of nulls)",
        &["rtmp_message_size"],
        amf_amplification(to),
    )
    .await;
    h.run(
        "oversized and deeply nested AMF0",
        &["rtmp_amf", "rtmp_message_size", "rtmp_partial_messages"],
        oversized_and_nested_amf(to),
    )
    .await;
    h.run(
        "wrong-key storm (one address)",
        &["rtmp_bad_keys", "rtmp_banned"],
        wrong_key_storm(&h.server),
    )
    .await;
    h.run(
        "idle publish (no media)",
        &["rtmp_idle_publish"],
        idle_publish(&h.server, &frames),
    )
    .await;

    let logs = h.server.logs();
    let mut live = h.live.lock().unwrap();
    assert!(
        !logs.contains(&live.key),
        "the live stream's key appears in the server's log"
    );
    eprintln!(
        "\nRTMP abuse summary (RSS at start {} MiB, peak VmHWM {} MiB, now {} MiB):",
        rss_start / 1024,
        h.server.peak_rss_kib() / 1024,
        h.server.rss_kib() / 1024
    );
    for l in h.summary.lock().unwrap().iter() {
        eprintln!("  {l}");
    }
    assert!(live.running(), "the live publish ran through every attack");
}
