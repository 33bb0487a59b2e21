//! The Media Playlist (RFC 8216bis §4.4.3–§4.4.5), with the Low-Latency tags
//! of [`super::ll`] when [`MediaPlaylist::low_latency`] is set.
//!
//! Line order: the header (`EXT-X-VERSION`, `EXT-X-TARGETDURATION`,
//! `EXT-X-SERVER-CONTROL`, `EXT-X-PART-INF`, `EXT-X-MEDIA-SEQUENCE`,
//! `EXT-X-DISCONTINUITY-SEQUENCE`, `EXT-X-INDEPENDENT-SEGMENTS`, `EXT-X-SKIP`),
//! then per segment its `EXT-X-DISCONTINUITY`, `EXT-X-MAP`,
//! `EXT-X-PROGRAM-DATE-TIME`, `EXT-X-PART`s, `EXTINF`, `EXT-X-GAP` and URI
//! (tags that apply to a parent segment precede its first part, §4.4.4.9),
//! then the open segment's parts, the preload hint, `EXT-X-ENDLIST` and the
//! rendition reports.

use std::fmt::Write as _;

use super::ll::{self, LowLatency, Skip, Written};
use super::{PartEntry, duration_ms, quoted, uri_line};
use crate::timefmt::rfc3339_millis;

/// One media segment of a Media Playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaSegment {
    /// Media sequence number of this segment (informative for the writer:
    /// the playlist's numbering comes from [`MediaPlaylist::media_sequence`]).
    pub number: u64,
    /// `EXTINF` duration, written with three decimals.
    pub duration_secs: f64,
    /// URI of the segment.
    pub uri: String,
    /// URI of the initialization section. `EXT-X-MAP` is written before the
    /// first segment, whenever this changes, and after every discontinuity.
    pub map_uri: String,
    /// Writes `EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
    /// Wall-clock time of the segment's first sample, Unix milliseconds.
    /// Written as `EXT-X-PROGRAM-DATE-TIME` on the first segment and after
    /// each discontinuity (players extrapolate the others from `EXTINF`).
    pub program_date_time_ms: Option<i64>,
    /// Writes `EXT-X-GAP`: the segment is missing in this rendition (say, its
    /// transcoder restarted) but keeps its number so renditions stay aligned.
    pub gap: bool,
    /// Its parts, written as `EXT-X-PART` lines before its `EXTINF` (only
    /// with [`MediaPlaylist::low_latency`]). The caller passes parts only for
    /// the recent segments it wants listed (§4.4.4.9: within three target
    /// durations of the end).
    pub parts: Vec<PartEntry>,
}

/// A Media Playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION`. The writer uses the larger of this and the
    /// ceiling of the longest listed `EXTINF` (as written, to the millisecond),
    /// and at least 1.
    pub target_duration_secs: u32,
    /// `EXT-X-MEDIA-SEQUENCE`: the number of the first listed segment.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`, written when non-zero.
    pub discontinuity_sequence: u64,
    /// The complete segments, oldest first.
    pub segments: Vec<MediaSegment>,
    /// Writes `EXT-X-ENDLIST`: no segment will be added.
    pub ended: bool,
    /// Writes `EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
    /// Low-Latency HLS; `None` writes none of its tags (and no parts).
    pub low_latency: Option<LowLatency>,
    /// A Playlist Delta Update (§6.2.5.1): the oldest segments that end more
    /// than `CAN-SKIP-UNTIL` before the end of the last (parent) segment —
    /// the open segment's parts included — are replaced by one `EXT-X-SKIP`.
    /// `EXT-X-MEDIA-SEQUENCE` and `EXT-X-DISCONTINUITY-SEQUENCE` stay those of
    /// the full playlist, and the first segment written gets its `EXT-X-MAP`
    /// and date. Ignored without `CAN-SKIP-UNTIL` and in an ended playlist
    /// (§6.2.5.1); nothing is written when no segment is old enough.
    pub skip: Skip,
}

/// The target duration that [`write_media`] writes for `p`.
pub fn effective_target_duration(p: &MediaPlaylist) -> u64 {
    let longest_ms = p
        .segments
        .iter()
        .map(|s| duration_ms(s.duration_secs))
        .max()
        .unwrap_or(0);
    longest_ms
        .div_ceil(1000)
        .max(u64::from(p.target_duration_secs))
        .max(1)
}

/// Writes a Media Playlist.
pub fn write_media(p: &MediaPlaylist) -> String {
    let ll = p.low_latency.as_ref();
    let parts_len = ll.map_or(0, |l| {
        p.segments.iter().map(|s| s.parts.len()).sum::<usize>()
            + l.open_segment.as_ref().map_or(0, |o| o.parts.len())
            + l.rendition_reports.len()
    });
    let mut out = String::with_capacity(192 + 96 * p.segments.len() + 80 * parts_len);
    let target = effective_target_duration(p);
    let written = ll.map(|l| Written::new(l, &p.segments, target));
    let skipped = match (p.skip, written.and_then(|w| w.can_skip_until_ms)) {
        (Skip::None, _) | (_, None) => 0,
        _ if p.ended => 0,
        (_, Some(until)) => {
            let open_ms = ll.and_then(|l| l.open_segment.as_ref()).map_or(0, |o| {
                o.parts.iter().map(|p| duration_ms(p.duration_secs)).sum()
            });
            ll::skipped_segments(&p.segments, open_ms, until)
        }
    };
    let version = match p.skip {
        _ if skipped == 0 => 7,
        Skip::V2 => 10,
        _ => 9,
    };
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{target}\n"
    );
    if let (Some(l), Some(w)) = (ll, &written) {
        ll::write_server_control(&mut out, l, w);
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", p.media_sequence);
    if p.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            p.discontinuity_sequence
        );
    }
    if p.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    if skipped > 0 {
        ll::write_skip(&mut out, skipped, p.skip);
    }
    let mut current_map: Option<&str> = None;
    for (i, s) in p.segments.iter().enumerate().skip(skipped) {
        let first = i == skipped;
        segment_prologue(
            &mut out,
            &mut current_map,
            s.discontinuity,
            &s.map_uri,
            s.program_date_time_ms.filter(|_| first || s.discontinuity),
        );
        if ll.is_some() {
            ll::write_parts(&mut out, &s.parts);
        }
        let ms = duration_ms(s.duration_secs);
        let _ = writeln!(out, "#EXTINF:{}.{:03},", ms / 1000, ms % 1000);
        if s.gap {
            out.push_str("#EXT-X-GAP\n");
        }
        out.push_str(&uri_line(&s.uri));
        out.push('\n');
    }
    if let Some(l) = ll {
        if let Some(o) = l.open_segment.as_ref().filter(|o| !o.parts.is_empty()) {
            let first = p.segments.len() <= skipped;
            segment_prologue(
                &mut out,
                &mut current_map,
                o.discontinuity,
                &o.map_uri,
                o.program_date_time_ms.filter(|_| first || o.discontinuity),
            );
            ll::write_parts(&mut out, &o.parts);
        }
        if let Some(hint) = l.preload_hint.as_ref().filter(|_| !p.ended) {
            ll::write_preload_hint(&mut out, hint);
        }
    }
    if p.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    if let Some(l) = ll {
        ll::write_rendition_reports(&mut out, &l.rendition_reports);
    }
    out
}

/// The tags that apply to a segment and precede its first part: discontinuity,
/// initialization section (when it changes) and date.
fn segment_prologue<'a>(
    out: &mut String,
    current_map: &mut Option<&'a str>,
    discontinuity: bool,
    map_uri: &'a str,
    program_date_time_ms: Option<i64>,
) {
    if discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if discontinuity || *current_map != Some(map_uri) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", quoted(map_uri));
        *current_map = Some(map_uri);
    }
    if let Some(pdt) = program_date_time_ms {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_millis(pdt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_duration_covers_the_longest_segment_as_written() {
        let seg = |d| MediaSegment {
            duration_secs: d,
            ..Default::default()
        };
        let mut p = MediaPlaylist {
            target_duration_secs: 2,
            segments: vec![seg(2.0), seg(2.0004)],
            ..Default::default()
        };
        // 2.0004 is written as 2.000, so the target stays 2.
        assert_eq!(effective_target_duration(&p), 2);
        p.segments.push(seg(2.0005));
        assert_eq!(effective_target_duration(&p), 3);
        p.segments.clear();
        p.target_duration_secs = 0;
        assert_eq!(effective_target_duration(&p), 1);
        p.segments.push(seg(f64::NAN));
        p.segments.push(seg(-3.0));
        assert_eq!(effective_target_duration(&p), 1);
    }

    #[test]
    fn parts_are_ignored_without_low_latency() {
        let p = MediaPlaylist {
            segments: vec![MediaSegment {
                duration_secs: 1.0,
                uri: "s.m4s".into(),
                map_uri: "i.mp4".into(),
                parts: vec![PartEntry {
                    duration_secs: 1.0,
                    uri: "p.m4s".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            skip: Skip::Yes,
            ..Default::default()
        };
        let text = write_media(&p);
        assert!(!text.contains("PART"), "{text}");
        assert!(text.contains("#EXT-X-VERSION:7\n"), "{text}");
    }
}
