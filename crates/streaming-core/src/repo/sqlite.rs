//! SQLite repository (the embedded default), migrations in `migrations/sqlite`.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::Row;
use uuid::Uuid;

use super::{CreatedStream, KeyCheck, StreamRepository};
use crate::CoreError;
use crate::keys;
use crate::model::{Stream, StreamKey, StreamStatus};

#[derive(Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
}

impl SqliteRepository {
    /// Opens (creating if needed) the database and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, CoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(CoreError::db("parse sqlite url"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(CoreError::db("open sqlite database"))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: Option<String>) -> Option<DateTime<Utc>> {
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

#[async_trait]
impl StreamRepository for SqliteRepository {
    async fn create_stream(&self, name: &str) -> Result<CreatedStream, CoreError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(CoreError::Invalid(
                "stream name must be 1 to 200 characters".into(),
            ));
        }
        let now = Utc::now();
        let stream = Stream {
            id: Uuid::new_v4(),
            name: name.to_string(),
            status: StreamStatus::Pending,
            created_at: now,
            started_at: None,
            ended_at: None,
        };
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
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
            .fetch_optional(&self.pool)
            .await
            .map_err(CoreError::db("select stream"))?;
        Ok(row.as_ref().map(stream_from_row))
    }

    async fn list_streams(&self, status: Option<StreamStatus>) -> Result<Vec<Stream>, CoreError> {
        let rows = match status {
            Some(s) => {
                sqlx::query("SELECT * FROM streams WHERE status = ? ORDER BY created_at")
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM streams ORDER BY created_at")
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(CoreError::db("list streams"))?;
        Ok(rows.iter().map(stream_from_row).collect())
    }

    async fn transition(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
    ) -> Result<Stream, CoreError> {
        // BEGIN IMMEDIATE semantics: the write lock is taken by the UPDATE's
        // guard on the current status, so a concurrent transition cannot slip in.
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
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
        let (started, ended) = match to {
            StreamStatus::Active => (Some(at), None),
            StreamStatus::Ended | StreamStatus::Error => (stream.started_at, Some(at)),
            StreamStatus::Pending => (stream.started_at, stream.ended_at),
        };
        let done = sqlx::query(
            "UPDATE streams SET status = ?, started_at = ?, ended_at = ? WHERE id = ? AND status = ?",
        )
        .bind(to.as_str())
        .bind(started.map(ts))
        .bind(ended.map(ts))
        .bind(id.to_string())
        .bind(stream.status.as_str())
        .execute(&mut *tx)
        .await
        .map_err(CoreError::db("update stream status"))?;
        if done.rows_affected() != 1 {
            return Err(CoreError::InvalidTransition {
                stream_id: id,
                from: stream.status,
                to,
            });
        }
        tx.commit().await.map_err(CoreError::db("commit"))?;
        stream.status = to;
        stream.started_at = started;
        stream.ended_at = ended;
        Ok(stream)
    }

    async fn add_key(&self, stream_id: Uuid) -> Result<(StreamKey, String), CoreError> {
        let mut tx = self.pool.begin().await.map_err(CoreError::db("begin"))?;
        let exists = sqlx::query("SELECT 1 FROM streams WHERE id = ?")
            .bind(stream_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::db("select stream"))?;
        if exists.is_none() {
            return Err(CoreError::StreamNotFound(stream_id));
        }
        let out = insert_key(&mut tx, stream_id).await?;
        tx.commit().await.map_err(CoreError::db("commit"))?;
        Ok(out)
    }

    async fn list_keys(&self, stream_id: Uuid) -> Result<Vec<StreamKey>, CoreError> {
        let rows = sqlx::query("SELECT * FROM stream_keys WHERE stream_id = ? ORDER BY created_at")
            .bind(stream_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(CoreError::db("list keys"))?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_key(&self, key_id: Uuid) -> Result<StreamKey, CoreError> {
        sqlx::query("UPDATE stream_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(ts(Utc::now()))
            .bind(key_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(CoreError::db("revoke key"))?;
        let row = sqlx::query("SELECT * FROM stream_keys WHERE id = ?")
            .bind(key_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(CoreError::db("select key"))?
            .ok_or(CoreError::KeyNotFound(key_id))?;
        Ok(key_from_row(&row))
    }

    async fn revoke_stream_keys(&self, stream_id: Uuid) -> Result<u64, CoreError> {
        if self.get_stream(stream_id).await?.is_none() {
            return Err(CoreError::StreamNotFound(stream_id));
        }
        let done = sqlx::query(
            "UPDATE stream_keys SET revoked_at = ? WHERE stream_id = ? AND revoked_at IS NULL",
        )
        .bind(ts(Utc::now()))
        .bind(stream_id.to_string())
        .execute(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(CoreError::db("select keys by prefix"))?;
        for row in &rows {
            let key = key_from_row(row);
            if !keys::verify(presented, &key.hash) {
                continue;
            }
            if key.is_revoked() {
                return Ok(KeyCheck::Revoked {
                    stream_id: key.stream_id,
                    key_id: key.id,
                });
            }
            return match self.get_stream(key.stream_id).await? {
                Some(stream) => Ok(KeyCheck::Valid {
                    stream,
                    key_id: key.id,
                }),
                None => Ok(KeyCheck::Unknown),
            };
        }
        Ok(KeyCheck::Unknown)
    }

    async fn ping(&self) -> Result<(), CoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(CoreError::db("ping"))?;
        Ok(())
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
        created_at: Utc::now(),
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
    .map_err(CoreError::db("insert key"))?;
    Ok((key, new.plaintext))
}
