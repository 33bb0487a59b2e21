//! MPD value formats (ISO/IEC 23009-1 §5.3, the MPD schema): XML-escaped
//! attributes, `FrameRateType`, `xs:double` decimals, and the run-length
//! `S` elements of a `SegmentTimeline` (§5.3.9.6).

use super::TimelineEntry;

/// One `S` element: `r + 1` segments of duration `d`, the first at `t`
/// (or right after the previous run when `t` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub t: Option<u64>,
    pub d: u64,
    pub r: u64,
}

pub(crate) fn timeline_runs(entries: &[TimelineEntry]) -> Vec<Run> {
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
pub(crate) fn frame_rate_type(fps: f64) -> Option<String> {
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

/// An `xs:double` with at most three decimals and no trailing zeros
/// (`1.5`, `2`, `0.033`); `INF` for +∞; `None` for NaN, −∞ and negatives.
pub(crate) fn decimal(v: f64) -> Option<String> {
    if v == f64::INFINITY {
        return Some("INF".into());
    }
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    // `as` saturates on values too large for u64.
    let ms = (v * 1000.0).round() as u64;
    let mut s = format!("{}.{:03}", ms / 1000, ms % 1000);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    Some(s)
}

/// Writes ` name="value"` with the value XML-escaped.
pub(crate) fn attr(out: &mut String, name: &str, value: &str) {
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
    fn decimals() {
        assert_eq!(decimal(1.5).as_deref(), Some("1.5"));
        assert_eq!(decimal(2.0).as_deref(), Some("2"));
        assert_eq!(decimal(0.0333).as_deref(), Some("0.033"));
        assert_eq!(decimal(0.0).as_deref(), Some("0"));
        assert_eq!(decimal(f64::INFINITY).as_deref(), Some("INF"));
        assert_eq!(decimal(-1.0), None);
        assert_eq!(decimal(f64::NAN), None);
    }

    #[test]
    fn attributes_are_escaped() {
        let mut s = String::new();
        attr(&mut s, "a", "x&<>\"'\n\u{1}y");
        assert_eq!(s, " a=\"x&amp;&lt;&gt;&quot;&apos;&#10;y\"");
    }
}
