//! The ingest listener's limits against real sockets (issue 9, "RTMP"):
//! deadlines from accept, the pending pool (per address, in all, eviction),
//! bans after refused keys, idle publish, engine limits counted as limit
//! hits, and the connection gauges. Timeouts are shortened (1–2 s) so the
//! waits stay short; every wait is bounded.

mod common;

use std::time::Duration;

use common::{Ingest, Publisher, ack, closed_within, connect_from, handshake, wait_event};
use streaming_core::config::IngestConfig;
use streaming_core::events::Event;
use streaming_core::limits::LimitKind;
use streaming_core::model::StreamStatus;
use tokio::io::AsyncWriteExt;

fn config() -> IngestConfig {
    IngestConfig {
        handshake_timeout_secs: 1,
        publish_timeout_secs: 2,
        idle_publish_timeout_secs: 2,
        read_timeout_secs: 10,
        max_pending_per_addr: 3,
        max_pending_connections: 6,
        bad_keys_per_min: 3,
        ..IngestConfig::default()
    }
}

/// A legitimate publish from 127.0.0.1 is accepted.
async fn legit_publish(ingest: &Ingest) {
    let (_, key) = ingest.stream().await;
    let io = connect_from(1, ingest.addr).await;
    let p = Publisher::publish(io, &key, Duration::from_secs(5))
        .await
        .expect("a legitimate publish is accepted");
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drip_is_cut_at_the_handshake_deadline() {
    let ingest = Ingest::start(config(), None).await;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let addr = ingest.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = connect_from(2, addr).await;
            let start = std::time::Instant::now();
            // One byte every 300 ms: never a read timeout, never a handshake.
            for _ in 0..20 {
                if s.write_all(&[3]).await.is_err() {
                    break;
                }
                if closed_within(&mut s, Duration::from_millis(300))
                    .await
                    .is_some()
                {
                    break;
                }
            }
            start.elapsed()
        }));
    }
    for t in tasks {
        let took = t.await.unwrap();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "cut after {took:?} (handshake deadline 1 s)"
        );
    }
    assert_eq!(ingest.hits(LimitKind::RtmpHandshakeTimeout), 2);
    assert_eq!(ingest.wait_open("rtmp_pending", 0).await, 0);
    assert_eq!(ingest.wait_open("rtmp", 0).await, 0);
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_publish_is_cut_at_the_publish_deadline() {
    let ingest = Ingest::start(config(), None).await;
    let mut s = connect_from(2, ingest.addr).await;
    s.write_all(&handshake()).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(ingest.hits(LimitKind::RtmpPublishTimeout), 1);
    assert_eq!(ingest.hits(LimitKind::RtmpHandshakeTimeout), 0);
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_connections_per_address_are_capped() {
    let ingest = Ingest::start(config(), None).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect_from(3, ingest.addr).await);
    }
    let mut fourth = connect_from(3, ingest.addr).await;
    let took = closed_within(&mut fourth, Duration::from_secs(1)).await;
    assert!(
        took.is_some(),
        "the 4th pending connection is refused at once"
    );
    assert_eq!(ingest.hits(LimitKind::RtmpPendingPerAddr), 1);
    assert_eq!(ingest.wait_open("rtmp_pending", 3).await, 3);
    // Other addresses are not affected.
    legit_publish(&ingest).await;
    // The three are cut at the handshake deadline.
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(3)).await.is_some());
    }
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pending_pool_evicts_for_a_fresh_address() {
    let ingest = Ingest::start(
        IngestConfig {
            max_pending_per_addr: 4,
            // Long enough that no held connection times out during the test.
            handshake_timeout_secs: 5,
            publish_timeout_secs: 5,
            ..config()
        },
        None,
    )
    .await;
    let mut held = Vec::new();
    for n in [4u8, 4, 4, 5, 5, 5] {
        held.push(connect_from(n, ingest.addr).await);
    }
    // Let the listener admit all six.
    assert_eq!(ingest.wait_open("rtmp_pending", 6).await, 6);
    // A holder of the biggest share gets no more (below its own cap of 4).
    let mut more = connect_from(5, ingest.addr).await;
    assert!(
        closed_within(&mut more, Duration::from_secs(1))
            .await
            .is_some()
    );
    assert_eq!(ingest.hits(LimitKind::RtmpPending), 1);
    assert_eq!(ingest.hits(LimitKind::RtmpPendingPerAddr), 0);
    // A fresh encoder evicts the oldest connection of the biggest holder.
    legit_publish(&ingest).await;
    let oldest = closed_within(&mut held[0], Duration::from_millis(500)).await;
    assert!(
        oldest.is_some(),
        "127.0.0.4's oldest connection was evicted"
    );
    assert_eq!(ingest.hits(LimitKind::RtmpPending), 2);
    for s in &mut held[1..] {
        assert!(
            closed_within(s, Duration::from_millis(100)).await.is_none(),
            "only one connection was evicted"
        );
    }
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_keys_ban_the_address() {
    let ingest = Ingest::start(config(), None).await;
    for i in 0..3 {
        let io = connect_from(6, ingest.addr).await;
        let r = Publisher::publish(io, &format!("wrong-key-{i}"), Duration::from_secs(5)).await;
        assert!(r.is_err(), "a wrong key is refused");
    }
    assert_eq!(ingest.hits(LimitKind::RtmpBadKeys), 1);
    let mut banned = connect_from(6, ingest.addr).await;
    assert!(
        closed_within(&mut banned, Duration::from_secs(1))
            .await
            .is_some(),
        "a banned address is refused at accept"
    );
    assert_eq!(ingest.hits(LimitKind::RtmpBanned), 1);
    legit_publish(&ingest).await;
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_publisher_is_closed_and_its_stream_ended() {
    let ingest = Ingest::start(config(), None).await;
    let mut events = ingest.events.subscribe();
    let (id, key) = ingest.stream().await;
    let io = connect_from(1, ingest.addr).await;
    let mut p = Publisher::publish(io, &key, Duration::from_secs(5))
        .await
        .unwrap();
    p.send_video(0).await.unwrap();
    assert!(
        wait_event(&mut events, Duration::from_secs(5), |e| matches!(
            e, Event::StreamStarted { stream_id, .. } if *stream_id == id
        ))
        .await
        .is_some()
    );
    assert_eq!(ingest.open("rtmp_pending"), 0, "a publisher is not pending");
    assert_eq!(ingest.open("rtmp"), 1);
    // Acknowledgements keep the connection from the read timeout, but are
    // no media.
    let start = std::time::Instant::now();
    let mut closed = None;
    for seq in 0..40u32 {
        if p.io.write_all(&ack(seq)).await.is_err() {
            closed = Some(start.elapsed());
            break;
        }
        if let Some(t) = closed_within(&mut p.io, Duration::from_millis(250)).await {
            closed = Some(start.elapsed().max(t));
            break;
        }
    }
    let took = closed.expect("the idle publisher was closed");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let ended = wait_event(
        &mut events,
        Duration::from_secs(5),
        |e| matches!(e, Event::StreamEnded { stream_id, .. } if *stream_id == id),
    )
    .await;
    assert!(ended.is_some(), "the stream ended");
    assert_eq!(ingest.hits(LimitKind::RtmpIdlePublish), 1);
    let stream = ingest.repo.get_stream(id).await.unwrap().unwrap();
    assert_eq!(stream.status, StreamStatus::Ended);
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_limits_are_counted_and_buffer_nothing() {
    let ingest = Ingest::start(config(), None).await;
    // 8 MiB of AMF0 nulls announced before connect: refused at the header.
    let mut s = connect_from(7, ingest.addr).await;
    let mut bytes = handshake();
    bytes.extend_from_slice(&[0x03, 0, 0, 0, 0x80, 0, 0, 20, 0, 0, 0, 0]);
    bytes.extend(std::iter::repeat_n(0x05u8, 64 * 1024));
    let _ = s.write_all(&bytes).await;
    assert!(
        closed_within(&mut s, Duration::from_secs(2))
            .await
            .is_some()
    );
    assert_eq!(ingest.hits(LimitKind::RtmpMessageSize), 1);
    assert_eq!(ingest.ctx.reassembly_budget().used(), 0);
    // A connect nested 9 deep.
    let mut s = connect_from(7, ingest.addr).await;
    let mut body = vec![0x02, 0, 7];
    body.extend_from_slice(b"connect");
    body.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    for _ in 0..9 {
        body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    body.push(0x05);
    let mut bytes = handshake();
    bytes.extend_from_slice(&[0x03, 0, 0, 0, 0, 0, body.len() as u8, 20, 0, 0, 0, 0]);
    bytes.extend_from_slice(&body);
    let _ = s.write_all(&bytes).await;
    assert!(
        closed_within(&mut s, Duration::from_secs(2))
            .await
            .is_some()
    );
    assert_eq!(ingest.hits(LimitKind::RtmpAmf), 1);
    ingest.stop().await;
}
