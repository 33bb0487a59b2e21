//! Recovery from crashes and database faults, on the real binary (issue 9,
//! point 6), each while a real FFmpeg publish plays to a player-like viewer:
//!
//! - `kill -9` while live, restart on the same data dir: the stream is ENDED
//!   at once, at the time it was last seen, its viewer sessions closed;
//! - the SQLite database on a full disk (a tmpfs filled up): `/ready` 503,
//!   creates answer a 503 problem, the stream keeps playing, and once space
//!   is freed the state is right (an encoder stop during the outage is
//!   recorded with its own time);
//! - PostgreSQL stopped (a cluster of the test's own): likewise;
//! - the SQLite file write-locked by another process: public status reads
//!   stay fast (the read pool is separate from the stuck writer);
//! - query dates out of range: 400, never a panic.
//!
//! The cases run one at a time (they share two cores with their FFmpegs,
//! and one of them measures latency).

mod common;
#[path = "support/own_postgres.rs"]
mod own_postgres;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::abuse::{ADMIN_TOKEN, HlsViewer, LivePublish, ServerProcess, p50_p99};
use common::{assert_problem, require, send_json};
use own_postgres::OwnPostgres;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

/// One case at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Samples reach the database every second, so "last seen" is precise.
const FLUSH_EVERY_SECOND: &str = "[metrics]\nflush_secs = 1\n";

async fn ready(server: &ServerProcess) -> (u16, Value) {
    let got = send_json(server.client.get(server.url("/ready"))).await;
    (got.0.as_u16(), got.2)
}

/// Polls `/ready` until it answers `code` (bounded); returns its last body.
async fn wait_ready(server: &ServerProcess, code: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = ready(server).await;
        if got == code {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/ready did not turn {code} within {within:?}: {got} {body}\nserver log:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn admin(server: &ServerProcess, path: &str) -> (u16, Value) {
    let got = send_json(server.client.get(server.url(path)).bearer_auth(ADMIN_TOKEN)).await;
    (got.0.as_u16(), got.2)
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()?.parse().ok()
}

/// `|a − b|`.
fn apart(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (a - b).abs().to_std().unwrap_or(Duration::MAX)
}

/// Waits (bounded) for `status` and returns how long it took.
async fn wait_status(server: &ServerProcess, id: Uuid, status: &str, within: Duration) -> Duration {
    let t = Instant::now();
    assert!(
        server.wait_status(id, status, within).await,
        "stream {id} did not become {status} within {within:?} (it is {:?}); server log:\n{}",
        server.status(id).await,
        server.logs()
    );
    t.elapsed()
}

/// Stops the encoder abruptly (as a crash or a network cut would).
fn stop_encoder(live: &mut LivePublish) -> DateTime<Utc> {
    let _ = live.child.kill();
    let _ = live.child.wait();
    Utc::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_live_then_restart_ends_the_stream_and_its_sessions() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), FLUSH_EVERY_SECOND).await;
    let live = LivePublish::start(&server, 120).await;
    let id = live.stream_id;
    let viewer = HlsViewer::start(&server.http, id);
    viewer.wait_first_segment(Duration::from_secs(20)).await;
    // The viewer's session is stored (open) before the crash.
    let viewers = format!("/api/v1/streams/{id}/viewers");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, list) = admin(&server, &viewers).await;
        assert_eq!(code, 200, "{list}");
        let open = list["items"]
            .as_array()
            .is_some_and(|v| v.iter().any(|s| s["ended_at"].is_null()));
        if open {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer's session was not stored: {list}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Live for a few seconds more, so that metrics samples mark it as seen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    viewer.assert_playing(Duration::from_secs(5), "before the crash");
    let killed_at = Utc::now();
    server.kill9().await;
    drop(viewer);
    drop(live);
    assert_eq!(server.status(id).await, "", "the server is gone");

    let restart = Instant::now();
    let server = ServerProcess::start(dir.path(), FLUSH_EVERY_SECOND).await;
    let waited = wait_status(&server, id, "ENDED", Duration::from_secs(5)).await;
    let to_ended = restart.elapsed();
    assert!(
        to_ended <= Duration::from_secs(5),
        "ENDED {to_ended:?} after the restart"
    );
    let (code, detail) = admin(&server, &format!("/api/v1/streams/{id}")).await;
    assert_eq!(code, 200, "{detail}");
    assert_eq!(detail["status"], "ENDED");
    assert_eq!(detail["live"], false);
    let ended_at = time(&detail["ended_at"]).expect("ended_at");
    let off = apart(ended_at, killed_at);
    assert!(
        ended_at <= killed_at + chrono::Duration::seconds(1) && off <= Duration::from_secs(4),
        "ended_at {ended_at} is {off:?} from the kill at {killed_at}"
    );
    let (_, list) = admin(&server, &viewers).await;
    let items = list["items"].as_array().expect("items");
    assert!(!items.is_empty(), "{list}");
    for s in items {
        assert!(
            !s["ended_at"].is_null() && s["ended_at"] == s["last_seen_at"],
            "a viewer session left open or closed at the wrong time: {s}"
        );
    }
    assert_eq!(list["concurrent_viewers"], 0, "{list}");
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("ended streams left ACTIVE"))
        .unwrap_or_else(|| panic!("no recovery line in the log:\n{logs}"));
    assert!(
        line.contains(&id.to_string()) && line.contains("count"),
        "{line}"
    );
    eprintln!(
        "kill -9 recovery: ENDED {to_ended:?} after the restart began (first status read \
         {waited:?} after the server was up); ended_at {off:?} from the kill; {} session(s) closed",
        items.len()
    );
}

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .output()
            .unwrap_or_else(|e| panic!("running mount: {e}"));
        assert!(
            out.status.success(),
            "this test needs a small filesystem to fill up: `mount -t tmpfs -o size={size} tmpfs {}` \
             failed ({}): {}. Run it as root (or with CAP_SYS_ADMIN), as CI does.",
            mnt.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self { _dir: dir, mnt }
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.mnt.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // The tail that still fits, byte by byte would be slow: 4 KiB steps.
        while f.write_all(&chunk[..4096]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    streaming_core::repo::free_bytes(path).unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_503_keeps_playing_and_recovers() {
    let _one = SERIAL.lock().await;
    require("ffmpeg", "ffmpeg");
    let fs = Tmpfs::mount("24m");
    let data = fs.mnt.join("data");
    let server = ServerProcess::start(&data, FLUSH_EVERY_SECOND).await;
    // A stays live through the outage; B's encoder stops while the disk is full.
    let mut live_a = LivePublish::start(&server, 150).await;
    let mut live_b = LivePublish::start(&server, 150).await;
    let (a, b) = (live_a.stream_id, live_b.stream_id);
    let viewer = HlsViewer::start(&server.http, a);
    viewer.wait_first_segment(Duration::from_secs(20)).await;
    wait_ready(&server, 200, Duration::from_secs(5)).await;

    let filler = fs.fill();
    assert!(free_bytes(&data) < streaming_core::repo::MIN_FREE_BYTES);
    let full_at = Instant::now();
    let body = wait_ready(&server, 503, Duration::from_secs(5)).await;
    let to_503 = full_at.elapsed();
    let db = &body["checks"]["database"];
    assert_eq!(db["status"], "fail", "{body}");
    assert!(
        db["detail"].as_str().is_some_and(|d| d.contains("free")),
        "the detail should say the disk is full: {body}"
    );
    assert_eq!(body["checks"]["listeners"]["status"], "pass", "{body}");
    let got = send_json(
        server
            .client
            .post(server.url("/api/v1/streams"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": "on a full disk" })),
    )
    .await;
    assert_problem(&got, 503, "database-unavailable");

    // Playback goes on; public reads still answer.
    assert_eq!(server.status(a).await, "ACTIVE");
    let b_stopped_at = stop_encoder(&mut live_b);
    tokio::time::sleep(Duration::from_secs(4)).await;
    viewer.assert_playing(Duration::from_secs(6), "while the disk is full");
    assert!(live_a.running(), "the publish was cut off on a full disk");
    assert_eq!(
        server.status(b).await,
        "ACTIVE",
        "nothing can be written while the disk is full: B's end is still queued"
    );

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    wait_ready(&server, 200, Duration::from_secs(5)).await;
    let b_recorded = wait_status(&server, b, "ENDED", Duration::from_secs(10)).await;
    let saved_after = freed.elapsed();
    let (_, detail) = admin(&server, &format!("/api/v1/streams/{b}")).await;
    let b_ended = time(&detail["ended_at"]).expect("ended_at");
    assert!(
        apart(b_ended, b_stopped_at) <= Duration::from_secs(3),
        "B ended at {b_ended}, its encoder stopped at {b_stopped_at}"
    );
    assert_eq!(server.status(a).await, "ACTIVE");
    viewer.assert_playing(Duration::from_secs(6), "after the disk was freed");
    let got = send_json(
        server
            .client
            .post(server.url("/api/v1/streams"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": "after" })),
    )
    .await;
    assert_eq!(got.0, 201, "{}", got.2);
    let a_stopped_at = stop_encoder(&mut live_a);
    wait_status(&server, a, "ENDED", Duration::from_secs(5)).await;
    let (_, detail) = admin(&server, &format!("/api/v1/streams/{a}")).await;
    let a_ended = time(&detail["ended_at"]).expect("ended_at");
    assert!(apart(a_ended, a_stopped_at) <= Duration::from_secs(2));
    let stats = viewer.stats();
    eprintln!(
        "full disk: /ready 503 {to_503:?} after the disk filled; B's ENDED saved within \
         {saved_after:?} after space was freed ({b_recorded:?} of polling); viewer {} segments, \
         longest gap {:?}, {} errors",
        stats.segments, stats.max_gap, stats.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_keeps_playing_and_records_the_end_once_back() {
    let _one = SERIAL.lock().await;
    let pg = OwnPostgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start_env(dir.path(), FLUSH_EVERY_SECOND, &[("DATABASE_URL", &url)]).await;
    let mut live = LivePublish::start(&server, 150).await;
    let id = live.stream_id;
    let viewer = HlsViewer::start(&server.http, id);
    viewer.wait_first_segment(Duration::from_secs(20)).await;

    pg.ctl_stop();
    let body = wait_ready(&server, 503, Duration::from_secs(10)).await;
    assert_eq!(body["checks"]["database"]["status"], "fail", "{body}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    viewer.assert_playing(Duration::from_secs(6), "while PostgreSQL is down");
    assert!(live.running());
    // The encoder stops while PostgreSQL is down.
    let stopped_at = stop_encoder(&mut live);
    tokio::time::sleep(Duration::from_secs(3)).await;

    pg.ctl_start();
    let back = Instant::now();
    wait_ready(&server, 200, Duration::from_secs(20)).await;
    let ready_after = back.elapsed();
    wait_status(&server, id, "ENDED", Duration::from_secs(15)).await;
    let ended_after = back.elapsed();
    let (code, detail) = admin(&server, &format!("/api/v1/streams/{id}")).await;
    assert_eq!(code, 200, "{detail}");
    let ended_at = time(&detail["ended_at"]).expect("ended_at");
    assert!(
        apart(ended_at, stopped_at) <= Duration::from_secs(3),
        "ended_at {ended_at}, the encoder stopped at {stopped_at}"
    );
    eprintln!(
        "PostgreSQL outage: /ready 200 {ready_after:?} and the queued ENDED saved \
         {ended_after:?} after PostgreSQL came back"
    );
    drop(server);
    drop(pg);
}

/// Another process holds SQLite's write lock (`BEGIN IMMEDIATE`, Python's
/// sqlite3 module) until its stdin gets a line.
struct LockHolder {
    child: tokio::process::Child,
}

impl LockHolder {
    async fn hold(db: &Path) -> Self {
        require("python3", "python3");
        let script = "import sqlite3, sys\n\
                      c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
                      c.execute('BEGIN IMMEDIATE')\n\
                      print('locked', flush=True)\n\
                      sys.stdin.readline()\n\
                      c.execute('ROLLBACK')\n";
        let mut child = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await;
        assert!(
            matches!(&first, Ok(Ok(Some(l))) if l == "locked"),
            "python3 could not take the write lock: {first:?}"
        );
        Self { child }
    }

    async fn release(mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"\n").await.unwrap();
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_locked_sqlite_does_not_slow_status_reads() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let (id, _) = server.create_stream("read under a write lock").await;
    let holder = LockHolder::hold(&dir.path().join("streaming.db")).await;
    // Writers pile up behind the lock, as they did when they starved reads.
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let req = server
                .client
                .post(server.url("/api/v1/streams"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({ "name": format!("blocked {i}") }));
            tokio::spawn(send_json(req))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status_path = format!("/api/v1/streams/{id}/status");
    let mut ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let got = send_json(server.client.get(server.url(&status_path))).await;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(got.0, 200, "{}", got.2);
        assert_eq!(got.2["status"], "PENDING");
    }
    let (p50, p99) = p50_p99(&ms);
    let body = wait_ready(&server, 503, Duration::from_secs(5)).await;
    assert_eq!(body["checks"]["database"]["status"], "fail", "{body}");
    holder.release().await;
    for w in writers {
        let got = w.await.unwrap();
        match got.0.as_u16() {
            201 => {}
            _ => assert_problem(&got, 503, "database-unavailable"),
        }
    }
    wait_ready(&server, 200, Duration::from_secs(5)).await;
    eprintln!(
        "status read under a held write lock: p50 {p50:.1} ms, p99 {p99:.1} ms over {} reads",
        ms.len()
    );
    assert!(
        p99 < 500.0,
        "status reads p99 {p99:.1} ms (p50 {p50:.1} ms): {ms:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_query_dates_are_400() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), "").await;
    let (id, _) = server.create_stream("dates").await;
    // Years RFC 3339 cannot write (the date parser reads them).
    let far = [
        "-262143-01-01T00:00:00Z",
        "+262142-12-31T23:59:59Z",
        "-0002-06-01T00:00:00Z",
        "+10001-01-01T00:00:00Z",
    ];
    for route in ["metrics", "analytics"] {
        for param in ["from", "to"] {
            for t in far {
                let req = server
                    .client
                    .get(server.url(&format!("/api/v1/{route}/{id}")))
                    .query(&[(param, t)])
                    .bearer_auth(ADMIN_TOKEN);
                let got = send_json(req).await;
                assert_problem(&got, 400, "invalid-query");
            }
        }
        // The edges of the accepted range work.
        let req = server
            .client
            .get(server.url(&format!("/api/v1/{route}/{id}")))
            .query(&[
                ("from", "0000-01-01T00:00:00+23:59"),
                ("to", "9999-12-31T23:59:59-23:59"),
            ])
            .bearer_auth(ADMIN_TOKEN);
        let got = send_json(req).await;
        assert_eq!(got.0, 200, "{route}: {}", got.2);
    }
    assert!(
        matches!(server.child.try_wait(), Ok(None)),
        "the server died: {}",
        server.logs()
    );
    assert!(
        !server.logs().contains("panicked"),
        "a handler panicked:\n{}",
        server.logs()
    );
    server.kill9().await;
}
