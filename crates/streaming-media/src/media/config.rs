//! [`TrackConfig`]: a decoder configuration parsed once, with everything its
//! consumers derive from it (ISO/IEC 14496-15 §5.3.3.1 for H.264, ISO/IEC 14496-3
//! §1.6.2.1 for AAC, the CMAF header per ISO/IEC 23000-19 §7.3).

use bytes::Bytes;

use super::{TrackInfo, TrackKind, VIDEO_TIMESCALE};
use crate::aac::{AacError, AudioSpecificConfig};
use crate::avc::{AvcDecoderConfig, AvcError};
use crate::cmaf::{self, CmafError};

/// The codecs a track can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Aac,
}

/// Why a decoder configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{0}")]
    Avc(#[from] AvcError),
    #[error("{0}")]
    Aac(#[from] AacError),
    #[error("writing the CMAF init segment: {0}")]
    Cmaf(#[from] CmafError),
}

/// A track's decoder configuration, parsed once and shared (`Arc`) by every consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    pub kind: TrackKind,
    pub codec: Codec,
    /// The record as received: `AVCDecoderConfigurationRecord` or `AudioSpecificConfig`.
    /// Two configurations are the same when their records are.
    pub record: Bytes,
    /// What players need (codec string, timescale, size, frame rate, rate, channels).
    pub info: TrackInfo,
    /// Bytes in each NAL unit length prefix of the samples (H.264: 1, 2 or 4).
    pub nal_length_size: u8,
    /// Nominal frame duration in timescale units (from the SPS timing, else 30 fps;
    /// AAC: the frame length).
    pub nominal_duration: u64,
    /// Samples per AAC access unit (1024 or 960); `None` for video.
    pub frame_length: Option<u32>,
    /// The CMAF header (`ftyp`+`moov`) of a one-track file with this configuration.
    pub init: Bytes,
}

impl TrackConfig {
    /// An H.264 track from an `AVCDecoderConfigurationRecord` (90 kHz timescale).
    pub fn h264(record: Bytes) -> Result<Self, ConfigError> {
        let config = AvcDecoderConfig::parse(&record)?;
        let sps = config.sps_info()?;
        let init = cmaf::video_init(&config, &sps, VIDEO_TIMESCALE)?;
        let nominal_duration = sps.frame_rate.map_or(3000, |fps| {
            (f64::from(VIDEO_TIMESCALE) / fps).round().max(1.0) as u64
        });
        Ok(Self {
            kind: TrackKind::Video,
            codec: Codec::H264,
            info: TrackInfo {
                kind: TrackKind::Video,
                codec: sps.codec_string(),
                timescale: VIDEO_TIMESCALE,
                width: Some(sps.width),
                height: Some(sps.height),
                frame_rate: sps.frame_rate,
                sample_rate: None,
                channels: None,
            },
            record,
            nal_length_size: config.nal_length_size,
            nominal_duration,
            frame_length: None,
            init,
        })
    }

    /// An AAC track from an `AudioSpecificConfig` (timescale: the core sampling rate).
    pub fn aac(record: Bytes) -> Result<Self, ConfigError> {
        let asc = AudioSpecificConfig::parse(&record)?;
        let init = cmaf::audio_init(&record, &asc)?;
        Ok(Self {
            kind: TrackKind::Audio,
            codec: Codec::Aac,
            info: TrackInfo {
                kind: TrackKind::Audio,
                codec: asc.codec_string(),
                timescale: asc.sample_rate,
                width: None,
                height: None,
                frame_rate: None,
                sample_rate: Some(asc.sample_rate),
                channels: asc.channels(),
            },
            record,
            nal_length_size: 4,
            nominal_duration: asc.frame_length.into(),
            frame_length: Some(asc.frame_length),
            init,
        })
    }

    /// The track's media timescale (Hz).
    pub fn timescale(&self) -> u32 {
        self.info.timescale
    }

    /// Same decoder configuration (same record) as `other`.
    pub fn same_as(&self, other: &TrackConfig) -> bool {
        self.kind == other.kind && self.record == other.record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The avcC FFmpeg/x264 wrote for testsrc2 320x240 High@1.3, 30 fps.
    pub(crate) const X264_AVCC: &[u8] = &[
        0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41,
        0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1,
        0x42, 0x99, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8,
        0x00,
    ];

    #[test]
    fn h264_config_has_what_players_and_the_packager_need() {
        let c = TrackConfig::h264(Bytes::from_static(X264_AVCC)).unwrap();
        assert_eq!((c.kind, c.codec), (TrackKind::Video, Codec::H264));
        assert_eq!(c.info.codec, "avc1.64000D");
        assert_eq!((c.info.width, c.info.height), (Some(320), Some(240)));
        assert_eq!(c.info.frame_rate, Some(30.0));
        assert_eq!(c.timescale(), 90_000);
        assert_eq!((c.nal_length_size, c.nominal_duration), (4, 3000));
        assert_eq!(c.frame_length, None);
        assert_eq!(&c.init[4..8], b"ftyp");
        assert!(c.init.windows(4).any(|w| w == b"avcC"));
    }

    #[test]
    fn aac_config_has_what_players_and_the_packager_need() {
        // AAC LC, 48 kHz, stereo.
        let c = TrackConfig::aac(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!((c.kind, c.codec), (TrackKind::Audio, Codec::Aac));
        assert_eq!(c.info.codec, "mp4a.40.2");
        assert_eq!(
            (c.info.sample_rate, c.info.channels),
            (Some(48_000), Some(2))
        );
        assert_eq!((c.timescale(), c.nominal_duration), (48_000, 1024));
        assert_eq!(c.frame_length, Some(1024));
        assert!(c.init.windows(4).any(|w| w == b"esds"));
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(matches!(
            TrackConfig::h264(Bytes::from_static(&[1, 0x64])),
            Err(ConfigError::Avc(_))
        ));
        assert!(matches!(
            TrackConfig::aac(Bytes::new()),
            Err(ConfigError::Aac(_))
        ));
        for cut in 0..X264_AVCC.len() {
            let _ = TrackConfig::h264(Bytes::from_static(&X264_AVCC[..cut]));
        }
    }
}
