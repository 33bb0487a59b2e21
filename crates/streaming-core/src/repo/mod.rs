//! Repositories: the persistence boundary of the domain.
//!
//! One trait, [`StreamRepository`], and two implementations that behave
//! identically: [`SqliteRepository`] (the embedded default, a file under the
//! data dir) and [`PostgresRepository`] (`DATABASE_URL=postgres://…`, for
//! several server replicas sharing one database). Each has its own migrations
//! folder (`migrations/sqlite`, `migrations/postgres`), run at connect.
//!
//! Shared rules, checked by the contract tests in `tests/repo_contract.rs`:
//! - stream keys are stored as SHA-256 plus a public prefix, never in clear;
//! - listings are ordered newest first, ties broken by id, and paged with
//!   [`PageRequest`]; totals count every matching row;
//! - a missing parent row is [`CoreError::StreamNotFound`], never a raw
//!   database error;
//! - [`StreamRepository::transition`] is atomic: on PostgreSQL the stream row
//!   is locked (`SELECT … FOR UPDATE`) so that two replicas can never both make
//!   one stream ACTIVE; on SQLite the write lock is taken up front
//!   (`BEGIN IMMEDIATE`);
//! - [`StreamRepository::transition_on_node`] records which node made a
//!   stream ACTIVE, and [`StreamRepository::end_orphaned_streams`] ends, at
//!   start, the streams a crash of that node left ACTIVE (crash recovery);
//! - [`StreamRepository::probe_write`] commits a real write (readiness);
//! - a database that cannot take a write right now (unreachable, disk full,
//!   read-only, locked) fails with an error [`is_unavailable`] recognises, so
//!   that callers retry (status changes) or answer 503 (the API).

mod postgres;
mod recovery;
pub mod scratch;
mod space;
mod sqlite;

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::CoreError;
use crate::model::{
    MetricsRollup, Page, PageRequest, QualityLevel, Stream, StreamKey, StreamMetrics, StreamStatus,
    ViewerSession,
};

pub use postgres::PostgresRepository;
pub use sqlite::SqliteRepository;

/// A stream just created, with its first key in clear (shown once).
pub struct CreatedStream {
    pub stream: Stream,
    pub key: StreamKey,
    pub plaintext_key: String,
}

/// The result of checking a presented key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyCheck {
    Valid { stream: Stream, key_id: Uuid },
    Revoked { stream_id: Uuid, key_id: Uuid },
    Unknown,
}

/// Longest stream name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Validates and normalises a stream name (trimmed, 1 to 200 characters, no
/// control characters).
pub fn normalize_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(CoreError::Invalid(format!(
            "stream name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(CoreError::Invalid(
            "stream name must not contain control characters".into(),
        ));
    }
    Ok(name.to_string())
}

#[async_trait]
pub trait StreamRepository: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    async fn create_stream(&self, name: &str) -> Result<CreatedStream, CoreError>;
    async fn get_stream(&self, id: Uuid) -> Result<Option<Stream>, CoreError>;
    /// Every stream (optionally of one status), oldest first; for the CLI.
    async fn list_streams(&self, status: Option<StreamStatus>) -> Result<Vec<Stream>, CoreError>;
    /// One page of streams (optionally of one status), newest first.
    async fn page_streams(
        &self,
        status: Option<StreamStatus>,
        page: PageRequest,
    ) -> Result<Page<Stream>, CoreError>;
    async fn rename_stream(&self, id: Uuid, name: &str) -> Result<Stream, CoreError>;
    /// Deletes a stream with its keys, viewer sessions, metrics and qualities.
    async fn delete_stream(&self, id: Uuid) -> Result<(), CoreError>;
    /// Moves a stream along the state machine; invalid moves are a typed error
    /// ([`CoreError::InvalidTransition`]), also when another replica moved it first.
    async fn transition(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
    ) -> Result<Stream, CoreError>;

    async fn add_key(&self, stream_id: Uuid) -> Result<(StreamKey, String), CoreError>;
    async fn get_key(&self, key_id: Uuid) -> Result<Option<StreamKey>, CoreError>;
    async fn list_keys(&self, stream_id: Uuid) -> Result<Vec<StreamKey>, CoreError>;
    async fn revoke_key(&self, key_id: Uuid) -> Result<StreamKey, CoreError>;
    /// Revokes every key of a stream (what `keys revoke STREAM_ID` does).
    async fn revoke_stream_keys(&self, stream_id: Uuid) -> Result<u64, CoreError>;
    /// Finds the stream a presented key belongs to (constant-time hash check).
    async fn check_key(&self, presented: &str) -> Result<KeyCheck, CoreError>;

    /// Inserts or replaces a viewer session (opened, refreshed or closed).
    async fn upsert_viewer_session(&self, session: &ViewerSession) -> Result<(), CoreError>;
    /// One page of a stream's viewer sessions, newest first.
    async fn page_viewer_sessions(
        &self,
        stream_id: Uuid,
        active_only: bool,
        page: PageRequest,
    ) -> Result<Page<ViewerSession>, CoreError>;
    /// Sessions of a stream that have not ended.
    async fn count_active_viewers(&self, stream_id: Uuid) -> Result<u64, CoreError>;

    /// Stores one metrics sample (a second sample at the same instant replaces it).
    async fn record_metrics(&self, sample: &StreamMetrics) -> Result<(), CoreError>;
    /// Samples of a stream at or after `since`, oldest first, at most `limit`.
    async fn list_metrics(
        &self,
        stream_id: Uuid,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<StreamMetrics>, CoreError>;

    /// Stores 1-second samples in one transaction (a sample at an existing
    /// `(stream_id, at)` replaces it, every field included; of several samples
    /// with one key in the batch the last wins). Samples of streams that do
    /// not exist (any more) are skipped silently: a stream deleted while its
    /// samples were buffered never fails the batch of the others.
    async fn record_metrics_batch(&self, samples: &[StreamMetrics]) -> Result<(), CoreError>;
    /// Samples with `from <= at < to`, oldest first, at most `limit`.
    async fn list_metrics_range(
        &self,
        stream_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StreamMetrics>, CoreError>;
    /// Inserts or replaces 1-minute roll-ups (key `(stream_id, minute)`, every
    /// field replaced), in one transaction; roll-ups of streams that do not
    /// exist are skipped silently, like samples in
    /// [`StreamRepository::record_metrics_batch`].
    async fn upsert_rollups(&self, rollups: &[MetricsRollup]) -> Result<(), CoreError>;
    /// Roll-ups with `from <= minute < to`, oldest first, at most `limit`.
    async fn list_rollups(
        &self,
        stream_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<MetricsRollup>, CoreError>;
    /// Deletes raw 1-second samples with `at < before`, of every stream
    /// (roll-ups stay); returns how many went.
    async fn prune_metrics(&self, before: DateTime<Utc>) -> Result<u64, CoreError>;

    /// Replaces the ladder a stream offers (in the given order).
    async fn set_quality_levels(
        &self,
        stream_id: Uuid,
        levels: &[QualityLevel],
    ) -> Result<(), CoreError>;
    async fn list_quality_levels(&self, stream_id: Uuid) -> Result<Vec<QualityLevel>, CoreError>;

    async fn ping(&self) -> Result<(), CoreError>;

    /// [`StreamRepository::transition`], also recording `node` (a node id,
    /// see [`crate::recovery::node_id`]) as the node that made the stream
    /// ACTIVE when `to` is ACTIVE (`None` records no node). The status writer
    /// of ingest moves streams with this.
    async fn transition_on_node(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
        node: Option<&str>,
    ) -> Result<Stream, CoreError>;

    /// Crash recovery, run once at start before any publish is accepted:
    /// every stream left ACTIVE by `node` (or by no recorded node) is ENDED
    /// with `ended_at` = the last time it was seen (its newest stored metrics
    /// sample or roll-up minute, else `started_at`, never after `now`), and
    /// the open viewer sessions of streams that are not ACTIVE any more are
    /// closed with `ended_at` = their `last_seen_at`. Streams other nodes
    /// keep ACTIVE are left alone. One transaction.
    async fn end_orphaned_streams(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Recovered, CoreError>;

    /// Readiness: commits one small write in a transaction (SQLite also
    /// refuses when its filesystem has almost no free space left, see
    /// [`MIN_FREE_BYTES`]). An error means the database cannot take a write
    /// right now. A success is reused for up to a second.
    async fn probe_write(&self) -> Result<(), CoreError>;

    /// Inserts or replaces viewer sessions in one transaction (what the
    /// collector saves each second: sessions confirmed, sessions ended). Of
    /// several records of one id in the batch the last wins; records of
    /// streams that do not exist (any more) are skipped silently, like
    /// samples in [`StreamRepository::record_metrics_batch`].
    async fn upsert_viewer_sessions(&self, sessions: &[ViewerSession]) -> Result<(), CoreError>;
    /// Deletes ended viewer sessions with `ended_at < ended_before`, of every
    /// stream (open sessions stay); returns how many went.
    async fn prune_viewer_sessions(&self, ended_before: DateTime<Utc>) -> Result<u64, CoreError>;
}

/// What [`StreamRepository::end_orphaned_streams`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recovered {
    /// The streams ended, each with the `ended_at` it was given, oldest
    /// stream first.
    pub streams: Vec<(Uuid, DateTime<Utc>)>,
    /// Viewer sessions closed.
    pub sessions_closed: u64,
}

/// Below this much free space on the SQLite database's filesystem, writes
/// are refused as "disk full" (a WAL commit may still fit into space the
/// WAL already holds, so a failing write alone would not tell).
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

pub use space::free_bytes;

/// Whether a database error means "the database cannot take this right now"
/// (retry later; HTTP 503) rather than a bug (HTTP 500): the pool timed out
/// or closed, the connection broke, PostgreSQL is shutting down, starting,
/// out of connections or out of disk (SQLSTATE class 08, 53, 57P01–57P03,
/// 58030, 25006), SQLite is busy, locked, read-only, failing I/O, full or
/// cannot open the file (primary result codes 5, 6, 8, 10, 13, 14; sqlx
/// reports the extended code, whose low byte is the primary one).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let primary = code.parse::<i64>().map_or(0, |c| c & 0xff);
                matches!(primary, 5 | 6 | 8 | 10 | 13 | 14)
            } else {
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(
                        code.as_ref(),
                        "57P01" | "57P02" | "57P03" | "58030" | "25006"
                    )
            }
        }
        _ => false,
    }
}

/// [`is_unavailable`] of a domain error (only database errors can be).
pub fn is_unavailable_error(e: &CoreError) -> bool {
    matches!(e, CoreError::Database { source, .. } if is_unavailable(source))
}

pub type DynRepository = Arc<dyn StreamRepository>;

/// Opens the repository named by a `DATABASE_URL`: `sqlite:PATH` or
/// `postgres://…` (also `postgresql://…`). Runs the migrations.
pub async fn connect(url: &str) -> Result<DynRepository, CoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteRepository::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresRepository::connect(url).await?))
    } else {
        Err(CoreError::Invalid(format!(
            "unsupported DATABASE_URL scheme {:?}; use sqlite:PATH or postgres://USER@HOST:PORT/DB",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Maps a foreign-key violation to "stream not found" (the only parent any
/// table has), every other error to [`CoreError::Database`].
pub(crate) fn fk_as_not_found(
    stream_id: Uuid,
    context: &'static str,
) -> impl FnOnce(sqlx::Error) -> CoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            CoreError::StreamNotFound(stream_id)
        }
        _ => CoreError::Database { context, source: e },
    }
}

/// The stored key that `presented` hashes to, if any. Every candidate is
/// checked in constant time; the loop does not stop early.
pub(crate) fn find_match<'a>(
    presented: &str,
    candidates: &'a [StreamKey],
) -> Option<&'a StreamKey> {
    let mut found = None;
    for key in candidates {
        if crate::keys::verify(presented, &key.hash) && found.is_none() {
            found = Some(key);
        }
    }
    found
}

/// Clamps a count for a signed 64-bit column.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reads a signed 64-bit column back as a count (negative values read as 0).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Reads an optional 32-bit column (stored as a 64-bit integer) back.
pub(crate) fn to_u32(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

/// Reads a 32-bit count (stored as a 64-bit integer) back, saturating.
pub(crate) fn to_count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// A float as stored: SQLite keeps no NaN (it becomes NULL), so both backends
/// store non-finite values as 0.
pub(crate) fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// An optional float as stored: non-finite values are stored as NULL.
pub(crate) fn finite_opt(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// The JSON text of a sample's viewers-by-quality map (`{"720p":3,…}`).
pub(crate) fn distribution_json(d: &BTreeMap<String, u32>) -> String {
    serde_json::to_string(d).unwrap_or_else(|_| "{}".into())
}

/// Reads a sample's viewers-by-quality map back (unreadable text reads as
/// empty: a metrics row is never lost over its distribution).
pub(crate) fn parse_distribution(json: &str) -> BTreeMap<String, u32> {
    serde_json::from_str(json).unwrap_or_default()
}

/// The JSON text of a roll-up's average-viewers-by-quality map (non-finite
/// averages stored as 0, JSON has no NaN).
pub(crate) fn rollup_distribution_json(d: &BTreeMap<String, f64>) -> String {
    let d: BTreeMap<&str, f64> = d.iter().map(|(k, v)| (k.as_str(), finite(*v))).collect();
    serde_json::to_string(&d).unwrap_or_else(|_| "{}".into())
}

/// Reads a roll-up's map back. The numbers are parsed by the standard
/// library from their raw JSON text (correctly rounded), so every `f64`
/// reads back bit for bit as written.
pub(crate) fn parse_rollup_distribution(json: &str) -> BTreeMap<String, f64> {
    let raw: BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(json).unwrap_or_default();
    raw.into_iter()
        .filter_map(|(k, v)| v.get().trim().parse::<f64>().ok().map(|v| (k, v)))
        .collect()
}

/// The items of a batch that are stored: the last one of each key, in batch
/// order. (One PostgreSQL `INSERT … ON CONFLICT DO UPDATE` may not touch a row
/// twice; a sequential upsert keeps the last, and so does this.)
pub(crate) fn last_per_key<T, K: Eq + Hash>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen = HashSet::with_capacity(items.len());
    let mut out: Vec<&T> = items.iter().rev().filter(|i| seen.insert(key(i))).collect();
    out.reverse();
    out
}

/// A range bound in stored precision: rounded *up* to the microsecond, so that
/// `at >= bound` and `at < bound` select exactly the stored instants that
/// compare so with the exact `t`.
pub(crate) fn db_bound(t: DateTime<Utc>) -> DateTime<Utc> {
    let stored = crate::model::to_db_precision(t);
    if stored < t {
        stored
            .checked_add_signed(chrono::Duration::microseconds(1))
            .unwrap_or(stored)
    } else {
        stored
    }
}
