//! Crash recovery and the readiness write probe, for both backends.
//!
//! A node that crashes (`kill -9`, power loss) cannot end its broadcasts:
//! they stay ACTIVE, with their viewer sessions open. At its next start the
//! node ends them (see [`StreamRepository::end_orphaned_streams`]) with the
//! last time they were seen: the newest stored metrics sample (written every
//! `metrics.flush_secs`) or roll-up minute, else the start of the broadcast.
//! Only streams the node itself made ACTIVE (`streams.node_id`) are touched,
//! plus those with no node recorded, so that nodes sharing one PostgreSQL
//! never end each other's live streams.
//!
//! [`StreamRepository::end_orphaned_streams`]: super::StreamRepository::end_orphaned_streams

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::Recovered;
use super::sqlite::{parse_ts, ts};
use crate::CoreError;

/// The `ended_at` of an orphaned stream: the latest sign of life, never
/// before its start, never after `now` (unless it started after `now`).
fn last_seen(
    started: Option<DateTime<Utc>>,
    sample: Option<DateTime<Utc>>,
    minute: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let seen = [sample, minute, started].into_iter().flatten().max();
    let seen = seen.map_or(now, |t| t.min(now));
    match started {
        Some(s) if s > seen => s,
        _ => seen,
    }
}

/// SQLite: inside a `BEGIN IMMEDIATE` transaction.
pub(super) async fn sqlite_end_orphaned(
    tx: &mut sqlx::SqliteConnection,
    node: &str,
    now: DateTime<Utc>,
) -> Result<Recovered, CoreError> {
    let rows = sqlx::query(
        "SELECT s.id, s.started_at, \
         (SELECT MAX(m.at) FROM stream_metrics m WHERE m.stream_id = s.id) AS last_sample, \
         (SELECT MAX(r.minute) FROM stream_metrics_1m r WHERE r.stream_id = s.id) AS last_minute \
         FROM streams s WHERE s.status = 'ACTIVE' AND (s.node_id = ?1 OR s.node_id IS NULL) \
         ORDER BY s.created_at, s.id",
    )
    .bind(node)
    .fetch_all(&mut *tx)
    .await
    .map_err(CoreError::db("select orphaned streams"))?;
    let mut out = Recovered::default();
    for row in rows {
        let id = Uuid::parse_str(row.get::<&str, _>("id")).unwrap_or_default();
        let ended = last_seen(
            parse_ts(row.get("started_at")),
            parse_ts(row.get("last_sample")),
            parse_ts(row.get("last_minute")),
            now,
        );
        sqlx::query("UPDATE streams SET status = 'ENDED', ended_at = ? WHERE id = ?")
            .bind(ts(ended))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("end orphaned stream"))?;
        out.streams.push((id, ended));
    }
    let done = sqlx::query(
        "UPDATE viewer_sessions SET ended_at = last_seen_at WHERE ended_at IS NULL \
         AND stream_id IN (SELECT id FROM streams WHERE status <> 'ACTIVE')",
    )
    .execute(&mut *tx)
    .await
    .map_err(CoreError::db("close orphaned viewer sessions"))?;
    out.sessions_closed = done.rows_affected();
    Ok(out)
}

/// PostgreSQL: inside a transaction; the orphaned rows are locked first.
pub(super) async fn pg_end_orphaned(
    tx: &mut sqlx::PgConnection,
    node: &str,
    now: DateTime<Utc>,
) -> Result<Recovered, CoreError> {
    let rows = sqlx::query(
        "SELECT s.id, s.started_at, \
         (SELECT MAX(m.at) FROM stream_metrics m WHERE m.stream_id = s.id) AS last_sample, \
         (SELECT MAX(r.minute) FROM stream_metrics_1m r WHERE r.stream_id = s.id) AS last_minute \
         FROM streams s WHERE s.status = 'ACTIVE' AND (s.node_id = $1 OR s.node_id IS NULL) \
         ORDER BY s.created_at, s.id FOR UPDATE OF s",
    )
    .bind(node)
    .fetch_all(&mut *tx)
    .await
    .map_err(CoreError::db("select orphaned streams"))?;
    let mut out = Recovered::default();
    for row in rows {
        let id: Uuid = row.get("id");
        let ended = last_seen(
            row.get("started_at"),
            row.get("last_sample"),
            row.get("last_minute"),
            now,
        );
        sqlx::query("UPDATE streams SET status = 'ENDED', ended_at = $1 WHERE id = $2")
            .bind(ended)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("end orphaned stream"))?;
        out.streams.push((id, ended));
    }
    let done = sqlx::query(
        "UPDATE viewer_sessions v SET ended_at = v.last_seen_at FROM streams s \
         WHERE v.stream_id = s.id AND v.ended_at IS NULL AND s.status <> 'ACTIVE'",
    )
    .execute(&mut *tx)
    .await
    .map_err(CoreError::db("close orphaned viewer sessions"))?;
    out.sessions_closed = done.rows_affected();
    Ok(out)
}

/// Whether the write probe succeeded less than `ttl` ago.
pub(super) fn fresh(probed: &Mutex<Option<Instant>>, ttl: Duration) -> bool {
    probed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some_and(|t| t.elapsed() < ttl)
}

/// Remembers a successful write probe.
pub(super) fn mark_fresh(probed: &Mutex<Option<Instant>>) {
    *probed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn last_seen_is_the_latest_sign_of_life_within_bounds() {
        let now = t(100);
        assert_eq!(last_seen(Some(t(0)), Some(t(50)), Some(t(0)), now), t(50));
        assert_eq!(last_seen(Some(t(0)), None, Some(t(60)), now), t(60));
        assert_eq!(last_seen(Some(t(10)), None, None, now), t(10));
        assert_eq!(last_seen(None, None, None, now), now);
        // A sample from the future (clock step) is capped at now.
        assert_eq!(last_seen(Some(t(0)), Some(t(500)), None, now), now);
        // Never before the start.
        assert_eq!(last_seen(Some(t(200)), None, None, now), t(200));
    }
}
