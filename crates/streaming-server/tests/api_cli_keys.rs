//! `streaming-server keys create|list|revoke` go through the same
//! repositories as the API, on SQLite and on PostgreSQL: what the CLI
//! creates the API lists, what the CLI revokes ingest refuses.

mod common;

use std::time::Duration;

use common::{Backend, TestServer, run, send_json};
use reqwest::Method;
use serde_json::Value;
use streaming_core::repo::KeyCheck;

async fn cli(ts: &TestServer, database_url: &str, args: &[&str]) -> Value {
    let data_dir = ts.dir.path().display().to_string();
    let mut all = vec![
        "--data-dir",
        &data_dir,
        "--database-url",
        database_url,
        "keys",
    ];
    all.extend_from_slice(args);
    let (ok, out, err) = run(
        env!("CARGO_BIN_EXE_streaming-server"),
        &all,
        Duration::from_secs(30),
    )
    .await;
    assert!(ok, "streaming-server {all:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
}

async fn cli_keys_share_the_repository(backend: Backend) {
    let ts = TestServer::start_on(backend).await;
    let url = match &ts.db {
        Some(db) => db.url().to_string(),
        None => ts.server.config.database_url(),
    };
    let created = cli(&ts, &url, &["create", "--name", "from the CLI", "--json"]).await;
    let id = created["stream_id"].as_str().unwrap().to_string();
    let key = created["stream_key"].as_str().unwrap().to_string();
    assert!(
        created["rtmp_url"].is_string() && created["watch_url"].is_string(),
        "{created}"
    );

    // The API sees it; ingest's check accepts the key.
    let (status, _, got) = send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{id}"))).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "from the CLI");
    assert!(matches!(
        ts.server.repo.check_key(&key).await.unwrap(),
        KeyCheck::Valid { .. }
    ));

    let listed = cli(&ts, &url, &["list", "--json"]).await;
    let text = listed.to_string();
    assert!(text.contains(&id) && !text.contains(&key), "{listed}");

    let revoked = cli(&ts, &url, &["revoke", &id, "--json"]).await;
    assert_eq!(revoked["revoked_keys"], 1, "{revoked}");
    assert!(matches!(
        ts.server.repo.check_key(&key).await.unwrap(),
        KeyCheck::Revoked { .. }
    ));
    let (_, _, keys) =
        send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{id}/keys"))).await;
    assert_eq!(keys["items"][0]["revoked"], true, "{keys}");
    ts.ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cli_keys_share_the_repository() {
    cli_keys_share_the_repository(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cli_keys_share_the_repository() {
    cli_keys_share_the_repository(Backend::Postgres).await;
}
