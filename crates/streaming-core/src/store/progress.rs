//! A rendition's progress, and waiting for a part or segment without polling
//! (LL-HLS blocking playlist reload and preload hints, RFC 8216bis §6.2.5.2,
//! §6.2.6; LL-DASH chunked delivery of the segment in progress).

use std::time::Duration;

use tokio::sync::watch;

/// Part `part` (from 0) of segment `msn`. Ordered by segment, then part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartRef {
    pub msn: u64,
    pub part: u32,
}

/// How far a rendition has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The newest part produced.
    pub last_part: Option<PartRef>,
    /// The newest complete segment.
    pub last_segment: Option<u64>,
    /// The broadcast is over: nothing more will come.
    pub ended: bool,
}

impl Progress {
    /// The part exists, or the playlist has moved past it (its segment closed
    /// with fewer parts, or a later part exists).
    pub fn has_part(&self, want: PartRef) -> bool {
        self.last_part.is_some_and(|p| p >= want)
            || self.last_segment.is_some_and(|s| s >= want.msn)
    }

    /// Segment `msn` is complete (or a later one is).
    pub fn has_segment(&self, msn: u64) -> bool {
        self.last_segment.is_some_and(|s| s >= msn)
    }

    /// The segment being produced: the one after the last complete segment,
    /// or that of the newest part if it is later.
    pub fn open_msn(&self) -> Option<u64> {
        let after = self.last_segment.map(|s| s + 1);
        match (after, self.last_part.map(|p| p.msn)) {
            (Some(a), Some(p)) => Some(a.max(p)),
            (a, p) => a.or(p),
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// What was asked for is there.
    Ready(Progress),
    /// The broadcast ended (or the rendition went away) without it.
    Ended(Progress),
    /// Not there within the timeout.
    TimedOut(Progress),
}

/// Waits until `ready(progress)` holds, the broadcast ends or `timeout`
/// passes. Sleeps on the channel: no polling.
pub async fn wait_for(
    rx: &mut watch::Receiver<Progress>,
    timeout: Duration,
    ready: impl Fn(&Progress) -> bool,
) -> WaitOutcome {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = *rx.borrow_and_update();
        if ready(&now) {
            return WaitOutcome::Ready(now);
        }
        if now.ended {
            return WaitOutcome::Ended(now);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return WaitOutcome::Ended(*rx.borrow()),
            Err(_) => return WaitOutcome::TimedOut(*rx.borrow()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(msn: u64, part: u32) -> PartRef {
        PartRef { msn, part }
    }

    #[test]
    fn parts_are_there_once_produced_or_passed() {
        let p = Progress {
            last_part: Some(at(5, 2)),
            last_segment: Some(4),
            ended: false,
        };
        assert!(p.has_part(at(5, 2)) && p.has_part(at(5, 0)) && p.has_part(at(4, 9)));
        assert!(!p.has_part(at(5, 3)) && !p.has_part(at(6, 0)));
        assert!(p.has_segment(4) && !p.has_segment(5));
        assert_eq!(p.open_msn(), Some(5));
        // Segment 5 closed with three parts: a request for its part 3 is answered.
        let closed = Progress {
            last_segment: Some(5),
            ..p
        };
        assert!(closed.has_part(at(5, 3)));
        assert_eq!(closed.open_msn(), Some(6));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_wake_on_progress_end_or_timeout() {
        let (tx, mut rx) = watch::channel(Progress::default());
        let want = at(1, 0);
        let waiter = tokio::spawn(async move {
            wait_for(&mut rx, Duration::from_secs(6), |p| p.has_part(want)).await
        });
        tokio::task::yield_now().await;
        tx.send_modify(|p| p.last_part = Some(at(0, 3)));
        tokio::task::yield_now().await;
        tx.send_modify(|p| p.last_part = Some(at(1, 0)));
        match waiter.await.unwrap() {
            WaitOutcome::Ready(p) => assert_eq!(p.last_part, Some(want)),
            other => panic!("{other:?}"),
        }

        let mut rx = tx.subscribe();
        let out = wait_for(&mut rx, Duration::from_secs(6), |p| p.has_segment(9)).await;
        assert!(matches!(out, WaitOutcome::TimedOut(_)), "{out:?}");

        let mut rx = tx.subscribe();
        let waiter = tokio::spawn(async move {
            wait_for(&mut rx, Duration::from_secs(6), |p| p.has_segment(9)).await
        });
        tokio::task::yield_now().await;
        tx.send_modify(|p| p.ended = true);
        assert!(matches!(waiter.await.unwrap(), WaitOutcome::Ended(_)));
    }
}
