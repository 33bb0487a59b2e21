//! `prft`, the ProducerReferenceTimeBox (ISO/IEC 14496-12 §8.16.5): ties a
//! media time of the following movie fragment to the wall clock (NTP format,
//! RFC 5905 §6), so a low-latency DASH player can measure its latency
//! (DASH-IF IOP low-latency modes; `ProducerReferenceTime@inband`).
//!
//! Written by hand rather than with `mp4-atom`, whose encoder picks version 0
//! whenever the media time fits 32 bits: here it is always version 1 (64-bit
//! media time) with flags 0 (the wall-clock time at which the sample entered
//! the producer).

use bytes::{BufMut, Bytes, BytesMut};

/// Size of the version 1 box: header 8, version and flags 4, track id 4,
/// NTP timestamp 8, media time 8.
pub const PRFT_LEN: usize = 32;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

/// A version 1 `prft` box: `media_time` (in the track's timescale) of the
/// reference track's sample was produced at `ntp_timestamp`.
pub fn prft(reference_track_id: u32, ntp_timestamp: u64, media_time: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(PRFT_LEN);
    b.put_u32(PRFT_LEN as u32);
    b.put_slice(b"prft");
    b.put_u32(0x0100_0000); // version 1, flags 0
    b.put_u32(reference_track_id);
    b.put_u64(ntp_timestamp);
    b.put_u64(media_time);
    b.freeze()
}

/// The 64-bit NTP timestamp (32 bits of seconds since 1900, 32 bits of
/// fraction) of a Unix time in milliseconds. Seconds wrap every 2^32 s as
/// NTP eras do (era 1 starts in 2036); times before 1900 become 0.
pub fn ntp_from_unix_ms(ms: i64) -> u64 {
    let secs = ms.div_euclid(1000).saturating_add(NTP_UNIX_OFFSET_SECS);
    if secs < 0 {
        return 0;
    }
    let millis = ms.rem_euclid(1000) as u64;
    let fraction = (millis << 32) / 1000;
    ((secs as u64 & 0xffff_ffff) << 32) | fraction
}

/// `chunk` with the `prft` box inserted before its `moof`: after a leading
/// `styp` when there is one, else at the start.
pub fn with_prft(chunk: &Bytes, prft: &[u8]) -> Bytes {
    let at = leading_styp_len(chunk).unwrap_or(0);
    let mut out = BytesMut::with_capacity(chunk.len() + prft.len());
    out.put_slice(&chunk[..at]);
    out.put_slice(prft);
    out.put_slice(&chunk[at..]);
    out.freeze()
}

/// The size of a whole `styp` box at the start of `data`, if there is one.
fn leading_styp_len(data: &[u8]) -> Option<usize> {
    let header: [u8; 8] = data.get(..8)?.try_into().ok()?;
    if &header[4..] != b"styp" {
        return None;
    }
    let size = match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
        // A 64-bit `largesize` follows the type.
        1 => usize::try_from(u64::from_be_bytes(data.get(8..16)?.try_into().ok()?)).ok()?,
        // 0 (to the end of the file) or too small for a header: no room for a moof.
        size if size < 8 => return None,
        size => size as usize,
    };
    (size <= data.len()).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_epoch_and_fractions() {
        // 1970-01-01T00:00:00Z is 2 208 988 800 s after the NTP epoch.
        assert_eq!(ntp_from_unix_ms(0), 2_208_988_800u64 << 32);
        // Half a second is half of 2^32.
        assert_eq!(
            ntp_from_unix_ms(500),
            (2_208_988_800u64 << 32) | 0x8000_0000
        );
        // One millisecond before 1970.
        assert_eq!(
            ntp_from_unix_ms(-1),
            (2_208_988_799u64 << 32) | ((999u64 << 32) / 1000)
        );
        // 1900-01-01 and earlier.
        assert_eq!(ntp_from_unix_ms(-2_208_988_800_000), 0);
        assert_eq!(ntp_from_unix_ms(i64::MIN), 0);
        // 2036-02-07T06:28:16Z starts NTP era 1: the seconds wrap to 0.
        assert_eq!(ntp_from_unix_ms(2_085_978_496_000), 0);
        // The largest input wraps without overflow and keeps its fraction.
        assert_eq!(
            ntp_from_unix_ms(i64::MAX) & 0xffff_ffff,
            (807u64 << 32) / 1000
        );
    }

    #[test]
    fn styp_detection() {
        let styp = [&[0, 0, 0, 16][..], b"stypmsdh", &[0, 0, 0, 0]].concat();
        assert_eq!(leading_styp_len(&styp), Some(16));
        assert_eq!(leading_styp_len(&styp[..15]), None, "truncated");
        assert_eq!(leading_styp_len(b"\0\0\0\x08moof"), None);
        assert_eq!(leading_styp_len(b"\0\0\0\x00styp"), None);
        assert_eq!(leading_styp_len(b"\0\0\0\x01styp"), None, "no largesize");
        let large = [&[0, 0, 0, 1][..], b"styp", &16u64.to_be_bytes()].concat();
        assert_eq!(leading_styp_len(&large), Some(16));
        assert_eq!(leading_styp_len(b""), None);
    }
}
