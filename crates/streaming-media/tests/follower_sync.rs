//! Rendition segments cut on the source's boundaries, on synthetic frames (no FFmpeg):
//! the source goes through `Packager`, a "rendition" with the source's presentation
//! times (±1 ms), key frames at the source's and extra ones in between, through
//! `FollowerPackager`, the `SegmentStart`s fed before, just after and late.

use bytes::Bytes;
use mp4_atom::{Any, Decode};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::packager::{
    FollowerPackager, Packager, PackagerConfig, PackagerEvent, Part, Segment, SegmentStart,
    TrackKind,
};

/// The avcC FFmpeg/x264 wrote for a 320x240 High@1.3 stream.
const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];
/// The source's B-frame delay: every source frame is presented 67 ms after decoding.
const SRC_CTS: i32 = 67;
/// Source key frames every second; segments target 2 s.
const GOP: u32 = 30;
const CONFIG: PackagerConfig = PackagerConfig {
    target_segment_ms: 2000,
    part_target_ms: 500,
};
/// 90 kHz ticks of one 30 fps frame.
const FRAME: u64 = 3000;

fn video_seq(ts: u32, avcc: &[u8]) -> Frame {
    let mut body = vec![0x17, 0, 0, 0, 0];
    body.extend_from_slice(avcc);
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

fn audio(ts: u32, header: bool) -> Frame {
    let body: &'static [u8] = if header {
        &[0xaf, 0, 0x12, 0x10]
    } else {
        &[0xaf, 1, 0x21, 0x10, 0x04]
    };
    Frame::new(FrameKind::Audio, ts, Bytes::from_static(body))
}

/// Decode time (ms) of source video frame `i`.
fn dts(i: u32) -> u32 {
    (i * 1000).div_ceil(30)
}

/// The source: 30 fps video presented `SRC_CTS` after decoding, with 44.1 kHz AAC.
fn source(frames: u32) -> Vec<Frame> {
    let mut out = vec![video_seq(0, AVCC), audio(0, true)];
    let mut a = 0u64;
    for i in 0..frames {
        let t = dts(i);
        while (a * 1024 * 1000 / 44100) as u32 <= t {
            out.push(audio((a * 1024 * 1000 / 44100) as u32, false));
            a += 1;
        }
        out.push(video(t, i % GOP == 0, SRC_CTS));
    }
    out
}

/// A rendition frame `i`: what FFmpeg makes of source frame `i`.
#[derive(Clone, Copy)]
struct RFrame {
    i: u32,
    key: bool,
    /// The rendition's own B-frame delay (0: none).
    delay: i32,
    jitter: i32,
}

impl RFrame {
    fn pts(&self) -> u32 {
        (dts(self.i) as i32 + SRC_CTS + self.jitter) as u32
    }
    fn frame(&self) -> Frame {
        video(self.pts() - self.delay as u32, self.key, self.delay)
    }
}

/// Rendition frames `from..to`: presentation times of the source ±1 ms, key frames at
/// every source key frame plus one mid-GOP (`extra`), except at the `missing` indices.
fn rendition(from: u32, to: u32, delay: i32, extra: bool, missing: &[u32]) -> Vec<RFrame> {
    (from..to)
        .map(|i| RFrame {
            i,
            key: (i % GOP == 0 || (extra && i % GOP == 13) || i == from) && !missing.contains(&i),
            delay,
            jitter: [0, 1, -1, 1, 0, -1, 1][i as usize % 7],
        })
        .collect()
}

#[derive(Default)]
struct Out {
    segments: Vec<Segment>,
    parts: Vec<Part>,
    starts: Vec<SegmentStart>,
    discontinuities: Vec<String>,
    inits: u32,
}

impl Out {
    fn take(&mut self, ev: PackagerEvent) {
        match ev {
            PackagerEvent::Init(i) => self.inits += u32::from(i.track == TrackKind::Video),
            PackagerEvent::Part(p) => self.parts.push(p),
            PackagerEvent::Segment(s) => self.segments.push(s),
            PackagerEvent::Discontinuity { reason } => self.discontinuities.push(reason),
        }
    }

    fn video(&self) -> Vec<&Segment> {
        let segs = self.segments.iter();
        segs.filter(|s| s.track == TrackKind::Video).collect()
    }

    fn number(&self, n: u64) -> Option<&Segment> {
        self.video().into_iter().find(|s| s.number == n)
    }
}

/// Package the source; every `SegmentStart` comes before any part of its segment.
fn package_source(frames: &[Frame]) -> Out {
    let mut p = Packager::new(CONFIG);
    let mut out = Out::default();
    let drain = |p: &mut Packager, out: &mut Out| {
        while let Some(s) = p.poll_segment_start() {
            assert!(!out.parts.iter().any(|x| x.segment == s.number));
            out.starts.push(s);
        }
        while let Some(ev) = p.poll_output() {
            if let PackagerEvent::Part(part) = &ev {
                let announced = out.starts.iter().any(|s| s.number == part.segment);
                assert!(part.track == TrackKind::Audio || announced);
            }
            out.take(ev);
        }
    };
    for f in frames {
        p.push(f).unwrap();
        drain(&mut p, &mut out);
    }
    p.finish();
    drain(&mut p, &mut out);
    assert!(out.discontinuities.is_empty(), "{:?}", out.discontinuities);
    for s in &out.starts {
        let seg = out.number(s.number).unwrap();
        assert_eq!(s.start, seg.start);
        assert_eq!(s.discontinuity, seg.discontinuity);
        assert_eq!(s.composition_time, SRC_CTS);
    }
    out
}

/// How the `SegmentStart`s reach the follower.
#[derive(Clone, Copy, Debug)]
enum Feed {
    /// All of them before any rendition frame.
    Before,
    /// Each one once the rendition is `lag_ms` past its time (0: right after the
    /// rendition's key frame there).
    After { lag_ms: u32 },
}

fn drain(f: &mut FollowerPackager, out: &mut Out) {
    while let Some(ev) = f.poll_output() {
        out.take(ev);
    }
}

fn follow_into(
    f: &mut FollowerPackager,
    out: &mut Out,
    frames: &[RFrame],
    starts: &[SegmentStart],
    feed: Feed,
) {
    let mut next = 0;
    if let Feed::Before = feed {
        starts.iter().for_each(|s| f.cut(s));
        next = starts.len();
    }
    f.push(&video_seq(0, AVCC)).unwrap();
    for r in frames {
        f.push(&r.frame()).unwrap();
        drain(f, out);
        if let Feed::After { lag_ms } = feed {
            while next < starts.len() {
                let due = starts[next].input_presentation_time() + lag_ms;
                if r.pts() < due {
                    break;
                }
                f.cut(&starts[next]);
                next += 1;
            }
        }
        drain(f, out);
    }
    starts[next..].iter().for_each(|s| f.cut(s));
}

fn follow(frames: &[RFrame], starts: &[SegmentStart], feed: Feed) -> Out {
    let mut f = FollowerPackager::new(CONFIG);
    let mut out = Out::default();
    follow_into(&mut f, &mut out, frames, starts, feed);
    f.finish();
    drain(&mut f, &mut out);
    check_sound(&out);
    out
}

/// Numbers increase, segments tile (no overlap), durations are never zero, parts add
/// up to their segments and every segment opens on a key frame.
fn check_sound(out: &Out) {
    let mut end = 0;
    let mut last = 0;
    for seg in out.video() {
        assert!(
            seg.number > last && seg.start >= end,
            "segment {}",
            seg.number
        );
        assert!(seg.starts_with_keyframe && seg.duration > 0);
        let parts = out.parts.iter().filter(|p| p.segment == seg.number);
        assert_eq!(parts.map(|p| p.duration).sum::<u64>(), seg.duration);
        let mut buf = &seg.data[..];
        while !buf.is_empty() {
            if let Any::Moof(moof) = Any::decode(&mut buf).unwrap() {
                let trun = &moof.traf[0].trun[0];
                assert!(trun.samples.iter().all(|s| s.duration != Some(0)));
            }
        }
        last = seg.number;
        end = seg.start + seg.duration;
    }
}

/// (tfdt, composition offset) of a segment's first sample.
fn first_sample(seg: &Segment) -> (u64, i64) {
    let mut buf = &seg.data[..];
    loop {
        if let Any::Moof(moof) = Any::decode(&mut buf).unwrap() {
            let traf = &moof.traf[0];
            let cts = traf.trun[0].samples.get(0).unwrap().cts.unwrap_or(0);
            return (traf.tfdt.as_ref().unwrap().base_media_decode_time, cts);
        }
    }
}

/// Every rendition segment has the source's number, start and duration (the one
/// closed by `finish` within a frame), and presents its key frame when the source does.
fn assert_aligned(src: &Out, r: &Out) {
    let segs = r.video();
    assert!(!segs.is_empty());
    for (k, seg) in segs.iter().enumerate() {
        let s = src.number(seg.number).expect("the source has this number");
        assert_eq!(seg.start, s.start, "segment {} start", seg.number);
        if k + 1 < segs.len() {
            assert_eq!(seg.duration, s.duration, "segment {} duration", seg.number);
        } else {
            assert!(seg.duration.abs_diff(s.duration) <= FRAME, "last segment");
        }
        let (tfdt, cts) = first_sample(seg);
        assert_eq!(tfdt, s.start);
        let (_, src_cts) = first_sample(s);
        assert!(
            cts.abs_diff(src_cts) <= 90,
            "presentation {cts} vs {src_cts}"
        );
    }
}

#[test]
fn segments_align_whenever_the_starts_arrive() {
    let src = package_source(&source(600));
    let numbers: Vec<u64> = src.video().iter().map(|s| s.number).collect();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
    let feeds = [
        Feed::Before,
        Feed::After { lag_ms: 0 },
        Feed::After { lag_ms: 700 },
        Feed::After { lag_ms: 2500 },
    ];
    for delay in [0, 33] {
        for feed in feeds {
            let r = follow(&rendition(0, 600, delay, true, &[]), &src.starts, feed);
            assert_eq!(r.inits, 1);
            assert!(
                r.discontinuities.is_empty(),
                "{feed:?}: {:?}",
                r.discontinuities
            );
            let numbers_r: Vec<u64> = r.video().iter().map(|s| s.number).collect();
            assert_eq!(numbers_r, numbers, "{feed:?} delay {delay}");
            assert_aligned(&src, &r);
            assert!(r.video().iter().all(|s| !s.discontinuity));
            // Parts are cut by time as in the source, independent only at key frames.
            assert!(r.parts.iter().all(|p| p.duration <= 45_000 + FRAME));
            assert!(r.parts.iter().any(|p| !p.independent));
        }
    }
}

#[test]
fn rendition_joining_late_starts_at_the_next_boundary() {
    let src = package_source(&source(600));
    // The encoder's first frame (a key frame) is mid-GOP, at 3.5 s.
    for feed in [Feed::Before, Feed::After { lag_ms: 300 }] {
        let r = follow(&rendition(105, 600, 0, false, &[]), &src.starts, feed);
        let numbers: Vec<u64> = r.video().iter().map(|s| s.number).collect();
        assert_eq!(numbers, (3..=10).collect::<Vec<_>>(), "{feed:?}");
        assert_aligned(&src, &r);
        assert!(!r.video()[0].discontinuity);
    }
}

#[test]
fn restart_drops_the_open_segment_and_flags_the_next() {
    let src = package_source(&source(600));
    // Segment 4 covers [6 s, 8 s); the encoder dies at 7.5 s. The new one starts at
    // 9 s (mid-segment 5) or exactly at 8 s (the start of segment 5).
    for (resume, first_after) in [(270, 6), (240, 5)] {
        for feed in [Feed::Before, Feed::After { lag_ms: 400 }] {
            let mut f = FollowerPackager::new(CONFIG);
            let mut out = Out::default();
            let (head, tail) = (
                rendition(0, 225, 0, true, &[]),
                rendition(resume, 600, 0, true, &[]),
            );
            let split = src.starts.iter().position(|s| s.number == 5).unwrap();
            follow_into(&mut f, &mut out, &head, &src.starts[..split], feed);
            f.restart();
            drain(&mut f, &mut out);
            assert_eq!(out.discontinuities.len(), 1, "{:?}", out.discontinuities);
            assert!(out.discontinuities[0].contains("segment 4 dropped"));
            follow_into(&mut f, &mut out, &tail, &src.starts[split..], feed);
            f.finish();
            drain(&mut f, &mut out);
            check_sound(&out);
            let numbers: Vec<u64> = out.video().iter().map(|s| s.number).collect();
            let expect: Vec<u64> = (1..=3).chain(first_after..=10).collect();
            assert_eq!(numbers, expect, "resume at frame {resume}, {feed:?}");
            assert_aligned(&src, &out);
            for seg in out.video() {
                assert_eq!(seg.discontinuity, seg.number == first_after);
                // Nothing spans the restart: each segment is before 7.5 s or after it.
                let restart = 225 * FRAME;
                assert!(seg.start + seg.duration <= restart || seg.start >= restart);
            }
            assert_eq!(out.inits, 1, "the same avcC again is no new init");
        }
    }
}

#[test]
fn missing_key_frame_makes_a_longer_segment_that_still_tiles() {
    let src = package_source(&source(600));
    // No key frame at 4 s (segment 3's start): segment 2 runs on to 6 s.
    for feed in [
        Feed::Before,
        Feed::After { lag_ms: 0 },
        Feed::After { lag_ms: 900 },
    ] {
        let r = follow(&rendition(0, 600, 0, true, &[120]), &src.starts, feed);
        let numbers: Vec<u64> = r.video().iter().map(|s| s.number).collect();
        assert_eq!(numbers, [1, 2, 4, 5, 6, 7, 8, 9, 10], "{feed:?}");
        assert_eq!(r.discontinuities.len(), 1, "{:?}", r.discontinuities);
        assert!(r.discontinuities[0].contains("segment 3"));
        let long = r.number(2).unwrap();
        let (s2, s3) = (src.number(2).unwrap(), src.number(3).unwrap());
        assert_eq!(long.start, s2.start);
        assert_eq!(long.duration, s2.duration + s3.duration);
        assert!(!r.number(4).unwrap().discontinuity);
        let rest: Vec<&Segment> = r.video().into_iter().filter(|s| s.number != 2).collect();
        for seg in rest {
            let s = src.number(seg.number).unwrap();
            assert_eq!(seg.start, s.start);
        }
    }
}

#[test]
fn a_new_decoder_configuration_is_a_new_init_and_a_discontinuity() {
    let src = package_source(&source(300));
    let mut f = FollowerPackager::new(CONFIG);
    let mut out = Out::default();
    src.starts.iter().for_each(|s| f.cut(s));
    f.push(&video_seq(0, AVCC)).unwrap();
    for r in rendition(0, 150, 0, false, &[]) {
        f.push(&r.frame()).unwrap();
    }
    let mut other = AVCC.to_vec();
    (other[3], other[11]) = (0x1e, 0x1e); // level 3.0 instead of 1.3 (record and SPS)
    f.push(&video_seq(0, &other)).unwrap();
    for r in rendition(150, 300, 0, false, &[]) {
        f.push(&r.frame()).unwrap();
    }
    f.finish();
    drain(&mut f, &mut out);
    check_sound(&out);
    assert_eq!(out.inits, 2);
    let numbers: Vec<(u64, u32, bool)> = out
        .video()
        .iter()
        .map(|s| (s.number, s.init_version, s.discontinuity))
        .collect();
    // Segment 3 ([4 s, 6 s)) was open at 5 s: dropped; 4 and 5 use the new init.
    assert_eq!(
        numbers,
        [(1, 1, false), (2, 1, false), (4, 2, true), (5, 2, false)]
    );
    assert_eq!(f.track_info().unwrap().codec, "avc1.64001E");
}

#[test]
fn starts_that_never_come_leave_nothing_open_and_nothing_panics() {
    // No SegmentStart at all: everything is dropped, boundedly.
    let r = follow(&rendition(0, 600, 0, true, &[]), &[], Feed::Before);
    assert!(r.video().is_empty());
    // Starts only after 12 s of rendition: key frames held longer than 6 s were given
    // up on; the one at 6 s was still held and opens segment 4.
    let src = package_source(&source(600));
    let mut f = FollowerPackager::new(CONFIG);
    let mut out = Out::default();
    follow_into(
        &mut f,
        &mut out,
        &rendition(0, 360, 0, true, &[]),
        &[],
        Feed::Before,
    );
    src.starts.iter().for_each(|s| f.cut(s));
    follow_into(
        &mut f,
        &mut out,
        &rendition(360, 600, 0, true, &[]),
        &[],
        Feed::Before,
    );
    f.finish();
    drain(&mut f, &mut out);
    check_sound(&out);
    let numbers: Vec<u64> = out.video().iter().map(|s| s.number).collect();
    assert_eq!(numbers, (4..=10).collect::<Vec<_>>());
    assert_aligned(&src, &out);
}

#[test]
fn key_frames_between_boundaries_are_not_held_back() {
    // The starts come right after the rendition's key frame at each boundary (the
    // source barely ahead); the mid-GOP and mid-segment key frames cannot be starts
    // (too soon after the last one), so parts flow out as the frames come in.
    let src = package_source(&source(600));
    let mut f = FollowerPackager::new(CONFIG);
    let mut out = Out::default();
    let mut starts = src.starts.iter().peekable();
    f.push(&video_seq(0, AVCC)).unwrap();
    let mut worst = 0;
    for r in rendition(0, 600, 0, true, &[]) {
        f.push(&r.frame()).unwrap();
        if let Some(s) = starts.next_if(|s| r.pts() >= s.input_presentation_time()) {
            f.cut(s);
        }
        drain(&mut f, &mut out);
        let Some(seg) = out.parts.last().map(|p| p.segment) else {
            continue;
        };
        let start = src.number(seg).unwrap().start;
        let parts = out.parts.iter().filter(|p| p.segment == seg);
        let emitted = start + parts.map(|p| p.duration).sum::<u64>();
        let now = u64::from(r.pts() - r.delay as u32 - SRC_CTS as u32) * 90;
        worst = worst.max(now.saturating_sub(emitted));
    }
    // A part closes once another frame would not fit; one frame is always held.
    assert!(
        worst <= 45_000 + 2 * FRAME,
        "parts lag {worst} ticks behind"
    );
    f.finish();
    drain(&mut f, &mut out);
    assert_aligned(&src, &out);
}

#[test]
fn source_discontinuities_carry_over() {
    // The source flags segments 1 (ignored: a first segment is never one), 3 and 6;
    // the rendition has no key frame at 6 s, so 7 carries 6's flag.
    let src = package_source(&source(600));
    let mut starts = src.starts.clone();
    for s in &mut starts {
        s.discontinuity = [1, 3, 6].contains(&s.number);
    }
    for feed in [Feed::Before, Feed::After { lag_ms: 300 }] {
        let r = follow(&rendition(0, 600, 0, true, &[300]), &starts, feed);
        let flagged: Vec<u64> = r
            .video()
            .iter()
            .filter(|s| s.discontinuity)
            .map(|s| s.number)
            .collect();
        assert_eq!(flagged, [3, 7], "{feed:?}");
    }
}
