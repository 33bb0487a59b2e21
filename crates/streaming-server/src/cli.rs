//! Command line: `serve` and `keys create|list|revoke`.

use clap::{Parser, Subcommand};

use crate::settings::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "streaming-server",
    version,
    about = "Live streaming server: RTMP in, HLS and DASH out"
)]
pub struct Cli {
    #[command(flatten)]
    pub overrides: Overrides,
    /// Log format: text or json.
    #[arg(
        long,
        env = "STREAMING_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (RTMP ingest, HLS/DASH delivery, API).
    Serve,
    /// Manage streams and their keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a stream and its key (the key is shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Print exactly one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List streams and their keys (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by key id, or every key of a stream by stream id.
    Revoke {
        id: uuid::Uuid,
        #[arg(long)]
        json: bool,
    },
}
