//! The domain of the streaming server: models and the stream state machine,
//! configuration, events, repositories, the stream hub and the segment store.
//!
//! Nothing here speaks a wire protocol; `streaming-media` does that. The tokio
//! pieces here (hub, event bus, store) never hold a lock across `.await`.

pub mod config;
pub mod error;
pub mod events;
pub mod hub;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod recovery;
pub mod repo;
pub mod sessions;
pub mod status;
pub mod store;

pub use error::CoreError;
