//! The JSON shapes of the API (what the OpenAPI document describes), built
//! from the domain models. The domain crate knows nothing of OpenAPI.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use streaming_core::model::{self, QualityLevel, StreamKey, ViewerSession};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    /// Created; no media received yet.
    Pending,
    /// A broadcaster is publishing.
    Active,
    /// The broadcast stopped (the key may publish again).
    Ended,
    /// The broadcast failed.
    Error,
}

impl From<model::StreamStatus> for StreamStatus {
    fn from(s: model::StreamStatus) -> Self {
        match s {
            model::StreamStatus::Pending => StreamStatus::Pending,
            model::StreamStatus::Active => StreamStatus::Active,
            model::StreamStatus::Ended => StreamStatus::Ended,
            model::StreamStatus::Error => StreamStatus::Error,
        }
    }
}

impl From<StreamStatus> for model::StreamStatus {
    fn from(s: StreamStatus) -> Self {
        match s {
            StreamStatus::Pending => model::StreamStatus::Pending,
            StreamStatus::Active => model::StreamStatus::Active,
            StreamStatus::Ended => model::StreamStatus::Ended,
            StreamStatus::Error => model::StreamStatus::Error,
        }
    }
}

/// The URLs of a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamUrls {
    /// `rtmp://HOST:PORT/live`: the server to give OBS (the key goes in its own field).
    pub rtmp_url: String,
    pub hls_url: String,
    pub dash_url: String,
    pub watch_url: String,
}

impl StreamUrls {
    pub fn new(rtmp_base: &str, http_base: &str, id: Uuid) -> Self {
        Self {
            rtmp_url: rtmp_base.to_string(),
            hls_url: format!("{http_base}/hls/{id}/master.m3u8"),
            dash_url: format!("{http_base}/dash/{id}/manifest.mpd"),
            watch_url: format!("{http_base}/watch/{id}"),
        }
    }
}

/// Body of `POST /api/v1/streams` and `PATCH /api/v1/streams/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamNameBody {
    /// 1 to 200 characters after trimming, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
}

/// A stream just created: the key is shown here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedStream {
    pub id: Uuid,
    pub name: String,
    pub status: StreamStatus,
    pub created_at: DateTime<Utc>,
    /// The id of the stream key (for revoking it).
    pub key_id: Uuid,
    /// The stream key in clear: shown once, only its hash is stored.
    pub stream_key: String,
    /// `rtmp_url/stream_key`: what FFmpeg publishes to.
    pub publish_url: String,
    pub rtmp_url: String,
    pub hls_url: String,
    pub dash_url: String,
    pub watch_url: String,
}

/// A stream as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamSummary {
    pub id: Uuid,
    pub name: String,
    pub status: StreamStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub rtmp_url: String,
    pub hls_url: String,
    pub dash_url: String,
    pub watch_url: String,
}

impl StreamSummary {
    pub fn new(s: &model::Stream, urls: StreamUrls) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            status: s.status.into(),
            created_at: s.created_at,
            started_at: s.started_at,
            ended_at: s.ended_at,
            rtmp_url: urls.rtmp_url,
            hls_url: urls.hls_url,
            dash_url: urls.dash_url,
            watch_url: urls.watch_url,
        }
    }
}

/// One stream in detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamDetail {
    pub id: Uuid,
    pub name: String,
    pub status: StreamStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// A broadcaster is connected to this server right now.
    pub live: bool,
    /// Viewer sessions that have not ended.
    pub concurrent_viewers: u64,
    /// Those viewers by current quality (rendition name).
    pub quality_distribution: std::collections::BTreeMap<String, u32>,
    /// The renditions offered (the stored ladder, else what is live now).
    pub qualities: Vec<Quality>,
    pub rtmp_url: String,
    pub hls_url: String,
    pub dash_url: String,
    pub watch_url: String,
}

/// One page of streams, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamList {
    pub items: Vec<StreamSummary>,
    /// 1-based page number.
    pub page: u32,
    pub per_page: u32,
    /// Streams matching the filter, over all pages.
    pub total: u64,
}

/// `?status=&page=&per_page=` of the stream listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamListQuery {
    /// Only streams in this state.
    pub status: Option<StreamStatus>,
    /// 1-based page number [default: 1].
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page [default: 20].
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
}

/// `?page=&per_page=&active=` of the viewer listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewerListQuery {
    /// Only sessions that have not ended.
    pub active: Option<bool>,
    /// 1-based page number [default: 1].
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page [default: 20].
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
}

/// One rendition of the ladder.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quality {
    /// `source`, `1080p`, `720p`, `480p`, `audio`.
    pub name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    pub frame_rate: Option<f64>,
    pub codec: Option<String>,
    /// While live, for a rendition FFmpeg makes: how far (ms) its parts come
    /// out behind the source's (median over the newest segments): the
    /// latency the transcoder adds for its viewers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind_source_ms: Option<u32>,
}

impl From<QualityLevel> for Quality {
    fn from(q: QualityLevel) -> Self {
        Self {
            name: q.name,
            width: q.width,
            height: q.height,
            bitrate_kbps: q.bitrate_kbps,
            frame_rate: q.frame_rate,
            codec: q.codec,
            behind_source_ms: None,
        }
    }
}

/// A stream key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    pub id: Uuid,
    pub stream_id: Uuid,
    /// The key's public beginning (`sk_` and 8 characters), to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

impl From<&StreamKey> for KeyInfo {
    fn from(k: &StreamKey) -> Self {
        Self {
            id: k.id,
            stream_id: k.stream_id,
            prefix: format!("sk_{}", k.prefix),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            revoked: k.is_revoked(),
        }
    }
}

/// A stream's keys, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyInfo>,
}

/// A key just created: shown here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// The stream key in clear: shown once, only its hash is stored.
    pub stream_key: String,
    pub rtmp_url: String,
    pub publish_url: String,
    /// Keys revoked by this call (`rotate=true`).
    pub revoked_keys: u64,
}

/// `?rotate=` of key creation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateKeyQuery {
    /// Also revoke every other key of the stream (and cut a live publish).
    pub rotate: Option<bool>,
}

/// One viewer's playback session.
#[derive(Debug, Serialize, ToSchema)]
pub struct Viewer {
    pub id: Uuid,
    pub stream_id: Uuid,
    /// `hls`, `ll-hls` or `dash`.
    pub protocol: String,
    pub quality: Option<String>,
    pub user_agent: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub bytes_sent: u64,
    pub active: bool,
    /// Quality changes (requests or beacons).
    pub quality_switches: u32,
    /// Time to first frame the player reported, in ms.
    pub startup_ms: Option<u32>,
    /// Stalls the player reported.
    pub stalls: u32,
    /// Total stall time, in ms.
    pub stall_ms: u64,
    /// Playback errors the player reported.
    pub errors: u32,
}

impl From<ViewerSession> for Viewer {
    fn from(v: ViewerSession) -> Self {
        Self {
            active: v.is_active(),
            id: v.id,
            stream_id: v.stream_id,
            protocol: v.protocol,
            quality: v.quality,
            user_agent: v.user_agent,
            started_at: v.started_at,
            last_seen_at: v.last_seen_at,
            ended_at: v.ended_at,
            bytes_sent: v.bytes_sent,
            quality_switches: v.quality_switches,
            startup_ms: v.startup_ms,
            stalls: v.stalls,
            stall_ms: v.stall_ms,
            errors: v.errors,
        }
    }
}

/// One page of a stream's viewer sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewerList {
    pub stream_id: Uuid,
    pub items: Vec<Viewer>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    /// Sessions that have not ended.
    pub concurrent_viewers: u64,
}

/// What the watch page polls (public, no secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicStatus {
    pub id: Uuid,
    pub name: String,
    pub status: StreamStatus,
}
