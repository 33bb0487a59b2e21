//! Resource limits of the server session (issue 9, "RTMP"), byte by byte:
//! before a publish is accepted, messages ≤ 64 KiB (refused at the chunk
//! header), AMF0 values ≤ 1,024 and nesting ≤ 8 (refused while decoding, at
//! the first value over the limit), ≤ 4 messages in reassembly; after it,
//! the publishing limits; and one reassembly budget shared by sessions.

use std::time::Instant;

use streaming_media::amf0::{Amf0Error, Amf0Value, encode_all};
use streaming_media::rtmp::{
    HANDSHAKE_SIZE, ReassemblyBudget, RtmpError, RtmpLimit, ServerConfig, ServerEvent,
    ServerOutput, ServerSession, SessionLimits,
};

/// Connection offset of the first chunk after C0 + C1 + C2.
const FIRST_CHUNK: u64 = 1 + 2 * HANDSHAKE_SIZE as u64;

fn handshake() -> Vec<u8> {
    let mut v = vec![3];
    v.extend(std::iter::repeat_n(0, 2 * HANDSHAKE_SIZE));
    v
}

/// A type 0 chunk header on `csid` announcing `len` bytes of `type_id`.
fn header(csid: u8, type_id: u8, msid: u32, len: u32) -> Vec<u8> {
    let mut v = vec![csid, 0, 0, 0];
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&msid.to_le_bytes());
    v
}

/// A whole message: the header, then `body` in `chunk_size` chunks.
fn message(csid: u8, type_id: u8, msid: u32, body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut v = header(csid, type_id, msid, body.len() as u32);
    for (i, c) in body.chunks(chunk_size).enumerate() {
        if i > 0 {
            v.push(0xc0 | csid);
        }
        v.extend_from_slice(c);
    }
    v
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    message(2, 1, 0, &size.to_be_bytes(), 128)
}

fn command(csid: u8, msid: u32, values: &[Amf0Value]) -> Vec<u8> {
    message(csid, 20, msid, &encode_all(values), 128)
}

fn connect() -> Vec<u8> {
    let app = Amf0Value::Object(vec![("app".into(), "live".into())]);
    command(3, 0, &["connect".into(), 1.0.into(), app])
}

/// Feeds `data`, drains the output, accepts every requested publish.
fn feed(s: &mut ServerSession, data: &[u8]) -> Result<(), RtmpError> {
    let r = s.handle_input(Instant::now(), data);
    while let Some(o) = s.poll_output() {
        if let ServerOutput::Event(ServerEvent::PublishRequested { stream_id, .. }) = o {
            s.accept_publish(stream_id);
        }
    }
    r
}

fn after_handshake(config: ServerConfig) -> ServerSession {
    let mut s = ServerSession::new(config);
    feed(&mut s, &handshake()).unwrap();
    assert!(s.handshake_done());
    s
}

/// Handshake, connect, createStream, publish (accepted).
fn publishing(config: ServerConfig) -> ServerSession {
    let null = Amf0Value::Null;
    let mut s = after_handshake(config);
    let mut input = connect();
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
    feed(&mut s, &input).unwrap();
    assert!(s.publish_accepted());
    assert_eq!(s.limits(), SessionLimits::PUBLISHING);
    s
}

#[test]
fn eight_mib_of_nulls_before_connect_is_refused_at_its_header() {
    let budget = ReassemblyBudget::new(256 << 20);
    let config = ServerConfig {
        reassembly_budget: Some(budget.clone()),
        ..ServerConfig::default()
    };
    let mut s = after_handshake(config);
    assert_eq!(s.limits(), SessionLimits::PRE_PUBLISH);
    let h = header(3, 20, 0, 8 << 20);
    for (i, b) in h[..h.len() - 1].iter().enumerate() {
        assert_eq!(feed(&mut s, std::slice::from_ref(b)), Ok(()), "byte {i}");
    }
    let err = feed(&mut s, &h[h.len() - 1..]).unwrap_err();
    assert_eq!(
        err,
        RtmpError::MessageTooLarge {
            csid: 3,
            type_id: 20,
            length: 8 << 20,
            max: 64 * 1024,
            offset: FIRST_CHUNK
        }
    );
    assert_eq!(err.limit(), Some(RtmpLimit::MessageSize));
    assert_eq!(budget.used(), 0, "no payload byte was buffered");
    // Later bytes (the nulls) are not even looked at.
    assert_eq!(feed(&mut s, &[5; 4096]), Err(RtmpError::Closed));
}

#[test]
fn sixty_four_kib_of_nulls_fails_at_value_1025() {
    let nulls = vec![0x05u8; 64 * 1024];
    let mut s = after_handshake(ServerConfig::default());
    let mut input = set_chunk_size(65_536);
    input.extend(message(3, 20, 0, &nulls, 65_536));
    let err = feed(&mut s, &input).unwrap_err();
    assert_eq!(
        err,
        RtmpError::Amf {
            csid: 3,
            type_id: 20,
            msid: 0,
            offset: FIRST_CHUNK + 16,
            source: Amf0Error::TooManyValues {
                offset: 1024,
                max: 1024
            }
        }
    );
    assert_eq!(err.limit(), Some(RtmpLimit::AmfValues));
    // The same body is accepted (as a command that is not understood) with
    // 1,024 values, and with 64 Ki values once publishing.
    let mut s = after_handshake(ServerConfig::default());
    let mut ok = connect();
    ok.extend(message(
        3,
        20,
        0,
        &encode_all(&vec![Amf0Value::Null; 1024]),
        128,
    ));
    let r = feed(&mut s, &ok);
    assert!(
        matches!(r, Err(RtmpError::MalformedMessage { .. })),
        "1,024 values decode; only the missing command name is wrong: {r:?}"
    );
    let mut s = publishing(ServerConfig::default());
    let mut big = set_chunk_size(65_536);
    let mut body = encode_all(&["_result".into(), 0.0.into()]);
    body.extend_from_slice(&nulls[..60_000]);
    big.extend(message(3, 20, 0, &body, 65_536));
    assert_eq!(feed(&mut s, &big), Ok(()));
}

/// `connect` with an argument nested `depth` objects deep.
fn nested_connect(depth: usize) -> Vec<u8> {
    let mut body = encode_all(&["connect".into(), 1.0.into()]);
    let app = encode_all(&[Amf0Value::Object(vec![("app".into(), "live".into())])]);
    body.extend_from_slice(&app);
    for _ in 0..depth {
        body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    body.push(0x05);
    for _ in 0..depth {
        body.extend_from_slice(&[0x00, 0x00, 0x09]);
    }
    message(3, 20, 0, &body, 128)
}

#[test]
fn nesting_deeper_than_eight_before_publish_fails() {
    let mut s = after_handshake(ServerConfig::default());
    assert_eq!(feed(&mut s, &nested_connect(8)), Ok(()));
    let mut s = after_handshake(ServerConfig::default());
    let err = feed(&mut s, &nested_connect(9)).unwrap_err();
    // "connect" (10 bytes), 1.0 (9), {app: "live"} (16), then 8 levels of
    // 4 bytes: the 9th object starts at 35 + 32 = 67.
    assert!(
        matches!(
            err,
            RtmpError::Amf {
                csid: 3,
                source: Amf0Error::TooDeep { offset: 67, max: 8 },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.limit(), Some(RtmpLimit::AmfDepth));
    // Once publishing, nesting up to 32 is fine.
    let mut s = publishing(ServerConfig::default());
    let mut body = encode_all(&["onStatus".into(), 0.0.into(), Amf0Value::Null]);
    for _ in 0..31 {
        body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    body.push(0x05);
    body.extend(std::iter::repeat_n([0x00, 0x00, 0x09], 31).flatten());
    assert_eq!(feed(&mut s, &message(3, 20, 0, &body, 128)), Ok(()));
}

#[test]
fn fifth_message_in_reassembly_before_publish_fails() {
    // Four 200-byte messages with only their first 128-byte chunk sent.
    let mut input = Vec::new();
    for csid in 4..8u8 {
        input.extend(header(csid, 9, 1, 200));
        input.extend_from_slice(&[0; 128]);
    }
    let fifth_at = FIRST_CHUNK + input.len() as u64;
    let mut s = after_handshake(ServerConfig::default());
    assert_eq!(feed(&mut s, &input), Ok(()));
    let err = feed(&mut s, &header(8, 9, 1, 200)).unwrap_err();
    assert_eq!(
        err,
        RtmpError::TooManyPartialMessages {
            csid: 8,
            max: 4,
            offset: fifth_at
        }
    );
    assert_eq!(err.limit(), Some(RtmpLimit::PartialMessages));
    // Publishing: 16 are allowed.
    let mut s = publishing(ServerConfig::default());
    let mut input = Vec::new();
    for csid in 10..26u8 {
        input.extend(header(csid, 9, 1, 200));
        input.extend_from_slice(&[0; 128]);
    }
    assert_eq!(feed(&mut s, &input), Ok(()));
    assert!(matches!(
        feed(&mut s, &header(26, 9, 1, 200)),
        Err(RtmpError::TooManyPartialMessages { max: 16, .. })
    ));
}

#[test]
fn large_media_is_refused_before_publish_and_accepted_after() {
    let video = vec![0x17u8; 1 << 20];
    let mut s = after_handshake(ServerConfig::default());
    let mut input = connect();
    input.extend(message(6, 9, 1, &video, 128));
    assert!(matches!(
        feed(&mut s, &input),
        Err(RtmpError::MessageTooLarge {
            length: 0x10_0000,
            max: 65_536,
            ..
        })
    ));
    let mut s = publishing(ServerConfig::default());
    s.handle_input(Instant::now(), &message(6, 9, 1, &video, 128))
        .unwrap();
    let mut frames = 0;
    while let Some(o) = s.poll_output() {
        if let ServerOutput::Event(ServerEvent::Media(f)) = o {
            assert_eq!(f.data.len(), 1 << 20);
            frames += 1;
        }
    }
    assert_eq!(frames, 1);
}

/// A `connect` whose last argument is a string: `len` bytes in all.
fn connect_of_len(len: usize) -> Vec<u8> {
    let mut body = encode_all(&["connect".into(), 1.0.into()]);
    let app = encode_all(&[Amf0Value::Object(vec![("app".into(), "live".into())])]);
    body.extend_from_slice(&app);
    let pad = len - body.len() - 3;
    body.extend(encode_all(&[Amf0Value::String("x".repeat(pad))]));
    assert_eq!(body.len(), len);
    body
}

#[test]
fn sessions_share_one_reassembly_budget() {
    let budget = ReassemblyBudget::new(80_000);
    let config = ServerConfig {
        reassembly_budget: Some(budget.clone()),
        ..ServerConfig::default()
    };
    let big = [
        set_chunk_size(65_536),
        message(3, 20, 0, &connect_of_len(60_000), 65_536),
    ]
    .concat();
    // Stop 10,000 bytes before the end of the big connect.
    let cut = big.len() - 10_000;
    let mut first = after_handshake(config.clone());
    assert_eq!(feed(&mut first, &big[..cut]), Ok(()));
    let held = budget.used();
    assert_eq!(held, 50_000, "the first session holds what arrived");

    // The second session's 40,000-byte message does not fit beside it.
    let other = [
        set_chunk_size(65_536),
        message(3, 20, 0, &connect_of_len(40_000), 65_536),
    ]
    .concat();
    let mut second = after_handshake(config.clone());
    let err = feed(&mut second, &other).unwrap_err();
    assert_eq!(
        err,
        RtmpError::ReassemblyBudget {
            csid: 3,
            requested: 40_000,
            used: held,
            limit: 80_000,
            offset: FIRST_CHUNK + 16
        }
    );
    assert_eq!(err.limit(), Some(RtmpLimit::ReassemblyBudget));
    drop(second);
    assert_eq!(budget.used(), held, "the refused session charged nothing");

    // The first completes its message: the bytes go back and a new
    // session's message fits.
    assert_eq!(feed(&mut first, &big[cut..]), Ok(()));
    assert_eq!(budget.used(), 0);
    let mut third = after_handshake(config.clone());
    assert_eq!(feed(&mut third, &other), Ok(()));

    // A session dropped mid-message gives its bytes back too.
    let mut fourth = after_handshake(config.clone());
    assert_eq!(feed(&mut fourth, &big[..cut]), Ok(()));
    assert_eq!(budget.used(), held);
    let mut fifth = after_handshake(config.clone());
    assert!(feed(&mut fifth, &other).is_err());
    drop(fourth);
    assert_eq!(budget.used(), 0);
    let mut sixth = after_handshake(config);
    assert_eq!(feed(&mut sixth, &other), Ok(()));
    drop((third, sixth));
    // A failed session gives its bytes back at once, before it is dropped:
    // 128 of a 200-byte message, then a chunk on a stream never seen.
    let mut seventh = after_handshake(ServerConfig {
        reassembly_budget: Some(budget.clone()),
        ..ServerConfig::default()
    });
    let mut partial = header(4, 9, 1, 200);
    partial.extend_from_slice(&[0; 128]);
    assert_eq!(feed(&mut seventh, &partial), Ok(()));
    assert_eq!(budget.used(), 200);
    assert!(matches!(
        feed(&mut seventh, &[0xc9]),
        Err(RtmpError::NoPreviousHeader { csid: 9, .. })
    ));
    assert_eq!(budget.used(), 0);
}
