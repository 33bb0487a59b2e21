//! CMAF (ISO/IEC 23000-19) init segments and media fragments, written with `mp4-atom`
//! (ISO/IEC 14496-12 boxes; `avcC` from ISO/IEC 14496-15, `esds` from ISO/IEC 14496-14).
//!
//! One track per file (track id 1), as Safari requires:
//!
//! - [`init`]: `ftyp` (`iso6`, `cmfc`) + `moov` (`mvhd`, `trak` with an `avc1`+`avcC` or
//!   `mp4a`+`esds` sample entry and empty sample tables, `mvex`/`trex`).
//! - [`fragment`]: a CMAF chunk, `moof` (`mfhd`, `traf` with `tfhd`
//!   default-base-is-moof, `tfdt` version 1, `trun` version 1 with data offset, sample
//!   durations, sizes, flags and signed composition offsets) + `mdat`, optionally led by
//!   a `styp`.
//! - [`prft`]: a `prft` (ProducerReferenceTimeBox) that [`with_prft`] puts before a
//!   chunk's `moof`, for low-latency DASH.

pub mod fragment;
pub mod init;
mod prft;

pub use fragment::{Sample, write_fragment};
pub use init::{audio_init, video_init};
pub use prft::{PRFT_LEN, ntp_from_unix_ms, prft, with_prft};

/// The single track of every CMAF file written here.
pub const TRACK_ID: u32 = 1;

/// `sample_flags` (ISO/IEC 14496-12 §8.8.3.1) of a sync sample: depends on no other.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: depends on others, `sample_is_non_sync_sample`.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Errors while writing CMAF boxes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmafError {
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: mp4_atom::Error,
    },
    #[error("a fragment needs at least one sample")]
    NoSamples,
    #[error("sample {index}: {what} does not fit its 32-bit field")]
    SampleTooLarge { index: usize, what: &'static str },
    #[error("fragment of {len} bytes does not fit a 32-bit box size")]
    FragmentTooLarge { len: usize },
}

pub(crate) fn encode<T: mp4_atom::Encode>(
    what: &'static str,
    atom: &T,
    out: &mut Vec<u8>,
) -> Result<(), CmafError> {
    atom.encode(out)
        .map_err(|source| CmafError::Encode { what, source })
}
