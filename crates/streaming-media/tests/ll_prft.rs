//! `prft` (ISO/IEC 14496-12 §8.16.5): the box read back by a box parser
//! written here from the spec's syntax and by `mp4-atom`'s decoder, and
//! inserted into real CMAF chunks before their `moof`.

use bytes::Bytes;
use mp4_atom::{Any, Decode, DecodeMaybe, Prft};
use streaming_media::cmaf::{
    PRFT_LEN, SYNC_SAMPLE_FLAGS, Sample, ntp_from_unix_ms, prft, with_prft, write_fragment,
};

/// The fields of a ProducerReferenceTimeBox, read from the spec's syntax:
/// `FullBox('prft', version, flags)`, `reference_track_ID` u32,
/// `ntp_timestamp` u64, `media_time` u32 (version 0) or u64 (version 1).
#[derive(Debug, PartialEq, Eq)]
struct ParsedPrft {
    size: u32,
    version: u8,
    flags: u32,
    track_id: u32,
    ntp: u64,
    media_time: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn parse_prft(b: &[u8]) -> ParsedPrft {
    assert_eq!(&b[4..8], b"prft");
    let version = b[8];
    ParsedPrft {
        size: u32_at(b, 0),
        version,
        flags: u32_at(b, 8) & 0x00ff_ffff,
        track_id: u32_at(b, 12),
        ntp: u64_at(b, 16),
        media_time: if version == 0 {
            u64::from(u32_at(b, 24))
        } else {
            u64_at(b, 24)
        },
    }
}

/// The top-level boxes of a file: (type, size).
fn boxes(mut b: &[u8]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let size = u32_at(b, 0) as usize;
        assert!(size >= 8 && size <= b.len(), "box size {size}");
        out.push((String::from_utf8_lossy(&b[4..8]).into_owned(), size));
        b = &b[size..];
    }
    out
}

#[test]
fn prft_is_a_version_1_box_with_64_bit_media_time() {
    // 2026-11-27T22:58:08.250Z
    let ntp = ntp_from_unix_ms(1_795_820_288_250);
    assert_eq!(ntp >> 32, 1_795_820_288 + 2_208_988_800);
    assert_eq!(ntp & 0xffff_ffff, 1 << 30, "a quarter second");
    let b = prft(1, ntp, 12_345);
    assert_eq!(b.len(), PRFT_LEN);
    assert_eq!(
        parse_prft(&b),
        ParsedPrft {
            size: 32,
            version: 1,
            flags: 0,
            track_id: 1,
            ntp,
            media_time: 12_345,
        }
    );
    // mp4-atom reads the same fields.
    let decoded = Prft::decode(&mut b.as_ref()).expect("mp4-atom decodes prft");
    assert_eq!(decoded.reference_track_id, 1);
    assert_eq!(decoded.ntp_timestamp, ntp);
    assert_eq!(decoded.media_time, 12_345);

    let big = prft(7, u64::MAX, u64::MAX - 7);
    assert_eq!(parse_prft(&big).media_time, u64::MAX - 7);
    assert_eq!(
        Prft::decode(&mut big.as_ref()).unwrap().media_time,
        u64::MAX - 7
    );
}

fn chunk(with_styp: bool) -> Bytes {
    let samples = [
        Sample {
            duration: 3000,
            flags: SYNC_SAMPLE_FLAGS,
            composition_offset: 0,
            data: Bytes::from_static(b"\0\0\0\x05key01"),
        },
        Sample {
            duration: 3000,
            flags: SYNC_SAMPLE_FLAGS,
            composition_offset: 0,
            data: Bytes::from_static(b"\0\0\0\x03abc"),
        },
    ];
    write_fragment(3, 90_000, &samples, with_styp).expect("fragment")
}

#[test]
fn with_prft_goes_after_styp_and_before_moof() {
    let p = prft(1, ntp_from_unix_ms(0), 90_000);
    for with_styp in [true, false] {
        let original = chunk(with_styp);
        let out = with_prft(&original, &p);
        let names: Vec<String> = boxes(&out).into_iter().map(|(n, _)| n).collect();
        let expected: &[&str] = if with_styp {
            &["styp", "prft", "moof", "mdat"]
        } else {
            &["prft", "moof", "mdat"]
        };
        assert_eq!(names, expected);
        // Nothing else moved: removing the box gives back the chunk.
        let at = out.windows(4).position(|w| w == b"prft").unwrap() - 4;
        assert_eq!(parse_prft(&out[at..]).media_time, 90_000);
        let rest = [&out[..at], &out[at + PRFT_LEN..]].concat();
        assert_eq!(rest, original.as_ref());

        // mp4-atom walks the whole chunk, and the moof's data offset (relative
        // to the moof) still points at the samples.
        let mut cursor = out.as_ref();
        let mut kinds = Vec::new();
        let mut moof_start = 0;
        while let Some(atom) = Any::decode_maybe(&mut cursor).expect("decode") {
            let offset = out.len() - cursor.len();
            match atom {
                Any::Moof(m) => {
                    let data_offset = m.traf[0].trun[0].data_offset.unwrap() as usize;
                    moof_start = offset - boxes(&out[..offset]).last().unwrap().1;
                    let first_sample = &out[moof_start + data_offset..][..9];
                    assert_eq!(first_sample, b"\0\0\0\x05key01");
                    kinds.push("moof");
                }
                Any::Prft(p) => {
                    assert_eq!(p.media_time, 90_000);
                    kinds.push("prft");
                }
                Any::Styp(_) => kinds.push("styp"),
                Any::Mdat(_) => kinds.push("mdat"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(kinds, expected);
        assert!(moof_start > 0);
    }
}

#[test]
fn with_prft_on_odd_input_never_panics() {
    let p = prft(1, 0, 0);
    for input in [&b""[..], b"\0\0\0\x10styp", b"\0\0\0\x01styp", b"junk"] {
        let out = with_prft(&Bytes::copy_from_slice(input), &p);
        assert_eq!(out.len(), input.len() + PRFT_LEN);
        assert_eq!(&out[..PRFT_LEN], p.as_ref(), "no whole styp: prft first");
    }
}
