use super::*;
use crate::ll::next::*;
use crate::ll::samples::{DELTA, PLAIN, RFC_STYLE, SERVER};

fn at(msn: u64, index: u32) -> PartRef {
    PartRef { msn, index }
}

#[test]
fn server_shape_is_read_with_parts_in_their_segments() {
    let pl = parse(SERVER).unwrap();
    assert!(pl.is_low_latency());
    assert_eq!(pl.media_sequence, 19);
    assert_eq!(pl.skipped_segments, 0);
    assert_eq!(pl.target_duration, 2);
    assert_eq!(pl.part_target, Some(0.5));
    assert_eq!(
        pl.server_control,
        ServerControl {
            can_block_reload: true,
            part_hold_back: Some(1.5),
            hold_back: None,
            can_skip_until: Some(12.0),
        }
    );
    let msns: Vec<u64> = pl.segments.iter().map(|s| s.msn).collect();
    assert_eq!(msns, [19, 20, 21, 22]);
    assert!(pl.segments[0].parts.is_empty() && pl.segments[1].parts.is_empty());
    assert_eq!(pl.segments[2].parts.len(), 4);
    assert_eq!(pl.segments[3].parts[3].at, at(22, 3));
    assert_eq!(pl.segments[3].parts[3].uri, "segment-22.3.m4s?sid=v1");
    assert!(pl.segments[3].parts[0].independent && !pl.segments[3].parts[1].independent);
    assert_eq!(pl.open_msn(), 23);
    assert_eq!(pl.open.len(), 2);
    assert_eq!(pl.newest_part().unwrap().at, at(23, 1));
    assert_eq!(pl.open_map.as_deref(), Some("init.mp4?sid=v1"));
    assert_eq!(pl.map_for(at(21, 2)), Some("init.mp4?sid=v1"));
    assert_eq!(
        pl.preload_hint,
        Some(PreloadHint {
            kind: "PART".into(),
            uri: "segment-23.2.m4s?sid=v1".into()
        })
    );
    assert_eq!(
        pl.rendition_reports,
        [RenditionReport {
            uri: "../240p/index.m3u8?sid=v1".into(),
            last_msn: Some(23),
            last_part: Some(1)
        }]
    );
    // 2025-01-01T00:00:00Z + 4 segments of 2 s + two 0.5 s parts.
    assert_eq!(pl.part_end_ms(at(23, 1)), Some(1_735_689_600_000 + 9_000));
    assert_eq!(pl.part_end_ms(at(21, 0)), Some(1_735_689_600_000 + 4_500));
    assert_eq!(pl.part_end_ms(at(23, 2)), None, "not produced yet");
}

#[test]
fn rfc_style_open_segment_after_the_last_extinf() {
    let pl = parse(RFC_STYLE).unwrap();
    assert!(pl.is_low_latency());
    assert_eq!(pl.segments.len(), 6);
    assert_eq!(pl.segments[5].msn, 271);
    assert_eq!(pl.segments[5].parts.len(), 12);
    assert_eq!(pl.segments[5].parts[11].uri, "filePart271.11.mp4");
    assert_eq!(pl.open_msn(), 272);
    let open: Vec<&str> = pl.open.iter().map(|p| p.uri.as_str()).collect();
    assert_eq!(
        open,
        [
            "filePart272.a.mp4",
            "filePart272.b.mp4",
            "filePart272.c.mp4"
        ]
    );
    assert_eq!(pl.open[2].at, at(272, 2));
    assert_eq!(pl.rendition_reports.len(), 2);
    assert_eq!(pl.rendition_reports[1].last_part, Some(1));
    // The next request is for part 3 of 272; its name does not carry it.
    assert_eq!(next_part(&pl), at(272, 3));
    assert_eq!(
        part_ref_from_uri(&pl.preload_hint.as_ref().unwrap().uri),
        None
    );
}

#[test]
fn delta_update_numbers_segments_after_the_skipped_ones() {
    let pl = parse(DELTA).unwrap();
    assert_eq!(pl.skipped_segments, 2);
    assert_eq!(pl.first_msn(), 21);
    let msns: Vec<u64> = pl.segments.iter().map(|s| s.msn).collect();
    assert_eq!(msns, [21, 22, 23]);
    assert_eq!(pl.segments[2].parts[3].at, at(23, 3));
    assert!(pl.open.is_empty());
    assert_eq!(pl.open_msn(), 24);
    // Segment 23 just completed: the next part is the first of 24, as hinted.
    assert_eq!(next_part(&pl), at(24, 0));
    let hint = &pl.preload_hint.as_ref().unwrap().uri;
    assert_eq!(part_ref_from_uri(hint), Some(at(24, 0)));
    // No date in a delta playlist here: no production time either.
    assert_eq!(pl.part_end_ms(at(23, 3)), None);
}

#[test]
fn plain_playlist_is_not_low_latency() {
    let pl = parse(PLAIN).unwrap();
    assert!(!pl.is_low_latency());
    assert_eq!(pl.segments.len(), 2);
    assert_eq!(pl.parts().count(), 0);
    assert_eq!(start_part(&pl), None);
    assert_eq!(pl.open_map.as_deref(), Some("init.mp4"));
}

#[test]
fn refused_playlists_say_why() {
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nsource/index.m3u8\n";
    assert_eq!(parse(master), Err(LlError::NotMedia));
    let no_duration = SERVER.replace("DURATION=0.5,URI=\"segment-23.1", "URI=\"segment-23.1");
    match parse(&no_duration) {
        Err(LlError::Attribute { tag, line, .. }) => {
            assert_eq!(tag, "EXT-X-PART");
            assert_eq!(line, 27);
        }
        other => panic!("expected an attribute error, got {other:?}"),
    }
    let unterminated = SERVER.replace(
        "URI=\"segment-23.2.m4s?sid=v1\"",
        "URI=\"segment-23.2.m4s?sid=v1",
    );
    assert!(matches!(
        parse(&unterminated),
        Err(LlError::Attribute {
            tag: "EXT-X-PRELOAD-HINT",
            ..
        })
    ));
    let bad_skip = DELTA.replace("SKIPPED-SEGMENTS=2", "SKIPPED-SEGMENTS=-2");
    assert!(matches!(
        parse(&bad_skip),
        Err(LlError::Attribute {
            tag: "EXT-X-SKIP",
            ..
        })
    ));
    let nan = SERVER.replace("PART-TARGET=0.5", "PART-TARGET=NaN");
    assert!(parse(&nan).is_err());
}

#[test]
fn attribute_lists_keep_commas_inside_quotes() {
    let a = attributes("TYPE=PART,URI=\"a,b.m4s?x=1,2\",BYTERANGE-START=0").unwrap();
    assert_eq!(
        a,
        [
            ("TYPE", "PART"),
            ("URI", "a,b.m4s?x=1,2"),
            ("BYTERANGE-START", "0")
        ]
    );
    assert!(attributes("URI=\"x\"garbage").is_err());
    assert!(attributes("NOVALUE").is_err());
    assert_eq!(attributes("").unwrap(), []);
}
