//! Two servers against one PostgreSQL database, as replicas behind a load
//! balancer: what one creates the other serves, a key revoked on one is
//! refused by the other's ingest, and their racing activations of one
//! stream have exactly one winner.

mod common;

use chrono::Utc;
use common::{TestServer, send_json};
use reqwest::Method;
use serde_json::json;
use streaming_core::CoreError;
use streaming_core::model::StreamStatus;
use streaming_core::repo::KeyCheck;
use streaming_core::repo::scratch::ScratchDatabase;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_servers_share_one_database() {
    let db = ScratchDatabase::create().await;
    let url = db.url().to_string();
    let a = TestServer::start_with(|c| c.database_url = Some(url.clone().into())).await;
    let b = TestServer::start_with(|c| c.database_url = Some(url.clone().into())).await;

    let (status, _, created) = send_json(
        a.admin(Method::POST, "/api/v1/streams")
            .json(&json!({ "name": "shared" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let key = created["stream_key"].as_str().unwrap();
    let (status, _, seen) = send_json(b.admin(Method::GET, &format!("/api/v1/streams/{id}"))).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["name"], "shared");

    let path = format!(
        "/api/v1/streams/{id}/keys/{}",
        created["key_id"].as_str().unwrap()
    );
    assert_eq!(send_json(b.admin(Method::DELETE, &path)).await.0, 200);
    assert!(matches!(
        a.server.repo.check_key(key).await.unwrap(),
        KeyCheck::Revoked { .. }
    ));

    // Both replicas race to make the stream ACTIVE, ten times each.
    let id: Uuid = id.parse().unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let repo = if i % 2 == 0 {
            a.server.repo.clone()
        } else {
            b.server.repo.clone()
        };
        tasks.push(tokio::spawn(async move {
            repo.transition(id, StreamStatus::Active, Utc::now()).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(CoreError::InvalidTransition {
                from: StreamStatus::Active,
                ..
            }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins, 1);
    let (_, _, listed) = send_json(a.admin(Method::GET, "/api/v1/streams?status=ACTIVE")).await;
    assert_eq!(listed["total"], 1, "{listed}");
    a.server.shutdown().await;
    b.server.shutdown().await;
    drop(db);
}
