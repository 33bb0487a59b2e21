//! Ingest bitrate over a sliding window, for `BitrateAdapted` events.

use std::collections::VecDeque;

/// Bytes per millisecond-timestamp over the last `window_ms` of media time.
#[derive(Debug)]
pub struct BitrateMeter {
    window_ms: u32,
    samples: VecDeque<(u32, usize)>,
    bytes: usize,
}

impl BitrateMeter {
    pub fn new(window_ms: u32) -> Self {
        Self {
            window_ms: window_ms.max(1),
            samples: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Adds a frame of `len` bytes at media time `ts` (ms).
    pub fn add(&mut self, ts: u32, len: usize) {
        if self
            .samples
            .back()
            .is_some_and(|(last, _)| ts.wrapping_sub(*last) > u32::MAX / 2)
        {
            // Time went backwards (new publisher): start over.
            self.samples.clear();
            self.bytes = 0;
        }
        self.samples.push_back((ts, len));
        self.bytes += len;
        while let Some(&(first, n)) = self.samples.front() {
            if ts.wrapping_sub(first) > self.window_ms {
                self.samples.pop_front();
                self.bytes -= n;
            } else {
                break;
            }
        }
    }

    /// kb/s over the window, once at least half a window is covered.
    pub fn kbps(&self) -> Option<u32> {
        let (&(first, first_len), &(last, _)) = (self.samples.front()?, self.samples.back()?);
        let span = last.wrapping_sub(first);
        if span < self.window_ms / 2 {
            return None;
        }
        // The first frame's bytes were sent before the window opened.
        let bytes = (self.bytes - first_len) as u64;
        Some((bytes * 8 / u64::from(span.max(1))) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_and_slides() {
        let mut m = BitrateMeter::new(4000);
        assert_eq!(m.kbps(), None);
        for i in 0..=100u32 {
            m.add(i * 40, 5000); // 5000 B / 40 ms = 1000 kb/s
        }
        assert_eq!(m.kbps(), Some(1000));
        for i in 101..=300u32 {
            m.add(i * 40, 10000);
        }
        assert_eq!(m.kbps(), Some(2000));
        m.add(0, 100);
        assert_eq!(m.kbps(), None);
    }
}
