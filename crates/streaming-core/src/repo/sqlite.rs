//! SQLite repository (the embedded default), migrations in `migrations/sqlite`.
//!
//! Ids are UUID text, timestamps RFC 3339 UTC text with microseconds (which
//! sorts lexicographically in time order). Every write transaction takes the
//! write lock up front (`BEGIN IMMEDIATE`) so that a read-check-write cannot
//! interleave.
//!
//! Two pools, so that reads are never starved by a stuck writer: reads go to
//! a pool of query-only connections (WAL mode lets them read while another
//! connection, or another process, holds the write lock); every write goes
//! through one write connection that waits at most [`BUSY_TIMEOUT`] for the
//! lock. Before a write the free space under the database is checked
//! ([`super::MIN_FREE_BYTES`]): a full disk is a clear "cannot write" (HTTP
//! 503, status changes retried), never a write that works one time in two.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use uuid::Uuid;

use super::{
    CreatedStream, KeyCheck, Recovered, StreamRepository, db_bound, distribution_json, finite,
    finite_opt, fk_as_not_found, normalize_name, parse_distribution, parse_rollup_distribution,
    rollup_distribution_json, to_count, to_i64, to_u32, to_u64,
};
use crate::CoreError;
use crate::keys;
use crate::model::{
    self, MetricsRollup, Page, PageRequest, QualityLevel, Stream, StreamKey, StreamMetrics,
    StreamStatus, ViewerSession,
};

/// Longest wait for another connection's (or process's) write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections per process.
const READ_CONNECTIONS: u32 = 4;
/// How long a successful write probe is reused by `/ready`.
const PROBE_TTL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct SqliteRepository {
    /// Query-only connections for every read.
    read: SqlitePool,
    /// One connection for every write.
    write: SqlitePool,
    /// The database's directory (free-space checks); `None` in memory.
    dir: Option<PathBuf>,
    /// When the write probe last succeeded.
    probed: Arc<Mutex<Option<Instant>>>,
}

impl SqliteRepository {
    /// Opens (creating if needed) the database and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, CoreError> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(CoreError::db("parse sqlite url"))?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // The write connection stays open: the WAL and its index stay
            // in place for the read connections.
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(CoreError::db("open sqlite database"))?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let (read, dir) = if in_memory {
            // Every connection would see a database of its own.
            (write.clone(), None)
        } else {
            let read = SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(base.clone().pragma("query_only", "ON"))
                .await
                .map_err(CoreError::db("open sqlite database for reading"))?;
            let file = base.get_filename();
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            (read, Some(dir))
        };
        Ok(Self {
            read,
            write,
            dir,
            probed: Arc::default(),
        })
    }

    /// The pool of the write connection (every write goes through it).
    pub fn pool(&self) -> &SqlitePool {
        &self.write
    }

    /// The pool of query-only read connections.
    pub fn read_pool(&self) -> &SqlitePool {
        &self.read
    }

    /// Refuses a write while the disk is (almost) full.
    fn writable(&self) -> Result<(), CoreError> {
        match &self.dir {
            Some(dir) => super::space::check_space(dir),
            None => Ok(()),
        }
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on the write connection).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, CoreError> {
        self.writable()?;
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CoreError::db("begin immediate"))
    }
}

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(super) fn parse_ts(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn parse_uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap_or_default()
}

fn stream_from_row(row: &SqliteRow) -> Stream {
    let status: String = row.get("status");
    Stream {
        id: parse_uuid(row.get::<&str, _>("id")),
        name: row.get("name"),
        status: status.parse().unwrap_or(StreamStatus::Error),
        created_at: parse_ts(row.get("created_at")).unwrap_or_default(),
        started_at: parse_ts(row.get("started_at")),
        ended_at: parse_ts(row.get("ended_at")),
    }
}

fn key_from_row(row: &SqliteRow) -> StreamKey {
    let hash: Vec<u8> = row.get("key_hash");
    let mut h = [0u8; 32];
    if hash.len() == 32 {
        h.copy_from_slice(&hash);
    }
    StreamKey {
        id: parse_uuid(row.get::<&str, _>("id")),
        stream_id: parse_uuid(row.get::<&str, _>("stream_id")),
        prefix: row.get("prefix"),
        hash: h,
        created_at: parse_ts(row.get("created_at")).unwrap_or_default(),
        revoked_at: parse_ts(row.get("revoked_at")),
    }
}

fn viewer_from_row(row: &SqliteRow) -> ViewerSession {
    ViewerSession {
        id: parse_uuid(row.get::<&str, _>("id")),
        stream_id: parse_uuid(row.get::<&str, _>("stream_id")),
        protocol: row.get("protocol"),
        quality: row.get("quality"),
        user_agent: row.get("user_agent"),
        started_at: parse_ts(row.get("started_at")).unwrap_or_default(),
        last_seen_at: parse_ts(row.get("last_seen_at")).unwrap_or_default(),
        ended_at: parse_ts(row.get("ended_at")),
        bytes_sent: to_u64(row.get("bytes_sent")),
        quality_switches: to_count(row.get("quality_switches")),
        startup_ms: to_u32(row.get("startup_ms")),
        stalls: to_count(row.get("stalls")),
        stall_ms: to_u64(row.get("stall_ms")),
        errors: to_count(row.get("errors")),
    }
}

fn metrics_from_row(row: &SqliteRow) -> StreamMetrics {
    StreamMetrics {
        stream_id: parse_uuid(row.get::<&str, _>("stream_id")),
        at: parse_ts(row.get("at")).unwrap_or_default(),
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

fn rollup_from_row(row: &SqliteRow) -> MetricsRollup {
    MetricsRollup {
        stream_id: parse_uuid(row.get::<&str, _>("stream_id")),
        minute: parse_ts(row.get("minute")).unwrap_or_default(),
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

/// The columns of a sample, bound as `?1`…`?11` by [`upsert_sample`].
macro_rules! metrics_columns {
    () => {
        "stream_metrics (stream_id, at, concurrent_viewers, ingest_bitrate_kbps, \
         egress_bitrate_kbps, frames_dropped, segments_produced, quality_distribution, \
         buffering_ratio, errors, transcoder_speed)"
    };
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
    "INSERT INTO ",
    metrics_columns!(),
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    metrics_on_conflict!()
);

/// One sample of a batch: inserts nothing when the stream is gone. (The
/// `WHERE` also keeps SQLite from reading `ON CONFLICT` as a join clause.)
const INSERT_SAMPLE_IF_STREAM: &str = concat!(
    "INSERT INTO ",
    metrics_columns!(),
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 \
     WHERE EXISTS (SELECT 1 FROM streams WHERE id = ?1)",
    metrics_on_conflict!()
);

/// One roll-up; nothing when the stream is gone, every field replaced when
/// the minute is already there.
const UPSERT_ROLLUP: &str = "INSERT INTO stream_metrics_1m (stream_id, minute, samples, \
     viewers_avg, viewers_min, viewers_max, ingest_kbps_avg, ingest_kbps_min, ingest_kbps_max, \
     egress_kbps_avg, buffering_ratio_avg, errors, transcoder_speed_min, quality_distribution) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14 \
     WHERE EXISTS (SELECT 1 FROM streams WHERE id = ?1) \
     ON CONFLICT (stream_id, minute) DO UPDATE SET samples = excluded.samples, \
     viewers_avg = excluded.viewers_avg, viewers_min = excluded.viewers_min, \
     viewers_max = excluded.viewers_max, ingest_kbps_avg = excluded.ingest_kbps_avg, \
     ingest_kbps_min = excluded.ingest_kbps_min, ingest_kbps_max = excluded.ingest_kbps_max, \
     egress_kbps_avg = excluded.egress_kbps_avg, buffering_ratio_avg = excluded.buffering_ratio_avg, \
     errors = excluded.errors, transcoder_speed_min = excluded.transcoder_speed_min, \
     quality_distribution = excluded.quality_distribution";

/// Runs `sql` (one of the sample inserts) for `m`; returns the rows written.
async fn upsert_sample<'e, E: sqlx::SqliteExecutor<'e>>(
    ex: E,
    sql: &'static str,
    m: &StreamMetrics,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(sql)
        .bind(m.stream_id.to_string())
        .bind(ts(model::to_db_precision(m.at)))
        .bind(to_i64(m.concurrent_viewers))
        .bind(to_i64(m.ingest_bitrate_kbps))
        .bind(to_i64(m.egress_bitrate_kbps))
        .bind(to_i64(m.frames_dropped))
        .bind(to_i64(m.segments_produced))
        .bind(distribution_json(&m.quality_distribution))
        .bind(finite(m.buffering_ratio))
        .bind(to_i64(m.errors))
        .bind(finite_opt(m.transcoder_speed))
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

fn quality_from_row(row: &SqliteRow) -> QualityLevel {
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
impl StreamRepository for SqliteRepository {
    fn backend(&self) -> &'static str {
        "sqlite"
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
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO streams (id, name, status, created_at) VALUES (?, ?, ?, ?)")
            .bind(stream.id.to_string())
            .bind(&stream.name)
            .bind(stream.status.as_str())
            .bind(ts(now))
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
        let row = sqlx::query("SELECT * FROM streams WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(CoreError::db("select stream"))?;
        Ok(row.as_ref().map(stream_from_row))
    }

    async fn list_streams(&self, status: Option<StreamStatus>) -> Result<Vec<Stream>, CoreError> {
        let rows = sqlx::query(
            "SELECT * FROM streams WHERE (?1 IS NULL OR status = ?1) ORDER BY created_at, id",
        )
        .bind(status.map(StreamStatus::as_str))
        .fetch_all(&self.read)
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
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM streams WHERE (?1 IS NULL OR status = ?1)")
                .bind(status)
                .fetch_one(&self.read)
                .await
                .map_err(CoreError::db("count streams"))?;
        let rows = sqlx::query(
            "SELECT * FROM streams WHERE (?1 IS NULL OR status = ?1) \
             ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(status)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
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
        self.writable()?;
        let row = sqlx::query("UPDATE streams SET name = ? WHERE id = ? RETURNING *")
            .bind(&name)
            .bind(id.to_string())
            .fetch_optional(&self.write)
            .await
            .map_err(CoreError::db("rename stream"))?
            .ok_or(CoreError::StreamNotFound(id))?;
        Ok(stream_from_row(&row))
    }

    async fn delete_stream(&self, id: Uuid) -> Result<(), CoreError> {
        self.writable()?;
        let done = sqlx::query("DELETE FROM streams WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.write)
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
        let mut tx = self.begin_write().await?;
        let out = insert_key(&mut tx, stream_id).await?;
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(out)
    }

    async fn get_key(&self, key_id: Uuid) -> Result<Option<StreamKey>, CoreError> {
        let row = sqlx::query("SELECT * FROM stream_keys WHERE id = ?")
            .bind(key_id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(CoreError::db("select key"))?;
        Ok(row.as_ref().map(key_from_row))
    }

    async fn list_keys(&self, stream_id: Uuid) -> Result<Vec<StreamKey>, CoreError> {
        let rows =
            sqlx::query("SELECT * FROM stream_keys WHERE stream_id = ? ORDER BY created_at, id")
                .bind(stream_id.to_string())
                .fetch_all(&self.read)
                .await
                .map_err(CoreError::db("list keys"))?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_key(&self, key_id: Uuid) -> Result<StreamKey, CoreError> {
        self.writable()?;
        sqlx::query("UPDATE stream_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(ts(model::now()))
            .bind(key_id.to_string())
            .execute(&self.write)
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
        self.writable()?;
        let done = sqlx::query(
            "UPDATE stream_keys SET revoked_at = ? WHERE stream_id = ? AND revoked_at IS NULL",
        )
        .bind(ts(model::now()))
        .bind(stream_id.to_string())
        .execute(&self.write)
        .await
        .map_err(CoreError::db("revoke stream keys"))?;
        Ok(done.rows_affected())
    }

    async fn check_key(&self, presented: &str) -> Result<KeyCheck, CoreError> {
        let Some(prefix) = keys::prefix_of(presented) else {
            return Ok(KeyCheck::Unknown);
        };
        let rows = sqlx::query("SELECT * FROM stream_keys WHERE prefix = ?")
            .bind(prefix)
            .fetch_all(&self.read)
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
        self.writable()?;
        sqlx::query(
            "INSERT INTO viewer_sessions \
             (id, stream_id, protocol, quality, user_agent, started_at, last_seen_at, ended_at, bytes_sent, \
             quality_switches, startup_ms, stalls, stall_ms, errors) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, quality = excluded.quality, \
             user_agent = excluded.user_agent, last_seen_at = excluded.last_seen_at, \
             ended_at = excluded.ended_at, bytes_sent = excluded.bytes_sent, \
             quality_switches = excluded.quality_switches, startup_ms = excluded.startup_ms, \
             stalls = excluded.stalls, stall_ms = excluded.stall_ms, errors = excluded.errors",
        )
        .bind(s.id.to_string())
        .bind(s.stream_id.to_string())
        .bind(&s.protocol)
        .bind(&s.quality)
        .bind(&s.user_agent)
        .bind(ts(s.started_at))
        .bind(ts(s.last_seen_at))
        .bind(s.ended_at.map(ts))
        .bind(to_i64(s.bytes_sent))
        .bind(i64::from(s.quality_switches))
        .bind(s.startup_ms.map(i64::from))
        .bind(i64::from(s.stalls))
        .bind(to_i64(s.stall_ms))
        .bind(i64::from(s.errors))
        .execute(&self.write)
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
            "SELECT COUNT(*) FROM viewer_sessions WHERE stream_id = ?1 AND (?2 = 0 OR ended_at IS NULL)",
        )
        .bind(stream_id.to_string())
        .bind(active_only)
        .fetch_one(&self.read)
        .await
        .map_err(CoreError::db("count viewer sessions"))?;
        let rows = sqlx::query(
            "SELECT * FROM viewer_sessions WHERE stream_id = ?1 AND (?2 = 0 OR ended_at IS NULL) \
             ORDER BY started_at DESC, id DESC LIMIT ?3 OFFSET ?4",
        )
        .bind(stream_id.to_string())
        .bind(active_only)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
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
            "SELECT COUNT(*) FROM viewer_sessions WHERE stream_id = ? AND ended_at IS NULL",
        )
        .bind(stream_id.to_string())
        .fetch_one(&self.read)
        .await
        .map_err(CoreError::db("count active viewers"))?;
        Ok(to_u64(n))
    }

    async fn record_metrics(&self, m: &StreamMetrics) -> Result<(), CoreError> {
        self.writable()?;
        upsert_sample(&self.write, INSERT_SAMPLE, m)
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
            "SELECT * FROM stream_metrics WHERE stream_id = ?1 AND (?2 IS NULL OR at >= ?2) \
             ORDER BY at LIMIT ?3",
        )
        .bind(stream_id.to_string())
        .bind(since.map(|t| ts(model::to_db_precision(t))))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(CoreError::db("list metrics"))?;
        Ok(rows.iter().map(metrics_from_row).collect())
    }

    async fn record_metrics_batch(&self, samples: &[StreamMetrics]) -> Result<(), CoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        // One transaction, one statement (prepared once, cached by the
        // connection) executed per sample: a 1000-sample batch is one fsync.
        let mut tx = self.begin_write().await?;
        for m in samples {
            upsert_sample(&mut *tx, INSERT_SAMPLE_IF_STREAM, m)
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
            "SELECT * FROM stream_metrics WHERE stream_id = ? AND at >= ? AND at < ? \
             ORDER BY at LIMIT ?",
        )
        .bind(stream_id.to_string())
        .bind(ts(db_bound(from)))
        .bind(ts(db_bound(to)))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(CoreError::db("list metrics range"))?;
        Ok(rows.iter().map(metrics_from_row).collect())
    }

    async fn upsert_rollups(&self, rollups: &[MetricsRollup]) -> Result<(), CoreError> {
        if rollups.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for r in rollups {
            sqlx::query(UPSERT_ROLLUP)
                .bind(r.stream_id.to_string())
                .bind(ts(model::to_db_precision(r.minute)))
                .bind(i64::from(r.samples))
                .bind(finite(r.viewers_avg))
                .bind(to_i64(r.viewers_min))
                .bind(to_i64(r.viewers_max))
                .bind(finite(r.ingest_kbps_avg))
                .bind(to_i64(r.ingest_kbps_min))
                .bind(to_i64(r.ingest_kbps_max))
                .bind(finite(r.egress_kbps_avg))
                .bind(finite(r.buffering_ratio_avg))
                .bind(to_i64(r.errors))
                .bind(finite_opt(r.transcoder_speed_min))
                .bind(rollup_distribution_json(&r.quality_distribution))
                .execute(&mut *tx)
                .await
                .map_err(CoreError::db("upsert rollup"))?;
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
            "SELECT * FROM stream_metrics_1m WHERE stream_id = ? AND minute >= ? AND minute < ? \
             ORDER BY minute LIMIT ?",
        )
        .bind(stream_id.to_string())
        .bind(ts(db_bound(from)))
        .bind(ts(db_bound(to)))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(CoreError::db("list rollups"))?;
        Ok(rows.iter().map(rollup_from_row).collect())
    }

    async fn prune_metrics(&self, before: DateTime<Utc>) -> Result<u64, CoreError> {
        self.writable()?;
        let done = sqlx::query("DELETE FROM stream_metrics WHERE at < ?")
            .bind(ts(db_bound(before)))
            .execute(&self.write)
            .await
            .map_err(CoreError::db("prune metrics"))?;
        Ok(done.rows_affected())
    }

    async fn set_quality_levels(
        &self,
        stream_id: Uuid,
        levels: &[QualityLevel],
    ) -> Result<(), CoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM streams WHERE id = ?")
            .bind(stream_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::db("select stream"))?;
        if exists.is_none() {
            return Err(CoreError::StreamNotFound(stream_id));
        }
        sqlx::query("DELETE FROM quality_levels WHERE stream_id = ?")
            .bind(stream_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("clear quality levels"))?;
        for (position, q) in levels.iter().enumerate() {
            sqlx::query(
                "INSERT INTO quality_levels (stream_id, name, position, width, height, bitrate_kbps, \
                 frame_rate, codec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(stream_id.to_string())
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
            sqlx::query("SELECT * FROM quality_levels WHERE stream_id = ? ORDER BY position")
                .bind(stream_id.to_string())
                .fetch_all(&self.read)
                .await
                .map_err(CoreError::db("list quality levels"))?;
        Ok(rows.iter().map(quality_from_row).collect())
    }

    async fn ping(&self) -> Result<(), CoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
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
        let mut tx = self.begin_write().await?;
        let out = super::recovery::sqlite_end_orphaned(&mut tx, node, model::to_db_precision(now))
            .await?;
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(out)
    }

    async fn probe_write(&self) -> Result<(), CoreError> {
        if super::recovery::fresh(&self.probed, PROBE_TTL) {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO health_probe (id, at) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(ts(model::now()))
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
        if sessions.is_empty() {
            return Ok(());
        }
        // One transaction, one statement (prepared once, cached by the
        // connection) executed per session, in order: the last record wins.
        let mut tx = self.begin_write().await?;
        for s in sessions {
            bind_viewer_session(sqlx::query(UPSERT_VIEWER_SESSION_IF_STREAM), s)
                .execute(&mut *tx)
                .await
                .map_err(CoreError::db("upsert viewer sessions"))?;
        }
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(())
    }

    async fn prune_viewer_sessions(&self, ended_before: DateTime<Utc>) -> Result<u64, CoreError> {
        let done =
            sqlx::query("DELETE FROM viewer_sessions WHERE ended_at IS NOT NULL AND ended_at < ?")
                .bind(ts(db_bound(ended_before)))
                .execute(&self.write)
                .await
                .map_err(CoreError::db("prune viewer sessions"))?;
        Ok(done.rows_affected())
    }
}

impl SqliteRepository {
    /// A transition, recording `node` when the stream goes ACTIVE.
    async fn move_stream(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
        node: Option<&str>,
    ) -> Result<Stream, CoreError> {
        let at = model::to_db_precision(at);
        // The write lock first: no other writer can change the row between
        // the check and the update.
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT * FROM streams WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::db("select stream"))?
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
            "UPDATE streams SET status = ?, started_at = ?, ended_at = ?, node_id = ? WHERE id = ?",
        )
        .bind(to.as_str())
        .bind(started.map(ts))
        .bind(ended.map(ts))
        .bind(node)
        .bind(id.to_string())
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

/// `started_at` / `ended_at` after moving `stream` to `to` at `at`.
pub(super) fn transition_times(
    stream: &Stream,
    to: StreamStatus,
    at: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match to {
        StreamStatus::Active => (Some(at), None),
        StreamStatus::Ended | StreamStatus::Error => (stream.started_at, Some(at)),
        StreamStatus::Pending => (stream.started_at, stream.ended_at),
    }
}

async fn insert_key(
    tx: &mut sqlx::SqliteConnection,
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
        "INSERT INTO stream_keys (id, stream_id, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(key.id.to_string())
    .bind(stream_id.to_string())
    .bind(&key.prefix)
    .bind(&key.hash[..])
    .bind(ts(key.created_at))
    .execute(&mut *tx)
    .await
    .map_err(fk_as_not_found(stream_id, "insert key"))?;
    Ok((key, new.plaintext))
}

/// A viewer session upserted unless its stream is gone (batch writes).
const UPSERT_VIEWER_SESSION_IF_STREAM: &str = "INSERT INTO viewer_sessions \
     (id, stream_id, protocol, quality, user_agent, started_at, last_seen_at, ended_at, bytes_sent, \
     quality_switches, startup_ms, stalls, stall_ms, errors) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14 \
     WHERE EXISTS (SELECT 1 FROM streams WHERE id = ?2) \
     ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, quality = excluded.quality, \
     user_agent = excluded.user_agent, last_seen_at = excluded.last_seen_at, \
     ended_at = excluded.ended_at, bytes_sent = excluded.bytes_sent, \
     quality_switches = excluded.quality_switches, startup_ms = excluded.startup_ms, \
     stalls = excluded.stalls, stall_ms = excluded.stall_ms, errors = excluded.errors";

/// Binds a session's 14 columns, in table order, to `q`.
fn bind_viewer_session<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    s: &'q ViewerSession,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(s.id.to_string())
        .bind(s.stream_id.to_string())
        .bind(&s.protocol)
        .bind(&s.quality)
        .bind(&s.user_agent)
        .bind(ts(s.started_at))
        .bind(ts(s.last_seen_at))
        .bind(s.ended_at.map(ts))
        .bind(to_i64(s.bytes_sent))
        .bind(i64::from(s.quality_switches))
        .bind(s.startup_ms.map(i64::from))
        .bind(i64::from(s.stalls))
        .bind(to_i64(s.stall_ms))
        .bind(i64::from(s.errors))
}
