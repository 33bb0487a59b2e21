//! streaming-transcode
