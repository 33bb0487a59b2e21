//! Low-Latency HLS tags of a Media Playlist (draft-pantos-hls-rfc8216bis-16):
//! `EXT-X-PART-INF` (§4.4.3.7), `EXT-X-SERVER-CONTROL` (§4.4.3.8),
//! `EXT-X-PART` (§4.4.4.9), `EXT-X-SKIP` (§4.4.5.2), `EXT-X-PRELOAD-HINT`
//! (§4.4.5.3), `EXT-X-RENDITION-REPORT` (§4.4.5.4), and the Playlist Delta
//! Update of §6.2.5.1.
//!
//! The writer keeps what it writes valid whatever it is given: the written
//! `PART-TARGET` covers the longest listed part, `PART-HOLD-BACK` is at least
//! twice it, `HOLD-BACK` at least three target durations and `CAN-SKIP-UNTIL`
//! at least six (the floors of §4.4.3.7–§4.4.3.8). Every value is written as
//! seconds with three decimals, rounded to the millisecond.

use std::fmt::Write as _;

use super::{MediaSegment, duration_ms, push_secs, quoted};

/// One partial segment (`EXT-X-PART`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartEntry {
    /// `DURATION`, written with three decimals.
    pub duration_secs: f64,
    /// `URI` of the part, relative to the playlist.
    pub uri: String,
    /// `INDEPENDENT=YES`: the part starts with an independent (key) frame.
    pub independent: bool,
    /// `GAP=YES`: the part is not available.
    pub gap: bool,
}

/// One `EXT-X-RENDITION-REPORT`: where another rendition's live edge is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenditionReport {
    /// `URI` of that rendition's Media Playlist, relative to this one.
    pub uri: String,
    /// `LAST-MSN`: the media sequence number of its last segment (complete
    /// or, when it has parts, the one being produced).
    pub last_msn: u64,
    /// `LAST-PART`: the index of its last part in `last_msn`, when it has parts.
    pub last_part: Option<u32>,
}

/// The segment being produced, after the last complete one: its parts so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenSegment {
    /// Its media sequence number (the last complete segment's plus one).
    pub number: u64,
    /// Writes `EXT-X-DISCONTINUITY` before its first part.
    pub discontinuity: bool,
    /// Its initialization section; `EXT-X-MAP` is written when it differs
    /// from the previous segment's, after a discontinuity, or when it is the
    /// first segment written.
    pub map_uri: String,
    /// Wall-clock time of its first sample, Unix milliseconds; written when it
    /// starts after a discontinuity or is the first segment written.
    pub program_date_time_ms: Option<i64>,
    /// Its parts so far. Nothing of the segment is written while this is
    /// empty (the preload hint still is).
    pub parts: Vec<PartEntry>,
}

/// The Low-Latency HLS part of a Media Playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LowLatency {
    /// `EXT-X-PART-INF:PART-TARGET`: the Part Target Duration.
    pub part_target_secs: f64,
    /// `EXT-X-SERVER-CONTROL` `PART-HOLD-BACK` (≥ 2 × PART-TARGET, 3 × advised).
    pub part_hold_back_secs: f64,
    /// `CAN-BLOCK-RELOAD=YES`: `_HLS_msn`/`_HLS_part` requests are held.
    pub can_block_reload: bool,
    /// `CAN-SKIP-UNTIL` (with `CAN-SKIP-DATERANGES=YES`): the Skip Boundary
    /// of Playlist Delta Updates. `None`: no delta updates, and
    /// [`MediaPlaylist::skip`](super::MediaPlaylist::skip) is ignored.
    pub can_skip_until_secs: Option<f64>,
    /// `HOLD-BACK`; omitted when `None`, players then use 3 × target duration.
    pub hold_back_secs: Option<f64>,
    /// The segment being produced (after the last complete one): its parts so far.
    pub open_segment: Option<OpenSegment>,
    /// `EXT-X-PRELOAD-HINT:TYPE=PART,URI=…` for the next part; not written
    /// in an ended playlist (§4.4.5.3).
    pub preload_hint: Option<String>,
    /// `EXT-X-RENDITION-REPORT` lines, for every other rendition.
    pub rendition_reports: Vec<RenditionReport>,
}

/// The delta update asked for by `_HLS_skip` (§6.2.5.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Skip {
    /// The full playlist.
    #[default]
    None,
    /// `_HLS_skip=YES`: segments before the Skip Boundary are replaced by
    /// `EXT-X-SKIP` (protocol version 9).
    Yes,
    /// `_HLS_skip=v2`: the same, and date ranges may be skipped too, so
    /// `EXT-X-SKIP` carries `RECENTLY-REMOVED-DATERANGES` (version 10). This
    /// writer writes no date ranges, so that list is always empty.
    V2,
}

impl Skip {
    /// The value of an `_HLS_skip` query parameter: `YES` or `v2`
    /// (§6.2.5.1); anything else is `None`.
    pub fn from_query(value: &str) -> Option<Skip> {
        match value {
            "YES" => Some(Skip::Yes),
            "v2" => Some(Skip::V2),
            _ => None,
        }
    }
}

/// The LL values as written, in milliseconds, floored to the spec's minimums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub part_target_ms: u64,
    pub part_hold_back_ms: u64,
    pub hold_back_ms: Option<u64>,
    pub can_skip_until_ms: Option<u64>,
}

impl Written {
    pub(crate) fn new(ll: &LowLatency, segments: &[MediaSegment], target_secs: u64) -> Self {
        let target_ms = target_secs.saturating_mul(1000);
        let longest_part = segments
            .iter()
            .flat_map(|s| &s.parts)
            .chain(ll.open_segment.iter().flat_map(|o| &o.parts))
            .map(|p| duration_ms(p.duration_secs))
            .max()
            .unwrap_or(0);
        let part_target_ms = duration_ms(ll.part_target_secs).max(longest_part).max(1);
        let finite = |v: f64| v.is_finite().then(|| duration_ms(v));
        Written {
            part_target_ms,
            part_hold_back_ms: duration_ms(ll.part_hold_back_secs)
                .max(part_target_ms.saturating_mul(2)),
            hold_back_ms: ll
                .hold_back_secs
                .and_then(finite)
                .map(|h| h.max(target_ms.saturating_mul(3))),
            can_skip_until_ms: ll
                .can_skip_until_secs
                .and_then(finite)
                .map(|u| u.max(target_ms.saturating_mul(6))),
        }
    }
}

/// How many of the oldest segments a delta update replaces: those that end
/// more than `until_ms` before the end of the last (parent) segment, that is
/// the complete segments and the open segment's `open_ms` of parts
/// (§6.2.5.1). Measuring from a segment's end rather than its start skips
/// no segment that still reaches into the Skip Boundary.
pub(crate) fn skipped_segments(segments: &[MediaSegment], open_ms: u64, until_ms: u64) -> usize {
    let total: u64 = segments
        .iter()
        .map(|s| duration_ms(s.duration_secs))
        .fold(open_ms, u64::saturating_add);
    let mut end = 0u64;
    segments
        .iter()
        .take_while(|s| {
            end = end.saturating_add(duration_ms(s.duration_secs));
            total - end > until_ms
        })
        .count()
}

pub(crate) fn write_server_control(out: &mut String, ll: &LowLatency, w: &Written) {
    out.push_str("#EXT-X-SERVER-CONTROL:");
    if ll.can_block_reload {
        out.push_str("CAN-BLOCK-RELOAD=YES,");
    }
    if let Some(until) = w.can_skip_until_ms {
        out.push_str("CAN-SKIP-UNTIL=");
        push_secs(out, until);
        out.push_str(",CAN-SKIP-DATERANGES=YES,");
    }
    if let Some(hold) = w.hold_back_ms {
        out.push_str("HOLD-BACK=");
        push_secs(out, hold);
        out.push(',');
    }
    out.push_str("PART-HOLD-BACK=");
    push_secs(out, w.part_hold_back_ms);
    out.push_str("\n#EXT-X-PART-INF:PART-TARGET=");
    push_secs(out, w.part_target_ms);
    out.push('\n');
}

pub(crate) fn write_skip(out: &mut String, skipped: usize, skip: Skip) {
    let _ = write!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    if skip == Skip::V2 {
        out.push_str(",RECENTLY-REMOVED-DATERANGES=\"\"");
    }
    out.push('\n');
}

pub(crate) fn write_parts(out: &mut String, parts: &[PartEntry]) {
    for p in parts {
        out.push_str("#EXT-X-PART:DURATION=");
        push_secs(out, duration_ms(p.duration_secs));
        let _ = write!(out, ",URI=\"{}\"", quoted(&p.uri));
        if p.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        if p.gap {
            out.push_str(",GAP=YES");
        }
        out.push('\n');
    }
}

pub(crate) fn write_preload_hint(out: &mut String, uri: &str) {
    let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", quoted(uri));
}

pub(crate) fn write_rendition_reports(out: &mut String, reports: &[RenditionReport]) {
    for r in reports {
        let _ = write!(
            out,
            "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
            quoted(&r.uri),
            r.last_msn
        );
        if let Some(part) = r.last_part {
            let _ = write!(out, ",LAST-PART={part}");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(duration_secs: f64) -> MediaSegment {
        MediaSegment {
            duration_secs,
            ..Default::default()
        }
    }

    #[test]
    fn skip_boundary_counts_segments_ending_before_it() {
        let segs: Vec<_> = (0..10).map(|_| seg(2.0)).collect();
        // 20 s listed; segments ending more than 12 s before the end: those
        // ending at 2, 4, 6 (14, 16, 18 s before); the one ending at 8 s is
        // exactly 12 s before and stays.
        assert_eq!(skipped_segments(&segs, 0, 12_000), 3);
        assert_eq!(skipped_segments(&segs, 0, 11_999), 4);
        assert_eq!(skipped_segments(&segs, 0, 20_000), 0);
        assert_eq!(skipped_segments(&segs, 0, 0), 9, "the last segment stays");
        assert_eq!(skipped_segments(&[], 0, 0), 0);
        // The open segment's parts count: 1 s of them moves the end to 21 s,
        // so the segment ending at 8 s is now 13 s before it.
        assert_eq!(skipped_segments(&segs, 1000, 12_000), 4);
    }

    #[test]
    fn written_values_respect_the_spec_floors() {
        let ll = LowLatency {
            part_target_secs: 0.5,
            part_hold_back_secs: 0.6,
            hold_back_secs: Some(1.0),
            can_skip_until_secs: Some(f64::NAN),
            open_segment: Some(OpenSegment {
                parts: vec![PartEntry {
                    duration_secs: 0.533,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let w = Written::new(&ll, &[], 2);
        assert_eq!(
            w,
            Written {
                part_target_ms: 533,
                part_hold_back_ms: 1066,
                hold_back_ms: Some(6000),
                can_skip_until_ms: None,
            }
        );
    }

    #[test]
    fn skip_query_values() {
        assert_eq!(Skip::from_query("YES"), Some(Skip::Yes));
        assert_eq!(Skip::from_query("v2"), Some(Skip::V2));
        assert_eq!(Skip::from_query("yes"), None);
    }
}
