//! The delivery router over a store fed by a synthetic writer: held-request
//! caps (503 at once beyond them, slots freed when answered or cancelled)
//! and the segment in progress charged to its session and to egress as it
//! streams.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use streaming_core::config::MediaConfig;
use streaming_core::events::EventBus;
use streaming_core::limits::{ClientAddr, Limits};
use streaming_core::metrics::Metrics;
use streaming_core::sessions::ViewerSessions;
use streaming_core::store::SharedStore;
use tower::ServiceExt;
use uuid::Uuid;

use super::held::HeldRequests;
use super::{DeliveryGuard, DeliveryState, router};
use crate::publish::MediaWriter;
use crate::publish::tests::{config, segment_events, writer_with};

struct Rig {
    app: Router,
    writer: MediaWriter,
    id: Uuid,
    metrics: Metrics,
    sessions: ViewerSessions,
    held: HeldRequests,
}

fn ip(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, d))
}

/// Segments 1001 and 1002 complete, 1003 in progress with parts 0 and 1
/// (0.5 s parts of 100 bytes, four to a segment); held requests capped at
/// `max_total` and `max_per_addr`.
async fn rig(max_total: usize, max_per_addr: usize) -> Rig {
    let (mut writer, store, id) = writer_with(config(), 1000);
    let store: SharedStore = store;
    for n in 1..=2 {
        for ev in segment_events(n, 4) {
            writer.event(ev, None);
        }
    }
    for ev in segment_events(3, 4).into_iter().take(2) {
        writer.event(ev, None);
    }
    let metrics = Metrics::new();
    metrics.stream_started(id);
    let limits = Limits::new(metrics.clone());
    let held = HeldRequests::new(max_total, max_per_addr, limits.clone());
    let sessions = ViewerSessions::new();
    let state = DeliveryState {
        store,
        media: MediaConfig {
            segment_duration_ms: 2000,
            part_duration_ms: 500,
            ..MediaConfig::default()
        },
        metrics: metrics.clone(),
        events: EventBus::new(16),
        repo: streaming_core::repo::connect("sqlite::memory:")
            .await
            .expect("in-memory repository"),
        sessions: sessions.clone(),
        cdn_mode: false,
        feed: crate::live::LiveFeed::new(),
        guard: DeliveryGuard {
            limits,
            held: held.clone(),
            ..DeliveryGuard::open(metrics.clone())
        },
    };
    Rig {
        app: router(state),
        writer,
        id,
        metrics,
        sessions,
        held,
    }
}

fn get(uri: &str, from: IpAddr) -> Request<Body> {
    let mut r = Request::get(uri).body(Body::empty()).unwrap();
    r.extensions_mut().insert(ClientAddr(from));
    r
}

async fn call(app: &Router, uri: &str, from: IpAddr) -> Response {
    app.clone().oneshot(get(uri, from)).await.unwrap()
}

/// Waits (at most 2 s) until `n` requests are held.
async fn until_held(held: &HeldRequests, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while held.held() != n {
        assert!(Instant::now() < deadline, "{} held, want {n}", held.held());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn text(resp: Response) -> String {
    let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&b).into_owned()
}

fn assert_refused(resp: &Response, took: Duration) {
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    assert!(took < Duration::from_millis(500), "refused after {took:?}");
}

#[tokio::test]
async fn held_requests_beyond_the_caps_are_refused_at_once_and_freed_when_answered_or_cancelled() {
    let mut rig = rig(3, 2).await;
    let id = rig.id;
    let reload = format!("/hls/{id}/source/index.m3u8?_HLS_msn=1003&_HLS_part=3");
    let spawn = |uri: String, from: IpAddr| {
        let app = rig.app.clone();
        tokio::spawn(async move { app.oneshot(get(&uri, from)).await.unwrap() })
    };
    // Two blocking reloads from A wait for part 1003.3.
    let a1 = spawn(reload.clone(), ip(1));
    let a2 = spawn(reload.clone(), ip(1));
    until_held(&rig.held, 2).await;
    // A third from A: its address holds its share.
    let t = Instant::now();
    let r = call(&rig.app, &reload, ip(1)).await;
    assert_refused(&r, t.elapsed());
    assert!(text(r).await.contains("too many requests held"));
    assert_eq!(rig.metrics.limit_hits("held_requests_per_addr"), 1);
    // B waits for the hinted part: the node's three slots are taken.
    let b = spawn(format!("/hls/{id}/source/segment-1003.2.m4s"), ip(2));
    until_held(&rig.held, 3).await;
    assert_eq!(rig.metrics.held_requests().get(), 3);
    // C asks for the next segment in progress: the node is full.
    let t = Instant::now();
    let r = call(
        &rig.app,
        &format!("/hls/{id}/source/segment-1004.m4s"),
        ip(3),
    )
    .await;
    assert_refused(&r, t.elapsed());
    assert_eq!(rig.metrics.limit_hits("held_requests"), 1);
    // What can be answered at once takes no slot, even now.
    let r = call(
        &rig.app,
        &format!("/hls/{id}/source/index.m3u8?_HLS_msn=1002"),
        ip(3),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(
        &rig.app,
        &format!("/hls/{id}/source/segment-1003.1.m4s"),
        ip(3),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rig.held.held(), 3);

    // A client that goes away while held frees its slot.
    a1.abort();
    assert!(a1.await.unwrap_err().is_cancelled());
    assert_eq!((rig.held.held(), rig.held.held_by(ip(1))), (2, 1));
    assert_eq!(rig.metrics.held_requests().get(), 2);

    // The parts arrive: the others are answered and give their slots back.
    for ev in segment_events(3, 4).into_iter().skip(2).take(2) {
        rig.writer.event(ev, None);
    }
    let pl = tokio::time::timeout(Duration::from_secs(2), a2)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(pl.status(), StatusCode::OK);
    assert!(text(pl).await.contains("segment-1003.3.m4s"));
    let part = tokio::time::timeout(Duration::from_secs(2), b)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(part.status(), StatusCode::OK);
    assert!(text(part).await.len() >= 100, "the part's bytes");
    assert_eq!(rig.held.held(), 0);
    assert_eq!(rig.metrics.held_requests().get(), 0);
}

#[tokio::test]
async fn the_segment_in_progress_holds_a_slot_and_is_charged_as_it_streams() {
    let mut rig = rig(10, 10).await;
    let id = rig.id;
    let sid = rig
        .sessions
        .mint(id, ip(1), None, Instant::now())
        .expect("session");
    // A body dropped unread (the client went away) frees its slot.
    let r = call(
        &rig.app,
        &format!("/hls/{id}/source/segment-1004.m4s"),
        ip(1),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rig.held.held(), 1, "the slot lives in the body");
    drop(r);
    assert_eq!(rig.held.held(), 0);

    let uri = format!("/hls/{id}/source/segment-1003.m4s?sid={}", sid.as_str());
    let r = call(&rig.app, &uri, ip(1)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get(header::CONTENT_LENGTH).is_none(),
        "streamed"
    );
    assert_eq!(rig.held.held(), 1);
    let reader = tokio::spawn(axum::body::to_bytes(r.into_body(), 1 << 20));
    // Parts 2 and 3, then the segment closes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for ev in segment_events(3, 4).into_iter().skip(2) {
        rig.writer.event(ev, None);
    }
    let body = tokio::time::timeout(Duration::from_secs(2), reader)
        .await
        .expect("the body ends with the segment")
        .unwrap()
        .unwrap();
    // Four parts of 100 media bytes (each with its own boxes around them).
    let sent = body.len() as u64;
    assert!(sent >= 400, "{sent} bytes");
    let session = rig.sessions.get(sid.id()).expect("session");
    assert_eq!(
        session.bytes_sent, sent,
        "streamed bytes charged to the session"
    );
    let totals = rig.metrics.live_totals();
    assert_eq!(totals[&id].egress_bytes, sent, "and to egress");
    assert_eq!(rig.held.held(), 0);
    assert_eq!(rig.metrics.held_requests().get(), 0);
}
