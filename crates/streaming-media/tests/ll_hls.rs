//! Low-Latency HLS media playlists: exact text, what a player without LL
//! support sees (read by `m3u8-rs`, an independent parser), delta updates,
//! and the open segment.

use m3u8_rs::Playlist;
use streaming_media::hls::{
    LowLatency, MediaPlaylist, MediaSegment, OpenSegment, PartEntry, RenditionReport, Skip,
    write_media,
};

const PDT0_MS: i64 = 1_795_820_288_000; // 2026-11-27T22:58:08Z

fn parts(n: u64, count: u32) -> Vec<PartEntry> {
    (0..count)
        .map(|p| PartEntry {
            duration_secs: 0.5,
            uri: format!("segment-{n}.{p}.m4s"),
            independent: p == 0,
            gap: false,
        })
        .collect()
}

fn seg(n: u64, with_parts: bool) -> MediaSegment {
    MediaSegment {
        number: n,
        duration_secs: 2.0,
        uri: format!("segment-{n}.m4s"),
        map_uri: "init-1.mp4".into(),
        program_date_time_ms: Some(PDT0_MS + n as i64 * 2000),
        parts: if with_parts { parts(n, 4) } else { vec![] },
        ..Default::default()
    }
}

/// Segments `first..first+count` of 2 s with four 0.5 s parts listed on the
/// last `with_parts`, then an open segment with two parts.
fn ll_playlist(first: u64, count: u64, with_parts: u64) -> MediaPlaylist {
    let end = first + count;
    MediaPlaylist {
        target_duration_secs: 2,
        media_sequence: first,
        segments: (first..end)
            .map(|n| seg(n, n + with_parts >= end))
            .collect(),
        independent_segments: true,
        low_latency: Some(LowLatency {
            part_target_secs: 0.5,
            part_hold_back_secs: 1.5,
            can_block_reload: true,
            can_skip_until_secs: Some(12.0),
            hold_back_secs: None,
            open_segment: Some(OpenSegment {
                number: end,
                map_uri: "init-1.mp4".into(),
                program_date_time_ms: Some(PDT0_MS + end as i64 * 2000),
                parts: parts(end, 2),
                ..Default::default()
            }),
            preload_hint: Some(format!("segment-{end}.2.m4s")),
            rendition_reports: vec![
                RenditionReport {
                    uri: "../720p/index.m3u8".into(),
                    last_msn: end,
                    last_part: Some(1),
                },
                RenditionReport {
                    uri: "../audio/index.m3u8".into(),
                    last_msn: end,
                    last_part: None,
                },
            ],
        }),
        ..Default::default()
    }
}

const LL: &str = r#"#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=1.500
#EXT-X-PART-INF:PART-TARGET=0.500
#EXT-X-MEDIA-SEQUENCE:20
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init-1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-27T22:58:48.000Z
#EXTINF:2.000,
segment-20.m4s
#EXT-X-PART:DURATION=0.500,URI="segment-21.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="segment-21.1.m4s"
#EXT-X-PART:DURATION=0.500,URI="segment-21.2.m4s"
#EXT-X-PART:DURATION=0.500,URI="segment-21.3.m4s"
#EXTINF:2.000,
segment-21.m4s
#EXT-X-PART:DURATION=0.500,URI="segment-22.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="segment-22.1.m4s"
#EXT-X-PART:DURATION=0.500,URI="segment-22.2.m4s"
#EXT-X-PART:DURATION=0.500,URI="segment-22.3.m4s"
#EXTINF:2.000,
segment-22.m4s
#EXT-X-PART:DURATION=0.500,URI="segment-23.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="segment-23.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="segment-23.2.m4s"
#EXT-X-RENDITION-REPORT:URI="../720p/index.m3u8",LAST-MSN=23,LAST-PART=1
#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8",LAST-MSN=23
"#;

#[test]
fn ll_exact_text() {
    assert_eq!(write_media(&ll_playlist(20, 3, 2)), LL);
}

fn parse(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => m,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

/// What a player that ignores the LL tags reads: the same segments, maps,
/// dates and durations as the plain playlist.
#[test]
fn players_without_ll_read_the_same_segments() {
    let ll = ll_playlist(40, 8, 3);
    let plain = MediaPlaylist {
        low_latency: None,
        ..ll.clone()
    };
    let (a, b) = (parse(&write_media(&ll)), parse(&write_media(&plain)));
    assert_eq!(a.segments.len(), 8);
    assert_eq!(
        (a.version, a.target_duration, a.media_sequence),
        (b.version, b.target_duration, b.media_sequence)
    );
    for (x, y) in a.segments.iter().zip(&b.segments) {
        assert_eq!(x.uri, y.uri);
        assert_eq!(x.duration, y.duration);
        assert_eq!(x.map, y.map);
        assert_eq!(x.program_date_time, y.program_date_time);
        assert_eq!(x.discontinuity, y.discontinuity);
    }
    // The parts are there for an LL player, as tags of their parent segment.
    let part_tags: Vec<usize> = a
        .segments
        .iter()
        .map(|s| s.unknown_tags.iter().filter(|t| t.tag == "X-PART").count())
        .collect();
    assert_eq!(part_tags, [0, 0, 0, 0, 0, 4, 4, 4]);
}

/// 10 segments of 2 s with a discontinuity (new init) at 12, and 1 s of
/// open parts: with CAN-SKIP-UNTIL=12 s the segments ending more than 12 s
/// before the end of the last parent segment (10 to 13) are skipped.
fn with_discontinuity() -> MediaPlaylist {
    let mut p = ll_playlist(10, 10, 3);
    p.discontinuity_sequence = 4;
    for s in &mut p.segments[2..] {
        s.map_uri = "init-2.mp4".into();
    }
    p.segments[2].discontinuity = true;
    if let Some(o) = p.low_latency.as_mut().and_then(|l| l.open_segment.as_mut()) {
        o.map_uri = "init-2.mp4".into();
    }
    p
}

#[test]
fn delta_update_skips_the_oldest_segments() {
    let full = with_discontinuity();
    let delta = MediaPlaylist {
        skip: Skip::Yes,
        ..full.clone()
    };
    let text = write_media(&delta);
    let head: Vec<&str> = text.lines().take(9).collect();
    assert_eq!(
        head,
        [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            "#EXT-X-TARGETDURATION:2",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=1.500",
            "#EXT-X-PART-INF:PART-TARGET=0.500",
            "#EXT-X-MEDIA-SEQUENCE:10",
            "#EXT-X-DISCONTINUITY-SEQUENCE:4",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=4",
        ]
    );
    // The first segment written carries its map and date.
    let rest: Vec<&str> = text.lines().skip(9).take(4).collect();
    assert_eq!(
        rest,
        [
            "#EXT-X-MAP:URI=\"init-2.mp4\"",
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T22:58:36.000Z",
            "#EXTINF:2.000,",
            "segment-14.m4s",
        ]
    );
    // Everything after the skipped segments is the full playlist's text.
    let full_text = write_media(&full);
    let tail = &full_text[full_text.find("#EXTINF:2.000,\nsegment-14.m4s").unwrap()..];
    assert!(text.ends_with(tail), "{text}");
    assert!(!text.contains("segment-13.m4s") && !text.contains("DISCONTINUITY\n"));
    assert_eq!(parse(&text).segments.len(), 6);

    let v2 = write_media(&MediaPlaylist {
        skip: Skip::V2,
        ..full.clone()
    });
    assert!(v2.starts_with("#EXTM3U\n#EXT-X-VERSION:10\n"), "{v2}");
    assert!(
        v2.contains("\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4,RECENTLY-REMOVED-DATERANGES=\"\"\n"),
        "{v2}"
    );
}

#[test]
fn no_skip_without_can_skip_until_or_old_segments() {
    let mut p = with_discontinuity();
    p.skip = Skip::Yes;
    if let Some(l) = p.low_latency.as_mut() {
        l.can_skip_until_secs = None;
    }
    let text = write_media(&p);
    assert!(
        text.contains("#EXT-X-VERSION:7\n") && !text.contains("SKIP"),
        "{text}"
    );
    assert!(text.contains("segment-10.m4s"));

    // Six segments of 2 s: none ends more than 12 s before the end.
    let short = MediaPlaylist {
        skip: Skip::Yes,
        ..ll_playlist(0, 6, 2)
    };
    let text = write_media(&short);
    assert!(text.contains("#EXT-X-VERSION:7\n") && !text.contains("EXT-X-SKIP"));
    assert_eq!(parse(&text).segments.len(), 6);
}

#[test]
fn open_segment_after_a_discontinuity_gets_its_own_tags() {
    let mut p = ll_playlist(5, 3, 1);
    let l = p.low_latency.as_mut().unwrap();
    let open = l.open_segment.as_mut().unwrap();
    open.discontinuity = true;
    open.map_uri = "init-2.mp4".into();
    open.program_date_time_ms = Some(PDT0_MS + 60_000);
    open.parts[1].gap = true;
    let text = write_media(&p);
    let tail: Vec<&str> = text.lines().skip_while(|l| *l != "segment-7.m4s").collect();
    assert_eq!(
        tail[1..6],
        [
            "#EXT-X-DISCONTINUITY",
            "#EXT-X-MAP:URI=\"init-2.mp4\"",
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T22:59:08.000Z",
            "#EXT-X-PART:DURATION=0.500,URI=\"segment-8.0.m4s\",INDEPENDENT=YES",
            "#EXT-X-PART:DURATION=0.500,URI=\"segment-8.1.m4s\",GAP=YES",
        ]
    );
}

#[test]
fn open_segment_alone_or_empty() {
    // Before the first segment completes: the open segment is the first
    // written, so it gets the map and the date.
    let mut p = ll_playlist(0, 0, 0);
    let text = write_media(&p);
    let body: Vec<&str> = text.lines().skip(7).collect();
    assert_eq!(
        body,
        [
            "#EXT-X-MAP:URI=\"init-1.mp4\"",
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T22:58:08.000Z",
            "#EXT-X-PART:DURATION=0.500,URI=\"segment-0.0.m4s\",INDEPENDENT=YES",
            "#EXT-X-PART:DURATION=0.500,URI=\"segment-0.1.m4s\"",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"segment-0.2.m4s\"",
            "#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=0,LAST-PART=1",
            "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=0",
        ]
    );
    assert!(parse(&text).segments.is_empty());

    // An open segment without parts yet writes nothing but the hint.
    let l = p.low_latency.as_mut().unwrap();
    l.open_segment.as_mut().unwrap().parts.clear();
    l.preload_hint = Some("segment-0.0.m4s".into());
    let text = write_media(&p);
    assert!(
        !text.contains("EXT-X-MAP") && !text.contains("EXT-X-PART:"),
        "{text}"
    );
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"segment-0.0.m4s\"\n"));
}

#[test]
fn written_values_keep_the_playlist_valid() {
    let mut p = ll_playlist(0, 4, 2);
    let l = p.low_latency.as_mut().unwrap();
    l.part_hold_back_secs = 0.5;
    l.hold_back_secs = Some(1.0);
    l.can_skip_until_secs = Some(3.0);
    l.can_block_reload = false;
    // A part cut at the next frame, past the configured target.
    p.segments[3].parts[2].duration_secs = 0.5333;
    let text = write_media(&p);
    assert!(
        text.contains(
            "\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12.000,CAN-SKIP-DATERANGES=YES,HOLD-BACK=6.000,PART-HOLD-BACK=1.066\n\
             #EXT-X-PART-INF:PART-TARGET=0.533\n"
        ),
        "{text}"
    );
}

#[test]
fn ended_ll_playlist_has_no_hint_nor_skip_and_closes_before_the_reports() {
    let mut p = ll_playlist(0, 10, 1);
    p.ended = true;
    p.skip = Skip::Yes;
    p.low_latency.as_mut().unwrap().open_segment = None;
    let text = write_media(&p);
    assert!(
        text.contains("segment-9.m4s\n#EXT-X-ENDLIST\n#EXT-X-RENDITION-REPORT:"),
        "{text}"
    );
    // §4.4.5.3: no preload hint once ended; §6.2.5.1: no delta update either.
    assert!(
        !text.contains("PRELOAD-HINT") && !text.contains("EXT-X-SKIP"),
        "{text}"
    );
    assert!(text.contains("#EXT-X-VERSION:7\n"));
    let parsed = parse(&text);
    assert!(parsed.end_list);
    assert_eq!(parsed.segments.len(), 10);
}
