//! Server configuration: one struct, read from a TOML file with unknown keys
//! rejected; the binary layers environment and flags on top
//! (flags > environment > file > defaults).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// RTMP listener address.
    pub rtmp_addr: SocketAddr,
    /// HTTP listener address (HLS, DASH, watch page, API).
    pub http_addr: SocketAddr,
    /// Where the embedded database and generated secrets live.
    pub data_dir: PathBuf,
    /// `sqlite:PATH` (default `sqlite:{data_dir}/streaming.db`).
    pub database_url: Option<String>,
    /// Base URL shown to users in `watch_url` (default from `http_addr`).
    pub public_http_url: Option<String>,
    /// Base URL shown to broadcasters in `rtmp_url` (default from `rtmp_addr`).
    pub public_rtmp_url: Option<String>,
    /// Admin bearer token for the REST API.
    pub admin_token: Option<String>,
    pub media: MediaConfig,
    pub ingest: IngestConfig,
    pub transcode: TranscodeConfig,
    pub delivery: DeliveryConfig,
    pub metrics: MetricsConfig,
}

/// The 1-second metrics collector and its history.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Seconds between batched writes of 1-second samples (and roll-ups).
    pub flush_secs: u32,
    /// Hours raw 1-second samples are kept; 1-minute roll-ups are kept for good.
    pub raw_retention_hours: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            flush_secs: 5,
            raw_retention_hours: 24,
        }
    }
}

/// How playback URLs are handed out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// A CDN caches segments: the viewer-session id (`sid`) is written into
    /// playlist URLs only, never into init/segment URLs, so every viewer
    /// fetches the same segment URL.
    pub cdn_mode: bool,
}

/// One rung of the ladder: a rendition FFmpeg makes below the source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    pub name: String,
    pub height: u32,
    pub video_kbps: u32,
    #[serde(default = "default_max_fps")]
    pub max_fps: f64,
}

fn default_max_fps() -> f64 {
    30.0
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscodeConfig {
    /// Make the lower rungs at all (the source is always offered).
    pub enabled: bool,
    /// The FFmpeg program [default: `ffmpeg` found on PATH].
    pub ffmpeg: Option<std::path::PathBuf>,
    /// x264 preset; `veryfast` keeps up with a 1080p ladder on few cores.
    pub preset: String,
    /// Highest first. Rungs at or above the source height are left out.
    pub rungs: Vec<RungConfig>,
    /// Below this FFmpeg speed (×real time), sustained, the top rung is dropped.
    pub min_speed: f64,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        let rung = |name: &str, height, video_kbps| RungConfig {
            name: name.into(),
            height,
            video_kbps,
            max_fps: 30.0,
        };
        Self {
            enabled: true,
            ffmpeg: None,
            preset: "veryfast".into(),
            rungs: vec![
                rung("1080p", 1080, 8000),
                rung("720p", 720, 5000),
                rung("480p", 480, 2000),
            ],
            min_speed: 0.9,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Target segment duration; segments cut at the first keyframe at or after it.
    pub segment_duration_ms: u32,
    /// Target CMAF chunk (LL-HLS part) duration.
    pub part_duration_ms: u32,
    /// Segments listed in each media playlist.
    pub playlist_segments: usize,
    /// Segments kept fetchable per rendition (≥ `playlist_segments`).
    pub retained_segments: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A publisher silent for this long is disconnected.
    pub read_timeout_secs: u64,
    /// A publisher that does not take our bytes for this long is disconnected.
    pub write_timeout_secs: u64,
    /// Largest RTMP message accepted (bytes).
    pub max_message_bytes: u32,
    /// Concurrent RTMP connections accepted.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rtmp_addr: ([0, 0, 0, 0], 1935).into(),
            http_addr: ([0, 0, 0, 0], 8080).into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            public_http_url: None,
            public_rtmp_url: None,
            admin_token: None,
            media: MediaConfig::default(),
            ingest: IngestConfig::default(),
            transcode: TranscodeConfig::default(),
            delivery: DeliveryConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            segment_duration_ms: 2000,
            part_duration_ms: 500,
            playlist_segments: 6,
            retained_segments: 10,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            read_timeout_secs: 10,
            write_timeout_secs: 10,
            max_message_bytes: 8 * 1024 * 1024,
            max_connections: 256,
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Self, toml_error::Error> {
        toml_error::parse(text)
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("streaming.db").display()))
    }

    /// Base of user-facing HTTP URLs, without a trailing slash.
    pub fn http_base(&self) -> String {
        match &self.public_http_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", display_host(self.http_addr)),
        }
    }

    /// The RTMP URL broadcasters point their encoder at (without the key).
    pub fn rtmp_base(&self) -> String {
        match &self.public_rtmp_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("rtmp://{}/live", display_host(self.rtmp_addr)),
        }
    }
}

fn display_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// TOML parsing kept behind a small seam so the error type is ours.
pub mod toml_error {
    #[derive(Debug, thiserror::Error)]
    #[error("invalid configuration: {0}")]
    pub struct Error(pub String);

    pub(super) fn parse(text: &str) -> Result<super::Config, Error> {
        toml::from_str(text).map_err(|e| Error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_unknown_keys_fail() {
        let c = Config::from_toml(
            "http_addr = \"127.0.0.1:9000\"\n[media]\nsegment_duration_ms = 4000\n",
        )
        .unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        assert_eq!(c.media.segment_duration_ms, 4000);
        assert_eq!(c.media.part_duration_ms, 500);
        assert_eq!(c.rtmp_addr.port(), 1935);
        assert!(Config::from_toml("bogus = 1").is_err());
        assert_eq!(c.http_base(), "http://127.0.0.1:9000");
        assert_eq!(Config::default().rtmp_base(), "rtmp://localhost:1935/live");
    }
}
