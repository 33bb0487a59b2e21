//! A low-latency viewer of one track, as hls.js does it in low-latency mode
//! (RFC 8216bis §6.2.5.2, §6.3.3): one plain playlist request, then a loop of
//! a blocking reload for the part after the newest listed one together with
//! a request for the hinted part (both held by the server until the part
//! exists); every new part fetched once, the init once, optional delta
//! updates (`_HLS_skip=YES`).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use tokio::time::Instant;

use super::next::{blocking_url, next_part, part_ref_from_uri, start_part, to_fetch};
use super::playlist::{LlPlaylist, PartRef, parse};
use crate::http::{Http, RETRY_AFTER, sleep_bounded};
use crate::stats::Stats;

/// What one track of one viewer did.
#[derive(Debug, Default)]
pub struct TrackResult {
    pub stats: Stats,
    /// The media playlist followed (as the master gave it, `?sid=` kept).
    pub url: Option<Url>,
    /// The newest part fetched.
    pub newest: Option<PartRef>,
    pub parts: u64,
    /// Playlists received (plain and blocking).
    pub playlists: u64,
    /// Of those, answers to blocking reloads …
    pub blocking: u64,
    /// … and delta updates (`EXT-X-SKIP`).
    pub delta: u64,
    /// The server offered no low-latency playlist (no blocking reload or
    /// no `EXT-X-PART-INF`); the caller follows it the ordinary way.
    pub not_ll: bool,
    pub ended_by_endlist: bool,
}

/// Reads a playlist body, counting a parse failure as `playlist_parse`.
fn read(stats: &mut Stats, body: &Bytes) -> Option<LlPlaylist> {
    let text = std::str::from_utf8(body).ok();
    match text.map(parse) {
        Some(Ok(pl)) => Some(pl),
        _ => {
            stats.error("playlist_parse".into());
            None
        }
    }
}

/// GETs `url` and notes when the answer was complete.
async fn timed_get(
    http: &Http,
    stats: &mut Stats,
    kind: &'static str,
    url: &Url,
) -> (Option<Bytes>, Instant) {
    let body = http.get(stats, kind, url).await;
    (body, Instant::now())
}

/// Follows the media playlist `url` until the end of the run.
pub async fn follow(http: &Http, url: &Url, skip: bool) -> TrackResult {
    let deadline = http.deadline;
    let mut r = TrackResult {
        url: Some(url.clone()),
        ..TrackResult::default()
    };
    let mut inits: HashSet<Url> = HashSet::new();
    let mut start: Option<PartRef> = None;
    // The playlist in hand; `None`: reload it plainly.
    let mut current: Option<LlPlaylist> = None;
    while Instant::now() < deadline {
        let pl = match current.take() {
            Some(pl) => pl,
            None => {
                let Some(body) = http.get(&mut r.stats, "playlist", url).await else {
                    sleep_bounded(RETRY_AFTER, deadline).await;
                    continue;
                };
                r.playlists += 1;
                let Some(pl) = read(&mut r.stats, &body) else {
                    sleep_bounded(RETRY_AFTER, deadline).await;
                    continue;
                };
                pl
            }
        };
        if !pl.is_low_latency() {
            r.not_ll = true;
            return r;
        }
        let from = *start.get_or_insert_with(|| start_part(&pl).unwrap_or(next_part(&pl)));

        // Every listed part not fetched yet, in order (a newly started viewer,
        // or one that fell behind, catches up here).
        for part in to_fetch(&pl, r.newest, from) {
            if Instant::now() >= deadline {
                return r;
            }
            init(http, &mut r.stats, &mut inits, url, pl.map_for(part.at)).await;
            match url.join(&part.uri) {
                Ok(u) => {
                    if http.get(&mut r.stats, "part", &u).await.is_some() {
                        r.parts += 1;
                    }
                }
                Err(_) => r.stats.error("part_bad_uri".into()),
            }
            // Tried once: a part gone from the server is not asked again.
            r.newest = Some(part.at);
        }
        if pl.end_list {
            r.ended_by_endlist = true;
            return r;
        }

        // The next part: a blocking reload for it, and the hinted part itself.
        let next = next_part(&pl);
        let hint = pl.preload_hint.as_ref().filter(|h| h.kind == "PART");
        let hinted = match hint {
            Some(h) => {
                let named = part_ref_from_uri(&h.uri);
                if named.is_some_and(|n| n != next) {
                    r.stats.error("ll_hint_not_next_part".into());
                }
                url.join(&h.uri).ok().map(|u| (u, named.unwrap_or(next)))
            }
            None => {
                r.stats.error("ll_no_preload_hint".into());
                None
            }
        };
        init(http, &mut r.stats, &mut inits, url, pl.map_for(next)).await;
        let delta = skip && pl.server_control.can_skip_until.is_some();
        let reload = blocking_url(url, next, delta);
        let mut part_stats = Stats::default();
        let ((body, playlist_at), held) = tokio::join!(
            timed_get(http, &mut r.stats, "playlist_blocking", &reload),
            async {
                match &hinted {
                    Some((u, _)) => Some(timed_get(http, &mut part_stats, "part_hinted", u).await),
                    None => None,
                }
            }
        );
        r.stats.merge(part_stats);
        if let (Some((Some(_), part_at)), Some((_, at))) = (held, &hinted) {
            r.parts += 1;
            r.newest = r.newest.max(Some(*at));
            if body.is_some() {
                let ms = if playlist_at >= part_at {
                    (playlist_at - part_at).as_secs_f64() * 1000.0
                } else {
                    -((part_at - playlist_at).as_secs_f64() * 1000.0)
                };
                r.stats.timing("playlist_after_part", ms);
            }
        }
        let Some(body) = body else {
            // Refused (400), timed out (503) or failed: back off a little,
            // then start again from a plain reload.
            let backoff = pl.part_target.map_or(RETRY_AFTER, Duration::from_secs_f64);
            sleep_bounded(backoff.min(RETRY_AFTER), deadline).await;
            continue;
        };
        r.playlists += 1;
        r.blocking += 1;
        if let Some(answer) = read(&mut r.stats, &body) {
            if answer.skipped_segments > 0 {
                r.delta += 1;
            }
            if answer.newest_part().is_none_or(|p| p.at < next) {
                r.stats.error("ll_blocking_answer_without_part".into());
            }
            current = Some(answer);
        }
    }
    r
}

/// Fetches the init section `map` (relative to `playlist`) once.
async fn init(
    http: &Http,
    stats: &mut Stats,
    fetched: &mut HashSet<Url>,
    playlist: &Url,
    map: Option<&str>,
) {
    let Some(map) = map else { return };
    match playlist.join(map) {
        Ok(u) if !fetched.contains(&u) => {
            if http.get(stats, "init", &u).await.is_some() {
                fetched.insert(u);
            }
        }
        Ok(_) => {}
        Err(_) => stats.error("init_bad_uri".into()),
    }
}
