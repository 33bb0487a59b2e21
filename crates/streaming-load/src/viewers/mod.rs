//! Simulated HLS viewers: master → variant → media playlist polled about once
//! per target duration → init + every new segment once ([`plain`]), optional
//! quality switches and player beacons (`startup`, `heartbeat`,
//! `quality_change`); or, with `--ll`, low-latency viewers that reload with
//! blocking requests and fetch every part ([`crate::ll::viewer`]). With
//! `--audio` a viewer also follows its variant's audio rendition, as players do.
//! In beacon-only mode a viewer fetches no media: it asks the server for a
//! signed session id (`POST /api/v1/streams/{id}/sessions`) and only sends
//! beacons under it, like a player whose media comes from a CDN.

mod master;
mod plain;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::beacon;
use crate::http::{Http, RETRY_AFTER, sleep_bounded};
use crate::ll::viewer::TrackResult;
use crate::stats::Stats;
pub use master::{session_from, variants_of};

/// Heartbeats of beacon-only viewers this often (the server ends a session
/// after 3 × the target duration, 6 s by default, without traffic).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ViewerOpts {
    pub master: Url,
    pub viewers: usize,
    pub switchers: usize,
    pub switch_every: Duration,
    pub beacons: bool,
    /// Only beacons, no fetches (simulated CDN viewers).
    pub beacon_only: bool,
    /// The rendition named in beacon-only heartbeats.
    pub quality: String,
    /// From the master URL path `/hls/{id}/master.m3u8`; required for beacons.
    pub stream_id: Option<String>,
    pub lowest: bool,
    pub ramp: Duration,
    pub deadline: Instant,
    /// Low-latency viewers (`--ll`); `Some(true)`: with delta updates.
    pub ll_skip: Option<bool>,
    /// Also follow the variant's audio rendition.
    pub audio: bool,
}

#[derive(Debug, Default)]
pub struct ViewerResult {
    pub stats: Stats,
    pub segments: u64,
    pub switches: u64,
    pub skipped_segments: u64,
    pub ended_by_endlist: bool,
    pub beacons_sent: u64,
    pub beacons_failed: u64,
    /// Low-latency mode: one entry per followed track (stats moved out).
    pub ll: Vec<TrackResult>,
}

impl ViewerResult {
    /// Adds another track's counts (a viewer's audio next to its video).
    fn merge(&mut self, o: ViewerResult) {
        self.stats.merge(o.stats);
        self.segments += o.segments;
        self.switches += o.switches;
        self.skipped_segments += o.skipped_segments;
        self.ended_by_endlist |= o.ended_by_endlist;
        self.beacons_sent += o.beacons_sent;
        self.beacons_failed += o.beacons_failed;
        self.ll.extend(o.ll);
    }

    /// POSTs one beacon and counts it (a request cut by the end of the run
    /// is neither sent nor failed).
    async fn beacon(&mut self, http: &Http, url: &Url, body: &Value) {
        if Instant::now() >= http.deadline {
            return;
        }
        let aborted = self.stats.aborted_at_deadline;
        if http
            .request(&mut self.stats, "beacon", url, Some(body))
            .await
            .is_some()
        {
            self.beacons_sent += 1;
        } else if self.stats.aborted_at_deadline == aborted {
            self.beacons_failed += 1;
        }
    }
}

/// A simulated CDN viewer: a signed session id from the server, `startup`
/// then a `heartbeat` every 2 s until the end of the run; no media fetched
/// from the origin.
pub async fn run_beacon_only(idx: usize, http: Arc<Http>, opts: Arc<ViewerOpts>) -> ViewerResult {
    let mut r = ViewerResult::default();
    let deadline = opts.deadline;
    ramp_delay(idx, &opts).await;
    let Some(stream_id) = opts.stream_id.as_deref() else {
        r.stats.error("beacon_url".into());
        return r;
    };
    let Some(mint) = beacon::sessions_url(&opts.master, stream_id) else {
        r.stats.error("beacon_url".into());
        return r;
    };
    // The session id (retried, like a player, until the end of the run).
    let session = loop {
        if Instant::now() >= deadline {
            return r;
        }
        if let Some(body) = http
            .request(&mut r.stats, "session", &mint, Some(&json!({})))
            .await
        {
            match beacon::session_id_from(&body) {
                Some(id) => break id,
                None => r.stats.error("session_parse".into()),
            }
        }
        sleep_bounded(RETRY_AFTER, deadline).await;
    };
    let Some(url) = beacon::events_url(&opts.master, &session) else {
        r.stats.error("beacon_url".into());
        return r;
    };
    let quality = Some(opts.quality.as_str());
    // No media is fetched, so there is no startup time to measure.
    r.beacon(&http, &url, &beacon::startup(stream_id, 0, quality))
        .await;
    let mut next = Instant::now() + HEARTBEAT_EVERY;
    while next < deadline {
        tokio::time::sleep_until(next).await;
        next += HEARTBEAT_EVERY;
        r.beacon(&http, &url, &beacon::heartbeat(stream_id, quality))
            .await;
        // A slow answer does not bunch heartbeats up afterwards.
        next = next.max(Instant::now());
    }
    r
}

/// Spreads the viewers' starts over `--ramp`.
async fn ramp_delay(idx: usize, opts: &ViewerOpts) {
    if opts.viewers > 0 && !opts.ramp.is_zero() {
        let delay = opts.ramp.mul_f64(idx as f64 / opts.viewers as f64);
        sleep_bounded(delay, opts.deadline).await;
    }
}

pub async fn run_viewer(idx: usize, http: Arc<Http>, opts: Arc<ViewerOpts>) -> ViewerResult {
    let mut r = ViewerResult::default();
    let deadline = opts.deadline;
    ramp_delay(idx, &opts).await;
    let started = Instant::now();

    // 1. Master playlist (retried until it parses or the run ends).
    let m = loop {
        if Instant::now() >= deadline {
            return r;
        }
        if let Some(body) = http.get(&mut r.stats, "master", &opts.master).await {
            match variants_of(&opts.master, &body) {
                Ok(m) => break m,
                Err(_) => r.stats.error("master_parse".into()),
            }
        }
        sleep_bounded(RETRY_AFTER, deadline).await;
    };
    let n = m.variants.len();
    let current = if opts.lowest { m.lowest } else { idx % n };
    let audio = m.audio[current].as_ref().filter(|_| opts.audio);

    // 2a. Low latency: each track on its own, ordinary HLS where none is offered.
    if let Some(skip) = opts.ll_skip {
        let tracks: Vec<&Url> = std::iter::once(&m.variants[current]).chain(audio).collect();
        let followed = futures::future::join_all(tracks.iter().map(|url| async {
            let t = crate::ll::viewer::follow(&http, url, skip).await;
            // No LL-HLS: the rest of the run the ordinary way.
            let plain = match t.not_ll {
                true => Some(
                    plain::follow(
                        &http,
                        &opts,
                        plain::Track {
                            variants: std::slice::from_ref(*url),
                            names: &[],
                            current: 0,
                            switcher: false,
                            beacon: None,
                            started,
                        },
                    )
                    .await,
                ),
                false => None,
            };
            (t, plain)
        }))
        .await;
        for (mut t, plain) in followed {
            r.stats.merge(std::mem::take(&mut t.stats));
            if let Some(p) = plain {
                r.stats.error("ll_not_offered".into());
                r.merge(p);
            }
            r.ll.push(t);
        }
        return r;
    }

    // 2b. Ordinary HLS: the variant (switching, with beacons) and its audio.
    let names: Vec<String> = m
        .variants
        .iter()
        .enumerate()
        .map(|(i, u)| beacon::quality_from(u).unwrap_or_else(|| format!("variant{i}")))
        .collect();
    // The server's signed id from the variant URLs; without one (the server
    // gave none) there is nothing to send beacons under.
    let session = m.variants.iter().find_map(session_from);
    let beacon_url = match (&opts.stream_id, opts.beacons, &session) {
        (Some(id), true, Some(session)) => {
            beacon::events_url(&opts.master, session).map(|u| (u, id.as_str()))
        }
        _ => None,
    };
    let video = plain::Track {
        variants: &m.variants,
        names: &names,
        current,
        switcher: idx < opts.switchers && n > 1,
        beacon: beacon_url.as_ref().map(|(u, id)| (u, *id)),
        started,
    };
    let audio = audio.map(|a| plain::Track {
        variants: std::slice::from_ref(a),
        names: &[],
        current: 0,
        switcher: false,
        beacon: None,
        started,
    });
    let (v, a) = tokio::join!(plain::follow(&http, &opts, video), async {
        match audio {
            Some(t) => Some(plain::follow(&http, &opts, t).await),
            None => None,
        }
    });
    r.merge(v);
    if let Some(a) = a {
        r.merge(a);
    }
    r
}

/// Runs all viewers; returns the summary JSON and the merged stats.
pub async fn run(opts: ViewerOpts) -> Result<(Value, Stats), String> {
    // Every request in flight keeps its connection for reuse, as a player
    // does (no connect per request): low latency has two per track, the
    // ordinary way one per track.
    let idle = if opts.ll_skip.is_some() {
        opts.viewers.saturating_mul(4).max(64)
    } else {
        opts.viewers.saturating_mul(2).max(64)
    };
    let http = Arc::new(Http::with_idle_connections(opts.deadline, idle)?);
    let opts = Arc::new(opts);
    let started = Instant::now();
    let tasks: Vec<_> = (0..opts.viewers)
        .map(|i| {
            if opts.beacon_only {
                tokio::spawn(run_beacon_only(i, http.clone(), opts.clone()))
            } else {
                tokio::spawn(run_viewer(i, http.clone(), opts.clone()))
            }
        })
        .collect();
    let mut stats = Stats::default();
    let mut segments = Vec::with_capacity(tasks.len());
    let (mut switches, mut skipped, mut ended, mut beacons, mut failed) = (0, 0, 0, 0, 0);
    let mut ll_viewers = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => {
                ll_viewers.push(r.ll);
                stats.merge(r.stats);
                segments.push(r.segments);
                switches += r.switches;
                skipped += r.skipped_segments;
                ended += u64::from(r.ended_by_endlist);
                beacons += r.beacons_sent;
                failed += r.beacons_failed;
            }
            Err(e) => {
                stats.error(format!(
                    "viewer_task_{}",
                    if e.is_panic() { "panic" } else { "cancelled" }
                ));
                segments.push(0);
                ll_viewers.push(Vec::new());
            }
        }
    }
    let ll = match opts.ll_skip {
        Some(skip) => {
            let tracks: Vec<Vec<&TrackResult>> =
                ll_viewers.iter().map(|v| v.iter().collect()).collect();
            let all: Vec<&TrackResult> = tracks.iter().flatten().copied().collect();
            let finals = crate::ll::summary::server_newest(&all, &mut stats).await?;
            Some(crate::ll::summary::summary(&tracks, &finals, skip))
        }
        None => None,
    };
    let mut j = stats.to_json();
    j["mode"] = json!(if opts.beacon_only {
        "beacon_only"
    } else {
        "viewers"
    });
    j["target"] = json!(opts.master.as_str());
    j["elapsed_s"] = json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    j["viewers"] = json!({
        "count": opts.viewers,
        "switchers": opts.switchers.min(opts.viewers),
        "switches": switches,
        "segments_per_viewer": segments,
        "min_segments": segments.iter().min().copied().unwrap_or(0),
        "max_segments": segments.iter().max().copied().unwrap_or(0),
        "skipped_segments": skipped,
        "ended_by_endlist": ended,
        "beacons_sent": beacons,
        "beacons_failed": failed,
    });
    if opts.beacon_only {
        j["viewers"]["quality"] = json!(opts.quality);
    }
    j["viewers"]["audio"] = json!(opts.audio);
    if let Some(ll) = ll {
        j["mode"] = json!("ll_viewers");
        j["ll"] = ll;
    }
    Ok((j, stats))
}
