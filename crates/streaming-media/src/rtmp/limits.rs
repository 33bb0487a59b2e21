//! What one RTMP session may make the server hold (issue 9, "RTMP"): the
//! per-phase [`SessionLimits`] and the [`ReassemblyBudget`] that all sessions
//! of a server share.
//!
//! Until a publish has been accepted on a connection, the peer has proven
//! nothing, so [`SessionLimits::PRE_PUBLISH`] applies: small messages (refused
//! from the chunk header's announced length, before any payload is
//! buffered), few AMF0 values and shallow nesting (enforced while decoding),
//! few messages in reassembly. After [`super::ServerSession::accept_publish`]
//! the session switches to [`SessionLimits::PUBLISHING`] (keyframes are large).
//!
//! Reassembly buffers are charged to the shared budget as they grow and
//! released when their message completes, is aborted, or the session is
//! dropped. A session that cannot charge fails with
//! [`super::RtmpError::ReassemblyBudget`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::amf0::{DecodeLimits, MAX_DEPTH};

/// Bounds on what one session accepts in one phase (before or after an
/// accepted publish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest message (bytes), refused at its chunk header.
    pub max_message_len: u32,
    /// AMF0 values per command or data message, nested ones included.
    pub max_amf_values: u32,
    /// AMF0 nesting of objects and arrays (at most [`MAX_DEPTH`]).
    pub max_amf_depth: u32,
    /// Messages in reassembly at the same time.
    pub max_partial_messages: u32,
}

impl SessionLimits {
    /// Before a publish is accepted: 64 KiB messages, 1,024 AMF0 values,
    /// nesting 8, 4 messages in reassembly.
    pub const PRE_PUBLISH: SessionLimits = SessionLimits {
        max_message_len: 64 * 1024,
        max_amf_values: 1024,
        max_amf_depth: 8,
        max_partial_messages: 4,
    };

    /// Once publishing: 8 MiB messages, nesting 32, 16 messages in
    /// reassembly; 65,536 AMF0 values (encoders send a few dozen).
    pub const PUBLISHING: SessionLimits = SessionLimits {
        max_message_len: 8 * 1024 * 1024,
        max_amf_values: 65_536,
        max_amf_depth: MAX_DEPTH as u32,
        max_partial_messages: 16,
    };

    /// Each bound the smaller of the two (pre-publish limits never exceed
    /// the publishing ones).
    pub fn min(self, other: SessionLimits) -> SessionLimits {
        SessionLimits {
            max_message_len: self.max_message_len.min(other.max_message_len),
            max_amf_values: self.max_amf_values.min(other.max_amf_values),
            max_amf_depth: self.max_amf_depth.min(other.max_amf_depth),
            max_partial_messages: self.max_partial_messages.min(other.max_partial_messages),
        }
    }

    pub(crate) fn amf(self) -> DecodeLimits {
        DecodeLimits {
            max_values: self.max_amf_values as usize,
            max_depth: self.max_amf_depth as usize,
        }
    }
}

/// Which limit an [`super::RtmpError`] reports (see [`super::RtmpError::limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RtmpLimit {
    /// [`SessionLimits::max_message_len`].
    MessageSize,
    /// [`SessionLimits::max_amf_values`].
    AmfValues,
    /// [`SessionLimits::max_amf_depth`] (or the decoder's [`MAX_DEPTH`]).
    AmfDepth,
    /// [`SessionLimits::max_partial_messages`].
    PartialMessages,
    /// Distinct chunk stream ids per connection.
    ChunkStreams,
    /// The shared [`ReassemblyBudget`].
    ReassemblyBudget,
}

struct BudgetInner {
    limit: u64,
    used: AtomicU64,
}

/// Bytes of reassembly buffers all sessions that share it may hold at once.
/// Cheap to clone (an `Arc`); std atomics only, usable from any thread.
#[derive(Clone)]
pub struct ReassemblyBudget(Arc<BudgetInner>);

impl ReassemblyBudget {
    pub fn new(limit_bytes: u64) -> Self {
        Self(Arc::new(BudgetInner {
            limit: limit_bytes,
            used: AtomicU64::new(0),
        }))
    }

    /// The budget (bytes).
    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Bytes charged now, by all sessions.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Acquire)
    }

    /// Charges `n` bytes unless that would exceed the budget.
    pub(crate) fn try_charge(&self, n: u64) -> bool {
        let mut used = self.0.used.load(Ordering::Acquire);
        loop {
            let Some(next) = used.checked_add(n).filter(|v| *v <= self.0.limit) else {
                return false;
            };
            match self
                .0
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `n` charged bytes.
    pub(crate) fn release(&self, n: u64) {
        if n > 0 {
            // Never below zero, whatever a caller does.
            let _ = self
                .0
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    Some(u.saturating_sub(n))
                });
        }
    }
}

impl fmt::Debug for ReassemblyBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReassemblyBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish()
    }
}

/// Two handles are equal when they share one budget.
impl PartialEq for ReassemblyBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ReassemblyBudget {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_releases() {
        let b = ReassemblyBudget::new(100);
        assert!(b.try_charge(60));
        assert!(!b.try_charge(41));
        assert!(b.try_charge(40));
        assert_eq!(b.used(), 100);
        assert!(!b.try_charge(1));
        b.release(60);
        assert!(b.try_charge(1));
        b.release(1000);
        assert_eq!(b.used(), 0);
        assert!(!b.try_charge(u64::MAX));
        assert_eq!(b.clone(), b);
        assert_ne!(ReassemblyBudget::new(100), b);
    }

    #[test]
    fn pre_publish_limits_never_exceed_the_publishing_ones() {
        let tiny = SessionLimits {
            max_message_len: 1000,
            max_amf_values: 5,
            max_amf_depth: 2,
            max_partial_messages: 1,
        };
        assert_eq!(SessionLimits::PRE_PUBLISH.min(tiny), tiny);
        assert_eq!(
            SessionLimits::PRE_PUBLISH.min(SessionLimits::PUBLISHING),
            SessionLimits::PRE_PUBLISH
        );
    }
}
