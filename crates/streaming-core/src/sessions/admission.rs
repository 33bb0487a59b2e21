//! Caps on what viewers (and anyone pretending to be one) may make the
//! registry hold (issue 9, "Viewer sessions that cannot be forged"; docs/ARCHITECTURE.md,
//! "Limits and abuse resistance"):
//!
//! - `sessions.max_live` sessions held per node (counted or not); beyond it
//!   a master playlist still plays, without a session, and a new session
//!   from a beacon or the minting route is refused (503);
//! - `sessions.new_per_addr_per_sec` new sessions per client address (IPv6
//!   per /64), a GCRA with bursts of the same size; beyond it the master
//!   still plays without a session, minting answers 429;
//! - `sessions.beacons_per_session_per_sec` beacon requests per session (429);
//! - player-reported error messages logged at most once per second.
//!
//! Each refusal is counted by [`Limits::trip`] (`streaming_limit_hits_total`
//! and a log line at most once per second per kind). Time is passed in.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::info;
use uuid::Uuid;

use super::signing::{SessionSigner, SignedSid};
use super::{Inner, ViewerSessions};
use crate::config::{HttpConfig, SessionsConfig};
use crate::limits::{KeyedRate, LimitKind, Limits, addr_key};

/// The limits of viewer sessions and beacons (from `[sessions]` and `[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Sessions held per node.
    pub max_live: usize,
    /// New sessions per address per second (0: no limit).
    pub new_per_addr_per_sec: u32,
    /// Beacon requests per session per second (0: no limit).
    pub beacons_per_session_per_sec: u32,
    /// Largest beacon body, bytes.
    pub max_beacon_body_bytes: usize,
    /// Most events in one beacon body.
    pub max_beacon_events: usize,
}

impl SessionPolicy {
    pub fn from_config(sessions: &SessionsConfig, http: &HttpConfig) -> Self {
        Self {
            max_live: sessions.max_live.max(1),
            new_per_addr_per_sec: sessions.new_per_addr_per_sec,
            beacons_per_session_per_sec: sessions.beacons_per_session_per_sec,
            max_beacon_body_bytes: http.max_beacon_body_bytes,
            max_beacon_events: http.max_beacon_events.max(1),
        }
    }
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self::from_config(&SessionsConfig::default(), &HttpConfig::default())
    }
}

/// Why a session was not opened, or a beacon not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `max_live` sessions are held (503).
    #[error("this node holds its maximum of live viewer sessions")]
    Full,
    /// This address opened its share of new sessions this second (429).
    #[error("too many new viewer sessions from this address")]
    TooManyNew { retry_after: Duration },
    /// This session sent its share of beacons this second (429).
    #[error("too many beacons for this session")]
    BeaconRate { retry_after: Duration },
}

/// Lines of player-reported errors: one per second at most.
#[derive(Debug, Default)]
struct LogGate {
    last: Option<Instant>,
    suppressed: u64,
}

/// The signer and the caps a registry applies.
#[derive(Debug)]
pub(super) struct Control {
    signer: SessionSigner,
    policy: SessionPolicy,
    new_per_addr: KeyedRate<IpAddr>,
    beacons: KeyedRate<Uuid>,
    limits: Limits,
    errors: Mutex<LogGate>,
}

impl ViewerSessions {
    /// A registry whose ids are signed with `secret`, capped by `policy`,
    /// counting refusals in `limits`.
    pub fn with_policy(secret: &[u8], policy: SessionPolicy, limits: Limits) -> Self {
        let ctl = Control {
            signer: SessionSigner::new(secret),
            new_per_addr: KeyedRate::per_second(policy.new_per_addr_per_sec),
            beacons: KeyedRate::per_second(policy.beacons_per_session_per_sec),
            policy,
            limits,
            errors: Mutex::default(),
        };
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            ctl: Arc::new(ctl),
        }
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.ctl.policy
    }

    /// Where refusals are counted (also for the beacon body limits).
    pub fn limits(&self) -> &Limits {
        &self.ctl.limits
    }

    pub fn signer(&self) -> &SessionSigner {
        &self.ctl.signer
    }

    /// The session id in `presented` if the server signed it for
    /// `stream_id`; anything else is counted (`sessions_unsigned`) and `None`.
    pub fn verify(&self, stream_id: Uuid, presented: &str, peer: IpAddr) -> Option<Uuid> {
        let id = self.ctl.signer.verify(stream_id, presented);
        if id.is_none() {
            self.ctl
                .limits
                .trip(LimitKind::SessionsUnsigned, Some(peer), || {
                    format!("a session id this server did not sign for stream {stream_id}")
                });
        }
        id
    }

    /// Whether `peer` may open one more session now: the node's cap, then
    /// the address's rate (a token is taken). Refusals are counted.
    pub fn admit(&self, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        let ctl = &self.ctl;
        if self.held() >= ctl.policy.max_live {
            ctl.limits.trip(LimitKind::SessionsLive, Some(peer), || {
                format!("{} live viewer sessions held", ctl.policy.max_live)
            });
            return Err(Refusal::Full);
        }
        if let Err(retry_after) = ctl.new_per_addr.check(&addr_key(peer), now) {
            ctl.limits
                .trip(LimitKind::SessionsNewPerAddr, Some(peer), || {
                    format!(
                        "more than {} new viewer sessions per second from one address",
                        ctl.policy.new_per_addr_per_sec
                    )
                });
            return Err(Refusal::TooManyNew { retry_after });
        }
        Ok(())
    }

    /// A new signed id for a player of `stream_id` that needs it before its
    /// first request (`POST /api/v1/streams/{id}/sessions`): admitted, then
    /// opened (not counted until a request or beacon comes back with it).
    pub fn mint(
        &self,
        stream_id: Uuid,
        peer: IpAddr,
        user_agent: Option<String>,
        now: Instant,
    ) -> Result<SignedSid, Refusal> {
        self.admit(peer, now)?;
        let sid = self.ctl.signer.mint(stream_id);
        self.open_pending(sid.id(), stream_id, user_agent);
        Ok(sid)
    }

    /// A request for `stream_id` carrying the valid id `sid` that is not open
    /// here (it expired, or another replica minted it): opened under the
    /// caps. Returns whether the session is open now.
    pub fn adopt(
        &self,
        sid: Uuid,
        stream_id: Uuid,
        peer: IpAddr,
        user_agent: Option<String>,
        now: Instant,
    ) -> bool {
        self.ensure_open(sid, stream_id, peer, user_agent, now)
            .is_ok()
    }

    /// Opens `sid` under the caps unless it is open already.
    fn ensure_open(
        &self,
        sid: Uuid,
        stream_id: Uuid,
        peer: IpAddr,
        user_agent: Option<String>,
        now: Instant,
    ) -> Result<(), Refusal> {
        if !self.contains(sid) {
            self.admit(peer, now)?;
            self.open_pending(sid, stream_id, user_agent);
        }
        Ok(())
    }

    /// A beacon request for the valid id `sid` of `stream_id`: within the
    /// session's beacon rate, and its session open (opened under the caps if
    /// it is not). Then record its events with [`ViewerSessions::beacon`].
    pub fn accept_beacons(
        &self,
        sid: Uuid,
        stream_id: Uuid,
        peer: IpAddr,
        user_agent: Option<String>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let ctl = &self.ctl;
        if let Err(retry_after) = ctl.beacons.check(&sid, now) {
            ctl.limits
                .trip(LimitKind::SessionsBeaconRate, Some(peer), || {
                    format!(
                        "more than {} beacons per second for session {sid}",
                        ctl.policy.beacons_per_session_per_sec
                    )
                });
            return Err(Refusal::BeaconRate { retry_after });
        }
        self.ensure_open(sid, stream_id, peer, user_agent, now)
    }

    /// Logs an error a player reported, at most one line per second (the
    /// next line says how many were left out). Returns whether it logged.
    pub fn log_player_error(
        &self,
        stream_id: Uuid,
        sid: Uuid,
        message: &str,
        now: Instant,
    ) -> bool {
        let suppressed = {
            let mut g = self.ctl.errors.lock().unwrap_or_else(|p| p.into_inner());
            if g.last
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
            {
                g.suppressed += 1;
                return false;
            }
            g.last = Some(now);
            std::mem::take(&mut g.suppressed)
        };
        info!(%stream_id, session = %sid, %message, suppressed, "player reported an error");
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::Beacon;
    use super::*;
    use crate::metrics::Metrics;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    fn registry(policy: SessionPolicy) -> ViewerSessions {
        ViewerSessions::with_policy(b"test secret", policy, Limits::new(Metrics::new()))
    }

    #[test]
    fn new_sessions_per_address_are_capped_and_refill() {
        let reg = registry(SessionPolicy {
            new_per_addr_per_sec: 5,
            ..SessionPolicy::default()
        });
        let stream = Uuid::new_v4();
        let t0 = Instant::now();
        for _ in 0..5 {
            reg.mint(stream, ip(2), None, t0).unwrap();
        }
        let refused = reg.mint(stream, ip(2), None, t0).unwrap_err();
        assert!(
            matches!(refused, Refusal::TooManyNew { retry_after } if retry_after <= Duration::from_millis(200)),
            "{refused:?}"
        );
        assert_eq!(reg.held(), 5, "a refused mint holds nothing");
        // Another address is not affected; the first one refills over time.
        assert!(reg.mint(stream, ip(3), None, t0).is_ok());
        assert!(
            reg.mint(stream, ip(2), None, t0 + Duration::from_millis(200))
                .is_ok()
        );
        assert_eq!(reg.limits().hits(LimitKind::SessionsNewPerAddr), 1);
        // Minted sessions are held, not counted, until they come back.
        assert_eq!(reg.count(stream), 0);
    }

    #[test]
    fn the_node_cap_refuses_new_sessions_only() {
        let reg = registry(SessionPolicy {
            max_live: 3,
            ..SessionPolicy::default()
        });
        let stream = Uuid::new_v4();
        let now = Instant::now();
        let sids: Vec<_> = (0..3)
            .map(|i| reg.mint(stream, ip(2 + i), None, now).unwrap())
            .collect();
        assert_eq!(reg.mint(stream, ip(9), None, now), Err(Refusal::Full));
        assert_eq!(reg.admit(ip(9), now), Err(Refusal::Full));
        assert!(!reg.adopt(Uuid::new_v4(), stream, ip(9), None, now));
        assert_eq!(
            reg.accept_beacons(Uuid::new_v4(), stream, ip(9), None, now),
            Err(Refusal::Full)
        );
        // Sessions already open keep working.
        assert!(reg.adopt(sids[0].id(), stream, ip(9), None, now));
        reg.accept_beacons(sids[1].id(), stream, ip(3), None, now)
            .unwrap();
        assert_eq!(reg.limits().hits(LimitKind::SessionsLive), 4);
        // Once they end (never confirmed: dropped unsaved), room again.
        let later = now + Duration::from_secs(61);
        let sweep = reg.sweep(later, Duration::from_secs(60));
        assert!(sweep.persist.is_empty());
        assert!(reg.mint(stream, ip(9), None, later).is_ok());
    }

    #[test]
    fn beacons_per_session_are_capped() {
        let reg = registry(SessionPolicy {
            beacons_per_session_per_sec: 10,
            ..SessionPolicy::default()
        });
        let stream = Uuid::new_v4();
        let t0 = Instant::now();
        let sid = reg.mint(stream, ip(2), Some("ua".into()), t0).unwrap().id();
        for _ in 0..10 {
            reg.accept_beacons(sid, stream, ip(2), None, t0).unwrap();
            reg.beacon(sid, stream, Beacon::Heartbeat { quality: None }, None)
                .unwrap();
        }
        let refused = reg
            .accept_beacons(sid, stream, ip(2), None, t0)
            .unwrap_err();
        assert!(matches!(refused, Refusal::BeaconRate { .. }), "{refused:?}");
        // Another session of the same address is not affected.
        let other = reg.mint(stream, ip(2), None, t0).unwrap().id();
        assert!(reg.accept_beacons(other, stream, ip(2), None, t0).is_ok());
        assert!(
            reg.accept_beacons(sid, stream, ip(2), None, t0 + Duration::from_millis(100))
                .is_ok()
        );
        assert_eq!(reg.limits().hits(LimitKind::SessionsBeaconRate), 1);
        let s = reg.get(sid).unwrap();
        assert_eq!(
            (s.protocol.as_str(), s.user_agent.as_deref()),
            ("beacon", Some("ua"))
        );
        assert_eq!(reg.count(stream), 1, "beacons confirm the session");
    }

    #[test]
    fn unsigned_ids_are_counted_and_refused() {
        let reg = registry(SessionPolicy::default());
        let stream = Uuid::new_v4();
        let sid = reg.signer().mint(stream);
        assert_eq!(reg.verify(stream, sid.as_str(), ip(2)), Some(sid.id()));
        assert_eq!(reg.verify(stream, &Uuid::new_v4().to_string(), ip(2)), None);
        assert_eq!(reg.verify(Uuid::new_v4(), sid.as_str(), ip(2)), None);
        assert_eq!(reg.limits().hits(LimitKind::SessionsUnsigned), 2);
        // Another registry with the same secret (a replica) accepts it.
        let replica = registry(SessionPolicy::default());
        assert_eq!(replica.verify(stream, sid.as_str(), ip(2)), Some(sid.id()));
    }

    #[test]
    fn a_minted_session_takes_the_protocol_of_its_first_request() {
        let reg = registry(SessionPolicy::default());
        let stream = Uuid::new_v4();
        let sid = reg.mint(stream, ip(2), None, Instant::now()).unwrap().id();
        let served = |quality, returning| super::super::Served {
            stream_id: stream,
            protocol: Some("dash"),
            quality,
            bytes: 10,
            returning,
        };
        // The master/MPD fetch with the minted id: not a viewer yet.
        assert!(reg.served(sid, served(None, true)));
        assert_eq!(reg.count(stream), 0);
        assert_eq!(reg.get(sid).unwrap().protocol, "dash");
        // Its refresh (or a rendition request) makes it one.
        assert!(reg.served(sid, served(None, true)));
        assert_eq!(reg.count(stream), 1);
        assert!(!reg.served(Uuid::new_v4(), served(Some("source"), true)));
    }

    #[test]
    fn player_errors_are_logged_once_a_second() {
        let reg = registry(SessionPolicy::default());
        let (stream, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        assert!(reg.log_player_error(stream, sid, "first", t0));
        for _ in 0..1000 {
            assert!(!reg.log_player_error(stream, sid, "flood", t0 + Duration::from_millis(500)));
        }
        assert!(reg.log_player_error(stream, sid, "next", t0 + Duration::from_secs(1)));
    }
}
