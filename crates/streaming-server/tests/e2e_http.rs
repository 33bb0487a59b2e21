//! Acceptance: the HTTP surface seen by players, CDNs and operators: content
//! types, caching and validators, CORS, HEAD, the server clock, 404s (never
//! 500) for anything that does not exist, health, the watch page, the public
//! status and the admin API that hands out keys which really publish.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Publish, TestServer, ffmpeg_publish, playlist_uris, request, wait_child};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

fn publish(seconds: f64) -> Publish {
    Publish {
        width: 320,
        height: 240,
        fps: 30,
        seconds,
        gop_secs: 1,
        video_kbps: 400,
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn segment_number(uri: &str) -> u64 {
    uri.strip_prefix("segment-")
        .and_then(|u| u.strip_suffix(".m4s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a segment URI: {uri}"))
}

/// A validator round trip: the `ETag` of a 200 answers `If-None-Match` with
/// an empty 304. Live playlists change with every segment, so a changed body
/// between the two requests is retried (bounded).
async fn assert_revalidates(ts: &TestServer, path: &str) {
    let url = ts.url(path);
    for _ in 0..10 {
        let (status, h, body) = request(&ts.client, Method::GET, &url, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.is_empty(), "{path}: empty body");
        let etag = header(&h, "etag").to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{path}: ETag {etag:?}"
        );
        let modified = header(&h, "last-modified");
        let modified = DateTime::parse_from_rfc2822(modified).unwrap_or_else(|e| {
            panic!("{path}: Last-Modified {modified:?} is not an HTTP date: {e}")
        });
        assert!(
            modified.with_timezone(&Utc) <= Utc::now() + chrono::Duration::seconds(2),
            "{path}: Last-Modified {modified} is in the future"
        );
        let (status, h2, body) =
            request(&ts.client, Method::GET, &url, &[("if-none-match", &etag)]).await;
        if status == 304 {
            assert!(body.is_empty(), "{path}: a 304 has no body");
            assert_eq!(
                header(&h2, "etag"),
                etag,
                "{path}: the 304 repeats the ETag"
            );
            return;
        }
        assert_eq!(status, 200, "{path}: If-None-Match gave {status}");
        assert_ne!(header(&h2, "etag"), etag, "{path}: same ETag but no 304");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path}: If-None-Match never produced a 304");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_headers_and_errors_on_a_live_stream() {
    let ts = TestServer::start().await;
    let (id, key) = ts.create_stream("http").await;
    let encoder = ffmpeg_publish(&ts.publish_url(&key), &publish(12.0));
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "never went ACTIVE"
    );
    let media_path = format!("/hls/{id}/source/index.m3u8");
    let media = ts
        .wait_for_text(&media_path, Duration::from_secs(10), |t| {
            playlist_uris(t).len() >= 2
        })
        .await
        .expect("two live segments");
    ts.wait_for_text(
        &format!("/hls/{id}/audio/index.m3u8"),
        Duration::from_secs(5),
        |t| !playlist_uris(t).is_empty(),
    )
    .await
    .expect("a live audio segment");
    let seg = playlist_uris(&media)[0].clone();
    let seg_no = segment_number(&seg);
    let last_no = segment_number(playlist_uris(&media).last().unwrap());

    // Content types and caching: live texts for a second, media segments
    // forever (their numbers never repeat); init segments revalidate, since a
    // later broadcast of the stream may bring another decoder configuration.
    let live = "max-age=1";
    let forever = "immutable";
    ts.get_manifest(&format!("/hls/{id}/master.m3u8"))
        .await
        .expect("master playlist (audio and video out)");
    let cases = [
        (
            format!("/hls/{id}/master.m3u8"),
            "application/vnd.apple.mpegurl",
            live,
        ),
        (media_path.clone(), "application/vnd.apple.mpegurl", live),
        (
            format!("/hls/{id}/audio/index.m3u8"),
            "application/vnd.apple.mpegurl",
            live,
        ),
        (
            format!("/dash/{id}/manifest.mpd"),
            "application/dash+xml",
            live,
        ),
        (format!("/hls/{id}/source/init.mp4"), "video/mp4", live),
        (format!("/hls/{id}/audio/init.mp4"), "audio/mp4", live),
        (format!("/hls/{id}/source/{seg}"), "video/mp4", forever),
        (
            format!("/hls/{id}/audio/segment-{seg_no}.m4s"),
            "audio/mp4",
            forever,
        ),
    ];
    for (path, content_type, cache) in &cases {
        let (status, h, _) = request(
            &ts.client,
            Method::GET,
            &ts.url(path),
            &[("origin", "http://example.test")],
        )
        .await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&h, "content-type"),
            *content_type,
            "{path}: Content-Type"
        );
        let cc = header(&h, "cache-control");
        assert!(
            cc.contains(cache),
            "{path}: Cache-Control {cc:?} should contain {cache}"
        );
        if *cache == live {
            assert!(
                !cc.contains("immutable"),
                "{path}: a live document is not immutable: {cc:?}"
            );
        }
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            "*",
            "{path}: CORS for any origin"
        );
        assert_revalidates(&ts, path).await;
    }

    // CORS preflight of a segment, as a player on another origin sends it.
    let (status, h, _) = request(
        &ts.client,
        Method::OPTIONS,
        &ts.url(&format!("/hls/{id}/source/{seg}")),
        &[
            ("origin", "http://example.test"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert!(status.is_success(), "CORS preflight: {status}");
    assert_eq!(header(&h, "access-control-allow-origin"), "*");
    assert!(
        header(&h, "access-control-allow-methods").contains("GET"),
        "{h:?}"
    );

    // HEAD of a segment: the GET's headers and length, no body.
    let seg_url = ts.url(&format!("/hls/{id}/source/{seg}"));
    let (_, _, full) = request(&ts.client, Method::GET, &seg_url, &[]).await;
    let (status, h, body) = request(&ts.client, Method::HEAD, &seg_url, &[]).await;
    assert_eq!(status, 200, "HEAD {seg}");
    assert_eq!(
        header(&h, "content-length"),
        full.len().to_string(),
        "HEAD Content-Length"
    );
    assert_eq!(header(&h, "content-type"), "video/mp4");
    assert!(body.is_empty(), "HEAD has no body");

    // The server clock for DASH UTCTiming: RFC 3339, close to now, not cached.
    let (status, h, body) = request(&ts.client, Method::GET, &ts.url("/time"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        header(&h, "cache-control").contains("no-store"),
        "/time must not be cached: {h:?}"
    );
    let text = String::from_utf8(body).unwrap();
    let t = DateTime::parse_from_rfc3339(text.trim())
        .unwrap_or_else(|e| panic!("/time {text:?} is not RFC 3339: {e}"));
    let skew = (t.with_timezone(&Utc) - Utc::now())
        .num_milliseconds()
        .abs();
    assert!(skew < 5_000, "/time is {skew} ms away from the clock");

    // Everything that does not exist is a 404, never a 500.
    let unknown = uuid::Uuid::new_v4();
    let missing = [
        format!("/hls/{unknown}/master.m3u8"),
        format!("/hls/{unknown}/source/index.m3u8"),
        format!("/hls/{unknown}/source/init.mp4"),
        format!("/hls/{unknown}/source/segment-{seg_no}.m4s"),
        format!("/dash/{unknown}/manifest.mpd"),
        "/hls/not-a-uuid/master.m3u8".to_string(),
        "/hls/not-a-uuid/source/index.m3u8".to_string(),
        "/dash/not-a-uuid/manifest.mpd".to_string(),
        format!("/hls/{id}/1080p/index.m3u8"),
        format!("/hls/{id}/nope/init.mp4"),
        format!("/hls/{id}/nope/segment-{seg_no}.m4s"),
        format!("/hls/{id}/source/segment-{}.m4s", last_no + 100_000),
        format!("/hls/{id}/source/segment-0.m4s"),
        format!("/hls/{id}/source/segment-abc.m4s"),
        format!("/hls/{id}/source/segment--1.m4s"),
        format!("/hls/{id}/source/segment-99999999999999999999999.m4s"),
        format!("/hls/{id}/source/init-0.mp4"),
        format!("/hls/{id}/source/init-99.mp4"),
        format!("/hls/{id}/source/index.m3u"),
        format!("/hls/{id}/source/..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/hls/{id}/..%2F..%2Fetc%2Fpasswd/index.m3u8"),
        "/hls/..%2F..%2Fetc%2Fpasswd/master.m3u8".to_string(),
        "/hls/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/static/..%2F..%2FCargo.toml".to_string(),
        "/static/no-such-asset.js".to_string(),
        "/watch/not-a-uuid".to_string(),
        format!("/api/v1/streams/{unknown}/status"),
        "/api/v1/streams/not-a-uuid/status".to_string(),
        "/no/such/route".to_string(),
    ];
    for path in &missing {
        let (status, h, body) = request(&ts.client, Method::GET, &ts.url(path), &[]).await;
        assert_eq!(
            status,
            404,
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("root:"), "{path} leaked a file: {text}");
        if path.starts_with("/hls") || path.starts_with("/dash") {
            assert!(
                !header(&h, "cache-control").contains("max-age="),
                "{path}: a 404 must not be cached like content: {h:?}"
            );
        }
    }

    // …and the live stream keeps being served, and keeps growing.
    let grown = ts
        .wait_for_text(&media_path, Duration::from_secs(6), |t| {
            playlist_uris(t)
                .last()
                .map(|u| segment_number(u))
                .unwrap_or(0)
                > last_no
        })
        .await;
    assert!(
        grown.is_some(),
        "the live playlist stopped growing after the 404s"
    );

    // Operations and the viewer-facing pages.
    for path in ["/health", "/ready"] {
        let (status, _, body) = request(&ts.client, Method::GET, &ts.url(path), &[]).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).expect("JSON");
        assert!(
            matches!(v["status"].as_str(), Some("ok" | "ready")),
            "{path}: {v}"
        );
    }
    let (status, h, body) = request(
        &ts.client,
        Method::GET,
        &ts.url(&format!("/watch/{id}")),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(header(&h, "content-type").starts_with("text/html"), "{h:?}");
    assert!(
        String::from_utf8_lossy(&body).contains(&id.to_string()),
        "the watch page names the stream"
    );
    let (status, h, body) = request(
        &ts.client,
        Method::GET,
        &ts.url(&format!("/api/v1/streams/{id}/status")),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        header(&h, "content-type").starts_with("application/json"),
        "{h:?}"
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "ACTIVE", "{v}");
    assert_eq!(v["id"], id.to_string(), "{v}");
    assert!(
        !String::from_utf8_lossy(&body).contains(&key),
        "the public status must not show the key"
    );

    let (ok, err) = wait_child(encoder, Duration::from_secs(30)).await;
    assert!(ok, "publisher failed: {err}");
    // A closed playlist never changes again: it becomes cacheable.
    let ended = ts
        .wait_for_text(&media_path, Duration::from_secs(3), |t| {
            t.contains("#EXT-X-ENDLIST")
        })
        .await
        .expect("ENDLIST");
    assert!(!ended.is_empty());
    let (_, h, _) = request(&ts.client, Method::GET, &ts.url(&media_path), &[]).await;
    assert!(
        header(&h, "cache-control").contains("immutable"),
        "ended playlist: {h:?}"
    );
    ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_streams_whose_keys_publish() {
    let ts = TestServer::start().await;
    let create = ts.url("/api/v1/streams");
    let body = serde_json::json!({ "name": "from the API" });

    // No token, a wrong token: 401 problem documents, nothing created.
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("test-admin-token-0123456789abcdef"),
    ] {
        let mut req = ts.client.post(&create).json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("POST");
        assert_eq!(resp.status(), 401, "authorization {auth:?}");
        assert_eq!(header(resp.headers(), "www-authenticate"), "Bearer");
        assert_eq!(
            header(resp.headers(), "content-type"),
            "application/problem+json"
        );
        let p: Value = resp.json().await.expect("problem JSON");
        assert_eq!(p["status"], 401, "{p}");
        assert!(p["title"].is_string() && p["type"].is_string(), "{p}");
    }
    let resp = ts.client.get(&create).send().await.unwrap();
    assert_eq!(resp.status(), 401, "listing streams needs the token too");
    assert!(
        ts.server.repo.list_streams(None).await.unwrap().is_empty(),
        "nothing was created"
    );

    // The admin token: 201 with everything a broadcaster and a viewer need.
    let resp = ts
        .client
        .post(&create)
        .header("authorization", "Bearer test-admin-token-0123456789abcdef")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().expect("id").to_string();
    let stream_key = created["stream_key"]
        .as_str()
        .expect("stream_key")
        .to_string();
    let rtmp_url = created["rtmp_url"].as_str().expect("rtmp_url").to_string();
    let watch_url = created["watch_url"]
        .as_str()
        .expect("watch_url")
        .to_string();
    assert!(
        stream_key.starts_with("sk_") && stream_key.len() == 43,
        "{created}"
    );
    assert_eq!(rtmp_url, ts.rtmp, "{created}");
    assert_eq!(watch_url, ts.url(&format!("/watch/{id}")), "{created}");
    assert_eq!(created["status"], "PENDING", "{created}");

    // Listed for the admin; the key is never shown again.
    let listed = ts
        .client
        .get(&create)
        .header("authorization", "Bearer test-admin-token-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed = listed.text().await.unwrap();
    assert!(listed.contains(&id), "{listed}");
    assert!(
        !listed.contains(&stream_key),
        "listing must not reveal the key"
    );

    // The watch page answers, and the new key publishes.
    let (status, _, _) = request(&ts.client, Method::GET, &watch_url, &[]).await;
    assert_eq!(status, 200);
    let uuid: uuid::Uuid = id.parse().unwrap();
    let encoder = ffmpeg_publish(&format!("{rtmp_url}/{stream_key}"), &publish(5.0));
    assert!(
        ts.wait_status(uuid, "ACTIVE", Duration::from_secs(15))
            .await,
        "the API key did not publish"
    );
    let status_path = format!("/api/v1/streams/{id}/status");
    let v: Value = serde_json::from_str(&ts.get_text(&status_path).await.expect("status")).unwrap();
    assert_eq!(v["status"], "ACTIVE", "{v}");
    ts.wait_for_text(
        &format!("/hls/{id}/master.m3u8"),
        Duration::from_secs(10),
        |_| true,
    )
    .await
    .expect("the API-created stream is served");
    let (ok, err) = wait_child(encoder, Duration::from_secs(30)).await;
    assert!(ok, "publisher failed: {err}");
    assert!(ts.wait_status(uuid, "ENDED", Duration::from_secs(3)).await);
    let v: Value = serde_json::from_str(&ts.get_text(&status_path).await.expect("status")).unwrap();
    assert_eq!(v["status"], "ENDED", "{v}");
    ts.server.shutdown().await;
}
