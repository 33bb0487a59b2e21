//! AAC `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1) and the RFC 6381 §3.3
//! `mp4a.40.N` codec string.
//!
//! Understands escaped object types (31 → 32 + 6 bits), the explicit 24-bit sampling
//! frequency (index 15), explicit SBR/PS signalling (object types 5 and 29) and the
//! `frameLengthFlag` of `GASpecificConfig` (§4.4.1). Never panics on any input.

/// Sampling frequencies by `samplingFrequencyIndex` (Table 1.18); 13 and 14 are reserved.
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Errors in an AudioSpecificConfig, naming the field and its bit offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AacError {
    #[error("AudioSpecificConfig truncated reading {field} at bit {bit}")]
    Truncated { field: &'static str, bit: usize },
    #[error("AudioSpecificConfig: audioObjectType 0 (null) is invalid")]
    NullObjectType,
    #[error("AudioSpecificConfig: reserved samplingFrequencyIndex {0}")]
    ReservedFrequencyIndex(u8),
    #[error("AudioSpecificConfig: explicit samplingFrequency of 0 Hz")]
    ZeroSampleRate,
}

struct Bits<'a> {
    data: &'a [u8],
    bit: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32, field: &'static str) -> Result<u32, AacError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.bit / 8).ok_or(AacError::Truncated {
                field,
                bit: self.bit,
            })?;
            v = (v << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, AacError> {
        let aot = self.read(5, "audioObjectType")? as u8;
        if aot == 31 {
            return Ok(32 + self.read(6, "audioObjectTypeExt")? as u8);
        }
        Ok(aot)
    }

    fn sample_rate(&mut self) -> Result<(u8, u32), AacError> {
        let index = self.read(4, "samplingFrequencyIndex")? as u8;
        let rate = match index {
            15 => self.read(24, "samplingFrequency")?,
            i if usize::from(i) < SAMPLE_RATES.len() => SAMPLE_RATES[usize::from(i)],
            reserved => return Err(AacError::ReservedFrequencyIndex(reserved)),
        };
        if rate == 0 {
            return Err(AacError::ZeroSampleRate);
        }
        Ok((index, rate))
    }
}

/// The parts of an AudioSpecificConfig the packager needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The signalled `audioObjectType` (2 = AAC LC, 5 = SBR, 29 = PS).
    pub object_type: u8,
    pub sampling_frequency_index: u8,
    /// Core sampling rate in Hz (the rate the access units are counted in).
    pub sample_rate: u32,
    pub channel_configuration: u8,
    /// Output sampling rate of explicit SBR (object type 5 or 29).
    pub extension_sample_rate: Option<u32>,
    /// Samples per access unit at `sample_rate` (1024, or 960 with frameLengthFlag).
    pub frame_length: u32,
}

impl AudioSpecificConfig {
    /// Parse the ASC bytes (payload of an FLV AAC sequence header).
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let mut r = Bits { data, bit: 0 };
        let object_type = r.object_type()?;
        if object_type == 0 {
            return Err(AacError::NullObjectType);
        }
        let (sampling_frequency_index, sample_rate) = r.sample_rate()?;
        let channel_configuration = r.read(4, "channelConfiguration")? as u8;
        let mut core_type = object_type;
        let mut extension_sample_rate = None;
        if matches!(object_type, 5 | 29) {
            extension_sample_rate = Some(r.sample_rate()?.1);
            core_type = r.object_type()?;
        }
        // GASpecificConfig: frameLengthFlag is its first bit (§4.4.1, Table 4.1).
        let ga = matches!(core_type, 1..=4 | 6 | 7 | 17 | 19..=23);
        let frame_length = if ga && r.read(1, "frameLengthFlag")? == 1 {
            960
        } else {
            1024
        };
        Ok(Self {
            object_type,
            sampling_frequency_index,
            sample_rate,
            channel_configuration,
            extension_sample_rate,
            frame_length,
        })
    }

    /// Number of output channels, `None` when defined by a program config element.
    pub fn channels(&self) -> Option<u8> {
        match self.channel_configuration {
            1..=6 => Some(self.channel_configuration),
            7 | 12 | 14 => Some(8),
            11 => Some(7),
            13 => Some(24),
            _ => None,
        }
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_stereo_44100() {
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(asc.object_type, 2);
        assert_eq!(asc.sample_rate, 44100);
        assert_eq!(asc.channels(), Some(2));
        assert_eq!(asc.frame_length, 1024);
        assert_eq!(asc.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn ffmpeg_mono_with_sync_extension() {
        // FFmpeg's native encoder: LC, 44.1 kHz, mono, plus a 0x2b7 sync extension.
        let asc = AudioSpecificConfig::parse(&[0x12, 0x08, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!((asc.object_type, asc.sample_rate), (2, 44100));
        assert_eq!(asc.channels(), Some(1));
    }

    #[test]
    fn explicit_frequency_and_960() {
        // AOT 2, index 15, 24-bit 0x00bb80 (48000), channel config 2, frameLengthFlag 1.
        // 00010 1111 000000001011101110000000 0010 1 00
        let asc = AudioSpecificConfig::parse(&[0x17, 0x80, 0x5d, 0xc0, 0x14]).unwrap();
        assert_eq!(asc.sampling_frequency_index, 15);
        assert_eq!(asc.sample_rate, 48000);
        assert_eq!(asc.channels(), Some(2));
        assert_eq!(asc.frame_length, 960);
    }

    #[test]
    fn he_aac_explicit_sbr_and_escape() {
        // AOT 5, 24 kHz core (6), stereo, extension 48 kHz (3), core AOT 2.
        // 00101 0110 0010 0011 00010 0 ...
        let asc = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(asc.object_type, 5);
        assert_eq!(asc.sample_rate, 24000);
        assert_eq!(asc.extension_sample_rate, Some(48000));
        assert_eq!(asc.codec_string(), "mp4a.40.5");
        // Escaped object type 31 + 10 = 42 (USAC), 48 kHz, stereo.
        let asc = AudioSpecificConfig::parse(&[0xf9, 0x46, 0x40]).unwrap();
        assert_eq!(asc.object_type, 42);
        assert_eq!(asc.sample_rate, 48000);
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            AudioSpecificConfig::parse(&[]),
            Err(AacError::Truncated { bit: 0, .. })
        ));
        assert_eq!(
            AudioSpecificConfig::parse(&[0x00, 0x00]),
            Err(AacError::NullObjectType)
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(AacError::ReservedFrequencyIndex(13))
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x17, 0x80, 0x00, 0x00, 0x10]),
            Err(AacError::ZeroSampleRate)
        );
        assert!(AudioSpecificConfig::parse(&[0x17, 0x80]).is_err());
        assert!(AudioSpecificConfig::parse(&[0x12]).is_err());
    }
}
