//! Acceptance: independent parsers accept what we serve, and what they read
//! agrees across formats. m3u8-rs reads the HLS playlists, dash-mpd-core (the
//! parser of the dash-mpd project) reads the live and the final MPD, and
//! mp4-atom reads the CMAF init and media segments those documents point at.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Publish, TestServer, ffmpeg_publish, mp4_boxes, wait_child};
use dash_mpd_core::MPD;
use m3u8_rs::{AlternativeMediaType, MasterPlaylist, MediaPlaylist, Playlist};
use mp4_atom::{Any, Codec, Moof, Moov, Trex};
use reqwest::Url;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const SECONDS: f64 = 8.0;

fn parse_master(text: &str) -> MasterPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MasterPlaylist(m)) => m,
        Ok(Playlist::MediaPlaylist(_)) => panic!("expected a master playlist:\n{text}"),
        Err(e) => panic!("m3u8-rs rejects the master playlist ({e:?}):\n{text}"),
    }
}

fn parse_media(text: &str) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => m,
        Ok(Playlist::MasterPlaylist(_)) => panic!("expected a media playlist:\n{text}"),
        Err(e) => panic!("m3u8-rs rejects the media playlist ({e:?}):\n{text}"),
    }
}

fn parse_mpd(text: &str) -> MPD {
    let mpd = dash_mpd_core::parse(text)
        .unwrap_or_else(|e| panic!("dash-mpd-core rejects the MPD ({e}):\n{text}"));
    let problems = dash_mpd_core::check_conformity(&mpd);
    assert!(
        problems.is_empty(),
        "MPD conformity problems {problems:?}:\n{text}"
    );
    mpd
}

/// One representation of an MPD, as the parser read it.
struct Rep {
    timescale: u64,
    init: String,
    media: String,
    /// Segment number → (start, duration) in `timescale` units.
    timeline: BTreeMap<u64, (u64, u64)>,
}

/// The representation of the adaptation set of `content_type`, with its
/// SegmentTimeline expanded and checked for gaps.
fn rep(mpd: &MPD, content_type: &str) -> Rep {
    let set = mpd.periods[0]
        .adaptations
        .iter()
        .find(|a| a.contentType.as_deref() == Some(content_type))
        .unwrap_or_else(|| panic!("no {content_type} adaptation set"));
    assert_eq!(
        set.representations.len(),
        1,
        "one {content_type} representation"
    );
    let r = &set.representations[0];
    let st = r
        .SegmentTemplate
        .as_ref()
        .or(set.SegmentTemplate.as_ref())
        .expect("SegmentTemplate");
    let timescale = st.timescale.expect("timescale");
    let mut number = st.startNumber.unwrap_or(1);
    let mut next_t: Option<u64> = None;
    let mut timeline = BTreeMap::new();
    let entries = &st
        .SegmentTimeline
        .as_ref()
        .expect("SegmentTimeline")
        .segments;
    assert!(!entries.is_empty(), "an empty SegmentTimeline");
    for s in entries {
        let start = match (s.t, next_t) {
            (Some(t), Some(n)) => {
                assert_eq!(
                    t, n,
                    "{content_type}: gap or overlap in the SegmentTimeline at t={t}"
                );
                t
            }
            (Some(t), None) => t,
            (None, Some(n)) => n,
            (None, None) => 0,
        };
        assert!(s.d > 0, "zero-length segment");
        let repeat = s.r.unwrap_or(0);
        assert!(repeat >= 0, "open-ended @r in a live timeline");
        let mut t = start;
        for _ in 0..=repeat {
            timeline.insert(number, (t, s.d));
            number += 1;
            t += s.d;
        }
        next_t = Some(t);
    }
    Rep {
        timescale,
        init: st.initialization.clone().expect("initialization"),
        media: st.media.clone().expect("media"),
        timeline,
    }
}

/// Resolves a SegmentTemplate URL against the MPD's URL, as a DASH player does.
fn resolve(mpd_url: &str, template: &str, number: Option<u64>) -> String {
    let path = match number {
        Some(n) => template.replace("$Number$", &n.to_string()),
        None => template.to_string(),
    };
    Url::parse(mpd_url)
        .unwrap()
        .join(&path)
        .unwrap()
        .to_string()
}

async fn fetch(ts: &TestServer, url: &str) -> Vec<u8> {
    let resp = ts.client.get(url).send().await.expect("GET");
    assert_eq!(resp.status(), 200, "{url}");
    resp.bytes().await.unwrap().to_vec()
}

/// What an init segment says about its single track.
struct Init {
    track_id: u32,
    timescale: u32,
    trex: Trex,
}

fn check_init(data: &[u8], video: bool) -> Init {
    let boxes = mp4_boxes(data);
    assert!(
        matches!(boxes.first(), Some(Any::Ftyp(_))),
        "init starts with ftyp: {:?}",
        kinds(&boxes)
    );
    let moov: Vec<&Moov> = boxes
        .iter()
        .filter_map(|b| if let Any::Moov(m) = b { Some(m) } else { None })
        .collect();
    assert_eq!(moov.len(), 1, "one moov: {:?}", kinds(&boxes));
    assert!(
        !boxes
            .iter()
            .any(|b| matches!(b, Any::Moof(_) | Any::Mdat(_))),
        "an init segment carries no media: {:?}",
        kinds(&boxes)
    );
    let moov = moov[0];
    assert_eq!(
        moov.trak.len(),
        1,
        "CMAF: exactly one track per init segment"
    );
    let trak = &moov.trak[0];
    let stbl = &trak.mdia.minf.stbl;
    let stsz_count = match &stbl.stsz.samples {
        mp4_atom::StszSamples::Identical { count, .. } => *count as usize,
        mp4_atom::StszSamples::Different { sizes } => sizes.len(),
    };
    assert_eq!(stsz_count, 0, "fragmented: no samples in the moov");
    assert!(
        stbl.stts.entries.is_empty(),
        "fragmented: no sample times in the moov"
    );
    assert_eq!(stbl.stsd.codecs.len(), 1, "one sample entry");
    match (&stbl.stsd.codecs[0], video) {
        (Codec::Avc1(avc1), true) => {
            assert_eq!(trak.mdia.hdlr.handler, b"vide".into());
            assert_eq!(
                (u32::from(avc1.visual.width), u32::from(avc1.visual.height)),
                (WIDTH, HEIGHT)
            );
            assert!(
                !avc1.avcc.sequence_parameter_sets.is_empty(),
                "avcC has an SPS"
            );
            assert!(
                !avc1.avcc.picture_parameter_sets.is_empty(),
                "avcC has a PPS"
            );
            assert_eq!(avc1.avcc.length_size, 4, "4-byte NAL lengths");
        }
        (Codec::Mp4a(mp4a), false) => {
            assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
            assert_eq!(mp4a.audio.channel_count, 2);
            assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
        }
        (other, _) => panic!("unexpected sample entry (video={video}): {other:?}"),
    }
    let mvex = moov.mvex.as_ref().expect("mvex: a fragmented init");
    assert_eq!(mvex.trex.len(), 1);
    assert_eq!(
        mvex.trex[0].track_id, trak.tkhd.track_id,
        "trex names the track"
    );
    Init {
        track_id: trak.tkhd.track_id,
        timescale: trak.mdia.mdhd.timescale,
        trex: mvex.trex[0].clone(),
    }
}

fn kinds(boxes: &[Any]) -> Vec<String> {
    boxes.iter().map(|b| b.kind().to_string()).collect()
}

/// Checks a media segment against its init and the MPD's (start, duration):
/// moof/mdat pairs of the one track, tfdt continuous from `start`, sample
/// durations adding up to `duration`, mdat sizes matching the truns, and (for
/// video) a sync sample first.
fn check_segment(data: &[u8], init: &Init, start: u64, duration: u64, video: bool) {
    let boxes = mp4_boxes(data);
    let mut moofs: Vec<(&Moof, usize)> = Vec::new();
    let mut expect_mdat = None;
    for b in &boxes {
        match b {
            Any::Styp(_) | Any::Sidx(_) if moofs.is_empty() => {}
            // LL-DASH chunks (the segment in progress is sent part by part)
            // each carry a producer reference time before their moof.
            Any::Prft(_) if expect_mdat.is_none() => {}
            Any::Moof(m) => {
                assert!(
                    expect_mdat.is_none(),
                    "two moofs in a row: {:?}",
                    kinds(&boxes)
                );
                expect_mdat = Some(m);
            }
            Any::Mdat(mdat) => {
                let m = expect_mdat.take().expect("mdat without moof");
                moofs.push((m, mdat.data.len()));
            }
            other => panic!(
                "unexpected box {} in a media segment: {:?}",
                other.kind(),
                kinds(&boxes)
            ),
        }
    }
    assert!(
        expect_mdat.is_none() && !moofs.is_empty(),
        "moof/mdat pairs: {:?}",
        kinds(&boxes)
    );
    let mut t = start;
    let mut seq = 0;
    for (i, (moof, mdat_len)) in moofs.iter().enumerate() {
        assert!(
            moof.mfhd.sequence_number > seq,
            "mfhd sequence numbers increase"
        );
        seq = moof.mfhd.sequence_number;
        assert_eq!(moof.traf.len(), 1, "one traf per moof");
        let traf = &moof.traf[0];
        assert_eq!(
            traf.tfhd.track_id, init.track_id,
            "traf of the init's track"
        );
        let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
        assert_eq!(
            tfdt, t,
            "chunk {i}: tfdt continues the timeline (MPD start {start})"
        );
        assert_eq!(traf.trun.len(), 1, "one trun per traf");
        let trun = &traf.trun[0];
        assert!(!trun.samples.is_empty(), "an empty trun");
        assert!(trun.data_offset.is_some(), "trun has a data offset");
        let default_duration = traf
            .tfhd
            .default_sample_duration
            .unwrap_or(init.trex.default_sample_duration);
        let default_size = traf
            .tfhd
            .default_sample_size
            .unwrap_or(init.trex.default_sample_size);
        let default_flags = traf
            .tfhd
            .default_sample_flags
            .unwrap_or(init.trex.default_sample_flags);
        let (mut bytes, mut ticks) = (0u64, 0u64);
        for (n, s) in trun.samples.iter().enumerate() {
            bytes += u64::from(s.size.unwrap_or(default_size));
            ticks += u64::from(s.duration.unwrap_or(default_duration));
            if video && i == 0 && n == 0 {
                let flags = s.flags.unwrap_or(default_flags);
                assert_eq!(
                    flags & 0x0001_0000,
                    0,
                    "the segment's first sample is a sync sample (flags {flags:#x})"
                );
            }
        }
        assert_eq!(
            bytes, *mdat_len as u64,
            "chunk {i}: mdat holds exactly the trun's samples"
        );
        assert!(ticks > 0);
        t += ticks;
    }
    assert_eq!(
        t - start,
        duration,
        "the samples add up to the MPD's segment duration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_parsers_accept_playlists_manifests_and_segments() {
    let ts = TestServer::start_with(|c| {
        c.media.playlist_segments = 30;
        c.media.retained_segments = 40;
    })
    .await;
    let (id, key) = ts.create_stream("parsers").await;
    let encoder = ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            width: WIDTH,
            height: HEIGHT,
            fps: 30,
            seconds: SECONDS,
            gop_secs: 1,
            video_kbps: 600,
        },
    );
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "never went ACTIVE"
    );
    for r in ["source", "audio"] {
        ts.wait_for_text(
            &format!("/hls/{id}/{r}/index.m3u8"),
            Duration::from_secs(10),
            |t| t.matches("#EXTINF").count() >= 2,
        )
        .await
        .unwrap_or_else(|| panic!("two {r} segments"));
    }

    // --- HLS, read by m3u8-rs -------------------------------------------
    let master = parse_master(
        &ts.get_manifest(&format!("/hls/{id}/master.m3u8"))
            .await
            .unwrap(),
    );
    assert!(master.independent_segments);
    assert_eq!(master.variants.len(), 1, "one variant (the source)");
    let v = &master.variants[0];
    // The child URIs carry the viewer-session id (see README, "How viewers are counted").
    assert!(v.uri.starts_with("source/index.m3u8?sid="), "{}", v.uri);
    let res = v.resolution.as_ref().expect("RESOLUTION");
    assert_eq!(
        (res.width, res.height),
        (u64::from(WIDTH), u64::from(HEIGHT))
    );
    let codecs = v.codecs.as_deref().expect("CODECS");
    assert!(
        codecs.split(',').any(|c| c.starts_with("avc1.")),
        "{codecs}"
    );
    assert!(codecs.split(',').any(|c| c == "mp4a.40.2"), "{codecs}");
    assert!(
        v.bandwidth > 0 && v.average_bandwidth.is_some_and(|a| a <= v.bandwidth),
        "{v:?}"
    );
    assert!(
        v.frame_rate.is_some_and(|f| (f - 30.0).abs() < 0.01),
        "FRAME-RATE {:?}",
        v.frame_rate
    );
    let group = v
        .audio
        .as_deref()
        .expect("the variant names its AUDIO group");
    let alt = master
        .alternatives
        .iter()
        .find(|a| a.media_type == AlternativeMediaType::Audio && a.group_id == group)
        .expect("an EXT-X-MEDIA audio rendition of the variant's group");
    assert!(
        alt.uri
            .as_deref()
            .is_some_and(|u| u.starts_with("audio/index.m3u8?sid=")),
        "{:?}",
        alt.uri
    );
    assert!(alt.default, "the audio rendition is the default");

    let mut hls: BTreeMap<&str, BTreeMap<u64, f64>> = BTreeMap::new();
    for r in ["source", "audio"] {
        let text = ts
            .get_text(&format!("/hls/{id}/{r}/index.m3u8"))
            .await
            .unwrap();
        let p = parse_media(&text);
        assert!(!p.end_list, "live");
        assert!(p.segments.len() >= 2, "{text}");
        let map = p.segments[0]
            .map
            .as_ref()
            .expect("EXT-X-MAP before the first segment");
        assert_eq!(map.uri, "init.mp4");
        let mut durations = BTreeMap::new();
        for (i, s) in p.segments.iter().enumerate() {
            let n = p.media_sequence + i as u64;
            assert_eq!(
                s.uri,
                format!("segment-{n}.m4s"),
                "segment URIs follow the media sequence"
            );
            assert!(s.duration > 0.0);
            assert!(
                f64::from(s.duration).round() as u64 <= p.target_duration,
                "EXTINF {} exceeds EXT-X-TARGETDURATION {}",
                s.duration,
                p.target_duration
            );
            assert!(!s.discontinuity);
            durations.insert(n, f64::from(s.duration));
        }
        hls.insert(r, durations);
    }

    // --- the live MPD, read by dash-mpd-core ------------------------------
    let mpd_url = ts.url(&format!("/dash/{id}/manifest.mpd"));
    let live = parse_mpd(
        &ts.get_manifest(&format!("/dash/{id}/manifest.mpd"))
            .await
            .unwrap(),
    );
    assert_eq!(live.mpdtype.as_deref(), Some("dynamic"));
    assert!(live.availabilityStartTime.is_some() && live.publishTime.is_some());
    assert!(
        live.minimumUpdatePeriod.is_some(),
        "a dynamic MPD says when to reload"
    );
    assert!(live.mediaPresentationDuration.is_none());
    assert_eq!(live.periods.len(), 1);
    assert_eq!(
        live.periods[0].adaptations.len(),
        2,
        "a video and an audio adaptation set"
    );

    for (content, rendition, video) in [("video", "source", true), ("audio", "audio", false)] {
        let r = rep(&live, content);
        // The MPD and the HLS playlist describe the very same segments.
        let mut shared = 0;
        for (n, secs) in &hls[rendition] {
            if let Some((_, d)) = r.timeline.get(n) {
                let mpd_secs = *d as f64 / r.timescale as f64;
                assert!(
                    (mpd_secs - secs).abs() < 0.001,
                    "{rendition} segment {n}: MPD {mpd_secs} s, HLS {secs} s"
                );
                shared += 1;
            }
        }
        assert!(
            shared >= 2,
            "{rendition}: the MPD and the HLS playlist share no segments"
        );

        // --- the segments the MPD points at, read by mp4-atom -------------
        let init_url = resolve(&mpd_url, &r.init, None);
        assert_eq!(
            init_url.split('?').next().unwrap(),
            ts.url(&format!("/hls/{id}/{rendition}/init.mp4")),
            "the MPD points at the HLS init"
        );
        let init = check_init(&fetch(&ts, &init_url).await, video);
        assert_eq!(
            u64::from(init.timescale),
            r.timescale,
            "mdhd timescale = SegmentTemplate@timescale"
        );
        // The last entry is the segment in progress (LL-DASH), timed by the
        // target until it completes: check complete segments exactly.
        let complete = r.timeline.len().saturating_sub(1).min(3);
        assert!(complete >= 1, "{rendition}: no complete segment listed");
        for (n, (start, d)) in r.timeline.iter().take(complete) {
            let url = resolve(&mpd_url, &r.media, Some(*n));
            check_segment(&fetch(&ts, &url).await, &init, *start, *d, video);
        }
    }

    // --- after the end: a static MPD over the whole broadcast ------------
    let (ok, err) = wait_child(encoder, Duration::from_secs(30)).await;
    assert!(ok, "publisher failed: {err}");
    let text = ts
        .wait_for_text(
            &format!("/dash/{id}/manifest.mpd"),
            Duration::from_secs(3),
            |t| t.contains("type=\"static\""),
        )
        .await
        .expect("the MPD turns static after the encoder stops");
    let fin = parse_mpd(&text);
    assert_eq!(fin.mpdtype.as_deref(), Some("static"));
    assert!(
        fin.minimumUpdatePeriod.is_none(),
        "a static MPD is not reloaded"
    );
    let total = fin
        .mediaPresentationDuration
        .expect("mediaPresentationDuration")
        .as_secs_f64();
    let video = rep(&fin, "video");
    let audio = rep(&fin, "audio");
    let listed =
        |r: &Rep| r.timeline.values().map(|(_, d)| *d).sum::<u64>() as f64 / r.timescale as f64;
    assert!(
        (total - listed(&video).max(listed(&audio))).abs() < 0.002,
        "mediaPresentationDuration {total} s vs timelines {} / {} s",
        listed(&video),
        listed(&audio)
    );
    assert!(
        (total - SECONDS).abs() <= SECONDS * 0.03,
        "{total} s presented for {SECONDS} s published"
    );
    // Renditions segment on the same boundaries: the same numbers, durations
    // within one AAC frame (1024 samples at 48 kHz).
    assert_eq!(
        video.timeline.keys().collect::<Vec<_>>(),
        audio.timeline.keys().collect::<Vec<_>>(),
        "video and audio segment numbers line up"
    );
    for (n, (_, vd)) in &video.timeline {
        let v = *vd as f64 / video.timescale as f64;
        let a = audio.timeline[n].1 as f64 / audio.timescale as f64;
        assert!(
            (v - a).abs() <= 1024.0 / 48_000.0 + 0.001,
            "segment {n}: video {v} s, audio {a} s"
        );
    }
    let ended = parse_media(
        &ts.get_text(&format!("/hls/{id}/source/index.m3u8"))
            .await
            .unwrap(),
    );
    assert!(ended.end_list, "ENDLIST once ended");
    ts.server.shutdown().await;
}
