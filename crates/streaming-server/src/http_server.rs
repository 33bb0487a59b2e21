//! The HTTP(S) listeners: our own accept loop over hyper's HTTP/1.1
//! connection driver, so that every connection is capped, timed and
//! attributed to an address (docs/ARCHITECTURE.md, "Limits and abuse resistance").
//!
//! Per connection, in the order a client meets them:
//!
//! 1. **Caps at accept**: at most `http.max_connections` open in all and
//!    `http.max_connections_per_addr` per address (IPv6: per /64; trusted
//!    proxies only count towards the total). Beyond them the client gets a
//!    bare `503` with `Retry-After` and the socket is closed.
//! 2. **TLS** (HTTPS listener): the handshake is part of the header deadline.
//! 3. **Header deadline**: the first request's head must arrive within
//!    `http.header_read_timeout_secs` (10 s) of the accept, and every later
//!    one within that time of its first byte, so a connection that sends
//!    nothing, or half a header (slowloris), cannot hold a slot.
//! 4. **Request deadline**: a request must be answered — response body
//!    included — within `http.request_timeout_secs` (30 s); a handler that
//!    has not produced its response head by then is answered `408`.
//!    A WebSocket upgrade (`101`) leaves this regime by design: the channel
//!    has its own caps and pings (`streaming-delivery`'s `ws`).
//! 5. **Idle deadline**: a keep-alive connection with no request for
//!    `http.idle_timeout_secs` (60 s) is closed.
//!
//! The deadlines are one watchdog timer per connection, re-armed only when
//! it fires (no per-byte timer work). Every trip is counted in
//! `streaming_limit_hits_total` and logged at most once a second per kind.
//! Request heads are capped at 16 KiB (hyper answers 431 beyond).
//!
//! Every request carries a [`ClientAddr`] (the peer, or for a peer listed in
//! `http.trusted_proxies` the rightmost untrusted `X-Forwarded-For` hop) and
//! axum's `ConnectInfo<SocketAddr>` in its extensions.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use streaming_core::config::HttpConfig;
use streaming_core::hub::CancellationToken;
use streaming_core::limits::{AddrSlots, ClientAddr, LimitKind, Limits, Slot, SlotRefused};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// Largest request head (request line and headers) read (hyper's minimum is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Time a timed-out request gets to deliver its `408` before the connection goes.
const GRACE: Duration = Duration::from_secs(1);

/// What one HTTP(S) listener needs.
#[derive(Clone)]
pub struct HttpListener {
    pub name: &'static str,
    pub app: Router,
    pub tls: Option<TlsAcceptor>,
    pub config: Arc<HttpConfig>,
    /// Shared by every HTTP(S) listener of the process.
    pub slots: AddrSlots,
    pub limits: Limits,
}

/// Where a connection is in its life (HTTP/1.1: one request at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request since then.
    Idle(Instant),
    /// The first bytes of a request (or of the TLS handshake) arrived then.
    Head(Instant),
    /// A request is being answered since then.
    Request(Instant),
    /// Upgraded (WebSocket): none of our deadlines apply.
    Upgraded,
}

/// The connection's phase, shared by the IO wrapper, the service and the watchdog.
#[derive(Debug)]
struct Activity(Mutex<Phase>);

impl Activity {
    fn get(&self) -> Phase {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, p: Phase) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = p;
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn on_read(&self) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Phase::Idle(_) = *g {
            *g = Phase::Head(Instant::now());
        }
    }
}

/// A socket that reports reads to the connection's [`Activity`].
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Ends the request phase when the response body is done (or dropped).
struct BodyDone(Arc<Activity>);

impl Drop for BodyDone {
    fn drop(&mut self) {
        let mut g = self.0.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Phase::Request(_) = *g {
            *g = Phase::Idle(Instant::now());
        }
    }
}

/// A response body that reports its end.
struct Reporting {
    inner: Body,
    _done: BodyDone,
}

impl hyper::body::Body for Reporting {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The address a request is charged to.
fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    // Rightmost hop that is not one of our proxies: the client as the first
    // trusted proxy saw it (anything left of it could be forged).
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|h| !trusted.contains(h))
        .unwrap_or(peer)
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers one request through the router, with the request deadline.
async fn answer(
    listener: &HttpListener,
    activity: Arc<Activity>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<Reporting> {
    activity.set(Phase::Request(Instant::now()));
    let client = client_addr(peer.ip(), req.headers(), &listener.config.trusted_proxies);
    req.extensions_mut().insert(ClientAddr(client));
    req.extensions_mut().insert(ConnectInfo(peer));
    let upgrade = is_upgrade(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let call = listener.app.clone().oneshot(req.map(Body::new));
    let resp = if upgrade {
        call.await
    } else {
        let limit = Duration::from_secs(listener.config.request_timeout_secs.max(1));
        match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => {
                listener
                    .limits
                    .trip(LimitKind::HttpRequestTimeout, Some(client), || {
                        format!("{method} {path} not answered within {limit:?}; 408")
                    });
                Ok(Response::builder()
                    .status(StatusCode::REQUEST_TIMEOUT)
                    .header(header::CONNECTION, "close")
                    .body(Body::from("request timed out\n"))
                    .unwrap_or_default())
            }
        }
    };
    let resp = resp.unwrap_or_else(|e: Infallible| match e {});
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        activity.set(Phase::Upgraded);
    }
    resp.map(|inner| Reporting {
        inner,
        _done: BodyDone(activity),
    })
}

/// Waits until the connection's current deadline passes; returns which one.
async fn watchdog(activity: Arc<Activity>, cfg: Arc<HttpConfig>) -> LimitKind {
    let header = Duration::from_secs(cfg.header_read_timeout_secs.max(1));
    let idle = Duration::from_secs(cfg.idle_timeout_secs.max(1));
    let request = Duration::from_secs(cfg.request_timeout_secs.max(1)) + GRACE;
    loop {
        let (deadline, kind) = match activity.get() {
            Phase::Idle(t) => (t + idle, LimitKind::HttpIdleTimeout),
            Phase::Head(t) => (t + header, LimitKind::HttpHeaderTimeout),
            Phase::Request(t) => (t + request, LimitKind::HttpRequestTimeout),
            Phase::Upgraded => return std::future::pending().await,
        };
        if Instant::now() >= deadline {
            return kind;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Accepts connections until `shutdown` fires; connection tasks go on the
/// tracker (they end within ~1 s of shutdown).
pub async fn serve(
    listener: TcpListener,
    http: HttpListener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let local = listener.local_addr().ok();
    info!(addr = ?local, listener = http.name, "HTTP listening");
    let gauge = http.limits.metrics().open_connections("http");
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match acquire(&http, peer.ip()) {
            Ok(s) => s,
            Err(_) => {
                refuse(socket);
                continue;
            }
        };
        let http = http.clone();
        let shutdown = shutdown.clone();
        let gauge = gauge.clone();
        tracker.spawn(async move {
            gauge.inc();
            connection(socket, peer, http, shutdown).await;
            gauge.dec();
            drop(slot);
        });
    }
    info!(listener = http.name, "HTTP listener stopped");
}

fn acquire(http: &HttpListener, ip: IpAddr) -> Result<Slot, SlotRefused> {
    let trusted = http.config.trusted_proxies.contains(&ip);
    let r = if trusted {
        // A proxy multiplexes many clients: only the total applies.
        http.slots.try_acquire_unlimited(ip)
    } else {
        http.slots.try_acquire(ip)
    };
    if let Err(why) = r {
        let (kind, what) = match why {
            SlotRefused::Total => (LimitKind::HttpConnections, "connections in all"),
            SlotRefused::PerAddr => (
                LimitKind::HttpConnectionsPerAddr,
                "connections from this address",
            ),
        };
        http.limits.trip(kind, Some(ip), || {
            format!("HTTP connection refused: too many {what}")
        });
    }
    r
}

/// A refused connection gets a bare 503 if its buffer takes it at once, then is closed.
fn refuse(socket: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n";
    let _ = socket.try_write(BUSY);
    tokio::spawn(async move {
        let mut socket = socket;
        let _ = tokio::time::timeout(Duration::from_millis(100), socket.shutdown()).await;
    });
}

/// One connection, from accept to close.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    http: HttpListener,
    shutdown: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let activity = Arc::new(Activity(Mutex::new(Phase::Head(Instant::now()))));
    let tracked = Tracked {
        inner: socket,
        activity: activity.clone(),
    };
    match http.tls.clone() {
        // The first request must come within the header deadline of the
        // accept (TLS handshake included): a connection that sends nothing
        // is cut as one that sends half a header.
        None => drive(tracked, peer, http, activity, shutdown).await,
        Some(acceptor) => {
            let header = Duration::from_secs(http.config.header_read_timeout_secs.max(1));
            match tokio::time::timeout(header, acceptor.accept(tracked)).await {
                Ok(Ok(tls)) => drive(tls, peer, http, activity, shutdown).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => {
                    http.limits
                        .trip(LimitKind::TlsHandshakeTimeout, Some(peer.ip()), || {
                            format!("HTTPS: TLS handshake not done within {header:?}")
                        });
                }
            }
        }
    }
}

async fn drive<S>(
    io: S,
    peer: SocketAddr,
    http: HttpListener,
    activity: Arc<Activity>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let http = http.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let http = http.clone();
            let activity = activity.clone();
            async move { Ok::<_, Infallible>(answer(&http, activity, peer, req).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(MAX_HEAD_BYTES).keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let dog = watchdog(activity.clone(), http.config.clone());
    let mut dog = std::pin::pin!(dog);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        kind = dog.as_mut() => {
            let t = match kind {
                LimitKind::HttpHeaderTimeout => http.config.header_read_timeout_secs,
                LimitKind::HttpIdleTimeout => http.config.idle_timeout_secs,
                _ => http.config.request_timeout_secs,
            };
            http.limits.trip(kind, Some(peer.ip()), || match kind {
                LimitKind::HttpHeaderTimeout => {
                    format!("HTTP request head not received within {t} s; connection closed")
                }
                LimitKind::HttpIdleTimeout => {
                    format!("HTTP connection idle for {t} s; closed")
                }
                _ => format!("HTTP response not delivered within {t} s; connection closed"),
            });
            return;
        }
        _ = shutdown.cancelled() => {}
    }
    // Shutting down: finish the request in flight, then close (bounded).
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
}

/// Spawns a listener's accept loop on `tracker`.
pub fn spawn(
    listener: TcpListener,
    http: HttpListener,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let inner = tracker.clone();
    tracker.spawn(serve(listener, http, shutdown, inner));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7".parse().unwrap(),
        );
        assert_eq!(client_addr(proxy, &h, &[proxy]), client);
        assert_eq!(client_addr(client, &h, &[proxy]), client, "untrusted peer");
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client_addr(other, &h, &[proxy]), other);
        h.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        assert_eq!(
            client_addr(proxy, &h, &[proxy]),
            client,
            "our own proxies in the chain are skipped"
        );
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }
}
