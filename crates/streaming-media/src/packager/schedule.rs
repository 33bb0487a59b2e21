//! Which segment each sample belongs to: the cut points shared by both tracks, the
//! audio hold-back queue, discontinuities and end of stream.

use super::track::Pending;
use super::{
    Media, Packager, PackagerError, PackagerEvent, SegmentStart, TrackKind, VIDEO_TIMESCALE,
};

/// The cut points kept for audio that lags behind video.
const MAX_CUTS: usize = 16;
/// Undrained [`SegmentStart`]s kept (the oldest are dropped beyond this).
pub(super) const MAX_SEGMENT_STARTS: usize = 64;

/// Segment `number` starts at `at` (in `scale` units).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    number: u64,
    at: u64,
    scale: u32,
}

/// `a / a_scale >= b / b_scale`, exactly.
fn time_ge(a: u64, a_scale: u32, b: u64, b_scale: u32) -> bool {
    u128::from(a) * u128::from(b_scale) >= u128::from(b) * u128::from(a_scale)
}

fn ms_to_ticks(ms: u32, scale: u32) -> u64 {
    u64::from(ms) * u64::from(scale) / 1000
}

enum Assign {
    Segment(u64),
    Drop,
    Wait,
}

impl Packager {
    /// Time a media frame (detecting discontinuities) and hand it to its track.
    pub(super) fn process(&mut self, media: Media) -> Result<(), PackagerError> {
        let kind = media.kind;
        let offset = self.offset.unwrap_or(0);
        let reason = match &self.track(kind).clock {
            None => {
                return Err(PackagerError::NotConfigured {
                    kind,
                    timestamp: media.ts,
                });
            }
            Some(clock) if !self.rebase_next => clock.check(media.ts, offset),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            self.discontinuity(reason, true)?;
        }
        if self.rebase_next || self.offset.is_none() {
            let end = [&self.video, &self.audio]
                .iter()
                .filter_map(|t| t.clock.as_ref().and_then(|c| c.end_ms()))
                .max()
                .unwrap_or(0);
            self.offset = Some(end - i64::from(media.ts));
            self.rebase_next = false;
        }
        let offset = self.offset.unwrap_or(0);
        let Some(clock) = self.track_mut(kind).clock.as_mut() else {
            return Ok(());
        };
        let dts = clock.dts(media.ts, offset);
        let cts = i64::from(media.cts_ms) * i64::from(clock.timescale) / 1000;
        let (input_ts, cts_ms) = (media.ts, media.cts_ms);
        let pending = Pending {
            dts,
            cts: i32::try_from(cts).unwrap_or(0),
            key: media.key,
            data: media.data,
        };
        match kind {
            TrackKind::Video => self.push_video(pending, input_ts, cts_ms),
            TrackKind::Audio => {
                self.pending_audio.push_back(pending);
                self.drain_audio(false)
            }
        }
    }

    /// `input_ts` and `cts_ms`: the frame's RTMP timestamp and composition time.
    fn push_video(
        &mut self,
        sample: Pending,
        input_ts: u32,
        cts_ms: i32,
    ) -> Result<(), PackagerError> {
        self.video_progress = Some(sample.dts);
        if !self.video_active && sample.key {
            // Video (re)joins: it leads the cuts from its first key frame on.
            self.video_active = true;
        }
        let target = ms_to_ticks(self.config.target_segment_ms, VIDEO_TIMESCALE);
        let open = self
            .video
            .muxer
            .as_ref()
            .and_then(|m| Some((m.open_number()?, m.segment_start()?)));
        let mut opened = None;
        let number = match open {
            _ if !self.video_active => None,
            Some((n, start)) if !sample.key || sample.dts < start.saturating_add(target) => Some(n),
            _ if sample.key => {
                let number = self.start_segment(sample.dts, VIDEO_TIMESCALE);
                opened = Some(SegmentStart {
                    number,
                    input_timestamp: input_ts,
                    composition_time: cts_ms,
                    start: sample.dts,
                    discontinuity: self
                        .video
                        .muxer
                        .as_ref()
                        .is_some_and(|m| m.next_discontinuity),
                });
                Some(number)
            }
            _ => None, // no key frame yet: nothing can start a segment
        };
        if let (Some(number), Some(muxer)) = (number, self.video.muxer.as_mut()) {
            muxer
                .push(sample, number, &mut self.events)
                .map_err(|source| PackagerError::Cmaf {
                    kind: TrackKind::Video,
                    source,
                })?;
            if let Some(start) = opened {
                self.segment_starts.push_back(start);
                if self.segment_starts.len() > MAX_SEGMENT_STARTS {
                    self.segment_starts.pop_front();
                }
            }
        }
        self.drain_audio(false)
    }

    /// Register the start of the next segment at `at` and return its number.
    fn start_segment(&mut self, at: u64, scale: u32) -> u64 {
        self.number += 1;
        let (at, scale) = match self.cuts.back() {
            // Keep cut times ascending (a rejoining track may be slightly behind).
            Some(last) if !time_ge(at, scale, last.at, last.scale) => (last.at, last.scale),
            _ => (at, scale),
        };
        self.cuts.push_back(Cut {
            number: self.number,
            at,
            scale,
        });
        if self.cuts.len() > MAX_CUTS {
            self.cuts.pop_front();
        }
        self.number
    }

    /// Package the queued audio that can be placed; `force` places all of it.
    pub(super) fn drain_audio(&mut self, force: bool) -> Result<(), PackagerError> {
        while let Some(t) = self.pending_audio.front().map(|p| p.dts) {
            match self.assign_audio(t, force) {
                Assign::Wait if self.audio_stalled() => {
                    // Video stopped coming: audio leads; video rejoins at a key frame.
                    self.video_active = false;
                    self.flush_track(TrackKind::Video)?;
                }
                Assign::Wait => break,
                Assign::Drop => {
                    self.pending_audio.pop_front();
                }
                Assign::Segment(number) => {
                    let Some(sample) = self.pending_audio.pop_front() else {
                        break;
                    };
                    if let Some(muxer) = self.audio.muxer.as_mut() {
                        muxer
                            .push(sample, number, &mut self.events)
                            .map_err(|source| PackagerError::Cmaf {
                                kind: TrackKind::Audio,
                                source,
                            })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn assign_audio(&mut self, t: u64, force: bool) -> Assign {
        let Some(sr) = self.audio.clock.as_ref().map(|c| c.timescale) else {
            return Assign::Drop;
        };
        let target_ms = self.config.target_segment_ms;
        let cut = self
            .cuts
            .iter()
            .rev()
            .find(|c| time_ge(t, sr, c.at, c.scale))
            .copied();
        let past_target = |c: &Cut| {
            time_ge(
                t,
                sr,
                c.at.saturating_add(ms_to_ticks(target_ms, c.scale)),
                c.scale,
            )
        };
        if !self.video_active {
            // Audio leads: cut by time.
            return match cut {
                None if self.cuts.is_empty() => Assign::Segment(self.start_segment(t, sr)),
                None => Assign::Drop,
                Some(c) if c.number == self.number && past_target(&c) => {
                    Assign::Segment(self.start_segment(t, sr))
                }
                Some(c) => Assign::Segment(c.number),
            };
        }
        let video_passed = self
            .video_progress
            .is_some_and(|p| time_ge(p, VIDEO_TIMESCALE, t, sr));
        match cut {
            // Before video's first key frame: dropped once video has passed it.
            None if self.cuts.is_empty() && !force && !video_passed => Assign::Wait,
            None => Assign::Drop,
            Some(c) if c.number < self.number => Assign::Segment(c.number),
            Some(c) if force || video_passed || !past_target(&c) => Assign::Segment(c.number),
            Some(_) => Assign::Wait,
        }
    }

    /// Audio queued well beyond what video has delivered.
    fn audio_stalled(&self) -> bool {
        let (Some(front), Some(back), Some(clock)) = (
            self.pending_audio.front(),
            self.pending_audio.back(),
            self.audio.clock.as_ref(),
        ) else {
            return false;
        };
        let sr = u128::from(clock.timescale.max(1));
        let to_ms = |ticks: u64, scale: u128| u128::from(ticks) * 1000 / scale;
        let video_ms = self.video_progress.map_or(0, |p| to_ms(p, 90_000));
        let reference = to_ms(front.dts, sr).max(video_ms);
        let limit = 2 * u128::from(self.config.target_segment_ms) + 1000;
        to_ms(back.dts, sr).saturating_sub(reference) > limit
    }

    fn flush_track(&mut self, kind: TrackKind) -> Result<(), PackagerError> {
        let events = &mut self.events;
        let track = match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        if let Some(muxer) = track.muxer.as_mut() {
            let end = muxer
                .flush(events)
                .map_err(|source| PackagerError::Cmaf { kind, source })?;
            muxer.next_discontinuity = true;
            if let Some(clock) = track.clock.as_mut() {
                clock.raise_floor(end);
            }
        }
        Ok(())
    }

    /// Close every open segment; the next ones are flagged as discontinuities.
    pub(super) fn discontinuity(
        &mut self,
        reason: String,
        rebase: bool,
    ) -> Result<(), PackagerError> {
        self.events
            .push_back(PackagerEvent::Discontinuity { reason });
        self.close_all()?;
        for track in [&mut self.video, &mut self.audio] {
            if let Some(muxer) = track.muxer.as_mut() {
                muxer.next_discontinuity = true;
            }
            if let (true, Some(clock)) = (rebase, track.clock.as_mut()) {
                clock.mark_rebased();
            }
        }
        self.rebase_next |= rebase;
        Ok(())
    }

    /// Place all queued audio, then close both tracks' open segments.
    pub(super) fn close_all(&mut self) -> Result<(), PackagerError> {
        let result = self.drain_audio(true);
        self.pending_audio.clear();
        let video = self.flush_track(TrackKind::Video);
        let audio = self.flush_track(TrackKind::Audio);
        self.cuts.clear();
        for track in [&mut self.video, &mut self.audio] {
            if let Some(muxer) = track.muxer.as_mut() {
                muxer.next_discontinuity = false;
            }
        }
        result.and(video).and(audio)
    }
}
