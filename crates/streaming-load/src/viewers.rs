//! Simulated HLS viewers: master → variant → media playlist polled about once
//! per target duration → init + every new segment once, optional quality
//! switches and player beacons (`startup`, `heartbeat`, `quality_change`).
//! In beacon-only mode a viewer fetches no media: it asks the server for a
//! signed session id (`POST /api/v1/streams/{id}/sessions`) and only sends
//! beacons under it, like a player whose media comes from a CDN.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use m3u8_rs::Playlist;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::beacon;
use crate::stats::Stats;
use crate::target::check_loopback_url;

/// Longest a single request may take (it is also cut at the end of the run).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after a failed master or playlist request.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Segments behind the live edge a viewer starts with (like a player).
const START_SEGMENTS: usize = 3;
/// Heartbeats at least this often (the server ends a session after 3 × the
/// target duration, 6 s by default, without traffic).
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
}

impl ViewerResult {
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

/// An HTTP client bound to loopback targets and to the end of the run.
pub struct Http {
    client: reqwest::Client,
    deadline: Instant,
}

impl Http {
    pub fn new(deadline: Instant) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // Never through a proxy, never follow a redirect: every request goes
            // to the (loopback-checked) address it names.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client, deadline })
    }

    /// GET (or POST `body` as JSON) `url`; records the outcome under `kind`.
    async fn request(
        &self,
        stats: &mut Stats,
        kind: &'static str,
        url: &Url,
        post: Option<&Value>,
    ) -> Option<Bytes> {
        if check_loopback_url(url).is_err() {
            stats.failed(kind, "non_loopback_refused");
            return None;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return None;
        }
        let limit = (self.deadline - now).min(REQUEST_TIMEOUT);
        let req = match post {
            None => self.client.get(url.clone()),
            Some(v) => self
                .client
                .post(url.clone())
                .header("content-type", "application/json")
                .body(v.to_string()),
        };
        let started = Instant::now();
        let res = tokio::time::timeout(limit, async {
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        match res {
            Err(_) if Instant::now() >= self.deadline => {
                stats.aborted_at_deadline += 1;
                None
            }
            Err(_) => {
                stats.failed(kind, "timeout");
                None
            }
            Ok(Err(e)) => {
                let what = if e.is_connect() {
                    "connect"
                } else if e.is_timeout() {
                    "timeout"
                } else if e.is_body() || e.is_decode() {
                    "body"
                } else {
                    "transport"
                };
                stats.failed(kind, what);
                None
            }
            Ok(Ok((status, _))) if !status.is_success() => {
                stats.failed(kind, &format!("http_{}", status.as_u16()));
                None
            }
            Ok(Ok((_, body))) => {
                stats.ok(kind, body.len() as u64, started.elapsed());
                Some(body)
            }
        }
    }

    pub async fn get(&self, stats: &mut Stats, kind: &'static str, url: &Url) -> Option<Bytes> {
        self.request(stats, kind, url, None).await
    }
}

/// Sleeps `d`, but not past the end of the run.
async fn sleep_bounded(d: Duration, deadline: Instant) {
    tokio::time::sleep_until((Instant::now() + d).min(deadline)).await;
}

/// The session id a server carries in child URLs (`?session=`, `?sid=` or
/// `?session_id=`), if any.
fn session_from(url: &Url) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == "session" || k == "sid" || k == "session_id")
        .map(|(_, v)| v.into_owned())
}

/// Variant playlist URLs of a master (I-frame variants left out), and the
/// index of the lowest-bandwidth one.
pub fn variants_of(master_url: &Url, body: &[u8]) -> Result<(Vec<Url>, usize), String> {
    match m3u8_rs::parse_playlist_res(body) {
        Ok(Playlist::MasterPlaylist(m)) => {
            let mut out = Vec::new();
            let mut lowest = (u64::MAX, 0);
            for v in m.variants.iter().filter(|v| !v.is_i_frame) {
                let u = master_url
                    .join(&v.uri)
                    .map_err(|e| format!("variant URI `{}`: {e}", v.uri))?;
                if v.bandwidth < lowest.0 {
                    lowest = (v.bandwidth, out.len());
                }
                out.push(u);
            }
            if out.is_empty() {
                return Err("master playlist lists no variant".into());
            }
            Ok((out, lowest.1))
        }
        // A media playlist given directly: one "variant", itself.
        Ok(Playlist::MediaPlaylist(_)) => Ok((vec![master_url.clone()], 0)),
        Err(e) => Err(format!("not a playlist: {e}")),
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
    let (variants, lowest) = loop {
        if Instant::now() >= deadline {
            return r;
        }
        if let Some(body) = http.get(&mut r.stats, "master", &opts.master).await {
            match variants_of(&opts.master, &body) {
                Ok(v) => break v,
                Err(_) => r.stats.error("master_parse".into()),
            }
        }
        sleep_bounded(RETRY_AFTER, deadline).await;
    };
    let n = variants.len();
    let names: Vec<String> = variants
        .iter()
        .enumerate()
        .map(|(i, u)| beacon::quality_from(u).unwrap_or_else(|| format!("variant{i}")))
        .collect();
    let mut current = if opts.lowest { lowest } else { idx % n };
    let switcher = idx < opts.switchers && n > 1;
    let mut next_switch = Instant::now() + opts.switch_every;
    let mut next_seq: Option<u64> = None;
    let mut inits_fetched: HashSet<Url> = HashSet::new();
    // The server's signed id from the variant URLs; without one (the server
    // gave none) there is nothing to send beacons under.
    let session = variants.iter().find_map(session_from);
    let beacon_url = match (&opts.stream_id, opts.beacons, &session) {
        (Some(id), true, Some(session)) => {
            beacon::events_url(&opts.master, session).map(|u| (u, id.as_str()))
        }
        _ => None,
    };
    let mut next_beacon = Instant::now();
    let mut startup_sent = false;

    // 2. Poll the media playlist; fetch init + every new segment once.
    while Instant::now() < deadline {
        let poll_start = Instant::now();
        if switcher && poll_start >= next_switch {
            current = (current + 1) % n;
            r.switches += 1;
            next_switch += opts.switch_every;
            if let Some((b, id)) = &beacon_url {
                r.beacon(&http, b, &beacon::quality_change(id, &names[current]))
                    .await;
            }
        }
        let url = &variants[current];
        let Some(body) = http.get(&mut r.stats, "playlist", url).await else {
            sleep_bounded(RETRY_AFTER, deadline).await;
            continue;
        };
        let pl = match m3u8_rs::parse_playlist_res(&body) {
            Ok(Playlist::MediaPlaylist(p)) => p,
            _ => {
                r.stats.error("playlist_parse".into());
                sleep_bounded(RETRY_AFTER, deadline).await;
                continue;
            }
        };
        let target = Duration::from_secs(pl.target_duration.max(1));
        let first_seq = pl.media_sequence;
        let count = pl.segments.len() as u64;
        let start_seq = match next_seq {
            Some(s) if s < first_seq => {
                r.skipped_segments += first_seq - s;
                first_seq
            }
            Some(s) => s,
            None => first_seq + count.saturating_sub(START_SEGMENTS as u64),
        };
        let mut new = 0;
        let mut map: Option<&str> = None;
        for (i, seg) in pl.segments.iter().enumerate() {
            if let Some(m) = &seg.map {
                map = Some(&m.uri);
            }
            let seq = first_seq + i as u64;
            if seq < start_seq || Instant::now() >= deadline {
                continue;
            }
            if let Some(m) = map {
                match url.join(m) {
                    Ok(init) if !inits_fetched.contains(&init) => {
                        if http.get(&mut r.stats, "init", &init).await.is_some() {
                            inits_fetched.insert(init);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => r.stats.error("init_bad_uri".into()),
                }
            }
            match url.join(&seg.uri) {
                Ok(u) => {
                    if http.get(&mut r.stats, "segment", &u).await.is_some() {
                        r.segments += 1;
                        if !startup_sent && let Some((b, id)) = &beacon_url {
                            startup_sent = true;
                            let ms = started.elapsed().as_millis() as u64;
                            let body = beacon::startup(id, ms, Some(&names[current]));
                            r.beacon(&http, b, &body).await;
                        }
                    }
                }
                Err(_) => r.stats.error("segment_bad_uri".into()),
            }
            new += 1;
            next_seq = Some(seq + 1);
        }
        if next_seq.is_none() && count == 0 {
            // Nothing listed yet: keep the live-edge start for later.
        } else if next_seq.is_none() {
            next_seq = Some(first_seq + count);
        }

        if Instant::now() >= next_beacon
            && let Some((b, id)) = &beacon_url
        {
            let body = beacon::heartbeat(id, Some(&names[current]));
            r.beacon(&http, b, &body).await;
            next_beacon = Instant::now() + target.min(HEARTBEAT_EVERY);
        }

        if pl.end_list && next_seq.unwrap_or(0) >= first_seq + count {
            r.ended_by_endlist = true;
            break;
        }
        // About once per target duration; half of it when nothing was new.
        let wait = if new > 0 { target } else { target / 2 };
        let mut wake = poll_start + wait;
        if switcher {
            wake = wake.min(next_switch);
        }
        tokio::time::sleep_until(wake.min(deadline)).await;
    }
    r
}

/// Runs all viewers; returns the summary JSON and the merged stats.
pub async fn run(opts: ViewerOpts) -> Result<(Value, Stats), String> {
    let http = Arc::new(Http::new(opts.deadline)?);
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
    for t in tasks {
        match t.await {
            Ok(r) => {
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
            }
        }
    }
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
    Ok((j, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_resolve_and_lowest() {
        let master = Url::parse("http://127.0.0.1:8080/hls/abc/master.m3u8").unwrap();
        let body = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=640x360\nsource/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=426x240\n240p/index.m3u8?session=s1\n";
        let (v, lowest) = variants_of(&master, body).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].as_str(),
            "http://127.0.0.1:8080/hls/abc/source/index.m3u8"
        );
        assert_eq!(lowest, 1);
        assert_eq!(session_from(&v[1]).as_deref(), Some("s1"));
        assert!(variants_of(&master, b"garbage").is_err());
    }
}
