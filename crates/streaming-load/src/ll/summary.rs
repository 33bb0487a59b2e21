//! The `ll` object of a low-latency run's summary: parts and playlists
//! fetched, and whether each viewer kept up with the server's newest part
//! (read from one last plain playlist request per followed playlist).

use std::collections::BTreeMap;

use reqwest::Url;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::next::{behind_secs, keeps_up};
use super::playlist::{LlPlaylist, parse};
use super::viewer::TrackResult;
use crate::http::{Http, REQUEST_TIMEOUT};
use crate::stats::{Stats, latency_json};

/// The playlist a track followed without its query (per-viewer `sid`), so
/// that one request per rendition tells the server's newest part.
fn playlist_key(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// Each followed playlist once, plainly, right after the run (with the
/// query of the first viewer that followed it, as a server may want its `sid`).
pub async fn server_newest(
    tracks: &[&TrackResult],
    stats: &mut Stats,
) -> Result<BTreeMap<Url, LlPlaylist>, String> {
    let http = Http::new(Instant::now() + REQUEST_TIMEOUT)?;
    let mut out = BTreeMap::new();
    for t in tracks {
        let Some(url) = t.url.as_ref() else {
            continue;
        };
        let key = playlist_key(url);
        if out.contains_key(&key) {
            continue;
        }
        let body = http.get(stats, "playlist_final", url).await;
        match body.as_deref().map(std::str::from_utf8) {
            Some(Ok(text)) => match parse(text) {
                Ok(pl) => {
                    out.insert(key, pl);
                }
                Err(_) => stats.error("playlist_final_parse".into()),
            },
            Some(Err(_)) => stats.error("playlist_final_parse".into()),
            None => {}
        }
    }
    Ok(out)
}

/// Seconds of media a track's newest part is behind the server's newest
/// (`None`: not known, or further back than the playlist lists parts).
fn behind(t: &TrackResult, finals: &BTreeMap<Url, LlPlaylist>) -> Option<(f64, f64)> {
    let pl = finals.get(&playlist_key(t.url.as_ref()?))?;
    let b = behind_secs(pl, t.newest?)?;
    Some((b, pl.part_target?))
}

/// The `ll` summary object; `viewers[i]` are viewer i's tracks.
pub fn summary(
    viewers: &[Vec<&TrackResult>],
    finals: &BTreeMap<Url, LlPlaylist>,
    skip: bool,
) -> Value {
    let mut behind_all = Vec::new();
    let mut unknown = 0u64;
    let mut keeping_up = 0u64;
    let mut parts = Vec::with_capacity(viewers.len());
    let (mut playlists, mut blocking, mut delta, mut not_ll) = (0u64, 0u64, 0u64, 0u64);
    for tracks in viewers {
        let mut all = !tracks.is_empty();
        for t in tracks {
            playlists += t.playlists;
            blocking += t.blocking;
            delta += t.delta;
            not_ll += u64::from(t.not_ll);
            match behind(t, finals) {
                Some((b, target)) => {
                    behind_all.push(b);
                    all &= keeps_up(Some(b), target);
                }
                None => {
                    unknown += 1;
                    all = false;
                }
            }
        }
        keeping_up += u64::from(all);
        parts.push(tracks.iter().map(|t| t.parts).sum::<u64>());
    }
    let newest: BTreeMap<String, String> = finals
        .iter()
        .filter_map(|(u, pl)| Some((u.path().to_owned(), pl.newest_part()?.at.to_string())))
        .collect();
    json!({
        "skip_requested": skip,
        "parts_fetched": parts.iter().sum::<u64>(),
        "parts_per_viewer_min": parts.iter().min().copied().unwrap_or(0),
        "parts_per_viewer_max": parts.iter().max().copied().unwrap_or(0),
        "playlists_fetched": playlists,
        "blocking_playlists": blocking,
        "delta_playlists": delta,
        "tracks_not_low_latency": not_ll,
        "keeping_up": keeping_up,
        "not_keeping_up": viewers.len() as u64 - keeping_up,
        "behind_s": latency_json(&behind_all),
        "behind_unknown_tracks": unknown,
        "server_newest_part": newest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ll::playlist::PartRef;
    use crate::ll::samples::SERVER;

    fn track(url: &str, newest: Option<(u64, u32)>, parts: u64) -> TrackResult {
        TrackResult {
            url: Some(Url::parse(url).unwrap()),
            newest: newest.map(|(msn, index)| PartRef { msn, index }),
            parts,
            playlists: 3,
            blocking: 2,
            ..TrackResult::default()
        }
    }

    #[test]
    fn viewers_keep_up_within_two_parts_of_the_server() {
        let base = "http://127.0.0.1:9/hls/s/source/index.m3u8";
        let finals = BTreeMap::from([(Url::parse(base).unwrap(), parse(SERVER).unwrap())]);
        // The server's newest is 23.1 with 0.5 s parts.
        let on_time = track(&format!("{base}?sid=a"), Some((23, 0)), 10);
        let late = track(&format!("{base}?sid=b"), Some((22, 1)), 4);
        let lost = track(&format!("{base}?sid=c"), Some((19, 0)), 1);
        let nothing = track(&format!("{base}?sid=d"), None, 0);
        let other = track("http://127.0.0.1:9/hls/s/240p/index.m3u8", Some((23, 1)), 5);
        let viewers = vec![
            vec![&on_time],
            vec![&late],
            vec![&lost],
            vec![&nothing],
            vec![&on_time, &other],
        ];
        let j = summary(&viewers, &finals, true);
        assert_eq!(j["keeping_up"], 1, "{j}");
        assert_eq!(j["not_keeping_up"], 4);
        assert_eq!(
            j["behind_unknown_tracks"], 3,
            "lost, nothing, unfetched 240p"
        );
        assert_eq!(j["behind_s"]["count"], 3);
        assert_eq!(j["behind_s"]["max"], 2.0);
        assert_eq!(j["parts_fetched"], 30);
        assert_eq!(j["parts_per_viewer_max"], 15);
        assert_eq!(j["blocking_playlists"], 12);
        assert_eq!(j["server_newest_part"]["/hls/s/source/index.m3u8"], "23.1");
        assert_eq!(j["skip_requested"], true);
    }
}
