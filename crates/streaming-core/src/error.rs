//! Typed errors of the domain.

use uuid::Uuid;

use crate::model::StreamStatus;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error("stream {0} not found")]
    StreamNotFound(Uuid),
    #[error("stream key {0} not found")]
    KeyNotFound(Uuid),
    #[error("stream {stream_id}: invalid status transition {from} -> {to}")]
    InvalidTransition {
        stream_id: Uuid,
        from: StreamStatus,
        to: StreamStatus,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("database error: {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl CoreError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> CoreError {
        move |source| CoreError::Database { context, source }
    }
}
