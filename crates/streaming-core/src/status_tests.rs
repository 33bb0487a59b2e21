//! The status writer against a fake database that can be "down", on tokio's
//! paused clock (back-off delays are checked in virtual time, never waited).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use super::*;

/// One attempt: when, what, with which node, whether it was applied.
type Attempt = (Instant, StatusChange, Option<String>, bool);

/// A database of stream statuses that follows the state machine and can be
/// made unavailable (every call then fails like a pool timeout).
#[derive(Default)]
struct FakeDb {
    down: AtomicBool,
    /// Fail with an error that is not "unavailable".
    broken: AtomicBool,
    states: Mutex<HashMap<Uuid, Stream>>,
    log: Mutex<Vec<Attempt>>,
}

impl FakeDb {
    fn add(&self, id: Uuid, status: StreamStatus) {
        self.states.lock().unwrap().insert(
            id,
            Stream {
                id,
                name: "s".into(),
                status,
                created_at: Utc::now(),
                started_at: None,
                ended_at: None,
            },
        );
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn get(&self, id: Uuid) -> Stream {
        self.states.lock().unwrap()[&id].clone()
    }

    fn applied(&self) -> Vec<(Uuid, StreamStatus)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.3)
            .map(|e| (e.1.stream_id, e.1.to))
            .collect()
    }

    fn attempts(&self) -> Vec<Instant> {
        self.log.lock().unwrap().iter().map(|e| e.0).collect()
    }
}

#[async_trait]
impl StatusSink for FakeDb {
    async fn apply(&self, c: &StatusChange, node: Option<&str>) -> Result<Stream, CoreError> {
        let node = node.map(str::to_string);
        let log = |ok| {
            self.log
                .lock()
                .unwrap()
                .push((Instant::now(), *c, node.clone(), ok))
        };
        if self.down.load(Ordering::SeqCst) {
            log(false);
            return Err(CoreError::Database {
                context: "fake",
                source: sqlx::Error::PoolTimedOut,
            });
        }
        if self.broken.load(Ordering::SeqCst) {
            log(false);
            return Err(CoreError::Database {
                context: "fake",
                source: sqlx::Error::RowNotFound,
            });
        }
        let mut states = self.states.lock().unwrap();
        let Some(s) = states.get_mut(&c.stream_id) else {
            log(false);
            return Err(CoreError::StreamNotFound(c.stream_id));
        };
        if !s.status.can_transition_to(c.to) {
            log(false);
            return Err(CoreError::InvalidTransition {
                stream_id: c.stream_id,
                from: s.status,
                to: c.to,
            });
        }
        s.status = c.to;
        match c.to {
            StreamStatus::Active => {
                s.started_at = Some(c.at);
                s.ended_at = None;
            }
            _ => s.ended_at = Some(c.at),
        }
        log(true);
        Ok(s.clone())
    }
}

fn start(db: &Arc<FakeDb>) -> (StatusWriter, StatusWriterTask) {
    StatusWriter::spawn_with(db.clone(), Some("node-a".into()), Backoff::default())
}

fn queued(r: Request) -> Receipt {
    match r {
        Request::Queued(r) => r,
        Request::Unchanged => panic!("expected the change to be queued"),
    }
}

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

/// Lets the writer run until every queued change is settled (virtual time).
async fn settle(w: &StatusWriter) {
    let (ack, rx) = oneshot::channel();
    // A change of an unknown stream goes through the queue like any other
    // and is dropped; once it is settled everything before it is too.
    let _ = w.tx.send(Msg::Change(Pending {
        change: StatusChange {
            stream_id: Uuid::nil(),
            to: StreamStatus::Ended,
            at: t(0),
        },
        seq: 0,
        ack: Some(ack),
        failures: 0,
    }));
    let _ = tokio::time::timeout(Duration::from_secs(120), rx).await;
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let b = Backoff::default();
    let ms: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
    assert_eq!(ms, [500, 1000, 2000, 4000, 5000, 5000]);
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn changes_apply_in_order_with_their_own_times_and_node() {
    let db = Arc::new(FakeDb::default());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    db.add(a, StreamStatus::Pending);
    db.add(b, StreamStatus::Pending);
    let (w, task) = start(&db);
    let ra = queued(w.request(a, StreamStatus::Active, t(1)));
    queued(w.request(b, StreamStatus::Active, t(2)));
    queued(w.request(a, StreamStatus::Ended, t(3)));
    match ra.wait(Duration::from_secs(1)).await {
        Some(Outcome::Applied(s)) => assert_eq!(s.status, StreamStatus::Active),
        other => panic!("{other:?}"),
    }
    settle(&w).await;
    assert_eq!(
        db.applied(),
        [
            (a, StreamStatus::Active),
            (b, StreamStatus::Active),
            (a, StreamStatus::Ended)
        ]
    );
    let sa = db.get(a);
    assert_eq!(
        (sa.status, sa.started_at, sa.ended_at),
        (StreamStatus::Ended, Some(t(1)), Some(t(3)))
    );
    assert!(
        db.log
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.2.as_deref() == Some("node-a"))
    );
    assert!(task.shutdown(Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn while_the_database_is_down_changes_wait_and_the_real_state_wins() {
    let db = Arc::new(FakeDb::default());
    let id = Uuid::new_v4();
    db.add(id, StreamStatus::Pending);
    db.set_down(true);
    let (w, task) = start(&db);
    let started = Instant::now();
    let active = queued(w.request(id, StreamStatus::Active, t(10)));
    // Ingest does not wait for a database that is down.
    assert!(active.wait(Duration::from_millis(250)).await.is_none());
    let ended = queued(w.request(id, StreamStatus::Ended, t(20)));
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(db.get(id).status, StreamStatus::Pending);
    // Retries of the head only, backing off 0.5 s, 1 s, 2 s, 4 s, 5 s…
    let gaps: Vec<u128> = db
        .attempts()
        .windows(2)
        .map(|p| (p[1] - p[0]).as_millis())
        .collect();
    assert_eq!(gaps[..4], [500, 1000, 2000, 4000], "{gaps:?}");
    assert!(gaps[4..].iter().all(|g| *g == 5000), "{gaps:?}");
    assert!(
        db.log
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.1.to == StreamStatus::Active)
    );
    db.set_down(false);
    match ended.wait(Duration::from_secs(10)).await {
        Some(Outcome::Applied(s)) => {
            assert_eq!(s.status, StreamStatus::Ended);
            assert_eq!((s.started_at, s.ended_at), (Some(t(10)), Some(t(20))));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() <= Duration::from_secs(12 + 5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        db.applied(),
        [(id, StreamStatus::Active), (id, StreamStatus::Ended)]
    );
    assert!(task.shutdown(Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn invalid_transitions_are_dropped_and_the_queue_goes_on() {
    let db = Arc::new(FakeDb::default());
    let (a, b, gone) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    db.add(a, StreamStatus::Pending);
    db.add(b, StreamStatus::Pending);
    let (w, task) = start(&db);
    // PENDING → ENDED is not a move of the state machine.
    let bad = queued(w.request(a, StreamStatus::Ended, t(1)));
    let missing = queued(w.request(gone, StreamStatus::Active, t(2)));
    let good = queued(w.request(b, StreamStatus::Active, t(3)));
    assert!(matches!(
        bad.wait(Duration::from_secs(1)).await,
        Some(Outcome::Dropped(CoreError::InvalidTransition { .. }))
    ));
    assert!(matches!(
        missing.wait(Duration::from_secs(1)).await,
        Some(Outcome::Dropped(CoreError::StreamNotFound(_)))
    ));
    assert!(matches!(
        good.wait(Duration::from_secs(1)).await,
        Some(Outcome::Applied(_))
    ));
    // Dropped at once: no retry of a refused change.
    assert_eq!(db.attempts().len(), 3);
    // The ENDED that was refused is forgotten: a later ENDED is queued again.
    let again = queued(w.request(a, StreamStatus::Ended, t(4)));
    assert!(matches!(
        again.wait(Duration::from_secs(1)).await,
        Some(Outcome::Dropped(CoreError::InvalidTransition { .. }))
    ));
    assert!(task.shutdown(Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_takeover_asks_for_nothing() {
    let db = Arc::new(FakeDb::default());
    let id = Uuid::new_v4();
    db.add(id, StreamStatus::Pending);
    let (w, task) = start(&db);
    queued(w.request(id, StreamStatus::Active, t(1)));
    assert!(matches!(
        w.request(id, StreamStatus::Active, t(2)),
        Request::Unchanged
    ));
    settle(&w).await;
    assert_eq!(db.get(id).started_at, Some(t(1)));
    // After the end, a new broadcast is a new ACTIVE.
    queued(w.request(id, StreamStatus::Ended, t(3)));
    settle(&w).await;
    assert!(lock(&w.wanted).is_empty(), "settled ends are forgotten");
    queued(w.request(id, StreamStatus::Active, t(4)));
    settle(&w).await;
    assert_eq!(db.get(id).status, StreamStatus::Active);
    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn reconnects_during_an_outage_keep_the_queue_short() {
    let db = Arc::new(FakeDb::default());
    let id = Uuid::new_v4();
    db.add(id, StreamStatus::Pending);
    db.set_down(true);
    let (w, task) = start(&db);
    let mut receipts = Vec::new();
    for i in 0..20 {
        receipts.push(queued(w.request(id, StreamStatus::Active, t(2 * i))));
        receipts.push(queued(w.request(id, StreamStatus::Ended, t(2 * i + 1))));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.set_down(false);
    settle(&w).await;
    // The first ACTIVE and the last ENDED are what the database learns.
    assert_eq!(
        db.applied(),
        [(id, StreamStatus::Active), (id, StreamStatus::Ended)]
    );
    let s = db.get(id);
    assert_eq!((s.started_at, s.ended_at), (Some(t(0)), Some(t(39))));
    let mut superseded = 0;
    for r in receipts {
        if let Some(Outcome::Superseded) = r.wait(Duration::from_millis(1)).await {
            superseded += 1;
        }
    }
    assert_eq!(superseded, 38);
    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_within_its_budget_and_reports_the_rest() {
    let db = Arc::new(FakeDb::default());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    db.add(a, StreamStatus::Active);
    db.add(b, StreamStatus::Active);
    // Flushed: the database answers.
    let (w, task) = start(&db);
    queued(w.request(a, StreamStatus::Ended, t(1)));
    assert!(task.shutdown(Duration::from_secs(2)).await.is_empty());
    assert_eq!(db.get(a).status, StreamStatus::Ended);
    let after = queued(w.request(b, StreamStatus::Ended, t(2)));
    assert!(matches!(
        after.wait(Duration::from_secs(1)).await,
        Some(Outcome::Abandoned)
    ));
    // Left over: the database is down for longer than the budget.
    db.set_down(true);
    let (w, task) = start(&db);
    let r = queued(w.request(b, StreamStatus::Ended, t(3)));
    let begun = Instant::now();
    let left = task.shutdown(Duration::from_secs(2)).await;
    assert!(
        begun.elapsed() <= Duration::from_millis(2600),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(
        left,
        [StatusChange {
            stream_id: b,
            to: StreamStatus::Ended,
            at: t(3)
        }]
    );
    assert!(matches!(
        r.wait(Duration::from_millis(1)).await,
        Some(Outcome::Abandoned)
    ));
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_retried_a_few_times_then_dropped() {
    let db = Arc::new(FakeDb::default());
    let id = Uuid::new_v4();
    db.add(id, StreamStatus::Pending);
    db.broken.store(true, Ordering::SeqCst);
    let (w, task) = start(&db);
    let r = queued(w.request(id, StreamStatus::Active, t(1)));
    assert!(matches!(
        r.wait(Duration::from_secs(60)).await,
        Some(Outcome::Dropped(CoreError::Database { .. }))
    ));
    assert_eq!(db.attempts().len(), MAX_OTHER_FAILURES as usize);
    task.shutdown(Duration::from_secs(1)).await;
}
