//! streaming-core
