//! The `streaming-server` binary's library half: configuration layering, the
//! wiring of every role into one process, and graceful shutdown. Integration
//! tests start the whole server in-process through [`start`].

pub mod app;
pub mod cli;
pub mod http_server;
pub mod keys_cmd;
pub mod listeners;
pub mod logging;
pub mod secrets;
pub mod settings;
pub mod tls;

pub use app::{RunningServer, start};
