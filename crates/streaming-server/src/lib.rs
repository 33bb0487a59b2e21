//! The `streaming-server` binary's library half: configuration layering, the
//! wiring of every role into one process, and graceful shutdown. Integration
//! tests start the whole server in-process through [`start`].

pub mod app;
pub mod cli;
pub mod keys_cmd;
pub mod logging;
pub mod secrets;
pub mod settings;

pub use app::{RunningServer, start};
