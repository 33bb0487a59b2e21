//! Secrets and operator surfaces (issue 9, points 5 and 8), on the real
//! server binary:
//!
//! - an empty or short admin token is refused at start with a clear error;
//! - secrets given as files (`*_FILE`) work, and no secret or stream key
//!   appears in any line the server writes, even at debug level;
//! - `/metrics` needs its bearer token unless made public, or served on its
//!   own listener;
//! - CORS per route class: playback routes and beacons for the configured
//!   playback origins (any by default), the admin API for none unless
//!   configured; preflights answered; the WebSocket checks `Origin`.

mod common;

use std::time::Duration;

use common::abuse::{ADMIN_TOKEN, LivePublish, METRICS_TOKEN, ServerProcess, banner_addr};
use common::run;

async fn start_fails(env: &[(&str, &str)], data_dir: &std::path::Path) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_streaming-server"));
    cmd.args(["--rtmp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("serve")
        .env_remove("STREAMING_ADMIN_TOKEN")
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("the server exits on a bad token instead of serving")
        .unwrap();
    assert!(!out.status.success(), "the server started with a bad token");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn empty_or_short_admin_tokens_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_fails(&[("STREAMING_ADMIN_TOKEN", "tooshort")], dir.path()).await;
    assert!(err.contains("too short") && err.contains("32"), "{err}");
    assert!(
        !err.contains("tooshort"),
        "the token itself is not echoed: {err}"
    );
    let file = dir.path().join("token");
    std::fs::write(&file, "\n").unwrap();
    let err = start_fails(
        &[("STREAMING_ADMIN_TOKEN_FILE", file.to_str().unwrap())],
        dir.path(),
    )
    .await;
    assert!(err.contains("empty"), "{err}");
    // An empty generated-token file in the data dir is a mistake too.
    std::fs::write(dir.path().join("admin_token"), "").unwrap();
    let err = start_fails(&[], dir.path()).await;
    assert!(
        err.contains("empty") && err.contains("admin_token"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_files_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let admin = "file-admin-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    let metrics = "file-metrics-token-0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let session = "file-session-secret-5e4d3c2b1a09f8e7d6c5b4a392817060";
    for (name, value) in [("admin", admin), ("metrics", metrics), ("session", session)] {
        std::fs::write(secrets.join(name), format!("{value}\n")).unwrap();
    }
    let path = |n: &str| secrets.join(n).display().to_string();
    // The tokens come only from files here.
    let env = [
        ("STREAMING_ADMIN_TOKEN_FILE", path("admin")),
        ("STREAMING_METRICS_TOKEN_FILE", path("metrics")),
        ("STREAMING_SESSION_SECRET_FILE", path("session")),
        ("RUST_LOG", "debug".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = ServerProcess::start_custom(&dir.path().join("data"), "", &env, false).await;
    // Use every secret: create a stream over the API, publish with its key,
    // try wrong tokens and a wrong key, scrape /metrics.
    let created: serde_json::Value = server
        .client
        .post(server.url("/api/v1/streams"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "secret keeper"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["stream_key"].as_str().expect("created").to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let r = server
        .client
        .get(server.url("/api/v1/streams"))
        .bearer_auth("wrong-token-wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth(metrics)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the metrics token from its file works");
    common::require("ffmpeg", "ffmpeg");
    let url = format!("rtmp://{}/live/{key}", server.rtmp_addr);
    let (ok, _, _) = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=15",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-f",
            "flv",
            &url,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(ok, "publishing with the key works");
    let wrong = format!("rtmp://{}/live/{key}x", server.rtmp_addr);
    let _ = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=15",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-f",
            "flv",
            &wrong,
        ],
        Duration::from_secs(30),
    )
    .await;
    let r = server
        .client
        .get(server.url(&format!("/api/v1/streams/{id}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = server.logs();
    assert!(logs.lines().count() > 20, "debug logs were written: {logs}");
    for (what, secret) in [
        ("admin token", admin),
        ("metrics token", metrics),
        ("session secret", session),
        ("stream key", key.as_str()),
    ] {
        assert!(
            !logs.contains(secret),
            "the {what} appears in the server's output"
        );
    }
    // Nor the key's secret part (after its public prefix).
    assert!(!logs.contains(&key[11..]), "part of the stream key leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_their_token_unless_public_or_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("a"), "").await;
    let get = |token: Option<&str>| {
        let mut r = server.client.get(server.url("/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some(ADMIN_TOKEN)).await.unwrap().status(), 401);
    let ok = get(Some(METRICS_TOKEN)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("streaming_limit_hits_total")
    );

    let public = ServerProcess::start(&dir.path().join("b"), "[metrics]\npublic = true\n").await;
    let r = public
        .client
        .get(public.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "metrics.public = true serves it to anyone");

    let separate = ServerProcess::start(
        &dir.path().join("c"),
        "[metrics]\nlisten_addr = \"127.0.0.1:0\"\n[http]\nheader_read_timeout_secs = 2\n",
    )
    .await;
    let addr = banner_addr(&separate.banner, "metrics http://").expect("metrics listener");
    let r = separate
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the metrics listener needs no token");
    let r = separate
        .client
        .get(format!("http://{addr}/api/v1/streams"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the metrics listener serves nothing else");
    // It has the HTTP listeners' caps and deadlines: a silent connection is cut.
    let mut silent = common::abuse::connect_from(2, addr).await.unwrap();
    let cut = common::abuse::closed_within(&mut silent, Duration::from_secs(6)).await;
    assert!(
        cut.is_some(),
        "a silent connection to the metrics listener is cut"
    );
    let r = separate
        .client
        .get(separate.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the main listener still wants the token");
}

async fn preflight(
    server: &ServerProcess,
    path: &str,
    origin: &str,
    method: &str,
) -> reqwest::Response {
    server
        .client
        .request(reqwest::Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

fn acao(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_per_route_class() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults: playback from anywhere, the admin API from nowhere.
    let server = ServerProcess::start(&dir.path().join("a"), "").await;
    let mut live = LivePublish::start(&server, 30).await;
    let id = live.stream_id;
    let master = format!("/hls/{id}/master.m3u8");
    let r = preflight(&server, &master, "https://anyone.example", "GET").await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(acao(&r).as_deref(), Some("*"));
    let beacon = format!("/api/v1/sessions/{}/events", uuid::Uuid::new_v4());
    let r = preflight(&server, &beacon, "https://anyone.example", "POST").await;
    assert_eq!(r.status(), 204);
    assert_eq!(acao(&r).as_deref(), Some("*"));
    let r = preflight(&server, "/api/v1/streams", "https://anyone.example", "POST").await;
    assert_eq!(r.status(), 403, "the admin API allows no origin by default");
    assert_eq!(acao(&r), None);
    let r = server
        .client
        .get(server.url("/api/v1/streams"))
        .header("origin", "https://anyone.example")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&r), None, "no CORS grant on admin answers");

    // Configured origins.
    let toml = "[cors]\nplayback_origins = [\"https://player.example\"]\nadmin_origins = [\"https://admin.example\"]\n";
    let strict = ServerProcess::start(&dir.path().join("b"), toml).await;
    let (sid, _) = strict.create_stream("cors").await;
    let status = format!("/api/v1/streams/{sid}/status");
    let r = preflight(&strict, &status, "https://player.example", "GET").await;
    assert_eq!(r.status(), 204);
    assert_eq!(acao(&r).as_deref(), Some("https://player.example"));
    let r = preflight(&strict, &status, "https://evil.example", "GET").await;
    assert_eq!(r.status(), 403);
    assert_eq!(acao(&r), None);
    let r = preflight(&strict, "/api/v1/streams", "https://admin.example", "POST").await;
    assert_eq!(r.status(), 204);
    assert_eq!(acao(&r).as_deref(), Some("https://admin.example"));
    let allow_headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    let r = strict
        .client
        .get(strict.url("/api/v1/streams"))
        .header("origin", "https://admin.example")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some("https://admin.example"));
    let r = preflight(
        &strict,
        &format!("/hls/{sid}/master.m3u8"),
        "https://evil.example",
        "GET",
    )
    .await;
    assert_eq!(
        acao(&r),
        None,
        "playback CORS follows the configured origins"
    );
    // The WebSocket checks Origin.
    let ws = |origin: &'static str| {
        let url = format!("ws://{}/ws/stream/{sid}", strict.http_addr);
        async move {
            let mut req =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                    .unwrap();
            req.headers_mut().insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(req).await
        }
    };
    match ws("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a foreign origin must be refused: {other:?}"),
    }
    assert!(ws("https://player.example").await.is_ok());
    assert!(strict.limit_hits("ws_origin").await >= 1);
    assert!(live.running());
}
