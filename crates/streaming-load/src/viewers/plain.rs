//! A viewer of one track the ordinary way (RFC 8216 §6.3.4): the media
//! playlist reloaded about once per target duration, the init and every new
//! segment fetched once, starting 3 segments behind the live edge; optional
//! quality switches and beacons.

use std::collections::HashSet;
use std::time::Duration;

use m3u8_rs::Playlist;
use reqwest::Url;
use tokio::time::Instant;

use super::{ViewerOpts, ViewerResult};
use crate::beacon;
use crate::http::{Http, RETRY_AFTER, sleep_bounded};

/// Segments behind the live edge a viewer starts with (like a player).
const START_SEGMENTS: usize = 3;
/// Heartbeats at least this often (the server ends a session after 3 × the
/// target duration, 6 s by default, without traffic).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// One followed track: a video variant (switching among `variants` when a
/// switcher) or an audio rendition.
pub struct Track<'a> {
    pub variants: &'a [Url],
    /// Rendition names for beacons, by variant.
    pub names: &'a [String],
    pub current: usize,
    pub switcher: bool,
    /// Where beacons go and the stream id they name.
    pub beacon: Option<(&'a Url, &'a str)>,
    /// When the viewer started (for the `startup` beacon).
    pub started: Instant,
}

/// Follows `t` until the end of the run or `EXT-X-ENDLIST`.
pub async fn follow(http: &Http, opts: &ViewerOpts, t: Track<'_>) -> ViewerResult {
    let mut r = ViewerResult::default();
    let deadline = opts.deadline;
    let Track {
        variants,
        names,
        mut current,
        switcher,
        beacon: beacon_url,
        started,
    } = t;
    let n = variants.len();
    let mut next_switch = Instant::now() + opts.switch_every;
    let mut next_seq: Option<u64> = None;
    let mut inits_fetched: HashSet<Url> = HashSet::new();
    let mut next_beacon = Instant::now();
    let mut startup_sent = false;
    let mut first_segment = false;

    // 2. Poll the media playlist; fetch init + every new segment once.
    while Instant::now() < deadline {
        let poll_start = Instant::now();
        if switcher && poll_start >= next_switch {
            current = (current + 1) % n;
            r.switches += 1;
            next_switch += opts.switch_every;
            if let Some((b, id)) = beacon_url {
                r.beacon(http, b, &beacon::quality_change(id, &names[current]))
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
                        if !first_segment {
                            // Startup: the viewer's first request (its master
                            // playlist) to this track's first whole segment.
                            first_segment = true;
                            r.stats
                                .timing("startup", started.elapsed().as_secs_f64() * 1000.0);
                        }
                        if !startup_sent && let Some((b, id)) = beacon_url {
                            startup_sent = true;
                            let ms = started.elapsed().as_millis() as u64;
                            let body = beacon::startup(id, ms, Some(&names[current]));
                            r.beacon(http, b, &body).await;
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
            && let Some((b, id)) = beacon_url
        {
            let body = beacon::heartbeat(id, Some(&names[current]));
            r.beacon(http, b, &body).await;
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
