//! Low-Latency HLS viewers (RFC 8216bis): playlists with parts read by
//! [`playlist`], the next request chosen by [`next`], viewers that reload
//! with blocking requests and fetch the hinted part while it is produced
//! ([`viewer`]), and the held-request measurement ([`held`]).

pub mod next;
pub mod playlist;

pub mod held;
#[cfg(test)]
mod samples;
pub mod summary;
pub mod viewer;
