//! The LL-HLS checker of `common/llhls.rs`: it accepts what the playlist
//! writer makes (live edge, delta updates, discontinuities, viewer queries)
//! and catches each rule broken by hand.

#[path = "common/llhls.rs"]
mod llhls;

use llhls::{check_media_playlist, part_id, segment_number};
use streaming_media::hls::{
    LowLatency, MediaPlaylist, MediaSegment, OpenSegment, PartEntry, RenditionReport, Skip,
    write_media,
};

fn parts(n: u64, count: u32, secs: f64) -> Vec<PartEntry> {
    (0..count)
        .map(|p| PartEntry {
            duration_secs: secs,
            uri: format!("segment-{n}.{p}.m4s"),
            independent: p == 0,
            gap: false,
        })
        .collect()
}

/// `count` segments of 2 s from `first`, parts (4 × 0.5 s) on the last three,
/// and an open segment with `open` parts.
fn playlist(first: u64, count: u64, open: u32) -> MediaPlaylist {
    let end = first + count;
    MediaPlaylist {
        target_duration_secs: 2,
        media_sequence: first,
        independent_segments: true,
        segments: (first..end)
            .map(|n| MediaSegment {
                number: n,
                duration_secs: 2.0,
                uri: format!("segment-{n}.m4s"),
                map_uri: "init-1.mp4".into(),
                program_date_time_ms: Some(1_795_820_288_000 + n as i64 * 2000),
                parts: if n + 3 >= end {
                    parts(n, 4, 0.5)
                } else {
                    vec![]
                },
                ..Default::default()
            })
            .collect(),
        low_latency: Some(LowLatency {
            part_target_secs: 0.5,
            part_hold_back_secs: 1.5,
            can_block_reload: true,
            can_skip_until_secs: Some(12.0),
            hold_back_secs: Some(6.0),
            open_segment: Some(OpenSegment {
                number: end,
                map_uri: "init-1.mp4".into(),
                parts: parts(end, open, 0.5),
                ..Default::default()
            }),
            preload_hint: Some(if open == 0 {
                format!("segment-{end}.0.m4s")
            } else {
                format!("segment-{end}.{open}.m4s")
            }),
            rendition_reports: vec![RenditionReport {
                uri: "../720p/index.m3u8".into(),
                last_msn: end,
                last_part: Some(open.saturating_sub(1)),
            }],
        }),
        ..Default::default()
    }
}

#[test]
fn accepts_the_writers_live_edge() {
    let text = write_media(&playlist(30, 8, 2));
    let pl = check_media_playlist(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(
        (pl.media_sequence, pl.skipped, pl.target_duration),
        (30, 0, 2)
    );
    assert_eq!(pl.segments.len(), 8);
    assert_eq!(
        pl.segments.iter().filter(|s| !s.parts.is_empty()).count(),
        3
    );
    assert_eq!(pl.open_parts.len(), 2);
    assert_eq!(pl.last_part(), Some((38, 1)));
    assert_eq!(pl.preload_hint.as_deref(), Some("segment-38.2.m4s"));
    assert_eq!(
        (pl.part_target, pl.part_hold_back, pl.hold_back),
        (0.5, 1.5, Some(6.0))
    );
    assert_eq!(pl.can_skip_until, Some(12.0));
    assert!(pl.can_block_reload && !pl.ended);
    assert!(pl.warnings.is_empty(), "{:?}", pl.warnings);
    assert_eq!(pl.report_targets(), ["../720p/segment-38.1.m4s"]);
    assert!(
        pl.check_reports(|uri| uri == "../720p/segment-38.1.m4s")
            .is_ok()
    );
    let err = pl.check_reports(|_| false).unwrap_err();
    assert!(err[0].contains("segment-38.1.m4s"), "{err:?}");
}

#[test]
fn accepts_delta_updates_a_closed_segment_and_viewer_queries() {
    // Delta update: 10 segments and half a second of parts, four skipped.
    let text = write_media(&MediaPlaylist {
        skip: Skip::Yes,
        ..playlist(10, 10, 1)
    });
    let pl = check_media_playlist(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!((pl.skipped, pl.segments[0].number, pl.version), (4, 14, 9));

    // No open part yet: the hint names the first part of the next segment.
    let text = write_media(&playlist(0, 4, 0));
    let pl = check_media_playlist(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(pl.last_part(), Some((3, 3)));
    assert_eq!(pl.preload_hint.as_deref(), Some("segment-4.0.m4s"));

    // Per-viewer query on every URI (as the server's `sid` slot writes it).
    let text = write_media(&playlist(0, 6, 3))
        .replace(".m4s", ".m4s?sid=abc")
        .replace(".mp4", ".mp4?sid=abc")
        .replace(".m3u8", ".m3u8?sid=abc");
    let pl = check_media_playlist(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(pl.report_targets(), ["../720p/segment-6.2.m4s?sid=abc"]);
}

#[test]
fn uri_scheme() {
    assert_eq!(segment_number("segment-12.m4s?sid=1"), Some(12));
    assert_eq!(part_id("../a/segment-12.3.m4s"), Some((12, 3)));
    assert_eq!(part_id("segment-12.m4s"), None);
    assert_eq!(segment_number("init-1.mp4"), None);
}

/// `text` with `from` replaced by `to` (which must occur), checked: the
/// errors, which must include one containing `expect`.
fn broken(text: &str, from: &str, to: &str, expect: &str) {
    assert!(text.contains(from), "{from:?} not in\n{text}");
    let bad = text.replacen(from, to, 1);
    match check_media_playlist(&bad) {
        Ok(_) => panic!("accepted with {from:?} → {to:?}:\n{bad}"),
        Err(e) => assert!(
            e.iter().any(|m| m.contains(expect)),
            "{expect:?} not among {e:?}"
        ),
    }
}

#[test]
fn catches_each_broken_rule() {
    let text = write_media(&playlist(20, 6, 2));
    let part = "#EXT-X-PART:DURATION=0.500,URI=\"segment-24.1.m4s\"";
    // Every part ≤ PART-TARGET.
    broken(
        &text,
        part,
        "#EXT-X-PART:DURATION=0.502,URI=\"segment-24.1.m4s\"",
        "> PART-TARGET",
    );
    // Parts sum to EXTINF (the part is shorter, so within the target).
    broken(
        &text,
        part,
        "#EXT-X-PART:DURATION=0.400,URI=\"segment-24.1.m4s\"",
        "sum to",
    );
    // … and a part in the middle of a segment lasts at least 85 % of PART-TARGET.
    broken(
        &text,
        part,
        "#EXT-X-PART:DURATION=0.400,URI=\"segment-24.1.m4s\"",
        "85 %",
    );
    // Parts numbered from 0 without holes.
    broken(
        &text,
        "URI=\"segment-24.1.m4s\"",
        "URI=\"segment-24.2.m4s\"",
        "listed as part 1",
    );
    // Each segment starts with an independent part.
    broken(
        &text,
        "URI=\"segment-24.0.m4s\",INDEPENDENT=YES",
        "URI=\"segment-24.0.m4s\"",
        "INDEPENDENT",
    );
    // PART-HOLD-BACK ≥ 2 × PART-TARGET.
    broken(
        &text,
        "PART-HOLD-BACK=1.500",
        "PART-HOLD-BACK=0.900",
        "PART-HOLD-BACK",
    );
    // HOLD-BACK ≥ 3 × and CAN-SKIP-UNTIL ≥ 6 × target duration.
    broken(&text, "HOLD-BACK=6.000,", "HOLD-BACK=5.000,", "HOLD-BACK 5");
    broken(
        &text,
        "CAN-SKIP-UNTIL=12.000",
        "CAN-SKIP-UNTIL=11.000",
        "CAN-SKIP-UNTIL",
    );
    // CAN-BLOCK-RELOAD=YES.
    broken(&text, "CAN-BLOCK-RELOAD=YES,", "", "CAN-BLOCK-RELOAD");
    // The hint names the next part: not one further, not absent on a live playlist.
    broken(
        &text,
        "URI=\"segment-26.2.m4s\"",
        "URI=\"segment-26.3.m4s\"",
        "preload hint",
    );
    broken(
        &text,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"segment-26.2.m4s\"\n",
        "",
        "no EXT-X-PRELOAD-HINT",
    );
    // No hint once ended (§4.4.5.3).
    broken(
        &text,
        "#EXT-X-PRELOAD-HINT:",
        "#EXT-X-ENDLIST\n#EXT-X-PRELOAD-HINT:",
        "EXT-X-PRELOAD-HINT in a playlist with EXT-X-ENDLIST",
    );
    // Numbering follows the media sequence.
    broken(
        &text,
        "#EXT-X-MEDIA-SEQUENCE:20",
        "#EXT-X-MEDIA-SEQUENCE:19",
        "first listed segment",
    );
    // No PART-INF.
    broken(
        &text,
        "#EXT-X-PART-INF:PART-TARGET=0.500\n",
        "",
        "EXT-X-PART-INF",
    );
    // m3u8-rs must accept the playlist.
    broken(&text, "#EXTM3U\n", "", "m3u8-rs");

    // EXT-X-SKIP: the count and the version.
    let delta = write_media(&MediaPlaylist {
        skip: Skip::Yes,
        ..playlist(10, 10, 1)
    });
    broken(
        &delta,
        "SKIPPED-SEGMENTS=4",
        "SKIPPED-SEGMENTS=3",
        "SKIPPED-SEGMENTS 3",
    );
    broken(&delta, "#EXT-X-VERSION:9", "#EXT-X-VERSION:7", "version 9");
}

#[test]
fn parts_are_removed_in_order() {
    // Segment 24 of 23..=25 loses its parts: parts were not removed oldest first.
    let text: String = write_media(&playlist(20, 6, 2))
        .lines()
        .filter(|l| !l.contains("URI=\"segment-24."))
        .flat_map(|l| [l, "\n"])
        .collect();
    let errors = check_media_playlist(&text).expect_err("accepted");
    assert_eq!(
        errors,
        ["segment 24 lists no parts after segment 23 did"],
        "{text}"
    );
}

#[test]
fn part_hold_back_under_three_targets_is_a_warning() {
    let text =
        write_media(&playlist(0, 4, 1)).replace("PART-HOLD-BACK=1.500", "PART-HOLD-BACK=1.200");
    let pl = check_media_playlist(&text).expect("valid");
    assert_eq!(pl.warnings.len(), 1, "{:?}", pl.warnings);
    assert!(pl.warnings[0].contains("3 × PART-TARGET"));
}
