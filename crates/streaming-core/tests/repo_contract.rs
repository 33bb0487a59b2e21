//! The repository contract, run on both backends: SQLite in a temp dir and
//! PostgreSQL (a scratch database on `DATABASE_URL`, else 127.0.0.1:5432).
//! Every case is one function taking a repository; the macro at the bottom
//! makes a `sqlite_*` and a `postgres_*` test of each.

use std::sync::Arc;

use chrono::{Duration, Timelike, Utc};
use streaming_core::CoreError;
use streaming_core::model::{
    MetricsRollup, PageRequest, QualityLevel, StreamMetrics, StreamStatus, ViewerSession,
    to_db_precision,
};
use streaming_core::repo::scratch::ScratchDatabase;
use streaming_core::repo::{self, DynRepository, KeyCheck, StreamRepository};
use uuid::Uuid;

/// Keeps the database alive for the test's duration.
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] ScratchDatabase),
}

async fn sqlite() -> (Guard, DynRepository) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let repo = repo::connect(&url).await.unwrap();
    assert_eq!(repo.backend(), "sqlite");
    (Guard::Sqlite(dir), repo)
}

async fn postgres() -> (Guard, DynRepository) {
    let db = ScratchDatabase::create().await;
    let repo = repo::connect(db.url()).await.unwrap();
    assert_eq!(repo.backend(), "postgres");
    (Guard::Postgres(db), repo)
}

fn page(p: u32, n: u32) -> PageRequest {
    PageRequest::new(p, n).unwrap()
}

async fn streams_crud_and_paging(repo: DynRepository) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            repo.create_stream(&format!("  show {i}  "))
                .await
                .unwrap()
                .stream
                .id,
        );
    }
    let s = repo.get_stream(ids[0]).await.unwrap().unwrap();
    assert_eq!(s.name, "show 0", "names are trimmed");
    assert_eq!(s.status, StreamStatus::Pending);
    let created = repo.create_stream("exact").await.unwrap();
    assert_eq!(
        repo.get_stream(created.stream.id).await.unwrap().unwrap(),
        created.stream,
        "a stream reads back exactly as created (timestamps included)"
    );
    repo.delete_stream(created.stream.id).await.unwrap();

    // Newest first, pages of 2: 2 + 2 + 1, total 5 on every page.
    let p1 = repo.page_streams(None, page(1, 2)).await.unwrap();
    let p2 = repo.page_streams(None, page(2, 2)).await.unwrap();
    let p3 = repo.page_streams(None, page(3, 2)).await.unwrap();
    let p4 = repo.page_streams(None, page(4, 2)).await.unwrap();
    assert_eq!((p1.total, p2.total, p3.total, p4.total), (5, 5, 5, 5));
    let seen: Vec<Uuid> = [p1.items, p2.items, p3.items, p4.items]
        .concat()
        .iter()
        .map(|s| s.id)
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let far = repo.page_streams(None, page(u32::MAX, 100)).await.unwrap();
    assert!(far.items.is_empty() && far.total == 5);

    // Status filter.
    repo.transition(ids[1], StreamStatus::Active, Utc::now())
        .await
        .unwrap();
    let active = repo
        .page_streams(Some(StreamStatus::Active), page(1, 10))
        .await
        .unwrap();
    assert_eq!(active.total, 1);
    assert_eq!(active.items[0].id, ids[1]);
    assert_eq!(
        repo.list_streams(Some(StreamStatus::Pending))
            .await
            .unwrap()
            .len(),
        4
    );

    // Rename.
    let renamed = repo.rename_stream(ids[2], "new name").await.unwrap();
    assert_eq!(renamed.name, "new name");
    assert_eq!(
        repo.get_stream(ids[2]).await.unwrap().unwrap().name,
        "new name"
    );
    assert!(matches!(
        repo.rename_stream(ids[2], " \t ").await,
        Err(CoreError::Invalid(_))
    ));
    assert!(matches!(
        repo.rename_stream(ids[2], "a\u{0}b").await,
        Err(CoreError::Invalid(_))
    ));
    assert!(matches!(
        repo.rename_stream(ids[2], &"x".repeat(201)).await,
        Err(CoreError::Invalid(_))
    ));
    assert!(
        repo.rename_stream(ids[2], &"é".repeat(200)).await.is_ok(),
        "200 characters, 400 bytes"
    );
    assert!(matches!(
        repo.rename_stream(Uuid::new_v4(), "x").await,
        Err(CoreError::StreamNotFound(_))
    ));

    // Delete cascades to keys, sessions, metrics and qualities.
    let victim = ids[3];
    let (_, key) = repo.add_key(victim).await.unwrap();
    repo.upsert_viewer_session(&viewer(victim, 0))
        .await
        .unwrap();
    repo.record_metrics(&sample(victim, Utc::now(), 1))
        .await
        .unwrap();
    repo.set_quality_levels(victim, &[quality("source", 720)])
        .await
        .unwrap();
    repo.delete_stream(victim).await.unwrap();
    assert!(repo.get_stream(victim).await.unwrap().is_none());
    assert!(repo.list_keys(victim).await.unwrap().is_empty());
    assert_eq!(repo.check_key(&key).await.unwrap(), KeyCheck::Unknown);
    assert_eq!(repo.count_active_viewers(victim).await.unwrap(), 0);
    assert!(
        repo.list_metrics(victim, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(repo.list_quality_levels(victim).await.unwrap().is_empty());
    assert!(matches!(
        repo.delete_stream(victim).await,
        Err(CoreError::StreamNotFound(_))
    ));
}

async fn keys_check_rotate_and_revoke(repo: DynRepository) {
    let created = repo.create_stream("show").await.unwrap();
    let id = created.stream.id;
    let key = created.plaintext_key.clone();
    assert!(
        matches!(repo.check_key(&key).await.unwrap(), KeyCheck::Valid { key_id, .. } if key_id == created.key.id)
    );
    let mut forged = key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    assert_eq!(repo.check_key(&forged).await.unwrap(), KeyCheck::Unknown);
    for junk in [
        "",
        "live?x=1",
        "sk_",
        "sk_'; DROP TABLE streams; --",
        "\u{0}",
    ] {
        assert_eq!(
            repo.check_key(junk).await.unwrap(),
            KeyCheck::Unknown,
            "{junk:?}"
        );
    }
    let (second, second_key) = repo.add_key(id).await.unwrap();
    assert_ne!(second_key, key);
    let got = repo.get_key(second.id).await.unwrap().unwrap();
    assert_eq!(got, second, "a key reads back exactly as created");
    assert!(repo.get_key(Uuid::new_v4()).await.unwrap().is_none());

    let revoked = repo.revoke_key(created.key.id).await.unwrap();
    assert!(revoked.is_revoked());
    let again = repo.revoke_key(created.key.id).await.unwrap();
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "revoking twice keeps the first time"
    );
    assert!(
        matches!(repo.check_key(&key).await.unwrap(), KeyCheck::Revoked { stream_id, .. } if stream_id == id)
    );
    assert!(matches!(
        repo.check_key(&second_key).await.unwrap(),
        KeyCheck::Valid { .. }
    ));
    let keys = repo.list_keys(id).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![created.key.id, second.id]
    );
    assert_eq!(repo.revoke_stream_keys(id).await.unwrap(), 1);
    assert!(matches!(
        repo.check_key(&second_key).await.unwrap(),
        KeyCheck::Revoked { .. }
    ));
    assert!(matches!(
        repo.add_key(Uuid::new_v4()).await,
        Err(CoreError::StreamNotFound(_))
    ));
    assert!(matches!(
        repo.revoke_key(Uuid::new_v4()).await,
        Err(CoreError::KeyNotFound(_))
    ));
    assert!(matches!(
        repo.revoke_stream_keys(Uuid::new_v4()).await,
        Err(CoreError::StreamNotFound(_))
    ));
}

async fn state_machine(repo: DynRepository) {
    let id = repo.create_stream("s").await.unwrap().stream.id;
    let err = repo
        .transition(id, StreamStatus::Ended, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CoreError::InvalidTransition {
            from: StreamStatus::Pending,
            to: StreamStatus::Ended,
            ..
        }
    ));
    let t0 = Utc::now();
    let s = repo.transition(id, StreamStatus::Active, t0).await.unwrap();
    assert_eq!(
        s.started_at,
        Some(streaming_core::model::to_db_precision(t0))
    );
    assert!(s.ended_at.is_none());
    let err = repo
        .transition(id, StreamStatus::Active, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CoreError::InvalidTransition {
            from: StreamStatus::Active,
            ..
        }
    ));
    let s = repo
        .transition(id, StreamStatus::Ended, Utc::now())
        .await
        .unwrap();
    assert_eq!(s.status, StreamStatus::Ended);
    assert_eq!(
        repo.get_stream(id).await.unwrap().unwrap(),
        s,
        "stored as returned"
    );
    let s = repo
        .transition(id, StreamStatus::Active, Utc::now())
        .await
        .unwrap();
    assert!(s.ended_at.is_none(), "a new broadcast clears the end time");
    let s = repo
        .transition(id, StreamStatus::Error, Utc::now())
        .await
        .unwrap();
    assert!(s.ended_at.is_some());
    assert!(matches!(
        repo.transition(Uuid::new_v4(), StreamStatus::Active, Utc::now())
            .await,
        Err(CoreError::StreamNotFound(_))
    ));
}

fn viewer(stream_id: Uuid, age_secs: i64) -> ViewerSession {
    let t = streaming_core::model::now() - Duration::seconds(age_secs);
    ViewerSession {
        id: Uuid::new_v4(),
        stream_id,
        protocol: "hls".into(),
        quality: Some("source".into()),
        user_agent: Some("test/1.0".into()),
        started_at: t,
        last_seen_at: t,
        ended_at: None,
        bytes_sent: 0,
        ..Default::default()
    }
}

fn sample(stream_id: Uuid, at: chrono::DateTime<Utc>, viewers: u64) -> StreamMetrics {
    StreamMetrics {
        stream_id,
        at: streaming_core::model::to_db_precision(at),
        concurrent_viewers: viewers,
        ingest_bitrate_kbps: 2500,
        egress_bitrate_kbps: 2500 * viewers,
        frames_dropped: 0,
        segments_produced: 7,
        ..Default::default()
    }
}

fn quality(name: &str, height: u32) -> QualityLevel {
    QualityLevel {
        name: name.into(),
        width: Some(height * 16 / 9),
        height: Some(height),
        bitrate_kbps: Some(height * 5),
        frame_rate: Some(29.97),
        codec: Some("avc1.64001f".into()),
    }
}

async fn viewers_metrics_and_qualities(repo: DynRepository) {
    let id = repo.create_stream("s").await.unwrap().stream.id;
    assert_eq!(repo.count_active_viewers(id).await.unwrap(), 0);
    let empty = repo
        .page_viewer_sessions(id, false, page(1, 20))
        .await
        .unwrap();
    assert!(empty.items.is_empty() && empty.total == 0);

    let sessions: Vec<ViewerSession> = (0..3).map(|i| viewer(id, 10 - i)).collect();
    for s in &sessions {
        repo.upsert_viewer_session(s).await.unwrap();
    }
    let mut ended = sessions[0].clone();
    ended.ended_at = Some(streaming_core::model::now());
    ended.bytes_sent = u64::MAX; // clamps, never fails
    repo.upsert_viewer_session(&ended).await.unwrap();
    assert_eq!(repo.count_active_viewers(id).await.unwrap(), 2);
    let all = repo
        .page_viewer_sessions(id, false, page(1, 20))
        .await
        .unwrap();
    assert_eq!(all.total, 3);
    assert_eq!(all.items[0], sessions[2], "newest first, read back exactly");
    let active = repo
        .page_viewer_sessions(id, true, page(1, 1))
        .await
        .unwrap();
    assert_eq!((active.total, active.items.len()), (2, 1));
    assert!(matches!(
        repo.upsert_viewer_session(&viewer(Uuid::new_v4(), 0)).await,
        Err(CoreError::StreamNotFound(_))
    ));

    let t0 = Utc::now() - Duration::seconds(30);
    for i in 0..5 {
        repo.record_metrics(&sample(id, t0 + Duration::seconds(i * 5), i as u64))
            .await
            .unwrap();
    }
    repo.record_metrics(&sample(id, t0, 42)).await.unwrap(); // same instant: replaced
    let got = repo.list_metrics(id, None, 100).await.unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].concurrent_viewers, 42);
    assert_eq!(got[4], sample(id, t0 + Duration::seconds(20), 4));
    let since = repo
        .list_metrics(id, Some(t0 + Duration::seconds(10)), 2)
        .await
        .unwrap();
    assert_eq!(
        since
            .iter()
            .map(|m| m.concurrent_viewers)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(matches!(
        repo.record_metrics(&sample(Uuid::new_v4(), t0, 1)).await,
        Err(CoreError::StreamNotFound(_))
    ));

    let ladder = vec![
        quality("source", 1080),
        quality("720p", 720),
        quality("480p", 480),
    ];
    repo.set_quality_levels(id, &ladder).await.unwrap();
    assert_eq!(repo.list_quality_levels(id).await.unwrap(), ladder);
    repo.set_quality_levels(id, &ladder[1..]).await.unwrap();
    assert_eq!(
        repo.list_quality_levels(id).await.unwrap(),
        ladder[1..].to_vec()
    );
    let dup = vec![quality("720p", 720), quality("720p", 720)];
    assert!(matches!(
        repo.set_quality_levels(id, &dup).await,
        Err(CoreError::Invalid(_))
    ));
    assert_eq!(
        repo.list_quality_levels(id).await.unwrap(),
        ladder[1..].to_vec(),
        "all or nothing"
    );
    assert!(matches!(
        repo.set_quality_levels(Uuid::new_v4(), &ladder).await,
        Err(CoreError::StreamNotFound(_))
    ));
}

/// A sample with every field set (`speed` None or Some), odd floats included.
fn full_sample(stream_id: Uuid, at: chrono::DateTime<Utc>, n: u64) -> StreamMetrics {
    let mut m = sample(stream_id, at, n);
    m.frames_dropped = n * 3;
    m.quality_distribution = [("source".to_string(), n as u32), ("720p".into(), 7)]
        .into_iter()
        .collect();
    m.buffering_ratio = 1.0 / (n as f64 + 3.0);
    m.errors = n % 4;
    m.transcoder_speed = (!n.is_multiple_of(2)).then_some(0.1 + 0.2 * n as f64);
    m
}

fn rollup(stream_id: Uuid, minute: chrono::DateTime<Utc>, n: u32) -> MetricsRollup {
    MetricsRollup {
        stream_id,
        minute: to_db_precision(minute),
        samples: 60,
        viewers_avg: 7.0 / 3.0 + f64::from(n),
        viewers_min: 1,
        viewers_max: 9 + u64::from(n),
        ingest_kbps_avg: 2_499.999_999_999_9,
        ingest_kbps_min: 2000,
        ingest_kbps_max: u64::from(u32::MAX) + 5,
        egress_kbps_avg: 1e-300,
        buffering_ratio_avg: 0.1 + 0.2,
        errors: u64::from(n),
        transcoder_speed_min: n.is_multiple_of(2).then_some(0.987_654_321),
        quality_distribution: [
            ("source".to_string(), 2.0 / 3.0),
            ("480p".into(), 1e17 / 3.0),
        ]
        .into_iter()
        .collect(),
    }
}

async fn metrics_batches_and_ranges(repo: DynRepository) {
    let id = repo.create_stream("m").await.unwrap().stream.id;
    let other = repo.create_stream("other").await.unwrap().stream.id;
    let t0 = to_db_precision(Utc::now() - Duration::hours(1));
    let s = |i: i64| t0 + Duration::seconds(i);

    // Round trip, exactly: 1000 samples in one batch.
    let batch: Vec<StreamMetrics> = (0..1000).map(|i| full_sample(id, s(i), i as u64)).collect();
    repo.record_metrics_batch(&batch).await.unwrap();
    repo.record_metrics_batch(&[]).await.unwrap();
    let got = repo.list_metrics(id, None, 2000).await.unwrap();
    assert_eq!(got, batch, "every field reads back exactly");
    assert!(got.iter().any(|m| m.transcoder_speed.is_none()));
    assert!(got.iter().any(|m| m.transcoder_speed.is_some()));

    // Same (stream, at): replaced, every field; last of a batch wins.
    let mut again = full_sample(id, s(5), 77);
    again.transcoder_speed = None;
    again.quality_distribution.clear();
    let mut last = again.clone();
    last.concurrent_viewers = 78;
    repo.record_metrics_batch(&[again, last.clone()])
        .await
        .unwrap();
    let mut single = full_sample(id, s(6), 99);
    single.transcoder_speed = Some(1.25);
    repo.record_metrics(&single).await.unwrap();
    let got = repo.list_metrics_range(id, s(5), s(7), 10).await.unwrap();
    assert_eq!(got, vec![last.clone(), single.clone()]);

    // Half-open ranges, oldest first, limited; other streams not included.
    repo.record_metrics_batch(&[full_sample(other, s(10), 1)])
        .await
        .unwrap();
    let got = repo
        .list_metrics_range(id, s(10), s(20), 100)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|m| m.at).collect::<Vec<_>>(),
        (10..20).map(s).collect::<Vec<_>>()
    );
    let got = repo.list_metrics_range(id, s(10), s(20), 3).await.unwrap();
    assert_eq!(got, batch[10..13].to_vec());
    assert!(
        repo.list_metrics_range(id, s(10), s(10), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let sub = |t: chrono::DateTime<Utc>| t + Duration::nanoseconds(500);
    let got = repo
        .list_metrics_range(id, sub(s(10)), sub(s(12)), 10)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|m| m.at).collect::<Vec<_>>(),
        vec![s(11), s(12)],
        "sub-microsecond bounds compare exactly"
    );

    // Samples of a deleted stream are skipped; the rest of the batch lands.
    let gone = repo.create_stream("gone").await.unwrap().stream.id;
    repo.delete_stream(gone).await.unwrap();
    let mixed = vec![
        full_sample(gone, s(2000), 1),
        full_sample(id, s(2000), 2),
        full_sample(Uuid::new_v4(), s(2001), 3),
        full_sample(id, s(2001), 3),
    ];
    repo.record_metrics_batch(&mixed).await.unwrap();
    assert_eq!(
        repo.list_metrics_range(id, s(2000), s(2002), 10)
            .await
            .unwrap(),
        vec![mixed[1].clone(), mixed[3].clone()]
    );
    assert!(repo.list_metrics(gone, None, 10).await.unwrap().is_empty());

    // Roll-ups: insert, replace every field, half-open listing.
    let m = |i: i64| t0 + Duration::minutes(i);
    let ups: Vec<MetricsRollup> = (0..5).map(|i| rollup(id, m(i), i as u32)).collect();
    repo.upsert_rollups(&ups).await.unwrap();
    repo.upsert_rollups(&[]).await.unwrap();
    assert_eq!(repo.list_rollups(id, m(0), m(5), 100).await.unwrap(), ups);
    let mut replaced = rollup(id, m(2), 41);
    replaced.transcoder_speed_min = None;
    replaced.quality_distribution.clear();
    replaced.samples = 12;
    repo.upsert_rollups(&[
        rollup(id, m(2), 40),
        replaced.clone(),
        rollup(gone, m(2), 1),
        rollup(other, m(2), 3),
    ])
    .await
    .unwrap();
    assert_eq!(
        repo.list_rollups(id, m(1), m(3), 100).await.unwrap(),
        vec![ups[1].clone(), replaced.clone()]
    );
    assert_eq!(
        repo.list_rollups(id, m(0), m(5), 2).await.unwrap(),
        ups[..2].to_vec()
    );
    assert_eq!(
        repo.list_rollups(other, m(0), m(5), 10).await.unwrap(),
        vec![rollup(other, m(2), 3)]
    );
    assert!(
        repo.list_rollups(gone, m(0), m(5), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Prune: raw rows with at < before go, of every stream; roll-ups stay.
    let n = repo.prune_metrics(s(500)).await.unwrap();
    assert_eq!(n, 500 + 1, "500 of `id`, 1 of `other`");
    let left = repo.list_metrics(id, None, 5000).await.unwrap();
    assert_eq!(left.len(), 502);
    assert_eq!(left[0].at, s(500), "`before` itself stays");
    assert!(repo.list_metrics(other, None, 10).await.unwrap().is_empty());
    assert_eq!(repo.prune_metrics(s(500)).await.unwrap(), 0);
    assert_eq!(
        repo.list_rollups(id, m(0), m(5), 100).await.unwrap().len(),
        5
    );

    // Deleting the stream takes its roll-ups along.
    repo.delete_stream(other).await.unwrap();
    assert!(
        repo.list_rollups(other, m(0), m(5), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn viewer_session_beacon_fields(repo: DynRepository) {
    let id = repo.create_stream("v").await.unwrap().stream.id;
    let mut s = viewer(id, 5);
    s.quality_switches = 3;
    s.startup_ms = Some(1234);
    s.stalls = 2;
    s.stall_ms = u64::from(u32::MAX) + 17;
    s.errors = 1;
    repo.upsert_viewer_session(&s).await.unwrap();
    let got = repo
        .page_viewer_sessions(id, false, page(1, 10))
        .await
        .unwrap();
    assert_eq!(got.items, vec![s.clone()]);

    // An update replaces them, back to none as well.
    s.quality_switches = u32::MAX;
    s.startup_ms = None;
    s.stalls = 0;
    s.stall_ms = 0;
    s.errors = 9;
    s.ended_at = Some(streaming_core::model::now());
    repo.upsert_viewer_session(&s).await.unwrap();
    let got = repo
        .page_viewer_sessions(id, false, page(1, 10))
        .await
        .unwrap();
    assert_eq!(got.items, vec![s]);
}

/// 20 tasks race to activate one stream, spread over `repos`: exactly one
/// wins, every other gets the typed conflict, none a database error.
async fn race_to_activate(repos: &[DynRepository]) {
    let id = repos[0].create_stream("race").await.unwrap().stream.id;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let repo = repos[i % repos.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                repo.transition(id, StreamStatus::Active, Utc::now()).await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => {
                assert_eq!(s.status, StreamStatus::Active);
                wins += 1;
            }
            Err(CoreError::InvalidTransition {
                from: StreamStatus::Active,
                to: StreamStatus::Active,
                ..
            }) => {}
            Err(e) => {
                panic!("a racing transition failed with something else than the conflict: {e}")
            }
        }
    }
    assert_eq!(wins, 1, "exactly one of 20 racing activations may win");
    assert_eq!(
        repos[1 % repos.len()]
            .get_stream(id)
            .await
            .unwrap()
            .unwrap()
            .status,
        StreamStatus::Active
    );
}

async fn race_one_pool(repo: DynRepository) {
    race_to_activate(&[repo]).await;
}

/// A session of `stream_id` last seen at `seen`, open unless `ended`.
fn session(stream_id: Uuid, seen: chrono::DateTime<Utc>, ended: bool) -> ViewerSession {
    ViewerSession {
        id: Uuid::new_v4(),
        stream_id,
        protocol: "hls".into(),
        started_at: seen - Duration::seconds(30),
        last_seen_at: seen,
        ended_at: ended.then_some(seen),
        ..ViewerSession::default()
    }
}

/// Crash recovery: a node ends at start the streams it (or no recorded
/// node) left ACTIVE, with the last time they were seen, and closes the
/// open viewer sessions of streams that are not live; other nodes' live
/// streams and their sessions are left alone.
async fn crash_recovery_ends_only_this_nodes_streams(repo: DynRepository) {
    let t0 = to_db_precision(Utc::now() - Duration::minutes(10))
        .with_nanosecond(0)
        .unwrap();
    let mut ids = Vec::new();
    for name in ["mine", "other node", "no node", "mine ended", "pending"] {
        ids.push(repo.create_stream(name).await.unwrap().stream.id);
    }
    let [mine, other, no_node, mine_ended, pending] = ids[..] else {
        unreachable!()
    };
    let active = |id, node: Option<&'static str>| {
        let repo = repo.clone();
        async move {
            repo.transition_on_node(id, StreamStatus::Active, t0, node)
                .await
                .unwrap()
        }
    };
    let s = active(mine, Some("n1")).await;
    assert_eq!((s.status, s.started_at), (StreamStatus::Active, Some(t0)));
    active(other, Some("n2")).await;
    repo.transition(no_node, StreamStatus::Active, t0)
        .await
        .unwrap();
    active(mine_ended, Some("n1")).await;
    repo.transition_on_node(mine_ended, StreamStatus::Ended, t0, Some("n1"))
        .await
        .unwrap();
    // Signs of life of `mine`: samples up to t0 + 40 s, a roll-up minute before.
    let samples: Vec<StreamMetrics> = [5, 20, 40]
        .iter()
        .map(|s| StreamMetrics {
            stream_id: mine,
            at: t0 + Duration::seconds(*s),
            ..StreamMetrics::default()
        })
        .collect();
    repo.record_metrics_batch(&samples).await.unwrap();
    let sessions = [
        session(mine, t0 + Duration::seconds(35), false),
        session(mine, t0 + Duration::seconds(10), true),
        session(other, t0 + Duration::seconds(50), false),
        session(mine_ended, t0 + Duration::seconds(3), false),
    ];
    for s in &sessions {
        repo.upsert_viewer_session(s).await.unwrap();
    }

    let now = Utc::now();
    let done = repo.end_orphaned_streams("n1", now).await.unwrap();
    assert_eq!(
        done.streams,
        [(mine, t0 + Duration::seconds(40)), (no_node, t0)],
        "this node's and the unowned ACTIVE streams, oldest first"
    );
    assert_eq!(done.sessions_closed, 2, "{done:?}");
    let status = |id| {
        let repo = repo.clone();
        async move { repo.get_stream(id).await.unwrap().unwrap() }
    };
    let m = status(mine).await;
    assert_eq!(
        (m.status, m.started_at, m.ended_at),
        (
            StreamStatus::Ended,
            Some(t0),
            Some(t0 + Duration::seconds(40))
        )
    );
    assert_eq!(status(no_node).await.status, StreamStatus::Ended);
    assert_eq!(status(other).await.status, StreamStatus::Active);
    assert_eq!(status(pending).await.status, StreamStatus::Pending);
    assert_eq!(status(mine_ended).await.ended_at, Some(t0));
    let listed = |id| {
        let repo = repo.clone();
        async move {
            repo.page_viewer_sessions(id, false, page(1, 100))
                .await
                .unwrap()
                .items
        }
    };
    for v in listed(mine)
        .await
        .into_iter()
        .chain(listed(mine_ended).await)
    {
        assert_eq!(
            v.ended_at,
            Some(v.last_seen_at),
            "closed when last seen: {v:?}"
        );
    }
    assert_eq!(repo.count_active_viewers(other).await.unwrap(), 1);
    // Nothing left to do the second time.
    assert_eq!(
        repo.end_orphaned_streams("n1", Utc::now()).await.unwrap(),
        Default::default()
    );
    // The node that made a stream ACTIVE last is the one that owns it.
    let restart = t0 + Duration::seconds(60);
    repo.transition_on_node(mine, StreamStatus::Active, restart, Some("n2"))
        .await
        .unwrap();
    assert!(
        repo.end_orphaned_streams("n1", Utc::now())
            .await
            .unwrap()
            .streams
            .is_empty()
    );
    let done = repo.end_orphaned_streams("n2", Utc::now()).await.unwrap();
    let ended: Vec<Uuid> = done.streams.iter().map(|(id, _)| *id).collect();
    assert_eq!(ended, [mine, other]);
    // Samples of an earlier broadcast do not count: last seen at its start.
    assert_eq!(done.streams[0].1, restart);
}

/// The readiness probe commits a write (and again, and after other writes).
async fn write_probe(repo: DynRepository) {
    repo.probe_write().await.unwrap();
    repo.create_stream("x").await.unwrap();
    repo.probe_write().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    repo.probe_write().await.unwrap();
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_guard, repo) = super::sqlite().await;
                    super::$case(repo).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_guard, repo) = super::postgres().await;
                    super::$case(repo).await;
                }
            )*
        }
    };
}

both_backends!(
    streams_crud_and_paging,
    keys_check_rotate_and_revoke,
    state_machine,
    viewers_metrics_and_qualities,
    metrics_batches_and_ranges,
    viewer_session_beacon_fields,
    race_one_pool,
    crash_recovery_ends_only_this_nodes_streams,
    write_probe,
);

/// The acceptance race: two separate connection pools (two "replicas") on
/// one PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_race_from_two_pools_has_one_winner() {
    let db = ScratchDatabase::create().await;
    let a = repo::connect(db.url()).await.unwrap();
    let b = repo::connect(db.url()).await.unwrap();
    for _ in 0..5 {
        race_to_activate(&[a.clone(), b.clone()]).await;
    }
}

/// Keys are stored hashed: the clear key is in no table of the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_no_clear_key() {
    let db = ScratchDatabase::create().await;
    let repo = streaming_core::repo::PostgresRepository::connect(db.url())
        .await
        .unwrap();
    let created = repo.create_stream("secret").await.unwrap();
    let (_, second) = repo.add_key(created.stream.id).await.unwrap();
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(t)::text FROM (SELECT * FROM streams) t \
         UNION ALL SELECT row_to_json(t)::text FROM (SELECT id, stream_id, prefix, encode(key_hash, 'escape') AS h, created_at FROM stream_keys) t",
    )
    .fetch_all(repo.pool())
    .await
    .unwrap();
    assert!(dump.len() >= 3, "{dump:?}");
    for key in [&created.plaintext_key, &second] {
        let secret = &key[3..];
        assert!(
            !dump.iter().any(|row| row.contains(secret)),
            "key stored in clear: {dump:?}"
        );
    }
}

#[tokio::test]
async fn unsupported_database_urls_are_a_typed_error() {
    for url in ["mysql://x", "", "postgres-ish"] {
        assert!(
            matches!(repo::connect(url).await, Err(CoreError::Invalid(_))),
            "{url}"
        );
    }
}

/// Viewer sessions written in batches (the collector's writes) and pruned
/// after their retention: one transaction, the last record of an id wins,
/// sessions of a stream that is gone are skipped, only ended ones are pruned.
async fn viewer_session_batches_and_pruning(repo: DynRepository) {
    let id = repo.create_stream("batches").await.unwrap().stream.id;
    repo.upsert_viewer_sessions(&[]).await.unwrap();
    let now = streaming_core::model::now();
    let open_old = viewer(id, 50 * 86_400);
    let mut ended_old = viewer(id, 45 * 86_400);
    ended_old.ended_at = Some(now - Duration::days(40));
    let mut ended_recent = viewer(id, 2 * 86_400);
    ended_recent.ended_at = Some(now - Duration::days(1));
    // Confirmed, then ended within the same batch: the last record wins.
    let mut open_old_later = open_old.clone();
    open_old_later.bytes_sent = 12_345;
    open_old_later.quality = Some("720p".into());
    open_old_later.quality_switches = 2;
    open_old_later.startup_ms = Some(800);
    open_old_later.stalls = 1;
    open_old_later.stall_ms = 1500;
    open_old_later.errors = 3;
    open_old_later.last_seen_at = now - Duration::seconds(5);
    let gone = viewer(Uuid::new_v4(), 10);
    repo.upsert_viewer_sessions(&[
        open_old.clone(),
        ended_old.clone(),
        gone,
        ended_recent.clone(),
        open_old_later.clone(),
    ])
    .await
    .expect("a batch with a session of a missing stream still commits");
    let mut got = repo
        .page_viewer_sessions(id, false, page(1, 10))
        .await
        .unwrap()
        .items;
    got.sort_by_key(|s| s.started_at);
    assert_eq!(got, vec![open_old_later.clone(), ended_old, ended_recent]);

    // A later batch replaces every field (here: the open session ends).
    let mut closed = open_old_later.clone();
    closed.ended_at = Some(now - Duration::seconds(1));
    closed.bytes_sent = 99;
    closed.startup_ms = None;
    repo.upsert_viewer_sessions(std::slice::from_ref(&closed))
        .await
        .unwrap();
    assert_eq!(repo.count_active_viewers(id).await.unwrap(), 0);

    // Past the chunk size of one statement, still one batch.
    let many: Vec<_> = (0..5_001).map(|_| viewer(id, 60)).collect();
    repo.upsert_viewer_sessions(&many).await.unwrap();
    let page1 = repo
        .page_viewer_sessions(id, true, page(1, 1))
        .await
        .unwrap();
    assert_eq!(page1.total, 5_001);

    // Retention: only sessions that ended before the bound go.
    assert_eq!(
        repo.prune_viewer_sessions(now - Duration::days(30))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        repo.prune_viewer_sessions(now - Duration::days(30))
            .await
            .unwrap(),
        0
    );
    let all = repo
        .page_viewer_sessions(id, false, page(1, 1))
        .await
        .unwrap();
    assert_eq!(all.total, 5_001 + 2, "open sessions are never pruned");
    assert_eq!(
        repo.prune_viewer_sessions(now + Duration::days(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(repo.count_active_viewers(id).await.unwrap(), 5_001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_viewer_session_batches_and_pruning() {
    let (_guard, repo) = sqlite().await;
    viewer_session_batches_and_pruning(repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_viewer_session_batches_and_pruning() {
    let (_guard, repo) = postgres().await;
    viewer_session_batches_and_pruning(repo).await;
}
