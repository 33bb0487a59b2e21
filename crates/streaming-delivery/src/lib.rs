//! Delivery: the packager tasks that turn hub frames into CMAF segments (made
//! once, stored in the [`SegmentStore`](streaming_core::store::SegmentStore)),
//! and the HTTP handlers that serve them as HLS (RFC 8216bis) and MPEG-DASH
//! (ISO/IEC 23009-1), plus the watch page.

pub mod assets;
pub mod collector;
pub mod http;
pub mod live;
pub mod packaging;
pub mod publish;
pub mod sessions;

pub use collector::task::{CollectorDeps, spawn_collector};
pub use http::{DeliveryState, router};
pub use live::LiveFeed;
pub use packaging::spawn_packagers;
