//! Low-latency DASH MPD: exact text, a parse by `dash-mpd-core` (an
//! independent MPD parser) and a strict XML read by `quick-xml`.

use quick_xml::Reader;
use quick_xml::events::Event;
use streaming_media::dash::{
    AdaptationSet, ContentType, Mpd, ProducerReferenceTime, Representation, ServiceDescription,
    TimelineEntry, write_mpd,
};

const AST_MS: i64 = 1_795_820_288_000; // 2026-11-27T22:58:08Z

fn ll_mpd() -> Mpd {
    let timeline = vec![
        TimelineEntry {
            start: 0,
            duration: 180_000,
        },
        TimelineEntry {
            start: 180_000,
            duration: 180_000,
        },
    ];
    Mpd {
        dynamic: true,
        availability_start_time_ms: AST_MS,
        publish_time_ms: AST_MS + 4_000,
        minimum_update_period_secs: 2.0,
        time_shift_buffer_depth_secs: 30.0,
        suggested_presentation_delay_secs: 1.5,
        min_buffer_time_secs: 0.5,
        max_segment_duration_secs: 2.0,
        utc_timing_url: Some("/time".into()),
        service_description: Some(ServiceDescription {
            target_latency_ms: 1500,
            min_latency_ms: 1000,
            max_latency_ms: 3000,
            min_playback_rate: 0.96,
            max_playback_rate: 1.04,
        }),
        adaptation_sets: vec![
            AdaptationSet {
                id: 0,
                content_type: ContentType::Video,
                mime_type: "video/mp4".into(),
                segment_alignment: true,
                representations: vec![Representation {
                    id: "source".into(),
                    codecs: "avc1.640028".into(),
                    bandwidth: 6_000_000,
                    timescale: 90_000,
                    initialization: "source/init.mp4".into(),
                    media: "source/segment-$Number$.m4s".into(),
                    start_number: 1,
                    timeline: timeline.clone(),
                    availability_time_offset: Some(1.5),
                    availability_time_complete: Some(false),
                    producer_reference_time: Some(ProducerReferenceTime {
                        id: 0,
                        inband: true,
                        wall_clock_time_ms: AST_MS + 250,
                        presentation_time: 0,
                    }),
                    ..Default::default()
                }],
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
                    timescale: 90_000,
                    initialization: "audio/init.mp4".into(),
                    media: "audio/segment-$Number$.m4s".into(),
                    start_number: 1,
                    timeline,
                    availability_time_offset: Some(f64::INFINITY),
                    availability_time_complete: Some(true),
                    ..Default::default()
                }],
            },
        ],
        ..Default::default()
    }
}

const LL_MPD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2026-11-27T22:58:08.000Z" publishTime="2026-11-27T22:58:12.000Z" minimumUpdatePeriod="PT2.000S" timeShiftBufferDepth="PT30.000S" suggestedPresentationDelay="PT1.500S" minBufferTime="PT0.500S" maxSegmentDuration="PT2.000S">
  <ServiceDescription id="0">
    <Latency referenceId="0" target="1500" min="1000" max="3000"/>
    <PlaybackRate min="0.96" max="1.04"/>
  </ServiceDescription>
  <Period id="0" start="PT0.000S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="source" codecs="avc1.640028" bandwidth="6000000">
        <ProducerReferenceTime id="0" inband="true" type="encoder" wallClockTime="2026-11-27T22:58:08.250Z" presentationTime="0">
          <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time"/>
        </ProducerReferenceTime>
        <SegmentTemplate timescale="90000" initialization="source/init.mp4" media="source/segment-$Number$.m4s" startNumber="1" availabilityTimeOffset="1.5" availabilityTimeComplete="false">
          <SegmentTimeline>
            <S t="0" d="180000" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="audio" codecs="mp4a.40.2" bandwidth="128000">
        <SegmentTemplate timescale="90000" initialization="audio/init.mp4" media="audio/segment-$Number$.m4s" startNumber="1" availabilityTimeOffset="INF" availabilityTimeComplete="true">
          <SegmentTimeline>
            <S t="0" d="180000" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time"/>
</MPD>
"#;

#[test]
fn ll_mpd_exact_text() {
    assert_eq!(write_mpd(&ll_mpd()), LL_MPD);
}

#[test]
fn ll_mpd_parses_with_dash_mpd_core() {
    let mpd = dash_mpd_core::parse(&write_mpd(&ll_mpd())).expect("parse");
    assert_eq!(mpd.ServiceDescription.len(), 1);
    let sd = &mpd.ServiceDescription[0];
    assert_eq!(sd.id.as_deref(), Some("0"));
    let latency = &sd.Latency[0];
    assert_eq!(
        (latency.target, latency.min, latency.max),
        (Some(1500.0), Some(1000.0), Some(3000.0))
    );
    assert_eq!(latency.referenceId.as_deref(), Some("0"));
    assert_eq!(
        (sd.PlaybackRate[0].min, sd.PlaybackRate[0].max),
        (Some(0.96), Some(1.04))
    );

    let video = &mpd.periods[0].adaptations[0].representations[0];
    let st = video.SegmentTemplate.as_ref().expect("SegmentTemplate");
    assert_eq!(st.availabilityTimeOffset, Some(1.5));
    assert_eq!(st.availabilityTimeComplete, Some(false));
    assert_eq!(video.ProducerReferenceTime.len(), 1);
    let prt = &video.ProducerReferenceTime[0];
    assert_eq!(prt.id.as_deref(), Some("0"));
    assert_eq!(prt.inband, Some(true));
    assert_eq!(prt.prtType.as_deref(), Some("encoder"));
    assert_eq!(prt.presentationTime, Some(0));
    assert_eq!(
        prt.wallClockTime.map(|t| t.timestamp_millis()),
        Some(AST_MS + 250)
    );
    let utc = prt.UTCTiming.as_ref().expect("UTCTiming child");
    assert_eq!(utc.schemeIdUri, "urn:mpeg:dash:utc:http-iso:2014");
    assert_eq!(utc.value.as_deref(), Some("/time"));

    let audio = &mpd.periods[0].adaptations[1].representations[0];
    let st = audio.SegmentTemplate.as_ref().expect("SegmentTemplate");
    assert_eq!(st.availabilityTimeOffset, Some(f64::INFINITY));
    assert_eq!(st.availabilityTimeComplete, Some(true));
    assert!(audio.ProducerReferenceTime.is_empty());

    let problems = dash_mpd_core::check_conformity(&mpd);
    assert!(problems.is_empty(), "{problems:?}");
}

/// Element names in document order, read by a strict XML parser (end tags
/// must match their start tags).
fn elements(xml: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut names = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e) | Event::Empty(e)) => {
                names.push(e.name().into_inner().to_string());
            }
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
        }
    }
    names
}

#[test]
fn ll_elements_sit_where_the_schema_puts_them() {
    let names = elements(&write_mpd(&ll_mpd()));
    let at = |name: &str| names.iter().position(|n| n == name).expect(name);
    // MPD: Location*, ServiceDescription*, Period+, UTCTiming*.
    assert!(at("ServiceDescription") < at("Period"));
    // Representation: AudioChannelConfiguration*, ProducerReferenceTime*, SegmentTemplate?.
    assert!(at("ProducerReferenceTime") < at("SegmentTemplate"));
    assert_eq!(
        names.iter().filter(|n| *n == "UTCTiming").count(),
        2,
        "the MPD's and the ProducerReferenceTime's"
    );
}

#[test]
fn prt_without_utc_timing_is_self_closing_and_rates_are_optional() {
    let mut m = ll_mpd();
    m.utc_timing_url = None;
    if let Some(sd) = m.service_description.as_mut() {
        sd.min_playback_rate = f64::NAN;
        sd.max_playback_rate = f64::NAN;
    }
    let text = write_mpd(&m);
    assert!(
        text.contains(
            "<ProducerReferenceTime id=\"0\" inband=\"true\" type=\"encoder\" \
             wallClockTime=\"2026-11-27T22:58:08.250Z\" presentationTime=\"0\"/>\n"
        ),
        "{text}"
    );
    assert!(!text.contains("UTCTiming") && !text.contains("PlaybackRate"));
    elements(&text);
    dash_mpd_core::parse(&text).expect("parse");
}
