//! The sockets a server listens on: plain RTMP and HTTP (each can be turned
//! off with `tls.plain_rtmp = false` / `tls.plain_http = false`), RTMPS and
//! HTTPS when configured, and an optional metrics-only listener.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use streaming_core::config::Config;
use tokio::net::TcpListener;

/// Bound listeners (addresses resolved, ports known).
pub struct Listeners {
    pub rtmp: Option<TcpListener>,
    pub rtmps: Option<TcpListener>,
    pub http: Option<TcpListener>,
    pub https: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} on {addr}"))
}

async fn bind_opt(addr: Option<SocketAddr>, what: &str) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => Ok(Some(bind(a, what).await?)),
        None => Ok(None),
    }
}

/// The address a listener is bound to.
pub fn addr_of(l: &Option<TcpListener>) -> Option<SocketAddr> {
    l.as_ref().and_then(|l| l.local_addr().ok())
}

impl Listeners {
    /// Binds every listener the configuration asks for; at least one RTMP(S)
    /// and one HTTP(S) listener must remain.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let tls = &config.tls;
        if !tls.plain_rtmp && tls.rtmps_addr.is_none() {
            bail!("tls.plain_rtmp = false needs tls.rtmps_addr (encoders need a listener)");
        }
        if !tls.plain_http && tls.https_addr.is_none() {
            bail!("tls.plain_http = false needs tls.https_addr (viewers need a listener)");
        }
        Ok(Self {
            rtmp: match tls.plain_rtmp {
                true => Some(bind(config.rtmp_addr, "RTMP").await?),
                false => None,
            },
            rtmps: bind_opt(tls.rtmps_addr, "RTMPS").await?,
            http: match tls.plain_http {
                true => Some(bind(config.http_addr, "HTTP").await?),
                false => None,
            },
            https: bind_opt(tls.https_addr, "HTTPS").await?,
            metrics: bind_opt(config.metrics.listen_addr, "the metrics listener").await?,
        })
    }

    /// `(name, address)` of every listener, for `/ready` and the log.
    pub fn named(&self) -> Vec<(&'static str, SocketAddr)> {
        [
            ("rtmp", addr_of(&self.rtmp)),
            ("rtmps", addr_of(&self.rtmps)),
            ("http", addr_of(&self.http)),
            ("https", addr_of(&self.https)),
            ("metrics", addr_of(&self.metrics)),
        ]
        .into_iter()
        .filter_map(|(n, a)| Some((n, a?)))
        .collect()
    }
}
