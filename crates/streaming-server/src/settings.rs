//! Configuration layering: flags > environment > `--config FILE.toml` > defaults.
//!
//! Every secret can also come from a file (`STREAMING_ADMIN_TOKEN_FILE`,
//! `DATABASE_URL_FILE`, `STREAMING_METRICS_TOKEN_FILE`,
//! `STREAMING_SESSION_SECRET_FILE`), so that it never shows in `ps` or in the
//! process environment; giving both a value and its file is an error.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use streaming_core::config::{Config, Secret};

use crate::secrets::read_secret_file;

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
    /// HTTPS listen address (needs --tls-cert and --tls-key) [default: off].
    #[arg(long, env = "STREAMING_HTTPS_ADDR", global = true)]
    pub https_addr: Option<SocketAddr>,
    /// RTMPS listen address (needs --tls-cert and --tls-key) [default: off].
    #[arg(long, env = "STREAMING_RTMPS_ADDR", global = true)]
    pub rtmps_addr: Option<SocketAddr>,
    /// Certificate chain (PEM) for HTTPS and RTMPS; reloaded when it changes.
    #[arg(long, env = "STREAMING_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for HTTPS and RTMPS; reloaded when it changes.
    #[arg(long, env = "STREAMING_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Data directory (SQLite database, generated secrets) [default: ./data].
    #[arg(long, env = "STREAMING_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://… [default: sqlite:DATA_DIR/streaming.db].
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// File holding the database URL (instead of DATABASE_URL).
    #[arg(long, env = "DATABASE_URL_FILE", global = true)]
    pub database_url_file: Option<PathBuf>,
    /// Admin bearer token for the REST API, ≥ 32 characters [default: generated, kept in DATA_DIR].
    #[arg(
        long,
        env = "STREAMING_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// File holding the admin token (instead of STREAMING_ADMIN_TOKEN).
    #[arg(long, env = "STREAMING_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// Bearer token of `/metrics`, ≥ 32 characters [default: generated, kept in DATA_DIR].
    #[arg(
        long,
        env = "STREAMING_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// File holding the metrics token.
    #[arg(long, env = "STREAMING_METRICS_TOKEN_FILE", global = true)]
    pub metrics_token_file: Option<PathBuf>,
    /// Key that signs viewer-session ids, ≥ 32 characters (the same on every replica).
    #[arg(
        long,
        env = "STREAMING_SESSION_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub session_secret: Option<String>,
    /// File holding the session secret.
    #[arg(long, env = "STREAMING_SESSION_SECRET_FILE", global = true)]
    pub session_secret_file: Option<PathBuf>,
    /// Public base URL of the HTTP side, used in printed URLs.
    #[arg(long, env = "STREAMING_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
}

/// A secret given as a value or as a file, not both.
fn secret(
    value: &Option<String>,
    file: &Option<PathBuf>,
    name: &str,
) -> anyhow::Result<Option<Secret>> {
    match (value, file) {
        (Some(_), Some(_)) => bail!("give {name} or {name}_FILE, not both"),
        (Some(v), None) => Ok(Some(Secret::new(v.clone()))),
        (None, Some(f)) => read_secret_file(f, &format!("{name}_FILE")).map(Some),
        (None, None) => Ok(None),
    }
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
        if let Some(a) = self.https_addr {
            config.tls.https_addr = Some(a);
        }
        if let Some(a) = self.rtmps_addr {
            config.tls.rtmps_addr = Some(a);
        }
        if let Some(p) = &self.tls_cert {
            config.tls.cert_file = Some(p.clone());
        }
        if let Some(p) = &self.tls_key {
            config.tls.key_file = Some(p.clone());
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(s) = secret(&self.database_url, &self.database_url_file, "DATABASE_URL")? {
            config.database_url = Some(s);
        }
        if let Some(s) = secret(
            &self.admin_token,
            &self.admin_token_file,
            "STREAMING_ADMIN_TOKEN",
        )? {
            config.admin_token = Some(s);
        }
        if let Some(s) = secret(
            &self.metrics_token,
            &self.metrics_token_file,
            "STREAMING_METRICS_TOKEN",
        )? {
            config.metrics.token = Some(s);
        }
        if let Some(s) = secret(
            &self.session_secret,
            &self.session_secret_file,
            "STREAMING_SESSION_SECRET",
        )? {
            config.sessions.secret = Some(s);
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

    #[test]
    fn secrets_come_from_files_and_not_from_both() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "0123456789abcdef0123456789abcdef-file\n").unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, "postgres://u:pw@127.0.0.1/x\n").unwrap();
        let o = Overrides {
            admin_token_file: Some(token.clone()),
            database_url_file: Some(db),
            ..Default::default()
        };
        let c = o.resolve().unwrap();
        assert_eq!(
            c.admin_token.as_ref().map(Secret::expose),
            Some("0123456789abcdef0123456789abcdef-file")
        );
        assert_eq!(c.database_url(), "postgres://u:pw@127.0.0.1/x");
        let both = Overrides {
            admin_token: Some("x".repeat(40)),
            admin_token_file: Some(token),
            ..Default::default()
        };
        let err = both.resolve().unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
    }
}
