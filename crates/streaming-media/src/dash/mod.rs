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
//! Low-latency DASH (DASH-IF IOP "Low-latency Modes for DASH" v1.0; ISO/IEC
//! 23009-1 5th ed. Annex K and §5.12): segments announced before they are
//! complete with `SegmentTemplate@availabilityTimeOffset` and
//! `@availabilityTimeComplete="false"` (sent with chunked transfer while
//! produced), a `ServiceDescription` with the target latency and the playback
//! rates a player may use to hold it, and a `ProducerReferenceTime` per
//! Representation tying a media time to the wall clock. Every one of these is
//! optional: without them the output is the plain live MPD.
//!
//! Element order follows the MPD schema: `Location`, `ServiceDescription`,
//! `Period`, then `UTCTiming`; in a Representation
//! `AudioChannelConfiguration`, `ProducerReferenceTime`, then
//! `SegmentTemplate`. Attribute values are XML-escaped. `frameRate` is written
//! as the schema's `FrameRateType`: an integer, or `N/1001` for NTSC rates, or
//! a reduced fraction over 1000.

mod xml;

use std::fmt::Write as _;

use crate::timefmt::{xs_datetime, xs_duration};
use xml::{attr, decimal, frame_rate_type, timeline_runs};

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
    /// `SegmentTemplate@availabilityTimeOffset`, seconds: how long before its
    /// end a segment may be requested (IOP low latency: the segment duration
    /// minus the chunk duration). Written when set and not negative or NaN.
    pub availability_time_offset: Option<f64>,
    /// `SegmentTemplate@availabilityTimeComplete`: `Some(false)` says a
    /// segment requested early arrives while it is produced.
    pub availability_time_complete: Option<bool>,
    /// A `ProducerReferenceTime` element; its `UTCTiming` child is the MPD's
    /// [`Mpd::utc_timing_url`] when that is set.
    pub producer_reference_time: Option<ProducerReferenceTime>,
}

/// `ProducerReferenceTime` (ISO/IEC 23009-1 §5.12, `type="encoder"`): the
/// media time `presentation_time` was produced at `wall_clock_time_ms`.
///
/// dash.js offsets its live delay by
/// `wallClockTime − (availabilityStartTime + presentationTime / timescale)`,
/// so a producer time later than the segment's nominal availability makes
/// it sit further back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerReferenceTime {
    /// `@id`, referenced by `Latency@referenceId` (which is 0 here).
    pub id: u32,
    /// `@inband="true"`: segments carry `prft` boxes as well.
    pub inband: bool,
    /// `@wallClockTime`, Unix milliseconds, written as `xs:dateTime` (the
    /// format of the `http-iso` `UTCTiming` scheme).
    pub wall_clock_time_ms: i64,
    /// `@presentationTime`, in the Representation's timescale.
    pub presentation_time: u64,
}

/// `ServiceDescription` (ISO/IEC 23009-1 Annex K) with `id="0"`: the
/// latency the service aims at and the playback rates a player may use to
/// hold it. `Latency@referenceId` is 0, the [`ProducerReferenceTime::id`]
/// to use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceDescription {
    /// `Latency@target`, milliseconds.
    pub target_latency_ms: u64,
    /// `Latency@min`, milliseconds.
    pub min_latency_ms: u64,
    /// `Latency@max`, milliseconds.
    pub max_latency_ms: u64,
    /// `PlaybackRate@min`, e.g. 0.96.
    pub min_playback_rate: f64,
    /// `PlaybackRate@max`, e.g. 1.04.
    pub max_playback_rate: f64,
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
    /// `ServiceDescription`, written when set.
    pub service_description: Option<ServiceDescription>,
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
    if let Some(sd) = &m.service_description {
        write_service_description(&mut out, sd);
    }
    out.push_str("  <Period id=\"0\"");
    attr(&mut out, "start", &xs_duration(m.period_start_secs));
    out.push_str(">\n");
    let utc_timing = m.utc_timing_url.as_deref();
    for set in &m.adaptation_sets {
        write_adaptation_set(&mut out, set, utc_timing);
    }
    out.push_str("  </Period>\n");

    if let Some(url) = utc_timing {
        out.push_str("  ");
        write_utc_timing(&mut out, url);
    }
    out.push_str("</MPD>\n");
    out
}

fn write_utc_timing(out: &mut String, url: &str) {
    out.push_str("<UTCTiming");
    attr(out, "schemeIdUri", UTC_TIMING_HTTP_ISO);
    attr(out, "value", url);
    out.push_str("/>\n");
}

fn write_service_description(out: &mut String, sd: &ServiceDescription) {
    let _ = write!(
        out,
        "  <ServiceDescription id=\"0\">\n    <Latency referenceId=\"0\" target=\"{}\" min=\"{}\" max=\"{}\"/>\n",
        sd.target_latency_ms, sd.min_latency_ms, sd.max_latency_ms
    );
    let min = decimal(sd.min_playback_rate).filter(|v| v != "INF");
    let max = decimal(sd.max_playback_rate).filter(|v| v != "INF");
    if min.is_some() || max.is_some() {
        out.push_str("    <PlaybackRate");
        if let Some(min) = min {
            attr(out, "min", &min);
        }
        if let Some(max) = max {
            attr(out, "max", &max);
        }
        out.push_str("/>\n");
    }
    out.push_str("  </ServiceDescription>\n");
}

fn write_producer_reference_time(
    out: &mut String,
    prt: &ProducerReferenceTime,
    utc_timing: Option<&str>,
) {
    let _ = write!(out, "        <ProducerReferenceTime id=\"{}\"", prt.id);
    if prt.inband {
        attr(out, "inband", "true");
    }
    attr(out, "type", "encoder");
    attr(out, "wallClockTime", &xs_datetime(prt.wall_clock_time_ms));
    let _ = write!(out, " presentationTime=\"{}\"", prt.presentation_time);
    match utc_timing {
        Some(url) => {
            out.push_str(">\n          ");
            write_utc_timing(out, url);
            out.push_str("        </ProducerReferenceTime>\n");
        }
        None => out.push_str("/>\n"),
    }
}

fn write_adaptation_set(out: &mut String, set: &AdaptationSet, utc_timing: Option<&str>) {
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
        write_representation(out, r, utc_timing);
    }
    out.push_str("    </AdaptationSet>\n");
}

fn write_representation(out: &mut String, r: &Representation, utc_timing: Option<&str>) {
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
    if let Some(prt) = &r.producer_reference_time {
        write_producer_reference_time(out, prt, utc_timing);
    }
    let _ = write!(
        out,
        "        <SegmentTemplate timescale=\"{}\"",
        r.timescale
    );
    attr(out, "initialization", &r.initialization);
    attr(out, "media", &r.media);
    let _ = write!(out, " startNumber=\"{}\"", r.start_number);
    if let Some(offset) = r.availability_time_offset.and_then(decimal) {
        attr(out, "availabilityTimeOffset", &offset);
    }
    if let Some(complete) = r.availability_time_complete {
        attr(
            out,
            "availabilityTimeComplete",
            if complete { "true" } else { "false" },
        );
    }
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
