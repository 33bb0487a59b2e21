//! Domain models and the stream state machine.
//!
//! ```text
//!  PENDING ──first media──▶ ACTIVE ──encoder stops──▶ ENDED ──publishes again──▶ ACTIVE
//!     │                      │
//!     └──────────────────────┴──fatal failure──▶ ERROR ──publishes again──▶ ACTIVE
//! ```
//! A stream key is reusable, as with every hosted service: an ENDED stream goes
//! ACTIVE again when its broadcaster publishes once more.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Pending,
    Active,
    Ended,
    Error,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Pending => "PENDING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Ended => "ENDED",
            StreamStatus::Error => "ERROR",
        }
    }

    /// Whether the state machine allows `self -> to`.
    pub fn can_transition_to(self, to: StreamStatus) -> bool {
        use StreamStatus::*;
        matches!(
            (self, to),
            (Pending, Active)
                | (Pending, Error)
                | (Active, Ended)
                | (Active, Error)
                | (Ended, Active)
                | (Error, Active)
        )
    }
}

impl fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PENDING" | "PENDING_INGEST" => Ok(StreamStatus::Pending),
            "ACTIVE" => Ok(StreamStatus::Active),
            "ENDED" => Ok(StreamStatus::Ended),
            "ERROR" => Ok(StreamStatus::Error),
            other => Err(format!("unknown stream status {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub id: Uuid,
    pub name: String,
    pub status: StreamStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A stream key as stored: never the key itself, only its SHA-256 and a
/// short public prefix used to find the row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamKey {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub prefix: String,
    #[serde(skip)]
    pub hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl StreamKey {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use StreamStatus::*;
        assert!(Pending.can_transition_to(Active));
        assert!(Active.can_transition_to(Ended));
        assert!(Ended.can_transition_to(Active));
        assert!(!Pending.can_transition_to(Ended));
        assert!(!Ended.can_transition_to(Pending));
        assert!(!Active.can_transition_to(Active));
        assert_eq!("active".parse::<StreamStatus>().unwrap(), Active);
        assert!("bogus".parse::<StreamStatus>().is_err());
    }
}
