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
