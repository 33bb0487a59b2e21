//! H.264 decoder configuration (ISO/IEC 14496-15 §5.3.3 AVCDecoderConfigurationRecord),
//! sequence parameter sets (ITU-T H.264 §7.3.2.1, parsed with `h264-reader`), the
//! RFC 6381 §3.3 `avc1.PPCCLL` codec string, and AVCC samples (length-prefixed NAL
//! units, ISO/IEC 14496-15 §5.3.2).
//!
//! Parsers return [`AvcError`] on malformed input and never panic.

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};

/// Errors in AVC configuration records, SPS and samples, with the offending offset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AvcError {
    #[error("AVCDecoderConfigurationRecord truncated reading {field} at offset {offset}")]
    Truncated { field: &'static str, offset: usize },
    #[error("AVCDecoderConfigurationRecord: configurationVersion {0}, expected 1")]
    BadVersion(u8),
    #[error("AVCDecoderConfigurationRecord: NALUnitLength of {0} bytes (allowed: 1, 2, 4)")]
    BadLengthSize(u8),
    #[error("AVCDecoderConfigurationRecord has no sequence parameter set")]
    NoSps,
    #[error("parameter set at offset {offset}: NAL unit type {found}, expected {expected}")]
    WrongNalType {
        offset: usize,
        found: u8,
        expected: u8,
    },
    #[error("SPS of {len} bytes is too short")]
    SpsTooShort { len: usize },
    #[error("SPS: {0}")]
    Sps(String),
    #[error("AVCC sample: NAL unit length at offset {offset} truncated")]
    SampleLengthTruncated { offset: usize },
    #[error("AVCC sample: NAL unit at offset {offset} claims {len} bytes, {available} remain")]
    SampleNalOverrun {
        offset: usize,
        len: usize,
        available: usize,
    },
    #[error("AVCC sample: empty NAL unit at offset {offset}")]
    SampleEmptyNal { offset: usize },
    #[error("AVCC sample is empty")]
    SampleEmpty,
}

/// `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile_indication: u8,
    pub profile_compatibility: u8,
    pub level_indication: u8,
    /// Bytes in each NAL unit length prefix of the samples (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter set NAL units (with their NAL header byte).
    pub sps: Vec<Bytes>,
    /// Picture parameter set NAL units.
    pub pps: Vec<Bytes>,
    /// The High-profile extension (chroma format, bit depths), when present.
    pub ext: Option<AvcConfigExt>,
}

/// The profile-dependent tail of the record (profile_idc 100, 110, 122, 144).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfigExt {
    pub chroma_format: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub sps_ext: Vec<Bytes>,
}

struct Cursor<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self, field: &'static str) -> Result<u8, AvcError> {
        let v = *self.data.get(self.pos).ok_or(AvcError::Truncated {
            field,
            offset: self.pos,
        })?;
        self.pos += 1;
        Ok(v)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, AvcError> {
        Ok(u16::from(self.u8(field)?) << 8 | u16::from(self.u8(field)?))
    }

    fn nal(&mut self, field: &'static str, expected_type: Option<u8>) -> Result<Bytes, AvcError> {
        let len = usize::from(self.u16(field)?);
        let start = self.pos;
        if self.data.len() - start < len || len == 0 {
            return Err(AvcError::Truncated {
                field,
                offset: start,
            });
        }
        let nal = self.data.slice(start..start + len);
        if let Some(expected) = expected_type {
            let found = nal[0] & 0x1f;
            if found != expected {
                return Err(AvcError::WrongNalType {
                    offset: start,
                    found,
                    expected,
                });
            }
        }
        self.pos += len;
        Ok(nal)
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
}

impl AvcDecoderConfig {
    /// Parse a record (the payload of an FLV AVC sequence header, or an `avcC` body).
    pub fn parse(data: &Bytes) -> Result<Self, AvcError> {
        let mut c = Cursor { data, pos: 0 };
        let version = c.u8("configurationVersion")?;
        if version != 1 {
            return Err(AvcError::BadVersion(version));
        }
        let profile_indication = c.u8("AVCProfileIndication")?;
        let profile_compatibility = c.u8("profile_compatibility")?;
        let level_indication = c.u8("AVCLevelIndication")?;
        let nal_length_size = (c.u8("lengthSizeMinusOne")? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(AvcError::BadLengthSize(3));
        }
        let num_sps = c.u8("numOfSequenceParameterSets")? & 0x1f;
        let sps = (0..num_sps)
            .map(|_| c.nal("sequenceParameterSetNALUnit", Some(7)))
            .collect::<Result<Vec<_>, _>>()?;
        if sps.is_empty() {
            return Err(AvcError::NoSps);
        }
        let num_pps = c.u8("numOfPictureParameterSets")?;
        let pps = (0..num_pps)
            .map(|_| c.nal("pictureParameterSetNALUnit", Some(8)))
            .collect::<Result<Vec<_>, _>>()?;
        // The extension exists only for these profiles; encoders often omit it, and
        // some append garbage after the record, so a short or absent tail is ignored.
        let ext = if matches!(profile_indication, 100 | 110 | 122 | 144) && c.remaining() >= 4 {
            let chroma_format = c.u8("chroma_format")? & 0x03;
            let bit_depth_luma = (c.u8("bit_depth_luma_minus8")? & 0x07) + 8;
            let bit_depth_chroma = (c.u8("bit_depth_chroma_minus8")? & 0x07) + 8;
            let n = c.u8("numOfSequenceParameterSetExt")?;
            let sps_ext = (0..n)
                .map(|_| c.nal("sequenceParameterSetExtNALUnit", None))
                .collect::<Result<Vec<_>, _>>()?;
            Some(AvcConfigExt {
                chroma_format,
                bit_depth_luma,
                bit_depth_chroma,
                sps_ext,
            })
        } else {
            None
        };
        Ok(Self {
            profile_indication,
            profile_compatibility,
            level_indication,
            nal_length_size,
            sps,
            pps,
            ext,
        })
    }

    /// The first SPS, parsed.
    pub fn sps_info(&self) -> Result<SpsInfo, AvcError> {
        SpsInfo::parse(self.sps.first().ok_or(AvcError::NoSps)?)
    }

    /// This record as an `mp4-atom` `avcC` box.
    pub fn to_avcc(&self) -> mp4_atom::Avcc {
        mp4_atom::Avcc {
            configuration_version: 1,
            avc_profile_indication: self.profile_indication,
            profile_compatibility: self.profile_compatibility,
            avc_level_indication: self.level_indication,
            length_size: self.nal_length_size,
            sequence_parameter_sets: self.sps.iter().map(|s| s.to_vec()).collect(),
            picture_parameter_sets: self.pps.iter().map(|p| p.to_vec()).collect(),
            ext: self.ext.as_ref().map(|e| mp4_atom::AvccExt {
                chroma_format: e.chroma_format,
                bit_depth_luma: e.bit_depth_luma,
                bit_depth_chroma: e.bit_depth_chroma,
                sequence_parameter_sets_ext: e.sps_ext.iter().map(|s| s.to_vec()).collect(),
            }),
        }
    }
}

/// What the packager needs from a sequence parameter set.
#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as in the SPS byte.
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Luma width after frame cropping.
    pub width: u32,
    /// Luma height after frame cropping (both fields for interlaced).
    pub height: u32,
    /// `time_scale / (2 × num_units_in_tick)` when the VUI has timing info.
    pub frame_rate: Option<f64>,
}

impl SpsInfo {
    /// Parse an SPS NAL unit (NAL header byte included, emulation prevention intact).
    pub fn parse(nal: &[u8]) -> Result<Self, AvcError> {
        if nal.len() < 4 {
            return Err(AvcError::SpsTooShort { len: nal.len() });
        }
        if nal[0] & 0x1f != 7 {
            return Err(AvcError::WrongNalType {
                offset: 0,
                found: nal[0] & 0x1f,
                expected: 7,
            });
        }
        let rbsp = decode_nal(nal).map_err(|e| AvcError::Sps(e.to_string()))?;
        if rbsp.len() < 3 {
            return Err(AvcError::SpsTooShort { len: nal.len() });
        }
        let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
            .map_err(|e| AvcError::Sps(format!("{e:?}")))?;
        let (width, height) = sps
            .pixel_dimensions()
            .map_err(|e| AvcError::Sps(format!("{e:?}")))?;
        let frame_rate = sps.fps().filter(|f| f.is_finite() && *f > 0.0);
        Ok(Self {
            profile_idc: rbsp[0],
            constraint_flags: rbsp[1],
            level_idc: rbsp[2],
            width,
            height,
            frame_rate,
        })
    }

    /// RFC 6381 codec string, e.g. `avc1.64001F`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Summary of a validated AVCC sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvccSampleInfo {
    pub nal_units: usize,
    /// Contains an IDR slice (nal_unit_type 5).
    pub has_idr: bool,
}

/// Iterate the NAL units of an AVCC sample; yields an error (once) on malformed framing.
pub fn nal_units(
    sample: &[u8],
    nal_length_size: u8,
) -> impl Iterator<Item = Result<&[u8], AvcError>> {
    let n = usize::from(nal_length_size);
    let mut pos = 0usize;
    let mut failed = !matches!(n, 1 | 2 | 4);
    let mut first_error = failed.then_some(AvcError::BadLengthSize(nal_length_size));
    std::iter::from_fn(move || {
        if let Some(e) = first_error.take() {
            return Some(Err(e));
        }
        if failed || pos >= sample.len() {
            return None;
        }
        failed = true;
        let Some(prefix) = sample.get(pos..pos + n) else {
            return Some(Err(AvcError::SampleLengthTruncated { offset: pos }));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        let start = pos + n;
        let available = sample.len() - start;
        if len == 0 {
            return Some(Err(AvcError::SampleEmptyNal { offset: pos }));
        }
        if len > available {
            return Some(Err(AvcError::SampleNalOverrun {
                offset: pos,
                len,
                available,
            }));
        }
        pos = start + len;
        failed = false;
        Some(Ok(&sample[start..start + len]))
    })
}

/// Check that `sample` is a well-formed sequence of length-prefixed NAL units.
pub fn validate_avcc_sample(
    sample: &[u8],
    nal_length_size: u8,
) -> Result<AvccSampleInfo, AvcError> {
    if sample.is_empty() {
        return Err(AvcError::SampleEmpty);
    }
    let mut info = AvccSampleInfo {
        nal_units: 0,
        has_idr: false,
    };
    for nal in nal_units(sample, nal_length_size) {
        let nal = nal?;
        info.nal_units += 1;
        info.has_idr |= nal[0] & 0x1f == 5;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The avcC that FFmpeg/x264 wrote for testsrc2 320x240 High@1.3.
    const X264_AVCC: &[u8] = &[
        0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41,
        0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1,
        0x42, 0x99, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8,
        0x00,
    ];

    #[test]
    fn x264_record_and_sps() {
        let cfg = AvcDecoderConfig::parse(&Bytes::from_static(X264_AVCC)).unwrap();
        assert_eq!(cfg.profile_indication, 100);
        assert_eq!(cfg.level_indication, 13);
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!((cfg.sps.len(), cfg.pps.len()), (1, 1));
        let ext = cfg.ext.as_ref().unwrap(); // High profile: FFmpeg writes the tail
        assert_eq!(
            (ext.chroma_format, ext.bit_depth_luma, ext.bit_depth_chroma),
            (1, 8, 8)
        );
        let sps = cfg.sps_info().unwrap();
        assert_eq!((sps.width, sps.height), (320, 240));
        assert_eq!(sps.codec_string(), "avc1.64000D");
        assert_eq!(sps.frame_rate, Some(30.0)); // x264 writes VUI timing
    }

    #[test]
    fn cropping_and_timing_from_a_1080p_sps() {
        // 1920x1088 coded, cropped to 1080, VUI timing 30 fps (an h264-reader test vector).
        let sps = [
            0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03,
            0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20,
        ];
        let info = SpsInfo::parse(&sps).unwrap();
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!(info.codec_string(), "avc1.42C028");
        assert_eq!(info.frame_rate, Some(30.0));
    }

    #[test]
    fn malformed_records() {
        let cases: &[(&[u8], &str)] = &[
            (&[], "empty"),
            (&[2, 0x64, 0, 0x0d, 0xff, 0xe1], "version"),
            (&[1, 0x64, 0, 0x0d, 0xfe, 0xe1, 0, 1, 0x67], "length size 3"),
            (&[1, 0x64, 0, 0x0d, 0xff, 0xe0, 0], "no sps"),
            (&[1, 0x64, 0, 0x0d, 0xff, 0xe1, 0, 9, 0x67], "sps overrun"),
            (&[1, 0x64, 0, 0x0d, 0xff, 0xe1, 0, 1, 0x68, 0], "sps type"),
            (&[1, 0x64, 0, 0x0d, 0xff, 0xe1, 0, 1, 0x67], "no pps count"),
            (
                &[1, 0x64, 0, 0x0d, 0xff, 0xe1, 0, 1, 0x67, 1, 0, 0],
                "empty pps",
            ),
        ];
        for (bytes, what) in cases {
            assert!(
                AvcDecoderConfig::parse(&Bytes::from_static(bytes)).is_err(),
                "{what}"
            );
        }
        for cut in 0..X264_AVCC.len() - 1 {
            let _ = AvcDecoderConfig::parse(&Bytes::from_static(&X264_AVCC[..cut]));
        }
    }

    #[test]
    fn malformed_sps() {
        assert!(SpsInfo::parse(&[]).is_err());
        assert!(SpsInfo::parse(&[0x67, 0x64]).is_err());
        assert!(SpsInfo::parse(&[0x68, 0x64, 0, 0x0d, 0xac]).is_err());
        assert!(SpsInfo::parse(&[0x67, 0x64, 0, 0x0d, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(SpsInfo::parse(&[0x67, 0x64, 0, 0x0d, 0, 0, 3, 0, 0, 0]).is_err());
        let sps = &X264_AVCC[8..33];
        for cut in 0..sps.len() {
            assert!(SpsInfo::parse(&sps[..cut]).is_err());
        }
    }

    #[test]
    fn avcc_samples() {
        let sample = [0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x06];
        assert_eq!(
            validate_avcc_sample(&sample, 4),
            Ok(AvccSampleInfo {
                nal_units: 2,
                has_idr: true
            })
        );
        assert_eq!(
            validate_avcc_sample(&[2, 0x41, 0x9a], 1),
            Ok(AvccSampleInfo {
                nal_units: 1,
                has_idr: false
            })
        );
        assert_eq!(validate_avcc_sample(&[], 4), Err(AvcError::SampleEmpty));
        assert_eq!(
            validate_avcc_sample(&[0, 0, 0], 4),
            Err(AvcError::SampleLengthTruncated { offset: 0 })
        );
        assert_eq!(
            validate_avcc_sample(&[0, 0, 0, 9, 0x65], 4),
            Err(AvcError::SampleNalOverrun {
                offset: 0,
                len: 9,
                available: 1
            })
        );
        assert_eq!(
            validate_avcc_sample(&[0, 0, 0, 0], 4),
            Err(AvcError::SampleEmptyNal { offset: 0 })
        );
        assert_eq!(
            validate_avcc_sample(&[1, 0x41], 3),
            Err(AvcError::BadLengthSize(3))
        );
    }
}
