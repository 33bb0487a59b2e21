//! From RTMP millisecond timestamps to per-track decode times.
//!
//! One shared offset maps every track's 32-bit RTMP time onto a continuous output
//! timeline in milliseconds, so audio/video sync survives rebasing. Each track then
//! converts to its own timescale, keeping DTS strictly increasing; AAC DTS advance by
//! the frame length (1024 samples) and resynchronise to the RTMP clock when the two
//! drift apart by more than [`AAC_RESYNC_MS`].

/// A timestamp earlier than the track's previous one by more than this is a discontinuity;
/// smaller steps back are absorbed (the DTS is nudged forward).
pub(super) const BACKWARD_TOLERANCE_MS: i64 = 50;
/// A timestamp later than the track's previous one by more than this is a discontinuity.
pub(super) const MAX_FORWARD_JUMP_MS: i64 = 5_000;
/// AAC DTS counted in frames resynchronise to RTMP time beyond this drift.
pub(super) const AAC_RESYNC_MS: u64 = 50;

/// Per-track timestamp state.
#[derive(Debug, Clone)]
pub(super) struct TrackClock {
    pub timescale: u32,
    /// Samples per AAC access unit; `None` for video.
    pub frame_length: Option<u32>,
    last_in: Option<u32>,
    last_out_ms: Option<i64>,
    last_dts: Option<u64>,
    /// DTS delta between the two latest samples (or the nominal frame duration).
    pub last_delta: u64,
    /// No DTS below this (the end of the track before a discontinuity).
    floor: u64,
    /// Skip the jump checks once (the first frame after a rebase).
    fresh: bool,
}

impl TrackClock {
    pub fn new(timescale: u32, frame_length: Option<u32>, nominal_duration: u64) -> Self {
        Self {
            timescale,
            frame_length,
            last_in: None,
            last_out_ms: None,
            last_dts: None,
            last_delta: nominal_duration.max(1),
            floor: 0,
            fresh: false,
        }
    }

    /// Why `ts` cannot follow this track's previous timestamp, if it cannot.
    pub fn check(&self, ts: u32, offset: i64) -> Option<String> {
        if self.fresh {
            return None;
        }
        let (last_in, last_out) = (self.last_in?, self.last_out_ms?);
        if ts < last_in && last_in - ts > 1 << 31 {
            return Some(format!(
                "RTMP timestamp wrapped at 2^32 ({last_in} ms -> {ts} ms)"
            ));
        }
        let out = i64::from(ts) + offset;
        if out < last_out - BACKWARD_TOLERANCE_MS {
            return Some(format!(
                "timestamp went backwards by {} ms ({last_in} ms -> {ts} ms)",
                last_out - out
            ));
        }
        if out > last_out + MAX_FORWARD_JUMP_MS {
            return Some(format!(
                "timestamp jumped forward by {} ms ({last_in} ms -> {ts} ms)",
                out - last_out
            ));
        }
        None
    }

    /// No DTS below `dts` from now on (the end of what the muxer wrote).
    pub fn raise_floor(&mut self, dts: u64) {
        self.floor = self.floor.max(dts);
    }

    /// End of the track (last DTS + last delta, or the floor) in milliseconds, rounded up.
    pub fn end_ms(&self) -> Option<i64> {
        let end = match self.last_dts {
            Some(last) => last.saturating_add(self.last_delta).max(self.floor),
            None if self.floor > 0 => self.floor,
            None => return None,
        };
        let end = u128::from(end) * 1000;
        let ms = end.div_ceil(u128::from(self.timescale.max(1)));
        Some(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// After a discontinuity: continue after the current end, skip the next checks.
    pub fn mark_rebased(&mut self) {
        if let Some(last) = self.last_dts {
            self.floor = self.floor.max(last.saturating_add(self.last_delta));
        }
        self.fresh = true;
    }

    /// A fresh clock continuing a track that ended at `end_ms` (a new timescale).
    pub fn continue_after_ms(&mut self, end_ms: i64) {
        let ms = u128::try_from(end_ms.max(0)).unwrap_or(0);
        let floor = (ms * u128::from(self.timescale)).div_ceil(1000);
        self.floor = u64::try_from(floor).unwrap_or(u64::MAX);
        self.fresh = true;
    }

    /// Decode time of a frame at RTMP time `ts` on the shared timeline.
    pub fn dts(&mut self, ts: u32, offset: i64) -> u64 {
        let out_ms = i64::from(ts).saturating_add(offset);
        let scale = u64::from(self.timescale.max(1));
        let from_clock = u64::try_from(out_ms.max(0))
            .unwrap_or(0)
            .saturating_mul(scale)
            / 1000;
        let mut dts = match (self.frame_length, self.last_dts) {
            (Some(frame), Some(last)) if !self.fresh => {
                let counted = last.saturating_add(u64::from(frame));
                if counted.abs_diff(from_clock) > AAC_RESYNC_MS * scale / 1000 {
                    from_clock
                } else {
                    counted
                }
            }
            _ => from_clock,
        };
        dts = dts.max(self.floor);
        if let Some(last) = self.last_dts {
            dts = dts.max(last.saturating_add(1));
            self.last_delta = dts - last;
        }
        self.last_dts = Some(dts);
        self.last_in = Some(ts);
        self.last_out_ms = Some(out_ms);
        self.fresh = false;
        dts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_counts_frames_and_resyncs() {
        let mut c = TrackClock::new(48000, Some(1024), 1024);
        assert_eq!(c.dts(0, 0), 0);
        // RTMP rounds 21.33 ms to 21 or 22; the DTS still advances by exactly 1024.
        assert_eq!(c.dts(21, 0), 1024);
        assert_eq!(c.dts(43, 0), 2048);
        // A 200 ms gap resyncs to the clock.
        assert_eq!(c.dts(243, 0), 243 * 48);
        assert_eq!(c.last_delta, 243 * 48 - 2048);
    }

    #[test]
    fn video_is_strictly_increasing_and_checks_jumps() {
        let mut c = TrackClock::new(90000, None, 3000);
        assert_eq!(c.dts(1000, -1000), 0);
        assert_eq!(c.dts(1000, -1000), 1);
        assert_eq!(c.dts(1033, -1000), 2970);
        assert!(c.check(1020, -1000).is_none()); // 13 ms back: absorbed
        assert!(c.check(900, -1000).unwrap().contains("backwards"));
        assert!(c.check(7000, -1000).unwrap().contains("forward"));
        let mut w = TrackClock::new(90000, None, 3000);
        w.dts(u32::MAX - 10, 0);
        assert!(w.check(20, 0).unwrap().contains("wrapped"));
        w.mark_rebased();
        assert!(w.check(20, 0).is_none());
        assert!(w.end_ms().unwrap() > 0);
    }
}
