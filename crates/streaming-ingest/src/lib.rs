//! streaming-ingest
