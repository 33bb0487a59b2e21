//! Hostile RTMP peers against a server that is serving a live FFmpeg stream.
//!
//! Each raw TCP connection misbehaves in one way (truncated handshake, idling,
//! bad chunk sizes, oversized or unknown messages, malformed or deeply nested
//! AMF, garbage after a valid publish). For each: the server closes the
//! connection within a bounded time, logs a WARN/ERROR line for that peer,
//! and the live stream keeps playing (its playlist advances, its newest
//! segment fetches, `/health` answers). A panic in a server task would show
//! up as a stalled playlist or a failed fetch.
//!
//! `common::capture_logs()` is called first: it installs the process's
//! tracing subscriber.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{
    LogCapture, Publish, RustPublisher, TestServer, capture_logs, ffmpeg_publish, playlist_uris,
};
use streaming_media::amf0::{Amf0Value, encode_all};
use streaming_media::rtmp::{ClientConfig, HANDSHAKE_SIZE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// The server's read timeout in this test (seconds).
const READ_TIMEOUT: u64 = 2;

/// C0 + C1 + C2 of a plain handshake.
fn handshake() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend(std::iter::repeat_n(0u8, 2 * HANDSHAKE_SIZE));
    v
}

/// One message as a type 0 chunk followed by type 3 continuation chunks.
fn message(csid: u8, type_id: u8, msid: u32, body: &[u8], chunk_size: usize) -> Vec<u8> {
    message_with_length(csid, type_id, msid, body.len() as u32, body, chunk_size)
}

/// A type 0 chunk header announcing `length`, then `body` in chunks.
fn message_with_length(
    csid: u8,
    type_id: u8,
    msid: u32,
    length: u32,
    body: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    let mut v = vec![csid, 0, 0, 0];
    v.extend_from_slice(&length.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&msid.to_le_bytes());
    for (i, c) in body.chunks(chunk_size).enumerate() {
        if i > 0 {
            v.push(0xc0 | csid);
        }
        v.extend_from_slice(c);
    }
    v
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    message(2, 1, 0, &size.to_be_bytes(), 128)
}

fn connect_body() -> Vec<u8> {
    encode_all(&[
        "connect".into(),
        1.0.into(),
        Amf0Value::Object(vec![
            ("app".into(), "live".into()),
            ("tcUrl".into(), "rtmp://127.0.0.1/live".into()),
        ]),
    ])
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Reads until the server closes the connection (EOF or error); returns how
/// long that took, or panics after `limit`.
async fn wait_closed(socket: &mut TcpStream, limit: Duration, case: &str) -> Duration {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Err(_) => panic!("{case}: the server did not close the connection within {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {} // S0/S1/S2, protocol control messages, _result, …
        }
    }
}

/// Writes `bytes`; the server may already have closed (a reset is fine).
async fn send(socket: &mut TcpStream, bytes: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.write_all(bytes)).await;
}

/// Kills the FFmpeg publisher however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The live stream being watched, and the newest segment seen so far.
struct Live {
    id: Uuid,
    newest: u64,
}

fn segment_number(uri: &str) -> u64 {
    uri.trim_start_matches("segment-")
        .trim_end_matches(".m4s")
        .parse()
        .unwrap_or_else(|_| panic!("segment URI {uri}"))
}

impl Live {
    /// The media playlist advances past the newest segment seen before (within
    /// 3 segment durations), its newest segment fetches, `/health` answers.
    async fn assert_playing(&mut self, ts: &TestServer, after: &str) {
        let path = format!("/hls/{}/source/index.m3u8", self.id);
        let before = self.newest;
        let playlist = ts
            .wait_for_text(&path, Duration::from_secs(7), |t| {
                playlist_uris(t)
                    .last()
                    .is_some_and(|u| segment_number(u) > before)
                    && !t.contains("#EXT-X-ENDLIST")
            })
            .await
            .unwrap_or_else(|| {
                panic!("after {after}: the live playlist stopped advancing past segment {before}")
            });
        let newest = playlist_uris(&playlist).last().cloned().unwrap();
        self.newest = segment_number(&newest);
        let seg = ts
            .get_bytes(&format!("/hls/{}/source/{newest}", self.id))
            .await
            .unwrap_or_else(|| panic!("after {after}: newest segment {newest} does not fetch"));
        assert!(
            seg.len() > 1000,
            "after {after}: segment {newest} is {} bytes",
            seg.len()
        );
        let health = ts.get("/health").await;
        assert!(
            health.status().is_success(),
            "after {after}: /health answered {}",
            health.status()
        );
        assert_eq!(
            ts.status(self.id).await,
            "ACTIVE",
            "after {after}: live stream no longer ACTIVE"
        );
    }
}

/// Waits (bounded) for a WARN or ERROR line that names `peer` (the span field
/// of the connection) and says `expect`; `Err` describes what was missing.
async fn error_line(
    logs: &LogCapture,
    mark: usize,
    peer: SocketAddr,
    case: &str,
    expect: &str,
) -> Result<String, String> {
    let needle = format!("peer={peer}");
    let is_error = |l: &str| l.contains(&needle) && (l.contains(" WARN ") || l.contains("ERROR"));
    let found = logs
        .wait_since(mark, Duration::from_secs(3), |t| t.lines().any(is_error))
        .await;
    let Some(text) = found else {
        let all = logs.since(mark);
        let mine: Vec<&str> = all.lines().filter(|l| l.contains(&needle)).collect();
        return Err(format!(
            "{case}: no WARN/ERROR log line for connection {peer}; its lines:\n  {}",
            mine.join("\n  ")
        ));
    };
    let line = text.lines().find(|l| is_error(l)).unwrap().to_string();
    if line.contains(expect) {
        Ok(line)
    } else {
        Err(format!(
            "{case}: expected the error line to say {expect:?}: {line}"
        ))
    }
}

/// One misbehaving connection.
struct Attack<'a> {
    name: &'a str,
    /// What the client sends.
    bytes: Vec<u8>,
    /// Close the client's sending side afterwards.
    half_close: bool,
    /// The server must have closed the connection by then.
    limit: Duration,
    /// Text the server's error line must contain.
    expect: &'a str,
}

/// Opens a raw connection and misbehaves on it, then checks that the server
/// closed it within the limit and that the live stream still plays (both
/// panic at once), and that it logged an error for it saying what was
/// expected (a failure is returned, so that every case still runs).
async fn case(
    ts: &TestServer,
    logs: &LogCapture,
    live: &mut Live,
    attack: Attack<'_>,
) -> Result<(), String> {
    let Attack {
        name,
        bytes,
        half_close,
        limit,
        expect,
    } = attack;
    let mark = logs.mark();
    let mut socket = TcpStream::connect(ts.server.rtmp_addr)
        .await
        .expect("connect");
    let peer = socket.local_addr().unwrap();
    send(&mut socket, &bytes).await;
    if half_close {
        let _ = socket.shutdown().await;
    }
    let took = wait_closed(&mut socket, limit, name).await;
    let line = error_line(logs, mark, peer, name, expect).await;
    eprintln!("{name}: closed by the server after {took:?}; log: {line:?}");
    live.assert_playing(ts, name).await;
    line.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_do_not_disturb_a_live_stream() {
    let logs = capture_logs();
    let ts = TestServer::start_with(|c| c.ingest.read_timeout_secs = READ_TIMEOUT).await;
    let (id, key) = ts.create_stream("live-under-attack").await;
    let ffmpeg = KillOnDrop(ffmpeg_publish(
        &ts.publish_url(&key),
        &Publish {
            width: 320,
            height: 240,
            fps: 25,
            seconds: 120.0,
            gop_secs: 1,
            video_kbps: 300,
        },
    ));
    assert!(
        ts.wait_status(id, "ACTIVE", Duration::from_secs(15)).await,
        "FFmpeg stream never became ACTIVE"
    );
    let mut live = Live { id, newest: 0 };
    let mut failures = Vec::new();
    live.assert_playing(&ts, "start").await;

    let quick = Duration::from_secs(5);
    let idle = Duration::from_secs(READ_TIMEOUT + 4);
    let hs = handshake();
    let connect = message(3, 20, 0, &connect_body(), 128);

    // Half of C1, then the client closes its side.
    let truncated = hs[..1 + HANDSHAKE_SIZE / 2].to_vec();
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "truncated handshake",
            bytes: truncated,
            half_close: true,
            limit: quick,
            expect: "handshake",
        },
    )
    .await;
    failures.extend(r.err());

    // A complete handshake, then nothing: closed by the read timeout.
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "handshake then idle",
            bytes: hs.clone(),
            half_close: false,
            limit: idle,
            expect: "no data",
        },
    )
    .await;
    failures.extend(r.err());

    // Set Chunk Size 0 (RTMP 1.0 §5.4.1 forbids it).
    let bytes = [hs.clone(), set_chunk_size(0)].concat();
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "chunk size 0",
            bytes,
            half_close: false,
            limit: quick,
            expect: "invalid chunk size 0",
        },
    )
    .await;
    failures.extend(r.err());

    // The largest chunk size, then a message announcing 16 MiB − 1 (> 8 MiB bound).
    let huge = message_with_length(3, 9, 1, 0x00ff_ffff, &[0x17; 64], 0x7fff_ffff);
    let bytes = [hs.clone(), set_chunk_size(0x7fff_ffff), huge].concat();
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "chunk size 2^31-1 + huge message",
            bytes,
            half_close: false,
            limit: quick,
            expect: "exceeds the limit",
        },
    )
    .await;
    failures.extend(r.err());

    // A message length beyond the bound at the default chunk size.
    let huge = message_with_length(3, 20, 0, 9 * 1024 * 1024, &[0x02; 128], 128);
    let bytes = [hs.clone(), huge].concat();
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "message length beyond the bound",
            bytes,
            half_close: false,
            limit: quick,
            expect: "exceeds the limit",
        },
    )
    .await;
    failures.extend(r.err());

    // Message type 0x30, which RTMP does not define.
    let bytes = [
        hs.clone(),
        connect.clone(),
        message(3, 0x30, 0, b"hello", 128),
    ]
    .concat();
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "unknown message type",
            bytes,
            half_close: false,
            limit: quick,
            expect: "unknown message type 48",
        },
    )
    .await;
    failures.extend(r.err());

    // connect whose command object is cut inside a property.
    let mut bad = connect_body();
    bad.truncate(bad.len() - 12);
    bad.extend_from_slice(&[0x00, 0x03, b'x', b'y']); // property "xy"…
    bad.push(0xff); // …with an unknown type marker
    let bytes = [hs.clone(), message(3, 20, 0, &bad, 128)].concat();
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "malformed AMF in connect",
            bytes,
            half_close: false,
            limit: quick,
            expect: "bad AMF0",
        },
    )
    .await;
    failures.extend(r.err());

    // connect with an argument nested 10,000 objects deep (40 KB in one chunk).
    let mut deep = encode_all(&["connect".into(), 1.0.into()]);
    for _ in 0..10_000 {
        deep.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    deep.push(0x05);
    let bytes = [
        hs.clone(),
        set_chunk_size(65_536),
        message(3, 20, 0, &deep, 65_536),
    ]
    .concat();
    let r = case(
        &ts,
        &logs,
        &mut live,
        Attack {
            name: "AMF nested 10,000 deep",
            bytes,
            half_close: false,
            limit: quick,
            expect: "nesting deeper than",
        },
    )
    .await;
    failures.extend(r.err());

    // A valid publish (our ClientSession, another stream's key), then noise.
    let (_, key2) = ts.create_stream("garbage-publisher").await;
    let mark = logs.mark();
    let config = ClientConfig::new(&ts.rtmp, "live", &key2);
    let mut p = RustPublisher::publish(ts.server.rtmp_addr, config, Duration::from_secs(10)).await;
    let peer = p.socket.local_addr().unwrap();
    send(&mut p.socket, &noise(8 * 1024, 0x9e37_79b9_7f4a_7c15)).await;
    // Noise either fails to parse at once or leaves a message waiting for
    // bytes that never come: then the read timeout closes it.
    let name = "random bytes after publish";
    let took = wait_closed(&mut p.socket, idle, name).await;
    let line = error_line(&logs, mark, peer, name, "connection closed on error").await;
    eprintln!("{name}: closed by the server after {took:?}; log: {line:?}");
    live.assert_playing(&ts, name).await;
    failures.extend(line.err());

    assert!(
        failures.is_empty(),
        "{} of 9 hostile connections were not logged as errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
    drop(ffmpeg);
    ts.server.shutdown().await;
}
