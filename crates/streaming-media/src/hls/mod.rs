//! HLS playlist writers (RFC 8216, draft-pantos-hls-rfc8216bis-16).
//!
//! [`write_master`] makes a Multivariant (master) Playlist: one
//! `EXT-X-STREAM-INF` per rendition of the ladder and, optionally, an
//! `EXT-X-MEDIA` audio group. [`write_media`] makes a Media Playlist of CMAF
//! (fMP4) segments with `EXT-X-MAP`, as a live sliding window or, once
//! `ended`, a closed playlist with `EXT-X-ENDLIST`. With
//! [`MediaPlaylist::low_latency`] set it is a Low-Latency HLS playlist
//! (§4.4.3.7–§4.4.3.8, §4.4.4.9, §4.4.5.1–§4.4.5.3): partial segments,
//! server control, preload hint, rendition reports and, on request, a
//! Playlist Delta Update (§6.2.5.1) — see [`ll`].
//!
//! Playlists declare `EXT-X-VERSION:7` (fMP4 segments need 6+,
//! RFC 8216bis §8), 9 when they carry `EXT-X-SKIP` and 10 when that skip also
//! covers date ranges (§8). The writers are pure: the caller passes every
//! number and every time in, so the output is a function of the input alone.
//!
//! Attribute values are written as quoted-strings, which may not contain a
//! double quote, CR or LF (RFC 8216bis §4.2): such characters are replaced by
//! `'` and a space respectively, and URI lines lose their CR/LF. Nothing else
//! is escaped; URIs are expected to be already percent-encoded.

pub mod ll;
mod master;
mod media;

pub use ll::{LowLatency, OpenSegment, PartEntry, RenditionReport, Skip};
pub use master::{AudioRendition, MasterPlaylist, Variant, write_master};
pub use media::{MediaPlaylist, MediaSegment, effective_target_duration, write_media};

/// A duration as the whole milliseconds that the playlist shows; negative
/// and NaN become 0, infinities saturate.
pub(crate) fn duration_ms(secs: f64) -> u64 {
    if secs.is_nan() || secs <= 0.0 {
        0
    } else {
        // `as` saturates.
        (secs * 1000.0).round() as u64
    }
}

/// A decimal-floating-point number of seconds with three decimals.
pub(crate) fn push_secs(out: &mut String, ms: u64) {
    use std::fmt::Write as _;
    let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
}

/// A quoted-string body: no `"`, CR or LF (RFC 8216bis §4.2).
pub(crate) fn quoted(s: &str) -> std::borrow::Cow<'_, str> {
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
pub(crate) fn uri_line(s: &str) -> std::borrow::Cow<'_, str> {
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
    fn quoted_strings_lose_quotes_and_line_breaks() {
        assert_eq!(quoted("a\"b\r\nc"), "a'b  c");
        assert_eq!(uri_line("seg\n1.m4s"), "seg1.m4s");
    }

    #[test]
    fn durations_as_written() {
        assert_eq!(duration_ms(0.5004), 500);
        assert_eq!(duration_ms(-1.0), 0);
        assert_eq!(duration_ms(f64::NAN), 0);
        assert_eq!(duration_ms(f64::INFINITY), u64::MAX);
        let mut s = String::new();
        push_secs(&mut s, 12_045);
        assert_eq!(s, "12.045");
    }
}
