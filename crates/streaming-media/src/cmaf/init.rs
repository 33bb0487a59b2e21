//! CMAF header / init segment (ISO/IEC 23000-19 §7.3.1): `ftyp` + `moov` for one track.

use bytes::Bytes;
use mp4_atom::{
    Audio, Codec, Dinf, Dref, Esds, Ftyp, Hdlr, Mdhd, Mdia, Minf, Moov, Mp4a, Mvex, Mvhd, Smhd,
    Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tkhd, Trak, Trex, Url, Visual, Vmhd, esds,
};

use super::{CmafError, TRACK_ID, encode};
use crate::aac::AudioSpecificConfig;
use crate::avc::{AvcDecoderConfig, SpsInfo};

fn ftyp() -> Ftyp {
    Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    }
}

fn stbl(codec: Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn moov(tkhd: Tkhd, timescale: u32, hdlr: Hdlr, minf: Minf) -> Moov {
    Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK_ID + 1,
            ..Default::default()
        },
        trak: vec![Trak {
            tkhd,
            mdia: Mdia {
                mdhd: Mdhd {
                    creation_time: 0,
                    modification_time: 0,
                    timescale,
                    duration: 0,
                    language: "und".into(),
                },
                hdlr,
                minf,
            },
            ..Default::default()
        }],
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: 0,
            }],
        }),
        ..Default::default()
    }
}

fn finish(moov: &Moov) -> Result<Bytes, CmafError> {
    let mut out = Vec::with_capacity(1024);
    encode("ftyp", &ftyp(), &mut out)?;
    encode("moov", moov, &mut out)?;
    Ok(Bytes::from(out))
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![Url::default().into()],
        },
    }
}

/// Init segment of an H.264 track (`avc1` sample entry carrying the record as `avcC`).
pub fn video_init(
    config: &AvcDecoderConfig,
    sps: &SpsInfo,
    timescale: u32,
) -> Result<Bytes, CmafError> {
    let width = u16::try_from(sps.width).unwrap_or(u16::MAX);
    let height = u16::try_from(sps.height).unwrap_or(u16::MAX);
    let avc1 = mp4_atom::Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        },
        avcc: config.to_avcc(),
        ..Default::default()
    };
    let tkhd = Tkhd {
        track_id: TRACK_ID,
        enabled: true,
        in_movie: true,
        width: width.into(),
        height: height.into(),
        ..Default::default()
    };
    let hdlr = Hdlr {
        handler: b"vide".into(),
        name: "VideoHandler".into(),
    };
    let minf = Minf {
        vmhd: Some(Vmhd::default()),
        dinf: dinf(),
        stbl: stbl(avc1.into()),
        ..Default::default()
    };
    finish(&moov(tkhd, timescale, hdlr, minf))
}

/// Init segment of an AAC track (`mp4a` sample entry, `esds` carrying `raw_asc`);
/// the media timescale is the core sampling rate.
pub fn audio_init(raw_asc: &[u8], asc: &AudioSpecificConfig) -> Result<Bytes, CmafError> {
    let channels = asc.channels().unwrap_or(2);
    // The 16.16 field cannot hold rates above 65535 Hz; 0 means "see the esds".
    let rate = u16::try_from(asc.sample_rate).unwrap_or(0);
    let mp4a = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(channels),
            sample_size: 16,
            sample_rate: rate.into(),
        },
        esds: Esds {
            es_desc: esds::EsDescriptor {
                es_id: TRACK_ID as u16,
                dec_config: esds::DecoderConfig {
                    object_type_indication: 0x40, // MPEG-4 Audio
                    stream_type: 5,               // audio stream
                    dec_specific: Some(esds::DecoderSpecific {
                        profile: asc.object_type,
                        freq_index: asc.sampling_frequency_index,
                        chan_conf: asc.channel_configuration,
                        raw: raw_asc.to_vec(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    };
    let tkhd = Tkhd {
        track_id: TRACK_ID,
        enabled: true,
        in_movie: true,
        alternate_group: 1,
        volume: 1.into(),
        ..Default::default()
    };
    let hdlr = Hdlr {
        handler: b"soun".into(),
        name: "SoundHandler".into(),
    };
    let minf = Minf {
        smhd: Some(Smhd::default()),
        dinf: dinf(),
        stbl: stbl(mp4a.into()),
        ..Default::default()
    };
    finish(&moov(tkhd, asc.sample_rate, hdlr, minf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Ftyp, Moov};

    #[test]
    fn audio_init_reads_back() {
        let raw = [0x12, 0x10];
        let asc = AudioSpecificConfig::parse(&raw).unwrap();
        let init = audio_init(&raw, &asc).unwrap();
        let buf = &mut &init[..];
        let ftyp = Ftyp::decode(buf).unwrap();
        assert_eq!(ftyp.major_brand, b"iso6".into());
        let moov = Moov::decode(buf).unwrap();
        assert!(buf.is_empty());
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.timescale, 44100);
        assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
        match &trak.mdia.minf.stbl.stsd.codecs[0] {
            Codec::Mp4a(mp4a) => {
                assert_eq!(mp4a.audio.channel_count, 2);
                let ds = mp4a.esds.es_desc.dec_config.dec_specific.as_ref().unwrap();
                assert_eq!(ds.raw, raw);
            }
            other => panic!("unexpected sample entry {other:?}"),
        }
        assert_eq!(moov.mvex.unwrap().trex[0].track_id, TRACK_ID);
    }
}
