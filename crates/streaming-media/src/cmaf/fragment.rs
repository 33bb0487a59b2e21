//! CMAF fragments and chunks (ISO/IEC 23000-19 §7.3.2-7.3.3): `moof` + `mdat`.

use bytes::Bytes;
use mp4_atom::{Mfhd, Moof, Styp, Tfdt, Tfhd, Traf, Trun, TrunEntry};

use super::{CmafError, TRACK_ID, encode};

/// One sample (access unit) of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Duration in track timescale units.
    pub duration: u32,
    /// `sample_flags` (see [`super::SYNC_SAMPLE_FLAGS`]).
    pub flags: u32,
    /// PTS − DTS in track timescale units (trun version 1, signed).
    pub composition_offset: i32,
    /// The sample payload (AVCC NAL units, or one raw AAC access unit).
    pub data: Bytes,
}

/// The `styp` that may lead a CMAF segment (DASH media segment + CMAF segment brands).
pub fn styp() -> Styp {
    Styp {
        major_brand: b"msdh".into(),
        minor_version: 0,
        compatible_brands: vec![b"msdh".into(), b"cmfs".into()],
    }
}

fn moof(sequence_number: u32, base_decode_time: u64, samples: &[Sample], data_offset: i32) -> Moof {
    // Flags shared by every sample go in tfhd; a different first one (a key frame
    // opening a run of non-sync frames) goes in trun's first_sample_flags.
    let rest = samples.get(1).map_or(samples[0].flags, |s| s.flags);
    let uniform_rest = samples.iter().skip(1).all(|s| s.flags == rest);
    let with_cts = samples.iter().any(|s| s.composition_offset != 0);
    let entries = samples
        .iter()
        .enumerate()
        .map(|(i, s)| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.data.len() as u32),
            flags: match (uniform_rest, i) {
                (true, 0) if s.flags != rest => Some(s.flags),
                (true, _) => None,
                (false, _) => Some(s.flags),
            },
            cts: with_cts.then_some(i64::from(s.composition_offset)),
        })
        .collect::<Vec<_>>();
    Moof {
        mfhd: Mfhd { sequence_number },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_sample_flags: uniform_rest.then_some(rest),
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(data_offset),
                samples: entries.into(),
            }],
            ..Default::default()
        }],
    }
}

/// Write one fragment (a CMAF chunk): optional `styp`, `moof`, `mdat`.
///
/// `sequence_number` goes in `mfhd`, `base_decode_time` (the first sample's DTS) in
/// `tfdt`. Sample payloads are copied once, into the returned contiguous buffer.
pub fn write_fragment(
    sequence_number: u32,
    base_decode_time: u64,
    samples: &[Sample],
    with_styp: bool,
) -> Result<Bytes, CmafError> {
    if samples.is_empty() {
        return Err(CmafError::NoSamples);
    }
    let mut payload_len = 0usize;
    for (index, s) in samples.iter().enumerate() {
        if u32::try_from(s.data.len()).is_err() {
            return Err(CmafError::SampleTooLarge {
                index,
                what: "size",
            });
        }
        payload_len += s.data.len();
    }
    let mdat_len = payload_len + 8;
    if u32::try_from(mdat_len).is_err() {
        return Err(CmafError::FragmentTooLarge { len: mdat_len });
    }

    // Measure the moof, then write it again with the data offset it implies (the
    // field has a fixed width, so the size does not change).
    let mut probe = Vec::with_capacity(128 + samples.len() * 16);
    encode(
        "moof",
        &moof(sequence_number, base_decode_time, samples, 0),
        &mut probe,
    )?;
    let moof_len = probe.len();
    let data_offset =
        i32::try_from(moof_len + 8).map_err(|_| CmafError::FragmentTooLarge { len: moof_len })?;

    let mut out = Vec::with_capacity(64 + moof_len + mdat_len);
    if with_styp {
        encode("styp", &styp(), &mut out)?;
    }
    encode(
        "moof",
        &moof(sequence_number, base_decode_time, samples, data_offset),
        &mut out,
    )?;
    out.extend_from_slice(&(mdat_len as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for s in samples {
        out.extend_from_slice(&s.data);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::super::{NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};
    use super::*;
    use mp4_atom::{Decode, Mdat};

    fn sample(flags: u32, cts: i32, data: &'static [u8]) -> Sample {
        Sample {
            duration: 3000,
            flags,
            composition_offset: cts,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn fragment_reads_back() {
        let samples = [
            sample(SYNC_SAMPLE_FLAGS, 6000, b"key"),
            sample(NON_SYNC_SAMPLE_FLAGS, -3000, b"b1"),
            sample(NON_SYNC_SAMPLE_FLAGS, 0, b"p"),
        ];
        let frag = write_fragment(7, 1 << 33, &samples, true).unwrap();
        let buf = &mut &frag[..];
        let styp = Styp::decode(buf).unwrap();
        assert_eq!(styp.major_brand, b"msdh".into());
        let moof_start = frag.len() - buf.len();
        let moof = Moof::decode(buf).unwrap();
        let mdat = Mdat::decode(buf).unwrap();
        assert!(buf.is_empty());
        assert_eq!(mdat.data, b"keyb1p");
        assert_eq!(moof.mfhd.sequence_number, 7);
        let traf = &moof.traf[0];
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.default_sample_flags, Some(NON_SYNC_SAMPLE_FLAGS));
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 1 << 33);
        let trun = &traf.trun[0];
        let entries: Vec<_> = trun.samples.iter().collect();
        assert_eq!(entries[0].flags, Some(SYNC_SAMPLE_FLAGS));
        assert_eq!(entries[1].flags, None);
        assert_eq!(entries[1].cts, Some(-3000));
        assert_eq!(entries[2].size, Some(1));
        // The data offset points at the first payload byte, relative to the moof.
        let offset = trun.data_offset.unwrap() as usize;
        assert_eq!(&frag[moof_start + offset..moof_start + offset + 3], b"key");
    }

    #[test]
    fn mixed_flags_are_per_sample_and_empty_is_an_error() {
        let samples = [
            sample(NON_SYNC_SAMPLE_FLAGS, 0, b"a"),
            sample(SYNC_SAMPLE_FLAGS, 0, b"b"),
            sample(NON_SYNC_SAMPLE_FLAGS, 0, b"c"),
        ];
        let frag = write_fragment(1, 0, &samples, false).unwrap();
        let moof = Moof::decode(&mut &frag[..]).unwrap();
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.default_sample_flags, None);
        let flags: Vec<_> = traf.trun[0].samples.iter().map(|e| e.flags).collect();
        assert_eq!(
            flags,
            [
                Some(NON_SYNC_SAMPLE_FLAGS),
                Some(SYNC_SAMPLE_FLAGS),
                Some(NON_SYNC_SAMPLE_FLAGS)
            ]
        );
        assert!(traf.trun[0].samples.iter().all(|e| e.cts.is_none()));
        assert!(matches!(
            write_fragment(1, 0, &[], false),
            Err(CmafError::NoSamples)
        ));
    }
}
