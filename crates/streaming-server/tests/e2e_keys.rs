//! Acceptance: stream keys. Wrong, malformed and revoked keys are refused
//! (FFmpeg fails, nothing is served, the stream stays PENDING, the log says
//! why), and the plaintext key is never written to the logs or the database.
//!
//! Every test calls `common::capture_logs()` first: it installs the process's
//! tracing subscriber that the assertions read.

mod common;

use std::time::Duration;

use common::{
    LogCapture, Publish, TestServer, capture_logs, ffmpeg_publish, wait_child,
    well_formed_unknown_key,
};
use streaming_core::events::Event;
use uuid::Uuid;

/// A short, cheap publish: refused keys never get as far as encoding much.
fn small() -> Publish {
    Publish {
        width: 320,
        height: 240,
        fps: 15,
        seconds: 4.0,
        gop_secs: 1,
        video_kbps: 300,
    }
}

/// Publishes with `key` and asserts the server refuses it: FFmpeg fails within
/// a bounded time, the log explains the refusal with `reason`, and the bus
/// carries a `PublishRejected`. Returns the log lines of this attempt.
async fn assert_refused(ts: &TestServer, logs: &LogCapture, key: &str, reason: &str) -> String {
    let mut events = ts.server.events.subscribe();
    let mark = logs.mark();
    let child = ffmpeg_publish(&ts.publish_url(key), &small());
    let (ok, err) = wait_child(child, Duration::from_secs(15)).await;
    assert!(
        !ok,
        "FFmpeg publishing with key {key:?} must fail, but it succeeded"
    );
    assert_ne!(
        err, "timed out",
        "FFmpeg kept running with refused key {key:?}"
    );
    let log = logs
        .wait_since(mark, Duration::from_secs(5), |t| {
            t.lines().any(|l| l.contains("publish refused") && l.contains(reason))
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the log must say `publish refused` with reason {reason:?} for key {key:?}; got:\n{}",
                logs.since(mark)
            )
        });
    let rejected = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.recv().await {
                Ok(Event::PublishRejected { reason, .. }) => return reason,
                Ok(_) => continue,
                Err(e) => panic!("event bus closed: {e}"),
            }
        }
    })
    .await
    .expect("a PublishRejected event for the refused key");
    assert!(
        rejected.contains(reason),
        "PublishRejected reason {rejected:?} should mention {reason:?}"
    );
    assert!(
        !log.contains(key),
        "the presented key {key:?} was written to the log:\n{log}"
    );
    log
}

/// Nothing is served for a stream that was never (validly) published.
async fn assert_nothing_served(ts: &TestServer, id: Uuid) {
    for path in [
        format!("/hls/{id}/master.m3u8"),
        format!("/hls/{id}/source/index.m3u8"),
        format!("/dash/{id}/manifest.mpd"),
    ] {
        let status = ts.get(&path).await.status();
        assert_eq!(
            status.as_u16(),
            404,
            "{path} must be 404 after refused publishes, got {status}"
        );
    }
    assert_eq!(
        ts.status(id).await,
        "PENDING",
        "a refused publish must leave the stream PENDING"
    );
    assert!(
        ts.server.store.summary(id).is_none(),
        "no media may be opened for a refused publish"
    );
    assert!(
        !ts.server.hub.is_live(id),
        "a refused publish must not be live in the hub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_garbage_and_revoked_keys_are_refused() {
    let logs = capture_logs();
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("keys: refused").await;

    // Well-formed but unknown (no row with its prefix).
    let unknown = well_formed_unknown_key();
    assert_eq!(
        unknown.len(),
        key.len(),
        "the forged key must look like a real one"
    );
    assert_refused(&ts, &logs, &unknown, "unknown stream key").await;

    // Well-formed, same lookup prefix as the real key, different secret: the
    // row is found and the hash comparison must reject it.
    let mut same_prefix: Vec<char> = key.chars().collect();
    let last = same_prefix.len() - 1;
    same_prefix[last] = if same_prefix[last] == 'a' { 'b' } else { 'a' };
    let same_prefix: String = same_prefix.into_iter().collect();
    assert_ne!(same_prefix, key);
    assert_refused(&ts, &logs, &same_prefix, "unknown stream key").await;

    // Not a key at all.
    assert_refused(&ts, &logs, "nonsense", "unknown stream key").await;
    assert_nothing_served(&ts, id).await;

    // A revoked key: refused, and the log names the revoked key (by id, not value).
    let (revoked_id, revoked_key) = ts.create_stream("keys: revoked").await;
    let keys = ts
        .server
        .repo
        .list_keys(revoked_id)
        .await
        .expect("list keys");
    assert_eq!(keys.len(), 1, "a new stream has exactly one key");
    let key_id = keys[0].id;
    ts.server.repo.revoke_key(key_id).await.expect("revoke key");
    let log = assert_refused(&ts, &logs, &revoked_key, "revoked").await;
    assert!(
        log.contains(&key_id.to_string()),
        "the refusal should name the revoked key id {key_id}:\n{log}"
    );
    assert_nothing_served(&ts, revoked_id).await;

    // The real key still works afterwards: refusals do not poison the stream.
    let child = ffmpeg_publish(&ts.publish_url(&key), &small());
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "the valid key must still publish after refusals"
    );
    let (ok, err) = wait_child(child, Duration::from_secs(30)).await;
    assert!(ok, "publish with the valid key failed: {err}");
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_key_is_never_logged_or_stored() {
    let logs = capture_logs();
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("keys: secrecy").await;
    // A second key for the same stream, made the way `keys create` would.
    let (_, second_key) = ts.server.repo.add_key(id).await.expect("add key");

    let child = ffmpeg_publish(&ts.publish_url(&key), &small());
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "publish went live"
    );
    let (ok, err) = wait_child(child, Duration::from_secs(30)).await;
    assert!(ok, "publish failed: {err}");
    assert!(
        ts.wait_status(id, "ENDED", Duration::from_secs(3)).await,
        "stream ENDED"
    );

    // The logs covered this publish (so their silence about the key means something).
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("publish accepted") && l.contains(&id.to_string())),
        "expected a `publish accepted` line with the stream id in the captured logs"
    );
    for secret in [&key, &second_key] {
        // `sk_` + 8-character lookup prefix (stored in clear) + 32 secret characters.
        let hidden = &secret[3 + 8..];
        assert!(
            !text.contains(secret.as_str()),
            "a plaintext stream key was written to the logs"
        );
        assert!(
            !text.contains(hidden),
            "the secret part of a stream key was written to the logs"
        );
    }

    // Stop the server so SQLite has written everything, then read the raw files.
    let dir = ts.dir.path().to_path_buf();
    ts.server.shutdown().await;
    // The write connection may close (and checkpoint its WAL away) just
    // after shutdown returns: read until a listing reads back whole.
    let (db_bytes, files) = 'read: {
        for _ in 0..25 {
            let mut db_bytes = Vec::new();
            let mut files = Vec::new();
            let mut whole = true;
            for entry in std::fs::read_dir(&dir).expect("read data dir") {
                let path = entry.expect("dir entry").path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("streaming.db") {
                    match std::fs::read(&path) {
                        Ok(b) => db_bytes.extend(b),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => whole = false,
                        Err(e) => panic!("read {name}: {e}"),
                    }
                    files.push(name);
                }
            }
            if whole {
                break 'read (db_bytes, files);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the database files kept changing after shutdown");
    };
    assert!(
        files.iter().any(|f| f == "streaming.db"),
        "SQLite file not found in {dir:?}: {files:?}"
    );
    let contains = |needle: &str| {
        db_bytes
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    // Positive control: the clear lookup prefix is there, so these are the right files.
    assert!(
        contains(&key[3..3 + 8]),
        "the key's lookup prefix should be stored ({files:?})"
    );
    for secret in [&key, &second_key] {
        assert!(
            !contains(secret),
            "a plaintext stream key is stored in {files:?}"
        );
        assert!(
            !contains(&secret[3 + 8..]),
            "the secret part of a stream key is stored in {files:?}"
        );
    }
}
