//! An independent checker of Low-Latency HLS media playlists
//! (draft-pantos-hls-rfc8216bis-16 §4.4.3.7–§4.4.5.4, §6.2.5.1), for the
//! end-to-end tests. `m3u8-rs` reads the tags it knows (and must accept the
//! playlist); a line parser of its own reads the LL tags, which `m3u8-rs`
//! keeps as unknown. It shares no code with the writer.
//!
//! Rules checked (each failure is one message): every part ≤ PART-TARGET
//! (to the millisecond the numbers are written with) and ≥ 85 % of it but
//! for the spec's exceptions; the parts of each complete segment sum to its
//! EXTINF (± 1 ms per part), are numbered from 0 without holes and start
//! with an INDEPENDENT part under `EXT-X-INDEPENDENT-SEGMENTS`; parts are
//! listed on a run of latest segments (removed in order);
//! PART-HOLD-BACK ≥ 2 × PART-TARGET (a warning below 3 ×); HOLD-BACK ≥ 3 ×
//! and CAN-SKIP-UNTIL ≥ 6 × the target duration; CAN-BLOCK-RELOAD=YES; the
//! preload hint names the part after the last listed one, and is absent once
//! ended; `EXT-X-SKIP:SKIPPED-SEGMENTS` equals the segments missing between
//! the media sequence and the first listed segment (and the version is 9+);
//! segments are numbered on from there. The URI scheme is the
//! server's: parts `segment-{N}.{P}.m4s`, segments `segment-{N}.m4s`, both
//! relative to the playlist, optionally with a query. Rendition reports are
//! checked against the other renditions with [`LlPlaylist::check_reports`].
#![allow(dead_code)]

/// Tolerance of durations written with three decimals.
const MS: f64 = 0.001;
/// A little more, for the float sums of what was parsed.
const EPS: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq)]
pub struct LlPart {
    pub number: u64,
    pub index: u32,
    pub uri: String,
    pub duration_secs: f64,
    pub independent: bool,
    pub gap: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlSegment {
    pub number: u64,
    pub uri: String,
    pub duration_secs: f64,
    pub discontinuity: bool,
    pub gap: bool,
    /// Its listed parts (empty for older segments).
    pub parts: Vec<LlPart>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlReport {
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<u32>,
}

/// What a checked playlist says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlPlaylist {
    pub version: usize,
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS`, 0 without the tag.
    pub skipped: u64,
    /// The complete segments listed, oldest first.
    pub segments: Vec<LlSegment>,
    /// Parts listed after the last complete segment (the open segment).
    pub open_parts: Vec<LlPart>,
    pub preload_hint: Option<String>,
    pub reports: Vec<LlReport>,
    pub part_target: f64,
    pub part_hold_back: f64,
    pub hold_back: Option<f64>,
    pub can_skip_until: Option<f64>,
    pub can_block_reload: bool,
    pub ended: bool,
    /// Advice not followed (SHOULDs): PART-HOLD-BACK under 3 × PART-TARGET, …
    pub warnings: Vec<String>,
}

impl LlPlaylist {
    /// The last listed part: `(segment number, part index)`.
    pub fn last_part(&self) -> Option<(u64, u32)> {
        self.open_parts
            .last()
            .or_else(|| self.segments.iter().rev().find_map(|s| s.parts.last()))
            .map(|p| (p.number, p.index))
    }

    /// The number of the segment after the last complete one.
    pub fn next_segment(&self) -> u64 {
        self.segments
            .last()
            .map_or(self.media_sequence + self.skipped, |s| s.number + 1)
    }

    /// The parts the rendition reports point at, as URIs relative to this
    /// playlist (`../720p/segment-12.3.m4s`), with the report's query.
    pub fn report_targets(&self) -> Vec<String> {
        self.reports
            .iter()
            .map(|r| {
                let (path, query) = split_query(&r.uri);
                let dir = path.rfind('/').map_or("", |i| &path[..=i]);
                let file = match r.last_part {
                    Some(p) => format!("segment-{}.{p}.m4s", r.last_msn),
                    None => format!("segment-{}.m4s", r.last_msn),
                };
                match query {
                    Some(q) => format!("{dir}{file}?{q}"),
                    None => format!("{dir}{file}"),
                }
            })
            .collect()
    }

    /// Checks that every report points at a part (or segment) that `exists`.
    pub fn check_reports(&self, mut exists: impl FnMut(&str) -> bool) -> Result<(), Vec<String>> {
        let missing: Vec<String> = self
            .report_targets()
            .into_iter()
            .filter(|uri| !exists(uri))
            .map(|uri| format!("rendition report points at {uri}, which does not exist"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }
}

/// Parses and checks an LL-HLS media playlist; every broken rule is one message.
pub fn check_media_playlist(text: &str) -> Result<LlPlaylist, Vec<String>> {
    let known = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
        Ok(_) => return Err(vec!["m3u8-rs reads a master playlist".into()]),
        Err(e) => return Err(vec![format!("m3u8-rs rejects the playlist: {e:?}")]),
    };
    let mut errors = Vec::new();
    let mut pl = LlPlaylist {
        version: known.version.unwrap_or(1),
        target_duration: known.target_duration,
        media_sequence: known.media_sequence,
        discontinuity_sequence: known.discontinuity_sequence,
        ended: known.end_list,
        ..Default::default()
    };
    read_lines(text, &mut pl, &mut errors);
    let listed: Vec<&str> = known.segments.iter().map(|s| s.uri.as_str()).collect();
    let ours: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
    if listed != ours {
        errors.push(format!("m3u8-rs lists {listed:?}, the LL reading {ours:?}"));
    }
    check_numbering(&pl, &mut errors);
    check_parts(
        &mut pl,
        text.contains("\n#EXT-X-INDEPENDENT-SEGMENTS"),
        &mut errors,
    );
    check_server_control(&mut pl, &mut errors);
    check_hint(&pl, &mut errors);
    if errors.is_empty() {
        Ok(pl)
    } else {
        Err(errors)
    }
}

/// The LL reading: segments with their parts, and the LL tags.
fn read_lines(text: &str, pl: &mut LlPlaylist, errors: &mut Vec<String>) {
    let mut parts: Vec<LlPart> = Vec::new();
    let mut extinf: Option<f64> = None;
    let (mut discontinuity, mut gap) = (false, false);
    let (mut server_control, mut part_inf) = (false, false);
    for line in text.lines().map(str::trim_end) {
        let Some(tag) = line.strip_prefix('#') else {
            if line.is_empty() {
                continue;
            }
            let Some(duration_secs) = extinf.take() else {
                errors.push(format!("URI {line} without EXTINF"));
                continue;
            };
            let number = segment_number(line).unwrap_or_else(|| {
                errors.push(format!("segment URI {line} is not segment-N.m4s"));
                u64::MAX
            });
            pl.segments.push(LlSegment {
                number,
                uri: line.to_string(),
                duration_secs,
                discontinuity,
                gap,
                parts: std::mem::take(&mut parts),
            });
            (discontinuity, gap) = (false, false);
            continue;
        };
        let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
        let attrs = || attributes(value);
        match name {
            "EXTINF" => extinf = value.split(',').next().and_then(|d| d.parse().ok()),
            "EXT-X-DISCONTINUITY" => discontinuity = true,
            "EXT-X-GAP" => gap = true,
            "EXT-X-PART" => match part(&attrs()) {
                Ok(p) => parts.push(p),
                Err(e) => errors.push(format!("{line}: {e}")),
            },
            "EXT-X-PART-INF" => {
                part_inf = true;
                match attrs().get("PART-TARGET").and_then(|v| v.parse().ok()) {
                    Some(t) if t > 0.0 => pl.part_target = t,
                    _ => errors.push(format!("{line}: no positive PART-TARGET")),
                }
            }
            "EXT-X-SERVER-CONTROL" => {
                server_control = true;
                let a = attrs();
                pl.can_block_reload = a.get("CAN-BLOCK-RELOAD") == Some("YES");
                pl.part_hold_back = a
                    .get("PART-HOLD-BACK")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
                pl.hold_back = a.get("HOLD-BACK").and_then(|v| v.parse().ok());
                pl.can_skip_until = a.get("CAN-SKIP-UNTIL").and_then(|v| v.parse().ok());
            }
            "EXT-X-SKIP" => match attrs().get("SKIPPED-SEGMENTS").and_then(|v| v.parse().ok()) {
                Some(n) => pl.skipped = n,
                None => errors.push(format!("{line}: no SKIPPED-SEGMENTS")),
            },
            "EXT-X-PRELOAD-HINT" => {
                let a = attrs();
                if a.get("TYPE") != Some("PART") {
                    errors.push(format!("{line}: TYPE is not PART"));
                }
                pl.preload_hint = a.get("URI").map(str::to_string);
            }
            "EXT-X-RENDITION-REPORT" => {
                let a = attrs();
                match (a.get("URI"), a.get("LAST-MSN").and_then(|v| v.parse().ok())) {
                    (Some(uri), Some(last_msn)) => pl.reports.push(LlReport {
                        uri: uri.to_string(),
                        last_msn,
                        last_part: a.get("LAST-PART").and_then(|v| v.parse().ok()),
                    }),
                    _ => errors.push(format!("{line}: URI or LAST-MSN missing")),
                }
            }
            _ => {}
        }
    }
    pl.open_parts = parts;
    if !server_control {
        errors.push("no EXT-X-SERVER-CONTROL".into());
    }
    if !part_inf {
        errors.push("no EXT-X-PART-INF".into());
    }
}

/// Segment numbers follow the media sequence and the skip count.
fn check_numbering(pl: &LlPlaylist, errors: &mut Vec<String>) {
    if pl.skipped > 0 {
        if pl.version < 9 {
            errors.push(format!("EXT-X-SKIP needs version 9+, has {}", pl.version));
        }
        if pl.can_skip_until.is_none() {
            errors.push("EXT-X-SKIP without CAN-SKIP-UNTIL".into());
        }
    }
    let mut expected = pl.media_sequence + pl.skipped;
    for s in &pl.segments {
        if s.number != expected {
            errors.push(if expected == pl.media_sequence + pl.skipped {
                format!(
                    "first listed segment is {} but MEDIA-SEQUENCE {} + SKIPPED-SEGMENTS {} = {expected}",
                    s.number, pl.media_sequence, pl.skipped
                )
            } else {
                format!("segment {} listed where {expected} belongs", s.number)
            });
        }
        expected = s.number.saturating_add(1);
    }
}

/// Part durations, sums, numbering and independence.
fn check_parts(pl: &mut LlPlaylist, independent_segments: bool, errors: &mut Vec<String>) {
    let next = pl.next_segment();
    let target = pl.part_target;
    let all = pl
        .segments
        .iter()
        .map(|s| (s.number, s.parts.as_slice(), Some(s.duration_secs)))
        .chain(std::iter::once((next, pl.open_parts.as_slice(), None)));
    for (number, parts, extinf) in all {
        for (i, p) in parts.iter().enumerate() {
            if (p.number, p.index) != (number, i as u32) {
                errors.push(format!("{} listed as part {i} of segment {number}", p.uri));
            }
            if p.duration_secs > target + MS + EPS {
                errors.push(format!(
                    "{} lasts {} s > PART-TARGET {target}",
                    p.uri, p.duration_secs
                ));
            }
            // §4.4.4.9: at least 85 % of PART-TARGET, except independent and
            // gap parts, parts before a gap and the final part of a segment
            // (the open segment's latest part may turn out to be final).
            let exempt = p.independent
                || p.gap
                || parts.get(i + 1).is_some_and(|n| n.gap)
                || i + 1 == parts.len();
            if !exempt && p.duration_secs + MS + EPS < 0.85 * target {
                errors.push(format!(
                    "{} lasts {} s < 85 % of PART-TARGET {target}",
                    p.uri, p.duration_secs
                ));
            }
        }
        if independent_segments && parts.first().is_some_and(|p| !p.independent && !p.gap) {
            errors.push(format!(
                "segment {number} does not start with an INDEPENDENT part"
            ));
        }
        if let Some(extinf) = extinf.filter(|_| !parts.is_empty()) {
            let sum: f64 = parts.iter().map(|p| p.duration_secs).sum();
            if (sum - extinf).abs() > MS * parts.len() as f64 + EPS {
                errors.push(format!(
                    "parts of segment {number} sum to {sum:.3} s, EXTINF is {extinf}"
                ));
            }
        }
    }
    // Parts go in playlist order (§6.2.2): after the first segment that
    // lists parts, every segment does (gaps aside).
    if let Some(first) = pl.segments.iter().position(|s| !s.parts.is_empty()) {
        for s in pl.segments[first..]
            .iter()
            .filter(|s| s.parts.is_empty() && !s.gap)
        {
            errors.push(format!(
                "segment {} lists no parts after segment {} did",
                s.number, pl.segments[first].number
            ));
        }
    }
    // Parts SHOULD go once more than 3 target durations from the end (§6.2.2).
    let mut from_end = pl.open_parts.iter().map(|p| p.duration_secs).sum::<f64>();
    for s in pl.segments.iter().rev() {
        if !s.parts.is_empty() && from_end > 3.0 * pl.target_duration as f64 + MS {
            pl.warnings.push(format!(
                "segment {} lists parts {from_end:.3} s from the end",
                s.number
            ));
        }
        from_end += s.duration_secs;
    }
}

fn check_server_control(pl: &mut LlPlaylist, errors: &mut Vec<String>) {
    let (pt, td) = (pl.part_target, pl.target_duration as f64);
    if !pl.can_block_reload {
        errors.push("CAN-BLOCK-RELOAD=YES missing".into());
    }
    if pl.part_hold_back + EPS < 2.0 * pt {
        errors.push(format!(
            "PART-HOLD-BACK {} < 2 × PART-TARGET {pt}",
            pl.part_hold_back
        ));
    } else if pl.part_hold_back + EPS < 3.0 * pt {
        pl.warnings.push(format!(
            "PART-HOLD-BACK {} < 3 × PART-TARGET {pt}",
            pl.part_hold_back
        ));
    }
    if let Some(h) = pl.hold_back.filter(|h| h + EPS < 3.0 * td) {
        errors.push(format!("HOLD-BACK {h} < 3 × target duration {td}"));
    }
    if let Some(u) = pl.can_skip_until.filter(|u| u + EPS < 6.0 * td) {
        errors.push(format!("CAN-SKIP-UNTIL {u} < 6 × target duration {td}"));
    }
}

/// The hint names the part after the last listed one: the next index of the
/// open segment (or the first part of the segment after it), or the first
/// part of the next segment when the last listed part closed a segment.
fn check_hint(pl: &LlPlaylist, errors: &mut Vec<String>) {
    if pl.ended && pl.preload_hint.is_some() {
        errors.push("EXT-X-PRELOAD-HINT in a playlist with EXT-X-ENDLIST".into());
    }
    let Some(hint) = &pl.preload_hint else {
        if !pl.ended {
            errors.push("no EXT-X-PRELOAD-HINT on a live playlist".into());
        }
        return;
    };
    let Some(named) = part_id(hint) else {
        errors.push(format!("preload hint {hint} is not segment-N.P.m4s"));
        return;
    };
    let next = pl.next_segment();
    let allowed: Vec<(u64, u32)> = match pl.open_parts.last() {
        Some(p) => vec![(p.number, p.index + 1), (p.number + 1, 0)],
        None => vec![(next, 0)],
    };
    if !allowed.contains(&named) {
        errors.push(format!(
            "preload hint {hint} is not the next part, one of {allowed:?}"
        ));
    }
}

fn part(a: &Attrs) -> Result<LlPart, String> {
    let uri = a.get("URI").ok_or("no URI")?;
    let (number, index) = part_id(uri).ok_or_else(|| format!("{uri} is not segment-N.P.m4s"))?;
    let duration_secs = a
        .get("DURATION")
        .and_then(|d| d.parse().ok())
        .ok_or("no DURATION")?;
    Ok(LlPart {
        number,
        index,
        uri: uri.to_string(),
        duration_secs,
        independent: a.get("INDEPENDENT") == Some("YES"),
        gap: a.get("GAP") == Some("YES"),
    })
}

fn split_query(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (uri, None),
    }
}

/// The file name of a URI without its query, after `segment-`.
fn numbered(uri: &str) -> Option<&str> {
    let path = split_query(uri).0;
    path.rsplit('/')
        .next()?
        .strip_prefix("segment-")?
        .strip_suffix(".m4s")
}

/// `segment-N.m4s` → N.
pub fn segment_number(uri: &str) -> Option<u64> {
    numbered(uri)?.parse().ok()
}

/// `segment-N.P.m4s` → (N, P).
pub fn part_id(uri: &str) -> Option<(u64, u32)> {
    let (n, p) = numbered(uri)?.split_once('.')?;
    Some((n.parse().ok()?, p.parse().ok()?))
}

/// The hinted part (`EXT-X-PRELOAD-HINT`, `segment-N.P.m4s`) of a playlist:
/// (N, P). Panics when there is none.
pub fn hint(playlist: &str) -> (u64, u32) {
    let uri = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
    part_id(uri).unwrap_or_else(|| panic!("hint is not a part: {uri}"))
}

/// An attribute list (RFC 8216bis §4.2), quoted values unquoted.
struct Attrs(Vec<(String, String)>);

impl Attrs {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn attributes(list: &str) -> Attrs {
    let mut out = Vec::new();
    let mut rest = list;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            rest = quoted.get(end + 1..).unwrap_or("");
            &quoted[..end]
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = &rest[..end];
            rest = &rest[end..];
            v
        };
        out.push((name, value.to_string()));
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Attrs(out)
}
