//! WebSocket fan-out: N clients of `/ws/stream/{id}` read every message until
//! the end of the run; each `metrics` message's delay is the local Unix time
//! at receipt minus its `tick_ms` (when the server's collector tick fired).
//!
//! Memory stays small per client: a 4 KiB read buffer, no copy of a message,
//! and the delays go to one shared histogram of atomic counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::stats::{Stats, latency_json, percentile};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Delays are counted per millisecond up to this; longer ones share the last bucket.
const HIST_MAX_MS: usize = 60_000;

#[derive(Debug, Clone)]
pub struct WsOpts {
    pub url: Url,
    pub addrs: Vec<SocketAddr>,
    pub clients: usize,
    pub ramp: Duration,
    pub deadline: Instant,
}

/// Delays in whole milliseconds, one counter per millisecond, shared by all
/// clients without a lock.
pub struct DelayHist {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    negative: AtomicU64,
    max: AtomicI64,
}

impl Default for DelayHist {
    fn default() -> Self {
        Self {
            buckets: (0..=HIST_MAX_MS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            negative: AtomicU64::new(0),
            max: AtomicI64::new(i64::MIN),
        }
    }
}

impl DelayHist {
    /// Records one delay; a negative one (clock step) is counted as 0 ms and
    /// also reported apart.
    pub fn record(&self, delay_ms: i64) {
        if delay_ms < 0 {
            self.negative.fetch_add(1, Ordering::Relaxed);
        }
        let b = delay_ms.clamp(0, HIST_MAX_MS as i64) as usize;
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(delay_ms, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Nearest-rank percentile in ms (`p` in 0..=100), like `stats::percentile`.
    pub fn percentile(&self, p: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * n as f64).ceil().clamp(1.0, n as f64) as u64;
        let mut seen = 0;
        for (ms, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return ms as u64;
            }
        }
        HIST_MAX_MS as u64
    }

    pub fn to_json(&self) -> Value {
        let n = self.count();
        json!({
            "count": n,
            "p50": self.percentile(50.0),
            "p90": self.percentile(90.0),
            "p99": self.percentile(99.0),
            "max": if n == 0 { 0 } else { self.max.load(Ordering::Relaxed) },
            "negative": self.negative.load(Ordering::Relaxed),
        })
    }
}

/// What a client reads of a message: its type and `tick_ms`; the rest is
/// skipped without being stored.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    tick_ms: Option<i64>,
}

const KINDS: [&str; 5] = ["snapshot", "metrics", "status", "qualities", "other"];

fn kind_index(kind: Option<&str>) -> usize {
    KINDS
        .iter()
        .position(|k| Some(*k) == kind)
        .unwrap_or(KINDS.len() - 1)
}

/// The local Unix time in ms.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Default)]
pub struct ClientResult {
    pub connect_ms: Option<f64>,
    pub connect_error: Option<&'static str>,
    /// How the connection ended before the end of the run, if it did.
    pub ended_early: Option<&'static str>,
    pub messages: u64,
    pub by_kind: [u64; KINDS.len()],
    pub bad_json: u64,
}

async fn connect(
    opts: &WsOpts,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, &'static str> {
    let until = (Instant::now() + CONNECT_TIMEOUT).min(opts.deadline);
    let tcp = match tokio::time::timeout_at(until, TcpStream::connect(&opts.addrs[..])).await {
        Err(_) => return Err("connect_timeout"),
        Ok(Err(e)) if e.raw_os_error() == Some(libc::EMFILE) => return Err("connect_emfile"),
        Ok(Err(_)) => return Err("connect"),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let hs = tokio_tungstenite::client_async_with_config(opts.url.as_str(), tcp, Some(config));
    match tokio::time::timeout_at(until, hs).await {
        Err(_) => Err("handshake_timeout"),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            Err(match resp.status().as_u16() {
                404 => "handshake_http_404",
                400..=499 => "handshake_http_4xx",
                _ => "handshake_http_other",
            })
        }
        Ok(Err(_)) => Err("handshake"),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

pub async fn run_client(idx: usize, opts: Arc<WsOpts>, hist: Arc<DelayHist>) -> ClientResult {
    let mut r = ClientResult::default();
    if opts.clients > 0 && !opts.ramp.is_zero() {
        let delay = opts.ramp.mul_f64(idx as f64 / opts.clients as f64);
        tokio::time::sleep_until((Instant::now() + delay).min(opts.deadline)).await;
    }
    if Instant::now() >= opts.deadline {
        return r;
    }
    let started = Instant::now();
    let mut ws = match connect(&opts).await {
        Ok(ws) => ws,
        Err(e) => {
            if Instant::now() < opts.deadline {
                r.connect_error = Some(e);
            }
            return r;
        }
    };
    r.connect_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    loop {
        // Reading also answers the server's pings (tungstenite queues the pong).
        let msg = match tokio::time::timeout_at(opts.deadline, ws.next()).await {
            Err(_) => break,
            Ok(None) => {
                r.ended_early = Some("dropped");
                return r;
            }
            Ok(Some(Err(_))) => {
                r.ended_early = Some("error");
                return r;
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                let received = unix_ms();
                r.messages += 1;
                match serde_json::from_str::<Head>(t.as_str()) {
                    Ok(h) => {
                        let k = kind_index(h.kind.as_deref());
                        r.by_kind[k] += 1;
                        if KINDS[k] == "metrics" {
                            match h.tick_ms {
                                Some(tick) => hist.record(received - tick),
                                None => r.bad_json += 1,
                            }
                        }
                    }
                    Err(_) => r.bad_json += 1,
                }
            }
            Message::Close(_) => {
                r.ended_early = Some("closed_by_server");
                return r;
            }
            Message::Binary(_) => r.messages += 1,
            _ => {}
        }
    }
    // End of the run: close politely, without waiting long.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    r
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now
/// in force.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur as u64)
}

/// Runs all clients; returns the summary JSON and the errors.
pub async fn run(opts: WsOpts, nofile: Option<u64>) -> (Value, Stats) {
    let opts = Arc::new(opts);
    let hist = Arc::new(DelayHist::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..opts.clients)
        .map(|i| tokio::spawn(run_client(i, opts.clone(), hist.clone())))
        .collect();
    let mut stats = Stats::default();
    let mut connected = 0u64;
    let mut connect_ms = Vec::new();
    let mut ended: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_client: Vec<f64> = Vec::with_capacity(tasks.len());
    let mut by_kind = [0u64; KINDS.len()];
    let (mut messages, mut bad_json, mut connect_failures) = (0u64, 0u64, 0u64);
    for t in tasks {
        match t.await {
            Ok(r) => {
                if let Some(e) = r.connect_error {
                    connect_failures += 1;
                    stats.error(e.to_string());
                }
                if let Some(ms) = r.connect_ms {
                    connected += 1;
                    connect_ms.push(ms);
                    per_client.push(r.messages as f64);
                }
                if let Some(e) = r.ended_early {
                    *ended.entry(e).or_default() += 1;
                }
                messages += r.messages;
                bad_json += r.bad_json;
                for (a, b) in by_kind.iter_mut().zip(r.by_kind) {
                    *a += b;
                }
            }
            Err(_) => stats.error("ws_client_task_panic".into()),
        }
    }
    per_client.sort_by(f64::total_cmp);
    let mean = if per_client.is_empty() {
        0.0
    } else {
        per_client.iter().sum::<f64>() / per_client.len() as f64
    };
    let kinds: serde_json::Map<String, Value> = KINDS
        .iter()
        .zip(by_kind)
        .map(|(k, n)| ((*k).to_string(), json!(n)))
        .collect();
    let j = json!({
        "mode": "ws",
        "target": opts.url.as_str(),
        "elapsed_s": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        "nofile_limit": nofile,
        "errors": stats.to_json()["errors"].clone(),
        "clients": {
            "requested": opts.clients,
            "connected": connected,
            "connect_failures": connect_failures,
            "ended_early": ended.values().sum::<u64>(),
            "ended_early_by_kind": ended,
            "connect_ms": latency_json(&connect_ms),
        },
        "messages": {
            "total": messages,
            "by_type": kinds,
            "unparsed": bad_json,
        },
        "metrics_messages": by_kind[kind_index(Some("metrics"))],
        "metrics_delay_ms": hist.to_json(),
        "messages_per_client": {
            "min": per_client.first().copied().unwrap_or(0.0),
            "p50": percentile(&per_client, 50.0),
            "max": per_client.last().copied().unwrap_or(0.0),
            "mean": (mean * 100.0).round() / 100.0,
        },
    });
    (j, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_percentiles() {
        let h = DelayHist::default();
        assert_eq!(h.to_json()["count"], 0);
        assert_eq!(h.percentile(50.0), 0);
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(90.0), 90);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        h.record(-3);
        h.record(70_000);
        let j = h.to_json();
        assert_eq!(j["count"], 102);
        assert_eq!(j["negative"], 1);
        assert_eq!(j["max"], 70_000);
        // The nearest rank of 102 samples: 0 ms (the negative one) first.
        assert_eq!(h.percentile(0.5), 0);
        assert_eq!(h.percentile(100.0), HIST_MAX_MS as u64);
    }

    #[test]
    fn same_percentiles_as_samples() {
        let samples = [5i64, 1, 9, 9, 3, 250, 7, 7, 2, 40, 13];
        let h = DelayHist::default();
        samples.iter().for_each(|&d| h.record(d));
        let mut s: Vec<f64> = samples.iter().map(|&d| d as f64).collect();
        s.sort_by(f64::total_cmp);
        for p in [1.0, 25.0, 50.0, 90.0, 99.0, 100.0] {
            assert_eq!(h.percentile(p) as f64, percentile(&s, p), "p{p}");
        }
    }

    /// Three clients against a local server that sends a snapshot, a ping
    /// and two metrics messages, then keeps the connection open.
    #[tokio::test]
    async fn fan_out_against_local_server() {
        use futures::SinkExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    let snap = r#"{"type":"snapshot","stream":{}}"#;
                    ws.send(Message::text(snap)).await.unwrap();
                    ws.send(Message::Ping(Default::default())).await.unwrap();
                    for _ in 0..2 {
                        let tick = unix_ms() - 5;
                        let m = format!(r#"{{"type":"metrics","tick_ms":{tick},"errors":0}}"#);
                        ws.send(Message::text(m)).await.unwrap();
                    }
                    // Keep reading (pongs, the client's close) until it goes.
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        });
        let opts = WsOpts {
            url: Url::parse(&format!("ws://{addr}/ws/stream/x")).unwrap(),
            addrs: vec![addr],
            clients: 3,
            ramp: Duration::ZERO,
            deadline: Instant::now() + Duration::from_millis(500),
        };
        let (j, stats) = run(opts, None).await;
        assert_eq!(stats.total_errors(), 0, "{j}");
        assert_eq!(j["clients"]["connected"], 3, "{j}");
        assert_eq!(j["clients"]["ended_early"], 0, "{j}");
        assert_eq!(j["metrics_messages"], 6, "{j}");
        assert_eq!(j["messages"]["by_type"]["snapshot"], 3, "{j}");
        assert_eq!(j["metrics_delay_ms"]["count"], 6, "{j}");
        assert!(j["metrics_delay_ms"]["p50"].as_u64().unwrap() >= 5, "{j}");
        assert_eq!(j["messages_per_client"]["min"], 3.0, "{j}");
    }

    #[test]
    fn message_heads() {
        let m = r#"{"type":"metrics","at":"2026-11-28T02:30:01.000Z","tick_ms":1795833001000,"status":"ACTIVE","concurrent_viewers":3,"quality_distribution":{"480p":3},"qualities":["source"],"transcoder_speed":null}"#;
        let h: Head = serde_json::from_str(m).unwrap();
        assert_eq!(h.kind.as_deref(), Some("metrics"));
        assert_eq!(h.tick_ms, Some(1_795_833_001_000));
        let h: Head = serde_json::from_str(r#"{"type":"snapshot","stream":{}}"#).unwrap();
        assert_eq!(KINDS[kind_index(h.kind.as_deref())], "snapshot");
        assert_eq!(KINDS[kind_index(Some("weird"))], "other");
        assert_eq!(KINDS[kind_index(None)], "other");
    }
}
