//! The media of one publish, parsed once: the RTMP engine's FLV tag bodies go
//! through one [`FlvTagParser`] (FLV 10.1 §E.4.2–E.4.3, see
//! `streaming_media::media`) and come out as decoder configurations and
//! codec-neutral frames for the hub's `source` and `audio` tracks.
//!
//! A frame the parser refuses (malformed tag, unsupported codec, frame before its
//! sequence header, empty frame, bad AVCC sample) is dropped and counted in
//! `streaming_stream_errors_total{kind="bad_frame"}`; a WARN line says why, at most
//! one a second per connection, with the number of lines suppressed meanwhile. The
//! stream goes on. Script data (`onMetaData`) is not forwarded: nothing downstream
//! reads it (the configurations carry what players need).

use std::time::{Duration, Instant};

use streaming_core::hub::Publisher;
use streaming_core::metrics::Metrics;
use streaming_media::frame::Frame;
use streaming_media::media::{FlvTagParser, ParseError, Parsed};
use tracing::warn;

/// At most one bad-frame line per connection in this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// One publish's parser and bad-frame accounting.
#[derive(Debug, Default)]
pub(crate) struct MediaIn {
    parser: FlvTagParser,
    gate: WarnGate,
}

impl MediaIn {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Parses `frame` and hands what it carries to the hub.
    pub(crate) fn push(&mut self, frame: &Frame, publisher: &Publisher, metrics: &Metrics) {
        match self.parser.parse(frame) {
            Ok(Parsed::Config(config)) => publisher.config(config),
            Ok(Parsed::Media(media)) => publisher.frame(media),
            Ok(Parsed::Skip) => {}
            Err(e) => self.bad_frame(&e, publisher, metrics, Instant::now()),
        }
    }

    fn bad_frame(
        &mut self,
        e: &ParseError,
        publisher: &Publisher,
        metrics: &Metrics,
        now: Instant,
    ) {
        metrics.stream_error(publisher.stream_id(), "bad_frame");
        if let Some((suppressed, dropped)) = self.gate.allow(now) {
            warn!(error = %e, dropped, suppressed, "bad frame dropped; the stream goes on");
        }
    }
}

/// Counts dropped frames and lets one line through per [`WARN_INTERVAL`].
#[derive(Debug, Default)]
struct WarnGate {
    dropped: u64,
    suppressed: u64,
    last: Option<Instant>,
}

impl WarnGate {
    /// `Some((lines suppressed since the last one, frames dropped in all))` if a
    /// line may be written now.
    fn allow(&mut self, now: Instant) -> Option<(u64, u64)> {
        self.dropped += 1;
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < WARN_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some((std::mem::take(&mut self.suppressed), self.dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_the_suppressed_count() {
        let mut gate = WarnGate::default();
        let t0 = Instant::now();
        assert_eq!(gate.allow(t0), Some((0, 1)));
        for i in 1..=50 {
            assert_eq!(gate.allow(t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(gate.allow(t0 + Duration::from_millis(1000)), Some((50, 52)));
        assert_eq!(gate.allow(t0 + Duration::from_millis(1500)), None);
        assert_eq!(gate.allow(t0 + Duration::from_millis(2500)), Some((1, 54)));
    }
}
