//! The attacks of the RTMP abuse suite, and the raw RTMP bytes they send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use streaming_media::amf0::encode_all;
use streaming_media::rtmp::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, HANDSHAKE_SIZE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::RustPublisher;
use super::common::abuse::{ServerProcess, closed_within, connect_from};
use super::{HANDSHAKE_DEADLINE, IDLE_PUBLISH, PUBLISH_DEADLINE, SLACK};

/// What one attack reports.
pub struct Outcome {
    /// Longest time from an attacker's connect to its cut-off (or refusal).
    pub cut_off: Duration,
    /// Anything else worth printing.
    pub note: String,
}

/// C0 + C1 + C2 of a plain handshake.
fn handshake() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend(std::iter::repeat_n(0u8, 2 * HANDSHAKE_SIZE));
    v
}

/// A type 0 chunk header announcing `len` bytes of `type_id` on `csid`.
fn header(csid: u8, type_id: u8, len: u32) -> Vec<u8> {
    let mut v = vec![csid, 0, 0, 0];
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

/// A whole message in `chunk_size` chunks.
fn message(csid: u8, type_id: u8, body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut v = header(csid, type_id, body.len() as u32);
    for (i, c) in body.chunks(chunk_size).enumerate() {
        if i > 0 {
            v.push(0xc0 | csid);
        }
        v.extend_from_slice(c);
    }
    v
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    message(2, 1, &size.to_be_bytes(), 128)
}

/// One connection dripping a byte every 5 s (after a full handshake when
/// `after_handshake`: then bytes of a command that never completes). Returns
/// the time from connect until the server cut it off.
async fn drip(n: u8, to: SocketAddr, after_handshake: bool) -> Duration {
    let mut s = connect_from(n, to).await.expect("connect");
    let start = Instant::now();
    let mut bytes: Vec<u8> = if after_handshake {
        let _ = s.write_all(&handshake()).await;
        header(3, 20, 100)
    } else {
        handshake()
    };
    bytes.reverse();
    while start.elapsed() < Duration::from_secs(30) {
        let b = bytes.pop().unwrap_or(0x05);
        if s.write_all(&[b]).await.is_err() {
            return start.elapsed();
        }
        if closed_within(&mut s, Duration::from_secs(5))
            .await
            .is_some()
        {
            return start.elapsed();
        }
    }
    panic!("a dripping connection from 127.0.0.{n} was never cut off");
}

/// 10 connections sending a byte every 5 s: 5 never finish the handshake
/// (cut at 5 s), 5 finish it and then drip (cut at 10 s, no publish).
pub async fn slow_drip(to: SocketAddr) -> Outcome {
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let after = i % 2 == 1;
        tasks.push(tokio::spawn(drip(2 + i % 2, to, after)));
    }
    let mut max = Duration::ZERO;
    let mut times = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let took = t.await.unwrap();
        let deadline = if i % 2 == 1 {
            PUBLISH_DEADLINE
        } else {
            HANDSHAKE_DEADLINE
        };
        assert!(
            took + Duration::from_millis(500) >= deadline && took <= deadline + SLACK,
            "slow drip {i}: cut after {took:?}, deadline {deadline:?}"
        );
        max = max.max(took);
        times.push(format!("{:.1}", took.as_secs_f64()));
    }
    Outcome {
        cut_off: max,
        note: format!("cut after [{}] s", times.join(", ")),
    }
}

/// 20 idle connections from one address: 12 refused at once (beyond 8),
/// the 8 cut at the handshake deadline.
pub async fn idle_beyond_per_address_cap(to: SocketAddr) -> Outcome {
    let start = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(connect_from(4, to).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut refused, mut held) = (Vec::new(), Vec::new());
    for mut c in conns {
        match closed_within(&mut c, Duration::from_millis(50)).await {
            Some(_) => refused.push(start.elapsed()),
            None => held.push(c),
        }
    }
    assert_eq!(
        refused.len(),
        12,
        "beyond 8 pending per address: refused at once"
    );
    assert_eq!(held.len(), 8);
    let mut max = Duration::ZERO;
    for c in &mut held {
        let t = closed_within(c, HANDSHAKE_DEADLINE + SLACK)
            .await
            .map(|_| start.elapsed())
            .expect("the 8 held connections are cut at the handshake deadline");
        max = max.max(t);
    }
    Outcome {
        cut_off: max,
        note: format!(
            "12 refused within {:.2?}, 8 cut after {max:.1?}",
            refused.iter().max().copied().unwrap_or_default()
        ),
    }
}

/// 40 addresses × 8 idle connections (320 > 256 pending in all): the pool
/// stays at 256, a fresh encoder still gets in (the harness's new publish),
/// and every flood connection is cut within the handshake deadline.
pub async fn many_address_flood(server: &ServerProcess) -> Outcome {
    let to = server.rtmp_addr;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 10..50u8 {
        tasks.push(tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..8 {
                conns.push((connect_from(n, to).await.expect("connect"), Instant::now()));
            }
            let mut max = Duration::ZERO;
            for (c, at) in &mut conns {
                closed_within(c, HANDSHAKE_DEADLINE + SLACK + Duration::from_secs(1))
                    .await
                    .expect("every flood connection is cut");
                max = max.max(at.elapsed());
            }
            max
        }));
    }
    // While the flood holds the pool: it never goes above 256.
    let mut pending_max = 0;
    for _ in 0..20 {
        let text = server.metrics_text().await;
        let pending = text
            .lines()
            .find_map(|l| l.strip_prefix("streaming_open_connections{surface=\"rtmp_pending\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        pending_max = pending_max.max(pending);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pending_max <= 256,
        "pending pool above its cap: {pending_max}"
    );
    let mut max = Duration::ZERO;
    for t in tasks {
        let took = t.await.unwrap();
        assert!(
            took <= HANDSHAKE_DEADLINE + SLACK,
            "flood connection lived {took:?}"
        );
        max = max.max(took);
    }
    Outcome {
        cut_off: max,
        note: format!(
            "320 connections; pending gauge peaked at {pending_max}; flood over after {:.1?}",
            start.elapsed()
        ),
    }
}

/// Two connections each announcing an 8 MiB AMF0 command before `connect`
/// and sending 8 MiB of nulls: refused at the chunk header.
pub async fn amf_amplification(to: SocketAddr) -> Outcome {
    let mut tasks = Vec::new();
    for _ in 0..2 {
        tasks.push(tokio::spawn(async move {
            let mut s = connect_from(6, to).await.expect("connect");
            let start = Instant::now();
            let mut bytes = handshake();
            bytes.extend(header(3, 20, 8 * 1024 * 1024));
            bytes.extend(std::iter::repeat_n(0x05u8, 8 * 1024 * 1024));
            let send = async {
                let _ = s.write_all(&bytes).await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), send).await;
            closed_within(&mut s, Duration::from_secs(5))
                .await
                .map(|_| start.elapsed())
                .expect("the amplification connection is closed")
        }));
    }
    let mut max = Duration::ZERO;
    for t in tasks {
        max = max.max(t.await.unwrap());
    }
    Outcome {
        cut_off: max,
        note: "2 × 8 MiB of AMF0 nulls announced before connect".into(),
    }
}

/// Oversized and deeply nested AMF0 before publish: 64 KiB of nulls
/// (1,025th value refused), `connect` nested 10,000 deep, a message of
/// 64 KiB + 1, and a fifth message in reassembly.
pub async fn oversized_and_nested_amf(to: SocketAddr) -> Outcome {
    let nulls = {
        let mut b = set_chunk_size(65_536);
        b.extend(message(3, 20, &[0x05; 64 * 1024], 65_536));
        b
    };
    let nested = {
        let mut body = encode_all(&["connect".into(), 1.0.into()]);
        for _ in 0..10_000 {
            body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
        }
        body.push(0x05);
        let mut b = set_chunk_size(65_536);
        b.extend(message(3, 20, &body, 65_536));
        b
    };
    let too_long = header(3, 20, 64 * 1024 + 1);
    let partials = {
        let mut b = Vec::new();
        for csid in 4..9u8 {
            b.extend(header(csid, 9, 300));
            b.extend_from_slice(&[0x17; 128]);
        }
        b
    };
    let mut max = Duration::ZERO;
    for (what, body) in [
        ("64 KiB of nulls", nulls),
        ("nested 10,000 deep", nested),
        ("64 KiB + 1", too_long),
        ("5 partial messages", partials),
    ] {
        let mut s = connect_from(7, to).await.expect("connect");
        let start = Instant::now();
        let _ = s.write_all(&[handshake(), body].concat()).await;
        let took = closed_within(&mut s, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("{what}: not closed"));
        max = max.max(took.max(start.elapsed()));
    }
    Outcome {
        cut_off: max,
        note: "4 connections".into(),
    }
}

/// How a wrong-key attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum KeyAttempt {
    /// `NetStream.Publish.BadName` (the key was checked and refused).
    Rejected,
    /// Closed before the server said anything (refused at accept).
    RefusedAtAccept,
    Other(String),
}

async fn wrong_key_attempt(to: SocketAddr, key: &str) -> KeyAttempt {
    let Ok(mut s) = connect_from(5, to).await else {
        return KeyAttempt::RefusedAtAccept;
    };
    let tc_url = format!("rtmp://{to}/live");
    let mut session = ClientSession::new(ClientConfig::new(&tc_url, "live", key));
    let mut buf = vec![0u8; 16 * 1024];
    let mut received = 0usize;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(o) = session.poll_output() {
            match o {
                ClientOutput::Transmit(b) => {
                    if s.write_all(&b).await.is_err() && received == 0 {
                        return KeyAttempt::RefusedAtAccept;
                    }
                }
                ClientOutput::Event(ClientEvent::PublishRejected { .. }) => {
                    return KeyAttempt::Rejected;
                }
                ClientOutput::Event(ClientEvent::PublishStarted { .. }) => {
                    panic!("a wrong key was accepted");
                }
                ClientOutput::Event(_) => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) if received == 0 => return KeyAttempt::RefusedAtAccept,
            Ok(Ok(0)) | Ok(Err(_)) => return KeyAttempt::Other("closed".into()),
            Err(_) => return KeyAttempt::Other("timeout".into()),
            Ok(Ok(n)) => {
                received += n;
                if let Err(e) = session.handle_input(Instant::now(), &buf[..n]) {
                    return KeyAttempt::Other(e.to_string());
                }
            }
        }
    }
}

/// Wrong keys as fast as 4 workers can send them for 5 s from one address:
/// banned after 10, further connects refused at accept; few log lines, no
/// key in any of them.
pub async fn wrong_key_storm(server: &ServerProcess) -> Outcome {
    let to = server.rtmp_addr;
    let log_mark = server.logs().len();
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..4u32 {
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = 0u32;
            while start.elapsed() < Duration::from_secs(5) {
                let key = format!("wrongkey{w}x{i}x{}", start.elapsed().as_nanos());
                out.push((
                    key.clone(),
                    wrong_key_attempt(to, &key).await,
                    start.elapsed(),
                ));
                i += 1;
            }
            out
        }));
    }
    let mut attempts = Vec::new();
    for w in workers {
        attempts.extend(w.await.unwrap());
    }
    let rejected = attempts
        .iter()
        .filter(|a| a.1 == KeyAttempt::Rejected)
        .count();
    let refused: Vec<Duration> = attempts
        .iter()
        .filter(|a| a.1 == KeyAttempt::RefusedAtAccept)
        .map(|a| a.2)
        .collect();
    let first_refused = refused.iter().min().copied().unwrap_or_default();
    assert!(
        (10..=14).contains(&rejected),
        "keys checked before the ban: {rejected} (10 allowed, plus those in flight)"
    );
    assert!(
        refused.len() > 100,
        "connects after the ban are refused at accept: {}",
        refused.len()
    );
    let logs = server.logs();
    let during = &logs[log_mark.min(logs.len())..];
    let lines = during.lines().count();
    let refusals_logged = during
        .lines()
        .filter(|l| l.contains("publish refused"))
        .count();
    for (key, _, _) in &attempts {
        assert!(
            !during.contains(key.as_str()),
            "a presented key was logged: {key}"
        );
    }
    assert!(
        refusals_logged <= 12,
        "{refusals_logged} 'publish refused' lines"
    );
    assert!(
        lines < 60,
        "{lines} log lines for {} attempts:\n{during}",
        attempts.len()
    );
    Outcome {
        cut_off: first_refused,
        note: format!(
            "banned {first_refused:.1?} after the storm began; {} attempts in 5 s ({:.0}/s): {rejected} keys refused, then {} connects refused at accept; {lines} log lines, {refusals_logged} of them 'publish refused'",
            attempts.len(),
            attempts.len() as f64 / 5.0,
            refused.len()
        ),
    }
}

/// A publisher with a valid key that sends a second of media, then only
/// Acknowledgements (no media): closed after the idle-publish timeout, its
/// stream ENDED.
pub async fn idle_publish(
    server: &ServerProcess,
    frames: &[streaming_media::frame::Frame],
) -> Outcome {
    let (id, key) = server.create_stream("idle publisher").await;
    let tc_url = format!("rtmp://{}/live", server.rtmp_addr);
    let mut p = RustPublisher::publish(
        server.rtmp_addr,
        ClientConfig::new(&tc_url, "live", &key),
        Duration::from_secs(10),
    )
    .await;
    for f in frames {
        p.send(f).await;
    }
    let last_media = Instant::now();
    assert!(
        server
            .wait_status(id, "ACTIVE", Duration::from_secs(10))
            .await,
        "the idle publisher's stream went live"
    );
    // Acknowledgements (RTMP 1.0 §5.4.3) every second: the connection is
    // not silent, so only the idle-publish limit can close it.
    let mut seq = 0u32;
    let cut = loop {
        let mut ack = vec![0x02, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0];
        ack.extend_from_slice(&seq.to_be_bytes());
        seq += 1;
        if p.socket.write_all(&ack).await.is_err() {
            break last_media.elapsed();
        }
        if closed_within(&mut p.socket, Duration::from_secs(1))
            .await
            .is_some()
        {
            break last_media.elapsed();
        }
        assert!(
            last_media.elapsed() < IDLE_PUBLISH + SLACK + Duration::from_secs(2),
            "the idle publisher was not closed"
        );
    };
    assert!(
        cut + Duration::from_millis(500) >= IDLE_PUBLISH && cut <= IDLE_PUBLISH + SLACK,
        "idle publisher closed {cut:?} after its last media (limit {IDLE_PUBLISH:?})"
    );
    assert!(
        server
            .wait_status(id, "ENDED", Duration::from_secs(5))
            .await,
        "the idle publisher's stream ENDED"
    );
    Outcome {
        cut_off: cut,
        note: "closed after its last media; stream ENDED".into(),
    }
}
