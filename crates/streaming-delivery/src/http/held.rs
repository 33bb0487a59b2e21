//! Held requests: what LL-HLS and LL-DASH keep open while waiting for media —
//! blocking playlist reloads (`_HLS_msn`/`_HLS_part`), requests for the
//! hinted part, and the segment in progress streamed part by part.
//!
//! Each is bounded like every per-client structure (docs/ARCHITECTURE.md,
//! "Limits and abuse resistance"):
//!
//! - **timeout**: held at most `media.hold_target_durations` × the target
//!   duration (then 503), and within the HTTP request deadline;
//! - **cap**: `http.max_held_requests` on the node (20,000: 10,000 LL viewers
//!   each holding a playlist reload and a part);
//! - **per address**: `http.max_held_requests_per_addr` (64), charged to the
//!   request's [`ClientAddr`](streaming_core::limits::ClientAddr) (the peer,
//!   or behind a trusted proxy the `X-Forwarded-For` client), as the other
//!   per-address limits are.
//!
//! A request only takes a slot when it is about to wait: one that can be
//! answered at once never does. Beyond a cap the request is answered at once
//! with `503`, `Retry-After: 1` and `Cache-Control: no-store` (a blocking
//! reload must not be answered with a playlist that lacks what it asked for,
//! RFC 8216bis §6.2.5.2), the trip is counted in
//! `streaming_limit_hits_total{kind="held_requests" | "held_requests_per_addr"}`
//! and logged at most once a second per kind.
//!
//! `streaming_held_requests` is the number of slots taken now. The slot is a
//! guard ([`Held`]): taken on entry, given back when dropped — when the
//! handler returns, when hyper drops the handler's future because the client
//! went away, or, for the segment in progress, when its body stream is
//! dropped (the guard lives inside the stream).

use std::net::IpAddr;

use streaming_core::limits::{AddrSlots, LimitKind, Limits, Slot, SlotRefused};
use streaming_core::metrics::Gauge;

/// The caps on held requests and their gauge (cheap to clone).
#[derive(Clone, Debug)]
pub struct HeldRequests {
    slots: AddrSlots,
    gauge: Gauge,
    limits: Limits,
}

/// One held request's slot: frees it (and lowers the gauge) when dropped.
#[derive(Debug)]
pub struct Held {
    _slot: Slot,
    gauge: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl HeldRequests {
    /// `max_total` held requests on the node, `max_per_addr` per address
    /// (caps of 0 are read as 1); the gauge is `limits`' metrics'
    /// `streaming_held_requests`.
    pub fn new(max_total: usize, max_per_addr: usize, limits: Limits) -> Self {
        Self {
            slots: AddrSlots::new(max_total, max_per_addr),
            gauge: limits.metrics().held_requests(),
            limits,
        }
    }

    /// The defaults of `[http]` (20,000 in all, 64 per address).
    pub fn with_defaults(limits: Limits) -> Self {
        let http = streaming_core::config::HttpConfig::default();
        Self::new(
            http.max_held_requests,
            http.max_held_requests_per_addr,
            limits,
        )
    }

    /// A slot for a request from `ip` that is about to wait, or `None`
    /// (counted and logged) when a cap is reached. `what` names the request
    /// in the log line.
    pub fn admit(&self, ip: IpAddr, what: &str) -> Option<Held> {
        match self.slots.try_acquire(ip) {
            Ok(slot) => {
                self.gauge.inc();
                Some(Held {
                    _slot: slot,
                    gauge: self.gauge.clone(),
                })
            }
            Err(why) => {
                let (kind, setting) = match why {
                    SlotRefused::Total => (LimitKind::HttpHeldRequests, "http.max_held_requests"),
                    SlotRefused::PerAddr => (
                        LimitKind::HttpHeldRequestsPerAddr,
                        "http.max_held_requests_per_addr",
                    ),
                };
                self.limits.trip(kind, Some(ip), || {
                    format!("{what} not held: {setting} reached; answered 503")
                });
                None
            }
        }
    }

    /// Held requests now, in all.
    pub fn held(&self) -> usize {
        self.slots.total()
    }

    /// Held requests of `ip`'s address group now.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.slots.held_by(ip)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use streaming_core::metrics::Metrics;

    use super::*;

    fn ip(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, d))
    }

    fn gauge_line(m: &Metrics) -> String {
        m.encode()
            .lines()
            .find(|l| l.starts_with("streaming_held_requests "))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn caps_count_trips_and_free_on_drop() {
        let metrics = Metrics::new();
        let held = HeldRequests::new(3, 2, Limits::new(metrics.clone()));
        let a1 = held.admit(ip(1), "test").expect("first");
        let a2 = held.admit(ip(1), "test").expect("second");
        assert!(held.admit(ip(1), "test").is_none(), "per address");
        let b1 = held.admit(ip(2), "test").expect("other address");
        assert!(held.admit(ip(3), "test").is_none(), "in all");
        assert_eq!(metrics.held_requests().get(), 3);
        assert_eq!(gauge_line(&metrics), "streaming_held_requests 3");
        assert_eq!(metrics.limit_hits("held_requests_per_addr"), 1);
        assert_eq!(metrics.limit_hits("held_requests"), 1);
        drop(a1);
        assert_eq!((held.held(), held.held_by(ip(1))), (2, 1));
        assert_eq!(metrics.held_requests().get(), 2);
        let c = held.admit(ip(3), "test").expect("a slot was freed");
        drop((a2, b1, c));
        assert_eq!(held.held(), 0);
        assert_eq!(gauge_line(&metrics), "streaming_held_requests 0");
    }

    /// A held request whose future is dropped (the client went away while it
    /// waited) gives its slot back; so does a body stream that owns a guard.
    #[tokio::test]
    async fn a_cancelled_wait_frees_its_slot() {
        let metrics = Metrics::new();
        let held = HeldRequests::new(10, 10, Limits::new(metrics.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let h = held.clone();
        let waiter = tokio::spawn(async move {
            let _slot = h.admit(ip(1), "test").expect("slot");
            tx.send(()).unwrap();
            // Waits for media that never comes.
            std::future::pending::<()>().await;
        });
        rx.await.unwrap();
        assert_eq!((held.held(), metrics.held_requests().get()), (1, 1));
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!((held.held(), metrics.held_requests().get()), (0, 0));

        // A guard moved into a stream lives as long as the stream.
        let slot = held.admit(ip(2), "test").expect("slot");
        let stream = futures::stream::unfold(slot, |slot| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some((1u8, slot))
        });
        let mut stream = Box::pin(stream);
        use futures::StreamExt;
        assert_eq!(stream.next().await, Some(1));
        assert_eq!(metrics.held_requests().get(), 1);
        drop(stream);
        assert_eq!((held.held(), metrics.held_requests().get()), (0, 0));
    }
}
