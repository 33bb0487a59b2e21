//! Held blocking reloads (RFC 8216bis §6.2.5.2) measured: N requests for the
//! same next part, all sent as the part before it appears (found by single
//! blocking reloads until one is held), so the server holds them until the
//! part is produced; each answer is timed against the part's production and
//! against the first answer of its round. Requests sent after the part was
//! produced (a slow client) are counted, not held.
//!
//! The production time of a part is read from the playlist: its segment's
//! `EXT-X-PROGRAM-DATE-TIME` plus the durations of the parts up to its end
//! (this server dates media by the arrival of the stream's first segment, so
//! a part's end is the wall-clock time it could be cut; client and server
//! share the clock on 127.0.0.1).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::next::{blocking_url, next_part, part_ref_from_uri};
use super::playlist::{LlPlaylist, PartRef, parse};
use crate::http::{Http, RETRY_AFTER, sleep_bounded};
use crate::stats::{Stats, timing_json};
use crate::viewers::variants_of;

#[derive(Debug, Clone)]
pub struct HeldOpts {
    /// A master playlist (its first variant is used) or a media playlist.
    pub url: Url,
    /// Held requests per round.
    pub requests: usize,
    /// Measured rounds (one more, unmeasured, opens the connections).
    pub rounds: usize,
    pub deadline: Instant,
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn playlist(
    http: &Http,
    stats: &mut Stats,
    kind: &'static str,
    url: &Url,
) -> Option<LlPlaylist> {
    let body = http.get(stats, kind, url).await?;
    match std::str::from_utf8(&body).ok().map(parse) {
        Some(Ok(pl)) => Some(pl),
        _ => {
            stats.error(format!("{kind}_parse"));
            None
        }
    }
}

/// One answer of a round.
struct Answer {
    at: Instant,
    /// Wall clock (ms since the epoch) when the request started and ended.
    sent_ms: f64,
    answered_ms: f64,
    body: Bytes,
}

/// One round: `n` held requests for the part after the newest in `pl`.
async fn round(
    http: &Arc<Http>,
    media: &Url,
    pl: &LlPlaylist,
    n: usize,
    stats: &mut Stats,
) -> Vec<Answer> {
    let url = blocking_url(media, next_part(pl), false);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut s = Stats::default();
                let sent_ms = wall_ms();
                let body = http.get(&mut s, "playlist_held", &url).await;
                (s, body, sent_ms, Instant::now(), wall_ms())
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        let Ok((s, body, sent_ms, at, answered_ms)) = t.await else {
            stats.error("held_task_panic".into());
            continue;
        };
        stats.merge(s);
        if let Some(b) = body {
            out.push(Answer {
                at,
                sent_ms,
                answered_ms,
                body: b,
            });
        }
    }
    out
}

/// Whether an answer lists part `next`: an `EXT-X-PART` line with `needle`
/// (`URI="…"` of the hint that named it; cheap for a thousand answers), else
/// by reading the whole playlist.
fn lists_part(body: &[u8], next: PartRef, needle: Option<&str>) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    match needle {
        Some(n) => text
            .lines()
            .any(|l| l.starts_with("#EXT-X-PART:") && l.contains(n)),
        None => parse(text)
            .ok()
            .and_then(|p| p.newest_part().map(|p| p.at >= next))
            .unwrap_or(false),
    }
}

/// A blocking reload that waited at least this long was held: its answer
/// came as the part appeared.
const HELD_AT_LEAST: Duration = Duration::from_millis(25);

/// Blocking reloads, one at a time, until one is held: returns its answer,
/// given the moment a part appeared (the next has just started).
async fn sync(
    http: &Http,
    media: &Url,
    mut pl: LlPlaylist,
    stats: &mut Stats,
) -> Option<LlPlaylist> {
    for _ in 0..20 {
        let started = Instant::now();
        let url = blocking_url(media, next_part(&pl), false);
        pl = playlist(http, stats, "playlist_blocking", &url).await?;
        if started.elapsed() >= HELD_AT_LEAST {
            return Some(pl);
        }
    }
    None
}

pub async fn run(opts: HeldOpts) -> Result<(Value, Stats), String> {
    let http = Arc::new(Http::with_idle_connections(
        opts.deadline,
        opts.requests + 8,
    )?);
    let mut stats = Stats::default();
    let deadline = opts.deadline;
    let started = Instant::now();
    let body = http
        .get(&mut stats, "master", &opts.url)
        .await
        .ok_or_else(|| format!("cannot read `{}`: {:?}", opts.url, stats.errors))?;
    let master = variants_of(&opts.url, &body)?;
    let media = master.variants[0].clone();
    let mut pl = playlist(&http, &mut stats, "playlist", &media)
        .await
        .ok_or_else(|| format!("cannot read `{media}`: {:?}", stats.errors))?;
    if !pl.is_low_latency() {
        return Err(format!(
            "`{media}` is not a low-latency playlist (no blocking reload of parts)"
        ));
    }
    let (mut after_production, mut after_first) = (Vec::new(), Vec::new());
    let (mut answered, mut without_part, mut undated, mut late) = (0u64, 0u64, 0u64, 0u64);
    let mut measured = 0u64;
    // A first round, not measured, opens the connections.
    let _ = round(&http, &media, &pl, opts.requests, &mut stats).await;
    while measured < opts.rounds as u64 && Instant::now() < deadline {
        // Each round starts as a part appears, so that its requests are all
        // in place well before the next one.
        let Some(synced) = sync(&http, &media, pl.clone(), &mut stats).await else {
            stats.error("held_sync".into());
            sleep_bounded(RETRY_AFTER, deadline).await;
            if let Some(p) = playlist(&http, &mut stats, "playlist", &media).await {
                pl = p;
            }
            continue;
        };
        pl = synced;
        let next = next_part(&pl);
        let needle = pl
            .preload_hint
            .as_ref()
            .filter(|h| h.kind == "PART" && part_ref_from_uri(&h.uri).is_none_or(|r| r == next))
            .map(|h| format!("URI=\"{}\"", h.uri));
        let answers = round(&http, &media, &pl, opts.requests, &mut stats).await;
        // One answer read in full: the part's date, the next playlist.
        let answer = answers
            .first()
            .and_then(|a| std::str::from_utf8(&a.body).ok())
            .and_then(|t| parse(t).ok());
        if answer.is_none() && !answers.is_empty() {
            stats.error("playlist_held_parse".into());
        }
        let produced = answer.as_ref().and_then(|a| a.part_end_ms(next));
        let first = answers.iter().map(|a| a.at).min();
        measured += 1;
        for a in &answers {
            answered += 1;
            if let Some(first) = first {
                after_first.push((a.at - first).as_secs_f64() * 1000.0);
            }
            if !lists_part(&a.body, next, needle.as_deref()) {
                without_part += 1;
            }
            match produced {
                Some(p) => {
                    after_production.push(a.answered_ms - p as f64);
                    // Sent after the part was made: answered, not held.
                    late += u64::from(a.sent_ms > p as f64);
                }
                None => undated += 1,
            }
        }
        if let Some(a) = answer {
            pl = a;
        }
    }
    let mut j = stats.to_json();
    j["mode"] = json!("held");
    j["target"] = json!(media.as_str());
    j["elapsed_s"] = json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    j["held"] = json!({
        "requests_per_round": opts.requests,
        "rounds": measured,
        "sent": measured * opts.requests as u64,
        "answered": answered,
        "answers_without_part": without_part,
        "answers_undated": undated,
        "sent_after_production": late,
        "after_production_ms": timing_json(&after_production),
        "after_first_answer_ms": timing_json(&after_first),
    });
    Ok((j, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ll::samples::SERVER;

    #[test]
    fn an_answer_lists_the_part_only_in_an_ext_x_part_line() {
        let body = SERVER.as_bytes();
        let (listed, hinted) = (PartRef { msn: 23, index: 1 }, PartRef { msn: 23, index: 2 });
        let needle = |p: &PartRef| format!("URI=\"segment-{}.{}.m4s?sid=v1\"", p.msn, p.index);
        assert!(lists_part(body, listed, Some(&needle(&listed))));
        // 23.2 is only named by the preload hint: not listed yet.
        assert!(!lists_part(body, hinted, Some(&needle(&hinted))));
        // Without a hint to search for, the playlist is read.
        assert!(lists_part(body, listed, None));
        assert!(!lists_part(body, hinted, None));
        assert!(!lists_part(b"\xff\xfe", listed, None));
    }
}
