//! Sans-IO media protocol engines and containers for the streaming server.
//!
//! Nothing here opens a socket, spawns a task or reads a clock: bytes and the
//! current time go in, events and bytes come out. See `docs/ARCHITECTURE.md` at the repository root.
//!
//! - [`amf0`]: Action Message Format 0 (Adobe AMF0 specification).
//! - [`rtmp`]: RTMP 1.0 handshake, chunk stream and the publish session.
//! - [`frame`]: an FLV/RTMP tag body with its timestamp (RTMP, FLV mux and demux).
//! - [`media`]: decoder configurations and codec-neutral frames, parsed once from FLV
//!   tags; what the hub fans out.
//! - [`flv`], [`avc`], [`aac`]: FLV tag bodies (FLV 10.1 §E.4) and decoder configs.
//! - [`cmaf`], [`packager`]: CMAF (ISO/IEC 23000-19) init and media segments.
//! - [`hls`], [`dash`]: RFC 8216bis playlists and ISO/IEC 23009-1 MPDs.

pub mod aac;
pub mod amf0;
pub mod avc;
pub mod cmaf;
pub mod dash;
pub mod flv;
pub mod flv_demux;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod hls;
pub mod media;
pub mod packager;
pub mod rtmp;
pub mod timefmt;
