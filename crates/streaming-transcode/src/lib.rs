//! Transcoding: the ladder plan and one FFmpeg child process per live stream.
//!
//! The source rendition is never touched. The ladder is planned from the source
//! track's configuration as the hub carries it (parsed once at ingest). FFmpeg
//! (the Debian `ffmpeg` program, never linked) reads the source video as FLV
//! rebuilt from the hub's frames on stdin and writes one FLV per rung to a Unix
//! socket of ours, with the source's timestamps and a keyframe at every source
//! keyframe; each is parsed once and published into the same broadcast as a
//! track named after its rung, so the packager can cut every rendition at the
//! source's segment boundaries. If FFmpeg dies the source goes on and FFmpeg is
//! restarted with back-off; if it is missing, streams run source-only.

mod child;
pub mod command;
pub mod ladder;
pub mod meter;
pub mod progress;
mod supervisor;

pub use ladder::plan;
pub use supervisor::{TranscodeStats, Transcoder, find_ffmpeg};
