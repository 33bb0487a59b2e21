//! `FollowerPackager` on arbitrary input: frames with any timestamps (backwards,
//! wrapping, duplicated), key frames anywhere, segment starts early, late, skipped or
//! stale, restarts and decoder changes at any point. It never panics, and what it
//! emits stays sound: numbers increase, every segment opens on a key frame at exactly
//! the announced `start`, no sample lasts zero, parts add up to their segment.

use std::collections::HashMap;

use bytes::Bytes;
use mp4_atom::{Any, Decode};
use proptest::prelude::*;
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::packager::{
    FollowerPackager, PackagerConfig, PackagerEvent, Segment, SegmentStart,
};

const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

#[derive(Debug, Clone)]
enum Op {
    /// A coded frame `step` ms after the previous one.
    Frame {
        step: i32,
        key: bool,
        cts: i32,
    },
    /// A segment start `skip` numbers on, `at` ms from the last frame, `gap` ms of
    /// output after the previous start.
    Cut {
        skip: u64,
        at: i32,
        cts: i32,
        gap: u32,
    },
    /// A key frame presented at the last start's time (± `jitter` ms).
    KeyAtCut {
        jitter: i32,
    },
    Restart,
    /// A sequence header (`changed`: different bytes).
    Config {
        changed: bool,
    },
    /// Garbage in a video tag.
    Junk(Vec<u8>),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        20 => (prop_oneof![Just(33), Just(34), -40i32..120], prop::bool::weighted(0.15), prop_oneof![Just(0), -20i32..120])
            .prop_map(|(step, key, cts)| Op::Frame { step, key, cts }),
        3 => (0u64..3, prop_oneof![-3000i32..3000, 0i32..300], 0i32..100, 0u32..4000)
            .prop_map(|(skip, at, cts, gap)| Op::Cut { skip, at, cts, gap }),
        2 => (-3i32..4).prop_map(|jitter| Op::KeyAtCut { jitter }),
        1 => Just(Op::Restart),
        1 => any::<bool>().prop_map(|changed| Op::Config { changed }),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Op::Junk),
    ];
    prop::collection::vec(op, 0..400)
}

fn frame(ts: u32, key: bool, cts: i32) -> Frame {
    let c = cts.to_be_bytes();
    let body = vec![
        if key { 0x17 } else { 0x27 },
        1,
        c[1],
        c[2],
        c[3],
        0,
        0,
        0,
        2,
        if key { 0x65 } else { 0x41 },
        0x88,
    ];
    Frame::new(FrameKind::Video, ts, Bytes::from(body))
}

fn header(changed: bool) -> Frame {
    let mut body = vec![0x17, 0, 0, 0, 0];
    body.extend_from_slice(AVCC);
    if changed {
        (body[5 + 3], body[5 + 11]) = (0x1f, 0x1f);
    }
    Frame::new(FrameKind::Video, 0, Bytes::from(body))
}

fn check(seg: &Segment, parts: u64, starts: &HashMap<u64, u64>) {
    assert!(seg.duration > 0 && seg.starts_with_keyframe);
    assert_eq!(parts, seg.duration, "parts of segment {}", seg.number);
    assert_eq!(Some(&seg.start), starts.get(&seg.number));
    let mut buf = &seg.data[..];
    let mut first = true;
    while !buf.is_empty() {
        if let Any::Moof(moof) = Any::decode(&mut buf).unwrap() {
            let traf = &moof.traf[0];
            if first {
                assert_eq!(
                    traf.tfdt.as_ref().unwrap().base_media_decode_time,
                    seg.start
                );
                first = false;
            }
            let trun = &traf.trun[0];
            assert!(trun.samples.iter().all(|s| s.duration.unwrap_or(1) > 0));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn follower_never_panics_and_output_stays_sound(ops in ops(), from in any::<u32>()) {
        let mut f = FollowerPackager::new(PackagerConfig { target_segment_ms: 1000, part_target_ms: 300 });
        let (mut ts, mut number, mut start, mut cut_pts) = (from, 0u64, 0u64, from);
        let mut starts = HashMap::new();
        let mut parts: HashMap<u64, u64> = HashMap::new();
        let mut last = 0;
        let mut drain = |f: &mut FollowerPackager, starts: &HashMap<u64, u64>| {
            while let Some(ev) = f.poll_output() {
                match ev {
                    PackagerEvent::Part(p) => *parts.entry(p.segment).or_default() += p.duration,
                    PackagerEvent::Segment(s) => {
                        assert!(s.number > last);
                        last = s.number;
                        check(&s, parts.remove(&s.number).unwrap_or(0), starts);
                    }
                    _ => {}
                }
            }
        };
        f.push(&header(false)).unwrap();
        for op in ops {
            match op {
                Op::Frame { step, key, cts } => {
                    ts = ts.wrapping_add_signed(step);
                    let _ = f.push(&frame(ts, key, cts));
                }
                Op::Cut { skip, at, cts, gap } => {
                    number += 1 + skip;
                    start += u64::from(gap) * 90;
                    starts.insert(number, start);
                    cut_pts = ts.wrapping_add_signed(at + cts);
                    f.cut(&SegmentStart {
                        number,
                        input_timestamp: ts.wrapping_add_signed(at),
                        composition_time: cts,
                        start,
                        discontinuity: false,
                    });
                }
                Op::KeyAtCut { jitter } => {
                    ts = cut_pts.wrapping_add_signed(jitter);
                    let _ = f.push(&frame(ts, true, 0));
                }
                Op::Restart => f.restart(),
                Op::Config { changed } => { let _ = f.push(&header(changed)); }
                Op::Junk(body) => {
                    let _ = f.push(&Frame::new(FrameKind::Video, ts, Bytes::from(body)));
                }
            }
            drain(&mut f, &starts);
        }
        f.finish();
        drain(&mut f, &starts);
        if std::env::var_os("FOLLOWER_STATS").is_some() {
            eprintln!("segments up to {last}");
        }
    }
}
