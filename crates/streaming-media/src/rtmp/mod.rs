//! RTMP 1.0 (Adobe "Real-Time Messaging Protocol" specification 1.0, 2012),
//! sans-IO: the handshake (§5.2), the chunk stream (§5.3), protocol control
//! messages (§5.4), user control messages (§6.2, §7.1.7), message types (§7.1)
//! and the NetConnection/NetStream commands a publisher uses (§7.2).
//!
//! - [`ServerSession`]: accepts a publisher (OBS, FFmpeg), emits [`ServerEvent`]s.
//! - [`ClientSession`]: a publisher, for tests and load generation.
//!
//! Neither reads a clock or touches a socket: bytes and the current
//! [`std::time::Instant`] go in through `handle_input`, and `poll_output` is
//! drained until `None` after every call. No input makes them panic; every
//! protocol violation is an [`RtmpError`].

mod chunk;
mod client;
mod conn;
mod error;
mod handshake;
mod limits;
mod message;
mod server;

pub use chunk::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};
pub use client::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
pub use error::RtmpError;
pub use handshake::{HANDSHAKE_SIZE, RTMP_VERSION};
pub use limits::{ReassemblyBudget, RtmpLimit, SessionLimits};
pub use server::{ServerConfig, ServerEvent, ServerOutput, ServerSession};
