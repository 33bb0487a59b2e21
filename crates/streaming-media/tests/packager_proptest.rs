//! Property tests: no input makes the parsers or the packager panic, and whatever
//! the packager emits stays well-formed (mp4-atom reads it, numbers and decode times
//! only grow per track, no sample lasts zero).

use bytes::Bytes;
use mp4_atom::{Any, Decode, Moof};
use proptest::prelude::*;
use streaming_media::aac::AudioSpecificConfig;
use streaming_media::avc::{AvcDecoderConfig, SpsInfo, validate_avcc_sample};
use streaming_media::flv::{FlvReader, parse_audio_tag, parse_video_tag};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::packager::{Packager, PackagerConfig, PackagerEvent, Segment, TrackKind};

const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

#[derive(Debug, Clone)]
enum Op {
    Push(Frame),
    Mark,
    Finish,
}

/// Mostly plausible frames (so the packager gets deep), some garbage.
fn frame_body() -> impl Strategy<Value = (FrameKind, Vec<u8>)> {
    let seq_v = Just((FrameKind::Video, [&[0x17, 0, 0, 0, 0][..], AVCC].concat()));
    let seq_a = prop_oneof![
        Just(vec![0xaf, 0, 0x12, 0x10]),
        Just(vec![0xaf, 0, 0x11, 0x90]),
        Just(vec![0xaf, 0, 0x2b, 0x11, 0x88, 0x00]),
    ]
    .prop_map(|b| (FrameKind::Audio, b));
    let coded_v = (
        any::<bool>(),
        -500i32..500,
        prop::collection::vec(any::<u8>(), 1..40),
    )
        .prop_map(|(key, cts, nal)| {
            let c = cts.to_be_bytes();
            let mut b = vec![if key { 0x17 } else { 0x27 }, 1, c[1], c[2], c[3]];
            b.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            b.extend_from_slice(&nal);
            (FrameKind::Video, b)
        });
    let raw_a = prop::collection::vec(any::<u8>(), 1..20).prop_map(|p| {
        let mut b = vec![0xaf, 1];
        b.extend_from_slice(&p);
        (FrameKind::Audio, b)
    });
    let garbage = (0u8..3, prop::collection::vec(any::<u8>(), 0..24)).prop_map(|(k, b)| {
        let kind = [FrameKind::Video, FrameKind::Audio, FrameKind::Script][usize::from(k)];
        (kind, b)
    });
    prop_oneof![
        1 => seq_v,
        1 => seq_a,
        8 => coded_v,
        8 => raw_a,
        2 => garbage,
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    // Timestamps: mostly small steps, sometimes anything (jumps, wraps, repeats).
    let step = prop_oneof![8 => 0u32..60, 1 => any::<u32>()];
    let op = prop_oneof![
        40 => (frame_body(), step).prop_map(|((kind, body), step)| (Some((kind, body)), step)),
        1 => Just((None, 0u32)),
        1 => Just((None, 1u32)),
    ];
    prop::collection::vec(op, 0..300).prop_map(|items| {
        let mut ts = 0u32;
        items
            .into_iter()
            .map(|(frame, step)| match frame {
                Some((kind, body)) => {
                    ts = ts.wrapping_add(step);
                    Op::Push(Frame::new(kind, ts, Bytes::from(body)))
                }
                None if step == 0 => Op::Mark,
                None => Op::Finish,
            })
            .collect()
    })
}

/// `end` is (decode time just after the previous segment, its timescale); the audio
/// timescale may change with a new AudioSpecificConfig.
fn check_segment(seg: &Segment, end: &mut (u64, u32)) {
    let (prev_end, prev_scale) = *end;
    let starts_after = u128::from(seg.start) * u128::from(prev_scale)
        >= u128::from(prev_end) * u128::from(seg.timescale);
    assert!(
        starts_after,
        "{:?} segment {} overlaps",
        seg.track, seg.number
    );
    let mut buf = &seg.data[..];
    let mut t = seg.start;
    while !buf.is_empty() {
        if let Any::Moof(Moof { traf, .. }) = Any::decode(&mut buf).unwrap() {
            let tfdt = traf[0].tfdt.as_ref().unwrap().base_media_decode_time;
            assert_eq!(tfdt, t);
            for e in traf[0].trun[0].samples.iter() {
                let d = e.duration.unwrap();
                assert!(d > 0, "zero duration");
                t += u64::from(d);
            }
        }
    }
    assert_eq!(t, seg.start + seg.duration);
    *end = (t, seg.timescale);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn packager_never_panics_and_output_stays_sound(ops in ops()) {
        let mut p = Packager::new(PackagerConfig { target_segment_ms: 1000, part_target_ms: 300 });
        let mut last = [(0u64, (0u64, 1u32)); 2];
        let mut drain = |p: &mut Packager| {
            while let Some(ev) = p.poll_output() {
                if let PackagerEvent::Segment(seg) = ev {
                    let i = usize::from(seg.track == TrackKind::Audio);
                    assert!(seg.number > last[i].0);
                    last[i].0 = seg.number;
                    check_segment(&seg, &mut last[i].1);
                }
            }
        };
        for op in ops {
            match op {
                Op::Push(frame) => { let _ = p.push(&frame); }
                Op::Mark => p.mark_discontinuity(),
                Op::Finish => p.finish(),
            }
            drain(&mut p);
        }
        p.finish();
        drain(&mut p);
    }

    #[test]
    fn parsers_never_panic(data in prop::collection::vec(any::<u8>(), 0..64), n in 0u8..6) {
        let bytes = Bytes::from(data.clone());
        let _ = parse_video_tag(&bytes);
        let _ = parse_audio_tag(&bytes);
        let _ = AvcDecoderConfig::parse(&bytes);
        let _ = SpsInfo::parse(&data);
        let _ = validate_avcc_sample(&data, n);
        let _ = AudioSpecificConfig::parse(&data);
        let mut file = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
        file.extend_from_slice(&data);
        if let Ok(reader) = FlvReader::new(Bytes::from(file)) {
            for _ in reader {}
        }
        if let Ok(reader) = FlvReader::new(bytes) {
            for _ in reader {}
        }
    }

    #[test]
    fn sps_bit_flips_never_panic(i in 0usize..25, bit in 0u8..8) {
        let mut sps = AVCC[8..33].to_vec();
        sps[i] ^= 1 << bit;
        let _ = SpsInfo::parse(&sps);
    }
}
