//! The SQLite repository: keys stored as hashes only, key checks, the state machine.

use chrono::Utc;
use streaming_core::CoreError;
use streaming_core::model::StreamStatus;
use streaming_core::repo::{KeyCheck, SqliteRepository, StreamRepository};

async fn repo() -> (tempfile::TempDir, SqliteRepository) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let repo = SqliteRepository::connect(&url).await.unwrap();
    (dir, repo)
}

#[tokio::test]
async fn keys_check_and_revoke() {
    let (dir, repo) = repo().await;
    let created = repo.create_stream("show").await.unwrap();
    let key = created.plaintext_key.clone();
    match repo.check_key(&key).await.unwrap() {
        KeyCheck::Valid { stream, key_id } => {
            assert_eq!(stream.id, created.stream.id);
            assert_eq!(key_id, created.key.id);
        }
        other => panic!("expected a valid key, got {other:?}"),
    }
    // Same prefix, different secret: refused.
    let mut forged = key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    assert_eq!(repo.check_key(&forged).await.unwrap(), KeyCheck::Unknown);
    assert_eq!(repo.check_key("").await.unwrap(), KeyCheck::Unknown);
    assert_eq!(repo.check_key("live?x=1").await.unwrap(), KeyCheck::Unknown);

    repo.revoke_key(created.key.id).await.unwrap();
    assert!(matches!(
        repo.check_key(&key).await.unwrap(),
        KeyCheck::Revoked { .. }
    ));
    let (new_key, plaintext) = repo.add_key(created.stream.id).await.unwrap();
    assert!(
        matches!(repo.check_key(&plaintext).await.unwrap(), KeyCheck::Valid { key_id, .. } if key_id == new_key.id)
    );
    assert_eq!(repo.list_keys(created.stream.id).await.unwrap().len(), 2);

    // The key in clear is nowhere in the database files.
    drop(repo);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "stream key stored in clear"
        );
    }
}

#[tokio::test]
async fn state_machine_is_enforced() {
    let (_dir, repo) = repo().await;
    let id = repo.create_stream("s").await.unwrap().stream.id;
    let err = repo
        .transition(id, StreamStatus::Ended, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CoreError::InvalidTransition {
            from: StreamStatus::Pending,
            ..
        }
    ));
    let s = repo
        .transition(id, StreamStatus::Active, Utc::now())
        .await
        .unwrap();
    assert!(s.started_at.is_some());
    let s = repo
        .transition(id, StreamStatus::Ended, Utc::now())
        .await
        .unwrap();
    assert_eq!(s.status, StreamStatus::Ended);
    assert!(s.ended_at.is_some());
    let stored = repo.get_stream(id).await.unwrap().unwrap();
    assert_eq!(stored.status, StreamStatus::Ended);
    assert_eq!(
        repo.list_streams(Some(StreamStatus::Ended))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        repo.list_streams(Some(StreamStatus::Active))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        repo.create_stream("  ").await,
        Err(CoreError::Invalid(_))
    ));
}

/// Another connection (as another process would) holds the write lock:
/// reads go on at once on the read pool; a write waits for the lock and
/// succeeds once it is released; a write still locked out after the busy
/// timeout fails as "unavailable" (HTTP 503, status changes retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_not_starved_by_a_held_write_lock() {
    use sqlx::Connection;
    let (dir, repo) = repo().await;
    let id = repo.create_stream("locked").await.unwrap().stream.id;
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let writer = {
        let repo = repo.clone();
        tokio::spawn(async move { repo.create_stream("waits for the lock").await })
    };
    let other_writes: Vec<_> = (0..4)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.rename_stream(id, &format!("w{i}")).await })
        })
        .collect();
    // Every read completes while the lock is held and writers queue.
    for _ in 0..20 {
        let got = tokio::time::timeout(std::time::Duration::from_secs(2), repo.get_stream(id))
            .await
            .expect("a read waited for the write lock")
            .unwrap();
        assert_eq!(got.unwrap().status, StreamStatus::Pending);
    }
    assert!(!writer.is_finished(), "the write went through a held lock");
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let created = writer
        .await
        .unwrap()
        .expect("the write goes through once the lock is free");
    assert_eq!(created.stream.name, "waits for the lock");
    for w in other_writes {
        match w.await.unwrap() {
            Ok(_) => {}
            Err(e) => assert!(
                streaming_core::repo::is_unavailable_error(&e),
                "a queued write failed with something else than unavailable: {e}"
            ),
        }
    }

    // Locked for longer than the busy timeout: a clear "unavailable".
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let Err(e) = repo.create_stream("refused").await else {
        panic!("a write went through a lock held past the busy timeout");
    };
    assert!(streaming_core::repo::is_unavailable_error(&e), "{e}");
    let probe = tokio::time::timeout(std::time::Duration::from_secs(1), repo.probe_write()).await;
    assert!(
        !matches!(probe, Ok(Ok(()))),
        "the write probe passed under a held lock"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    repo.probe_write().await.unwrap();
}

/// The read pool cannot write (query-only connections), and SQLite's
/// "read-only" error counts as unavailable.
#[tokio::test]
async fn the_read_pool_is_read_only() {
    let (_dir, repo) = repo().await;
    let e = sqlx::query("INSERT INTO health_probe (id, at) VALUES (7, 'x')")
        .execute(repo.read_pool())
        .await
        .unwrap_err();
    assert!(streaming_core::repo::is_unavailable(&e), "{e}");
    sqlx::query("INSERT INTO health_probe (id, at) VALUES (7, 'x')")
        .execute(repo.pool())
        .await
        .unwrap();
}
