//! Limits of every surface (docs/ARCHITECTURE.md, "Limits and abuse resistance"):
//! the shared pieces that listeners and handlers use to cap what an outsider
//! can consume.
//!
//! - [`Limits::trip`]: a limit tripped — counted in
//!   `streaming_limit_hits_total{kind}` and logged at most once per second
//!   per kind, with the number of lines suppressed meanwhile.
//! - [`AddrSlots`]: a total cap and a per-address cap on things held open
//!   (connections, WebSocket clients), released by dropping the [`Slot`].
//! - [`KeyedRate`]: a per-key rate limit (GCRA, like nginx's `limit_req`),
//!   bounded in memory, which says how long to wait when it refuses.
//! - [`Bans`]: addresses refused until a deadline.
//!
//! Addresses are grouped by [`addr_key`]: an IPv4 address (or an
//! IPv4-mapped IPv6 one) stands for itself, an IPv6 address for its /64, the
//! smallest block one subscriber usually holds. Time is passed in
//! (`now: Instant`) so the logic is tested without waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::metrics::Metrics;

/// The remote address a request or connection is charged to (after trusted
/// proxies), left by the HTTP server on every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Which limit tripped: the `kind` label of `streaming_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// RTMP: handshake not done within `handshake_timeout_secs`.
    RtmpHandshakeTimeout,
    /// RTMP: no accepted `publish` within `publish_timeout_secs`.
    RtmpPublishTimeout,
    /// RTMP: publishing connection sent no media for `idle_publish_timeout_secs`.
    RtmpIdlePublish,
    /// RTMP: `max_connections` reached.
    RtmpConnections,
    /// RTMP: `max_pending_connections` reached.
    RtmpPending,
    /// RTMP: `max_pending_per_addr` reached.
    RtmpPendingPerAddr,
    /// RTMP: address banned after too many refused keys.
    RtmpBanned,
    /// RTMP: an address refused too many keys and is banned now.
    RtmpBadKeys,
    /// RTMP: a message above the (pre-publish) size limit.
    RtmpMessageSize,
    /// RTMP: AMF0 value count or nesting above the pre-publish limit.
    RtmpAmf,
    /// RTMP: too many messages in reassembly before publish.
    RtmpPartialMessages,
    /// RTMP: the global reassembly budget is spent.
    RtmpReassemblyBudget,
    /// TLS handshake not done in time (RTMPS or HTTPS).
    TlsHandshakeTimeout,
    /// HTTP: `max_connections` reached.
    HttpConnections,
    /// HTTP: `max_connections_per_addr` reached.
    HttpConnectionsPerAddr,
    /// HTTP: request headers not received within `header_read_timeout_secs`.
    HttpHeaderTimeout,
    /// HTTP: keep-alive connection idle for `idle_timeout_secs`.
    HttpIdleTimeout,
    /// HTTP: request not answered within `request_timeout_secs`.
    HttpRequestTimeout,
    /// HTTP: request body above its limit.
    HttpBodySize,
    /// HTTP: control API requests per address per minute.
    HttpApiRate,
    /// HTTP: public API requests (beacons, session ids, status) per address.
    HttpPublicRate,
    /// HTTP: failed admin-token attempts per address.
    HttpAdminFailures,
    /// HTTP: `max_held_requests` reached (LL-HLS blocking reloads, hinted
    /// parts, segments in progress held on this node).
    HttpHeldRequests,
    /// HTTP: `max_held_requests_per_addr` reached.
    HttpHeldRequestsPerAddr,
    /// Sessions: `max_live` reached.
    SessionsLive,
    /// Sessions: new sessions per address per second.
    SessionsNewPerAddr,
    /// Sessions: beacons per session per second.
    SessionsBeaconRate,
    /// Sessions: an id the server did not sign.
    SessionsUnsigned,
    /// WebSocket: `max_clients` reached.
    WsClients,
    /// WebSocket: `max_clients_per_addr` reached.
    WsClientsPerAddr,
    /// WebSocket: an inbound frame or message above `max_message_bytes`.
    WsMessageSize,
    /// WebSocket: an `Origin` not allowed by `cors.playback_origins`.
    WsOrigin,
}

impl LimitKind {
    /// Every kind (each has a series from the start).
    pub const ALL: [LimitKind; 32] = [
        LimitKind::RtmpHandshakeTimeout,
        LimitKind::RtmpPublishTimeout,
        LimitKind::RtmpIdlePublish,
        LimitKind::RtmpConnections,
        LimitKind::RtmpPending,
        LimitKind::RtmpPendingPerAddr,
        LimitKind::RtmpBanned,
        LimitKind::RtmpBadKeys,
        LimitKind::RtmpMessageSize,
        LimitKind::RtmpAmf,
        LimitKind::RtmpPartialMessages,
        LimitKind::RtmpReassemblyBudget,
        LimitKind::TlsHandshakeTimeout,
        LimitKind::HttpConnections,
        LimitKind::HttpConnectionsPerAddr,
        LimitKind::HttpHeaderTimeout,
        LimitKind::HttpIdleTimeout,
        LimitKind::HttpRequestTimeout,
        LimitKind::HttpBodySize,
        LimitKind::HttpApiRate,
        LimitKind::HttpPublicRate,
        LimitKind::HttpAdminFailures,
        LimitKind::HttpHeldRequests,
        LimitKind::HttpHeldRequestsPerAddr,
        LimitKind::SessionsLive,
        LimitKind::SessionsNewPerAddr,
        LimitKind::SessionsBeaconRate,
        LimitKind::SessionsUnsigned,
        LimitKind::WsClients,
        LimitKind::WsClientsPerAddr,
        LimitKind::WsMessageSize,
        LimitKind::WsOrigin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::RtmpHandshakeTimeout => "rtmp_handshake_timeout",
            LimitKind::RtmpPublishTimeout => "rtmp_publish_timeout",
            LimitKind::RtmpIdlePublish => "rtmp_idle_publish",
            LimitKind::RtmpConnections => "rtmp_connections",
            LimitKind::RtmpPending => "rtmp_pending",
            LimitKind::RtmpPendingPerAddr => "rtmp_pending_per_addr",
            LimitKind::RtmpBanned => "rtmp_banned",
            LimitKind::RtmpBadKeys => "rtmp_bad_keys",
            LimitKind::RtmpMessageSize => "rtmp_message_size",
            LimitKind::RtmpAmf => "rtmp_amf",
            LimitKind::RtmpPartialMessages => "rtmp_partial_messages",
            LimitKind::RtmpReassemblyBudget => "rtmp_reassembly_budget",
            LimitKind::TlsHandshakeTimeout => "tls_handshake_timeout",
            LimitKind::HttpConnections => "http_connections",
            LimitKind::HttpConnectionsPerAddr => "http_connections_per_addr",
            LimitKind::HttpHeaderTimeout => "http_header_timeout",
            LimitKind::HttpIdleTimeout => "http_idle_timeout",
            LimitKind::HttpRequestTimeout => "http_request_timeout",
            LimitKind::HttpBodySize => "http_body_size",
            LimitKind::HttpApiRate => "http_api_rate",
            LimitKind::HttpPublicRate => "http_public_rate",
            LimitKind::HttpAdminFailures => "http_admin_failures",
            LimitKind::HttpHeldRequests => "held_requests",
            LimitKind::HttpHeldRequestsPerAddr => "held_requests_per_addr",
            LimitKind::SessionsLive => "sessions_live",
            LimitKind::SessionsNewPerAddr => "sessions_new_per_addr",
            LimitKind::SessionsBeaconRate => "sessions_beacon_rate",
            LimitKind::SessionsUnsigned => "sessions_unsigned",
            LimitKind::WsClients => "ws_clients",
            LimitKind::WsClientsPerAddr => "ws_clients_per_addr",
            LimitKind::WsMessageSize => "ws_message_size",
            LimitKind::WsOrigin => "ws_origin",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct LogState {
    last: Option<Instant>,
    suppressed: u64,
}

/// Counts and logs limit hits; cheap to clone, shared by every surface.
#[derive(Clone)]
pub struct Limits {
    metrics: Metrics,
    logs: Arc<Vec<Mutex<LogState>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lines of one kind logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

impl Limits {
    pub fn new(metrics: Metrics) -> Self {
        let logs = LimitKind::ALL
            .iter()
            .map(|_| Mutex::default())
            .collect::<Vec<_>>();
        Self {
            metrics,
            logs: Arc::new(logs),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `kind` tripped for `peer`: counts it, and logs `detail()` at WARN
    /// unless a line of this kind was logged less than a second ago (then
    /// the line is suppressed and counted; the next line says how many).
    /// Returns whether a line was written.
    pub fn trip(
        &self,
        kind: LimitKind,
        peer: Option<IpAddr>,
        detail: impl FnOnce() -> String,
    ) -> bool {
        self.metrics.limit_hit(kind.as_str());
        let now = Instant::now();
        let suppressed = {
            let mut st = lock(&self.logs[kind.index()]);
            if st.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
                st.suppressed += 1;
                return false;
            }
            st.last = Some(now);
            std::mem::take(&mut st.suppressed)
        };
        let detail = detail();
        match peer {
            Some(peer) => warn!(
                limit = kind.as_str(),
                %peer,
                suppressed,
                "limit reached: {detail}"
            ),
            None => warn!(limit = kind.as_str(), suppressed, "limit reached: {detail}"),
        }
        true
    }

    /// How often `kind` tripped so far (tests, benchmarks).
    pub fn hits(&self, kind: LimitKind) -> u64 {
        self.metrics.limit_hits(kind.as_str())
    }
}

/// The key an address is limited under: IPv4 (and IPv4-mapped IPv6) as is,
/// IPv6 by its /64.
pub fn addr_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why [`AddrSlots::try_acquire`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefused {
    /// The total cap is reached.
    Total,
    /// This address holds its share already.
    PerAddr,
}

#[derive(Debug, Default)]
struct SlotsInner {
    total: usize,
    per_addr: HashMap<IpAddr, usize>,
}

/// A total cap and a per-address cap on things held open.
#[derive(Debug, Clone)]
pub struct AddrSlots {
    max_total: usize,
    max_per_addr: usize,
    inner: Arc<Mutex<SlotsInner>>,
}

/// One held slot; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    /// `None`: a slot that counts towards the total only.
    key: Option<IpAddr>,
    inner: Arc<Mutex<SlotsInner>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = lock(&self.inner);
        inner.total = inner.total.saturating_sub(1);
        let Some(key) = self.key else { return };
        if let Some(n) = inner.per_addr.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                inner.per_addr.remove(&key);
            }
        }
    }
}

impl AddrSlots {
    /// Caps of 0 are read as 1 (a cap that admits nothing is a mistake).
    pub fn new(max_total: usize, max_per_addr: usize) -> Self {
        Self {
            max_total: max_total.max(1),
            max_per_addr: max_per_addr.max(1),
            inner: Arc::default(),
        }
    }

    /// Takes a slot for `ip`, unless a cap is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<Slot, SlotRefused> {
        let key = addr_key(ip);
        let mut inner = lock(&self.inner);
        if inner.total >= self.max_total {
            return Err(SlotRefused::Total);
        }
        let held = inner.per_addr.get(&key).copied().unwrap_or(0);
        if held >= self.max_per_addr {
            return Err(SlotRefused::PerAddr);
        }
        inner.total += 1;
        inner.per_addr.insert(key, held + 1);
        Ok(Slot {
            key: Some(key),
            inner: self.inner.clone(),
        })
    }

    /// Takes a slot that counts towards the total only (a trusted proxy,
    /// which speaks for many clients).
    pub fn try_acquire_unlimited(&self, _ip: IpAddr) -> Result<Slot, SlotRefused> {
        let mut inner = lock(&self.inner);
        if inner.total >= self.max_total {
            return Err(SlotRefused::Total);
        }
        inner.total += 1;
        Ok(Slot {
            key: None,
            inner: self.inner.clone(),
        })
    }

    /// Slots held now, in all.
    pub fn total(&self) -> usize {
        lock(&self.inner).total
    }

    /// Slots `ip`'s group holds now.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        lock(&self.inner)
            .per_addr
            .get(&addr_key(ip))
            .copied()
            .unwrap_or(0)
    }
}

/// Origins allowed by one CORS rule (`cors.playback_origins`,
/// `cors.admin_origins`): `"*"` for any, else exact origins
/// (scheme://host[:port], case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    any: bool,
    list: Vec<String>,
}

impl Origins {
    pub fn new(configured: &[String]) -> Self {
        Self {
            any: configured.iter().any(|o| o == "*"),
            list: configured
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// The `Access-Control-Allow-Origin` value for `origin` (`*` or the
    /// origin itself), if it is allowed.
    pub fn allow(&self, origin: &str) -> Option<String> {
        if self.any {
            return Some("*".to_string());
        }
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        self.list.contains(&o).then(|| origin.to_string())
    }

    /// Any origin is allowed.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether a request with this `Origin` header (if any) may proceed.
    pub fn permits(&self, origin: Option<&str>) -> bool {
        origin.is_none_or(|o| self.allow(o).is_some())
    }
}

/// Keys a [`KeyedRate`] or [`Bans`] tracks at most; beyond it, stale
/// entries are swept and then the oldest evicted (as nginx's `limit_req`
/// zone evicts its least recently used state).
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// A per-key rate limit: `rate` events per `period`, bursts of up to
/// `burst` (GCRA: each key keeps its theoretical arrival time).
#[derive(Debug, Clone)]
pub struct KeyedRate<K> {
    /// Time between events at the sustained rate.
    interval: Duration,
    /// How far ahead of `now` the arrival time may run (burst − 1 intervals).
    tolerance: Duration,
    max_keys: usize,
    tat: Arc<Mutex<HashMap<K, Instant>>>,
}

impl<K: Eq + Hash + Clone> KeyedRate<K> {
    /// `rate` events per `period` with bursts of `burst`; a rate of 0 means
    /// no limit.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Self {
        let interval = if rate == 0 {
            Duration::ZERO
        } else {
            period / rate
        };
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            max_keys: MAX_TRACKED_KEYS,
            tat: Arc::default(),
        }
    }

    /// `rate` per second, bursts of `rate`.
    pub fn per_second(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(1), rate)
    }

    /// `rate` per minute, bursts of `rate`.
    pub fn per_minute(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(60), rate)
    }

    /// Fewer keys tracked (tests).
    pub fn with_max_keys(mut self, n: usize) -> Self {
        self.max_keys = n.max(1);
        self
    }

    /// Counts one event of `key` at `now`: `Ok` if allowed, else how long
    /// until one would be.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.interval.is_zero() {
            return Ok(());
        }
        let mut map = lock(&self.tat);
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        if !map.contains_key(key) && map.len() >= self.max_keys {
            map.retain(|_, t| *t > now);
            if map.len() >= self.max_keys
                && let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key.clone(), tat + self.interval);
        Ok(())
    }

    /// How long `key` would be refused at `now`, without counting an event.
    pub fn would_refuse(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.interval.is_zero() {
            return None;
        }
        let tat = lock(&self.tat).get(key).copied()?.max(now);
        let ahead = tat - now;
        (ahead > self.tolerance).then(|| ahead - self.tolerance)
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        lock(&self.tat).len()
    }
}

/// Keys refused until a deadline (bounded like [`KeyedRate`]).
#[derive(Debug, Clone, Default)]
pub struct Bans<K> {
    until: Arc<Mutex<HashMap<K, Instant>>>,
}

impl<K: Eq + Hash + Clone> Bans<K> {
    pub fn new() -> Self {
        Self {
            until: Arc::default(),
        }
    }

    /// Refuses `key` until `now + dur`.
    pub fn ban(&self, key: K, now: Instant, dur: Duration) {
        let mut map = lock(&self.until);
        if map.len() >= MAX_TRACKED_KEYS {
            map.retain(|_, t| *t > now);
        }
        if map.len() < MAX_TRACKED_KEYS || map.contains_key(&key) {
            map.insert(key, now + dur);
        }
    }

    /// How long `key` stays refused, if it is.
    pub fn banned(&self, key: &K, now: Instant) -> Option<Duration> {
        let mut map = lock(&self.until);
        match map.get(key) {
            Some(t) if *t > now => Some(*t - now),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, d))
    }

    #[test]
    fn slots_cap_total_and_per_address_and_free_on_drop() {
        let slots = AddrSlots::new(3, 2);
        let a1 = slots.try_acquire(v4(1)).unwrap();
        let _a2 = slots.try_acquire(v4(1)).unwrap();
        assert_eq!(slots.try_acquire(v4(1)).unwrap_err(), SlotRefused::PerAddr);
        let _b = slots.try_acquire(v4(2)).unwrap();
        assert_eq!(slots.try_acquire(v4(3)).unwrap_err(), SlotRefused::Total);
        drop(a1);
        assert_eq!(slots.held_by(v4(1)), 1);
        assert!(slots.try_acquire(v4(3)).is_ok());
        assert_eq!(slots.total(), 2, "the temporary slot was dropped");
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(addr_key(a), addr_key(b));
        assert_ne!(addr_key(a), addr_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(addr_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn keyed_rate_allows_a_burst_then_the_rate_and_says_when() {
        let r = KeyedRate::new(10, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(r.check(&1u8, t0).is_ok(), "event {i} of the burst");
        }
        assert_eq!(r.would_refuse(&1u8, t0), Some(Duration::from_secs(6)));
        let wait = r.check(&1u8, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert_eq!(r.would_refuse(&2u8, t0), None);
        assert!(r.check(&2u8, t0).is_ok(), "another key is not affected");
        // One interval later one more event fits.
        assert!(r.check(&1u8, t0 + Duration::from_secs(6)).is_ok());
        assert!(r.check(&1u8, t0 + Duration::from_secs(6)).is_err());
        // A minute of silence refills the bucket.
        let later = t0 + Duration::from_secs(72);
        for _ in 0..10 {
            assert!(r.check(&1u8, later).is_ok());
        }
        assert!(KeyedRate::<u8>::per_second(0).check(&1, t0).is_ok());
    }

    #[test]
    fn keyed_rate_memory_is_bounded() {
        let r = KeyedRate::per_second(1).with_max_keys(100);
        let t0 = Instant::now();
        for k in 0..10_000u32 {
            let _ = r.check(&k, t0);
        }
        assert!(r.tracked() <= 100, "{}", r.tracked());
    }

    #[test]
    fn origins_match_exactly_or_any() {
        let o = Origins::new(&["https://player.example".to_string()]);
        assert!(o.allow("https://player.example").is_some());
        assert!(o.allow("https://PLAYER.example/").is_some());
        assert!(o.allow("https://evil.example").is_none());
        assert!(o.permits(None));
        assert!(!o.permits(Some("https://evil.example")));
        assert_eq!(Origins::new(&["*".into()]).allow("x").unwrap(), "*");
        assert!(Origins::default().allow("https://player.example").is_none());
    }

    #[test]
    fn bans_expire() {
        let b = Bans::new();
        let t0 = Instant::now();
        b.ban(v4(9), t0, Duration::from_secs(60));
        assert_eq!(b.banned(&v4(9), t0), Some(Duration::from_secs(60)));
        assert_eq!(b.banned(&v4(8), t0), None);
        assert_eq!(b.banned(&v4(9), t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn trips_are_counted_always_and_logged_once_a_second() {
        let limits = Limits::new(Metrics::new());
        assert!(limits.trip(LimitKind::WsClients, Some(v4(1)), || "first".into()));
        for _ in 0..100 {
            assert!(!limits.trip(LimitKind::WsClients, None, || unreachable!()));
        }
        assert!(limits.trip(LimitKind::HttpApiRate, None, || "other kind".into()));
        assert_eq!(limits.hits(LimitKind::WsClients), 101);
        assert_eq!(limits.hits(LimitKind::HttpApiRate), 1);
    }
}
