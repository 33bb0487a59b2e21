//! `streaming-load`: simulated HLS viewers (ordinary or low-latency, or
//! beacon-only CDN viewers), held LL-HLS blocking reloads, RTMP publishers
//! and WebSocket clients against a streaming-server on this
//! machine (loopback targets only, bounded in time).
//!
//! Prints one JSON summary object on stdout and a short table on stderr.
//! Exit status: 0 after a run (errors are in the summary), 2 when the
//! arguments or the target are refused.

mod beacon;
mod http;
mod ll;
mod publish;
mod stats;
mod target;
mod viewers;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use reqwest::Url;
use tokio::time::Instant;

use crate::target::{check_loopback_url, parse_duration, resolve_loopback};

/// mimalloc: thousands of simulated clients allocate on every request; the
/// load tool must not be what limits a benchmark.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Grace after `--duration` for in-flight work to wind down before the
/// process gives up on it.
const GRACE: Duration = Duration::from_secs(15);

#[derive(Parser, Debug)]
#[command(
    name = "streaming-load",
    version,
    about = "Load tool for streaming-server: simulated HLS viewers, RTMP publishers and WebSocket clients (loopback targets only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Simulated HLS viewers of one master (or media) playlist.
    Viewers {
        /// Master playlist URL, e.g. http://127.0.0.1:8080/hls/{id}/master.m3u8
        #[arg(long)]
        url: String,
        /// Number of concurrent viewers.
        #[arg(long, default_value_t = 1)]
        viewers: usize,
        /// How long to run (e.g. 30s, 5m; at most 1h).
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
        /// How many of the viewers switch quality.
        #[arg(long, default_value_t = 0)]
        switchers: usize,
        /// How often a switcher moves to the next variant.
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        switch_every: Duration,
        /// Send player beacons to /api/v1/sessions/{sid}/events: `startup` after
        /// the first segment, `quality_change` on switches, `heartbeat` every 2 s.
        #[arg(long)]
        beacons: bool,
        /// Fetch nothing: each viewer asks the server for a signed session id
        /// (POST /api/v1/streams/{id}/sessions) and only sends `startup` and
        /// then a `heartbeat` every 2 s under it (viewers behind a CDN).
        #[arg(long, conflicts_with_all = ["beacons", "switchers", "lowest"])]
        beacon_only: bool,
        /// The rendition named in --beacon-only beacons.
        #[arg(long, default_value = "source", requires = "beacon_only")]
        quality: String,
        /// Every viewer starts on the lowest-bandwidth variant (default: round-robin).
        #[arg(long)]
        lowest: bool,
        /// Spread the viewers' starts over this long.
        #[arg(long, value_parser = parse_duration_or_zero, default_value = "0s")]
        ramp: Duration,
        /// Low-latency HLS viewers (like hls.js `lowLatencyMode`): blocking
        /// playlist reloads (`_HLS_msn`/`_HLS_part`) for the next part while
        /// the hinted part is requested; every part fetched once, no segments.
        /// A playlist without LL-HLS is followed the ordinary way.
        #[arg(long, conflicts_with_all = ["beacons", "beacon_only", "switchers"])]
        ll: bool,
        /// With --ll: reloads ask for delta updates (`_HLS_skip=YES`) when the
        /// server offers them (CAN-SKIP-UNTIL).
        #[arg(long, requires = "ll")]
        ll_skip: bool,
        /// Also follow the variant's audio rendition (`EXT-X-MEDIA`), as players do.
        #[arg(long, conflicts_with = "beacon_only")]
        audio: bool,
    },
    /// Held blocking playlist reloads: rounds of N requests for the same next
    /// part, each answer timed from the part's production (its date in the
    /// playlist) and from the round's first answer.
    Held {
        /// Master (first variant used) or media playlist URL.
        #[arg(long)]
        url: String,
        /// Held requests per round (one connection each).
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Measured rounds (one part each), after one that opens the connections.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Run at most this long (e.g. 60s; at most 1h).
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
    },
    /// WebSocket clients of /ws/stream/{id}: reads every message and measures
    /// the delay of each `metrics` message behind the server's tick.
    Ws {
        /// ws://127.0.0.1:8080/ws/stream/{id}
        #[arg(long)]
        url: String,
        /// Number of concurrent clients.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// How long to run (e.g. 30s, 5m; at most 1h).
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
        /// Spread the clients' connects over this long.
        #[arg(long, value_parser = parse_duration_or_zero, default_value = "0s")]
        ramp: Duration,
    },
    /// Simulated publishers replaying an FLV file over RTMP in real time.
    Publish {
        /// rtmp://127.0.0.1:1935/live/STREAM_KEY (repeat for several keys;
        /// publisher i uses URL i mod count).
        #[arg(long, required = true)]
        rtmp: Vec<String>,
        /// The FLV file to replay.
        #[arg(long)]
        flv: PathBuf,
        /// Number of publishers [default: one per --rtmp URL].
        #[arg(long)]
        publishers: Option<usize>,
        /// Replay the file again (timestamps continuing) until --duration.
        #[arg(long = "loop")]
        looped: bool,
        /// How long to run at most (e.g. 30s; at most 1h).
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
    },
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches(['s', 'm', 'h']).parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streaming-load: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (summary, stats, duration) = match cli.cmd {
        Cmd::Viewers {
            url,
            viewers,
            duration,
            switchers,
            switch_every,
            beacons,
            beacon_only,
            quality,
            lowest,
            ramp,
            ll,
            ll_skip,
            audio,
        } => {
            let master = http_target(&url).await?;
            if viewers == 0 {
                return Err("--viewers must be at least 1".into());
            }
            let stream_id = beacon::stream_id_from(&master);
            if (beacons || beacon_only) && stream_id.is_none() {
                return Err(format!(
                    "--url `{url}`: beacons need the stream id from a /hls/{{id}}/master.m3u8 URL"
                ));
            }
            // A connection per request in flight: up to four per viewer
            // (video and audio, each a held reload and a held part), two
            // the ordinary way.
            ws::raise_nofile_limit();
            let deadline = Instant::now() + duration;
            let opts = viewers::ViewerOpts {
                master,
                viewers,
                switchers,
                switch_every,
                beacons,
                beacon_only,
                quality,
                stream_id,
                lowest,
                ramp: ramp.min(duration),
                deadline,
                ll_skip: ll.then_some(ll_skip),
                audio,
            };
            let (j, s) = bounded(duration, viewers::run(opts)).await??;
            (j, s, duration)
        }
        Cmd::Held {
            url,
            requests,
            rounds,
            duration,
        } => {
            let url = http_target(&url).await?;
            if requests == 0 || rounds == 0 {
                return Err("--requests and --rounds must be at least 1".into());
            }
            let nofile = ws::raise_nofile_limit();
            if let Some(n) = nofile
                && (requests as u64).saturating_add(64) > n
            {
                eprintln!(
                    "streaming-load: warning: {requests} requests but only {n} file descriptors \
                     (raise the hard limit: ulimit -n)"
                );
            }
            let opts = ll::held::HeldOpts {
                url,
                requests,
                rounds,
                deadline: Instant::now() + duration,
            };
            let (j, s) = bounded(duration, ll::held::run(opts)).await??;
            (j, s, duration)
        }
        Cmd::Ws {
            url,
            clients,
            duration,
            ramp,
        } => {
            let target = Url::parse(&url).map_err(|e| format!("invalid --url `{url}`: {e}"))?;
            if target.scheme() != "ws" {
                return Err(format!("--url `{url}`: only ws:// is supported"));
            }
            check_loopback_url(&target)?;
            let host = target.host_str().unwrap_or_default();
            let addrs =
                resolve_loopback(host, target.port_or_known_default().unwrap_or(80)).await?;
            if clients == 0 {
                return Err("--clients must be at least 1".into());
            }
            let nofile = ws::raise_nofile_limit();
            if let Some(n) = nofile
                && (clients as u64).saturating_add(64) > n
            {
                eprintln!(
                    "streaming-load: warning: {clients} clients but only {n} file descriptors \
                     (raise the hard limit: ulimit -n)"
                );
            }
            let deadline = Instant::now() + duration;
            let opts = ws::WsOpts {
                url: target,
                addrs,
                clients,
                ramp: ramp.min(duration),
                deadline,
            };
            let (j, s) = bounded(duration, ws::run(opts, nofile)).await?;
            (j, s, duration)
        }
        Cmd::Publish {
            rtmp,
            flv,
            publishers,
            looped,
            duration,
        } => {
            let targets = rtmp
                .iter()
                .map(|u| publish::RtmpTarget::parse(u))
                .collect::<Result<Vec<_>, _>>()?;
            for t in &targets {
                resolve_loopback(&t.host, t.port).await?;
            }
            let frames = Arc::new(publish::read_flv(&flv)?);
            let publishers = publishers.unwrap_or(targets.len());
            if publishers == 0 {
                return Err("--publishers must be at least 1".into());
            }
            let deadline = Instant::now() + duration;
            let opts = publish::PublishOpts {
                targets,
                frames,
                publishers,
                looped,
                deadline,
            };
            let (j, s) = bounded(duration, publish::run(opts)).await?;
            (j, s, duration)
        }
    };
    let mut summary = summary;
    summary["duration_s"] = serde_json::json!(duration.as_secs_f64());
    println!("{summary}");
    if stats.total_requests() > 0 {
        eprint!("{}", stats::human_table(&stats));
    } else {
        eprintln!("errors: {} {:?}", stats.total_errors(), stats.errors);
    }
    if let Some(p) = summary.get("publishers") {
        eprintln!(
            "publishers: {}  frames sent: {}  bytes sent: {}",
            p["count"], p["frames_sent"], p["bytes_sent"]
        );
    }
    if let Some(c) = summary.get("clients") {
        let d = &summary["metrics_delay_ms"];
        eprintln!(
            "ws clients: {} connected, {} connect failures, {} ended early; metrics messages: {}; \
             delay ms p50 {} p90 {} p99 {} max {}",
            c["connected"],
            c["connect_failures"],
            c["ended_early"],
            summary["metrics_messages"],
            d["p50"],
            d["p90"],
            d["p99"],
            d["max"]
        );
    }
    if let Some(l) = summary.get("ll") {
        eprintln!(
            "ll: parts {} (per viewer {}..{})  playlists {} (blocking {}, delta {})  \
             keeping up {} of {}  behind s p50 {} max {}",
            l["parts_fetched"],
            l["parts_per_viewer_min"],
            l["parts_per_viewer_max"],
            l["playlists_fetched"],
            l["blocking_playlists"],
            l["delta_playlists"],
            l["keeping_up"],
            summary["viewers"]["count"],
            l["behind_s"]["p50"],
            l["behind_s"]["max"],
        );
    }
    if let Some(h) = summary.get("held") {
        eprintln!(
            "held: {} rounds of {}, answered {}, without the part {}; after production ms p50 {} p99 {}; \
             after first answer ms p50 {} p99 {}",
            h["rounds"],
            h["requests_per_round"],
            h["answered"],
            h["answers_without_part"],
            h["after_production_ms"]["p50"],
            h["after_production_ms"]["p99"],
            h["after_first_answer_ms"]["p50"],
            h["after_first_answer_ms"]["p99"],
        );
    }
    if let Some(v) = summary.get("viewers") {
        eprintln!(
            "viewers: {}  switches: {}  segments/viewer min {} max {}  beacons sent {} failed {}",
            v["count"],
            v["switches"],
            v["min_segments"],
            v["max_segments"],
            v["beacons_sent"],
            v["beacons_failed"]
        );
    }
    Ok(())
}

/// An `http://` URL on this machine (checked on the URL and after resolution).
async fn http_target(url: &str) -> Result<Url, String> {
    let u = Url::parse(url).map_err(|e| format!("invalid --url `{url}`: {e}"))?;
    if u.scheme() != "http" {
        return Err(format!("--url `{url}`: only http:// is supported"));
    }
    check_loopback_url(&u)?;
    let host = u.host_str().unwrap_or_default();
    resolve_loopback(host, u.port_or_known_default().unwrap_or(80)).await?;
    Ok(u)
}

/// The whole run is bounded: `duration` plus a grace period, whatever happens.
async fn bounded<T>(duration: Duration, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(duration + GRACE, f)
        .await
        .map_err(|_| format!("run did not wind down within {GRACE:?} after --duration; aborted"))
}
