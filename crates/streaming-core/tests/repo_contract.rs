//! The repository contract, run on both backends: SQLite in a temp dir and
//! PostgreSQL (a scratch database on `DATABASE_URL`, else 127.0.0.1:5432).
//! Every case is one function taking a repository; the macro at the bottom
//! makes a `sqlite_*` and a `postgres_*` test of each.

use std::sync::Arc;

use chrono::{Duration, Utc};
use streaming_core::CoreError;
use streaming_core::model::{
    PageRequest, QualityLevel, StreamMetrics, StreamStatus, ViewerSession,
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
    race_one_pool,
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
