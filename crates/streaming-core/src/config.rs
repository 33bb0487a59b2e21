//! Server configuration: one struct, read from a TOML file with unknown keys
//! rejected; the binary layers environment and flags on top
//! (flags > environment > file > defaults).
//!
//! Every limit of every surface lives here with its default (docs/ARCHITECTURE.md,
//! "Limits and abuse resistance"): `[ingest]` for RTMP, `[http]` for the
//! HTTP listeners, `[sessions]` for viewer sessions and beacons,
//! `[websocket]`, `[tls]` for HTTPS/RTMPS, `[cors]`. Secrets are [`Secret`]s:
//! their `Debug` output is redacted, so printing a `Config` leaks nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// A secret value (token, password-bearing URL, HMAC key). `Debug` prints
/// `[redacted]`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Shortest admin (and metrics) bearer token accepted at start.
pub const MIN_TOKEN_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// RTMP listener address.
    pub rtmp_addr: SocketAddr,
    /// HTTP listener address (HLS, DASH, watch page, API).
    pub http_addr: SocketAddr,
    /// Where the embedded database and generated secrets live.
    pub data_dir: PathBuf,
    /// `sqlite:PATH` (default `sqlite:{data_dir}/streaming.db`) or `postgres://…`.
    pub database_url: Option<Secret>,
    /// Base URL shown to users in `watch_url` (default from `http_addr`).
    pub public_http_url: Option<String>,
    /// Base URL shown to broadcasters in `rtmp_url` (default from `rtmp_addr`).
    pub public_rtmp_url: Option<String>,
    /// Admin bearer token for the REST API (at least 32 characters).
    pub admin_token: Option<Secret>,
    pub media: MediaConfig,
    pub ingest: IngestConfig,
    pub transcode: TranscodeConfig,
    pub delivery: DeliveryConfig,
    pub metrics: MetricsConfig,
    pub http: HttpConfig,
    pub sessions: SessionsConfig,
    pub websocket: WebSocketConfig,
    pub tls: TlsConfig,
    pub cors: CorsConfig,
}

/// The 1-second metrics collector, its history, and the `/metrics` endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Seconds between batched writes of 1-second samples (and roll-ups).
    pub flush_secs: u32,
    /// Hours raw 1-second samples are kept; 1-minute roll-ups are kept for good.
    pub raw_retention_hours: u32,
    /// Bearer token `/metrics` requires on the main HTTP listener(s)
    /// (default: generated into `DATA_DIR/metrics_token`).
    pub token: Option<Secret>,
    /// Serve `/metrics` on the main listener without a token.
    pub public: bool,
    /// A separate listener serving only `/metrics`, without a token (bind it
    /// to a private interface). Off by default.
    pub listen_addr: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            flush_secs: 5,
            raw_retention_hours: 24,
            token: None,
            public: false,
            listen_addr: None,
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
    /// Serve LL-HLS (parts, blocking playlist reload, preload hints) and
    /// LL-DASH (segments in progress sent as they are made). Players without
    /// low-latency support play the same playlists as ordinary HLS.
    pub low_latency: bool,
    /// How long a blocking playlist reload or a hinted part is held, in
    /// target durations (RFC 8216bis §6.2.5.2 suggests three).
    pub hold_target_durations: u32,
}

/// RTMP ingest: timeouts and limits of the (public) encoder port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A publisher silent for this long is disconnected.
    pub read_timeout_secs: u64,
    /// A publisher that does not take our bytes for this long is disconnected.
    pub write_timeout_secs: u64,
    /// Largest RTMP message accepted once publishing (bytes).
    pub max_message_bytes: u32,
    /// Concurrent RTMP(S) connections accepted in all (publishing or not).
    pub max_connections: usize,
    /// The RTMP handshake (C0–C2) must be done this long after accept.
    pub handshake_timeout_secs: u64,
    /// `publish` with a valid key must be accepted this long after accept.
    pub publish_timeout_secs: u64,
    /// A publishing connection that sends no media for this long is closed
    /// and its stream ended (T080).
    pub idle_publish_timeout_secs: u64,
    /// Connections not yet publishing, in all.
    pub max_pending_connections: usize,
    /// Connections not yet publishing, per remote address (IPv6: per /64).
    pub max_pending_per_addr: usize,
    /// Refused stream keys per address within a minute before the address is banned.
    pub bad_keys_per_min: u32,
    /// How long a banned address is refused.
    pub bad_key_ban_secs: u64,
    /// Largest command or data message before `publish` is accepted (bytes).
    pub pre_publish_max_message_bytes: u32,
    /// AMF0 values per command/data message before `publish` is accepted.
    pub max_amf_values: u32,
    /// AMF0 nesting (objects, arrays) before `publish` is accepted.
    pub max_amf_depth: u32,
    /// Messages in reassembly at once before `publish` is accepted.
    pub max_partial_messages: u32,
    /// Bytes of message reassembly buffers across all connections.
    pub reassembly_budget_bytes: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            read_timeout_secs: 10,
            write_timeout_secs: 10,
            max_message_bytes: 8 * 1024 * 1024,
            max_connections: 1024,
            handshake_timeout_secs: 5,
            publish_timeout_secs: 10,
            idle_publish_timeout_secs: 30,
            max_pending_connections: 256,
            max_pending_per_addr: 8,
            bad_keys_per_min: 10,
            bad_key_ban_secs: 60,
            pre_publish_max_message_bytes: 64 * 1024,
            max_amf_values: 1024,
            max_amf_depth: 8,
            max_partial_messages: 4,
            reassembly_budget_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The HTTP listeners: timeouts, connection caps, body limits, rate limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request's headers must arrive within this time (also the TLS handshake).
    pub header_read_timeout_secs: u64,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout_secs: u64,
    /// A request must be answered within this time (WebSocket exempt).
    pub request_timeout_secs: u64,
    /// Open HTTP(S) connections in all.
    pub max_connections: usize,
    /// Open HTTP(S) connections per remote address (IPv6: per /64).
    pub max_connections_per_addr: usize,
    /// Largest body of an API request (bytes).
    pub max_api_body_bytes: usize,
    /// Largest beacon body (bytes).
    pub max_beacon_body_bytes: usize,
    /// Most events in one beacon body.
    pub max_beacon_events: usize,
    /// Control-API requests per address per minute (seed T086).
    pub api_requests_per_min: u32,
    /// Public API requests (beacons, session ids, stream status) per address per second.
    pub public_requests_per_sec: u32,
    /// Failed admin-token attempts per address per minute; beyond it, 429.
    pub admin_failures_per_min: u32,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies, CDN edges);
    /// everyone else is identified by the TCP peer address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Requests held open waiting for media on this node, in all: LL-HLS
    /// blocking playlist reloads, hinted parts, segments in progress sent as
    /// they are made. Beyond it, 503 with `Retry-After: 1` at once.
    pub max_held_requests: usize,
    /// Held requests per address (IPv6: per /64; the address after trusted
    /// proxies). Beyond it, 503 with `Retry-After: 1` at once.
    pub max_held_requests_per_addr: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            request_timeout_secs: 30,
            max_connections: 10_000,
            max_connections_per_addr: 256,
            max_api_body_bytes: 1024 * 1024,
            max_beacon_body_bytes: 64 * 1024,
            max_beacon_events: 20,
            api_requests_per_min: 100,
            public_requests_per_sec: 100,
            admin_failures_per_min: 20,
            trusted_proxies: Vec::new(),
            // 10,000 LL viewers, each holding a playlist reload and a part.
            max_held_requests: 20_000,
            max_held_requests_per_addr: 64,
        }
    }
}

/// Viewer sessions: signed ids, caps, beacon rates, retention.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// HMAC key that signs session ids (default: generated into
    /// `DATA_DIR/session_secret`; give every replica the same one).
    pub secret: Option<Secret>,
    /// Live sessions held by this node.
    pub max_live: usize,
    /// New sessions per address per second.
    pub new_per_addr_per_sec: u32,
    /// Beacons per session per second.
    pub beacons_per_session_per_sec: u32,
    /// Days ended viewer sessions are kept in the database.
    pub retention_days: u32,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            secret: None,
            max_live: 50_000,
            new_per_addr_per_sec: 50,
            beacons_per_session_per_sec: 10,
            retention_days: 30,
        }
    }
}

/// The WebSocket channel `/ws/stream/{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// Clients per node.
    pub max_clients: usize,
    /// Clients per address (IPv6: per /64).
    pub max_clients_per_addr: usize,
    /// Largest inbound frame and message (bytes); the server reads none anyway.
    pub max_message_bytes: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            max_clients: 10_000,
            max_clients_per_addr: 50,
            max_message_bytes: 4096,
        }
    }
}

/// HTTPS and RTMPS (T085): certificate and key from PEM files, reloaded
/// when the files change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// HTTPS listener (needs `cert_file` and `key_file`).
    pub https_addr: Option<SocketAddr>,
    /// RTMPS listener (needs `cert_file` and `key_file`).
    pub rtmps_addr: Option<SocketAddr>,
    /// Keep the plain HTTP listener (`http_addr`).
    pub plain_http: bool,
    /// Keep the plain RTMP listener (`rtmp_addr`).
    pub plain_rtmp: bool,
    /// How often the certificate files are checked for changes (seconds).
    pub reload_check_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            https_addr: None,
            rtmps_addr: None,
            plain_http: true,
            plain_rtmp: true,
            reload_check_secs: 2,
        }
    }
}

/// Cross-origin access (T087).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed on playback routes (playlists, segments, beacons,
    /// session ids, stream status, WebSocket); `"*"` allows any (players are
    /// embedded anywhere).
    pub playback_origins: Vec<String>,
    /// Origins allowed on the admin API (none by default).
    pub admin_origins: Vec<String>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            playback_origins: vec!["*".into()],
            admin_origins: Vec::new(),
        }
    }
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
            http: HttpConfig::default(),
            sessions: SessionsConfig::default(),
            websocket: WebSocketConfig::default(),
            tls: TlsConfig::default(),
            cors: CorsConfig::default(),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            segment_duration_ms: 2000,
            part_duration_ms: 300,
            playlist_segments: 6,
            retained_segments: 10,
            low_latency: true,
            hold_target_durations: 3,
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Self, toml_error::Error> {
        toml_error::parse(text)
    }

    /// The database URL in force (a secret: it may carry a password).
    pub fn database_url(&self) -> String {
        self.database_url
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("streaming.db").display()))
    }

    /// Base of user-facing HTTP URLs, without a trailing slash.
    pub fn http_base(&self) -> String {
        match &self.public_http_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if !self.tls.plain_http && self.tls.https_addr.is_some() => {
                format!(
                    "https://{}",
                    display_host(self.tls.https_addr.unwrap_or(self.http_addr))
                )
            }
            None => format!("http://{}", display_host(self.http_addr)),
        }
    }

    /// The RTMP URL broadcasters point their encoder at (without the key).
    pub fn rtmp_base(&self) -> String {
        match &self.public_rtmp_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if !self.tls.plain_rtmp && self.tls.rtmps_addr.is_some() => format!(
                "rtmps://{}/live",
                display_host(self.tls.rtmps_addr.unwrap_or(self.rtmp_addr))
            ),
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
        assert_eq!(c.media.part_duration_ms, 300);
        assert_eq!(c.rtmp_addr.port(), 1935);
        assert!(Config::from_toml("bogus = 1").is_err());
        assert_eq!(c.http_base(), "http://127.0.0.1:9000");
        assert_eq!(Config::default().rtmp_base(), "rtmp://localhost:1935/live");
    }

    #[test]
    fn limits_have_the_documented_defaults_and_secrets_are_redacted() {
        let c = Config::from_toml(
            "admin_token = \"a-very-secret-token-of-forty-characters!!\"\n\
             database_url = \"postgres://u:hunter2@db/x\"\n\
             [http]\napi_requests_per_min = 5\n[tls]\nplain_http = false\n",
        )
        .unwrap();
        assert_eq!(c.http.api_requests_per_min, 5);
        assert_eq!(c.http.max_connections_per_addr, 256);
        assert_eq!(c.ingest.max_pending_per_addr, 8);
        assert_eq!(c.ingest.reassembly_budget_bytes, 256 * 1024 * 1024);
        assert_eq!(c.sessions.max_live, 50_000);
        assert_eq!(c.websocket.max_message_bytes, 4096);
        assert_eq!(c.cors.playback_origins, vec!["*".to_string()]);
        assert!(c.cors.admin_origins.is_empty());
        assert!(!c.tls.plain_http);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert_eq!(c.database_url(), "postgres://u:hunter2@db/x");
    }
}
