//! HLS playlist writer: exact output, and a round trip through `m3u8-rs`, an
//! independent parser.

use m3u8_rs::{AlternativeMediaType, Playlist};
use streaming_media::hls::{
    AudioRendition, MasterPlaylist, MediaPlaylist, MediaSegment, Variant, write_master, write_media,
};

fn ladder() -> MasterPlaylist {
    MasterPlaylist {
        variants: vec![
            Variant {
                uri: "source/index.m3u8".into(),
                bandwidth: 6_500_000,
                average_bandwidth: Some(5_000_000),
                codecs: "avc1.640028,mp4a.40.2".into(),
                resolution: Some((1920, 1080)),
                frame_rate: Some(30.0),
                audio_group: Some("audio".into()),
            },
            Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth: 3_300_000,
                average_bandwidth: None,
                codecs: "avc1.64001f,mp4a.40.2".into(),
                resolution: Some((1280, 720)),
                frame_rate: Some(30000.0 / 1001.0),
                audio_group: Some("audio".into()),
            },
        ],
        audio: vec![AudioRendition {
            group_id: "audio".into(),
            name: "Main".into(),
            uri: "audio/index.m3u8".into(),
            default: true,
            channels: Some(2),
            language: Some("en".into()),
        }],
        independent_segments: true,
    }
}

const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Main\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=6500000,AVERAGE-BANDWIDTH=5000000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=30.000,AUDIO=\"audio\"
source/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3300000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO=\"audio\"
720p/index.m3u8
";

#[test]
fn master_exact_text() {
    assert_eq!(write_master(&ladder()), MASTER);
}

#[test]
fn master_minimal_omits_optional_attributes() {
    let p = MasterPlaylist {
        variants: vec![Variant {
            uri: "source/index.m3u8".into(),
            bandwidth: 1000,
            ..Default::default()
        }],
        audio: vec![],
        independent_segments: false,
    };
    assert_eq!(
        write_master(&p),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nsource/index.m3u8\n"
    );
}

#[test]
fn master_round_trips_through_m3u8_rs() {
    let text = write_master(&ladder());
    let parsed = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MasterPlaylist(m)) => m,
        other => panic!("not a master playlist: {other:?}"),
    };
    assert_eq!(parsed.version, Some(7));
    assert!(parsed.independent_segments);
    assert_eq!(parsed.variants.len(), 2);
    let v = &parsed.variants[0];
    assert_eq!(v.uri, "source/index.m3u8");
    assert_eq!(v.bandwidth, 6_500_000);
    assert_eq!(v.average_bandwidth, Some(5_000_000));
    assert_eq!(v.codecs.as_deref(), Some("avc1.640028,mp4a.40.2"));
    let res = v.resolution.expect("resolution");
    assert_eq!((res.width, res.height), (1920, 1080));
    assert_eq!(v.frame_rate, Some(30.0));
    assert_eq!(v.audio.as_deref(), Some("audio"));
    let v = &parsed.variants[1];
    assert_eq!(v.average_bandwidth, None);
    assert!((v.frame_rate.unwrap() - 29.97).abs() < 1e-9);

    assert_eq!(parsed.alternatives.len(), 1);
    let a = &parsed.alternatives[0];
    assert_eq!(a.media_type, AlternativeMediaType::Audio);
    assert_eq!(a.group_id, "audio");
    assert_eq!(a.name, "Main");
    assert_eq!(a.uri.as_deref(), Some("audio/index.m3u8"));
    assert_eq!(a.language.as_deref(), Some("en"));
    assert!(a.default && a.autoselect);
    assert_eq!(a.channels.as_deref(), Some("2"));
}

#[test]
fn quotes_and_line_breaks_cannot_break_out() {
    let p = MasterPlaylist {
        variants: vec![Variant {
            uri: "a.m3u8\n#EXT-X-ENDLIST".into(),
            bandwidth: 1,
            codecs: "avc1\",X=\"y".into(),
            ..Default::default()
        }],
        audio: vec![AudioRendition {
            group_id: "g".into(),
            name: "evil\"\nname".into(),
            uri: "x".into(),
            ..Default::default()
        }],
        independent_segments: false,
    };
    let text = write_master(&p);
    assert!(!text.contains("\n#EXT-X-ENDLIST"), "{text}");
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains("CODECS=\"avc1',X='y\""), "{text}");
    assert!(text.contains("NAME=\"evil' name\""), "{text}");
}

fn seg(number: u64, duration_secs: f64, map: &str) -> MediaSegment {
    MediaSegment {
        number,
        duration_secs,
        uri: format!("segment-{number}.m4s"),
        map_uri: map.into(),
        discontinuity: false,
        program_date_time_ms: Some(1_795_820_288_000 + number as i64 * 2000),
        gap: false,
        ..Default::default()
    }
}

fn live() -> MediaPlaylist {
    let mut segments = vec![
        seg(10, 2.0, "init.mp4"),
        seg(11, 2.0, "init.mp4"),
        seg(12, 1.5016, "init.mp4"),
        seg(13, 2.0, "init-1.mp4"),
    ];
    segments[3].discontinuity = true;
    segments[3].program_date_time_ms = Some(1_795_820_400_500);
    MediaPlaylist {
        target_duration_secs: 2,
        media_sequence: 10,
        discontinuity_sequence: 3,
        segments,
        ended: false,
        independent_segments: true,
        ..Default::default()
    }
}

const LIVE: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-DISCONTINUITY-SEQUENCE:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-27T22:58:28.000Z
#EXTINF:2.000,
segment-10.m4s
#EXTINF:2.000,
segment-11.m4s
#EXTINF:1.502,
segment-12.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init-1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-27T23:00:00.500Z
#EXTINF:2.000,
segment-13.m4s
";

#[test]
fn media_exact_text() {
    assert_eq!(write_media(&live()), LIVE);
}

#[test]
fn ended_playlist_and_target_duration_from_segments() {
    let p = MediaPlaylist {
        target_duration_secs: 2,
        media_sequence: 0,
        discontinuity_sequence: 0,
        segments: vec![
            MediaSegment {
                program_date_time_ms: None,
                ..seg(0, 2.0, "init.mp4")
            },
            MediaSegment {
                program_date_time_ms: None,
                ..seg(1, 4.2, "init.mp4")
            },
        ],
        ended: true,
        independent_segments: false,
        ..Default::default()
    };
    assert_eq!(
        write_media(&p),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:5\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\nsegment-0.m4s\n#EXTINF:4.200,\n\
         segment-1.m4s\n#EXT-X-ENDLIST\n"
    );
}

#[test]
fn map_is_repeated_when_it_changes_without_a_discontinuity() {
    let p = MediaPlaylist {
        segments: vec![
            seg(0, 2.0, "a.mp4"),
            seg(1, 2.0, "b.mp4"),
            seg(2, 2.0, "b.mp4"),
            seg(3, 2.0, "a.mp4"),
        ],
        ..Default::default()
    };
    let text = write_media(&p);
    let maps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MAP"))
        .collect();
    assert_eq!(
        maps,
        [
            "#EXT-X-MAP:URI=\"a.mp4\"",
            "#EXT-X-MAP:URI=\"b.mp4\"",
            "#EXT-X-MAP:URI=\"a.mp4\""
        ]
    );
    // Only the first segment carries a date when there is no discontinuity.
    assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME").count(), 1);
}

#[test]
fn empty_live_playlist_is_still_valid() {
    let text = write_media(&MediaPlaylist {
        target_duration_secs: 2,
        ..Default::default()
    });
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
    );
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => assert!(m.segments.is_empty()),
        other => panic!("not a media playlist: {other:?}"),
    }
}

#[test]
fn media_round_trips_through_m3u8_rs() {
    let input = live();
    let text = write_media(&input);
    let parsed = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => m,
        other => panic!("not a media playlist: {other:?}"),
    };
    assert_eq!(parsed.version, Some(7));
    assert_eq!(parsed.target_duration, 2);
    assert_eq!(parsed.media_sequence, 10);
    assert_eq!(parsed.discontinuity_sequence, 3);
    assert!(parsed.independent_segments);
    assert!(!parsed.end_list);
    assert_eq!(parsed.segments.len(), input.segments.len());
    for (got, want) in parsed.segments.iter().zip(&input.segments) {
        assert_eq!(got.uri, want.uri);
        assert!((f64::from(got.duration) - want.duration_secs).abs() < 1e-3);
        assert_eq!(got.discontinuity, want.discontinuity);
    }
    let maps: Vec<Option<&str>> = parsed
        .segments
        .iter()
        .map(|s| s.map.as_ref().map(|m| m.uri.as_str()))
        .collect();
    assert_eq!(
        maps,
        [Some("init.mp4"), None, None, Some("init-1.mp4")],
        "EXT-X-MAP only where it starts applying"
    );
    let pdt: Vec<Option<i64>> = parsed
        .segments
        .iter()
        .map(|s| s.program_date_time.map(|t| t.timestamp_millis()))
        .collect();
    assert_eq!(
        pdt,
        [Some(1_795_820_308_000), None, None, Some(1_795_820_400_500)]
    );

    let ended = MediaPlaylist {
        ended: true,
        ..input
    };
    match m3u8_rs::parse_playlist_res(write_media(&ended).as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => assert!(m.end_list),
        other => panic!("not a media playlist: {other:?}"),
    }
}
