//! Hand-built chunk streams, independent of the encoder.

use super::*;

const MAX: u32 = 8 << 20;

fn decode_all(d: &mut ChunkDecoder, data: &[u8]) -> Result<Vec<RawMessage>, RtmpError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let (n, m) = d.decode(&data[pos..])?;
        pos += n;
        out.extend(m);
    }
    Ok(out)
}

/// Decode `data` whole, byte by byte and split at every point; all must agree.
fn decode_split(data: &[u8]) -> Vec<RawMessage> {
    let whole = decode_all(&mut ChunkDecoder::new(MAX, 0), data).unwrap();
    let mut d = ChunkDecoder::new(MAX, 0);
    let mut bytewise = Vec::new();
    for b in data {
        bytewise.extend(decode_all(&mut d, std::slice::from_ref(b)).unwrap());
    }
    assert_eq!(bytewise, whole);
    for k in 0..data.len() {
        let mut d = ChunkDecoder::new(MAX, 0);
        let mut v = decode_all(&mut d, &data[..k]).unwrap();
        v.extend(decode_all(&mut d, &data[k..]).unwrap());
        assert_eq!(v, whole, "split at {k}");
    }
    whole
}

fn ts_of(msgs: &[RawMessage]) -> Vec<u32> {
    msgs.iter().map(|m| m.timestamp).collect()
}

#[test]
fn header_types_and_deltas() {
    let mut s = vec![
        // fmt 0, csid 4: ts 1000, len 3, type 8, msid 1 (little endian)
        0x04, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x03, 0x08, 0x01, 0x00, 0x00, 0x00, b'a', b'b', b'c',
        // fmt 1: delta 20, len 2, type 8
        0x44, 0x00, 0x00, 0x14, 0x00, 0x00, 0x02, 0x08, b'd', b'e', // fmt 2: delta 30
        0x84, 0x00, 0x00, 0x1e, b'f', b'g', // fmt 3: new message, delta 30 again
        0xc4, b'h', b'i',
    ];
    // fmt 3 right after fmt 0 on csid 5: the delta is the type 0 timestamp.
    s.extend_from_slice(&[0x05, 0, 0, 10, 0, 0, 1, 9, 1, 0, 0, 0, b'x', 0xc5, b'y']);
    let m = decode_split(&s);
    assert_eq!(ts_of(&m), [1000, 1020, 1050, 1080, 10, 20]);
    assert_eq!(&m[0].payload[..], b"abc");
    assert_eq!((m[0].csid, m[0].type_id, m[0].msid), (4, 8, 1));
    assert_eq!(&m[3].payload[..], b"hi");
    assert_eq!(m[1].offset, 15);
}

#[test]
fn csid_forms_and_continuations() {
    // 2-byte form: csid 64 + 10 = 74; 3-byte form: 64 + 1 + 2*256 = 577.
    // Message of 200 bytes at chunk size 128: one continuation each.
    let body: Vec<u8> = (0..200u8).collect();
    let mut s = vec![0x00, 10, 0, 0, 5, 0, 0, 200, 9, 0, 0, 0, 0];
    s.extend_from_slice(&body[..128]);
    // Interleave a one-chunk message on csid 577 before the continuation.
    s.extend_from_slice(&[0x01, 1, 2, 0, 0, 7, 0, 0, 1, 8, 0, 0, 0, 0, 0xaa]);
    s.extend_from_slice(&[0xc0, 10]);
    s.extend_from_slice(&body[128..]);
    let m = decode_split(&s);
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].csid, m[0].timestamp, &m[0].payload[..]),
        (577, 7, &[0xaa][..])
    );
    assert_eq!(
        (m[1].csid, m[1].timestamp, &m[1].payload[..]),
        (74, 5, &body[..])
    );
}

#[test]
fn extended_timestamps_on_continuations_and_new_messages() {
    let mut s = Vec::new();
    // fmt 0 ts 0x01000000 (extended), len 130 → continuation carries ext too.
    s.extend_from_slice(&[
        0x06, 0xff, 0xff, 0xff, 0, 0, 130, 9, 1, 0, 0, 0, 0x01, 0, 0, 0,
    ]);
    s.extend_from_slice(&[1; 128]);
    s.extend_from_slice(&[0xc6, 0x01, 0, 0, 0, 2, 2]);
    // fmt 2 with extended delta 0x01000000, len 130 again.
    s.extend_from_slice(&[0x86, 0xff, 0xff, 0xff, 0x01, 0, 0, 0]);
    s.extend_from_slice(&[3; 128]);
    s.extend_from_slice(&[0xc6, 0x01, 0, 0, 0, 4, 4]);
    // fmt 3 new message: its extended field is the delta.
    s.extend_from_slice(&[0xc6, 0x01, 0, 0, 0]);
    s.extend_from_slice(&[5; 128]);
    s.extend_from_slice(&[0xc6, 0x01, 0, 0, 0, 6, 6]);
    let m = decode_split(&s);
    assert_eq!(ts_of(&m), [0x0100_0000, 0x0200_0000, 0x0300_0000]);
    assert!(m.iter().all(|m| m.payload.len() == 130));
    assert_eq!(m[2].payload[129], 6);
}

#[test]
fn negative_delta_wraps() {
    // librtmp computes `t = ts - last` in 32 bits: time going back by 12 ms on
    // a chunk stream is a huge extended delta that wraps around.
    let s = [
        0x04, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, 1, // ts 100
        0x44, 0xff, 0xff, 0xff, 0, 0, 1, 9, 0xff, 0xff, 0xff, 0xf4, 2, // -12
        0x44, 0, 0, 20, 0, 0, 1, 8, 3, // +20
    ];
    assert_eq!(ts_of(&decode_split(&s)), [100, 88, 108]);
}

#[test]
fn timestamp_just_below_extended_is_not_extended() {
    let s = [0x04, 0xff, 0xff, 0xfe, 0, 0, 1, 8, 1, 0, 0, 0, 7];
    assert_eq!(ts_of(&decode_split(&s)), [0xff_fffe]);
}

#[test]
fn zero_length_message_and_type1_without_history() {
    // librtmp's first Acknowledgement: type 1 header on csid 2.
    let s = [
        0x42, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0x10, 0, // Acknowledgement 4096
        0x04, 0, 0, 0, 0, 0, 0, 8, 1, 0, 0, 0, // empty audio message
    ];
    let m = decode_split(&s);
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].csid, m[0].type_id, m[0].msid), (2, 3, 0));
    assert!(m[1].payload.is_empty());
}

#[test]
fn errors_carry_context() {
    let mut d = ChunkDecoder::new(100, 3073);
    assert_eq!(
        decode_all(&mut d, &[0x04, 0, 0, 0, 0, 0, 101, 9, 1, 0, 0, 0]),
        Err(RtmpError::MessageTooLarge {
            csid: 4,
            type_id: 9,
            length: 101,
            max: 100,
            offset: 3073
        })
    );
    let mut d = ChunkDecoder::new(100, 0);
    assert_eq!(
        decode_all(&mut d, &[0xc7]),
        Err(RtmpError::NoPreviousHeader {
            csid: 7,
            fmt: 3,
            offset: 0
        })
    );
    let mut d = ChunkDecoder::new(100, 0);
    assert!(matches!(
        decode_all(&mut d, &[0x87, 0, 0, 0]),
        Err(RtmpError::NoPreviousHeader {
            csid: 7,
            fmt: 2,
            ..
        })
    ));
    // A type 1 header in the middle of a 200-byte message.
    let mut d = ChunkDecoder::new(1000, 0);
    let mut s = vec![0x04, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
    s.extend_from_slice(&[0; 128]);
    s.extend_from_slice(&[0x44, 0, 0, 0, 0, 0, 1, 8]);
    assert_eq!(
        decode_all(&mut d, &s),
        Err(RtmpError::InterruptedMessage {
            csid: 4,
            fmt: 1,
            received: 128,
            length: 200,
            offset: 140
        })
    );
}

#[test]
fn partial_and_stream_limits() {
    let mut d = ChunkDecoder::new(MAX, 0);
    d.set_chunk_size(1);
    let mut s = Vec::new();
    for c in 0..=MAX_PARTIAL_MESSAGES as u8 {
        s.extend_from_slice(&[0x00, c, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0, 0]);
    }
    assert!(matches!(
        decode_all(&mut d, &s),
        Err(RtmpError::TooManyPartialMessages {
            max: MAX_PARTIAL_MESSAGES,
            ..
        })
    ));
    let mut d = ChunkDecoder::new(MAX, 0);
    let mut s = Vec::new();
    for c in 0..=MAX_CHUNK_STREAMS as u16 {
        let [lo, hi] = c.to_le_bytes();
        s.extend_from_slice(&[0x01, lo, hi, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0]);
    }
    assert!(matches!(
        decode_all(&mut d, &s),
        Err(RtmpError::TooManyChunkStreams {
            max: MAX_CHUNK_STREAMS,
            ..
        })
    ));
}

#[test]
fn abort_drops_the_partial_message() {
    let mut d = ChunkDecoder::new(MAX, 0);
    let mut s = vec![0x04, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
    s.extend_from_slice(&[0; 128]);
    assert!(decode_all(&mut d, &s).unwrap().is_empty());
    d.abort(4);
    // A fresh message on the same chunk stream may now start with type 0.
    let m = decode_all(&mut d, &[0x04, 0, 0, 1, 0, 0, 1, 9, 1, 0, 0, 0, 5]).unwrap();
    assert_eq!(&m[0].payload[..], &[5]);
}

#[test]
fn large_chunk_size_does_not_preallocate() {
    let mut d = ChunkDecoder::new(MAX, 0);
    d.set_chunk_size(0x7fff_ffff);
    // 8 MiB announced, 10 bytes sent.
    let mut s = vec![0x04, 0, 0, 0, 0x80, 0, 0, 9, 1, 0, 0, 0];
    s.extend_from_slice(&[0; 10]);
    assert!(decode_all(&mut d, &s).unwrap().is_empty());
    let cap = d.streams[0].partial.as_ref().unwrap().capacity();
    assert!(cap <= MIN_ALLOC, "capacity {cap}");
}

#[test]
fn reassembled_buffer_is_exact() {
    // A 100 000-byte message fed in 1000-byte pieces ends with capacity == length.
    let len = 100_000u32;
    let mut s = vec![0x06, 0, 0, 0];
    s.extend_from_slice(&len.to_be_bytes()[1..]);
    s.extend_from_slice(&[9, 1, 0, 0, 0]);
    let mut d = ChunkDecoder::new(MAX, 0);
    d.set_chunk_size(len);
    s.extend((0..len).map(|i| i as u8));
    let mut got = Vec::new();
    for piece in s.chunks(1000) {
        got.extend(decode_all(&mut d, piece).unwrap());
    }
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.len(), len as usize);
    assert_eq!(got[0].payload[99_999], (99_999u32) as u8);
}

/// The header of a type 0 chunk on `csid` announcing a `len`-byte video message.
fn video_header(csid: u8, len: u32) -> Vec<u8> {
    let mut v = vec![csid, 0, 0, 0];
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.extend_from_slice(&[9, 1, 0, 0, 0]);
    v
}

#[test]
fn fifth_partial_message_fails_with_a_limit_of_four() {
    let mut d = ChunkDecoder::new(MAX, 0);
    d.set_limits(MAX, 4);
    // Four messages of 200 bytes, each with its first 128-byte chunk only.
    let mut s = Vec::new();
    for csid in 3..7u8 {
        s.extend(video_header(csid, 200));
        s.extend_from_slice(&[0; 128]);
    }
    assert!(decode_all(&mut d, &s).unwrap().is_empty());
    let fifth_at = s.len() as u64;
    assert_eq!(
        decode_all(&mut d, &video_header(7, 200)),
        Err(RtmpError::TooManyPartialMessages {
            csid: 7,
            max: 4,
            offset: fifth_at
        })
    );
    // With one of the four finished, a fifth message may start.
    let mut d = ChunkDecoder::new(MAX, 0);
    d.set_limits(MAX, 4);
    assert!(decode_all(&mut d, &s).unwrap().is_empty());
    let mut rest = vec![0xc3];
    rest.extend_from_slice(&[0; 72]);
    assert_eq!(decode_all(&mut d, &rest).unwrap().len(), 1);
    let mut fifth = video_header(7, 2);
    fifth.extend_from_slice(&[1, 2]);
    assert_eq!(decode_all(&mut d, &fifth).unwrap().len(), 1);
}

#[test]
fn message_length_limit_is_checked_at_the_header() {
    let mut d = ChunkDecoder::new(MAX, 3073);
    d.set_limits(64 * 1024, 4);
    let mut h = video_header(3, 8 << 20);
    h[7] = 20; // an AMF0 command
    // Eleven header bytes: waiting; the twelfth completes it and is refused.
    assert!(decode_all(&mut d, &h[..11]).unwrap().is_empty());
    assert_eq!(
        decode_all(&mut d, &h[11..]),
        Err(RtmpError::MessageTooLarge {
            csid: 3,
            type_id: 20,
            length: 8 << 20,
            max: 64 * 1024,
            offset: 3073
        })
    );
    assert!(d.streams[0].partial.is_none(), "no payload was buffered");
    let mut d = ChunkDecoder::new(MAX, 0);
    d.set_limits(64 * 1024, 4);
    let mut ok = video_header(3, 64 * 1024);
    ok.extend_from_slice(&[0; 16]);
    assert!(
        decode_all(&mut d, &ok).unwrap().is_empty(),
        "64 KiB is allowed"
    );
}

#[test]
fn decoders_sharing_a_budget() {
    let budget = ReassemblyBudget::new(6500);
    let mut a = ChunkDecoder::new(MAX, 0);
    a.set_budget(Some(budget.clone()));
    a.set_chunk_size(10_000);
    // A: 6,000 of a 6,400-byte message.
    let mut s = video_header(4, 6400);
    s.extend(std::iter::repeat_n(7, 6000));
    assert!(decode_all(&mut a, &s).unwrap().is_empty());
    let held = budget.used();
    assert_eq!(held, 6000, "A holds what arrived");
    // B: a 1,000-byte message does not fit next to it.
    let mut b = ChunkDecoder::new(MAX, 0);
    b.set_budget(Some(budget.clone()));
    let mut m = video_header(4, 1000);
    m.extend(std::iter::repeat_n(1, 128));
    assert_eq!(
        decode_all(&mut b, &m),
        Err(RtmpError::ReassemblyBudget {
            csid: 4,
            requested: 1000,
            used: held,
            limit: 6500,
            offset: 0
        })
    );
    assert_eq!(budget.used(), held, "the refused bytes were not charged");
    // A completes: its bytes go back, and another decoder fits.
    let done = decode_all(&mut a, &[7; 400]).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].payload.len(), 6400);
    assert_eq!(budget.used(), 0);
    let mut c = ChunkDecoder::new(MAX, 0);
    c.set_budget(Some(budget.clone()));
    assert!(decode_all(&mut c, &m).unwrap().is_empty());
    assert_eq!(budget.used(), 1000);
    // Dropping a decoder mid-message gives its bytes back too.
    drop(c);
    assert_eq!(budget.used(), 0);
    let mut e = ChunkDecoder::new(MAX, 0);
    e.set_budget(Some(budget.clone()));
    e.set_chunk_size(10_000);
    assert!(decode_all(&mut e, &s).unwrap().is_empty());
    e.abort(4);
    assert_eq!(budget.used(), 0, "an aborted message gives its bytes back");
    // Growth is charged as it happens: the whole budget, then one byte more.
    let mut f = ChunkDecoder::new(MAX, 0);
    f.set_budget(Some(budget.clone()));
    f.set_chunk_size(20_000);
    let mut big = video_header(5, 9000);
    big.extend(std::iter::repeat_n(3, 4096));
    assert!(decode_all(&mut f, &big).unwrap().is_empty());
    assert_eq!(budget.used(), 4096);
    let r = decode_all(&mut f, &[3; 4096]);
    assert!(
        matches!(
            r,
            Err(RtmpError::ReassemblyBudget {
                requested: 4096,
                used: 4096,
                ..
            })
        ),
        "{r:?}"
    );
    f.release_all();
    assert_eq!(budget.used(), 0);
}
