//! PostgreSQL repository (`DATABASE_URL=postgres://…`), migrations in
//! `migrations/postgres`; several server replicas may share one database.
//!
//! Native types: `uuid`, `timestamptz` (microseconds, like the SQLite text
//! form), `bytea`. A transition locks the stream's row (`SELECT … FOR
//! UPDATE`) inside its transaction, so concurrent transitions of one stream,
//! from any number of pools or replicas, are serialised: exactly one of two
//! racing PENDING → ACTIVE moves wins, the other sees ACTIVE and gets
//! [`CoreError::InvalidTransition`].
//!
//! Pool: connections are checked before use and a caller waits at most
//! [`PostgresRepository::ACQUIRE_TIMEOUT`] for one, so an unreachable server
//! turns into a prompt error (HTTP 503) rather than a hang, and the pool
//! reconnects by itself once PostgreSQL is back.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use uuid::Uuid;

use super::sqlite::transition_times;
use super::{
    CreatedStream, KeyCheck, Recovered, StreamRepository, db_bound, distribution_json, finite,
    finite_opt, fk_as_not_found, last_per_key, normalize_name, parse_distribution,
    parse_rollup_distribution, rollup_distribution_json, to_count, to_i64, to_u32, to_u64,
};
use crate::CoreError;
use crate::keys;
use crate::model::{
    self, MetricsRollup, Page, PageRequest, QualityLevel, Stream, StreamKey, StreamMetrics,
    StreamStatus, ViewerSession,
};

#[derive(Clone)]
pub struct PostgresRepository {
    pool: PgPool,
    /// When the write probe last succeeded.
    probed: Arc<Mutex<Option<Instant>>>,
}

/// How long a successful write probe is reused by `/ready`.
const PROBE_TTL: Duration = Duration::from_secs(1);

impl PostgresRepository {
    /// Longest wait for a pooled connection before an operation fails.
    pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
    /// Connections per pool (per server process).
    pub const MAX_CONNECTIONS: u32 = 16;

    /// Connects and runs the migrations (concurrent starts are safe: sqlx
    /// serialises migrations with an advisory lock).
    pub async fn connect(url: &str) -> Result<Self, CoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(CoreError::db("parse postgres url"))?
            .application_name("streaming-server");
        let pool = PgPoolOptions::new()
            .max_connections(Self::MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(Self::ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_with(opts)
            .await
            .map_err(CoreError::db("connect to postgres"))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            probed: Arc::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn stream_from_row(row: &PgRow) -> Stream {
    let status: String = row.get("status");
    Stream {
        id: row.get("id"),
        name: row.get("name"),
        status: status.parse().unwrap_or(StreamStatus::Error),
        created_at: row.get("created_at"),
        started_at: row.get("started_at"),
        ended_at: row.get("ended_at"),
    }
}

fn key_from_row(row: &PgRow) -> StreamKey {
    let hash: Vec<u8> = row.get("key_hash");
    let mut h = [0u8; 32];
    if hash.len() == 32 {
        h.copy_from_slice(&hash);
    }
    StreamKey {
        id: row.get("id"),
        stream_id: row.get("stream_id"),
        prefix: row.get("prefix"),
        hash: h,
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    }
}

fn viewer_from_row(row: &PgRow) -> ViewerSession {
    ViewerSession {
        id: row.get("id"),
        stream_id: row.get("stream_id"),
        protocol: row.get("protocol"),
        quality: row.get("quality"),
        user_agent: row.get("user_agent"),
        started_at: row.get("started_at"),
        last_seen_at: row.get("last_seen_at"),
        ended_at: row.get("ended_at"),
        bytes_sent: to_u64(row.get("bytes_sent")),
        quality_switches: to_count(row.get("quality_switches")),
        startup_ms: to_u32(row.get("startup_ms")),
        stalls: to_count(row.get("stalls")),
        stall_ms: to_u64(row.get("stall_ms")),
        errors: to_count(row.get("errors")),
    }
}

fn metrics_from_row(row: &PgRow) -> StreamMetrics {
    StreamMetrics {
        stream_id: row.get("stream_id"),
        at: row.get("at"),
        concurrent_viewers: to_u64(row.get("concurrent_viewers")),
        ingest_bitrate_kbps: to_u64(row.get("ingest_bitrate_kbps")),
        egress_bitrate_kbps: to_u64(row.get("egress_bitrate_kbps")),
        frames_dropped: to_u64(row.get("frames_dropped")),
        segments_produced: to_u64(row.get("segments_produced")),
        quality_distribution: parse_distribution(row.get("quality_distribution")),
        buffering_ratio: row.get("buffering_ratio"),
        errors: to_u64(row.get("errors")),
        transcoder_speed: row.get("transcoder_speed"),
    }
}

fn rollup_from_row(row: &PgRow) -> MetricsRollup {
    MetricsRollup {
        stream_id: row.get("stream_id"),
        minute: row.get("minute"),
        samples: to_count(row.get("samples")),
        viewers_avg: row.get("viewers_avg"),
        viewers_min: to_u64(row.get("viewers_min")),
        viewers_max: to_u64(row.get("viewers_max")),
        ingest_kbps_avg: row.get("ingest_kbps_avg"),
        ingest_kbps_min: to_u64(row.get("ingest_kbps_min")),
        ingest_kbps_max: to_u64(row.get("ingest_kbps_max")),
        egress_kbps_avg: row.get("egress_kbps_avg"),
        buffering_ratio_avg: row.get("buffering_ratio_avg"),
        errors: to_u64(row.get("errors")),
        transcoder_speed_min: row.get("transcoder_speed_min"),
        quality_distribution: parse_rollup_distribution(row.get("quality_distribution")),
    }
}

/// Replaces every field of the sample already at `(stream_id, at)`.
macro_rules! metrics_on_conflict {
    () => {
        " ON CONFLICT (stream_id, at) DO UPDATE SET concurrent_viewers = excluded.concurrent_viewers, \
         ingest_bitrate_kbps = excluded.ingest_bitrate_kbps, \
         egress_bitrate_kbps = excluded.egress_bitrate_kbps, \
         frames_dropped = excluded.frames_dropped, segments_produced = excluded.segments_produced, \
         quality_distribution = excluded.quality_distribution, \
         buffering_ratio = excluded.buffering_ratio, errors = excluded.errors, \
         transcoder_speed = excluded.transcoder_speed"
    };
}

/// One sample, failing on a missing stream (the FK).
const INSERT_SAMPLE: &str = concat!(
    "INSERT INTO stream_metrics (stream_id, at, concurrent_viewers, ingest_bitrate_kbps, \
     egress_bitrate_kbps, frames_dropped, segments_produced, quality_distribution, \
     buffering_ratio, errors, transcoder_speed) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    metrics_on_conflict!()
);

/// A whole batch in one statement: one array per column, unnested into
/// rows; rows of streams that are gone are left out by the `WHERE`.
const INSERT_SAMPLES_IF_STREAM: &str = concat!(
    "INSERT INTO stream_metrics (stream_id, at, concurrent_viewers, ingest_bitrate_kbps, \
     egress_bitrate_kbps, frames_dropped, segments_produced, quality_distribution, \
     buffering_ratio, errors, transcoder_speed) \
     SELECT u.* FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[], \
     $6::int8[], $7::int8[], $8::text[], $9::float8[], $10::int8[], $11::float8[]) \
     AS u (stream_id, at, concurrent_viewers, ingest_bitrate_kbps, egress_bitrate_kbps, \
     frames_dropped, segments_produced, quality_distribution, buffering_ratio, errors, \
     transcoder_speed) \
     WHERE EXISTS (SELECT 1 FROM streams s WHERE s.id = u.stream_id)",
    metrics_on_conflict!()
);

/// Roll-ups in one statement, like [`INSERT_SAMPLES_IF_STREAM`]; every field
/// replaced when the minute is already there.
const UPSERT_ROLLUPS_IF_STREAM: &str = "INSERT INTO stream_metrics_1m (stream_id, minute, \
     samples, viewers_avg, viewers_min, viewers_max, ingest_kbps_avg, ingest_kbps_min, \
     ingest_kbps_max, egress_kbps_avg, buffering_ratio_avg, errors, transcoder_speed_min, \
     quality_distribution) \
     SELECT u.* FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int8[], $4::float8[], $5::int8[], \
     $6::int8[], $7::float8[], $8::int8[], $9::int8[], $10::float8[], $11::float8[], $12::int8[], \
     $13::float8[], $14::text[]) \
     AS u (stream_id, minute, samples, viewers_avg, viewers_min, viewers_max, ingest_kbps_avg, \
     ingest_kbps_min, ingest_kbps_max, egress_kbps_avg, buffering_ratio_avg, errors, \
     transcoder_speed_min, quality_distribution) \
     WHERE EXISTS (SELECT 1 FROM streams s WHERE s.id = u.stream_id) \
     ON CONFLICT (stream_id, minute) DO UPDATE SET samples = excluded.samples, \
     viewers_avg = excluded.viewers_avg, viewers_min = excluded.viewers_min, \
     viewers_max = excluded.viewers_max, ingest_kbps_avg = excluded.ingest_kbps_avg, \
     ingest_kbps_min = excluded.ingest_kbps_min, ingest_kbps_max = excluded.ingest_kbps_max, \
     egress_kbps_avg = excluded.egress_kbps_avg, buffering_ratio_avg = excluded.buffering_ratio_avg, \
     errors = excluded.errors, transcoder_speed_min = excluded.transcoder_speed_min, \
     quality_distribution = excluded.quality_distribution";

/// Rows per statement of a batch (a bound on one message's size; all chunks
/// go in one transaction).
const CHUNK: usize = 5000;

fn quality_from_row(row: &PgRow) -> QualityLevel {
    QualityLevel {
        name: row.get("name"),
        width: to_u32(row.get("width")),
        height: to_u32(row.get("height")),
        bitrate_kbps: to_u32(row.get("bitrate_kbps")),
        frame_rate: row.get("frame_rate"),
        codec: row.get("codec"),
    }
}

#[async_trait]
impl StreamRepository for PostgresRepository {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create_stream(&self, name: &str) -> Result<CreatedStream, CoreError> {
        let name = normalize_name(name)?;
        let now = model::now();
        let stream = Stream {
            id: Uuid::new_v4(),
            name,
            status: StreamStatus::Pending,
            created_at: now,
            started_at: None,
            ended_at: None,
        };
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        sqlx::query("INSERT INTO streams (id, name, status, created_at) VALUES ($1, $2, $3, $4)")
            .bind(stream.id)
            .bind(&stream.name)
            .bind(stream.status.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("insert stream"))?;
        let (key, plaintext_key) = insert_key(&mut tx, stream.id).await?;
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(CreatedStream {
            stream,
            key,
            plaintext_key,
        })
    }

    async fn get_stream(&self, id: Uuid) -> Result<Option<Stream>, CoreError> {
        let row = sqlx::query("SELECT * FROM streams WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(CoreError::db("select stream"))?;
        Ok(row.as_ref().map(stream_from_row))
    }

    async fn list_streams(&self, status: Option<StreamStatus>) -> Result<Vec<Stream>, CoreError> {
        let rows = sqlx::query(
            "SELECT * FROM streams WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at, id",
        )
        .bind(status.map(StreamStatus::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(CoreError::db("list streams"))?;
        Ok(rows.iter().map(stream_from_row).collect())
    }

    async fn page_streams(
        &self,
        status: Option<StreamStatus>,
        page: PageRequest,
    ) -> Result<Page<Stream>, CoreError> {
        let status = status.map(StreamStatus::as_str);
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM streams WHERE ($1::text IS NULL OR status = $1)",
        )
        .bind(status)
        .fetch_one(&self.pool)
        .await
        .map_err(CoreError::db("count streams"))?;
        let rows = sqlx::query(
            "SELECT * FROM streams WHERE ($1::text IS NULL OR status = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(status)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(CoreError::db("page streams"))?;
        Ok(Page {
            items: rows.iter().map(stream_from_row).collect(),
            page: page.page(),
            per_page: page.per_page(),
            total: to_u64(total),
        })
    }

    async fn rename_stream(&self, id: Uuid, name: &str) -> Result<Stream, CoreError> {
        let name = normalize_name(name)?;
        let row = sqlx::query("UPDATE streams SET name = $1 WHERE id = $2 RETURNING *")
            .bind(&name)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(CoreError::db("rename stream"))?
            .ok_or(CoreError::StreamNotFound(id))?;
        Ok(stream_from_row(&row))
    }

    async fn delete_stream(&self, id: Uuid) -> Result<(), CoreError> {
        let done = sqlx::query("DELETE FROM streams WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(CoreError::db("delete stream"))?;
        if done.rows_affected() == 0 {
            return Err(CoreError::StreamNotFound(id));
        }
        Ok(())
    }

    async fn transition(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
    ) -> Result<Stream, CoreError> {
        self.move_stream(id, to, at, None).await
    }

    async fn add_key(&self, stream_id: Uuid) -> Result<(StreamKey, String), CoreError> {
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        let out = insert_key(&mut tx, stream_id).await?;
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(out)
    }

    async fn get_key(&self, key_id: Uuid) -> Result<Option<StreamKey>, CoreError> {
        let row = sqlx::query("SELECT * FROM stream_keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(CoreError::db("select key"))?;
        Ok(row.as_ref().map(key_from_row))
    }

    async fn list_keys(&self, stream_id: Uuid) -> Result<Vec<StreamKey>, CoreError> {
        let rows =
            sqlx::query("SELECT * FROM stream_keys WHERE stream_id = $1 ORDER BY created_at, id")
                .bind(stream_id)
                .fetch_all(&self.pool)
                .await
                .map_err(CoreError::db("list keys"))?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_key(&self, key_id: Uuid) -> Result<StreamKey, CoreError> {
        sqlx::query("UPDATE stream_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(model::now())
            .bind(key_id)
            .execute(&self.pool)
            .await
            .map_err(CoreError::db("revoke key"))?;
        self.get_key(key_id)
            .await?
            .ok_or(CoreError::KeyNotFound(key_id))
    }

    async fn revoke_stream_keys(&self, stream_id: Uuid) -> Result<u64, CoreError> {
        if self.get_stream(stream_id).await?.is_none() {
            return Err(CoreError::StreamNotFound(stream_id));
        }
        let done = sqlx::query(
            "UPDATE stream_keys SET revoked_at = $1 WHERE stream_id = $2 AND revoked_at IS NULL",
        )
        .bind(model::now())
        .bind(stream_id)
        .execute(&self.pool)
        .await
        .map_err(CoreError::db("revoke stream keys"))?;
        Ok(done.rows_affected())
    }

    async fn check_key(&self, presented: &str) -> Result<KeyCheck, CoreError> {
        let Some(prefix) = keys::prefix_of(presented) else {
            return Ok(KeyCheck::Unknown);
        };
        let rows = sqlx::query("SELECT * FROM stream_keys WHERE prefix = $1")
            .bind(prefix)
            .fetch_all(&self.pool)
            .await
            .map_err(CoreError::db("select keys by prefix"))?;
        let keys: Vec<StreamKey> = rows.iter().map(key_from_row).collect();
        match super::find_match(presented, &keys) {
            Some(key) if key.is_revoked() => Ok(KeyCheck::Revoked {
                stream_id: key.stream_id,
                key_id: key.id,
            }),
            Some(key) => Ok(match self.get_stream(key.stream_id).await? {
                Some(stream) => KeyCheck::Valid {
                    stream,
                    key_id: key.id,
                },
                None => KeyCheck::Unknown,
            }),
            None => Ok(KeyCheck::Unknown),
        }
    }

    async fn upsert_viewer_session(&self, s: &ViewerSession) -> Result<(), CoreError> {
        sqlx::query(
            "INSERT INTO viewer_sessions \
             (id, stream_id, protocol, quality, user_agent, started_at, last_seen_at, ended_at, bytes_sent, \
             quality_switches, startup_ms, stalls, stall_ms, errors) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, quality = excluded.quality, \
             user_agent = excluded.user_agent, last_seen_at = excluded.last_seen_at, \
             ended_at = excluded.ended_at, bytes_sent = excluded.bytes_sent, \
             quality_switches = excluded.quality_switches, startup_ms = excluded.startup_ms, \
             stalls = excluded.stalls, stall_ms = excluded.stall_ms, errors = excluded.errors",
        )
        .bind(s.id)
        .bind(s.stream_id)
        .bind(&s.protocol)
        .bind(&s.quality)
        .bind(&s.user_agent)
        .bind(model::to_db_precision(s.started_at))
        .bind(model::to_db_precision(s.last_seen_at))
        .bind(s.ended_at.map(model::to_db_precision))
        .bind(to_i64(s.bytes_sent))
        .bind(i64::from(s.quality_switches))
        .bind(s.startup_ms.map(i64::from))
        .bind(i64::from(s.stalls))
        .bind(to_i64(s.stall_ms))
        .bind(i64::from(s.errors))
        .execute(&self.pool)
        .await
        .map_err(fk_as_not_found(s.stream_id, "upsert viewer session"))?;
        Ok(())
    }

    async fn page_viewer_sessions(
        &self,
        stream_id: Uuid,
        active_only: bool,
        page: PageRequest,
    ) -> Result<Page<ViewerSession>, CoreError> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM viewer_sessions WHERE stream_id = $1 AND (NOT $2 OR ended_at IS NULL)",
        )
        .bind(stream_id)
        .bind(active_only)
        .fetch_one(&self.pool)
        .await
        .map_err(CoreError::db("count viewer sessions"))?;
        let rows = sqlx::query(
            "SELECT * FROM viewer_sessions WHERE stream_id = $1 AND (NOT $2 OR ended_at IS NULL) \
             ORDER BY started_at DESC, id DESC LIMIT $3 OFFSET $4",
        )
        .bind(stream_id)
        .bind(active_only)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(CoreError::db("page viewer sessions"))?;
        Ok(Page {
            items: rows.iter().map(viewer_from_row).collect(),
            page: page.page(),
            per_page: page.per_page(),
            total: to_u64(total),
        })
    }

    async fn count_active_viewers(&self, stream_id: Uuid) -> Result<u64, CoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM viewer_sessions WHERE stream_id = $1 AND ended_at IS NULL",
        )
        .bind(stream_id)
        .fetch_one(&self.pool)
        .await
        .map_err(CoreError::db("count active viewers"))?;
        Ok(to_u64(n))
    }

    async fn record_metrics(&self, m: &StreamMetrics) -> Result<(), CoreError> {
        sqlx::query(INSERT_SAMPLE)
            .bind(m.stream_id)
            .bind(model::to_db_precision(m.at))
            .bind(to_i64(m.concurrent_viewers))
            .bind(to_i64(m.ingest_bitrate_kbps))
            .bind(to_i64(m.egress_bitrate_kbps))
            .bind(to_i64(m.frames_dropped))
            .bind(to_i64(m.segments_produced))
            .bind(distribution_json(&m.quality_distribution))
            .bind(finite(m.buffering_ratio))
            .bind(to_i64(m.errors))
            .bind(finite_opt(m.transcoder_speed))
            .execute(&self.pool)
            .await
            .map_err(fk_as_not_found(m.stream_id, "record metrics"))?;
        Ok(())
    }

    async fn list_metrics(
        &self,
        stream_id: Uuid,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<StreamMetrics>, CoreError> {
        let rows = sqlx::query(
            "SELECT * FROM stream_metrics WHERE stream_id = $1 \
             AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY at LIMIT $3",
        )
        .bind(stream_id)
        .bind(since.map(model::to_db_precision))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(CoreError::db("list metrics"))?;
        Ok(rows.iter().map(metrics_from_row).collect())
    }

    async fn record_metrics_batch(&self, samples: &[StreamMetrics]) -> Result<(), CoreError> {
        // One row per key: a statement may not upsert one row twice.
        let samples = last_per_key(samples, |m| (m.stream_id, model::to_db_precision(m.at)));
        if samples.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        for chunk in samples.chunks(CHUNK) {
            sqlx::query(INSERT_SAMPLES_IF_STREAM)
                .bind(chunk.iter().map(|m| m.stream_id).collect::<Vec<_>>())
                .bind(
                    chunk
                        .iter()
                        .map(|m| model::to_db_precision(m.at))
                        .collect::<Vec<_>>(),
                )
                .bind(column(chunk, |m| to_i64(m.concurrent_viewers)))
                .bind(column(chunk, |m| to_i64(m.ingest_bitrate_kbps)))
                .bind(column(chunk, |m| to_i64(m.egress_bitrate_kbps)))
                .bind(column(chunk, |m| to_i64(m.frames_dropped)))
                .bind(column(chunk, |m| to_i64(m.segments_produced)))
                .bind(
                    chunk
                        .iter()
                        .map(|m| distribution_json(&m.quality_distribution))
                        .collect::<Vec<_>>(),
                )
                .bind(
                    chunk
                        .iter()
                        .map(|m| finite(m.buffering_ratio))
                        .collect::<Vec<_>>(),
                )
                .bind(column(chunk, |m| to_i64(m.errors)))
                .bind(
                    chunk
                        .iter()
                        .map(|m| finite_opt(m.transcoder_speed))
                        .collect::<Vec<_>>(),
                )
                .execute(&mut *tx)
                .await
                .map_err(CoreError::db("record metrics batch"))?;
        }
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(())
    }

    async fn list_metrics_range(
        &self,
        stream_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StreamMetrics>, CoreError> {
        let rows = sqlx::query(
            "SELECT * FROM stream_metrics WHERE stream_id = $1 AND at >= $2 AND at < $3 \
             ORDER BY at LIMIT $4",
        )
        .bind(stream_id)
        .bind(db_bound(from))
        .bind(db_bound(to))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(CoreError::db("list metrics range"))?;
        Ok(rows.iter().map(metrics_from_row).collect())
    }

    async fn upsert_rollups(&self, rollups: &[MetricsRollup]) -> Result<(), CoreError> {
        let rollups = last_per_key(rollups, |r| (r.stream_id, model::to_db_precision(r.minute)));
        if rollups.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        for chunk in rollups.chunks(CHUNK) {
            sqlx::query(UPSERT_ROLLUPS_IF_STREAM)
                .bind(chunk.iter().map(|r| r.stream_id).collect::<Vec<_>>())
                .bind(
                    chunk
                        .iter()
                        .map(|r| model::to_db_precision(r.minute))
                        .collect::<Vec<_>>(),
                )
                .bind(column(chunk, |r| i64::from(r.samples)))
                .bind(column(chunk, |r| finite(r.viewers_avg)))
                .bind(column(chunk, |r| to_i64(r.viewers_min)))
                .bind(column(chunk, |r| to_i64(r.viewers_max)))
                .bind(column(chunk, |r| finite(r.ingest_kbps_avg)))
                .bind(column(chunk, |r| to_i64(r.ingest_kbps_min)))
                .bind(column(chunk, |r| to_i64(r.ingest_kbps_max)))
                .bind(column(chunk, |r| finite(r.egress_kbps_avg)))
                .bind(column(chunk, |r| finite(r.buffering_ratio_avg)))
                .bind(column(chunk, |r| to_i64(r.errors)))
                .bind(column(chunk, |r| finite_opt(r.transcoder_speed_min)))
                .bind(column(chunk, |r| {
                    rollup_distribution_json(&r.quality_distribution)
                }))
                .execute(&mut *tx)
                .await
                .map_err(CoreError::db("upsert rollups"))?;
        }
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(())
    }

    async fn list_rollups(
        &self,
        stream_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<MetricsRollup>, CoreError> {
        let rows = sqlx::query(
            "SELECT * FROM stream_metrics_1m WHERE stream_id = $1 AND minute >= $2 \
             AND minute < $3 ORDER BY minute LIMIT $4",
        )
        .bind(stream_id)
        .bind(db_bound(from))
        .bind(db_bound(to))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(CoreError::db("list rollups"))?;
        Ok(rows.iter().map(rollup_from_row).collect())
    }

    async fn prune_metrics(&self, before: DateTime<Utc>) -> Result<u64, CoreError> {
        let done = sqlx::query("DELETE FROM stream_metrics WHERE at < $1")
            .bind(db_bound(before))
            .execute(&self.pool)
            .await
            .map_err(CoreError::db("prune metrics"))?;
        Ok(done.rows_affected())
    }

    async fn set_quality_levels(
        &self,
        stream_id: Uuid,
        levels: &[QualityLevel],
    ) -> Result<(), CoreError> {
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        let exists = sqlx::query("SELECT 1 FROM streams WHERE id = $1 FOR UPDATE")
            .bind(stream_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::db("lock stream"))?;
        if exists.is_none() {
            return Err(CoreError::StreamNotFound(stream_id));
        }
        sqlx::query("DELETE FROM quality_levels WHERE stream_id = $1")
            .bind(stream_id)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("clear quality levels"))?;
        for (position, q) in levels.iter().enumerate() {
            sqlx::query(
                "INSERT INTO quality_levels (stream_id, name, position, width, height, bitrate_kbps, \
                 frame_rate, codec) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(stream_id)
            .bind(&q.name)
            .bind(to_i64(position as u64))
            .bind(q.width.map(i64::from))
            .bind(q.height.map(i64::from))
            .bind(q.bitrate_kbps.map(i64::from))
            .bind(q.frame_rate)
            .bind(&q.codec)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    CoreError::Invalid(format!("quality level {:?} listed twice", q.name))
                }
                _ => CoreError::Database {
                    context: "insert quality level",
                    source: e,
                },
            })?;
        }
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(())
    }

    async fn list_quality_levels(&self, stream_id: Uuid) -> Result<Vec<QualityLevel>, CoreError> {
        let rows =
            sqlx::query("SELECT * FROM quality_levels WHERE stream_id = $1 ORDER BY position")
                .bind(stream_id)
                .fetch_all(&self.pool)
                .await
                .map_err(CoreError::db("list quality levels"))?;
        Ok(rows.iter().map(quality_from_row).collect())
    }

    async fn ping(&self) -> Result<(), CoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(CoreError::db("ping"))?;
        Ok(())
    }

    async fn transition_on_node(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
        node: Option<&str>,
    ) -> Result<Stream, CoreError> {
        self.move_stream(id, to, at, node).await
    }

    async fn end_orphaned_streams(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Recovered, CoreError> {
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        let out =
            super::recovery::pg_end_orphaned(&mut tx, node, model::to_db_precision(now)).await?;
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(out)
    }

    async fn probe_write(&self) -> Result<(), CoreError> {
        if super::recovery::fresh(&self.probed, PROBE_TTL) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        sqlx::query(
            "INSERT INTO health_probe (id, at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(model::now())
        .execute(&mut *tx)
        .await
        .map_err(CoreError::db("write probe"))?;
        tx.commit()
            .await
            .map_err(CoreError::db("commit write probe"))?;
        super::recovery::mark_fresh(&self.probed);
        Ok(())
    }

    async fn upsert_viewer_sessions(&self, sessions: &[ViewerSession]) -> Result<(), CoreError> {
        // One row per id: a statement may not upsert one row twice.
        let sessions = last_per_key(sessions, |s| s.id);
        if sessions.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        for chunk in sessions.chunks(CHUNK) {
            let at = |f: fn(&ViewerSession) -> DateTime<Utc>| {
                column(chunk, |s| model::to_db_precision(f(s)))
            };
            sqlx::query(UPSERT_VIEWER_SESSIONS_IF_STREAM)
                .bind(column(chunk, |s| s.id))
                .bind(column(chunk, |s| s.stream_id))
                .bind(column(chunk, |s| s.protocol.clone()))
                .bind(column(chunk, |s| s.quality.clone()))
                .bind(column(chunk, |s| s.user_agent.clone()))
                .bind(at(|s| s.started_at))
                .bind(at(|s| s.last_seen_at))
                .bind(column(chunk, |s| s.ended_at.map(model::to_db_precision)))
                .bind(column(chunk, |s| to_i64(s.bytes_sent)))
                .bind(column(chunk, |s| i64::from(s.quality_switches)))
                .bind(column(chunk, |s| s.startup_ms.map(i64::from)))
                .bind(column(chunk, |s| i64::from(s.stalls)))
                .bind(column(chunk, |s| to_i64(s.stall_ms)))
                .bind(column(chunk, |s| i64::from(s.errors)))
                .execute(&mut *tx)
                .await
                .map_err(CoreError::db("upsert viewer sessions"))?;
        }
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(())
    }

    async fn prune_viewer_sessions(&self, ended_before: DateTime<Utc>) -> Result<u64, CoreError> {
        let done =
            sqlx::query("DELETE FROM viewer_sessions WHERE ended_at IS NOT NULL AND ended_at < $1")
                .bind(db_bound(ended_before))
                .execute(&self.pool)
                .await
                .map_err(CoreError::db("prune viewer sessions"))?;
        Ok(done.rows_affected())
    }
}

impl PostgresRepository {
    /// A transition, recording `node` when the stream goes ACTIVE.
    async fn move_stream(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
        node: Option<&str>,
    ) -> Result<Stream, CoreError> {
        let at = model::to_db_precision(at);
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        // The row lock serialises transitions of this stream across every
        // connection of every replica until this transaction ends.
        let row = sqlx::query("SELECT * FROM streams WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::db("lock stream"))?
            .ok_or(CoreError::StreamNotFound(id))?;
        let mut stream = stream_from_row(&row);
        if !stream.status.can_transition_to(to) {
            return Err(CoreError::InvalidTransition {
                stream_id: id,
                from: stream.status,
                to,
            });
        }
        let (started, ended) = transition_times(&stream, to, at);
        let node = match to {
            StreamStatus::Active => node.map(str::to_string),
            _ => row.get::<Option<String>, _>("node_id"),
        };
        sqlx::query(
            "UPDATE streams SET status = $1, started_at = $2, ended_at = $3, node_id = $4 \
             WHERE id = $5",
        )
        .bind(to.as_str())
        .bind(started)
        .bind(ended)
        .bind(node)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(CoreError::db("update stream status"))?;
        tx.commit().await.map_err(CoreError::db("commit"))?;
        stream.status = to;
        stream.started_at = started;
        stream.ended_at = ended;
        Ok(stream)
    }
}

/// One column of a batch, as the array bound for `UNNEST`.
fn column<T, V>(items: &[&T], f: impl Fn(&T) -> V) -> Vec<V> {
    items.iter().map(|i| f(i)).collect()
}

async fn insert_key(
    tx: &mut sqlx::PgConnection,
    stream_id: Uuid,
) -> Result<(StreamKey, String), CoreError> {
    let new = keys::generate();
    let key = StreamKey {
        id: Uuid::new_v4(),
        stream_id,
        prefix: new.prefix,
        hash: new.hash,
        created_at: model::now(),
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO stream_keys (id, stream_id, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.id)
    .bind(stream_id)
    .bind(&key.prefix)
    .bind(&key.hash[..])
    .bind(key.created_at)
    .execute(&mut *tx)
    .await
    .map_err(fk_as_not_found(stream_id, "insert key"))?;
    Ok((key, new.plaintext))
}

/// Viewer sessions in one statement, like [`INSERT_SAMPLES_IF_STREAM`]:
/// every field but `stream_id` and `started_at` replaced when the id exists.
const UPSERT_VIEWER_SESSIONS_IF_STREAM: &str = "INSERT INTO viewer_sessions (id, stream_id, \
     protocol, quality, user_agent, started_at, last_seen_at, ended_at, bytes_sent, \
     quality_switches, startup_ms, stalls, stall_ms, errors) \
     SELECT u.* FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
     $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::int8[], $10::int8[], \
     $11::int8[], $12::int8[], $13::int8[], $14::int8[]) \
     AS u (id, stream_id, protocol, quality, user_agent, started_at, last_seen_at, ended_at, \
     bytes_sent, quality_switches, startup_ms, stalls, stall_ms, errors) \
     WHERE EXISTS (SELECT 1 FROM streams s WHERE s.id = u.stream_id) \
     ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, quality = excluded.quality, \
     user_agent = excluded.user_agent, last_seen_at = excluded.last_seen_at, \
     ended_at = excluded.ended_at, bytes_sent = excluded.bytes_sent, \
     quality_switches = excluded.quality_switches, startup_ms = excluded.startup_ms, \
     stalls = excluded.stalls, stall_ms = excluded.stall_ms, errors = excluded.errors";
