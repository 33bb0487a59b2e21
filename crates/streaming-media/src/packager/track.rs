//! One track's CMAF output: samples in, parts (CMAF chunks) and segments out.
//!
//! A sample's duration is only known when the next sample arrives, so the latest
//! sample is held back; a part is written as soon as adding one more sample of the
//! same duration would exceed the part target, and a segment when the first sample
//! of the next one arrives (or on [`Muxer::flush`], where the held sample lasts as
//! long as its predecessor).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{PackagerEvent, Part, Segment, TrackKind};
use crate::cmaf::{self, CmafError, NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS, Sample};

/// A timed sample waiting for its duration.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub dts: u64,
    /// Composition offset in timescale units.
    pub cts: i32,
    pub key: bool,
    pub data: Bytes,
}

#[derive(Debug)]
struct OpenSegment {
    number: u64,
    start: u64,
    duration: u64,
    discontinuity: bool,
    init_version: u32,
    starts_with_keyframe: bool,
    parts: Vec<Bytes>,
    part_index: u32,
    part: Vec<Sample>,
    part_start: u64,
    part_duration: u64,
    part_independent: bool,
}

#[derive(Debug)]
pub(super) struct Muxer {
    kind: TrackKind,
    timescale: u32,
    part_target: u64,
    sequence: u32,
    pub init_version: u32,
    /// Flag the next segment opened as a discontinuity.
    pub next_discontinuity: bool,
    open: Option<OpenSegment>,
    held: Option<Pending>,
    prev_duration: u32,
    /// Decode time just after the last sample written.
    end: u64,
}

impl Muxer {
    pub fn new(kind: TrackKind, timescale: u32, part_target_ms: u32, nominal: u32) -> Self {
        Self {
            kind,
            timescale,
            part_target: (u64::from(part_target_ms) * u64::from(timescale) / 1000).max(1),
            sequence: 1,
            init_version: 0,
            next_discontinuity: false,
            open: None,
            held: None,
            prev_duration: nominal.max(1),
            end: 0,
        }
    }

    /// Number of the open segment.
    pub fn open_number(&self) -> Option<u64> {
        self.open.as_ref().map(|s| s.number)
    }

    /// Decode time of the open segment's first sample.
    pub fn segment_start(&self) -> Option<u64> {
        self.open.as_ref().map(|s| s.start)
    }

    /// Add `sample` to segment `number` (a number below the open one means the open one).
    pub fn push(
        &mut self,
        sample: Pending,
        number: u64,
        events: &mut VecDeque<PackagerEvent>,
    ) -> Result<(), CmafError> {
        if let Some(held) = self.held.take() {
            let gap = sample.dts.saturating_sub(held.dts);
            let duration = u32::try_from(gap).unwrap_or(u32::MAX).max(1);
            self.append(held, duration, events)?;
        }
        let number = number.max(self.open_number().unwrap_or(0));
        if self.open_number().is_some_and(|open| open != number) {
            self.close_segment(events)?;
        }
        if self.open.is_none() {
            self.open = Some(OpenSegment {
                number,
                start: sample.dts,
                duration: 0,
                discontinuity: std::mem::take(&mut self.next_discontinuity),
                init_version: self.init_version,
                starts_with_keyframe: sample.key,
                parts: Vec::new(),
                part_index: 0,
                part: Vec::new(),
                part_start: sample.dts,
                part_duration: 0,
                part_independent: sample.key,
            });
        }
        self.held = Some(sample);
        Ok(())
    }

    /// Drop the open segment and the held sample unwritten (parts already emitted stay
    /// emitted). Returns the dropped segment's number.
    pub fn discard(&mut self) -> Option<u64> {
        self.held = None;
        self.open.take().map(|s| s.number)
    }

    /// Close the open segment: the held sample lasts as long as the one before it.
    /// Returns the decode time just after the last sample written.
    pub fn flush(&mut self, events: &mut VecDeque<PackagerEvent>) -> Result<u64, CmafError> {
        if let Some(held) = self.held.take() {
            self.append(held, self.prev_duration, events)?;
        }
        self.close_segment(events)?;
        Ok(self.end)
    }

    fn append(
        &mut self,
        sample: Pending,
        duration: u32,
        events: &mut VecDeque<PackagerEvent>,
    ) -> Result<(), CmafError> {
        let target = self.part_target;
        let dts = sample.dts;
        let Some(seg) = self.open.as_mut() else {
            return Ok(()); // unreachable: a held sample always has an open segment
        };
        if !seg.part.is_empty() && seg.part_duration + u64::from(duration) > target {
            self.close_part(events)?;
        }
        let Some(seg) = self.open.as_mut() else {
            return Ok(());
        };
        if seg.part.is_empty() {
            seg.part_start = sample.dts;
            seg.part_independent = sample.key;
        }
        let flags = match (self.kind, sample.key) {
            (TrackKind::Audio, _) | (TrackKind::Video, true) => SYNC_SAMPLE_FLAGS,
            (TrackKind::Video, false) => NON_SYNC_SAMPLE_FLAGS,
        };
        seg.part.push(Sample {
            duration,
            flags,
            composition_offset: sample.cts,
            data: sample.data,
        });
        seg.part_duration += u64::from(duration);
        seg.duration += u64::from(duration);
        self.prev_duration = duration;
        self.end = dts.saturating_add(u64::from(duration));
        // Close now if one more sample like this one would not fit.
        if seg.part_duration + u64::from(duration) > target {
            self.close_part(events)?;
        }
        Ok(())
    }

    fn close_part(&mut self, events: &mut VecDeque<PackagerEvent>) -> Result<(), CmafError> {
        let Some(seg) = self.open.as_mut() else {
            return Ok(());
        };
        if seg.part.is_empty() {
            return Ok(());
        }
        let samples = std::mem::take(&mut seg.part);
        let duration = std::mem::take(&mut seg.part_duration);
        let data =
            cmaf::write_fragment(self.sequence, seg.part_start, &samples, seg.part_index == 0)?;
        self.sequence = self.sequence.wrapping_add(1).max(1);
        events.push_back(PackagerEvent::Part(Part {
            track: self.kind,
            segment: seg.number,
            index: seg.part_index,
            data: data.clone(),
            start: seg.part_start,
            duration,
            timescale: self.timescale,
            independent: seg.part_independent,
        }));
        seg.parts.push(data);
        seg.part_index += 1;
        Ok(())
    }

    fn close_segment(&mut self, events: &mut VecDeque<PackagerEvent>) -> Result<(), CmafError> {
        self.close_part(events)?;
        let Some(seg) = self.open.take() else {
            return Ok(());
        };
        if seg.parts.is_empty() {
            return Ok(());
        }
        let data = if seg.parts.len() == 1 {
            seg.parts[0].clone()
        } else {
            let mut buf = BytesMut::with_capacity(seg.parts.iter().map(Bytes::len).sum());
            for part in &seg.parts {
                buf.extend_from_slice(part);
            }
            buf.freeze()
        };
        events.push_back(PackagerEvent::Segment(Segment {
            track: self.kind,
            number: seg.number,
            start: seg.start,
            duration: seg.duration,
            timescale: self.timescale,
            data,
            discontinuity: seg.discontinuity,
            init_version: seg.init_version,
            starts_with_keyframe: seg.starts_with_keyframe,
        }));
        Ok(())
    }
}
