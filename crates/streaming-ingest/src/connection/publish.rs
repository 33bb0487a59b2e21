//! A connection's broadcast: the publish request checked (application,
//! stream key, admission), the stream made live in the hub and the
//! repository, and ended (hub, status, events) when the encoder stops, the
//! connection drops or a newer publisher takes over.

use super::*;

impl Conn {
    pub(super) async fn on_publish<S: Io>(
        &mut self,
        io: &mut S,
        rtmp_stream_id: u32,
        app: &str,
        raw_key: &str,
    ) -> Result<(), End> {
        let key = raw_key.split('?').next().unwrap_or_default();
        if self.live.is_some() {
            let why = "this connection is already publishing";
            return self.reject(io, rtmp_stream_id, why, None).await;
        }
        if app.trim_matches('/') != APP {
            let why =
                format!("unknown application {app:?}; publish to rtmp://HOST/{APP}/STREAM_KEY");
            return self.reject(io, rtmp_stream_id, &why, None).await;
        }
        // The key check counts inside the publish deadline too.
        let deadline = self.accepted_at + self.ctx.publish_timeout();
        let checked = tokio::time::timeout_at(deadline, self.ctx.repo.check_key(key)).await;
        let Ok(checked) = checked else {
            let t = self.ctx.publish_timeout();
            let why = format!("no accepted publish within {t:?} of accept (key check pending)");
            return Err(self.trip(LimitKind::RtmpPublishTimeout, why));
        };
        let check = match checked {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "stream key check failed");
                let why = "stream key check failed";
                return self.reject(io, rtmp_stream_id, why, None).await;
            }
        };
        let (stream, key_id) = match check {
            KeyCheck::Valid { stream, key_id } => (stream, key_id),
            KeyCheck::Revoked { stream_id, key_id } => {
                self.key_refused();
                let why = format!("stream key {key_id} is revoked");
                return self.reject(io, rtmp_stream_id, &why, Some(stream_id)).await;
            }
            KeyCheck::Unknown => {
                self.key_refused();
                let why = "unknown stream key";
                return self.reject(io, rtmp_stream_id, why, None).await;
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
            media: MediaIn::new(),
        });
        if let Some(s) = self.session.as_mut() {
            s.accept_publish(rtmp_stream_id);
        }
        // Published: out of the pending pool, and the idle clock starts.
        self.admitted.published();
        self.last_media = TokioInstant::now();
        Ok(())
    }

    /// Counts a refused key against the peer's address (which may ban it).
    fn key_refused(&self) {
        self.ctx
            .admission
            .key_refused(self.peer.ip(), Instant::now());
    }

    async fn reject<S: Io>(
        &mut self,
        io: &mut S,
        rtmp_stream_id: u32,
        why: &str,
        stream_id: Option<Uuid>,
    ) -> Result<(), End> {
        if let Some(suppressed) = self.ctx.refusal_log.allow() {
            warn!(reason = why, suppressed, "publish refused");
        }
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
                self.write(io, b).await?;
            }
        }
        Err(End::Refused(why.to_string()))
    }

    pub(super) async fn activate(&self, stream_id: Uuid) {
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
    pub(super) async fn end_broadcast(&mut self, reason: &str) {
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
