//! `streaming-server`: RTMP in, CMAF out as HLS and DASH, in one binary.

use clap::Parser;
use streaming_server::cli::{Cli, Command};
use streaming_server::{keys_cmd, logging};
use tracing::info;

/// mimalloc instead of glibc malloc: per-request allocations (heads, bodies,
/// futures) on many threads cost a fraction (perf at 1,000 viewers, see
/// `bench/vs_nginx.sh`), and freed memory goes back without fragmenting.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(&cli.log_format);
    let config = cli.overrides.resolve()?;
    match cli.command {
        Command::Keys { command } => keys_cmd::run(&config, command).await,
        Command::Serve => {
            raise_fd_limit();
            let server = streaming_server::start(config).await?;
            let mut banner = String::from("streaming-server:");
            let plain = &server.config.tls;
            if plain.plain_rtmp {
                banner.push_str(&format!(" RTMP rtmp://{}/live ", server.rtmp_addr));
            }
            if let Some(a) = server.rtmps_addr {
                banner.push_str(&format!(" RTMPS rtmps://{a}/live "));
            }
            if plain.plain_http {
                banner.push_str(&format!(" HTTP http://{} ", server.http_addr));
            }
            if let Some(a) = server.https_addr {
                banner.push_str(&format!(" HTTPS https://{a} "));
            }
            if let Some(a) = server.metrics_addr {
                banner.push_str(&format!(" metrics http://{a}/metrics"));
            }
            println!("{}", banner.trim_end());
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

/// Raises the soft limit of open files to the hard limit: every viewer,
/// encoder and WebSocket client is a descriptor (`http.max_connections` is
/// 10,000 by default).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::warn!("could not raise the open-files limit");
            }
        }
    }
}
