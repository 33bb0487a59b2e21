//! Repositories: the persistence boundary of the domain.
//!
//! One trait, one implementation per database. SQLite is the embedded default
//! (a file under the data dir); PostgreSQL joins it in the control-plane work.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::CoreError;
use crate::model::{Stream, StreamKey, StreamStatus};

pub use sqlite::SqliteRepository;

/// A stream just created, with its first key in clear (shown once).
pub struct CreatedStream {
    pub stream: Stream,
    pub key: StreamKey,
    pub plaintext_key: String,
}

/// The result of checking a presented key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyCheck {
    Valid { stream: Stream, key_id: Uuid },
    Revoked { stream_id: Uuid, key_id: Uuid },
    Unknown,
}

#[async_trait]
pub trait StreamRepository: Send + Sync + 'static {
    async fn create_stream(&self, name: &str) -> Result<CreatedStream, CoreError>;
    async fn get_stream(&self, id: Uuid) -> Result<Option<Stream>, CoreError>;
    async fn list_streams(&self, status: Option<StreamStatus>) -> Result<Vec<Stream>, CoreError>;
    /// Moves a stream along the state machine; invalid moves are a typed error.
    async fn transition(
        &self,
        id: Uuid,
        to: StreamStatus,
        at: DateTime<Utc>,
    ) -> Result<Stream, CoreError>;
    async fn add_key(&self, stream_id: Uuid) -> Result<(StreamKey, String), CoreError>;
    async fn list_keys(&self, stream_id: Uuid) -> Result<Vec<StreamKey>, CoreError>;
    async fn revoke_key(&self, key_id: Uuid) -> Result<StreamKey, CoreError>;
    /// Revokes every key of a stream (what `keys revoke STREAM_ID` does).
    async fn revoke_stream_keys(&self, stream_id: Uuid) -> Result<u64, CoreError>;
    /// Finds the stream a presented key belongs to (constant-time hash check).
    async fn check_key(&self, presented: &str) -> Result<KeyCheck, CoreError>;
    async fn ping(&self) -> Result<(), CoreError>;
}

pub type DynRepository = Arc<dyn StreamRepository>;

/// Opens the repository named by a `DATABASE_URL` (`sqlite:` only for now).
pub async fn connect(url: &str) -> Result<DynRepository, CoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteRepository::connect(url).await?))
    } else {
        Err(CoreError::Invalid(format!(
            "unsupported DATABASE_URL scheme in {:?}; use sqlite:PATH",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
