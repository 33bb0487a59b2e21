//! Hostile and broken input: every case ends in `Ok` (more input needed) or a
//! typed `Err`, never a panic, and a failed session stays failed.

use std::time::Instant;

use proptest::prelude::*;
use streaming_media::amf0::{Amf0Error, Amf0Value, encode_all};
use streaming_media::rtmp::{
    ClientConfig, ClientSession, HANDSHAKE_SIZE, RtmpError, ServerConfig, ServerOutput,
    ServerSession, SessionLimits,
};

fn handshake_bytes() -> Vec<u8> {
    let mut v = vec![3];
    v.extend(std::iter::repeat_n(0, 2 * HANDSHAKE_SIZE));
    v
}

fn chunks(csid: u8, type_id: u8, msid: u32, body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut v = vec![csid, 0, 0, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&msid.to_le_bytes());
    for (i, c) in body.chunks(chunk_size).enumerate() {
        if i > 0 {
            v.push(0xc0 | csid);
        }
        v.extend_from_slice(c);
    }
    v
}

fn command(csid: u8, msid: u32, values: &[Amf0Value]) -> Vec<u8> {
    chunks(csid, 0x14, msid, &encode_all(values), 128)
}

fn drain(s: &mut ServerSession) -> usize {
    let mut n = 0;
    while s.poll_output().is_some() {
        n += 1;
    }
    n
}

fn server_with(config: ServerConfig, input: &[u8]) -> ServerSession {
    let mut s = ServerSession::new(config);
    s.handle_input(Instant::now(), input).unwrap();
    drain(&mut s);
    s
}

/// A server after handshake, connect, createStream and an accepted publish.
fn publishing_server() -> ServerSession {
    let null = Amf0Value::Null;
    let mut input = handshake_bytes();
    let app = Amf0Value::Object(vec![("app".into(), "live".into())]);
    input.extend(command(3, 0, &["connect".into(), 1.0.into(), app]));
    input.extend(command(
        3,
        0,
        &["createStream".into(), 2.0.into(), null.clone()],
    ));
    input.extend(command(
        8,
        1,
        &["publish".into(), 3.0.into(), null, "k".into()],
    ));
    let mut s = server_with(ServerConfig::default(), &input);
    s.accept_publish(1);
    drain(&mut s);
    s
}

fn feed(s: &mut ServerSession, data: &[u8]) -> Result<(), RtmpError> {
    let r = s.handle_input(Instant::now(), data);
    drain(s);
    r
}

#[test]
fn truncated_handshakes_just_wait() {
    let hs = handshake_bytes();
    for k in 0..hs.len() {
        let mut s = ServerSession::new(ServerConfig::default());
        assert_eq!(feed(&mut s, &hs[..k]), Ok(()), "{k} bytes");
    }
    let mut c = ClientSession::new(ClientConfig::new("rtmp://h/live", "live", "k"));
    for b in &hs[..hs.len() - 1] {
        c.handle_input(Instant::now(), std::slice::from_ref(b))
            .unwrap();
    }
}

#[test]
fn bad_versions() {
    let mut s = ServerSession::new(ServerConfig::default());
    assert_eq!(
        feed(&mut s, &[6]),
        Err(RtmpError::EncryptedHandshake { version: 6 })
    );
    assert_eq!(feed(&mut s, &handshake_bytes()), Err(RtmpError::Closed));
    let mut s = ServerSession::new(ServerConfig::default());
    // A TLS ClientHello on the plain RTMP port.
    assert_eq!(
        feed(&mut s, &[0x16, 0x03, 0x01]),
        Err(RtmpError::UnsupportedVersion { version: 0x16 })
    );
    let mut c = ClientSession::new(ClientConfig::new("rtmp://h/live", "live", "k"));
    assert_eq!(
        c.handle_input(Instant::now(), b"HTTP/1.1 400"),
        Err(RtmpError::UnsupportedVersion { version: b'H' })
    );
}

#[test]
fn chunk_size_zero_and_top_bit() {
    for size in [0u32, 0x8000_0000, u32::MAX] {
        let mut s = server_with(ServerConfig::default(), &handshake_bytes());
        let r = feed(&mut s, &chunks(2, 1, 0, &size.to_be_bytes(), 128));
        assert_eq!(r, Err(RtmpError::InvalidChunkSize { size, offset: 3073 }));
    }
    let mut s = server_with(ServerConfig::default(), &handshake_bytes());
    assert!(matches!(
        feed(&mut s, &chunks(2, 1, 0, &[0, 1], 128)),
        Err(RtmpError::MalformedMessage {
            type_id: 1,
            length: 2,
            ..
        })
    ));
    let config = ServerConfig {
        max_in_chunk_size: 65536,
        ..ServerConfig::default()
    };
    let mut s = server_with(config, &handshake_bytes());
    assert!(matches!(
        feed(&mut s, &chunks(2, 1, 0, &65537u32.to_be_bytes(), 128)),
        Err(RtmpError::ChunkSizeTooLarge {
            size: 65537,
            max: 65536,
            ..
        })
    ));
}

#[test]
fn largest_chunk_size_is_accepted_but_lengths_stay_bounded() {
    let mut s = publishing_server();
    feed(&mut s, &chunks(2, 1, 0, &0x7fff_ffffu32.to_be_bytes(), 128)).unwrap();
    // A 1000-byte message is a single chunk now.
    feed(&mut s, &chunks(6, 9, 1, &[0x17; 1000], 1000)).unwrap();
    // A header announcing 16 MiB - 1 is refused before any payload arrives.
    let r = feed(&mut s, &[0x06, 0, 0, 0, 0xff, 0xff, 0xff, 0x09, 1, 0, 0, 0]);
    assert!(matches!(
        r,
        Err(RtmpError::MessageTooLarge {
            csid: 6,
            type_id: 9,
            length: 0xff_ffff,
            max: 0x80_0000,
            ..
        })
    ));
}

#[test]
fn message_longer_than_configured_max() {
    let config = ServerConfig {
        publishing: SessionLimits {
            max_message_len: 1000,
            ..SessionLimits::PUBLISHING
        },
        ..ServerConfig::default()
    };
    let mut s = server_with(config, &handshake_bytes());
    assert_eq!(
        feed(&mut s, &chunks(6, 9, 1, &[0; 1001], 128)),
        Err(RtmpError::MessageTooLarge {
            csid: 6,
            type_id: 9,
            length: 1001,
            max: 1000,
            offset: 3073
        })
    );
}

#[test]
fn unknown_and_unsupported_message_types() {
    for type_id in [0u8, 7, 10, 11, 12, 13, 14, 21, 23, 255] {
        let mut s = server_with(ServerConfig::default(), &handshake_bytes());
        assert_eq!(
            feed(&mut s, &chunks(5, type_id, 1, &[1, 2, 3], 128)),
            Err(RtmpError::UnknownMessageType {
                csid: 5,
                type_id,
                msid: 1
            })
        );
    }
    for type_id in [16u8, 19] {
        let mut s = server_with(ServerConfig::default(), &handshake_bytes());
        assert_eq!(
            feed(&mut s, &chunks(5, type_id, 0, &[1], 128)),
            Err(RtmpError::UnsupportedMessageType {
                csid: 5,
                type_id,
                msid: 0
            })
        );
    }
}

#[test]
fn malformed_amf() {
    let cases: &[&[u8]] = &[
        &[0x02, 0x00, 0x10, b'a'],          // string longer than the body
        &[0x02, 0x00, 0x01, b'x', 0x11],    // AMF3 switch marker
        &[0x02, 0x00, 0x02, 0xff, 0xfe],    // invalid UTF-8
        &[0x09],                            // object end as a value
        &[0x02, 0x00, 0x01, b'x', 0x00, 1], // truncated number
    ];
    for body in cases {
        let mut s = server_with(ServerConfig::default(), &handshake_bytes());
        assert!(
            matches!(
                feed(&mut s, &chunks(3, 0x14, 0, body, 128)),
                Err(RtmpError::Amf {
                    csid: 3,
                    type_id: 0x14,
                    ..
                })
            ),
            "{body:02x?}"
        );
    }
    // A command whose name is not a string.
    let mut s = server_with(ServerConfig::default(), &handshake_bytes());
    assert!(matches!(
        feed(&mut s, &chunks(3, 0x14, 0, &[0x05, 0x05], 128)),
        Err(RtmpError::MalformedMessage { .. })
    ));
    // Broken @setDataFrame on a publishing stream.
    let mut s = publishing_server();
    assert!(matches!(
        feed(&mut s, &chunks(5, 0x12, 1, &[0x02, 0, 9, b'@'], 128)),
        Err(RtmpError::Amf { type_id: 0x12, .. })
    ));
}

#[test]
fn amf_nested_ten_thousand_deep() {
    let mut body = encode_all(&["connect".into(), 1.0.into()]);
    for _ in 0..10_000 {
        body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    body.push(0x05);
    // Before publish the pre-publish nesting limit (8) refuses it.
    let mut s = server_with(ServerConfig::default(), &handshake_bytes());
    let r = feed(&mut s, &chunks(3, 0x14, 0, &body, 128));
    assert!(
        matches!(
            r,
            Err(RtmpError::Amf {
                source: Amf0Error::TooDeep { max: 8, .. },
                ..
            })
        ),
        "{r:?}"
    );
    // While publishing, the decoder's own bound (32).
    let mut s = publishing_server();
    let r = feed(&mut s, &chunks(3, 0x14, 0, &body, 128));
    assert!(
        matches!(
            r,
            Err(RtmpError::Amf {
                source: Amf0Error::TooDeep { max: 32, .. },
                ..
            })
        ),
        "{r:?}"
    );
}

/// xorshift64*: deterministic "random" bytes without a dependency.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn random_bytes_after_publish() {
    let mut errors = 0;
    for seed in 0..300u64 {
        let mut s = publishing_server();
        let data = noise(seed, 4096);
        // Whole, then (on a fresh session) in odd pieces.
        if feed(&mut s, &data).is_err() {
            errors += 1;
            assert_eq!(feed(&mut s, &data), Err(RtmpError::Closed));
        }
        let mut s = publishing_server();
        for piece in data.chunks(1 + seed as usize % 97) {
            if feed(&mut s, piece).is_err() {
                break;
            }
        }
    }
    assert!(errors > 250, "noise is almost always rejected: {errors}");
}

#[test]
fn error_after_reply_still_drains() {
    // A valid connect followed by garbage in the same read: the connect
    // replies are still there to send after the error.
    let app = Amf0Value::Object(vec![("app".into(), "live".into())]);
    let mut input = handshake_bytes();
    input.extend(command(3, 0, &["connect".into(), 1.0.into(), app]));
    input.extend_from_slice(&[0xc9]); // type 3 on a chunk stream never seen
    let mut s = ServerSession::new(ServerConfig::default());
    assert!(matches!(
        s.handle_input(Instant::now(), &input),
        Err(RtmpError::NoPreviousHeader {
            csid: 9,
            fmt: 3,
            ..
        })
    ));
    let mut transmitted = 0;
    while let Some(o) = s.poll_output() {
        if let ServerOutput::Transmit(b) = o {
            transmitted += b.len();
        }
    }
    assert!(transmitted > 1 + 2 * HANDSHAKE_SIZE);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_after_handshake_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        split in 1usize..64,
    ) {
        let mut s = server_with(ServerConfig::default(), &handshake_bytes());
        for piece in data.chunks(split) {
            if feed(&mut s, piece).is_err() {
                break;
            }
        }
    }

    #[test]
    fn random_bytes_from_the_start_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut s = ServerSession::new(ServerConfig::default());
        let _ = feed(&mut s, &data);
        let mut c = ClientSession::new(ClientConfig::new("rtmp://h/live", "live", "k"));
        let _ = c.handle_input(Instant::now(), &data);
        while c.poll_output().is_some() {}
    }

    /// A valid publish conversation with a few bytes changed.
    #[test]
    fn mutated_conversation_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let null = Amf0Value::Null;
        let mut input = handshake_bytes();
        let app = Amf0Value::Object(vec![("app".into(), "live".into()), ("tcUrl".into(), "rtmp://h/live".into())]);
        input.extend(command(3, 0, &["connect".into(), 1.0.into(), app]));
        input.extend(chunks(2, 1, 0, &64u32.to_be_bytes(), 128));
        input.extend(command(3, 0, &["createStream".into(), 2.0.into(), null.clone()]));
        input.extend(command(8, 1, &["publish".into(), 3.0.into(), null.clone(), "k".into()]));
        input.extend(chunks(6, 9, 1, &[0x17; 300], 64));
        input.extend(chunks(4, 8, 1, &[0xaf; 100], 64));
        input.extend(chunks(6, 22, 1, &[9, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x17, 1, 0, 0, 0, 13], 64));
        input.extend(command(3, 0, &["deleteStream".into(), 4.0.into(), null, 1.0.into()]));
        let start = 1 + 2 * HANDSHAKE_SIZE;
        for (i, b) in flips {
            let at = start + i.index(input.len() - start);
            input[at] = b;
        }
        let mut s = ServerSession::new(ServerConfig::default());
        for piece in input.chunks(100) {
            if s.handle_input(Instant::now(), piece).is_err() {
                break;
            }
            while let Some(o) = s.poll_output() {
                if let ServerOutput::Event(streaming_media::rtmp::ServerEvent::PublishRequested { stream_id, .. }) = o {
                    s.accept_publish(stream_id);
                }
            }
        }
    }
}
