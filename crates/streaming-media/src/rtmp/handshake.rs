//! The RTMP handshake (RTMP 1.0 §5.2): C0/C1/C2 and S0/S1/S2.
//!
//! Both sides speak the plain handshake of §5.2.3–§5.2.4: a version byte (3),
//! then 1536 bytes of time (4), zero (4) and random data (1528), then an echo
//! of the peer's 1536 bytes.
//!
//! The Flash Player 9 "digest" (complex) handshake puts a non-zero version in
//! bytes 4..8 of C1 and an HMAC-SHA256 digest (keyed with the Genuine Adobe
//! Flash Player key) inside the random part. The server accepts such a C1
//! without validating the digest — this crate has no SHA-256 — and answers as
//! servers that do not validate do: S1 with a zero version field and S2 an
//! exact echo of C1. Publishing clients accept that: librtmp (OBS) falls back
//! to the plain handshake when S1's version field is zero, and FFmpeg only
//! validates S1/S2 when it plays, not when it publishes. An exact echo also
//! satisfies librtmp's plain-handshake comparison of S2 with C1.
//!
//! C2 is tolerated whatever it contains. Input may be split at any byte.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use bytes::{BufMut, BytesMut};

use super::RtmpError;

/// Size of C1, C2, S1 and S2 (RTMP 1.0 §5.2.3).
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only version this crate speaks (RTMP 1.0 §5.2.2).
pub const RTMP_VERSION: u8 = 3;
/// The version field FFmpeg puts in a digest C1 (Flash Player 9.0.124.2).
const FP9_VERSION: [u8; 4] = [9, 0, 124, 2];

fn check_version(version: u8) -> Result<(), RtmpError> {
    match version {
        RTMP_VERSION => Ok(()),
        6 | 8 => Err(RtmpError::EncryptedHandshake { version }),
        _ => Err(RtmpError::UnsupportedVersion { version }),
    }
}

/// Random bytes for C1/S1. Not security relevant; seeded from the OS through
/// `RandomState` so that no extra dependency is needed.
fn fill_random(buf: &mut [u8]) {
    let mut state = RandomState::new().build_hasher().finish() | 1;
    for chunk in buf.chunks_mut(8) {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

/// Write a C1/S1: time 0, the given version field, random bytes.
fn write_packet1(version_field: [u8; 4], out: &mut BytesMut) {
    let mut p = [0u8; HANDSHAKE_SIZE];
    p[4..8].copy_from_slice(&version_field);
    fill_random(&mut p[8..]);
    out.put_slice(&p);
}

/// Collects exactly `HANDSHAKE_SIZE` bytes across calls.
#[derive(Debug, Default)]
struct Collect(Vec<u8>);

impl Collect {
    /// Take what is needed from `data`; returns (bytes used, complete packet).
    fn feed<'a>(&'a mut self, data: &[u8]) -> (usize, Option<&'a [u8]>) {
        let want = HANDSHAKE_SIZE - self.0.len();
        let n = want.min(data.len());
        if self.0.capacity() == 0 {
            self.0.reserve_exact(HANDSHAKE_SIZE);
        }
        self.0.extend_from_slice(&data[..n]);
        let done = self.0.len() == HANDSHAKE_SIZE;
        (n, done.then_some(&self.0[..]))
    }
}

#[derive(Debug)]
enum ServerState {
    C0,
    C1(Collect),
    C2(Collect),
    Done,
}

/// Server side: reads C0, C1 (then writes S0, S1, S2), reads C2.
#[derive(Debug)]
pub(crate) struct ServerHandshake {
    state: ServerState,
}

impl ServerHandshake {
    pub(crate) fn new() -> Self {
        Self {
            state: ServerState::C0,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, ServerState::Done)
    }

    /// Consume handshake bytes from `data`, returning how many were used; bytes
    /// after C2 belong to the chunk stream.
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<usize, RtmpError> {
        let mut pos = 0;
        while pos < data.len() {
            match &mut self.state {
                ServerState::C0 => {
                    check_version(data[pos])?;
                    pos += 1;
                    self.state = ServerState::C1(Collect::default());
                }
                ServerState::C1(c) => {
                    let (n, c1) = c.feed(&data[pos..]);
                    pos += n;
                    if let Some(c1) = c1 {
                        out.reserve(1 + 2 * HANDSHAKE_SIZE);
                        out.put_u8(RTMP_VERSION);
                        write_packet1([0; 4], out);
                        out.put_slice(c1);
                        self.state = ServerState::C2(Collect::default());
                    }
                }
                ServerState::C2(c) => {
                    let (n, c2) = c.feed(&data[pos..]);
                    pos += n;
                    if c2.is_some() {
                        self.state = ServerState::Done;
                    }
                }
                ServerState::Done => break,
            }
        }
        Ok(pos)
    }
}

#[derive(Debug)]
enum ClientState {
    S0,
    S1(Collect),
    S2(Collect),
    Done,
}

/// Client side: writes C0+C1 at once, reads S0, S1 (then writes C2), reads S2.
#[derive(Debug)]
pub(crate) struct ClientHandshake {
    state: ClientState,
}

impl ClientHandshake {
    /// Start the handshake, writing C0 and C1 (with the FP9 version field when
    /// `digest_layout`; see the module docs about the digest).
    pub(crate) fn start(digest_layout: bool, out: &mut BytesMut) -> Self {
        out.reserve(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        write_packet1(if digest_layout { FP9_VERSION } else { [0; 4] }, out);
        Self {
            state: ClientState::S0,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }

    /// Consume handshake bytes; returns how many were used.
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<usize, RtmpError> {
        let mut pos = 0;
        while pos < data.len() {
            match &mut self.state {
                ClientState::S0 => {
                    check_version(data[pos])?;
                    pos += 1;
                    self.state = ClientState::S1(Collect::default());
                }
                ClientState::S1(c) => {
                    let (n, s1) = c.feed(&data[pos..]);
                    pos += n;
                    if let Some(s1) = s1 {
                        out.put_slice(s1);
                        self.state = ClientState::S2(Collect::default());
                    }
                }
                ClientState::S2(c) => {
                    let (n, s2) = c.feed(&data[pos..]);
                    pos += n;
                    if s2.is_some() {
                        self.state = ClientState::Done;
                    }
                }
                ClientState::Done => break,
            }
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_echoes_c1_and_accepts_any_c2() {
        let mut c1 = [7u8; HANDSHAKE_SIZE];
        c1[4..8].copy_from_slice(&FP9_VERSION);
        let mut out = BytesMut::new();
        let mut hs = ServerHandshake::new();
        // Byte by byte, to try every boundary.
        let mut input = vec![3u8];
        input.extend_from_slice(&c1);
        input.extend_from_slice(&[0xee; HANDSHAKE_SIZE]);
        input.extend_from_slice(b"rest");
        let mut used = 0;
        for b in &input {
            if hs.is_done() {
                break;
            }
            used += hs.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert!(hs.is_done());
        assert_eq!(used, 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..9], &[0; 8], "S1: time 0, zero version field");
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..], "S2 echoes C1");
    }

    #[test]
    fn versions() {
        let mut out = BytesMut::new();
        assert_eq!(
            ServerHandshake::new().feed(&[6], &mut out),
            Err(RtmpError::EncryptedHandshake { version: 6 })
        );
        assert_eq!(
            ServerHandshake::new().feed(&[0x16, 0x03], &mut out),
            Err(RtmpError::UnsupportedVersion { version: 0x16 })
        );
        assert!(out.is_empty());
        let mut c = ClientHandshake::start(false, &mut out);
        assert_eq!(out.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(
            c.feed(&[0x48], &mut out),
            Err(RtmpError::UnsupportedVersion { version: 0x48 })
        );
    }

    #[test]
    fn client_and_server_complete() {
        for digest in [false, true] {
            let mut c_out = BytesMut::new();
            let mut s_out = BytesMut::new();
            let mut client = ClientHandshake::start(digest, &mut c_out);
            assert_eq!(c_out[5..9] != [0; 4], digest);
            let mut server = ServerHandshake::new();
            let c0c1 = c_out.split();
            assert_eq!(server.feed(&c0c1, &mut s_out).unwrap(), c0c1.len());
            let s012 = s_out.split();
            assert_eq!(client.feed(&s012, &mut c_out).unwrap(), s012.len());
            assert!(client.is_done());
            assert_eq!(&c_out[..], &s012[1..1 + HANDSHAKE_SIZE], "C2 echoes S1");
            assert_eq!(&s012[1 + HANDSHAKE_SIZE..], &c0c1[1..], "S2 echoes C1");
            server.feed(&c_out, &mut s_out).unwrap();
            assert!(server.is_done());
        }
    }
}
