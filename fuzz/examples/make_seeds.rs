//! Writes the seed corpora of every fuzz target from a short FLV that FFmpeg
//! made (see `make_seeds.sh`, which makes the FLV and runs this):
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- IN.flv fuzz/corpus
//!
//! Seeds are real inputs: the FLV's tags and decoder configs as FFmpeg wrote
//! them, and the bytes our `ClientSession` really sends to publish that FLV
//! (handshake, connect, createStream, publish, media) with the chunk-level
//! variations encoders use. Files are named `seed-*`; entries the fuzzer found
//! (and `cmin` kept) have hash names and are left alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use streaming_media::amf0::{self, Amf0Value};
use streaming_media::avc::AvcDecoderConfig;
use streaming_media::flv::{self, AudioPacketType, FlvReader, VideoPacketType};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::fuzzing::{self, ASCS, HANDSHAKE_PREFIX_LEN, op};
use streaming_media::rtmp::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, ServerConfig, ServerEvent,
    ServerOutput, ServerSession,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, flv_path, out] = &args[..] else {
        panic!("usage: make_seeds IN.flv CORPUS_DIR");
    };
    let data = Bytes::from(std::fs::read(flv_path).expect("read the FLV"));
    let frames: Vec<Frame> = FlvReader::new(data.clone())
        .expect("FLV header")
        .map(|f| f.expect("FLV tag"))
        .collect();
    let out = PathBuf::from(out);
    let mut w = Writer {
        root: out,
        count: 0,
    };

    flv_seeds(&mut w, &data, &frames);
    config_seeds(&mut w, &frames);
    amf0_seeds(&mut w, &frames);
    rtmp_seeds(&mut w, &frames);
    capture_seeds(&mut w);
    packager_seeds(&mut w);

    // Every seed must pass its own target.
    for (name, target) in fuzzing::TARGETS {
        let dir = w.root.join(name);
        for e in std::fs::read_dir(&dir).expect("corpus dir") {
            target(&std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    println!("wrote {} seed files under {}", w.count, w.root.display());
}

struct Writer {
    root: PathBuf,
    count: usize,
}

impl Writer {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let path: &Path = &dir.join(format!("seed-{name}"));
        std::fs::write(path, bytes).unwrap();
        self.count += 1;
    }
}

fn first(frames: &[Frame], pred: impl Fn(&Frame) -> bool) -> &Frame {
    frames
        .iter()
        .find(|f| pred(f))
        .expect("the FLV has such a tag")
}

fn is_video(f: &Frame, packet: VideoPacketType, key: bool) -> bool {
    f.kind == FrameKind::Video
        && flv::parse_video_tag(&f.data)
            .is_ok_and(|t| t.packet_type == packet && t.frame_type.is_key() == key)
}

fn is_audio(f: &Frame, packet: AudioPacketType) -> bool {
    f.kind == FrameKind::Audio
        && flv::parse_audio_tag(&f.data).is_ok_and(|t| t.packet_type == packet)
}

fn flv_seeds(w: &mut Writer, data: &Bytes, frames: &[Frame]) {
    let vsh = first(frames, |f| {
        is_video(f, VideoPacketType::SequenceHeader, true)
    });
    let key = first(frames, |f| is_video(f, VideoPacketType::Coded, true));
    let inter = first(frames, |f| is_video(f, VideoPacketType::Coded, false));
    let ash = first(frames, |f| is_audio(f, AudioPacketType::SequenceHeader));
    let raw = first(frames, |f| is_audio(f, AudioPacketType::Raw));
    let meta = first(frames, |f| f.kind == FrameKind::Script);
    w.put("flv_tag", "ffmpeg-video-sequence-header", &vsh.data);
    w.put("flv_tag", "ffmpeg-video-inter", &inter.data);
    w.put("flv_tag", "ffmpeg-audio-sequence-header", &ash.data);
    w.put("flv_tag", "ffmpeg-audio-raw", &raw.data);
    w.put("flv_tag", "ffmpeg-script-onmetadata", &meta.data);
    // The key frame is the largest tag: keep its head, as a tag body and in a file.
    let key_head = key.data.slice(..key.data.len().min(512));
    w.put("flv_tag", "ffmpeg-video-key-head", &key_head);
    // The file's head: header, metadata, both sequence headers and a few
    // frames (tags whose end lies within the first 1.5 KB plus the key frame).
    let mut end = 0;
    let mut pos = 13;
    let mut tags = 0;
    while pos + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let next = pos + 11 + size + 4;
        if next > data.len() || (next > 1536 && tags >= 8) {
            break;
        }
        end = next;
        pos = next;
        tags += 1;
    }
    w.put("flv_tag", "ffmpeg-file-head.flv", &data[..end]);
    // Only the tags, without the file header.
    w.put("flv_tag", "ffmpeg-tags-head", &data[13..end.min(13 + 600)]);
}

fn config_seeds(w: &mut Writer, frames: &[Frame]) {
    let vsh = first(frames, |f| {
        is_video(f, VideoPacketType::SequenceHeader, true)
    });
    let avcc = flv::parse_video_tag(&vsh.data).unwrap().payload;
    w.put("avcc", "ffmpeg-x264-avcc", &avcc);
    w.put("avcc", "x264-high-l13-avcc", fuzzing::AVCC);
    let config = AvcDecoderConfig::parse(&avcc).expect("FFmpeg's avcC parses");
    w.put("sps", "ffmpeg-x264-sps", &config.sps[0]);
    let other = AvcDecoderConfig::parse(&Bytes::from_static(fuzzing::AVCC)).unwrap();
    w.put("sps", "x264-high-l13-sps", &other.sps[0]);
    // A key frame's first NALs as an AVCC sample (length prefixes and all).
    let key = first(frames, |f| is_video(f, VideoPacketType::Coded, true));
    let sample = flv::parse_video_tag(&key.data).unwrap().payload;
    w.put(
        "avcc",
        "ffmpeg-x264-key-sample-head",
        &sample[..sample.len().min(256)],
    );

    let ash = first(frames, |f| is_audio(f, AudioPacketType::SequenceHeader));
    let asc = flv::parse_audio_tag(&ash.data).unwrap().payload;
    w.put("asc", "ffmpeg-aac-lc-48k-stereo", &asc);
    for (i, a) in ASCS.iter().enumerate() {
        w.put("asc", &format!("builtin-{i}"), a);
    }
}

fn amf0_seeds(w: &mut Writer, frames: &[Frame]) {
    let meta = first(frames, |f| f.kind == FrameKind::Script);
    w.put("amf0", "ffmpeg-onmetadata", &meta.data);
    let connect = amf0::encode_all(&[
        "connect".into(),
        1.0.into(),
        Amf0Value::Object(vec![
            ("app".into(), "live".into()),
            ("type".into(), "nonprivate".into()),
            (
                "flashVer".into(),
                "FMLE/3.0 (compatible; Lavf59.27.100)".into(),
            ),
            ("tcUrl".into(), "rtmp://127.0.0.1:1935/live".into()),
        ]),
    ]);
    w.put("amf0", "connect", &connect);
    let all_types = amf0::encode_all(&[
        Amf0Value::Number(f64::NAN),
        Amf0Value::Boolean(true),
        Amf0Value::Null,
        Amf0Value::Undefined,
        Amf0Value::StrictArray(vec![1.0.into(), "x".into()]),
        Amf0Value::Date {
            millis: 1.7e12,
            timezone: 0,
        },
        Amf0Value::LongString("long".into()),
        Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Object(vec![]))]),
    ]);
    w.put("amf0", "every-type", &all_types);
}

/// Client and server engines in memory; returns what the client sent.
struct Pair {
    client: ClientSession,
    server: ServerSession,
    c2s: Vec<u8>,
    started: bool,
}

impl Pair {
    fn new(config: ClientConfig) -> Self {
        let mut p = Self {
            client: ClientSession::new(config),
            server: ServerSession::new(ServerConfig::default()),
            c2s: Vec::new(),
            started: false,
        };
        p.drive();
        assert!(p.started, "publish started");
        p
    }

    fn drive(&mut self) {
        let now = Instant::now();
        loop {
            let mut progress = false;
            while let Some(out) = self.client.poll_output() {
                progress = true;
                match out {
                    ClientOutput::Transmit(b) => {
                        self.c2s.extend_from_slice(&b);
                        self.server.handle_input(now, &b).expect("server accepts");
                    }
                    ClientOutput::Event(ClientEvent::PublishStarted { .. }) => self.started = true,
                    ClientOutput::Event(_) => {}
                }
            }
            while let Some(out) = self.server.poll_output() {
                progress = true;
                match out {
                    ServerOutput::Transmit(b) => {
                        self.client.handle_input(now, &b).expect("client accepts")
                    }
                    ServerOutput::Event(ServerEvent::PublishRequested { stream_id, .. }) => {
                        self.server.accept_publish(stream_id)
                    }
                    ServerOutput::Event(_) => {}
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn send(&mut self, frames: &[Frame]) {
        for f in frames {
            self.client.send_frame(f).expect("publishing");
        }
        self.client.flush_interleaved();
        self.drive();
    }

    fn finish(mut self) -> Vec<u8> {
        self.client.finish();
        self.drive();
        self.c2s
    }
}

fn config(chunk_size: u32, complex: bool) -> ClientConfig {
    ClientConfig {
        chunk_size,
        complex_handshake: complex,
        ..ClientConfig::new("rtmp://127.0.0.1:1935/live", "live", "sk_seed?token=1")
    }
}

/// The FLV's frames, with key frames cut short so that seeds stay small (the
/// RTMP engine does not look inside media).
fn small_frames(frames: &[Frame], n: usize) -> Vec<Frame> {
    frames
        .iter()
        .take(n)
        .map(|f| Frame::new(f.kind, f.timestamp, f.data.slice(..f.data.len().min(700))))
        .collect()
}

fn rtmp_seeds(w: &mut Writer, frames: &[Frame]) {
    let media = small_frames(frames, 14);

    // FFmpeg-like: chunk size 4096, plain handshake, then the FLV, then finish.
    let mut p = Pair::new(config(4096, false));
    p.send(&media);
    let wire = p.finish();
    w.put("rtmp_raw", "client-publish-4096", &wire);
    w.put(
        "rtmp_chunk",
        "client-publish-4096",
        &wire[HANDSHAKE_PREFIX_LEN..],
    );

    // Digest-layout C1, up to publish only.
    let wire = Pair::new(config(4096, true)).finish();
    w.put("rtmp_raw", "client-complex-handshake", &wire);

    // Default chunk size 128, audio and video chunks interleaved.
    let mut p = Pair::new(config(128, false));
    p.client.set_interleave(true);
    p.send(&media[..8]);
    let wire = p.finish();
    w.put(
        "rtmp_chunk",
        "client-interleaved-128",
        &wire[HANDSHAKE_PREFIX_LEN..],
    );

    // Chunk size changes mid-stream, down to 1.
    let mut p = Pair::new(config(4096, false));
    for (size, f) in [60_000, 128, 1, 0x7fff_ffff]
        .into_iter()
        .zip(media.chunks(3))
    {
        p.client.set_chunk_size(size);
        p.send(f);
    }
    let wire = p.finish();
    w.put(
        "rtmp_chunk",
        "client-chunk-size-changes",
        &wire[HANDSHAKE_PREFIX_LEN..],
    );

    // Timestamps crossing 0xFFFFFF (extended timestamps).
    let mut p = Pair::new(config(256, false));
    let late: Vec<Frame> = media
        .iter()
        .map(|f| Frame::new(f.kind, f.timestamp + 0x00ff_ff00, f.data.clone()))
        .collect();
    p.send(&late);
    let wire = p.finish();
    w.put(
        "rtmp_chunk",
        "client-extended-timestamps",
        &wire[HANDSHAKE_PREFIX_LEN..],
    );
}

/// The real encoder captures of `crates/streaming-media/tests/rtmp_captures.rs`
/// (what FFmpeg 5.1, GStreamer rtmpsink/librtmp and rtmp2sink sent after the
/// handshake): each `const NAME: &[&str]` of hex lines becomes a seed.
fn capture_seeds(w: &mut Writer) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/streaming-media/tests/rtmp_captures.rs"
    );
    let text = std::fs::read_to_string(path).expect("rtmp_captures.rs");
    let mut current: Option<(String, String)> = None;
    let mut found = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("const ")
            && let Some((name, _)) = rest.split_once(": &[&str]")
        {
            current = Some((name.to_lowercase().replace('_', "-"), String::new()));
        } else if line.starts_with("];") {
            if let Some((name, hex)) = current.take() {
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                w.put("rtmp_chunk", &format!("capture-{name}"), &bytes);
                found += 1;
            }
        } else if let Some((_, hex)) = current.as_mut() {
            hex.push_str(line.trim().trim_end_matches(',').trim_matches('"'));
        }
    }
    assert!(found >= 3, "captures found in {path}: {found}");
}

/// Appends one op and its operands.
fn ops(prog: &mut Vec<u8>, code: u8, operands: &[u8]) {
    prog.push(code);
    prog.extend_from_slice(operands);
}

/// `seconds` of 30 fps video (key frame every `gop` frames) and 48 kHz AAC
/// (1024-sample frames), in decode order, as steps from the current clock.
fn av_program(prog: &mut Vec<u8>, seconds: u32, gop: u32, audio: bool) {
    let mut events: Vec<(u32, Option<u32>)> = (0..seconds * 30)
        .map(|i| (i * 1000 / 30, Some(i)))
        .collect();
    if audio {
        events.extend((0..seconds * 48_000 / 1024).map(|k| (k * 1024 * 1000 / 48_000, None)));
    }
    events.sort();
    let mut t = 0u32;
    for (at, video) in events {
        let step = (at - t) as u8;
        t = at;
        match video {
            Some(i) if i % gop == 0 => ops(prog, op::KEY, &[step, 0, 20]),
            // cts 17 × 4 ms: B-frame-like composition offsets
            Some(_) => ops(prog, op::INTER, &[step, 17, 12]),
            None => ops(prog, op::AUDIO, &[step, 12]),
        }
    }
}

fn packager_seeds(w: &mut Writer) {
    let mut prog = Vec::new();
    ops(&mut prog, op::SCRIPT, &[0]);
    ops(&mut prog, op::VIDEO_CONFIG, &[]);
    ops(&mut prog, op::AUDIO_CONFIG, &[1]);
    av_program(&mut prog, 3, 30, true);
    w.put("packager", "av-3s-gop1s", &prog);

    let mut prog = Vec::new();
    ops(&mut prog, op::VIDEO_CONFIG, &[]);
    ops(&mut prog, op::AUDIO_CONFIG, &[0]);
    av_program(&mut prog, 2, 15, true);
    ops(&mut prog, op::MARK, &[]);
    ops(&mut prog, op::SET_TIME, &[0, 0, 0x10, 0]);
    av_program(&mut prog, 1, 15, true);
    ops(&mut prog, op::BACK, &[200]);
    av_program(&mut prog, 1, 15, true);
    ops(&mut prog, op::AUDIO_CONFIG, &[2]);
    ops(&mut prog, op::SET_TIME, &[0xff, 0xff, 0xfc, 0x00]);
    av_program(&mut prog, 1, 15, true);
    ops(&mut prog, op::FINISH, &[]);
    w.put("packager", "discontinuities-and-wrap", &prog);

    let mut prog = Vec::new();
    ops(&mut prog, op::AUDIO_CONFIG, &[0]);
    for _ in 0..100 {
        ops(&mut prog, op::AUDIO, &[23, 40]);
    }
    w.put("packager", "audio-only", &prog);

    let mut prog = Vec::new();
    ops(&mut prog, op::VIDEO_CONFIG, &[]);
    av_program(&mut prog, 2, 30, false);
    ops(&mut prog, op::RAW_VIDEO, &[33, 5, 0x17, 2, 0, 0, 0]);
    ops(&mut prog, op::RAW_AUDIO, &[10, 2, 0xaf, 0]);
    w.put("packager", "video-only-raw-tags", &prog);
}
