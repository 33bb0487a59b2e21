//! Bodies of the fuzz targets in `fuzz/fuzz_targets/` (cargo-fuzz, libFuzzer).
//!
//! Each target is one line that calls a function here, so that the very same
//! code runs under libFuzzer (`cargo fuzz run <target>`, see `fuzz/README.md`)
//! and under `cargo test`, which replays every committed corpus entry
//! (`tests/fuzz_corpus_replay.rs`). Stable
//! Rust has no sanitizers: what keeps the parsers honest there is the replay
//! and the assertions below, which check documented properties (round trips,
//! split-invariance, "a failed session stays failed"), not just "no panic".
//!
//! Not part of the public API: test tooling only.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::aac::AudioSpecificConfig;
use crate::amf0;
use crate::avc::{self, AvcDecoderConfig, SpsInfo};
use crate::flv::{self, FlvReader};
use crate::frame::{Frame, FrameKind};
use crate::packager::{Packager, PackagerConfig, PackagerEvent, Segment, TrackKind};
use crate::rtmp::{
    HANDSHAKE_SIZE, RTMP_VERSION, RtmpError, ServerConfig, ServerEvent, ServerOutput, ServerSession,
};

/// A fuzz target body: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every fuzz target, as named in `fuzz/Cargo.toml` and `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("rtmp_chunk", rtmp_chunk),
    ("rtmp_raw", rtmp_raw),
    ("amf0", amf0),
    ("flv_tag", flv_tag),
    ("avcc", avcc),
    ("sps", sps),
    ("asc", asc),
    ("packager", packager),
    ("flv_demux", flv_demux),
];

/// Length of a plain handshake from the client: C0, C1 and C2.
pub const HANDSHAKE_PREFIX_LEN: usize = 1 + 2 * HANDSHAKE_SIZE;

/// C0 + C1 + C2 of a plain handshake (the server tolerates any C1 and C2).
pub fn handshake_prefix() -> Vec<u8> {
    let mut v = vec![0u8; HANDSHAKE_PREFIX_LEN];
    v[0] = RTMP_VERSION;
    v
}

/// What a server session did with some input.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    events: Vec<ServerEvent>,
    error: Option<RtmpError>,
}

/// Feeds `pieces` to `server`, draining its output after each call; publish
/// requests are accepted when `accept` is set. Stops at the first error.
fn run_server<'a>(
    server: &mut ServerSession,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    accept: bool,
) -> Outcome {
    let now = Instant::now();
    let mut out = Outcome::default();
    for piece in pieces {
        let result = server.handle_input(now, piece);
        // Drained after an error too: it may hold a last message.
        while let Some(o) = server.poll_output() {
            match o {
                ServerOutput::Transmit(b) => assert!(!b.is_empty(), "empty transmit"),
                ServerOutput::Event(e) => {
                    if let ServerEvent::Media(f) = &e {
                        assert!(!f.data.is_empty(), "media events carry data");
                    }
                    if let (true, ServerEvent::PublishRequested { stream_id, .. }) = (accept, &e) {
                        server.accept_publish(*stream_id);
                    }
                    out.events.push(e);
                }
            }
        }
        if let Err(e) = result {
            out.error = Some(e);
            break;
        }
    }
    if out.error.is_some() {
        // A failed session stays failed (ServerSession::handle_input docs).
        assert_eq!(
            server.handle_input(now, b"\x03"),
            Err(RtmpError::Closed),
            "a failed session must stay failed"
        );
    }
    out
}

/// The server after a valid plain handshake, fed `data` (the chunk stream:
/// connect, createStream, publish, media …); publishes are accepted so that
/// media messages are parsed too. The input goes in two pieces, split in the
/// middle, so that reassembly across calls is exercised as well.
pub fn rtmp_chunk(data: &[u8]) {
    let mut server = ServerSession::new(ServerConfig::default());
    let prefix = handshake_prefix();
    let hs = run_server(&mut server, [&prefix[..]], true);
    assert_eq!(hs, Outcome::default(), "valid handshake");
    let (a, b) = data.split_at(data.len() / 2);
    let out = run_server(&mut server, [a, b], true);
    if out.error.is_none() {
        let total = (prefix.len() + data.len()) as u64;
        assert_eq!(server.bytes_received(), total, "every byte counted");
    }
}

/// A fresh server fed `data` from the first byte (handshake included), once
/// in one piece and once in small pieces of varying size: both must report
/// the same events and the same error (input "may be split anywhere").
/// Publishes are never accepted here, so the outcome cannot depend on when
/// the caller acted on an event.
pub fn rtmp_raw(data: &[u8]) {
    let whole = run_server(
        &mut ServerSession::new(ServerConfig::default()),
        [data],
        false,
    );
    let mut pieces = Vec::new();
    let mut rest = data;
    let mut size = 1;
    while !rest.is_empty() {
        let (p, r) = rest.split_at(size.min(rest.len()));
        pieces.push(p);
        rest = r;
        size = size % 7 + 1 + usize::from(p[0] & 0x3f);
    }
    let split = run_server(
        &mut ServerSession::new(ServerConfig::default()),
        pieces,
        false,
    );
    assert_eq!(whole, split, "outcome depends on how the input was split");
}

/// AMF0: `decode_one` and `decode_all` never panic, a decoded value re-encodes
/// to bytes that decode again, and re-encoding is then stable.
pub fn amf0(data: &[u8]) {
    if let Ok((value, used)) = amf0::decode_one(data) {
        assert!(used > 0 && used <= data.len(), "decode_one used {used}");
        let mut enc = Vec::new();
        amf0::encode(&value, &mut enc);
        let (again, n) = amf0::decode_one(&enc).expect("our own encoding decodes");
        assert_eq!(n, enc.len());
        let mut enc2 = Vec::new();
        amf0::encode(&again, &mut enc2);
        assert_eq!(enc, enc2, "re-encoding is stable");
    }
    if let Ok(values) = amf0::decode_all(data) {
        let enc = amf0::encode_all(&values);
        let again = amf0::decode_all(&enc).expect("our own encoding decodes");
        assert_eq!(again.len(), values.len());
        assert_eq!(amf0::encode_all(&again), enc, "re-encoding is stable");
    }
}

/// FLV header (version 1, audio + video, offset 9) and `PreviousTagSize0`.
const FLV_HEADER: &[u8] = b"FLV\x01\x05\0\0\0\x09\0\0\0\0";

/// Tag body parsers on `data`, and [`FlvReader`] on `data` as a whole file and
/// as the tags after a file header. Whatever the reader yields is written back
/// with [`flv::write_tag`] and must read back identically.
pub fn flv_tag(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    if let Ok(tag) = flv::parse_video_tag(&body) {
        assert!(
            tag.payload.len() < body.len().max(1),
            "payload inside the body"
        );
    }
    if let Ok(tag) = flv::parse_audio_tag(&body) {
        assert!(
            tag.payload.len() < body.len().max(1),
            "payload inside the body"
        );
    }
    read_flv(body);
    read_flv(Bytes::from([FLV_HEADER, data].concat()));
}

fn read_flv(file: Bytes) {
    let Ok(reader) = FlvReader::new(file) else {
        return;
    };
    let header = reader.header();
    let mut frames = Vec::new();
    for item in reader {
        let Ok(frame) = item else { break };
        let _ = flv::parse_video_tag(&frame.data);
        let _ = flv::parse_audio_tag(&frame.data);
        frames.push(frame);
    }
    let written = flv::write_file(header.has_audio, header.has_video, &frames)
        .expect("frames read from FLV fit in FLV");
    let reread: Vec<Frame> = FlvReader::new(written)
        .expect("our own header")
        .map(|f| f.expect("our own tags"))
        .collect();
    assert_eq!(reread, frames, "FLV write/read round trip");
}

/// `AvcDecoderConfigurationRecord` parsing, its first SPS, and the `avcC` box
/// the packager would write from it; also `data` as an AVCC sample.
pub fn avcc(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    if let Ok(config) = AvcDecoderConfig::parse(&body) {
        if let Ok(info) = config.sps_info() {
            let _ = info.codec_string();
        }
        let mut out = Vec::new();
        let _ = mp4_atom::Encode::encode(&config.to_avcc(), &mut out);
    }
    for n in 0..=4 {
        if let Ok(info) = avc::validate_avcc_sample(data, n) {
            assert!(info.nal_units >= 1);
        }
    }
}

/// A sequence parameter set NAL unit (header byte included).
pub fn sps(data: &[u8]) {
    if let Ok(info) = SpsInfo::parse(data) {
        let codec = info.codec_string();
        assert!(codec.starts_with("avc1."), "{codec}");
    }
}

/// An `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1).
pub fn asc(data: &[u8]) {
    if let Ok(config) = AudioSpecificConfig::parse(data) {
        let _ = config.channels();
        let codec = config.codec_string();
        assert!(codec.starts_with("mp4a.40."), "{codec}");
        assert!(config.sample_rate > 0 && config.frame_length > 0);
    }
}

/// A real x264 `AVCDecoderConfigurationRecord` (High, level 1.3).
pub const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];
/// AudioSpecificConfigs: AAC-LC 44.1 kHz stereo, 48 kHz stereo, HE-AAC (SBR).
pub const ASCS: &[&[u8]] = &[&[0x12, 0x10], &[0x11, 0x90], &[0x2b, 0x11, 0x88, 0x00]];

/// Op codes of the [`packager`] target's little language; each op reads the
/// operand bytes listed (missing bytes read as 0; the program ends with the data).
pub mod op {
    /// Video sequence header with [`super::AVCC`].
    pub const VIDEO_CONFIG: u8 = 0;
    /// Audio sequence header: `[index]` into [`super::ASCS`].
    pub const AUDIO_CONFIG: u8 = 1;
    /// Video key frame: `[step_ms, cts_ms/4 (i8), len]` (an IDR NAL of `len`+1 bytes).
    pub const KEY: u8 = 2;
    /// Video inter frame: `[step_ms, cts_ms/4 (i8), len]`.
    pub const INTER: u8 = 3;
    /// AAC raw frame: `[step_ms, len]`.
    pub const AUDIO: u8 = 4;
    /// Raw video tag body: `[step_ms, len, bytes…]`.
    pub const RAW_VIDEO: u8 = 5;
    /// Raw audio tag body: `[step_ms, len, bytes…]`.
    pub const RAW_AUDIO: u8 = 6;
    /// `onMetaData` script frame: `[step_ms]`.
    pub const SCRIPT: u8 = 7;
    /// [`crate::packager::Packager::mark_discontinuity`].
    pub const MARK: u8 = 8;
    /// [`crate::packager::Packager::finish`].
    pub const FINISH: u8 = 9;
    /// Set the clock: `[u32 big-endian]` milliseconds.
    pub const SET_TIME: u8 = 10;
    /// Step the clock back: `[ms]`.
    pub const BACK: u8 = 11;
    /// Number of op codes (others wrap modulo this).
    pub const COUNT: u8 = 12;
}

/// Reads operands; missing bytes read as 0.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a.to_vec()
    }
}

/// Checks the packager's output as `tests/packager_proptest.rs` does: segment
/// numbers grow per track, segments never overlap, every moof's decode time
/// follows on, no sample lasts zero, video segments start with a key frame,
/// and every init segment, part and segment parses as ISO BMFF.
#[derive(Default)]
struct Checker {
    /// Per track (video, audio): last number, (end time, timescale), init version.
    last: [(u64, (u64, u32), u32); 2],
}

impl Checker {
    fn drain(&mut self, p: &mut Packager) {
        while let Some(ev) = p.poll_output() {
            match ev {
                PackagerEvent::Init(init) => {
                    let i = usize::from(init.track == TrackKind::Audio);
                    assert!(init.version > self.last[i].2, "init versions grow");
                    self.last[i].2 = init.version;
                    boxes(&init.data);
                }
                PackagerEvent::Part(part) => {
                    assert!(part.segment >= 1);
                    boxes(&part.data);
                }
                PackagerEvent::Segment(seg) => self.segment(&seg),
                PackagerEvent::Discontinuity { .. } => {}
            }
        }
    }

    fn segment(&mut self, seg: &Segment) {
        let i = usize::from(seg.track == TrackKind::Audio);
        let (number, (prev_end, prev_scale), _) = self.last[i];
        assert!(seg.number > number, "{:?} segment numbers grow", seg.track);
        if seg.track == TrackKind::Video {
            assert!(
                seg.starts_with_keyframe,
                "video segment {} without key frame",
                seg.number
            );
        }
        let after = u128::from(seg.start) * u128::from(prev_scale)
            >= u128::from(prev_end) * u128::from(seg.timescale);
        assert!(
            after,
            "{:?} segment {} overlaps the previous",
            seg.track, seg.number
        );
        let mut t = seg.start;
        for b in boxes(&seg.data) {
            if let mp4_atom::Any::Moof(moof) = b {
                let traf = &moof.traf[0];
                let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
                assert_eq!(tfdt, t, "decode times follow on");
                for s in traf.trun.iter().flat_map(|r| r.samples.iter()) {
                    let d = s.duration.expect("sample duration");
                    assert!(d > 0, "zero sample duration");
                    t += u64::from(d);
                }
            }
        }
        assert_eq!(t, seg.start + seg.duration, "segment duration");
        self.last[i].0 = seg.number;
        self.last[i].1 = (t, seg.timescale);
    }
}

fn boxes(mut data: &[u8]) -> Vec<mp4_atom::Any> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let b = <mp4_atom::Any as mp4_atom::Decode>::decode(&mut data);
        out.push(b.expect("packager output parses as ISO BMFF"));
    }
    out
}

/// The packager driven by a small op language (see [`op`]): mostly plausible
/// frames with fuzzed timing, sizes and order, plus raw tag bodies, marks and
/// finishes; its output is checked after every op.
pub fn packager(data: &[u8]) {
    let mut p = Packager::new(PackagerConfig {
        target_segment_ms: 1000,
        part_target_ms: 300,
    });
    let mut check = Checker::default();
    let mut ops = Ops(data);
    let mut ts: u32 = 0;
    while !ops.0.is_empty() {
        let code = ops.u8() % op::COUNT;
        let frame = match code {
            op::VIDEO_CONFIG => Some(video(ts, 0, 0, AVCC)),
            op::AUDIO_CONFIG => {
                let asc = ASCS[usize::from(ops.u8()) % ASCS.len()];
                Some(audio(ts, 0, asc))
            }
            op::KEY | op::INTER => {
                ts = ts.wrapping_add(u32::from(ops.u8()));
                let cts = i32::from(ops.u8() as i8) * 4;
                let len = usize::from(ops.u8());
                let key = code == op::KEY;
                let mut nal = vec![if key { 0x65 } else { 0x41 }];
                nal.extend((0..len).map(|i| (i as u8).wrapping_mul(37) ^ 0x5a));
                let mut sample = (nal.len() as u32).to_be_bytes().to_vec();
                sample.extend_from_slice(&nal);
                let head = if key { 0x17 } else { 0x27 };
                Some(video(ts, head, cts, &sample))
            }
            op::AUDIO => {
                ts = ts.wrapping_add(u32::from(ops.u8()));
                let len = usize::from(ops.u8()) + 1;
                let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x21).collect();
                Some(audio(ts, 1, &payload))
            }
            op::RAW_VIDEO | op::RAW_AUDIO => {
                ts = ts.wrapping_add(u32::from(ops.u8()));
                let len = usize::from(ops.u8());
                let body = Bytes::from(ops.bytes(len));
                let kind = if code == op::RAW_VIDEO {
                    FrameKind::Video
                } else {
                    FrameKind::Audio
                };
                Some(Frame::new(kind, ts, body))
            }
            op::SCRIPT => {
                ts = ts.wrapping_add(u32::from(ops.u8()));
                let meta = amf0::encode_all(&["onMetaData".into(), amf0::Amf0Value::Null]);
                Some(Frame::new(FrameKind::Script, ts, Bytes::from(meta)))
            }
            op::MARK => {
                p.mark_discontinuity();
                None
            }
            op::FINISH => {
                p.finish();
                None
            }
            op::SET_TIME => {
                ts = u32::from_be_bytes([ops.u8(), ops.u8(), ops.u8(), ops.u8()]);
                None
            }
            _ => {
                ts = ts.wrapping_sub(u32::from(ops.u8()));
                None
            }
        };
        if let Some(frame) = frame {
            let _ = p.push(&frame);
        }
        check.drain(&mut p);
    }
    p.finish();
    check.drain(&mut p);
}

/// An AVC video tag: `head` 0 makes a sequence header (key frame, packet type
/// 0), else `head` is the first byte of a coded frame (packet type 1).
fn video(ts: u32, head: u8, cts: i32, payload: &[u8]) -> Frame {
    let c = cts.to_be_bytes();
    let (b0, packet) = if head == 0 { (0x17, 0) } else { (head, 1) };
    let mut body = BytesMut::with_capacity(5 + payload.len());
    body.extend_from_slice(&[b0, packet, c[1], c[2], c[3]]);
    body.extend_from_slice(payload);
    Frame::new(FrameKind::Video, ts, body.freeze())
}

/// An AAC audio tag (`packet` 0: AudioSpecificConfig, 1: raw frame).
fn audio(ts: u32, packet: u8, payload: &[u8]) -> Frame {
    let mut body = vec![0xaf, packet];
    body.extend_from_slice(payload);
    Frame::new(FrameKind::Audio, ts, Bytes::from(body))
}

/// The incremental FLV demuxer (FFmpeg's rendition output): the input is fed
/// whole and split in two at a point chosen by its first byte; both must give
/// the same frames and the same error.
pub fn flv_demux(data: &[u8]) {
    use crate::flv_demux::FlvDemuxer;
    fn run(parts: &[&[u8]]) -> (Vec<crate::frame::Frame>, Option<String>) {
        let mut d = FlvDemuxer::new();
        let mut frames = Vec::new();
        for part in parts {
            d.push(part);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e.to_string())),
                }
            }
        }
        (frames, None)
    }
    let split = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let whole = run(&[data]);
    let halves = run(&[&data[..split], &data[split..]]);
    assert_eq!(whole, halves, "split at {split} changed the demuxed frames");
}
