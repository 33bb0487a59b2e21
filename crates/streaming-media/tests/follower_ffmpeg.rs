//! A real rendition: FFmpeg makes a source FLV (H.264 with B-frames + AAC), a second
//! FFmpeg transcodes it through pipes, as the transcoder does, with the flags in
//! [`RENDITION`] that keep every timestamp; the source goes through `Packager`, the
//! rendition through `FollowerPackager`. Every segment number gets the same `tfdt` and
//! duration in both, the pictures the same presentation times, and init + segments
//! decode without a word from FFmpeg, together and one segment at a time. Fails with
//! an install hint where `ffmpeg`/`ffprobe` are not installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bytes::Bytes;
use streaming_media::flv::FlvReader;
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::packager::{
    FollowerPackager, InitSegment, Packager, PackagerConfig, PackagerEvent, Segment, SegmentStart,
    TrackKind,
};

/// The rendition encoder, FLV in on stdin and out on stdout. What keeps the source's
/// millisecond times: `-copyts` (no shift to zero), `-enc_time_base -1` (the encoder
/// works in the demuxer's 1/1000 time base instead of 1/frame rate, which rounds 34 ms
/// steps to 33), `-fps_mode passthrough` (no frame dropped or duplicated); and
/// `-force_key_frames source` + `-forced-idr 1` + `-sc_threshold 0` put an IDR frame
/// at every source key frame and nowhere else (below x264's maximum interval).
const RENDITION: &str = "-copyts -f flv -i pipe:0 -map 0:v:0 -c:v libx264 -preset ultrafast \
    -tune zerolatency -s 320x180 -force_key_frames source -forced-idr 1 -sc_threshold 0 \
    -fps_mode passthrough -enc_time_base -1 -f flv pipe:1";

const CONFIG: PackagerConfig = PackagerConfig {
    target_segment_ms: 2000,
    part_target_ms: 500,
};

fn tools_present() {
    let ok = |bin: &str| Command::new(bin).arg("-version").output().is_ok();
    assert!(
        ok("ffmpeg") && ok("ffprobe"),
        "these tests need ffmpeg and ffprobe: install them with `apt-get install -y ffmpeg`"
    );
}

/// A scratch directory under the system temp dir, removed when dropped.
struct Workdir(PathBuf);

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn workdir(name: &str) -> Workdir {
    let dir = std::env::temp_dir().join(format!("sm-follower-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Workdir(dir)
}

/// Run FFmpeg with `args`, stdin from `input`; returns stdout, asserting silence.
fn ffmpeg(args: &str, input: Option<Bytes>) -> Vec<u8> {
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args.split_whitespace())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.unwrap_or_default();
        std::thread::spawn(move || stdin.write_all(&input))
    });
    let out = child.wait_with_output().unwrap();
    if let Some(w) = writer {
        w.join().unwrap().unwrap();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffmpeg {args}: {stderr}"
    );
    out.stdout
}

/// `pts,flags` of the video packets of an FLV or MP4 file, in ms, sorted.
fn video_packets(path: &Path) -> (Vec<i64>, Vec<i64>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (mut all, mut keys) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split(',');
        let pts: f64 = it.next().unwrap().parse().unwrap();
        let ms = (pts * 1000.0).round() as i64;
        all.push(ms);
        if it.next().unwrap().starts_with('K') {
            keys.push(ms);
        }
    }
    all.sort_unstable();
    keys.sort_unstable();
    (all, keys)
}

fn frames(flv: &[u8]) -> Vec<Frame> {
    FlvReader::new(Bytes::copy_from_slice(flv))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[derive(Default)]
struct Out {
    inits: Vec<InitSegment>,
    segments: Vec<Segment>,
    starts: Vec<SegmentStart>,
    discontinuities: Vec<String>,
}

impl Out {
    fn take(&mut self, ev: PackagerEvent) {
        match ev {
            PackagerEvent::Init(i) if i.track == TrackKind::Video => self.inits.push(i),
            PackagerEvent::Segment(s) if s.track == TrackKind::Video => self.segments.push(s),
            PackagerEvent::Discontinuity { reason } => self.discontinuities.push(reason),
            _ => {}
        }
    }

    fn number(&self, n: u64) -> Option<&Segment> {
        self.segments.iter().find(|s| s.number == n)
    }

    /// Init + segments, as a player would fetch them.
    fn write(&self, path: &Path, only: Option<u64>) {
        assert_eq!(self.inits.len(), 1);
        let mut data = self.inits[0].data.to_vec();
        for seg in &self.segments {
            if only.is_none_or(|n| n == seg.number) {
                data.extend_from_slice(&seg.data);
            }
        }
        std::fs::write(path, data).unwrap();
    }
}

fn package_source(frames: &[Frame]) -> Out {
    let mut p = Packager::new(CONFIG);
    let mut out = Out::default();
    for f in frames {
        p.push(f).unwrap();
        while let Some(ev) = p.poll_output() {
            out.take(ev);
        }
        out.starts
            .extend(std::iter::from_fn(|| p.poll_segment_start()));
    }
    p.finish();
    while let Some(ev) = p.poll_output() {
        out.take(ev);
    }
    out
}

/// The rendition, its `SegmentStart`s cut once it is `lag_ms` past each (negative:
/// that long before it gets there).
fn package_rendition(frames: &[Frame], starts: &[SegmentStart], lag_ms: i64) -> Out {
    let mut f = FollowerPackager::new(CONFIG);
    let mut out = Out::default();
    let mut next = 0;
    for frame in frames {
        if frame.kind == FrameKind::Video && !frame.is_sequence_header() {
            while let Some(s) = starts.get(next) {
                let due = i64::from(s.input_presentation_time()) + lag_ms;
                if i64::from(frame.timestamp) < due {
                    break;
                }
                f.cut(s);
                next += 1;
            }
        }
        f.push(frame).unwrap();
        while let Some(ev) = f.poll_output() {
            out.take(ev);
        }
    }
    starts[next..].iter().for_each(|s| f.cut(s));
    f.finish();
    while let Some(ev) = f.poll_output() {
        out.take(ev);
    }
    out
}

/// Decodes without a word on stderr; returns the number of frames.
fn decode(path: &Path) -> usize {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{path:?}: {stderr}"
    );
    video_packets(path).0.len()
}

fn aligned_rendition(name: &str, source_args: &str, segments: usize) {
    tools_present();
    let dir = workdir(name);
    let src_path = dir.0.join("src.flv");
    ffmpeg(
        &format!("{source_args} -f flv {}", src_path.display()),
        None,
    );
    let src_flv = Bytes::from(std::fs::read(&src_path).unwrap());
    let r_flv = ffmpeg(RENDITION, Some(src_flv.clone()));
    let r_path = dir.0.join("r.flv");
    std::fs::write(&r_path, &r_flv).unwrap();

    // FFmpeg kept every presentation time, and made key frames exactly at the source's.
    let (src_pts, src_keys) = video_packets(&src_path);
    let (r_pts, r_keys) = video_packets(&r_path);
    assert_eq!(r_pts, src_pts, "rendition presentation times");
    assert_eq!(r_keys, src_keys, "rendition key frames");

    let src = package_source(&frames(&src_flv));
    assert!(src.discontinuities.is_empty(), "{:?}", src.discontinuities);
    assert_eq!(src.segments.len(), segments);
    assert_eq!(src.starts.len(), segments);
    for lag_ms in [-300, 0, 500, 2500] {
        let r = package_rendition(&frames(&r_flv), &src.starts, lag_ms);
        assert!(r.discontinuities.is_empty(), "{:?}", r.discontinuities);
        let numbers = |o: &Out| o.segments.iter().map(|s| s.number).collect::<Vec<_>>();
        assert_eq!(numbers(&r), numbers(&src), "lag {lag_ms} ms");
        let last = r.segments.len() - 1;
        for (k, seg) in r.segments.iter().enumerate() {
            let s = src.number(seg.number).unwrap();
            assert_eq!(seg.start, s.start, "segment {} tfdt", seg.number);
            if k < last {
                assert_eq!(seg.duration, s.duration, "segment {}", seg.number);
            } else {
                assert!(seg.duration.abs_diff(s.duration) <= 3000, "last segment");
            }
            assert!(seg.starts_with_keyframe && !seg.discontinuity);
        }
        // Players see the same pictures at the same times in both renditions.
        let (src_cmaf, r_cmaf) = (dir.0.join("src.mp4"), dir.0.join("r.mp4"));
        src.write(&src_cmaf, None);
        r.write(&r_cmaf, None);
        assert_eq!(decode(&r_cmaf), r_pts.len());
        assert_eq!(video_packets(&r_cmaf).0, video_packets(&src_cmaf).0);
        assert_eq!(video_packets(&r_cmaf).1, video_packets(&src_cmaf).1);
        if lag_ms == 0 {
            // Each segment starts with an IDR frame: it decodes on its own.
            for seg in &r.segments {
                let one = dir.0.join(format!("r-{}.mp4", seg.number));
                r.write(&one, Some(seg.number));
                assert!(decode(&one) > 0);
            }
        }
    }
}

#[test]
fn rendition_segments_match_the_source() {
    // As in the issue: 2 s GOPs, B-frames (key frames presented 67 ms after decoding).
    aligned_rendition(
        "g60",
        "-f lavfi -i testsrc2=size=640x360:rate=30 -t 8 -c:v libx264 -g 60 -c:a aac",
        4,
    );
}

#[test]
fn rendition_with_key_frames_between_boundaries_and_an_offset_clock() {
    // 1 s GOPs (every other key frame is no boundary), audio, times from 12.345 s.
    aligned_rendition(
        "g30",
        "-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=sample_rate=44100 -t 8 \
         -c:v libx264 -g 30 -c:a aac -output_ts_offset 12.345",
        4,
    );
}
