//! Who may hold an RTMP connection, and for how long it may wait to publish
//! (issue 9, "RTMP"; docs/ARCHITECTURE.md, "Limits and abuse resistance").
//!
//! At accept, in this order: an address banned for refused keys is refused
//! (`rtmp_banned`); beyond `max_connections` open connections a new one is
//! refused (`rtmp_connections`); then the connection must find room in the
//! *pending pool* of connections that have not published yet: at most
//! `max_pending_per_addr` per address (`rtmp_pending_per_addr`) and
//! `max_pending_connections` in all. When the pool is full, a connection from
//! an address that holds fewer pending connections than the biggest holder
//! evicts that holder's oldest pending connection (so a flood from many
//! addresses cannot lock a fresh encoder out); otherwise it is refused
//! (`rtmp_pending`, for evictions too).
//!
//! Refused keys are counted per address (GCRA: a burst of
//! `bad_keys_per_min`, refilled at that rate per minute); the refusal that
//! spends the burst bans the address for `bad_key_ban_secs` (`rtmp_bad_keys`).
//!
//! Addresses are grouped by [`addr_key`] (IPv6 per /64). Every refusal is
//! counted through [`Limits::trip`], which also rate-limits its log line.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use streaming_core::config::IngestConfig;
use streaming_core::hub::CancellationToken;
use streaming_core::limits::{Bans, KeyedRate, LimitKind, Limits, addr_key};
use streaming_core::metrics::Metrics;

/// The `surface` labels of `streaming_open_connections`.
const SURFACE_OPEN: &str = "rtmp";
const SURFACE_PENDING: &str = "rtmp_pending";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The admission state the listener and every connection task share.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    metrics: Metrics,
    max_connections: usize,
    open: Arc<AtomicUsize>,
    pending: Arc<Mutex<Pending>>,
    max_pending: usize,
    max_pending_per_addr: usize,
    bad_keys: KeyedRate<IpAddr>,
    bans: Bans<IpAddr>,
    ban_for: Duration,
}

#[derive(Debug, Default)]
struct Pending {
    next_id: u64,
    total: usize,
    /// Per address group, its pending connections, oldest first.
    by_addr: HashMap<IpAddr, VecDeque<(u64, CancellationToken)>>,
}

/// An admitted connection: counted as open until dropped, and pending (with
/// the token an eviction cancels) until [`Admitted::published`].
#[derive(Debug)]
pub(crate) struct Admitted {
    _open: OpenSlot,
    pending: Option<PendingSlot>,
    /// Cancelled when the connection is evicted from the pending pool.
    pub(crate) evicted: CancellationToken,
}

impl Admitted {
    /// The connection published: it leaves the pending pool.
    pub(crate) fn published(&mut self) {
        self.pending = None;
    }
}

#[derive(Debug)]
struct OpenSlot {
    open: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.open_connections(SURFACE_OPEN).dec();
    }
}

#[derive(Debug)]
struct PendingSlot {
    id: u64,
    key: IpAddr,
    pool: Arc<Mutex<Pending>>,
    metrics: Metrics,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut pool = lock(&self.pool);
        if remove(&mut pool, self.key, self.id) {
            self.metrics.open_connections(SURFACE_PENDING).dec();
        }
    }
}

/// Removes pending connection `id` of `key`; false if it was evicted already.
fn remove(pool: &mut Pending, key: IpAddr, id: u64) -> bool {
    let Some(list) = pool.by_addr.get_mut(&key) else {
        return false;
    };
    let Some(at) = list.iter().position(|(i, _)| *i == id) else {
        return false;
    };
    list.remove(at);
    if list.is_empty() {
        pool.by_addr.remove(&key);
    }
    pool.total -= 1;
    true
}

impl Admission {
    pub(crate) fn new(config: &IngestConfig, limits: Limits, metrics: Metrics) -> Self {
        Self {
            limits,
            metrics,
            max_connections: config.max_connections.max(1),
            open: Arc::default(),
            pending: Arc::default(),
            max_pending: config.max_pending_connections.max(1),
            max_pending_per_addr: config.max_pending_per_addr.max(1),
            bad_keys: KeyedRate::per_minute(config.bad_keys_per_min.max(1)),
            bans: Bans::new(),
            ban_for: Duration::from_secs(config.bad_key_ban_secs),
        }
    }

    /// Admits a connection from `ip` accepted at `now`, or refuses it (the
    /// refusal is counted and logged here; the caller just drops the socket).
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Option<Admitted> {
        let key = addr_key(ip);
        if let Some(left) = self.bans.banned(&key, now) {
            self.limits.trip(LimitKind::RtmpBanned, Some(ip), || {
                format!(
                    "RTMP connection refused: address banned for refused stream keys ({}s left)",
                    left.as_secs()
                )
            });
            return None;
        }
        let open = self.open.fetch_add(1, Ordering::AcqRel);
        // The slot exists from here on, so an early return gives it back.
        let open_slot = OpenSlot {
            open: self.open.clone(),
            metrics: self.metrics.clone(),
        };
        self.metrics.open_connections(SURFACE_OPEN).inc();
        if open >= self.max_connections {
            self.limits.trip(LimitKind::RtmpConnections, Some(ip), || {
                format!(
                    "RTMP connection refused: {} connections open (max_connections)",
                    self.max_connections
                )
            });
            return None;
        }
        let evicted = CancellationToken::new();
        let pending = self.take_pending(ip, key, &evicted)?;
        Some(Admitted {
            _open: open_slot,
            pending: Some(pending),
            evicted,
        })
    }

    fn take_pending(
        &self,
        ip: IpAddr,
        key: IpAddr,
        token: &CancellationToken,
    ) -> Option<PendingSlot> {
        let mut pool = lock(&self.pending);
        let held = pool.by_addr.get(&key).map_or(0, VecDeque::len);
        if held >= self.max_pending_per_addr {
            drop(pool);
            self.limits.trip(LimitKind::RtmpPendingPerAddr, Some(ip), || {
                format!(
                    "RTMP connection refused: {held} connections of this address have not published yet (max_pending_per_addr)"
                )
            });
            return None;
        }
        if pool.total >= self.max_pending {
            // The biggest holder; of several, the one with the oldest connection.
            let victim = pool
                .by_addr
                .iter()
                .filter_map(|(k, list)| list.front().map(|(id, _)| (*k, list.len(), *id)))
                .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
            match victim {
                Some((victim, biggest, _)) if held < biggest => {
                    let oldest = pool.by_addr.get_mut(&victim).and_then(VecDeque::pop_front);
                    if pool.by_addr.get(&victim).is_some_and(VecDeque::is_empty) {
                        pool.by_addr.remove(&victim);
                    }
                    if let Some((_, t)) = oldest {
                        pool.total -= 1;
                        self.metrics.open_connections(SURFACE_PENDING).dec();
                        t.cancel();
                    }
                    let total = pool.total;
                    drop(pool);
                    self.limits.trip(LimitKind::RtmpPending, Some(victim), || {
                        format!(
                            "RTMP pending pool full ({} connections): evicted the oldest pending connection of {victim}, which held {biggest}, for one from {ip}",
                            total + 1
                        )
                    });
                    pool = lock(&self.pending);
                }
                _ => {
                    let total = pool.total;
                    drop(pool);
                    self.limits.trip(LimitKind::RtmpPending, Some(ip), || {
                        format!(
                            "RTMP connection refused: {total} connections have not published yet (max_pending_connections)"
                        )
                    });
                    return None;
                }
            }
        }
        pool.next_id += 1;
        let id = pool.next_id;
        pool.by_addr
            .entry(key)
            .or_default()
            .push_back((id, token.clone()));
        pool.total += 1;
        self.metrics.open_connections(SURFACE_PENDING).inc();
        Some(PendingSlot {
            id,
            key,
            pool: self.pending.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// A stream key from `ip` was refused: the refusal that spends the
    /// address's burst bans it. Returns whether it is banned now.
    pub(crate) fn key_refused(&self, ip: IpAddr, now: Instant) -> bool {
        let key = addr_key(ip);
        let _ = self.bad_keys.check(&key, now);
        if self.bad_keys.would_refuse(&key, now).is_none() {
            return false;
        }
        self.bans.ban(key, now, self.ban_for);
        self.limits.trip(LimitKind::RtmpBadKeys, Some(ip), || {
            format!(
                "too many refused stream keys from this address: refused for {}s",
                self.ban_for.as_secs()
            )
        });
        true
    }

    /// Connections not publishing yet, in all.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        lock(&self.pending).total
    }
}

/// A log line that an outsider can cause, at most `burst` at once and then
/// one a second (GCRA), with the number of lines suppressed meanwhile. Keeps
/// a storm of hostile connections from flooding the log while single
/// failures (an operator's typo, one broken encoder) are all logged.
#[derive(Debug)]
pub(crate) struct LogGate {
    rate: KeyedRate<()>,
    suppressed: AtomicU64,
}

impl LogGate {
    pub(crate) fn new(burst: u32) -> Self {
        Self {
            rate: KeyedRate::new(1, Duration::from_secs(1), burst),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last one)` if a line may be written now.
    pub(crate) fn allow(&self) -> Option<u64> {
        match self.rate.check(&(), Instant::now()) {
            Ok(()) => Some(self.suppressed.swap(0, Ordering::AcqRel)),
            Err(_) => {
                self.suppressed.fetch_add(1, Ordering::AcqRel);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    fn admission(f: impl FnOnce(&mut IngestConfig)) -> (Admission, Limits) {
        let mut config = IngestConfig::default();
        f(&mut config);
        let metrics = Metrics::new();
        let limits = Limits::new(metrics.clone());
        (Admission::new(&config, limits.clone(), metrics), limits)
    }

    #[test]
    fn per_address_cap_and_release_on_publish_or_drop() {
        let (a, limits) = admission(|_| {});
        let now = Instant::now();
        let mut held: Vec<Admitted> = (0..8).map(|_| a.admit(ip(2), now).unwrap()).collect();
        assert!(a.admit(ip(2), now).is_none(), "the 9th pending connection");
        assert_eq!(limits.hits(LimitKind::RtmpPendingPerAddr), 1);
        assert!(
            a.admit(ip(3), now).is_some(),
            "another address is not affected"
        );
        held[0].published();
        let again = a
            .admit(ip(2), now)
            .expect("a published connection frees its slot");
        assert!(a.admit(ip(2), now).is_none());
        assert_eq!(a.pending(), 8);
        held.pop();
        drop(again);
        assert_eq!(a.pending(), 6, "dropped and published ones left the pool");
    }

    #[test]
    fn a_full_pool_evicts_the_biggest_holders_oldest() {
        let (a, limits) = admission(|c| {
            c.max_pending_connections = 6;
            c.max_pending_per_addr = 3;
        });
        let now = Instant::now();
        let b: Vec<Admitted> = (0..3).map(|_| a.admit(ip(2), now).unwrap()).collect();
        let c: Vec<Admitted> = (0..2).map(|_| a.admit(ip(3), now).unwrap()).collect();
        let d = a.admit(ip(4), now).unwrap();
        // Full. 127.0.0.5 holds 0 < 3: it evicts 127.0.0.2's oldest.
        let e = a.admit(ip(5), now).unwrap();
        assert!(b[0].evicted.is_cancelled());
        assert!(!b[1].evicted.is_cancelled() && !c[0].evicted.is_cancelled());
        assert_eq!(a.pending(), 6);
        assert_eq!(limits.hits(LimitKind::RtmpPending), 1);
        // Now 127.0.0.2 and .3 hold 2 each; .2's connections are the
        // older ones, so .2 loses its oldest again.
        let f = a.admit(ip(6), now).unwrap();
        assert!(b[1].evicted.is_cancelled());
        assert!(!c[0].evicted.is_cancelled());
        // .3 holds 2, the biggest; .3 itself (2 < 2 is false) is refused.
        assert!(a.admit(ip(3), now).is_none());
        assert_eq!(limits.hits(LimitKind::RtmpPending), 3);
        // An evicted connection's slot dropping later changes nothing.
        let mut b = b;
        let rest = b.split_off(2);
        drop(b);
        assert_eq!(a.pending(), 6);
        drop((rest, c, d, e, f));
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn connection_cap_counts_every_connection() {
        let (a, limits) = admission(|c| c.max_connections = 2);
        let now = Instant::now();
        let mut one = a.admit(ip(2), now).unwrap();
        one.published();
        let two = a.admit(ip(3), now).unwrap();
        assert!(a.admit(ip(4), now).is_none());
        assert_eq!(limits.hits(LimitKind::RtmpConnections), 1);
        drop(two);
        assert!(a.admit(ip(4), now).is_some());
    }

    #[test]
    fn ten_refused_keys_ban_the_address_until_the_ban_ends() {
        let (a, limits) = admission(|_| {});
        let t0 = Instant::now();
        for i in 0..9 {
            assert!(!a.key_refused(ip(7), t0), "refusal {i}");
        }
        assert!(a.key_refused(ip(7), t0), "the 10th refusal bans");
        assert_eq!(limits.hits(LimitKind::RtmpBadKeys), 1);
        assert!(a.admit(ip(7), t0 + Duration::from_secs(59)).is_none());
        assert_eq!(limits.hits(LimitKind::RtmpBanned), 1);
        assert!(a.admit(ip(8), t0).is_some(), "only that address");
        assert!(a.admit(ip(7), t0 + Duration::from_secs(60)).is_some());
    }

    #[test]
    fn log_gate_allows_a_burst_then_counts_what_it_suppressed() {
        let gate = LogGate::new(3);
        assert_eq!(gate.allow(), Some(0));
        assert_eq!(gate.allow(), Some(0));
        assert_eq!(gate.allow(), Some(0));
        for _ in 0..100 {
            assert_eq!(gate.allow(), None);
        }
        assert_eq!(gate.suppressed.load(Ordering::Acquire), 100);
    }
}
