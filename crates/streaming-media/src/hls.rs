//! HLS playlist writers (RFC 8216, draft-pantos-hls-rfc8216bis).
//!
//! [`write_master`] makes a Multivariant (master) Playlist: one
//! `EXT-X-STREAM-INF` per rendition of the ladder and, optionally, an
//! `EXT-X-MEDIA` audio group. [`write_media`] makes a Media Playlist of CMAF
//! (fMP4) segments with `EXT-X-MAP`, as a live sliding window or, once
//! `ended`, a closed playlist with `EXT-X-ENDLIST`.
//!
//! Both playlists declare `EXT-X-VERSION:7` (fMP4 segments need 6+,
//! RFC 8216bis §8). The writers are pure: the caller passes every number and
//! every time in, so the output is a function of the input alone.
//!
//! Attribute values are written as quoted-strings, which may not contain a
//! double quote, CR or LF (RFC 8216bis §4.2): such characters are replaced by
//! `'` and a space respectively, and URI lines lose their CR/LF. Nothing else
//! is escaped; URIs are expected to be already percent-encoded.

use std::fmt::Write as _;

use crate::timefmt::rfc3339_millis;

/// One `EXT-X-STREAM-INF` entry of a Multivariant Playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variant {
    /// URI of the rendition's Media Playlist, relative to the Multivariant one.
    pub uri: String,
    /// `BANDWIDTH`: peak segment bit rate, bits per second.
    pub bandwidth: u64,
    /// `AVERAGE-BANDWIDTH`, bits per second.
    pub average_bandwidth: Option<u64>,
    /// `CODECS`: RFC 6381 codec strings, video and audio joined by `,`.
    /// Omitted when empty.
    pub codecs: String,
    /// `RESOLUTION`: width × height in pixels.
    pub resolution: Option<(u32, u32)>,
    /// `FRAME-RATE`, written with three decimals.
    pub frame_rate: Option<f64>,
    /// `AUDIO`: the `GROUP-ID` of an [`AudioRendition`] group.
    pub audio_group: Option<String>,
}

/// One `EXT-X-MEDIA:TYPE=AUDIO` rendition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioRendition {
    /// `GROUP-ID`, referenced by [`Variant::audio_group`].
    pub group_id: String,
    /// `NAME`, shown to the viewer.
    pub name: String,
    /// URI of the audio Media Playlist.
    pub uri: String,
    /// `DEFAULT=YES` when true. `AUTOSELECT=YES` is always written.
    pub default: bool,
    /// `CHANNELS`: the number of audio channels.
    pub channels: Option<u8>,
    /// `LANGUAGE`: an RFC 5646 tag.
    pub language: Option<String>,
}

/// A Multivariant (master) Playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MasterPlaylist {
    /// Written in this order; players usually start with the first.
    pub variants: Vec<Variant>,
    /// Audio renditions, written before the variants.
    pub audio: Vec<AudioRendition>,
    /// Writes `EXT-X-INDEPENDENT-SEGMENTS` (every segment starts with a key frame).
    pub independent_segments: bool,
}

/// Writes a Multivariant Playlist.
pub fn write_master(p: &MasterPlaylist) -> String {
    let mut out = String::with_capacity(128 + 160 * (p.variants.len() + p.audio.len()));
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    if p.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    for a in &p.audio {
        let _ = write!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\"",
            quoted(&a.group_id),
            quoted(&a.name)
        );
        if let Some(lang) = &a.language {
            let _ = write!(out, ",LANGUAGE=\"{}\"", quoted(lang));
        }
        let _ = write!(
            out,
            ",DEFAULT={},AUTOSELECT=YES",
            if a.default { "YES" } else { "NO" }
        );
        if let Some(ch) = a.channels {
            let _ = write!(out, ",CHANNELS=\"{ch}\"");
        }
        let _ = writeln!(out, ",URI=\"{}\"", quoted(&a.uri));
    }
    for v in &p.variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
        if let Some(avg) = v.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
        }
        if !v.codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{}\"", quoted(&v.codecs));
        }
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        if let Some(group) = &v.audio_group {
            let _ = write!(out, ",AUDIO=\"{}\"", quoted(group));
        }
        out.push('\n');
        out.push_str(&uri_line(&v.uri));
        out.push('\n');
    }
    out
}

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
    /// The segments, oldest first.
    pub segments: Vec<MediaSegment>,
    /// Writes `EXT-X-ENDLIST`: no segment will be added.
    pub ended: bool,
    /// Writes `EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
}

/// A duration as the whole milliseconds that `EXTINF` shows; negative and NaN
/// become 0.
fn duration_ms(secs: f64) -> u64 {
    if secs.is_nan() || secs <= 0.0 {
        0
    } else {
        (secs * 1000.0).round() as u64
    }
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
    let mut out = String::with_capacity(192 + 96 * p.segments.len());
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(
        out,
        "#EXT-X-TARGETDURATION:{}",
        effective_target_duration(p)
    );
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
    let mut current_map: Option<&str> = None;
    for (i, s) in p.segments.iter().enumerate() {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if s.discontinuity || current_map != Some(s.map_uri.as_str()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", quoted(&s.map_uri));
            current_map = Some(&s.map_uri);
        }
        if let Some(pdt) = s.program_date_time_ms
            && (i == 0 || s.discontinuity)
        {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_millis(pdt));
        }
        let ms = duration_ms(s.duration_secs);
        let _ = writeln!(out, "#EXTINF:{}.{:03},", ms / 1000, ms % 1000);
        if s.gap {
            out.push_str("#EXT-X-GAP\n");
        }
        out.push_str(&uri_line(&s.uri));
        out.push('\n');
    }
    if p.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// A quoted-string body: no `"`, CR or LF (RFC 8216bis §4.2).
fn quoted(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['"', '\r', '\n']) {
        s.chars()
            .map(|c| match c {
                '"' => '\'',
                '\r' | '\n' => ' ',
                c => c,
            })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// A URI line: a line break inside it would start a new line of the playlist.
fn uri_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], "").into()
    } else {
        s.into()
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
    fn quoted_strings_lose_quotes_and_line_breaks() {
        assert_eq!(quoted("a\"b\r\nc"), "a'b  c");
        assert_eq!(uri_line("seg\n1.m4s"), "seg1.m4s");
    }
}
