//! The status writer: one task per process that records stream status
//! changes (ACTIVE on first media, ENDED at the end) in the database, in the
//! order they happened, retrying while the database cannot take a write.
//!
//! Ingest must never lose a status change to a database fault, nor wait for
//! the database on its media path. So a change is [requested](StatusWriter::request)
//! and queued at once; the writer applies the queue head with
//! [`StreamRepository::transition_on_node`] (recording this node, see
//! [`crate::recovery`]) and:
//! - on success moves to the next change;
//! - when the database is unavailable ([`repo::is_unavailable_error`]: pool
//!   timeout, connection lost, disk full, locked…) waits and retries the
//!   same change, backing off ([`Backoff`]: 0.5 s doubling to 5 s), so that
//!   the changes of a stream land in order and with their own times (ACTIVE
//!   then ENDED while the database was down: ENDED, with the real end time,
//!   once it is back);
//! - drops a change the state machine refuses (or of a deleted stream) with
//!   a debug line, and one that keeps failing otherwise after
//!   [`MAX_OTHER_FAILURES`] attempts with a warning.
//!
//! The writer also remembers the status it was last asked for per stream, so
//! a takeover (a second publish of a live stream on this node) asks for
//! nothing ([`Request::Unchanged`]); and a publisher that reconnects again
//! and again during an outage leaves at most three queued changes per stream
//! (a queued ACTIVE → ENDED → ACTIVE collapses into the first ACTIVE: the
//! broadcast was, as far as the database will know, continuous).
//!
//! At shutdown ([`StatusWriterTask::shutdown`]) what is queued is tried
//! until the budget runs out; what is left is logged, and the next start's
//! crash recovery ends the streams it left ACTIVE.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::CoreError;
use crate::model::{Stream, StreamStatus};
use crate::repo::{self, DynRepository};

/// Attempts of a change failing with an error that is not "unavailable"
/// (a bug, most likely) before it is dropped.
pub const MAX_OTHER_FAILURES: u32 = 5;

/// One status change of one stream, at the time it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub stream_id: Uuid,
    pub to: StreamStatus,
    pub at: DateTime<Utc>,
}

/// What became of a change.
#[derive(Debug)]
pub enum Outcome {
    /// Recorded; the stream as it is now.
    Applied(Stream),
    /// Not recorded and never will be: the state machine refused it, the
    /// stream is gone, or it kept failing.
    Dropped(CoreError),
    /// Made moot by later changes of the same stream (see the module docs).
    Superseded,
    /// The writer stopped before the change could be recorded.
    Abandoned,
}

/// The answer to [`StatusWriter::request`].
#[derive(Debug)]
pub enum Request {
    /// This process already asked for that status (a takeover continues a
    /// live broadcast): nothing was queued.
    Unchanged,
    /// Queued; the receipt tells what became of it.
    Queued(Receipt),
}

/// Resolves once the change is recorded, dropped or given up.
#[derive(Debug)]
pub struct Receipt(oneshot::Receiver<Outcome>);

impl Receipt {
    /// Waits at most `within` for the outcome; `None` when the change is
    /// still queued (the database is slow or unavailable).
    pub async fn wait(self, within: Duration) -> Option<Outcome> {
        match tokio::time::timeout(within, self.0).await {
            Ok(Ok(outcome)) => Some(outcome),
            Ok(Err(_)) => Some(Outcome::Abandoned),
            Err(_) => None,
        }
    }
}

/// Where changes are recorded (the repository; a fake in tests).
#[async_trait]
pub trait StatusSink: Send + Sync + 'static {
    async fn apply(&self, change: &StatusChange, node: Option<&str>) -> Result<Stream, CoreError>;
}

struct RepoSink(DynRepository);

#[async_trait]
impl StatusSink for RepoSink {
    async fn apply(&self, c: &StatusChange, node: Option<&str>) -> Result<Stream, CoreError> {
        self.0
            .transition_on_node(c.stream_id, c.to, c.at, node)
            .await
    }
}

/// Wait before retry `n` (1-based): `initial`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// A queued change.
struct Pending {
    change: StatusChange,
    seq: u64,
    ack: Option<oneshot::Sender<Outcome>>,
    failures: u32,
}

impl Pending {
    fn finish(mut self, outcome: Outcome) -> StatusChange {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(outcome);
        }
        self.change
    }
}

enum Msg {
    Change(Pending),
    /// Stop once the queue is empty or at this instant.
    Close(Instant),
}

/// The status each stream was last asked to be in, with the request's
/// sequence number (entries go when an ENDED/ERROR is settled).
type Wanted = Arc<Mutex<HashMap<Uuid, (StreamStatus, u64)>>>;

fn lock(w: &Wanted) -> MutexGuard<'_, HashMap<Uuid, (StreamStatus, u64)>> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queues status changes for the process's writer task (cheap to clone).
#[derive(Clone)]
pub struct StatusWriter {
    tx: mpsc::UnboundedSender<Msg>,
    wanted: Wanted,
    seq: Arc<AtomicU64>,
}

/// The writer task; stop it with [`StatusWriterTask::shutdown`].
pub struct StatusWriterTask {
    tx: mpsc::UnboundedSender<Msg>,
    join: JoinHandle<Vec<StatusChange>>,
}

impl StatusWriter {
    /// Starts the writer on `repo`, recording `node` as the node that makes
    /// streams ACTIVE. Needs a tokio runtime.
    pub fn spawn(repo: DynRepository, node: Option<String>) -> (Self, StatusWriterTask) {
        Self::spawn_with(Arc::new(RepoSink(repo)), node, Backoff::default())
    }

    /// [`StatusWriter::spawn`] on any sink, with its own back-off.
    pub fn spawn_with(
        sink: Arc<dyn StatusSink>,
        node: Option<String>,
        backoff: Backoff,
    ) -> (Self, StatusWriterTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let wanted: Wanted = Arc::default();
        let join = tokio::spawn(run(sink, node, backoff, rx, wanted.clone()));
        (
            Self {
                tx: tx.clone(),
                wanted,
                seq: Arc::new(AtomicU64::new(1)),
            },
            StatusWriterTask { tx, join },
        )
    }

    /// Asks for `stream_id` to be recorded as `to` (as of `at`). Never waits.
    pub fn request(&self, stream_id: Uuid, to: StreamStatus, at: DateTime<Utc>) -> Request {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut wanted = lock(&self.wanted);
            if wanted.get(&stream_id).is_some_and(|(s, _)| *s == to) {
                return Request::Unchanged;
            }
            wanted.insert(stream_id, (to, seq));
        }
        let (ack, receipt) = oneshot::channel();
        let pending = Pending {
            change: StatusChange { stream_id, to, at },
            seq,
            ack: Some(ack),
            failures: 0,
        };
        if self.tx.send(Msg::Change(pending)).is_err() {
            // The writer has stopped (shutdown): the receipt reads Abandoned.
            debug!(%stream_id, status = %to, "status writer stopped; change not queued");
        }
        Request::Queued(Receipt(receipt))
    }
}

impl StatusWriterTask {
    /// Stops the writer: queued changes are still tried until `budget` runs
    /// out. Returns the changes left unrecorded (logged as well).
    pub async fn shutdown(self, budget: Duration) -> Vec<StatusChange> {
        let _ = self.tx.send(Msg::Close(Instant::now() + budget));
        // The task stops by itself at the deadline; the margin covers a
        // sink that ignores cancellation for a moment.
        let mut join = self.join;
        match tokio::time::timeout(budget + Duration::from_millis(500), &mut join).await {
            Ok(Ok(left)) => left,
            _ => {
                join.abort();
                Vec::new()
            }
        }
    }
}

/// The writer's state (owned by its task).
struct Writer {
    rx: mpsc::UnboundedReceiver<Msg>,
    sink: Arc<dyn StatusSink>,
    node: Option<String>,
    backoff: Backoff,
    wanted: Wanted,
    queue: VecDeque<Pending>,
    retry_at: Option<Instant>,
    deadline: Option<Instant>,
    /// When the current run of "unavailable" failures began.
    outage: Option<Instant>,
}

async fn run(
    sink: Arc<dyn StatusSink>,
    node: Option<String>,
    backoff: Backoff,
    rx: mpsc::UnboundedReceiver<Msg>,
    wanted: Wanted,
) -> Vec<StatusChange> {
    let mut w = Writer {
        rx,
        sink,
        node,
        backoff,
        wanted,
        queue: VecDeque::new(),
        retry_at: None,
        deadline: None,
        outage: None,
    };
    loop {
        loop {
            match w.rx.try_recv() {
                Ok(m) => w.receive(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    w.deadline.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        let now = Instant::now();
        if w.deadline.is_some_and(|d| w.queue.is_empty() || now >= d) {
            break;
        }
        let wake = match (w.queue.is_empty(), w.retry_at.filter(|t| *t > now)) {
            (true, _) => None,
            (false, Some(t)) => Some(w.deadline.map_or(t, |d| d.min(t))),
            (false, None) => {
                w.attempt().await;
                continue;
            }
        };
        let sleep = async move {
            match wake {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = w.rx.recv() => w.received(m),
            () = sleep => {}
        }
    }
    w.stop()
}

impl Writer {
    fn received(&mut self, m: Option<Msg>) {
        match m {
            Some(m) => self.receive(m),
            None => {
                self.deadline.get_or_insert_with(Instant::now);
            }
        }
    }

    fn receive(&mut self, m: Msg) {
        match m {
            Msg::Close(at) => {
                self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
            }
            Msg::Change(p) => self.push(p),
        }
    }

    /// Queues a change, collapsing a queued ACTIVE → ENDED followed by a
    /// new ACTIVE of the same stream into the first ACTIVE.
    fn push(&mut self, p: Pending) {
        let id = p.change.stream_id;
        if p.change.to == StreamStatus::Active {
            let mine: Vec<usize> = (0..self.queue.len())
                .filter(|i| self.queue[*i].change.stream_id == id)
                .collect();
            if let [.., active, ended] = mine[..]
                && ended > 0
                && self.queue[active].change.to == StreamStatus::Active
                && self.queue[ended].change.to == StreamStatus::Ended
                && let Some(removed) = self.queue.remove(ended)
            {
                debug!(stream_id = %id, "queued ENDED and ACTIVE collapse: the broadcast goes on");
                removed.finish(Outcome::Superseded);
                p.finish(Outcome::Superseded);
                return;
            }
        }
        self.queue.push_back(p);
    }

    /// Tries the head of the queue once.
    async fn attempt(&mut self) {
        let Some(head) = self.queue.front() else {
            return;
        };
        let change = head.change;
        let sink = self.sink.clone();
        let node = self.node.clone();
        let mut apply = std::pin::pin!(async move { sink.apply(&change, node.as_deref()).await });
        // Changes and the shutdown deadline keep arriving meanwhile (the
        // head stays first: pushing never removes it).
        let result = loop {
            let until = self.deadline;
            let deadline = async move {
                match until {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut apply => break r,
                () = deadline => return,
                m = self.rx.recv() => self.received(m),
            }
        };
        let id = change.stream_id;
        match result {
            Ok(stream) => {
                if let Some(since) = self.outage.take() {
                    info!(pending = self.queue.len(), down_for = ?since.elapsed(),
                        "the database takes writes again: saving the queued status changes");
                }
                debug!(stream_id = %id, status = %change.to, "status saved");
                self.settle(Outcome::Applied(stream));
            }
            Err(
                e @ (CoreError::InvalidTransition { .. }
                | CoreError::StreamNotFound(_)
                | CoreError::Invalid(_)),
            ) => {
                debug!(stream_id = %id, status = %change.to, error = %e, "status change dropped");
                self.settle(Outcome::Dropped(e));
            }
            Err(e) if repo::is_unavailable_error(&e) => {
                let failures = self.bump();
                if self.outage.is_none() {
                    self.outage = Some(Instant::now());
                    warn!(stream_id = %id, status = %change.to, error = %e,
                        pending = self.queue.len(),
                        "the database cannot take a status change; queued, retrying until it can");
                } else {
                    debug!(stream_id = %id, failures, error = %e, "status change still queued");
                }
            }
            Err(e) => {
                let failures = self.bump();
                if failures >= MAX_OTHER_FAILURES {
                    warn!(stream_id = %id, status = %change.to, error = %e, failures,
                        "status change dropped after repeated failures");
                    self.settle(Outcome::Dropped(e));
                } else {
                    warn!(stream_id = %id, status = %change.to, error = %e, failures,
                        "saving a status change failed; retrying");
                }
            }
        }
    }

    /// Counts a failure of the head and schedules its retry.
    fn bump(&mut self) -> u32 {
        let Some(head) = self.queue.front_mut() else {
            return 0;
        };
        head.failures += 1;
        self.retry_at = Some(Instant::now() + self.backoff.delay(head.failures));
        head.failures
    }

    /// Removes the head with its final outcome.
    fn settle(&mut self, outcome: Outcome) {
        self.retry_at = None;
        let Some(head) = self.queue.pop_front() else {
            return;
        };
        let (id, to, seq) = (head.change.stream_id, head.change.to, head.seq);
        if to != StreamStatus::Active {
            let mut wanted = lock(&self.wanted);
            if wanted.get(&id) == Some(&(to, seq)) {
                wanted.remove(&id);
            }
        }
        head.finish(outcome);
    }

    /// Gives up what is left; returns it.
    fn stop(&mut self) -> Vec<StatusChange> {
        let left: Vec<StatusChange> = self
            .queue
            .drain(..)
            .map(|p| p.finish(Outcome::Abandoned))
            .collect();
        if !left.is_empty() {
            let ids: Vec<String> = left
                .iter()
                .map(|c| format!("{}→{}", c.stream_id, c.to))
                .collect();
            warn!(count = left.len(), changes = %ids.join(", "),
                "status changes not saved before exit; the next start ends streams left ACTIVE");
        }
        left
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
