//! Real peers: FFmpeg and GStreamer (`rtmpsink` is librtmp, the
//! library OBS uses; `rtmp2sink` is GStreamer's own) publish to the server
//! engine, and the client engine publishes to FFmpeg's own RTMP server
//! (`-listen 1`), over loopback TCP driven by a few lines of blocking std I/O.
//! The tools must print nothing. A missing tool fails the test with an install hint.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::rtmp::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, ServerConfig, ServerEvent,
    ServerOutput, ServerSession,
};

const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn tools_present() -> bool {
    let ok = |bin: &str| Command::new(bin).arg("-version").output().is_ok();
    assert!(
        ok("ffmpeg") && ok("ffprobe"),
        "this test needs ffmpeg and ffprobe: `apt-get install -y ffmpeg` (scripts/test does this)"
    );
    true
}

fn gst_present(elements: &[&str]) -> bool {
    let ok = |e: &str| {
        Command::new("gst-inspect-1.0")
            .arg(e)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<_> = elements.iter().filter(|e| !ok(e)).collect();
    assert!(
        missing.is_empty(),
        "GStreamer elements {missing:?} are missing: `apt-get install -y gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav` (scripts/test does this)"
    );
    true
}

/// Kills the child if the test fails before it exits.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Guard {
    /// Wait for exit; assert success and silence on stderr, apart from lines
    /// ending with `allowed`.
    fn finish(mut self, allowed: Option<&str>) {
        let status = self.0.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        let unexpected = err.lines().any(|l| allowed.is_none_or(|a| !l.ends_with(a)));
        assert!(status.success() && !unexpected, "{status}: {err}");
    }
}

fn spawn(program: &str, args: &[&str]) -> Guard {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Guard(child)
}

fn ffmpeg(args: &[&str]) -> Guard {
    let mut all = vec!["-hide_banner", "-nostdin", "-v", "warning", "-y"];
    all.extend_from_slice(args);
    spawn("ffmpeg", &all)
}

/// Accept one connection from `child`, drive a server session (accepting the
/// publish) until the peer closes, and return the session's events.
fn serve_one(listener: TcpListener, child: Guard) -> Vec<ServerEvent> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut sock = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no connection: {e}"),
        }
    };
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();

    let mut server = ServerSession::new(ServerConfig::default());
    let mut events = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                drop(sock);
                child.finish(None); // shows what the peer said
                panic!("{e}");
            }
        };
        let r = server.handle_input(Instant::now(), &buf[..n]);
        while let Some(out) = server.poll_output() {
            match out {
                ServerOutput::Transmit(b) => sock.write_all(&b).unwrap(),
                ServerOutput::Event(e) => {
                    if let ServerEvent::PublishRequested { stream_id, .. } = e {
                        server.accept_publish(stream_id);
                    }
                    events.push(e);
                }
            }
        }
        r.unwrap();
    }
    child.finish(None);
    events
}

fn media(events: &[ServerEvent], kind: FrameKind) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Media(f) if f.kind == kind => Some(f),
            _ => None,
        })
        .collect()
}

const SOURCES: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=320x240:rate=25",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=44100",
    "-t",
    "2",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-g",
    "25",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    // The FLV muxer cannot seek back on RTMP to fix the header; say so.
    "-flvflags",
    "no_duration_filesize",
    "-f",
    "flv",
];

#[test]
fn ffmpeg_publishes_to_the_server() {
    if !tools_present() {
        return;
    }
    let first = publish_from_ffmpeg(&[]);
    assert!(first < 100, "{first}");
}

/// Timestamps around 2^24 ms (4.66 hours): crossing it with deltas, and
/// starting beyond it, where FFmpeg's type 0 headers carry extended timestamps.
#[test]
fn ffmpeg_publishes_past_2_pow_24_ms() {
    if !tools_present() {
        return;
    }
    let first = publish_from_ffmpeg(&["-output_ts_offset", "16777"]);
    assert!((16_777_000..0xff_ffff).contains(&first), "{first}");
    let first = publish_from_ffmpeg(&["-output_ts_offset", "16778"]);
    assert!((16_778_000..16_779_000).contains(&first), "{first}");
}

/// FFmpeg publishes 2 s of H.264 + AAC to a server session; checks the events
/// and returns the timestamp of the first picture.
fn publish_from_ffmpeg(extra: &[&str]) -> u32 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("rtmp://127.0.0.1:{port}/live/key?token=abc");
    let mut args = SOURCES.to_vec();
    args.extend_from_slice(extra);
    args.push(&url);
    let events = serve_one(listener, ffmpeg(&args));

    assert_eq!(
        events[0],
        ServerEvent::Connected {
            app: "live".into(),
            tc_url: Some(format!("rtmp://127.0.0.1:{port}/live")),
        }
    );
    assert_eq!(
        events[1],
        ServerEvent::PublishRequested {
            stream_id: 1,
            app: "live".into(),
            stream_key: "key?token=abc".into(),
            publish_type: "live".into(),
        }
    );
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Unpublished { stream_id: 1 })
    );
    let script = media(&events, FrameKind::Script);
    let video = media(&events, FrameKind::Video);
    let audio = media(&events, FrameKind::Audio);
    assert_eq!(script.len() + video.len() + audio.len() + 3, events.len());
    assert_eq!(script.len(), 1);
    assert!(script[0].data.starts_with(b"\x02\x00\x0aonMetaData"));
    assert!(video[0].is_sequence_header() && audio[0].is_sequence_header());
    // Sequence header, 50 coded pictures (AVCPacketType 1), end of sequence (2).
    let pictures: Vec<_> = video.iter().filter(|f| f.data[1] == 1).collect();
    assert_eq!(video.len(), 1 + 50 + 1);
    assert_eq!(pictures.len(), 50);
    assert_eq!(video[51].data[1], 2);
    assert_eq!(pictures.iter().filter(|f| f.is_keyframe()).count(), 2);
    assert!(video[1].is_keyframe());
    // 2 s of 1024-sample AAC frames at 44.1 kHz, plus the sequence header.
    assert!((86..=90).contains(&audio.len()), "{}", audio.len());
    assert!(video.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    // 25 fps (the first time is shifted by the AAC encoder delay).
    assert!(
        pictures
            .windows(2)
            .all(|w| w[1].timestamp - w[0].timestamp == 40)
    );
    pictures[0].timestamp
}

/// GStreamer publishes 2 s of H.264 + AAC through `sink`.
fn publish_from_gstreamer(sink: &str) {
    if !gst_present(&[
        sink,
        "x264enc",
        "voaacenc",
        "flvmux",
        "h264parse",
        "aacparse",
    ]) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let location = format!("location=rtmp://127.0.0.1:{port}/live/key");
    let pipeline = [
        "-q",
        "videotestsrc",
        "num-buffers=50",
        "!",
        "video/x-raw,width=320,height=240,framerate=25/1",
        "!",
        "x264enc",
        "key-int-max=25",
        "tune=zerolatency",
        "!",
        "h264parse",
        "!",
        "flvmux",
        "name=mux",
        "streamable=true",
        "!",
        sink,
        &location,
        "audiotestsrc",
        "num-buffers=86",
        "!",
        "audioconvert",
        "!",
        "voaacenc",
        "!",
        "aacparse",
        "!",
        "mux.",
    ];
    let events = serve_one(listener, spawn("gst-launch-1.0", &pipeline));

    assert!(
        matches!(&events[0], ServerEvent::Connected { app, .. } if app == "live"),
        "{:?}",
        events[0]
    );
    assert!(
        matches!(&events[1], ServerEvent::PublishRequested { stream_key, .. } if stream_key == "key"),
        "{:?}",
        events[1]
    );
    let unpublished = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Unpublished { .. }))
        .count();
    assert!(unpublished <= 1);
    let video = media(&events, FrameKind::Video);
    let audio = media(&events, FrameKind::Audio);
    let script = media(&events, FrameKind::Script);
    assert!(script[0].data.starts_with(b"\x02\x00\x0aonMetaData"));
    assert!(video[0].is_sequence_header() && audio[0].is_sequence_header());
    let pictures = video.iter().filter(|f| f.data[1] == 1).count();
    assert_eq!(pictures, 50, "{sink}");
    assert!(audio.len() >= 80, "{sink}: {} audio frames", audio.len());
}

#[test]
fn gstreamer_librtmp_publishes_to_the_server() {
    publish_from_gstreamer("rtmpsink");
}

#[test]
fn gstreamer_rtmp2_publishes_to_the_server() {
    publish_from_gstreamer("rtmp2sink");
}

/// FLV tags of a file, as frames (FLV 10.1 §E.4.1); enough for FFmpeg's output.
fn flv_frames(data: &[u8]) -> Vec<Frame> {
    assert_eq!(&data[..3], b"FLV");
    let mut pos = 9 + 4;
    let mut frames = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let kind = match h[0] {
            8 => FrameKind::Audio,
            9 => FrameKind::Video,
            18 => FrameKind::Script,
            t => panic!("tag type {t}"),
        };
        let body = Bytes::copy_from_slice(&data[pos + 11..pos + 11 + len]);
        frames.push(Frame::new(kind, ts, body));
        pos += 11 + len + 4;
    }
    frames
}

#[test]
fn client_publishes_to_ffmpeg() {
    if !tools_present() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sm-rtmp-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source.flv");
    let mut args = SOURCES.to_vec();
    let source_arg = source.to_str().unwrap().to_owned();
    args.push(&source_arg);
    ffmpeg(&args).finish(None);
    let frames = flv_frames(&std::fs::read(&source).unwrap());

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("rtmp://127.0.0.1:{port}/live/key");
    let out = dir.join("received.flv");
    let out_arg = out.to_str().unwrap().to_owned();
    let child = ffmpeg(&[
        "-listen", "1", "-i", &url, "-c", "copy", "-f", "flv", &out_arg,
    ]);

    let deadline = Instant::now() + IO_TIMEOUT;
    let mut sock = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("ffmpeg does not listen: {e}"),
        }
    };
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut client = ClientSession::new(ClientConfig {
        complex_handshake: true,
        ..ClientConfig::new(&format!("rtmp://127.0.0.1:{port}/live"), "live", "key")
    });
    client.set_interleave(true);
    let mut buf = vec![0; 64 * 1024];
    let mut events = Vec::new();
    let mut sent = false;
    while !sent {
        while let Some(out) = client.poll_output() {
            match out {
                ClientOutput::Transmit(b) => sock.write_all(&b).unwrap(),
                ClientOutput::Event(e) => events.push(e),
            }
        }
        if let Some(ClientEvent::PublishStarted { .. }) = events.last() {
            for f in &frames {
                client.send_frame(f).unwrap();
            }
            client.finish();
            while let Some(out) = client.poll_output() {
                if let ClientOutput::Transmit(b) = out {
                    sock.write_all(&b).unwrap();
                }
            }
            sent = true;
        } else {
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "ffmpeg closed the connection: {events:?}");
            client.handle_input(Instant::now(), &buf[..n]).unwrap();
        }
    }
    drop(sock);
    // FFmpeg's RTMP server ignores FCUnpublish/deleteStream and reports the
    // publisher's disconnect as an I/O error; FFmpeg publishing to it does the same.
    child.finish(Some(": Input/output error"));
    assert_eq!(events[0], ClientEvent::Connected);

    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .args(["stream=codec_type,nb_read_packets", "-of", "csv=p=0"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(probe.status.success());
    let text = String::from_utf8(probe.stdout).unwrap();
    // ffprobe counts coded frames: no sequence headers, no end of sequence.
    let count = |k| {
        frames
            .iter()
            .filter(|f| f.kind == k && !f.is_sequence_header())
            .filter(|f| k != FrameKind::Video || f.data[1] == 1)
            .count()
    };
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("audio,{}", count(FrameKind::Audio)),
            format!("video,{}", count(FrameKind::Video))
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
