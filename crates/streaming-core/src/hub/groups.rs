//! What the hub keeps of a broadcast for consumers that join late: per track, its
//! decoder configuration and its current group (the model of moq-transport's
//! broadcast → track → group), plus the ladder in force.
//!
//! - A video track's group is its frames since its last key frame. A frame that is
//!   no key frame with no group open is not kept (a late joiner waits for the next
//!   key frame), and a group over the limits is dropped whole for the same reason.
//! - An audio track's group is its frames from the start of the `source` video
//!   track's group on (frames older than that key frame's decode time are dropped
//!   when it arrives). Without source video, the last `audio_window_ms` are kept.
//!   Over the limits, the oldest audio frames go (each one decodes on its own).
//! - A changed configuration empties its track's group; a publisher change empties
//!   every track and forgets every configuration (the new publisher sends its own);
//!   a restarted rendition likewise for its track.
//!
//! Frames are shared `Bytes`: keeping them costs no copy.

use std::collections::VecDeque;
use std::sync::Arc;

use streaming_media::media::{MediaFrame, TrackConfig, TrackKind};

use super::{AUDIO, HubMessage, RenditionSpec, SOURCE};

/// Bounds of each track's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Frames kept per track (a 10 s GOP at 60 fps is 600).
    pub max_frames: usize,
    /// Payload bytes kept per track.
    pub max_bytes: usize,
    /// Audio kept when the broadcast has no source video, in milliseconds.
    pub audio_window_ms: u32,
}

impl Default for GroupLimits {
    fn default() -> Self {
        Self {
            max_frames: 1_024,
            max_bytes: 32 * 1024 * 1024,
            audio_window_ms: 2_000,
        }
    }
}

/// `a − b` in ms, 32-bit wrap-aware.
fn diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

#[derive(Debug)]
struct Track {
    name: Arc<str>,
    config: Option<Arc<TrackConfig>>,
    /// The group, each frame with its arrival number (to replay tracks interleaved).
    frames: VecDeque<(u64, MediaFrame)>,
    bytes: usize,
    /// A video group is open (since a key frame).
    open: bool,
}

impl Track {
    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.open = false;
    }

    fn over(&self, limits: &GroupLimits) -> bool {
        self.frames.len() > limits.max_frames || self.bytes > limits.max_bytes
    }

    fn pop_front(&mut self) {
        if let Some((_, f)) = self.frames.pop_front() {
            self.bytes -= f.data.len();
        }
    }

    fn is_audio(&self) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.kind == TrackKind::Audio)
    }
}

/// The tracks of one broadcast and what a late joiner is given of them.
#[derive(Debug)]
pub(super) struct Groups {
    limits: GroupLimits,
    /// Arrival number of the latest frame.
    seq: u64,
    tracks: Vec<Track>,
    ladder: Option<Arc<[RenditionSpec]>>,
}

impl Groups {
    pub(super) fn new(limits: GroupLimits) -> Self {
        Self {
            limits,
            seq: 0,
            tracks: Vec::new(),
            ladder: None,
        }
    }

    fn track_mut(&mut self, name: &Arc<str>) -> &mut Track {
        let i = match self.tracks.iter().position(|t| t.name == *name) {
            Some(i) => i,
            None => {
                self.tracks.push(Track {
                    name: name.clone(),
                    config: None,
                    frames: VecDeque::new(),
                    bytes: 0,
                    open: false,
                });
                self.tracks.len() - 1
            }
        };
        &mut self.tracks[i]
    }

    /// A track's configuration is `config` from now on.
    pub(super) fn config(&mut self, name: &Arc<str>, config: &Arc<TrackConfig>) {
        let track = self.track_mut(name);
        if track.config.as_ref().is_none_or(|c| !c.same_as(config)) {
            track.clear();
        }
        track.config = Some(config.clone());
    }

    /// Keep `frame` in its track's group if it belongs there.
    pub(super) fn frame(&mut self, name: &Arc<str>, frame: &MediaFrame) {
        self.seq += 1;
        let (seq, limits) = (self.seq, self.limits);
        let source_video = self.tracks.iter().any(|t| {
            &*t.name == SOURCE
                && t.config
                    .as_ref()
                    .is_some_and(|c| c.kind == TrackKind::Video)
        });
        let track = self.track_mut(name);
        let Some(kind) = track.config.as_ref().map(|c| c.kind) else {
            return; // nothing decodes it: a late joiner gets its configuration first
        };
        if kind != frame.kind {
            return;
        }
        match kind {
            TrackKind::Video => {
                if frame.key {
                    track.clear();
                    track.open = true;
                }
                if !track.open {
                    return;
                }
                track.bytes += frame.data.len();
                track.frames.push_back((seq, frame.clone()));
                if track.over(&limits) {
                    track.clear();
                }
            }
            TrackKind::Audio => {
                track.bytes += frame.data.len();
                track.frames.push_back((seq, frame.clone()));
                while track.over(&limits) {
                    track.pop_front();
                }
                if !source_video {
                    let window = i64::from(limits.audio_window_ms);
                    while track
                        .frames
                        .front()
                        .is_some_and(|(_, f)| diff(frame.timestamp, f.timestamp) > window)
                    {
                        track.pop_front();
                    }
                }
            }
        }
        if &**name == SOURCE && frame.kind == TrackKind::Video && frame.key {
            // Audio groups start where the source video group starts.
            for audio in self.tracks.iter_mut().filter(|t| t.is_audio()) {
                while audio
                    .frames
                    .front()
                    .is_some_and(|(_, f)| diff(f.timestamp, frame.timestamp) < 0)
                {
                    audio.pop_front();
                }
            }
        }
    }

    /// `None`: the publisher changed, every track starts over; `Some(t)`: track `t`.
    pub(super) fn discontinuity(&mut self, track: Option<&str>) {
        for t in &mut self.tracks {
            if track.is_none_or(|name| *t.name == *name) {
                t.clear();
                t.config = None;
            }
        }
    }

    /// The ladder in force; renditions that left it are forgotten.
    pub(super) fn ladder(&mut self, specs: &Arc<[RenditionSpec]>) {
        self.tracks.retain(|t| {
            &*t.name == SOURCE || &*t.name == AUDIO || specs.iter().any(|s| s.name == t.name)
        });
        self.ladder = Some(specs.clone());
    }

    /// What a consumer joining now receives first: the ladder, every configuration
    /// (source and audio first), then the groups' frames in arrival order.
    pub(super) fn replay(&self) -> VecDeque<HubMessage> {
        let mut out = VecDeque::new();
        if let Some(ladder) = &self.ladder {
            out.push_back(HubMessage::Ladder(ladder.clone()));
        }
        let mut order: Vec<&Track> = self.tracks.iter().collect();
        order.sort_by_key(|t| (&*t.name != SOURCE, &*t.name != AUDIO));
        for t in &order {
            if let Some(config) = &t.config {
                out.push_back(HubMessage::Config {
                    track: t.name.clone(),
                    config: config.clone(),
                });
            }
        }
        let mut frames: Vec<(u64, &Arc<str>, &MediaFrame)> = self
            .tracks
            .iter()
            .flat_map(|t| t.frames.iter().map(move |(seq, f)| (*seq, &t.name, f)))
            .collect();
        frames.sort_unstable_by_key(|(seq, _, _)| *seq);
        out.extend(
            frames
                .into_iter()
                .map(|(_, track, frame)| HubMessage::Frame {
                    track: track.clone(),
                    frame: frame.clone(),
                }),
        );
        out
    }

    /// Frames and bytes kept for a track.
    #[cfg(test)]
    pub(super) fn group_size(&self, name: &str) -> (usize, usize) {
        self.tracks
            .iter()
            .find(|t| &*t.name == name)
            .map_or((0, 0), |t| (t.frames.len(), t.bytes))
    }
}
