//! Configuration layering: flags > environment > `--config FILE.toml` > defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use streaming_core::config::Config;

/// Values that may come from flags or the environment (clap reads both).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// TOML configuration file (unknown keys are rejected).
    #[arg(long, env = "STREAMING_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// RTMP listen address [default: 0.0.0.0:1935].
    #[arg(long, env = "STREAMING_RTMP_ADDR", global = true)]
    pub rtmp_addr: Option<SocketAddr>,
    /// HTTP listen address [default: 0.0.0.0:8080].
    #[arg(long, env = "STREAMING_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,
    /// Data directory (SQLite database, admin token) [default: ./data].
    #[arg(long, env = "STREAMING_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://… [default: sqlite:DATA_DIR/streaming.db].
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Admin bearer token for the REST API [default: generated, kept in DATA_DIR].
    #[arg(
        long,
        env = "STREAMING_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Public base URL of the HTTP side, used in printed URLs.
    #[arg(long, env = "STREAMING_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
}

impl Overrides {
    /// Builds the configuration in force.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(a) = self.rtmp_addr {
            config.rtmp_addr = a;
        }
        if let Some(a) = self.http_addr {
            config.http_addr = a;
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(u) = &self.database_url {
            config.database_url = Some(u.clone());
        }
        if let Some(t) = &self.admin_token {
            config.admin_token = Some(t.clone());
        }
        if let Some(u) = &self.public_url {
            config.public_http_url = Some(u.clone());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "http_addr = \"127.0.0.1:9000\"\nrtmp_addr = \"127.0.0.1:1940\"\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(path),
            http_addr: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = o.resolve().unwrap();
        assert_eq!(c.http_addr.port(), 9100);
        assert_eq!(c.rtmp_addr.port(), 1940);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
    }
}
