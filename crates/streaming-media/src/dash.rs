//! MPEG-DASH MPD writer (ISO/IEC 23009-1, DASH-IF IOP live profile).
//!
//! [`write_mpd`] writes one Period of `isoff-live` CMAF content: per
//! Representation a `SegmentTemplate` with `$Number$` addressing and an
//! explicit `SegmentTimeline`, so the same numbered segments serve HLS and
//! DASH. A `dynamic` MPD is a live window (`minimumUpdatePeriod`,
//! `timeShiftBufferDepth`, `suggestedPresentationDelay`, `UTCTiming`); a
//! `static` one is the finished stream (`mediaPresentationDuration`, no
//! update period, no availability window).
//!
//! Element order follows the MPD schema: `Period` before `UTCTiming`;
//! `AudioChannelConfiguration` before `SegmentTemplate`. Attribute values are
//! XML-escaped. `frameRate` is written as the schema's `FrameRateType`: an
//! integer, or `N/1001` for NTSC rates, or a reduced fraction over 1000.

use std::fmt::Write as _;

use crate::timefmt::{xs_datetime, xs_duration};

/// The `isoff-live` profile of ISO/IEC 23009-1 §8.4.
pub const PROFILE_ISOFF_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
/// `UTCTiming` scheme: an HTTP GET returning an ISO 8601 date-time.
pub const UTC_TIMING_HTTP_ISO: &str = "urn:mpeg:dash:utc:http-iso:2014";
/// `AudioChannelConfiguration` scheme of ISO/IEC 23003-3 (channel count).
pub const AUDIO_CHANNEL_CONFIGURATION_SCHEME: &str =
    "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";

/// One segment in a `SegmentTimeline`, in the Representation's timescale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Presentation time of the segment's start.
    pub start: u64,
    /// Duration of the segment.
    pub duration: u64,
}

/// One Representation with its `SegmentTemplate`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Representation {
    pub id: String,
    /// RFC 6381 codec string of this (single-track) Representation.
    pub codecs: String,
    /// Bits per second.
    pub bandwidth: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    /// Hz.
    pub audio_sampling_rate: Option<u32>,
    /// Written as an `AudioChannelConfiguration` element.
    pub channels: Option<u8>,
    /// Units per second of [`TimelineEntry`] values.
    pub timescale: u32,
    /// URL of the initialization segment, relative to the MPD.
    pub initialization: String,
    /// URL template of media segments with `$Number$`.
    pub media: String,
    /// Number of the first segment in `timeline`.
    pub start_number: u64,
    /// Listed segments, oldest first. Contiguous runs of equal durations are
    /// merged into one `S` with `r`; `t` is written on the first `S` and after
    /// every gap or overlap.
    pub timeline: Vec<TimelineEntry>,
}

/// `contentType` of an Adaptation Set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContentType {
    #[default]
    Video,
    Audio,
}

impl ContentType {
    fn as_str(self) -> &'static str {
        match self {
            ContentType::Video => "video",
            ContentType::Audio => "audio",
        }
    }
}

/// An Adaptation Set: switchable Representations of one content type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdaptationSet {
    pub id: u32,
    pub content_type: ContentType,
    /// `video/mp4` or `audio/mp4` for CMAF.
    pub mime_type: String,
    /// Writes `segmentAlignment="true"`.
    pub segment_alignment: bool,
    pub representations: Vec<Representation>,
}

/// A Media Presentation Description with a single Period (`id="0"`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mpd {
    /// `type="dynamic"` (live) or `type="static"` (ended).
    pub dynamic: bool,
    /// `availabilityStartTime` (dynamic only), Unix milliseconds.
    pub availability_start_time_ms: i64,
    /// `publishTime`, Unix milliseconds.
    pub publish_time_ms: i64,
    /// `minimumUpdatePeriod` (dynamic only).
    pub minimum_update_period_secs: f64,
    /// `timeShiftBufferDepth` (dynamic only).
    pub time_shift_buffer_depth_secs: f64,
    /// `suggestedPresentationDelay` (dynamic only).
    pub suggested_presentation_delay_secs: f64,
    /// `minBufferTime`.
    pub min_buffer_time_secs: f64,
    /// `maxSegmentDuration`.
    pub max_segment_duration_secs: f64,
    /// `mediaPresentationDuration`, written when set (required when static).
    pub media_presentation_duration_secs: Option<f64>,
    /// `UTCTiming` with the `http-iso` scheme, written when set.
    pub utc_timing_url: Option<String>,
    /// `Period@start`.
    pub period_start_secs: f64,
    /// `Location` (ISO/IEC 23009-1 §5.3.1.2): where a dynamic MPD is refreshed
    /// from, written when set (may be relative to the MPD's URL).
    pub location: Option<String>,
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// Writes an MPD document (UTF-8, with an XML declaration).
pub fn write_mpd(m: &Mpd) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"");
    attr(&mut out, "profiles", PROFILE_ISOFF_LIVE);
    attr(
        &mut out,
        "type",
        if m.dynamic { "dynamic" } else { "static" },
    );
    if m.dynamic {
        attr(
            &mut out,
            "availabilityStartTime",
            &xs_datetime(m.availability_start_time_ms),
        );
    }
    attr(&mut out, "publishTime", &xs_datetime(m.publish_time_ms));
    if let Some(d) = m.media_presentation_duration_secs {
        attr(&mut out, "mediaPresentationDuration", &xs_duration(d));
    }
    if m.dynamic {
        attr(
            &mut out,
            "minimumUpdatePeriod",
            &xs_duration(m.minimum_update_period_secs),
        );
        attr(
            &mut out,
            "timeShiftBufferDepth",
            &xs_duration(m.time_shift_buffer_depth_secs),
        );
        attr(
            &mut out,
            "suggestedPresentationDelay",
            &xs_duration(m.suggested_presentation_delay_secs),
        );
    }
    attr(
        &mut out,
        "minBufferTime",
        &xs_duration(m.min_buffer_time_secs),
    );
    attr(
        &mut out,
        "maxSegmentDuration",
        &xs_duration(m.max_segment_duration_secs),
    );
    out.push_str(">\n");

    if let Some(location) = &m.location {
        // The attribute writer escapes; an element's text needs the same.
        let mut escaped = String::new();
        attr(&mut escaped, "x", location);
        let text = &escaped[4..escaped.len() - 1];
        let _ = writeln!(out, "  <Location>{text}</Location>");
    }
    out.push_str("  <Period id=\"0\"");
    attr(&mut out, "start", &xs_duration(m.period_start_secs));
    out.push_str(">\n");
    for set in &m.adaptation_sets {
        write_adaptation_set(&mut out, set);
    }
    out.push_str("  </Period>\n");

    if let Some(url) = &m.utc_timing_url {
        out.push_str("  <UTCTiming");
        attr(&mut out, "schemeIdUri", UTC_TIMING_HTTP_ISO);
        attr(&mut out, "value", url);
        out.push_str("/>\n");
    }
    out.push_str("</MPD>\n");
    out
}

fn write_adaptation_set(out: &mut String, set: &AdaptationSet) {
    let _ = write!(out, "    <AdaptationSet id=\"{}\"", set.id);
    attr(out, "contentType", set.content_type.as_str());
    attr(out, "mimeType", &set.mime_type);
    if set.segment_alignment {
        attr(out, "segmentAlignment", "true");
    }
    // Every CMAF segment starts with a closed GOP (IOP: SAP type 1 or 2).
    attr(out, "startWithSAP", "1");
    out.push_str(">\n");
    for r in &set.representations {
        write_representation(out, r);
    }
    out.push_str("    </AdaptationSet>\n");
}

fn write_representation(out: &mut String, r: &Representation) {
    out.push_str("      <Representation");
    attr(out, "id", &r.id);
    attr(out, "codecs", &r.codecs);
    let _ = write!(out, " bandwidth=\"{}\"", r.bandwidth);
    if let Some(w) = r.width {
        let _ = write!(out, " width=\"{w}\"");
    }
    if let Some(h) = r.height {
        let _ = write!(out, " height=\"{h}\"");
    }
    if let Some(fr) = r.frame_rate.and_then(frame_rate_type) {
        attr(out, "frameRate", &fr);
    }
    if let Some(sr) = r.audio_sampling_rate {
        let _ = write!(out, " audioSamplingRate=\"{sr}\"");
    }
    out.push_str(">\n");
    if let Some(ch) = r.channels {
        out.push_str("        <AudioChannelConfiguration");
        attr(out, "schemeIdUri", AUDIO_CHANNEL_CONFIGURATION_SCHEME);
        let _ = write!(out, " value=\"{ch}\"");
        out.push_str("/>\n");
    }
    let _ = write!(
        out,
        "        <SegmentTemplate timescale=\"{}\"",
        r.timescale
    );
    attr(out, "initialization", &r.initialization);
    attr(out, "media", &r.media);
    let _ = write!(out, " startNumber=\"{}\"", r.start_number);
    out.push_str(">\n          <SegmentTimeline>\n");
    for s in timeline_runs(&r.timeline) {
        out.push_str("            <S");
        if let Some(t) = s.t {
            let _ = write!(out, " t=\"{t}\"");
        }
        let _ = write!(out, " d=\"{}\"", s.d);
        if s.r > 0 {
            let _ = write!(out, " r=\"{}\"", s.r);
        }
        out.push_str("/>\n");
    }
    out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
    out.push_str("      </Representation>\n");
}

/// One `S` element: `r + 1` segments of duration `d`, the first at `t`
/// (or right after the previous run when `t` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    t: Option<u64>,
    d: u64,
    r: u64,
}

fn timeline_runs(entries: &[TimelineEntry]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut next_start: Option<u64> = None;
    for e in entries {
        let contiguous = next_start == Some(e.start);
        match runs.last_mut() {
            Some(run) if contiguous && run.d == e.duration => run.r += 1,
            _ => runs.push(Run {
                t: (!contiguous).then_some(e.start),
                d: e.duration,
                r: 0,
            }),
        }
        next_start = Some(e.start.saturating_add(e.duration));
    }
    runs
}

/// `FrameRateType`: `[0-9]+(/[1-9][0-9]*)?`. `None` for non-positive rates.
fn frame_rate_type(fps: f64) -> Option<String> {
    if !fps.is_finite() || fps <= 0.0 {
        return None;
    }
    let rounded = fps.round();
    if (fps - rounded).abs() < 1e-3 {
        return Some(format!("{}", rounded as u64));
    }
    // NTSC family: 23.976, 29.97, 59.94 … = N*1000/1001.
    let ntsc = (fps * 1001.0 / 1000.0).round();
    if (ntsc * 1000.0 / 1001.0 - fps).abs() < 1e-3 {
        return Some(format!("{}/1001", ntsc as u64 * 1000));
    }
    let num = (fps * 1000.0).round() as u64;
    let g = gcd(num, 1000);
    Some(format!("{}/{}", num / g, 1000 / g))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Writes ` name="value"` with the value XML-escaped.
fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            // Other control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(start: u64, duration: u64) -> TimelineEntry {
        TimelineEntry { start, duration }
    }

    #[test]
    fn runs_merge_contiguous_equal_durations() {
        let runs = timeline_runs(&[
            e(0, 2),
            e(2, 2),
            e(4, 2),
            e(6, 3),
            e(9, 2),
            e(20, 2),
            e(22, 2),
        ]);
        assert_eq!(
            runs,
            vec![
                Run {
                    t: Some(0),
                    d: 2,
                    r: 2
                },
                Run {
                    t: None,
                    d: 3,
                    r: 0
                },
                Run {
                    t: None,
                    d: 2,
                    r: 0
                },
                Run {
                    t: Some(20),
                    d: 2,
                    r: 1
                },
            ]
        );
        assert!(timeline_runs(&[]).is_empty());
    }

    #[test]
    fn frame_rates() {
        assert_eq!(frame_rate_type(30.0).as_deref(), Some("30"));
        assert_eq!(frame_rate_type(29.97).as_deref(), Some("30000/1001"));
        assert_eq!(
            frame_rate_type(30000.0 / 1001.0).as_deref(),
            Some("30000/1001")
        );
        assert_eq!(frame_rate_type(23.976).as_deref(), Some("24000/1001"));
        assert_eq!(frame_rate_type(59.94).as_deref(), Some("60000/1001"));
        assert_eq!(frame_rate_type(12.5).as_deref(), Some("25/2"));
        assert_eq!(frame_rate_type(0.0), None);
        assert_eq!(frame_rate_type(f64::NAN), None);
    }

    #[test]
    fn attributes_are_escaped() {
        let mut s = String::new();
        attr(&mut s, "a", "x&<>\"'\n\u{1}y");
        assert_eq!(s, " a=\"x&amp;&lt;&gt;&quot;&apos;&#10;y\"");
    }
}
