//! Packager segmenting and timestamp rules on synthetic frames (no FFmpeg needed):
//! the H.264 payloads are well-framed but not decodable, which is all the packager
//! looks at. Decoding is checked in `packager_ffmpeg.rs`.

use bytes::Bytes;
use mp4_atom::{Any, Decode, Moof};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::packager::{
    Packager, PackagerConfig, PackagerEvent, Part, Segment, TrackKind,
};

/// The avcC FFmpeg/x264 wrote for a 320x240 High@1.3 stream.
const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

fn video_seq(ts: u32) -> Frame {
    let mut body = vec![0x17, 0, 0, 0, 0];
    body.extend_from_slice(AVCC);
    Frame::new(FrameKind::Video, ts, Bytes::from(body))
}

fn video(ts: u32, key: bool, cts: i32) -> Frame {
    let c = cts.to_be_bytes();
    let nal = if key { 0x65 } else { 0x41 };
    let body = vec![
        if key { 0x17 } else { 0x27 },
        1,
        c[1],
        c[2],
        c[3],
        0,
        0,
        0,
        3,
        nal,
        0x88,
        0x80,
    ];
    Frame::new(FrameKind::Video, ts, Bytes::from(body))
}

fn audio_seq(ts: u32) -> Frame {
    Frame::new(
        FrameKind::Audio,
        ts,
        Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
    )
}

fn audio(ts: u32) -> Frame {
    Frame::new(
        FrameKind::Audio,
        ts,
        Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04]),
    )
}

/// Frames of an interleaved 30 fps / 44.1 kHz stream over `[from_ms, to_ms)` of
/// stream time, sent with RTMP time `stream + shift` (wrapping); key frames every second.
fn av(from_ms: u32, to_ms: u32, shift: u32, with_audio: bool) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut v = 0u32;
    let mut a = 0u32;
    loop {
        let vt = (v * 1000).div_ceil(30);
        let at = (u64::from(a) * 1024 * 1000 / 44100) as u32;
        if vt >= to_ms && (!with_audio || at >= to_ms) {
            break;
        }
        if vt <= at || !with_audio {
            if vt >= from_ms && vt < to_ms {
                frames.push(video(vt.wrapping_add(shift), v.is_multiple_of(30), 0));
            }
            v += 1;
        } else {
            if at >= from_ms && at < to_ms {
                frames.push(audio(at.wrapping_add(shift)));
            }
            a += 1;
        }
    }
    frames
}

#[derive(Default, Debug)]
struct Out {
    inits: Vec<(TrackKind, u32)>,
    parts: Vec<Part>,
    segments: Vec<Segment>,
    discontinuities: Vec<String>,
}

impl Out {
    fn segs(&self, kind: TrackKind) -> Vec<&Segment> {
        self.segments.iter().filter(|s| s.track == kind).collect()
    }
}

fn drain(p: &mut Packager, out: &mut Out) {
    while let Some(ev) = p.poll_output() {
        match ev {
            PackagerEvent::Init(i) => out.inits.push((i.track, i.version)),
            PackagerEvent::Part(part) => out.parts.push(part),
            PackagerEvent::Segment(s) => out.segments.push(s),
            PackagerEvent::Discontinuity { reason } => out.discontinuities.push(reason),
        }
    }
}

fn run(frames: &[Frame], finish: bool) -> Out {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = Out::default();
    for f in frames {
        p.push(f).unwrap();
        drain(&mut p, &mut out);
    }
    if finish {
        p.finish();
        drain(&mut p, &mut out);
    }
    check_invariants(&out);
    out
}

/// (tfdt, durations, first flags) of every fragment in a segment.
fn fragments(seg: &Segment) -> Vec<(u64, Vec<u32>, u32)> {
    let mut buf = &seg.data[..];
    let mut out = Vec::new();
    while !buf.is_empty() {
        if let Any::Moof(moof) = Any::decode(&mut buf).unwrap() {
            let traf = &moof.traf[0];
            let trun = &traf.trun[0];
            let first = trun.samples.get(0).unwrap();
            let flags = first.flags.or(traf.tfhd.default_sample_flags).unwrap();
            let durations = trun.samples.iter().map(|e| e.duration.unwrap()).collect();
            out.push((
                traf.tfdt.as_ref().unwrap().base_media_decode_time,
                durations,
                flags,
            ));
        }
    }
    out
}

/// Per track: numbers increase, tfdt and durations tile the timeline without overlap,
/// no zero duration, parts add up to their segment, video segments start on key frames.
fn check_invariants(out: &Out) {
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let mut end = 0u64;
        let mut last_number = 0;
        for seg in out.segs(kind) {
            assert!(seg.number > last_number, "{kind:?} numbers must increase");
            last_number = seg.number;
            assert!(seg.start >= end, "{kind:?} segment {} overlaps", seg.number);
            let mut t = seg.start;
            for (tfdt, durations, _) in fragments(seg) {
                assert_eq!(tfdt, t, "{kind:?} fragments must tile");
                assert!(durations.iter().all(|d| *d > 0), "zero duration");
                t += durations.iter().map(|d| u64::from(*d)).sum::<u64>();
            }
            assert_eq!(t - seg.start, seg.duration);
            end = t;
            let parts: Vec<&Part> = out
                .parts
                .iter()
                .filter(|p| p.track == kind && p.segment == seg.number)
                .collect();
            let joined: Vec<u8> = parts.iter().flat_map(|p| p.data.to_vec()).collect();
            assert_eq!(joined, seg.data.to_vec(), "parts must make the segment");
            assert_eq!(parts.iter().map(|p| p.duration).sum::<u64>(), seg.duration);
            for (i, part) in parts.iter().enumerate() {
                assert_eq!(part.index as usize, i);
            }
            if kind == TrackKind::Video {
                assert!(seg.starts_with_keyframe);
                assert_eq!(
                    fragments(seg)[0].2,
                    0x0200_0000,
                    "first sample must be sync"
                );
            }
        }
    }
}

#[test]
fn aligned_segments_and_parts() {
    let mut frames = vec![video_seq(0), audio_seq(0)];
    frames.extend(av(0, 10_000, 0, true));
    let out = run(&frames, true);
    assert_eq!(out.inits, [(TrackKind::Video, 1), (TrackKind::Audio, 1)]);
    assert!(out.discontinuities.is_empty());
    let (v, a) = (out.segs(TrackKind::Video), out.segs(TrackKind::Audio));
    assert_eq!(v.len(), 5);
    assert_eq!(a.len(), 5);
    for (vs, as_) in v.iter().zip(&a) {
        assert_eq!(vs.number, as_.number);
        assert_eq!(vs.start, (vs.number - 1) * 180_000);
        // Audio starts at its first frame at/after the video cut (< 1 frame later).
        let a_ms = as_.start as f64 * 1000.0 / 44100.0;
        let v_ms = vs.start as f64 / 90.0;
        assert!((0.0..23.3).contains(&(a_ms - v_ms)), "{a_ms} vs {v_ms}");
        assert!(!vs.discontinuity && !as_.discontinuity);
    }
    // Whole input covered: 300 frames and 431 AAC frames.
    let vsum: u64 = v.iter().map(|s| s.duration).sum();
    assert!((vsum as i64 - 900_000).abs() <= 3000, "{vsum}");
    let asum: u64 = a.iter().map(|s| s.duration).sum();
    assert_eq!(asum, 431 * 1024);
    // Parts: never over 500 ms, at least 3 per segment.
    for part in &out.parts {
        assert!(
            part.duration * 1000 <= 500 * u64::from(part.timescale),
            "{part:?}"
        );
    }
    assert!(
        out.parts
            .iter()
            .filter(|p| p.track == TrackKind::Video)
            .count()
            >= 20
    );
    let first = &out.parts[0];
    assert!(first.independent && first.index == 0 && first.segment == 1);
}

#[test]
fn parts_are_emitted_before_the_segment_closes() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = Out::default();
    for f in [video_seq(0), audio_seq(0)]
        .into_iter()
        .chain(av(0, 1200, 0, true))
    {
        p.push(&f).unwrap();
    }
    drain(&mut p, &mut out);
    assert!(out.segments.is_empty());
    let video_parts = out
        .parts
        .iter()
        .filter(|p| p.track == TrackKind::Video)
        .count();
    let audio_parts = out
        .parts
        .iter()
        .filter(|p| p.track == TrackKind::Audio)
        .count();
    assert_eq!((video_parts, audio_parts), (2, 2));
}

#[test]
fn leading_inter_frames_are_dropped() {
    let mut frames = vec![video_seq(0), audio_seq(0)];
    frames.extend(av(0, 3000, 0, true).into_iter().filter(|f| {
        // Remove the key frame at 0: the stream then starts on the one at 1 s.
        !(f.kind == FrameKind::Video && f.timestamp == 0)
    }));
    let out = run(&frames, true);
    let v = out.segs(TrackKind::Video);
    assert_eq!(v[0].start, 90_000);
    // Audio before the first key frame is dropped too, so both start together.
    let a = out.segs(TrackKind::Audio);
    assert!(a[0].start as f64 / 44.1 >= 1000.0);
}

#[test]
fn backwards_jump_rebases_and_flags() {
    let mut frames = vec![video_seq(0), audio_seq(0)];
    frames.extend(av(0, 3000, 0, true));
    frames.extend(av(0, 3000, 0, true)); // the publisher restarts at 0
    let out = run(&frames, true);
    assert_eq!(out.discontinuities.len(), 1, "{:?}", out.discontinuities);
    assert!(out.discontinuities[0].contains("backwards"));
    let v = out.segs(TrackKind::Video);
    let flagged: Vec<_> = v.iter().filter(|s| s.discontinuity).collect();
    assert_eq!(flagged.len(), 1);
    // The timeline continues: the flagged segment starts where the longer track
    // (audio, here) ended, less than an audio frame after the video end.
    let i = v.iter().position(|s| s.discontinuity).unwrap();
    let gap = v[i].start - (v[i - 1].start + v[i - 1].duration);
    assert!(gap < 90 * 24, "{gap}");
    assert!(out.segs(TrackKind::Audio).iter().any(|s| s.discontinuity));
    // All of it packaged: 6 s of video.
    let vsum: u64 = v.iter().map(|s| s.duration).sum();
    assert!((vsum as i64 - 540_000).abs() <= 3000, "{vsum}");
}

#[test]
fn forward_jump_over_5s_is_a_discontinuity() {
    let mut frames = vec![video_seq(0), audio_seq(0)];
    frames.extend(av(0, 3000, 0, true));
    frames.extend(av(0, 3000, 60_000, true));
    let out = run(&frames, true);
    assert_eq!(out.discontinuities.len(), 1);
    assert!(out.discontinuities[0].contains("forward"));
    let v = out.segs(TrackKind::Video);
    let end = v.last().map(|s| s.start + s.duration).unwrap();
    assert!(end < 600_000, "rebased, not 60 s later: {end}");
}

#[test]
fn small_steps_back_and_repeats_are_absorbed() {
    let mut frames = vec![video_seq(0), audio_seq(0)];
    let mut body = av(0, 4000, 0, true);
    // Nudge a few video timestamps back by up to 40 ms, and repeat one.
    for (i, f) in body.iter_mut().enumerate() {
        if f.kind == FrameKind::Video && i % 17 == 5 && f.timestamp >= 40 && !f.is_keyframe() {
            f.timestamp -= 40;
        }
    }
    let t = body[10].timestamp;
    body.insert(11, video(t, false, 0));
    frames.extend(body);
    let out = run(&frames, true);
    assert!(out.discontinuities.is_empty(), "{:?}", out.discontinuities);
}

#[test]
fn wrap_at_2_pow_32() {
    let shift = u32::MAX - 2500; // wraps 2.5 s in
    let mut frames = vec![video_seq(shift), audio_seq(shift)];
    frames.extend(av(0, 6000, shift, true));
    let out = run(&frames, true);
    assert_eq!(out.discontinuities.len(), 1);
    assert!(out.discontinuities[0].contains("wrapped"));
    // Video after the wrap waits for the next key frame (at 3 s): 0.5 s is lost.
    let vsum: u64 = out.segs(TrackKind::Video).iter().map(|s| s.duration).sum();
    assert!((vsum as i64 - 495_000).abs() <= 3000, "{vsum}");
    let asum: u64 = out.segs(TrackKind::Audio).iter().map(|s| s.duration).sum();
    assert!(asum >= 44100 * 5, "audio goes on: {asum}");
}

#[test]
fn mark_discontinuity_closes_and_continues() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = Out::default();
    for f in [video_seq(0), audio_seq(0)]
        .into_iter()
        .chain(av(0, 2500, 0, true))
    {
        p.push(&f).unwrap();
    }
    p.mark_discontinuity();
    drain(&mut p, &mut out);
    assert_eq!(out.discontinuities.len(), 1);
    let closed = out.segments.len();
    assert_eq!(closed, 4, "segments 1 and 2 of both tracks");
    // The new publisher sends the same headers and starts at 0 again.
    for f in [video_seq(0), audio_seq(0)]
        .into_iter()
        .chain(av(0, 2500, 0, true))
    {
        p.push(&f).unwrap();
    }
    p.finish();
    drain(&mut p, &mut out);
    check_invariants(&out);
    assert_eq!(out.inits.len(), 2, "same config: no new init");
    assert_eq!(
        out.discontinuities.len(),
        1,
        "no second one for the restart"
    );
    let v = out.segs(TrackKind::Video);
    assert_eq!(v[2].number, 3);
    assert!(v[2].discontinuity);
    let gap = v[2].start - (v[1].start + v[1].duration);
    assert!(gap < 90 * 24, "{gap}");
}

#[test]
fn audio_only_cuts_by_time() {
    let mut frames = vec![audio_seq(0)];
    frames.extend(
        av(0, 7000, 0, true)
            .into_iter()
            .filter(|f| f.kind == FrameKind::Audio),
    );
    let out = run(&frames, true);
    let a = out.segs(TrackKind::Audio);
    assert_eq!(a.len(), 4);
    for s in &a[..3] {
        let ms = s.duration * 1000 / 44100;
        assert!((2000..2030).contains(&ms), "{ms}");
    }
    assert!(out.segs(TrackKind::Video).is_empty());
}

#[test]
fn video_only_starts_after_a_second_without_audio() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = Out::default();
    p.push(&video_seq(0)).unwrap();
    for f in av(0, 5000, 0, false) {
        p.push(&f).unwrap();
    }
    drain(&mut p, &mut out);
    assert!(!out.parts.is_empty(), "started without waiting for audio");
    p.finish();
    drain(&mut p, &mut out);
    check_invariants(&out);
    let v = out.segs(TrackKind::Video);
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].start, 0);
}

#[test]
fn video_stall_hands_cuts_to_audio_and_video_rejoins() {
    let mut frames = vec![video_seq(0), audio_seq(0)];
    let all = av(0, 16_000, 0, true);
    // Video disappears between 3 s and 10 s.
    frames.extend(
        all.into_iter()
            .filter(|f| f.kind == FrameKind::Audio || f.timestamp < 3000 || f.timestamp >= 10_000),
    );
    let out = run(&frames, true);
    let a = out.segs(TrackKind::Audio);
    // Audio kept being segmented every ~2 s during the stall.
    assert!(a.iter().all(|s| s.duration <= 44100 * 23 / 10), "{a:?}");
    let v = out.segs(TrackKind::Video);
    let rejoined = v.iter().find(|s| s.start >= 900_000).unwrap();
    assert!(rejoined.discontinuity);
}

#[test]
fn config_change_emits_new_init_version() {
    let mut frames = vec![video_seq(0), audio_seq(0)];
    frames.extend(av(0, 2500, 0, true));
    let mut changed = AVCC.to_vec();
    changed[3] = 0x1f; // level 3.1: a different record
    let mut body = vec![0x17, 0, 0, 0, 0];
    body.extend_from_slice(&changed);
    frames.push(Frame::new(FrameKind::Video, 2500, Bytes::from(body)));
    frames.extend(
        av(2500, 6000, 0, true)
            .into_iter()
            .skip_while(|f| !f.is_keyframe()),
    );
    let out = run(&frames, true);
    assert_eq!(
        out.inits,
        [
            (TrackKind::Video, 1),
            (TrackKind::Audio, 1),
            (TrackKind::Video, 2)
        ]
    );
    let v = out.segs(TrackKind::Video);
    let i = v.iter().position(|s| s.init_version == 2).unwrap();
    assert!(v[i].discontinuity);
    assert!(v[..i].iter().all(|s| s.init_version == 1));
    assert_eq!(out.discontinuities.len(), 1);
}

#[test]
fn malformed_frames_are_errors_and_the_packager_goes_on() {
    let mut p = Packager::new(PackagerConfig::default());
    assert!(
        p.push(&video(0, true, 0)).is_err(),
        "no sequence header yet"
    );
    assert!(p.push(&audio(0)).is_err(), "no sequence header yet");
    let bad_avcc = Frame::new(
        FrameKind::Video,
        0,
        Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
    );
    assert!(p.push(&bad_avcc).is_err());
    let bad_asc = Frame::new(FrameKind::Audio, 0, Bytes::from_static(&[0xaf, 0, 0x00]));
    assert!(p.push(&bad_asc).is_err());
    p.push(&video_seq(0)).unwrap();
    p.push(&audio_seq(0)).unwrap();
    let overrun = Frame::new(
        FrameKind::Video,
        0,
        Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 9, 0x65]),
    );
    assert!(p.push(&overrun).is_err());
    let mp3 = Frame::new(FrameKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff, 0xfb]));
    assert!(p.push(&mp3).is_err());
    let hevc = Frame::new(FrameKind::Video, 0, Bytes::from_static(b"\x91hvc1\0\0\0\0"));
    assert!(p.push(&hevc).is_err());
    assert!(
        p.push(&Frame::new(FrameKind::Video, 0, Bytes::new()))
            .is_err()
    );
    p.push(&Frame::new(
        FrameKind::Script,
        0,
        Bytes::from_static(b"\x02"),
    ))
    .unwrap();
    let mut out = Out::default();
    for f in av(0, 3000, 0, true) {
        p.push(&f).unwrap();
    }
    p.finish();
    drain(&mut p, &mut out);
    check_invariants(&out);
    assert_eq!(out.segs(TrackKind::Video).len(), 2);
    let info = p.track_info(TrackKind::Video).unwrap();
    assert_eq!((info.width, info.height), (Some(320), Some(240)));
    assert_eq!(info.codec, "avc1.64000D");
    let info = p.track_info(TrackKind::Audio).unwrap();
    assert_eq!(
        (info.timescale, info.channels, info.codec.as_str()),
        (44100, Some(2), "mp4a.40.2")
    );
}

#[test]
fn composition_offsets_are_kept_signed() {
    let mut frames = vec![video_seq(0)];
    for i in 0..90u32 {
        let cts = if i.is_multiple_of(30) { 67 } else { -33 };
        frames.push(video(i * 33 + 100, i.is_multiple_of(30), cts));
    }
    let out = run(&frames, true);
    let seg = out.segs(TrackKind::Video)[0];
    let mut buf = &seg.data[..];
    let mut found = Vec::new();
    while !buf.is_empty() {
        if let Any::Moof(Moof { traf, .. }) = Any::decode(&mut buf).unwrap() {
            found.extend(traf[0].trun[0].samples.iter().map(|e| e.cts.unwrap()));
        }
    }
    assert_eq!(found[0], 67 * 90);
    assert_eq!(found[1], -33 * 90);
}
