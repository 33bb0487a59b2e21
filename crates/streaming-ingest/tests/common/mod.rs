//! A real ingest listener on 127.0.0.1 with a SQLite repository in a
//! temporary directory, and an RTMP publisher (our sans-IO client) over any
//! byte stream (TCP or TLS). Attackers connect from 127.0.0.N (N ≥ 2).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streaming_core::config::IngestConfig;
use streaming_core::events::{Event, EventBus};
use streaming_core::hub::{CancellationToken, StreamHub};
use streaming_core::limits::LimitKind;
use streaming_core::repo::DynRepository;
use streaming_ingest::IngestContext;
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::rtmp::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

pub struct Ingest {
    pub addr: SocketAddr,
    pub ctx: Arc<IngestContext>,
    pub repo: DynRepository,
    pub events: EventBus,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Ingest {
    pub async fn start(config: IngestConfig, tls: Option<TlsAcceptor>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("ingest.db").display());
        let repo = streaming_core::repo::connect(&url).await.expect("sqlite");
        let events = EventBus::new(1024);
        let ctx = Arc::new(IngestContext::new(
            repo.clone(),
            StreamHub::new(),
            events.clone(),
            config,
        ));
        let listener = streaming_ingest::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(streaming_ingest::serve(
            listener,
            ctx.clone(),
            shutdown.clone(),
            tls,
        ));
        Self {
            addr,
            ctx,
            repo,
            events,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// A new stream and its key.
    pub async fn stream(&self) -> (Uuid, String) {
        let c = self
            .repo
            .create_stream("ingest test")
            .await
            .expect("create");
        (c.stream.id, c.plaintext_key)
    }

    pub fn hits(&self, kind: LimitKind) -> u64 {
        self.ctx.limits.hits(kind)
    }

    /// `streaming_open_connections{surface}` now.
    pub fn open(&self, surface: &'static str) -> i64 {
        self.ctx.metrics.open_connections(surface).get()
    }

    /// Waits (bounded) until `streaming_open_connections{surface}` is `want`
    /// (a connection task drops its slots a moment after its socket closes).
    pub async fn wait_open(&self, surface: &'static str, want: i64) -> i64 {
        for _ in 0..100 {
            if self.open(surface) == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.open(surface)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// `127.0.0.n`.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A TCP connection to `to` from `127.0.0.n`.
pub async fn connect_from(n: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(loopback(n), 0)).unwrap();
    let s = socket.connect(to).await.expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until the peer closes (or resets) the connection; how long that
/// took, or `None` if it was still open after `limit`.
pub async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// C0 + C1 + C2 of a plain handshake.
pub fn handshake() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend(std::iter::repeat_n(
        0u8,
        2 * streaming_media::rtmp::HANDSHAKE_SIZE,
    ));
    v
}

/// An Acknowledgement message (RTMP 1.0 §5.4.3) on chunk stream 2: not media.
pub fn ack(seq: u32) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0];
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

/// Our RTMP client over any byte stream.
pub struct Publisher<S> {
    pub io: S,
    pub session: ClientSession,
    pub events: Vec<ClientEvent>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Publisher<S> {
    /// Handshake, connect and publish `key`; `Err` with what happened if the
    /// publish did not start within `timeout`.
    pub async fn publish(io: S, key: &str, timeout: Duration) -> Result<Self, String> {
        let config = ClientConfig::new("rtmp://127.0.0.1/live", "live", key);
        let mut p = Self {
            io,
            session: ClientSession::new(config),
            events: Vec::new(),
        };
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            p.flush().await?;
            if p.events
                .iter()
                .any(|e| matches!(e, ClientEvent::PublishStarted { .. }))
            {
                return Ok(p);
            }
            if let Some(e) = p
                .events
                .iter()
                .find(|e| matches!(e, ClientEvent::PublishRejected { .. }))
            {
                return Err(format!("rejected: {e:?}"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let n = match tokio::time::timeout(left, p.io.read(&mut buf)).await {
                Err(_) => return Err(format!("no PublishStarted in time: {:?}", p.events)),
                Ok(Err(e)) => return Err(format!("read: {e}")),
                Ok(Ok(0)) => return Err(format!("closed by the server: {:?}", p.events)),
                Ok(Ok(n)) => n,
            };
            p.session
                .handle_input(std::time::Instant::now(), &buf[..n])
                .map_err(|e| e.to_string())?;
        }
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        while let Some(o) = self.session.poll_output() {
            match o {
                ClientOutput::Transmit(b) => {
                    self.io.write_all(&b).await.map_err(|e| e.to_string())?;
                    self.io.flush().await.map_err(|e| e.to_string())?;
                }
                ClientOutput::Event(e) => self.events.push(e),
            }
        }
        Ok(())
    }

    /// Sends an AVC sequence header and a key frame at `ts`.
    pub async fn send_video(&mut self, ts: u32) -> Result<(), String> {
        let header = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe0]);
        let key = Bytes::from(vec![0x17, 1, 0, 0, 0, 0, 0, 0, 5, 0x65, 1, 2, 3, 4]);
        for data in [header, key] {
            self.session
                .send_frame(&Frame::new(FrameKind::Video, ts, data))
                .map_err(|e| e.to_string())?;
        }
        self.flush().await
    }
}

/// Waits (bounded) for an event on `events` matching `pred`.
pub async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    timeout: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return None,
            Ok(Ok(e)) if pred(&e) => return Some(e),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) => return None,
        }
    }
}
