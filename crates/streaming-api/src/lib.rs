//! streaming-api
