//! streaming-delivery
