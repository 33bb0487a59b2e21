//! `streaming-server`: RTMP in, CMAF out as HLS and DASH, in one binary.

use clap::Parser;
use streaming_server::cli::{Cli, Command};
use streaming_server::{keys_cmd, logging};
use tracing::info;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(&cli.log_format);
    let config = cli.overrides.resolve()?;
    match cli.command {
        Command::Keys { command } => keys_cmd::run(&config, command).await,
        Command::Serve => {
            let server = streaming_server::start(config).await?;
            println!(
                "streaming-server: RTMP rtmp://{}/live  HTTP http://{}",
                server.rtmp_addr, server.http_addr
            );
            let token = server.shutdown_token();
            tokio::spawn(async move {
                wait_for_signal().await;
                info!("signal received");
                token.cancel();
            });
            server.wait_for_stop().await;
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
