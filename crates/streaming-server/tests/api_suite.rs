//! The REST API integration suite, run twice: on SQLite and on PostgreSQL
//! (a scratch database on 127.0.0.1:5432 or `DATABASE_URL`). Each case is a
//! function of a running server; the macro at the bottom makes a
//! `sqlite::*` and a `postgres::*` test of each.
//!
//! Every test calls `common::capture_logs()` first (the key-secrecy case
//! reads the captured logs).

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{
    Backend, BackendServer, Publish, TestServer, assert_problem, capture_logs, ffmpeg_publish,
    send_json, wait_child,
};
use reqwest::Method;
use serde_json::{Value, json};
use streaming_core::model::{QualityLevel, StreamMetrics, ViewerSession};
use uuid::Uuid;

fn small(seconds: f64) -> Publish {
    Publish {
        width: 320,
        height: 240,
        fps: 15,
        seconds,
        gop_secs: 1,
        video_kbps: 300,
    }
}

async fn create(ts: &TestServer, name: &str) -> Value {
    let got = send_json(
        ts.admin(Method::POST, "/api/v1/streams")
            .json(&json!({ "name": name })),
    )
    .await;
    assert_eq!(got.0, 201, "{}", got.2);
    got.2
}

async fn streams_crud_and_paging(ts: BackendServer) {
    // Create: 201, Location, everything a broadcaster needs, the key once.
    let (status, headers, created) = send_json(
        ts.admin(Method::POST, "/api/v1/streams")
            .json(&json!({ "name": "  Morning show " })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        headers["location"],
        format!("/api/v1/streams/{id}").as_str()
    );
    assert_eq!(created["name"], "Morning show");
    assert_eq!(created["status"], "PENDING");
    let key = created["stream_key"].as_str().unwrap();
    assert!(key.starts_with("sk_") && key.len() == 43, "{created}");
    assert_eq!(created["rtmp_url"], ts.rtmp);
    assert_eq!(created["publish_url"], format!("{}/{key}", ts.rtmp));
    assert_eq!(
        created["hls_url"],
        ts.url(&format!("/hls/{id}/master.m3u8"))
    );
    assert_eq!(
        created["dash_url"],
        ts.url(&format!("/dash/{id}/manifest.mpd"))
    );
    assert_eq!(created["watch_url"], ts.url(&format!("/watch/{id}")));

    // Get: status, viewers, qualities, times, URLs; never the key.
    let (status, _, got) = send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{id}"))).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["status"], "PENDING");
    assert_eq!(got["concurrent_viewers"], 0);
    assert_eq!(got["qualities"], json!([]));
    assert_eq!(got["live"], false);
    assert!(
        got["started_at"].is_null() && got["ended_at"].is_null(),
        "{got}"
    );
    assert_eq!(got["created_at"], created["created_at"]);
    assert!(!got.to_string().contains(key), "GET shows the key: {got}");

    // List: newest first, paged, filtered, totals.
    for i in 0..4 {
        create(&ts, &format!("show {i}")).await;
    }
    let (status, _, page1) = send_json(ts.admin(Method::GET, "/api/v1/streams?per_page=2")).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(
        (
            page1["total"].as_u64(),
            page1["page"].as_u64(),
            page1["per_page"].as_u64()
        ),
        (Some(5), Some(1), Some(2))
    );
    assert_eq!(page1["items"][0]["name"], "show 3");
    let (_, _, page3) = send_json(ts.admin(Method::GET, "/api/v1/streams?per_page=2&page=3")).await;
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert_eq!(page3["items"][0]["id"], id.as_str(), "the oldest is last");
    let (_, _, beyond) =
        send_json(ts.admin(Method::GET, "/api/v1/streams?per_page=2&page=9")).await;
    assert_eq!(beyond["items"], json!([]));
    assert_eq!(beyond["total"], 5);
    let uuid: Uuid = id.parse().unwrap();
    ts.server
        .repo
        .transition(
            uuid,
            streaming_core::model::StreamStatus::Active,
            Utc::now(),
        )
        .await
        .unwrap();
    let (_, _, active) = send_json(ts.admin(Method::GET, "/api/v1/streams?status=ACTIVE")).await;
    assert_eq!(active["total"], 1, "{active}");
    assert_eq!(active["items"][0]["id"], id.as_str());
    assert!(active["items"][0]["started_at"].is_string());
    let (_, _, pending) =
        send_json(ts.admin(Method::GET, "/api/v1/streams?status=PENDING&per_page=100")).await;
    assert_eq!(pending["total"], 4);
    let listing = ts
        .admin(Method::GET, "/api/v1/streams")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(key), "listing shows the key");

    // Rename.
    let (status, _, renamed) = send_json(
        ts.admin(Method::PATCH, &format!("/api/v1/streams/{id}"))
            .json(&json!({ "name": "Evening show" })),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "Evening show");
    assert_eq!(renamed["status"], "ACTIVE");
    let (_, _, public) = send_json(
        ts.client
            .get(ts.url(&format!("/api/v1/streams/{id}/status"))),
    )
    .await;
    assert_eq!(
        public,
        json!({ "id": id, "name": "Evening show", "status": "ACTIVE" })
    );
    for bad in [
        json!({ "name": "   " }),
        json!({ "name": "x".repeat(201) }),
        json!({ "name": "a\u{7}b" }),
    ] {
        let got = send_json(
            ts.admin(Method::PATCH, &format!("/api/v1/streams/{id}"))
                .json(&bad),
        )
        .await;
        assert_problem(&got, 422, "invalid-input");
    }

    // Delete: 204, then gone everywhere (404 problem), keys with it.
    let resp = ts
        .admin(Method::DELETE, &format!("/api/v1/streams/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    for path in [
        format!("/api/v1/streams/{id}"),
        format!("/api/v1/streams/{id}/keys"),
        format!("/api/v1/streams/{id}/viewers"),
        format!("/api/v1/metrics/{id}"),
        format!("/api/v1/analytics/{id}"),
    ] {
        assert_problem(
            &send_json(ts.admin(Method::GET, &path)).await,
            404,
            "not-found",
        );
    }
    assert_problem(
        &send_json(
            ts.client
                .get(ts.url(&format!("/api/v1/streams/{id}/status"))),
        )
        .await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(Method::DELETE, &format!("/api/v1/streams/{id}"))).await,
        404,
        "not-found",
    );
    assert_eq!(
        ts.server.repo.check_key(key).await.unwrap(),
        streaming_core::repo::KeyCheck::Unknown
    );
    ts.ts.server.shutdown().await;
}

async fn keys_create_list_rotate_revoke(ts: BackendServer) {
    let created = create(&ts, "keys").await;
    let id = created["id"].as_str().unwrap();
    let first_key = created["stream_key"].as_str().unwrap().to_string();
    let keys_path = format!("/api/v1/streams/{id}/keys");

    let (status, _, second) = send_json(ts.admin(Method::POST, &keys_path)).await;
    assert_eq!(status, 201, "{second}");
    let second_key = second["stream_key"].as_str().unwrap().to_string();
    assert_ne!(second_key, first_key);
    assert_eq!(second["prefix"], &second_key[..11]);
    assert_eq!(second["publish_url"], format!("{}/{second_key}", ts.rtmp));
    assert_eq!(second["revoked_keys"], 0);

    let (status, _, list) = send_json(ts.admin(Method::GET, &keys_path)).await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], created["key_id"]);
    assert_eq!(items[0]["prefix"], &first_key[..11]);
    assert_eq!(items[1]["id"], second["id"]);
    assert!(
        items
            .iter()
            .all(|k| k["revoked"] == false && k["revoked_at"].is_null())
    );
    let text = list.to_string();
    assert!(
        !text.contains(&first_key) && !text.contains(&second_key),
        "a key was listed: {text}"
    );

    // Revoke the first: 200 with revoked_at; idempotent; refused by ingest's check.
    let revoke_path = format!("{keys_path}/{}", created["key_id"].as_str().unwrap());
    let (status, _, revoked) = send_json(ts.admin(Method::DELETE, &revoke_path)).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked"], true);
    let (status, _, again) = send_json(ts.admin(Method::DELETE, &revoke_path)).await;
    assert_eq!(status, 200);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    assert!(matches!(
        ts.server.repo.check_key(&first_key).await.unwrap(),
        streaming_core::repo::KeyCheck::Revoked { .. }
    ));

    // A key of another stream, or no key at all: 404.
    let other = create(&ts, "other").await;
    let foreign = format!("{keys_path}/{}", other["key_id"].as_str().unwrap());
    assert_problem(
        &send_json(ts.admin(Method::DELETE, &foreign)).await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(Method::DELETE, &format!("{keys_path}/{}", Uuid::new_v4()))).await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(Method::DELETE, &format!("{keys_path}/not-a-uuid"))).await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(
            Method::POST,
            &format!("/api/v1/streams/{}/keys", Uuid::new_v4()),
        ))
        .await,
        404,
        "not-found",
    );

    // Rotate: a new key, every other one revoked.
    let (status, _, rotated) =
        send_json(ts.admin(Method::POST, &format!("{keys_path}?rotate=true"))).await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["revoked_keys"], 1);
    let (_, _, list) = send_json(ts.admin(Method::GET, &keys_path)).await;
    let live: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked"] == false)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], rotated["id"]);
    assert!(matches!(
        ts.server.repo.check_key(&second_key).await.unwrap(),
        streaming_core::repo::KeyCheck::Revoked { .. }
    ));
    ts.ts.server.shutdown().await;
}

async fn auth_and_problem_documents(ts: BackendServer) {
    let id = create(&ts, "auth").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let admin_ops = [
        (Method::GET, "/api/v1/streams".to_string()),
        (Method::POST, "/api/v1/streams".to_string()),
        (Method::GET, format!("/api/v1/streams/{id}")),
        (Method::PATCH, format!("/api/v1/streams/{id}")),
        (Method::DELETE, format!("/api/v1/streams/{id}")),
        (Method::GET, format!("/api/v1/streams/{id}/keys")),
        (Method::POST, format!("/api/v1/streams/{id}/keys")),
        (
            Method::DELETE,
            format!("/api/v1/streams/{id}/keys/{}", Uuid::new_v4()),
        ),
        (Method::GET, format!("/api/v1/streams/{id}/viewers")),
        (Method::GET, format!("/api/v1/metrics/{id}")),
        (Method::GET, format!("/api/v1/analytics/{id}")),
    ];
    for (method, path) in &admin_ops {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("test-admin-token-0123456789abcdef"),
            Some("Basic dGVzdA=="),
        ] {
            let mut req = ts
                .client
                .request(method.clone(), ts.url(path))
                .json(&json!({ "name": "x" }));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let got = send_json(req).await;
            assert_problem(&got, 401, "unauthorized");
            assert_eq!(got.1["www-authenticate"], "Bearer", "{method} {path}");
        }
    }
    assert_eq!(
        ts.server.repo.list_streams(None).await.unwrap().len(),
        1,
        "nothing changed without the token"
    );

    // Bodies: malformed JSON 400, wrong media type 415, wrong shape 422.
    let post = || ts.admin(Method::POST, "/api/v1/streams");
    let got = send_json(
        post()
            .header("content-type", "application/json")
            .body("{\"name\": "),
    )
    .await;
    assert_problem(&got, 400, "invalid-body");
    let got = send_json(
        post()
            .header("content-type", "text/plain")
            .body("{\"name\": \"x\"}"),
    )
    .await;
    assert_problem(&got, 415, "unsupported-media-type");
    let got = send_json(post()).await;
    assert_problem(&got, 415, "unsupported-media-type");
    for bad in [
        json!({}),
        json!({ "name": 5 }),
        json!({ "name": "x", "extra": true }),
        json!([]),
    ] {
        assert_problem(&send_json(post().json(&bad)).await, 422, "invalid-input");
    }
    let got = send_json(post().json(&json!({ "name": "" }))).await;
    assert_problem(&got, 422, "invalid-input");

    // Queries: out of range or malformed, 400.
    for q in [
        "page=0",
        "per_page=0",
        "per_page=101",
        "page=x",
        "status=bogus",
        "page=-1",
        "page=99999999999",
    ] {
        let got = send_json(ts.admin(Method::GET, &format!("/api/v1/streams?{q}"))).await;
        assert_problem(&got, 400, "invalid-query");
    }
    for q in ["step=2s", "from=yesterday", "to=1"] {
        let got = send_json(ts.admin(Method::GET, &format!("/api/v1/metrics/{id}?{q}"))).await;
        assert_problem(&got, 400, "invalid-query");
    }
    // Reversed: empty; longer than a page: the first page and where the next starts.
    let (status, _, got) = send_json(ts.admin(
        Method::GET,
        &format!("/api/v1/metrics/{id}?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
    ))
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["points"], json!([]), "{got}");
    let (status, _, got) = send_json(ts.admin(
        Method::GET,
        &format!("/api/v1/metrics/{id}?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&step=1s"),
    ))
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["next_from"], "2026-01-01T02:46:40Z",
        "10,000 s later: {got}"
    );
    let got = send_json(ts.admin(
        Method::GET,
        &format!("/api/v1/analytics/{id}?from=tomorrow"),
    ))
    .await;
    assert_problem(&got, 400, "invalid-query");

    // Routes: unknown 404, wrong method 405, bad ids 404 — all problems.
    assert_problem(
        &send_json(ts.admin(Method::GET, "/api/v1/nope")).await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(Method::GET, "/api/v1")).await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(Method::PUT, "/api/v1/streams")).await,
        405,
        "method-not-allowed",
    );
    assert_problem(
        &send_json(ts.admin(Method::GET, "/api/v1/streams/not-a-uuid")).await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(Method::GET, "/api/v1/streams/%FF%FE")).await,
        404,
        "not-found",
    );
    assert_problem(
        &send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{}", Uuid::new_v4()))).await,
        404,
        "not-found",
    );
    ts.ts.server.shutdown().await;
}

async fn viewers_metrics_and_qualities(ts: BackendServer) {
    let id: Uuid = create(&ts, "analytics").await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Empty until analytics fill them, in their final shapes.
    let (status, _, viewers) =
        send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{id}/viewers"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        viewers,
        json!({ "stream_id": id, "items": [], "page": 1, "per_page": 20, "total": 0, "concurrent_viewers": 0 })
    );
    let (status, _, metrics) =
        send_json(ts.admin(Method::GET, &format!("/api/v1/metrics/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(metrics["points"], json!([]));
    assert_eq!(metrics["step"], "1s", "10 min by default, at 1 s");

    // Filled through the repository, they show up.
    let repo = &ts.server.repo;
    let now = streaming_core::model::now();
    for i in 0..3 {
        repo.upsert_viewer_session(&ViewerSession {
            id: Uuid::new_v4(),
            stream_id: id,
            protocol: "hls".into(),
            quality: Some("source".into()),
            user_agent: Some("test".into()),
            started_at: now - chrono::Duration::seconds(10 - i),
            last_seen_at: now,
            ended_at: (i == 0).then_some(now),
            bytes_sent: 1000 * i as u64,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for i in 0..3 {
        repo.record_metrics(&StreamMetrics {
            stream_id: id,
            at: now - chrono::Duration::seconds(30 - i * 10),
            concurrent_viewers: i as u64,
            ingest_bitrate_kbps: 1500,
            egress_bitrate_kbps: 1500 * i as u64,
            frames_dropped: 0,
            segments_produced: i as u64,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    // Active viewers are the in-memory sessions (the repository has the
    // history): two viewers came back with their session ids.
    for _ in 0..2 {
        let sid = ts.server.sessions.start(id, "hls", None);
        ts.server
            .sessions
            .touch(sid, id, Some("source"), 1000, true);
    }
    repo.set_quality_levels(
        id,
        &[QualityLevel {
            name: "source".into(),
            width: Some(1280),
            height: Some(720),
            bitrate_kbps: Some(2500),
            frame_rate: Some(30.0),
            codec: Some("avc1.64001f".into()),
        }],
    )
    .await
    .unwrap();
    let (_, _, viewers) = send_json(ts.admin(
        Method::GET,
        &format!("/api/v1/streams/{id}/viewers?per_page=2"),
    ))
    .await;
    assert_eq!(
        (
            viewers["total"].as_u64(),
            viewers["concurrent_viewers"].as_u64()
        ),
        (Some(3), Some(2)),
        "{viewers}"
    );
    assert_eq!(viewers["items"].as_array().unwrap().len(), 2);
    assert_eq!(viewers["items"][0]["bytes_sent"], 2000, "newest first");
    let (_, _, active) = send_json(ts.admin(
        Method::GET,
        &format!("/api/v1/streams/{id}/viewers?active=true"),
    ))
    .await;
    assert_eq!(active["total"], 2);
    assert!(
        active["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["active"] == true)
    );
    let ts_of = |secs: i64| {
        (now - chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let (status, _, metrics) = send_json(
        ts.admin(Method::GET, &format!("/api/v1/metrics/{id}"))
            .query(&[("from", ts_of(60)), ("step", "1s".into())]),
    )
    .await;
    assert_eq!(status, 200, "{metrics}");
    let samples = metrics["points"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(
        (
            samples[0]["concurrent_viewers"].as_f64(),
            samples[1]["concurrent_viewers"].as_f64()
        ),
        (Some(0.0), Some(1.0)),
        "oldest first"
    );
    let (status, _, recent) = send_json(
        ts.admin(Method::GET, &format!("/api/v1/metrics/{id}"))
            .query(&[("from", ts_of(15))]),
    )
    .await;
    assert_eq!(status, 200, "{recent}");
    assert_eq!(recent["points"].as_array().unwrap().len(), 1);
    let (status, _, health) =
        send_json(ts.admin(Method::GET, &format!("/api/v1/analytics/{id}"))).await;
    assert_eq!(status, 200, "{health}");
    assert!(health["health_score"].is_u64(), "{health}");
    assert_eq!(health["summary"]["samples"], 3);
    let (_, _, detail) = send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{id}"))).await;
    assert_eq!(detail["concurrent_viewers"], 2);
    assert_eq!(
        detail["qualities"],
        json!([{ "name": "source", "width": 1280, "height": 720, "bitrate_kbps": 2500, "frame_rate": 30.0, "codec": "avc1.64001f" }])
    );
    ts.ts.server.shutdown().await;
}

async fn health_ready_openapi_and_docs(ts: BackendServer) {
    let (status, _, health) = send_json(ts.client.get(ts.url("/health"))).await;
    assert_eq!((status.as_u16(), health), (200, json!({ "status": "ok" })));
    let (status, _, ready) = send_json(ts.client.get(ts.url("/ready"))).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    let backend = match ts.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(ready["checks"]["database"]["status"], "pass", "{ready}");
    assert!(
        ready["checks"]["database"]["detail"]
            .as_str()
            .unwrap()
            .contains(backend),
        "{ready}"
    );
    assert_eq!(ready["checks"]["listeners"]["status"], "pass");
    let listeners = ready["checks"]["listeners"]["detail"].as_str().unwrap();
    assert!(
        listeners.contains(&ts.server.rtmp_addr.to_string())
            && listeners.contains(&ts.server.http_addr.to_string()),
        "{ready}"
    );
    // FFmpeg is a degraded check, never a failure (the test machines have it).
    assert!(
        matches!(
            ready["checks"]["ffmpeg"]["status"].as_str(),
            Some("pass" | "warn")
        ),
        "{ready}"
    );

    // The OpenAPI 3.1 document describes every operation the API serves.
    let (status, _, doc) = send_json(ts.client.get(ts.url("/api/openapi.json"))).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/streams", &["get", "post"][..]),
        ("/api/v1/streams/{id}", &["get", "patch", "delete"][..]),
        ("/api/v1/streams/{id}/status", &["get"][..]),
        ("/api/v1/streams/{id}/keys", &["get", "post"][..]),
        ("/api/v1/streams/{id}/keys/{key_id}", &["delete"][..]),
        ("/api/v1/streams/{id}/viewers", &["get"][..]),
        ("/api/v1/metrics/{stream_id}", &["get"][..]),
        ("/api/v1/analytics/{stream_id}", &["get"][..]),
        ("/api/v1/sessions/{session_id}/events", &["post"][..]),
        ("/health", &["get"][..]),
        ("/ready", &["get"][..]),
    ] {
        for m in methods {
            assert!(
                paths[path][m].is_object(),
                "{m} {path} missing from the OpenAPI document"
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    // Swagger UI works offline: the page and every file it loads come from us.
    let (status, h, body) =
        common::request(&ts.client, Method::GET, &ts.url("/api/docs/"), &[]).await;
    assert_eq!(status, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = String::from_utf8_lossy(&body).into_owned();
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            assert!(
                !target.contains("://") && !target.starts_with("//"),
                "the docs page loads {target} from elsewhere"
            );
            assets.push(target.trim_start_matches("./").to_string());
        }
    }
    assert!(
        assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")),
        "{assets:?}"
    );
    for asset in &assets {
        let (status, _, _) = common::request(
            &ts.client,
            Method::GET,
            &ts.url(&format!("/api/docs/{asset}")),
            &[],
        )
        .await;
        assert_eq!(status, 200, "/api/docs/{asset}");
    }
    let init = ts
        .get_text("/api/docs/swagger-initializer.js")
        .await
        .expect("initializer");
    assert!(
        init.contains("/api/openapi.json") && init.contains("\"validatorUrl\": \"none\""),
        "{init}"
    );
    ts.ts.server.shutdown().await;
}

/// A key created by the API publishes; revoking it cuts the live publish
/// within 2 s and a new publish with it is refused.
async fn revoke_cuts_a_live_publish(ts: BackendServer) {
    let created = create(&ts, "revoke me").await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let publish_url = created["publish_url"].as_str().unwrap().to_string();
    let mut encoder = ffmpeg_publish(&publish_url, &small(60.0));
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(20)).await,
        "the API key did not publish"
    );
    ts.wait_for_text(
        &format!("/hls/{id}/master.m3u8"),
        Duration::from_secs(10),
        |_| true,
    )
    .await
    .expect("the stream is served");
    let (_, _, detail) = send_json(ts.admin(Method::GET, &format!("/api/v1/streams/{id}"))).await;
    assert_eq!(detail["live"], true, "{detail}");
    assert!(
        !detail["qualities"].as_array().unwrap().is_empty(),
        "a live stream offers its source: {detail}"
    );

    let revoked_at = Instant::now();
    let path = format!(
        "/api/v1/streams/{id}/keys/{}",
        created["key_id"].as_str().unwrap()
    );
    let (status, _, _) = send_json(ts.admin(Method::DELETE, &path)).await;
    assert_eq!(status, 200);
    let mut cut = None;
    while revoked_at.elapsed() < Duration::from_secs(5) {
        if !ts.server.hub.is_live(id) && cut.is_none() {
            cut = Some(revoked_at.elapsed());
        }
        if encoder.try_wait().unwrap().is_some() && cut.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut = cut.expect("the live publish was not cut after the key was revoked");
    assert!(
        cut <= Duration::from_secs(2),
        "the live publish was cut after {cut:?} (limit 2 s)"
    );
    let exited = encoder.try_wait().unwrap();
    assert!(
        exited.is_some(),
        "FFmpeg was still publishing 5 s after the revoke"
    );
    let _ = encoder.kill();
    assert!(ts.wait_status(id, "ENDED", Duration::from_secs(5)).await);

    // The revoked key is refused from now on.
    let child = ffmpeg_publish(&publish_url, &small(4.0));
    let (ok, err) = wait_child(child, Duration::from_secs(15)).await;
    assert!(
        !ok && err != "timed out",
        "a publish with the revoked key must fail quickly: {err}"
    );
    assert!(!ts.server.hub.is_live(id));
    assert_eq!(ts.status(id).await, "ENDED");
    ts.ts.server.shutdown().await;
}

/// No stream key in clear anywhere: not in the database (files or tables),
/// not in the logs, after creating, publishing and revoking.
async fn no_clear_key_anywhere(ts: BackendServer) {
    let logs = capture_logs();
    let mark = logs.mark();
    let created = create(&ts, "secret").await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_string();
    let (_, _, second) =
        send_json(ts.admin(Method::POST, &format!("/api/v1/streams/{id}/keys"))).await;
    let second_key = second["stream_key"].as_str().unwrap().to_string();
    let child = ffmpeg_publish(&format!("{}/{key}", ts.rtmp), &small(3.0));
    assert!(ts.wait_status(id, "ACTIVE", Duration::from_secs(20)).await);
    let (ok, err) = wait_child(child, Duration::from_secs(30)).await;
    assert!(ok, "publisher failed: {err}");
    send_json(ts.admin(
        Method::DELETE,
        &format!(
            "/api/v1/streams/{id}/keys/{}",
            second["id"].as_str().unwrap()
        ),
    ))
    .await;
    let secrets = [
        key.clone(),
        second_key.clone(),
        key[3..].to_string(),
        second_key[3..].to_string(),
    ];

    match ts.backend {
        Backend::Sqlite => {
            // The database, its WAL and anything else in the data dir.
            for entry in std::fs::read_dir(ts.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    let bytes = std::fs::read(&path).unwrap();
                    for s in &secrets {
                        assert!(
                            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                            "key in clear in {}",
                            path.display()
                        );
                    }
                }
            }
        }
        Backend::Postgres => {
            let rows = ts.db.as_ref().unwrap().dump_tables().await;
            assert!(rows.iter().any(|(t, _)| t == "stream_keys"), "{rows:?}");
            for (table, row) in rows {
                for s in &secrets {
                    assert!(
                        !row.contains(s.as_str()),
                        "key in clear in table {table}: {row}"
                    );
                }
            }
        }
    }
    let log = logs.since(mark);
    assert!(
        log.contains("publish accepted"),
        "the capture saw the publish:\n{log}"
    );
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "key in clear in the logs");
    }
    ts.ts.server.shutdown().await;
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::capture_logs();
                    super::$case(super::TestServer::start_on(super::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::capture_logs();
                    super::$case(super::TestServer::start_on(super::Backend::Postgres).await).await;
                }
            )*
        }
    };
}

both_backends!(
    streams_crud_and_paging,
    keys_create_list_rotate_revoke,
    auth_and_problem_documents,
    viewers_metrics_and_qualities,
    health_ready_openapi_and_docs,
    revoke_cuts_a_live_publish,
    no_clear_key_anywhere,
);
