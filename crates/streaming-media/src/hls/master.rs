//! The Multivariant Playlist (RFC 8216bis §4.4.6).

use std::fmt::Write as _;

use super::{quoted, uri_line};

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
