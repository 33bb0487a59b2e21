//! DASH MPD writer: exact output, XML well-formedness, and a parse by
//! `dash-mpd-core`, an independent MPD parser.

use std::time::Duration;

use streaming_media::dash::{
    AdaptationSet, ContentType, Mpd, Representation, TimelineEntry, write_mpd,
};

const AST_MS: i64 = 1_795_820_288_000; // 2026-11-27T22:58:08Z

fn timeline(start: u64, durations: &[u64]) -> Vec<TimelineEntry> {
    let mut t = start;
    durations
        .iter()
        .map(|&d| {
            let e = TimelineEntry {
                start: t,
                duration: d,
            };
            t += d;
            e
        })
        .collect()
}

fn live() -> Mpd {
    Mpd {
        dynamic: true,
        availability_start_time_ms: AST_MS,
        publish_time_ms: AST_MS + 20_123,
        minimum_update_period_secs: 2.0,
        time_shift_buffer_depth_secs: 30.0,
        suggested_presentation_delay_secs: 6.0,
        min_buffer_time_secs: 2.0,
        max_segment_duration_secs: 2.0,
        media_presentation_duration_secs: None,
        utc_timing_url: Some("/api/v1/time?fmt=iso&x=1".into()),
        period_start_secs: 0.0,
        location: None,
        adaptation_sets: vec![
            AdaptationSet {
                id: 0,
                content_type: ContentType::Video,
                mime_type: "video/mp4".into(),
                segment_alignment: true,
                representations: vec![
                    Representation {
                        id: "source".into(),
                        codecs: "avc1.640028".into(),
                        bandwidth: 6_000_000,
                        width: Some(1920),
                        height: Some(1080),
                        frame_rate: Some(30.0),
                        timescale: 90_000,
                        initialization: "source/init.mp4".into(),
                        media: "source/segment-$Number$.m4s".into(),
                        start_number: 5,
                        timeline: timeline(900_000, &[180_000, 180_000, 180_000, 135_000]),
                        ..Default::default()
                    },
                    Representation {
                        id: "720p".into(),
                        codecs: "avc1.64001f".into(),
                        bandwidth: 3_000_000,
                        width: Some(1280),
                        height: Some(720),
                        frame_rate: Some(29.97),
                        timescale: 90_000,
                        initialization: "720p/init.mp4".into(),
                        media: "720p/segment-$Number$.m4s".into(),
                        start_number: 5,
                        timeline: timeline(900_000, &[180_000, 180_000, 180_000, 135_000]),
                        ..Default::default()
                    },
                ],
            },
            AdaptationSet {
                id: 1,
                content_type: ContentType::Audio,
                mime_type: "audio/mp4".into(),
                segment_alignment: true,
                representations: vec![Representation {
                    id: "audio".into(),
                    codecs: "mp4a.40.2".into(),
                    bandwidth: 128_000,
                    audio_sampling_rate: Some(48_000),
                    channels: Some(2),
                    timescale: 48_000,
                    initialization: "audio/init.mp4".into(),
                    media: "audio/segment-$Number$.m4s".into(),
                    start_number: 5,
                    timeline: {
                        // A gap after the second segment restarts with t=.
                        let mut t = timeline(480_000, &[96_000, 96_000]);
                        t.extend(timeline(700_000, &[96_000]));
                        t
                    },
                    ..Default::default()
                }],
            },
        ],
        ..Default::default()
    }
}

const LIVE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2026-11-27T22:58:08.000Z" publishTime="2026-11-27T22:58:28.123Z" minimumUpdatePeriod="PT2.000S" timeShiftBufferDepth="PT30.000S" suggestedPresentationDelay="PT6.000S" minBufferTime="PT2.000S" maxSegmentDuration="PT2.000S">
  <Period id="0" start="PT0.000S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="source" codecs="avc1.640028" bandwidth="6000000" width="1920" height="1080" frameRate="30">
        <SegmentTemplate timescale="90000" initialization="source/init.mp4" media="source/segment-$Number$.m4s" startNumber="5">
          <SegmentTimeline>
            <S t="900000" d="180000" r="2"/>
            <S d="135000"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
      <Representation id="720p" codecs="avc1.64001f" bandwidth="3000000" width="1280" height="720" frameRate="30000/1001">
        <SegmentTemplate timescale="90000" initialization="720p/init.mp4" media="720p/segment-$Number$.m4s" startNumber="5">
          <SegmentTimeline>
            <S t="900000" d="180000" r="2"/>
            <S d="135000"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="audio" codecs="mp4a.40.2" bandwidth="128000" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="48000" initialization="audio/init.mp4" media="audio/segment-$Number$.m4s" startNumber="5">
          <SegmentTimeline>
            <S t="480000" d="96000" r="1"/>
            <S t="700000" d="96000"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/api/v1/time?fmt=iso&amp;x=1"/>
</MPD>
"#;

#[test]
fn dynamic_exact_text() {
    assert_eq!(write_mpd(&live()), LIVE);
}

fn ended() -> Mpd {
    Mpd {
        dynamic: false,
        media_presentation_duration_secs: Some(7.5),
        utc_timing_url: None,
        ..live()
    }
}

#[test]
fn static_mpd_has_duration_and_no_live_attributes() {
    let text = write_mpd(&ended());
    let mpd_tag = text.lines().nth(1).unwrap();
    assert_eq!(
        mpd_tag,
        r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" publishTime="2026-11-27T22:58:28.123Z" mediaPresentationDuration="PT7.500S" minBufferTime="PT2.000S" maxSegmentDuration="PT2.000S">"#
    );
    for absent in [
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
        "suggestedPresentationDelay",
        "availabilityStartTime",
        "UTCTiming",
    ] {
        assert!(!text.contains(absent), "{absent} in static MPD");
    }
    check_well_formed(&text);
}

#[test]
fn attribute_values_are_escaped() {
    let mut m = live();
    m.adaptation_sets[0].representations[0].id = r#"a"<b>&'c"#.into();
    let text = write_mpd(&m);
    assert!(
        text.contains(r#"id="a&quot;&lt;b&gt;&amp;&apos;c""#),
        "{text}"
    );
    check_well_formed(&text);
    let parsed = dash_mpd_core::parse(&text).expect("parse");
    assert_eq!(
        parsed.periods[0].adaptations[0].representations[0]
            .id
            .as_deref(),
        Some(r#"a"<b>&'c"#)
    );
}

#[test]
fn live_mpd_is_well_formed() {
    check_well_formed(&write_mpd(&live()));
}

#[test]
fn dynamic_parses_with_dash_mpd_core() {
    let text = write_mpd(&live());
    let mpd = dash_mpd_core::parse(&text).expect("parse");
    assert_eq!(mpd.mpdtype.as_deref(), Some("dynamic"));
    assert_eq!(
        mpd.profiles.as_deref(),
        Some("urn:mpeg:dash:profile:isoff-live:2011")
    );
    assert_eq!(
        mpd.availabilityStartTime.map(|t| t.timestamp_millis()),
        Some(AST_MS)
    );
    assert_eq!(
        mpd.publishTime.map(|t| t.timestamp_millis()),
        Some(AST_MS + 20_123)
    );
    assert_eq!(mpd.minimumUpdatePeriod, Some(Duration::from_secs(2)));
    assert_eq!(mpd.timeShiftBufferDepth, Some(Duration::from_secs(30)));
    assert_eq!(mpd.suggestedPresentationDelay, Some(Duration::from_secs(6)));
    assert_eq!(mpd.minBufferTime, Some(Duration::from_secs(2)));
    assert_eq!(mpd.maxSegmentDuration, Some(Duration::from_secs(2)));
    assert_eq!(mpd.mediaPresentationDuration, None);
    assert_eq!(mpd.UTCTiming.len(), 1);
    assert_eq!(
        mpd.UTCTiming[0].schemeIdUri.as_str(),
        "urn:mpeg:dash:utc:http-iso:2014"
    );
    assert_eq!(
        mpd.UTCTiming[0].value.as_deref(),
        Some("/api/v1/time?fmt=iso&x=1")
    );

    assert_eq!(mpd.periods.len(), 1);
    let period = &mpd.periods[0];
    assert_eq!(period.id.as_deref(), Some("0"));
    assert_eq!(period.start, Some(Duration::ZERO));
    assert_eq!(period.adaptations.len(), 2);

    let video = &period.adaptations[0];
    assert_eq!(video.contentType.as_deref(), Some("video"));
    assert_eq!(video.mimeType.as_deref(), Some("video/mp4"));
    assert_eq!(video.representations.len(), 2);
    let r = &video.representations[1];
    assert_eq!(r.id.as_deref(), Some("720p"));
    assert_eq!(r.codecs.as_deref(), Some("avc1.64001f"));
    assert_eq!(r.bandwidth, Some(3_000_000));
    assert_eq!((r.width, r.height), (Some(1280), Some(720)));
    assert_eq!(r.frameRate.as_deref(), Some("30000/1001"));
    let st = r.SegmentTemplate.as_ref().expect("SegmentTemplate");
    assert_eq!(st.timescale, Some(90_000));
    assert_eq!(st.initialization.as_deref(), Some("720p/init.mp4"));
    assert_eq!(st.media.as_deref(), Some("720p/segment-$Number$.m4s"));
    assert_eq!(st.startNumber, Some(5));
    let s = &st
        .SegmentTimeline
        .as_ref()
        .expect("SegmentTimeline")
        .segments;
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].t, s[0].d, s[0].r), (Some(900_000), 180_000, Some(2)));
    assert_eq!((s[1].t, s[1].d, s[1].r), (None, 135_000, None));

    let audio = &period.adaptations[1];
    assert_eq!(audio.contentType.as_deref(), Some("audio"));
    let r = &audio.representations[0];
    assert_eq!(r.audioSamplingRate.as_deref(), Some("48000"));
    assert_eq!(r.AudioChannelConfiguration.len(), 1);
    assert_eq!(r.AudioChannelConfiguration[0].value.as_deref(), Some("2"));

    let problems = dash_mpd_core::check_conformity(&mpd);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn static_parses_with_dash_mpd_core() {
    let mpd = dash_mpd_core::parse(&write_mpd(&ended())).expect("parse");
    assert_eq!(mpd.mpdtype.as_deref(), Some("static"));
    assert_eq!(
        mpd.mediaPresentationDuration,
        Some(Duration::from_millis(7500))
    );
    assert_eq!(mpd.minimumUpdatePeriod, None);
    assert!(mpd.UTCTiming.is_empty());
    assert!(dash_mpd_core::check_conformity(&mpd).is_empty());
}

/// A small XML 1.0 well-formedness check for what the writer emits: one
/// declaration, balanced and properly nested elements, quoted attributes
/// without raw `<` or `&` that is not an entity, and no stray text.
fn check_well_formed(xml: &str) {
    let rest = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("XML declaration");
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut i = 0;
    let b = rest.as_bytes();
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        assert_eq!(b[i], b'<', "text outside tags at {i}: {}", &rest[i..]);
        let end = find_tag_end(rest, i);
        let tag = &rest[i + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
        } else {
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
            let name = &body[..name_end];
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad element name {name:?}"
            );
            check_attributes(&body[name_end..]);
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name);
            }
        }
        i = end + 1;
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert_eq!(roots, 1, "exactly one root element");
}

/// Index of the `>` closing the tag that starts at `start`, skipping quoted values.
fn find_tag_end(s: &str, start: usize) -> usize {
    let mut in_quote = false;
    for (j, c) in s[start..].char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '>' if !in_quote => return start + j,
            '<' if in_quote => panic!("raw < in attribute value"),
            _ => {}
        }
    }
    panic!("unterminated tag at {start}");
}

fn check_attributes(mut s: &str) {
    let mut names = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            break;
        }
        let eq = s.find("=\"").expect("attribute without =\"");
        let name = &s[..eq];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == ':'),
            "bad attribute name {name:?}"
        );
        assert!(!names.contains(&name), "duplicate attribute {name}");
        names.push(name);
        let value_start = eq + 2;
        let close = s[value_start..].find('"').expect("unterminated value") + value_start;
        let value = &s[value_start..close];
        for (k, _) in value.match_indices('&') {
            let entity = &value[k..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare & in {value:?}"
            );
        }
        s = &s[close + 1..];
    }
}
