//! Low-Latency HLS media playlists as a client reads them (RFC 8216bis
//! §4.4.3.7 `EXT-X-PART-INF`, §4.4.3.8 `EXT-X-SERVER-CONTROL`, §4.4.4.9
//! `EXT-X-PART`, §4.4.5.2 `EXT-X-SKIP`, §4.4.5.3 `EXT-X-PRELOAD-HINT`,
//! §4.4.5.4 `EXT-X-RENDITION-REPORT`).
//!
//! m3u8-rs reads the ordinary lines (media sequence, target duration,
//! segments, maps, dates, end list) but drops the LL tags, and the parts of
//! the segment in progress come after the last `EXTINF`, where it loses them.
//! A line scan here reads the LL tags and where they stand between the
//! segment URIs; the two are joined by counting URI lines.

use m3u8_rs::Playlist;

/// Part `index` of the segment with media sequence number `msn`; ordered as
/// in the playlist (by segment, then part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartRef {
    pub msn: u64,
    pub index: u32,
}

impl std::fmt::Display for PartRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.msn, self.index)
    }
}

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub at: PartRef,
    pub duration: f64,
    pub uri: String,
    pub independent: bool,
    pub gap: bool,
}

/// One complete segment (`EXTINF` + URI) and the parts listed for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub msn: u64,
    pub duration: f64,
    pub uri: String,
    /// The `EXT-X-MAP` in force for this segment.
    pub map_uri: Option<String>,
    /// Its start in ms since the Unix epoch: its own `EXT-X-PROGRAM-DATE-TIME`
    /// or the previous one plus the durations in between.
    pub pdt_ms: Option<i64>,
    pub parts: Vec<Part>,
}

/// `EXT-X-SERVER-CONTROL` attributes (seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerControl {
    pub can_block_reload: bool,
    pub part_hold_back: Option<f64>,
    pub hold_back: Option<f64>,
    pub can_skip_until: Option<f64>,
}

/// `EXT-X-PRELOAD-HINT`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreloadHint {
    /// `PART` or `MAP`.
    pub kind: String,
    pub uri: String,
}

/// `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: Option<u64>,
    pub last_part: Option<u64>,
}

/// A media playlist with its LL-HLS tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlPlaylist {
    pub media_sequence: u64,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS` (a delta update), else 0.
    pub skipped_segments: u64,
    pub target_duration: u64,
    pub end_list: bool,
    pub segments: Vec<Segment>,
    /// Parts of the segment in progress (after the last `EXTINF`).
    pub open: Vec<Part>,
    /// The `EXT-X-MAP` in force for the segment in progress.
    pub open_map: Option<String>,
    pub server_control: ServerControl,
    /// `EXT-X-PART-INF:PART-TARGET`.
    pub part_target: Option<f64>,
    pub preload_hint: Option<PreloadHint>,
    pub rendition_reports: Vec<RenditionReport>,
}

/// Why a playlist could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LlError {
    #[error("not a media playlist")]
    NotMedia,
    #[error("playlist does not parse: {0}")]
    Syntax(String),
    #[error("`{tag}` at line {line}: {detail}")]
    Attribute {
        tag: &'static str,
        line: usize,
        detail: String,
    },
    #[error("m3u8-rs read {m3u8} segments but the playlist has {uris} URI lines")]
    SegmentCount { m3u8: usize, uris: usize },
}

impl LlPlaylist {
    /// True when the server offers blocking reloads of parts.
    pub fn is_low_latency(&self) -> bool {
        self.server_control.can_block_reload && self.part_target.is_some()
    }

    /// Media sequence number of the first listed segment.
    pub fn first_msn(&self) -> u64 {
        self.media_sequence + self.skipped_segments
    }

    /// Media sequence number of the segment in progress.
    pub fn open_msn(&self) -> u64 {
        self.first_msn() + self.segments.len() as u64
    }

    /// Every listed part, oldest first.
    pub fn parts(&self) -> impl DoubleEndedIterator<Item = &Part> {
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(self.open.iter())
    }

    pub fn newest_part(&self) -> Option<&Part> {
        self.parts().next_back()
    }

    /// `PART-HOLD-BACK`, or 3 × `PART-TARGET` when the server gave none.
    pub fn part_hold_back(&self) -> Option<f64> {
        self.server_control
            .part_hold_back
            .or(self.part_target.map(|t| 3.0 * t))
    }

    /// The `EXT-X-MAP` in force for part `at`.
    pub fn map_for(&self, at: PartRef) -> Option<&str> {
        if at.msn >= self.open_msn() {
            return self.open_map.as_deref();
        }
        let i = at.msn.checked_sub(self.first_msn())?;
        self.segments.get(i as usize)?.map_uri.as_deref()
    }

    /// Wall-clock end of part `at` (ms since the Unix epoch), from the date of
    /// its segment and the durations of the parts up to it; `None` when the
    /// playlist carries no date or does not list the part.
    pub fn part_end_ms(&self, at: PartRef) -> Option<i64> {
        let (start, parts) = if at.msn == self.open_msn() {
            let last = self.segments.last()?;
            (last.pdt_ms? + secs_to_ms(last.duration), &self.open)
        } else {
            let s = self
                .segments
                .get(at.msn.checked_sub(self.first_msn())? as usize)?;
            (s.pdt_ms?, &s.parts)
        };
        let mut end = 0.0;
        for p in parts {
            end += p.duration;
            if p.at == at {
                return Some(start + secs_to_ms(end));
            }
        }
        None
    }
}

fn secs_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// Splits an attribute list (`A=1,B="x,y",C=YES`) into name/value pairs;
/// quoted values are returned without their quotes.
pub fn attributes(list: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute without `=` in `{rest}`"))?;
        let name = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let close = q
                .find('"')
                .ok_or_else(|| format!("unterminated quoted value of {name}"))?;
            (&q[..close], &q[close + 1..])
        } else {
            match after.find(',') {
                Some(c) => (&after[..c], &after[c..]),
                None => (after, ""),
            }
        };
        out.push((name, value.trim()));
        rest = tail.trim_start();
        rest = match rest.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if rest.is_empty() => rest,
            None => return Err(format!("expected `,` before `{rest}`")),
        };
    }
    Ok(out)
}

fn get<'a>(attrs: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

struct Line<'a> {
    tag: &'static str,
    no: usize,
    attrs: Vec<(&'a str, &'a str)>,
}

impl Line<'_> {
    fn err(&self, detail: impl Into<String>) -> LlError {
        LlError::Attribute {
            tag: self.tag,
            line: self.no,
            detail: detail.into(),
        }
    }

    fn float(&self, name: &str) -> Result<Option<f64>, LlError> {
        get(&self.attrs, name)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| self.err(format!("{name}={v} is not a duration")))
            })
            .transpose()
    }

    fn int(&self, name: &str) -> Result<Option<u64>, LlError> {
        get(&self.attrs, name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| self.err(format!("{name}={v} is not a number")))
            })
            .transpose()
    }

    fn yes(&self, name: &str) -> bool {
        get(&self.attrs, name) == Some("YES")
    }

    fn uri(&self) -> Result<String, LlError> {
        get(&self.attrs, "URI")
            .map(str::to_owned)
            .ok_or_else(|| self.err("no URI"))
    }
}

/// What the line scan finds: LL tags, and parts and maps by the number of
/// URI lines before them (their "slot": slot i belongs to segment i, the
/// slot after the last URI to the segment in progress).
#[derive(Default)]
struct Scan {
    uris: usize,
    parts: Vec<(usize, f64, String, bool, bool)>,
    maps: Vec<(usize, String)>,
}

const TAGS: [&str; 7] = [
    "EXT-X-SERVER-CONTROL",
    "EXT-X-PART-INF",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-SKIP",
    "EXT-X-RENDITION-REPORT",
    "EXT-X-MAP",
];

fn scan(text: &str, pl: &mut LlPlaylist) -> Result<Scan, LlError> {
    let mut s = Scan::default();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let Some(body) = l.strip_prefix('#') else {
            s.uris += 1;
            continue;
        };
        let Some((name, list)) = body.split_once(':') else {
            continue;
        };
        let Some(tag) = TAGS.iter().find(|t| **t == name) else {
            continue;
        };
        let attrs = attributes(list).map_err(|detail| LlError::Attribute {
            tag,
            line: i + 1,
            detail,
        })?;
        let line = Line {
            tag,
            no: i + 1,
            attrs,
        };
        match *tag {
            "EXT-X-SERVER-CONTROL" => {
                pl.server_control = ServerControl {
                    can_block_reload: line.yes("CAN-BLOCK-RELOAD"),
                    part_hold_back: line.float("PART-HOLD-BACK")?,
                    hold_back: line.float("HOLD-BACK")?,
                    can_skip_until: line.float("CAN-SKIP-UNTIL")?,
                };
            }
            "EXT-X-PART-INF" => {
                pl.part_target = Some(
                    line.float("PART-TARGET")?
                        .ok_or_else(|| line.err("no PART-TARGET"))?,
                );
            }
            "EXT-X-PART" => {
                let d = line
                    .float("DURATION")?
                    .ok_or_else(|| line.err("no DURATION"))?;
                s.parts.push((
                    s.uris,
                    d,
                    line.uri()?,
                    line.yes("INDEPENDENT"),
                    line.yes("GAP"),
                ));
            }
            "EXT-X-PRELOAD-HINT" => {
                let kind = get(&line.attrs, "TYPE").ok_or_else(|| line.err("no TYPE"))?;
                pl.preload_hint = Some(PreloadHint {
                    kind: kind.to_owned(),
                    uri: line.uri()?,
                });
            }
            "EXT-X-SKIP" => {
                pl.skipped_segments = line
                    .int("SKIPPED-SEGMENTS")?
                    .ok_or_else(|| line.err("no SKIPPED-SEGMENTS"))?;
            }
            "EXT-X-RENDITION-REPORT" => pl.rendition_reports.push(RenditionReport {
                uri: line.uri()?,
                last_msn: line.int("LAST-MSN")?,
                last_part: line.int("LAST-PART")?,
            }),
            _ => s.maps.push((s.uris, line.uri()?)),
        }
    }
    Ok(s)
}

/// Reads a media playlist with its LL-HLS tags.
pub fn parse(text: &str) -> Result<LlPlaylist, LlError> {
    let media = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => m,
        Ok(Playlist::MasterPlaylist(_)) => return Err(LlError::NotMedia),
        Err(e) => return Err(LlError::Syntax(e.to_string())),
    };
    let mut pl = LlPlaylist {
        media_sequence: media.media_sequence,
        target_duration: media.target_duration,
        end_list: media.end_list,
        ..LlPlaylist::default()
    };
    let scan = scan(text, &mut pl)?;
    if scan.uris != media.segments.len() {
        return Err(LlError::SegmentCount {
            m3u8: media.segments.len(),
            uris: scan.uris,
        });
    }
    let first = pl.first_msn();
    let mut map: Option<String> = None;
    let mut pdt: Option<i64> = None;
    for (i, seg) in media.segments.iter().enumerate() {
        if let Some(m) = &seg.map {
            map = Some(m.uri.clone());
        }
        if let Some(d) = &seg.program_date_time {
            pdt = Some(d.timestamp_millis());
        }
        pl.segments.push(Segment {
            msn: first + i as u64,
            duration: f64::from(seg.duration),
            uri: seg.uri.clone(),
            map_uri: map.clone(),
            pdt_ms: pdt,
            parts: Vec::new(),
        });
        pdt = pdt.map(|p| p + secs_to_ms(f64::from(seg.duration)));
    }
    pl.open_map = scan
        .maps
        .iter()
        .rev()
        .find(|(slot, _)| *slot == scan.uris)
        .map(|(_, u)| u.clone())
        .or(map);
    for (slot, duration, uri, independent, gap) in scan.parts {
        let list = match pl.segments.get_mut(slot) {
            Some(s) => &mut s.parts,
            None => &mut pl.open,
        };
        let at = PartRef {
            msn: first + slot as u64,
            index: list.len() as u32,
        };
        list.push(Part {
            at,
            duration,
            uri,
            independent,
            gap,
        });
    }
    Ok(pl)
}

#[cfg(test)]
#[path = "playlist_tests.rs"]
mod tests;
