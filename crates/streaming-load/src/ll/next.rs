//! What a low-latency client asks for next (RFC 8216bis §6.2.5.2 blocking
//! playlist reload, §6.2.5.1 delta updates, §6.3.3 where playback starts),
//! as pure functions of a playlist.

use reqwest::Url;

use super::playlist::{LlPlaylist, Part, PartRef};

/// The part after the newest listed one: the next part of the segment in
/// progress (index 0 of it when none of its parts is listed yet). This is
/// what `EXT-X-PRELOAD-HINT` names and what `_HLS_msn`/`_HLS_part` ask for.
pub fn next_part(pl: &LlPlaylist) -> PartRef {
    PartRef {
        msn: pl.open_msn(),
        index: pl.open.len() as u32,
    }
}

/// The part a URI names when it follows the `…{msn}.{part}.{ext}` pattern
/// (`segment-12.3.m4s`); `None` for other naming schemes.
pub fn part_ref_from_uri(uri: &str) -> Option<PartRef> {
    let path = uri.split(['?', '#']).next()?;
    let file = path.rsplit('/').next()?;
    let (stem, _ext) = file.rsplit_once('.')?;
    let (head, part) = stem.rsplit_once('.')?;
    let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let msn = &head[head.len() - digits..];
    if msn.is_empty() || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(PartRef {
        msn: msn.parse().ok()?,
        index: part.parse().ok()?,
    })
}

/// The blocking reload URL for part `next`: the playlist URL with its own
/// query (`?sid=…`) kept and `_HLS_msn`, `_HLS_part` (and `_HLS_skip=YES`
/// for a delta update) added in that order.
pub fn blocking_url(playlist: &Url, next: PartRef, skip: bool) -> Url {
    let mut u = playlist.clone();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("_HLS_msn", &next.msn.to_string());
        q.append_pair("_HLS_part", &next.index.to_string());
        if skip {
            q.append_pair("_HLS_skip", "YES");
        }
    }
    u
}

/// Where playback starts: the part `PART-HOLD-BACK` back from the newest
/// listed one, moved back to the nearest independent part at or before it
/// (a decoder starts there); `None` when no part is listed.
pub fn start_part(pl: &LlPlaylist) -> Option<PartRef> {
    let parts: Vec<&Part> = pl.parts().collect();
    let hold = pl.part_hold_back()?;
    let mut i = parts.len().checked_sub(1)?;
    let mut acc = parts[i].duration;
    while acc + 1e-9 < hold && i > 0 {
        i -= 1;
        acc += parts[i].duration;
    }
    let start = (0..=i).rev().find(|&j| parts[j].independent).unwrap_or(i);
    Some(parts[start].at)
}

/// The listed parts still to fetch: newer than `fetched` and not before `from`.
pub fn to_fetch(pl: &LlPlaylist, fetched: Option<PartRef>, from: PartRef) -> Vec<&Part> {
    pl.parts()
        .filter(|p| p.at >= from && fetched.is_none_or(|f| p.at > f))
        .collect()
}

/// How far (in seconds of media) part `newest` is behind the newest part of
/// `pl`; `None` when `newest` is older than every listed part (further
/// behind than the playlist shows parts for).
pub fn behind_secs(pl: &LlPlaylist, newest: PartRef) -> Option<f64> {
    if pl.parts().next().is_none_or(|first| newest < first.at) {
        return None;
    }
    // (A fold from +0.0: an empty f64 sum is -0.0.)
    Some(
        pl.parts()
            .filter(|p| p.at > newest)
            .fold(0.0, |acc, p| acc + p.duration),
    )
}

/// A viewer keeps up when its newest part is within two part durations
/// (`PART-TARGET`) of the server's newest.
pub fn keeps_up(behind: Option<f64>, part_target: f64) -> bool {
    behind.is_some_and(|b| b <= 2.0 * part_target + 1e-3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ll::playlist::parse;
    use crate::ll::samples::{DELTA, RFC_STYLE, SERVER};

    fn at(msn: u64, index: u32) -> PartRef {
        PartRef { msn, index }
    }

    #[test]
    fn next_request_is_the_hinted_part() {
        let pl = parse(SERVER).unwrap();
        let next = next_part(&pl);
        assert_eq!(next, at(23, 2));
        let hint = part_ref_from_uri(&pl.preload_hint.unwrap().uri);
        assert_eq!(hint, Some(next));
    }

    #[test]
    fn blocking_url_keeps_the_session_query() {
        let base = Url::parse("http://127.0.0.1:8080/hls/s/source/index.m3u8?sid=v1").unwrap();
        assert_eq!(
            blocking_url(&base, at(23, 2), false).as_str(),
            "http://127.0.0.1:8080/hls/s/source/index.m3u8?sid=v1&_HLS_msn=23&_HLS_part=2"
        );
        assert_eq!(
            blocking_url(&base, at(24, 0), true).as_str(),
            "http://127.0.0.1:8080/hls/s/source/index.m3u8?sid=v1&_HLS_msn=24&_HLS_part=0&_HLS_skip=YES"
        );
        let bare = Url::parse("http://127.0.0.1:8080/hls/s/source/index.m3u8").unwrap();
        assert_eq!(
            blocking_url(&bare, at(7, 1), false).query(),
            Some("_HLS_msn=7&_HLS_part=1")
        );
        // Part URIs resolve against it as against the plain playlist URL.
        let u = blocking_url(&base, at(23, 2), false);
        assert_eq!(
            u.join("segment-23.2.m4s?sid=v1").unwrap().as_str(),
            "http://127.0.0.1:8080/hls/s/source/segment-23.2.m4s?sid=v1"
        );
    }

    #[test]
    fn part_names_following_the_pattern() {
        assert_eq!(part_ref_from_uri("segment-12.3.m4s"), Some(at(12, 3)));
        assert_eq!(
            part_ref_from_uri("/hls/x/source/segment-120.0.m4s?sid=a.b.c"),
            Some(at(120, 0))
        );
        assert_eq!(part_ref_from_uri("segment-12.m4s"), None);
        assert_eq!(part_ref_from_uri("segment-.3.m4s"), None);
        assert_eq!(part_ref_from_uri("filePart272.d.mp4"), None);
        assert_eq!(
            part_ref_from_uri("segment-99999999999999999999999.1.m4s"),
            None
        );
    }

    #[test]
    fn start_is_part_hold_back_behind_at_an_independent_part() {
        // Server shape: 1.5 s back from 23.1 is 22.3 (3 parts), not
        // independent; the nearest independent part before it is 22.0.
        let pl = parse(SERVER).unwrap();
        assert_eq!(start_part(&pl), Some(at(22, 0)));
        // RFC style: 1.0 s is three 1/3 s parts back from 272.2: 272.0; no
        // part of 272 is flagged, so back to the independent 271.8.
        let pl = parse(RFC_STYLE).unwrap();
        assert_eq!(start_part(&pl), Some(at(271, 8)));
        // Nothing flagged at all: the part PART-HOLD-BACK back.
        let unflagged = SERVER.replace(",INDEPENDENT=YES", "");
        assert_eq!(start_part(&parse(&unflagged).unwrap()), Some(at(22, 3)));
    }

    #[test]
    fn parts_are_fetched_once_from_the_start_on() {
        let pl = parse(SERVER).unwrap();
        let refs = |v: Vec<&crate::ll::playlist::Part>| v.iter().map(|p| p.at).collect::<Vec<_>>();
        assert_eq!(
            refs(to_fetch(&pl, None, at(22, 0))),
            [
                at(22, 0),
                at(22, 1),
                at(22, 2),
                at(22, 3),
                at(23, 0),
                at(23, 1)
            ]
        );
        assert_eq!(
            refs(to_fetch(&pl, Some(at(22, 3)), at(22, 0))),
            [at(23, 0), at(23, 1)]
        );
        assert!(to_fetch(&pl, Some(at(23, 1)), at(22, 0)).is_empty());
        // The delta update one part later lists 23.2 and 23.3 as new.
        let delta = parse(DELTA).unwrap();
        assert_eq!(
            refs(to_fetch(&delta, Some(at(23, 1)), at(22, 0))),
            [at(23, 2), at(23, 3)]
        );
    }

    #[test]
    fn keeping_up_is_two_part_durations_from_the_newest() {
        let pl = parse(SERVER).unwrap();
        assert_eq!(behind_secs(&pl, at(23, 1)), Some(0.0));
        assert!(
            behind_secs(&pl, at(23, 1)).unwrap().is_sign_positive(),
            "+0, not -0"
        );
        assert_eq!(behind_secs(&pl, at(22, 3)), Some(1.0));
        assert_eq!(behind_secs(&pl, at(22, 2)), Some(1.5));
        assert_eq!(behind_secs(&pl, at(30, 0)), Some(0.0));
        assert_eq!(
            behind_secs(&pl, at(20, 3)),
            None,
            "older than any listed part"
        );
        assert!(keeps_up(behind_secs(&pl, at(22, 3)), 0.5));
        assert!(!keeps_up(behind_secs(&pl, at(22, 2)), 0.5));
        assert!(!keeps_up(None, 0.5));
    }
}
