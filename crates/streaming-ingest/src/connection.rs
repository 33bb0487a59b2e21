//! One RTMP connection: the thin driver around the sans-IO server session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use streaming_core::CoreError;
use streaming_core::events::Event;
use streaming_core::hub::{CancellationToken, PublishStart, Publisher};
use streaming_core::model::StreamStatus;
use streaming_core::repo::KeyCheck;
use streaming_core::status::{Outcome, Request};
use streaming_media::rtmp::{ServerConfig, ServerEvent, ServerOutput, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use crate::IngestContext;

/// C0 + C1 + C2: what a client sends before its first chunk.
const HANDSHAKE_BYTES: u64 = 1 + 2 * streaming_media::rtmp::HANDSHAKE_SIZE as u64;

/// The RTMP application broadcasters publish to: `rtmp://HOST/live/{key}`.
const APP: &str = "live";

struct Live {
    publisher: Publisher,
    rtmp_stream_id: u32,
    got_media: bool,
}

/// Why a connection ended (logged once).
enum End {
    PeerClosed,
    Shutdown,
    Replaced,
    Error(String),
}

pub(crate) async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    ctx: Arc<IngestContext>,
    shutdown: CancellationToken,
) {
    let span = info_span!("rtmp", conn = conn_id, %peer, stream_id = tracing::field::Empty);
    Conn {
        socket,
        ctx,
        session: None,
        live: None,
        conn_id,
        span: span.clone(),
    }
    .drive(shutdown)
    .instrument(span)
    .await;
}

struct Conn {
    socket: TcpStream,
    ctx: Arc<IngestContext>,
    session: Option<ServerSession>,
    live: Option<Live>,
    conn_id: u64,
    span: tracing::Span,
}

impl Conn {
    async fn drive(mut self, shutdown: CancellationToken) {
        let _ = self.socket.set_nodelay(true);
        let config = ServerConfig {
            max_message_len: self.ctx.config.max_message_bytes,
            ..ServerConfig::default()
        };
        self.session = Some(ServerSession::new(config));
        debug!("connection accepted");
        let end = self.pump(&shutdown).await;
        match &end {
            End::PeerClosed => info!("publisher disconnected"),
            End::Shutdown => info!("connection closed: server shutting down"),
            End::Replaced => {
                info!("connection closed: stream taken over by a new publish or key revoked")
            }
            End::Error(e) => warn!(error = %e, "connection closed on error"),
        }
        let reason = match &end {
            End::PeerClosed => "encoder disconnected".to_string(),
            End::Shutdown => "server shutdown".to_string(),
            End::Replaced => "publisher replaced".to_string(),
            End::Error(e) => format!("connection error: {e}"),
        };
        self.end_broadcast(&reason).await;
        let _ = self.socket.shutdown().await;
    }

    async fn pump(&mut self, shutdown: &CancellationToken) -> End {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let replaced = self
                .live
                .as_ref()
                .map(|l| l.publisher.cancelled().clone())
                .unwrap_or_default();
            let read = tokio::select! {
                // Shutdown also cancels publishers; report it as what it is.
                biased;
                _ = shutdown.cancelled() => return End::Shutdown,
                _ = replaced.cancelled() => {
                    return if shutdown.is_cancelled() { End::Shutdown } else { End::Replaced };
                }
                r = tokio::time::timeout(self.ctx.read_timeout(), self.socket.read(&mut buf)) => r,
            };
            let n = match read {
                Err(_) => return End::Error(format!("no data for {:?}", self.ctx.read_timeout())),
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
            if let Err(e) = self.flush_outputs().await {
                return e;
            }
            if let Err(e) = result {
                if let Some(live) = self.live.as_ref() {
                    let id = live.publisher.stream_id();
                    self.ctx.metrics.stream_error(id, "protocol");
                }
                return End::Error(format!("protocol error: {e}"));
            }
        }
    }

    /// Drains the engine: writes bytes, acts on events, until it is empty.
    async fn flush_outputs(&mut self) -> Result<(), End> {
        loop {
            let Some(out) = self.session.as_mut().and_then(|s| s.poll_output()) else {
                return Ok(());
            };
            match out {
                ServerOutput::Transmit(bytes) => self.write(bytes).await?,
                ServerOutput::Event(ev) => self.on_event(ev).await?,
            }
        }
    }

    async fn write(&mut self, bytes: Bytes) -> Result<(), End> {
        match tokio::time::timeout(self.ctx.write_timeout(), self.socket.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Error(format!("write failed: {e}"))),
            Err(_) => Err(End::Error("publisher not reading (write timeout)".into())),
        }
    }

    async fn on_event(&mut self, ev: ServerEvent) -> Result<(), End> {
        match ev {
            ServerEvent::Connected { app, tc_url } => {
                debug!(%app, tc_url = tc_url.as_deref().unwrap_or(""), "RTMP connect");
                Ok(())
            }
            ServerEvent::PublishRequested {
                stream_id,
                app,
                stream_key,
                ..
            } => self.on_publish(stream_id, &app, &stream_key).await,
            ServerEvent::Media(frame) => {
                if let Some(live) = self.live.as_mut() {
                    if !live.got_media && !frame.data.is_empty() {
                        live.got_media = true;
                        let id = live.publisher.stream_id();
                        self.activate(id).await;
                    }
                    if let Some(live) = self.live.as_ref() {
                        let id = live.publisher.stream_id();
                        self.ctx.metrics.ingest_bytes(id, frame.data.len());
                        live.publisher.send(frame);
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

    async fn on_publish(
        &mut self,
        rtmp_stream_id: u32,
        app: &str,
        raw_key: &str,
    ) -> Result<(), End> {
        let key = raw_key.split('?').next().unwrap_or_default();
        if self.live.is_some() {
            return self
                .reject(
                    rtmp_stream_id,
                    "this connection is already publishing",
                    None,
                )
                .await;
        }
        if app.trim_matches('/') != APP {
            let why =
                format!("unknown application {app:?}; publish to rtmp://HOST/{APP}/STREAM_KEY");
            return self.reject(rtmp_stream_id, &why, None).await;
        }
        let check = match self.ctx.repo.check_key(key).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "stream key check failed");
                return self
                    .reject(rtmp_stream_id, "stream key check failed", None)
                    .await;
            }
        };
        let (stream, key_id) = match check {
            KeyCheck::Valid { stream, key_id } => (stream, key_id),
            KeyCheck::Revoked { stream_id, key_id } => {
                let why = format!("stream key {key_id} is revoked");
                return self.reject(rtmp_stream_id, &why, Some(stream_id)).await;
            }
            KeyCheck::Unknown => {
                return self
                    .reject(rtmp_stream_id, "unknown stream key", None)
                    .await;
            }
        };
        self.span
            .record("stream_id", tracing::field::display(stream.id));
        let conn_id = self.conn_id;
        let (publisher, start) = self.ctx.hub.publish(stream.id, conn_id, Some(key_id));
        match start {
            PublishStart::New => info!(name = %stream.name, "publish accepted"),
            PublishStart::TookOver => {
                info!(name = %stream.name, "publish accepted: taking over the live stream");
                self.ctx.events.publish(Event::PublisherTakeover {
                    stream_id: stream.id,
                    at: Utc::now(),
                });
            }
        }
        self.live = Some(Live {
            publisher,
            rtmp_stream_id,
            got_media: false,
        });
        if let Some(s) = self.session.as_mut() {
            s.accept_publish(rtmp_stream_id);
        }
        Ok(())
    }

    async fn reject(
        &mut self,
        rtmp_stream_id: u32,
        why: &str,
        stream_id: Option<Uuid>,
    ) -> Result<(), End> {
        warn!(reason = why, "publish refused");
        self.ctx.events.publish(Event::PublishRejected {
            stream_id,
            at: Utc::now(),
            reason: why.to_string(),
        });
        if let Some(s) = self.session.as_mut() {
            s.reject_publish(rtmp_stream_id, "NetStream.Publish.BadName", why);
        }
        // Send the refusal, then close.
        while let Some(out) = self.session.as_mut().and_then(|s| s.poll_output()) {
            if let ServerOutput::Transmit(b) = out {
                self.write(b).await?;
            }
        }
        Err(End::Error(format!("publish refused: {why}")))
    }

    async fn activate(&self, stream_id: Uuid) {
        /// Longest wait for the change to reach the database before the
        /// broadcast (and its event) goes on regardless; it stays queued.
        const STATUS_ACK_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
        let now = Utc::now();
        // The status writer records the change, retrying through database
        // faults; the broadcast and its event never wait for the database
        // longer than STATUS_ACK_WAIT.
        let outcome = match &self.ctx.status {
            Some(writer) => match writer.request(stream_id, StreamStatus::Active, now) {
                // A takeover continues a broadcast that is already ACTIVE.
                Request::Unchanged => return,
                Request::Queued(receipt) => receipt.wait(STATUS_ACK_WAIT).await,
            },
            None => Some(
                match self
                    .ctx
                    .repo
                    .transition(stream_id, StreamStatus::Active, now)
                    .await
                {
                    Ok(s) => Outcome::Applied(s),
                    Err(e) => Outcome::Dropped(e),
                },
            ),
        };
        match outcome {
            Some(Outcome::Applied(_)) => info!("stream ACTIVE"),
            // ACTIVE already (a takeover, or another replica has it live).
            Some(Outcome::Dropped(CoreError::InvalidTransition {
                from: StreamStatus::Active,
                ..
            })) => return,
            Some(Outcome::Dropped(e)) => warn!(error = %e, "could not mark the stream ACTIVE"),
            Some(Outcome::Superseded | Outcome::Abandoned) | None => {
                info!(
                    "stream ACTIVE (not saved yet: the database is slow or unavailable; retrying)"
                )
            }
        }
        self.ctx.metrics.stream_started(stream_id);
        self.ctx
            .events
            .publish(Event::StreamStarted { stream_id, at: now });
    }

    /// Ends this connection's broadcast, if it still owns it.
    async fn end_broadcast(&mut self, reason: &str) {
        let Some(live) = self.live.take() else {
            return;
        };
        let stream_id = live.publisher.stream_id();
        let got_media = live.got_media;
        if !live.publisher.end() {
            debug!("publisher was taken over; the broadcast goes on");
            return;
        }
        let now = Utc::now();
        if got_media {
            /// As in `activate`.
            const STATUS_ACK_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
            let outcome = match &self.ctx.status {
                Some(writer) => match writer.request(stream_id, StreamStatus::Ended, now) {
                    Request::Unchanged => Some(Outcome::Superseded),
                    Request::Queued(receipt) => receipt.wait(STATUS_ACK_WAIT).await,
                },
                None => Some(
                    match self
                        .ctx
                        .repo
                        .transition(stream_id, StreamStatus::Ended, now)
                        .await
                    {
                        Ok(s) => Outcome::Applied(s),
                        Err(e) => Outcome::Dropped(e),
                    },
                ),
            };
            match outcome {
                Some(Outcome::Applied(_)) => info!(reason, "stream ENDED"),
                Some(Outcome::Dropped(e)) => warn!(error = %e, "could not mark the stream ENDED"),
                Some(Outcome::Superseded | Outcome::Abandoned) | None => info!(
                    reason,
                    "stream ENDED (not saved yet: the database is slow or unavailable; retrying)"
                ),
            }
        }
        self.ctx.metrics.remove_stream(stream_id);
        self.ctx.events.publish(Event::StreamEnded {
            stream_id,
            at: now,
            reason: reason.to_string(),
        });
    }
}
