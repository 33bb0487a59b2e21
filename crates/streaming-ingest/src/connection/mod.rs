//! One RTMP(S) connection: the thin driver around the sans-IO server session,
//! generic over the byte stream (TCP, or TLS over TCP for RTMPS).
//!
//! Deadlines run from accept, not per read, so a peer dripping one byte at a
//! time is still cut: the handshake (with TLS, the TLS handshake first) within
//! `handshake_timeout_secs`, an accepted publish within
//! `publish_timeout_secs`; once publishing, no media for
//! `idle_publish_timeout_secs` ends the broadcast. A read that brings nothing
//! for `read_timeout_secs` closes any connection. Until it publishes, the
//! connection reads through a small buffer and sits in the pending pool,
//! from which a flood from other addresses may evict it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use streaming_core::CoreError;
use streaming_core::events::Event;
use streaming_core::hub::{CancellationToken, PublishStart, Publisher};
use streaming_core::limits::LimitKind;
use streaming_core::model::StreamStatus;
use streaming_core::repo::KeyCheck;
use streaming_core::status::{Outcome, Request};
use streaming_media::rtmp::{RtmpLimit, ServerEvent, ServerOutput, ServerSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use crate::IngestContext;
use crate::admission::Admitted;
use crate::media::MediaIn;

mod publish;

/// C0 + C1 + C2: what a client sends before its first chunk.
const HANDSHAKE_BYTES: u64 = 1 + 2 * streaming_media::rtmp::HANDSHAKE_SIZE as u64;

/// The RTMP application broadcasters publish to: `rtmp://HOST/live/{key}`.
const APP: &str = "live";

/// Read buffer until the connection publishes (an idle pending connection
/// stays small), and after.
const PENDING_READ_BUF: usize = 4 * 1024;
const PUBLISHING_READ_BUF: usize = 64 * 1024;

/// A byte stream a connection runs over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection the listener admitted.
pub(crate) struct Accepted {
    pub peer: SocketAddr,
    pub conn_id: u64,
    /// When the TCP connection was accepted: the deadlines run from here.
    pub at: TokioInstant,
    pub admitted: Admitted,
}

struct Live {
    publisher: Publisher,
    rtmp_stream_id: u32,
    got_media: bool,
    /// This publish's FLV tags, parsed once for the hub.
    media: MediaIn,
}

/// Why a connection ended (logged once).
enum End {
    PeerClosed,
    Shutdown,
    Replaced,
    /// A limit cut the connection off (already counted by `Limits::trip`).
    Limit(LimitKind, String),
    /// The publish was refused (already logged).
    Refused(String),
    Error(String),
}

pub(crate) async fn run(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    accepted: Accepted,
    ctx: Arc<IngestContext>,
    shutdown: CancellationToken,
) {
    let peer = accepted.peer;
    let span =
        info_span!("rtmp", conn = accepted.conn_id, %peer, stream_id = tracing::field::Empty);
    let _ = socket.set_nodelay(true);
    let mut conn = Conn {
        ctx,
        session: None,
        live: None,
        conn_id: accepted.conn_id,
        span: span.clone(),
        peer,
        accepted_at: accepted.at,
        admitted: accepted.admitted,
        last_media: accepted.at,
    };
    async move {
        match tls {
            None => conn.drive(socket, &shutdown).await,
            Some(acceptor) => {
                if let Some(stream) = conn.tls_handshake(acceptor, socket, &shutdown).await {
                    conn.drive(stream, &shutdown).await;
                }
            }
        }
    }
    .instrument(span)
    .await;
}

struct Conn {
    ctx: Arc<IngestContext>,
    session: Option<ServerSession>,
    live: Option<Live>,
    conn_id: u64,
    span: tracing::Span,
    peer: SocketAddr,
    accepted_at: TokioInstant,
    admitted: Admitted,
    /// When media last arrived (or the publish was accepted).
    last_media: TokioInstant,
}

impl Conn {
    /// The TLS handshake of an RTMPS connection, within the handshake deadline.
    async fn tls_handshake(
        &mut self,
        acceptor: TlsAcceptor,
        socket: TcpStream,
        shutdown: &CancellationToken,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let deadline = self.accepted_at + self.ctx.handshake_timeout();
        let evicted = self.admitted.evicted.clone();
        let end = tokio::select! {
            biased;
            _ = shutdown.cancelled() => End::Shutdown,
            _ = evicted.cancelled() => evicted_end(),
            r = tokio::time::timeout_at(deadline, acceptor.accept(socket)) => match r {
                Ok(Ok(stream)) => return Some(stream),
                Ok(Err(e)) => End::Error(format!("TLS handshake failed: {e}")),
                Err(_) => {
                    let t = self.ctx.handshake_timeout();
                    self.trip(LimitKind::TlsHandshakeTimeout, format!(
                        "TLS handshake not done within {t:?} of accept"
                    ))
                }
            },
        };
        self.log_end(&end);
        None
    }

    async fn drive<S: Io>(&mut self, mut io: S, shutdown: &CancellationToken) {
        self.session = Some(ServerSession::new(self.ctx.session_config()));
        debug!("connection accepted");
        let end = self.pump(&mut io, shutdown).await;
        self.log_end(&end);
        let reason = match &end {
            End::PeerClosed => "encoder disconnected".to_string(),
            End::Shutdown => "server shutdown".to_string(),
            End::Replaced => "publisher replaced".to_string(),
            End::Limit(_, why) => why.clone(),
            End::Refused(why) => format!("publish refused: {why}"),
            End::Error(e) => format!("connection error: {e}"),
        };
        self.end_broadcast(&reason).await;
        // Drop the engine (and give its reassembly bytes back) before the
        // goodbye, which may wait on a slow peer.
        self.session = None;
        let _ = tokio::time::timeout(self.ctx.write_timeout(), io.shutdown()).await;
    }

    fn publishing(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(ServerSession::publish_accepted)
    }

    /// Logs how the connection ended. Lines a connection that never
    /// published causes go through a gate, so a flood of hostile connections
    /// cannot flood the log.
    fn log_end(&self, end: &End) {
        let publishing = self.publishing();
        match end {
            End::PeerClosed if publishing => info!("publisher disconnected"),
            End::PeerClosed => debug!("peer closed the connection before publishing"),
            End::Shutdown => info!("connection closed: server shutting down"),
            End::Replaced => {
                info!("connection closed: stream taken over by a new publish or key revoked")
            }
            End::Refused(_) => {}
            End::Limit(kind, e) => {
                if publishing {
                    warn!(limit = kind.as_str(), error = %e, "connection closed on error");
                } else if let Some(suppressed) = self.ctx.conn_log.allow() {
                    warn!(limit = kind.as_str(), error = %e, suppressed, "connection closed on error");
                }
            }
            End::Error(e) => {
                if publishing {
                    warn!(error = %e, "connection closed on error");
                } else if let Some(suppressed) = self.ctx.conn_log.allow() {
                    warn!(error = %e, suppressed, "connection closed on error");
                }
            }
        }
    }

    /// Counts `kind` and ends the connection with it.
    fn trip(&self, kind: LimitKind, why: String) -> End {
        let ip = self.peer.ip();
        self.ctx.limits.trip(kind, Some(ip), || why.clone());
        End::Limit(kind, why)
    }

    /// The deadline in force now and the limit it enforces.
    fn deadline(&self) -> (TokioInstant, LimitKind, String) {
        let ctx = &self.ctx;
        if self.publishing() {
            let t = ctx.idle_publish_timeout();
            return (
                self.last_media + t,
                LimitKind::RtmpIdlePublish,
                format!("no media for {t:?} while publishing"),
            );
        }
        let handshake_done = self
            .session
            .as_ref()
            .is_some_and(ServerSession::handshake_done);
        let (hs, publish) = (ctx.handshake_timeout(), ctx.publish_timeout());
        if !handshake_done && hs < publish {
            (
                self.accepted_at + hs,
                LimitKind::RtmpHandshakeTimeout,
                format!("RTMP handshake not done within {hs:?} of accept"),
            )
        } else {
            (
                self.accepted_at + publish,
                LimitKind::RtmpPublishTimeout,
                format!("no accepted publish within {publish:?} of accept"),
            )
        }
    }

    async fn pump<S: Io>(&mut self, io: &mut S, shutdown: &CancellationToken) -> End {
        let mut buf = vec![0u8; PENDING_READ_BUF];
        loop {
            let replaced = self
                .live
                .as_ref()
                .map(|l| l.publisher.cancelled().clone())
                .unwrap_or_default();
            // Only a pending connection can be evicted.
            let evicted = if self.publishing() {
                CancellationToken::new()
            } else {
                self.admitted.evicted.clone()
            };
            let (deadline, kind, why) = self.deadline();
            let read_timeout = self.ctx.read_timeout();
            let read = tokio::select! {
                // Shutdown also cancels publishers; report it as what it is.
                biased;
                _ = shutdown.cancelled() => return End::Shutdown,
                _ = replaced.cancelled() => {
                    return if shutdown.is_cancelled() { End::Shutdown } else { End::Replaced };
                }
                _ = evicted.cancelled() => return evicted_end(),
                _ = tokio::time::sleep_until(deadline) => return self.trip(kind, why),
                r = tokio::time::timeout(read_timeout, io.read(&mut buf)) => r,
            };
            let n = match read {
                Err(_) => return End::Error(format!("no data for {read_timeout:?}")),
                Ok(Err(e)) => return End::Error(format!("read failed: {e}")),
                Ok(Ok(0)) => {
                    // A peer gone before the handshake completed is no encoder stop.
                    let received = self.session.as_ref().map_or(0, |s| s.bytes_received());
                    if received < HANDSHAKE_BYTES {
                        return End::Error(format!(
                            "peer closed during the handshake after {received} bytes"
                        ));
                    }
                    return End::PeerClosed;
                }
                Ok(Ok(n)) => n,
            };
            let result = self
                .session
                .as_mut()
                .map(|s| s.handle_input(Instant::now(), &buf[..n]))
                .unwrap_or(Ok(()));
            // Whatever the engine queued goes out first, even before an error closes us.
            if let Err(e) = self.flush_outputs(io).await {
                return e;
            }
            if let Err(e) = result {
                if let Some(live) = self.live.as_ref() {
                    let id = live.publisher.stream_id();
                    self.ctx.metrics.stream_error(id, "protocol");
                }
                return match e.limit().map(limit_kind) {
                    Some(kind) => self.trip(kind, format!("protocol error: {e}")),
                    None => End::Error(format!("protocol error: {e}")),
                };
            }
            if self.publishing() && buf.len() < PUBLISHING_READ_BUF {
                buf.resize(PUBLISHING_READ_BUF, 0);
            }
        }
    }

    /// Drains the engine: writes bytes, acts on events, until it is empty.
    async fn flush_outputs<S: Io>(&mut self, io: &mut S) -> Result<(), End> {
        loop {
            let Some(out) = self.session.as_mut().and_then(|s| s.poll_output()) else {
                return Ok(());
            };
            match out {
                ServerOutput::Transmit(bytes) => self.write(io, bytes).await?,
                ServerOutput::Event(ev) => self.on_event(io, ev).await?,
            }
        }
    }

    async fn write<S: Io>(&mut self, io: &mut S, bytes: Bytes) -> Result<(), End> {
        let send = async {
            io.write_all(&bytes).await?;
            // TLS holds records until flushed; for TCP this is a no-op.
            io.flush().await
        };
        match tokio::time::timeout(self.ctx.write_timeout(), send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Error(format!("write failed: {e}"))),
            Err(_) => Err(End::Error("publisher not reading (write timeout)".into())),
        }
    }

    async fn on_event<S: Io>(&mut self, io: &mut S, ev: ServerEvent) -> Result<(), End> {
        match ev {
            ServerEvent::Connected { app, .. } => {
                // tcUrl is not logged: some encoders put the key in it.
                debug!(%app, "RTMP connect");
                Ok(())
            }
            ServerEvent::PublishRequested {
                stream_id,
                app,
                stream_key,
                ..
            } => self.on_publish(io, stream_id, &app, &stream_key).await,
            ServerEvent::Media(frame) => {
                self.last_media = TokioInstant::now();
                if let Some(live) = self.live.as_mut() {
                    if !live.got_media && !frame.data.is_empty() {
                        live.got_media = true;
                        let id = live.publisher.stream_id();
                        self.activate(id).await;
                    }
                    if let Some(live) = self.live.as_mut() {
                        let id = live.publisher.stream_id();
                        self.ctx.metrics.ingest_bytes(id, frame.data.len());
                        live.media.push(&frame, &live.publisher, &self.ctx.metrics);
                    }
                }
                Ok(())
            }
            ServerEvent::Unpublished { stream_id } => {
                if self
                    .live
                    .as_ref()
                    .is_some_and(|l| l.rtmp_stream_id == stream_id)
                {
                    info!("encoder unpublished");
                    self.end_broadcast("encoder stopped").await;
                }
                Ok(())
            }
        }
    }
}

/// The end of a connection evicted from the full pending pool (counted by
/// the admission that evicted it).
fn evicted_end() -> End {
    End::Limit(
        LimitKind::RtmpPending,
        "evicted from the full pending pool by a connection from a smaller holder".into(),
    )
}

/// The `streaming_limit_hits_total` kind of an engine limit.
fn limit_kind(limit: RtmpLimit) -> LimitKind {
    match limit {
        RtmpLimit::MessageSize => LimitKind::RtmpMessageSize,
        RtmpLimit::AmfValues | RtmpLimit::AmfDepth => LimitKind::RtmpAmf,
        RtmpLimit::PartialMessages | RtmpLimit::ChunkStreams => LimitKind::RtmpPartialMessages,
        RtmpLimit::ReassemblyBudget => LimitKind::RtmpReassemblyBudget,
        _ => LimitKind::RtmpMessageSize,
    }
}
