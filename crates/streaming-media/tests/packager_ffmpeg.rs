//! End to end with real peers: FFmpeg makes an H.264 + AAC FLV at test time, the FLV
//! reader and the packager turn it into CMAF, and ffprobe/FFmpeg must accept and
//! decode every init + segment without a word on stderr; `mp4-atom` must read every
//! box back. Fails with an install hint where `ffmpeg`/`ffprobe` are not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use mp4_atom::{Any, Decode, Ftyp, Moov};
use streaming_media::flv::FlvReader;
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::packager::{
    InitSegment, Packager, PackagerConfig, PackagerEvent, Segment, TrackKind,
};

fn tools_present() -> bool {
    let ok = |bin: &str| Command::new(bin).arg("-version").output().is_ok();
    assert!(
        ok("ffmpeg") && ok("ffprobe"),
        "these tests need ffmpeg and ffprobe: install them with `apt-get install -y ffmpeg` (scripts/test does this)"
    );
    true
}

/// A scratch directory under the system temp dir, removed when dropped.
struct Workdir(PathBuf);

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Workdir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn workdir(name: &str) -> Workdir {
    let dir = std::env::temp_dir().join(format!("sm-packager-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Workdir(dir)
}

/// Run FFmpeg to write `out.flv` in `dir` with the given input/encoder arguments.
fn make_flv(dir: &Path, name: &str, args: &str) -> Vec<Frame> {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args.split_whitespace())
        .args(["-f", "flv"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg failed: {args}");
    let data = Bytes::from(std::fs::read(&path).unwrap());
    FlvReader::new(data)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[derive(Default)]
struct Out {
    inits: Vec<InitSegment>,
    segments: Vec<Segment>,
    discontinuities: Vec<String>,
}

impl Out {
    fn drain(&mut self, p: &mut Packager) {
        while let Some(ev) = p.poll_output() {
            match ev {
                PackagerEvent::Init(i) => self.inits.push(i),
                PackagerEvent::Segment(s) => self.segments.push(s),
                PackagerEvent::Discontinuity { reason } => self.discontinuities.push(reason),
                PackagerEvent::Part(_) => {}
            }
        }
    }

    fn segs(&self, kind: TrackKind, init_version: u32) -> Vec<&Segment> {
        let segs = self.segments.iter();
        segs.filter(|s| s.track == kind && s.init_version == init_version)
            .collect()
    }

    fn init(&self, kind: TrackKind, version: u32) -> &InitSegment {
        let mut inits = self.inits.iter();
        inits
            .find(|i| i.track == kind && i.version == version)
            .unwrap()
    }
}

/// A coded frame: not a sequence header, nor an AVC end of sequence.
fn is_media(f: &Frame) -> bool {
    let end_of_sequence = f.kind == FrameKind::Video && f.data.get(1) == Some(&2);
    !f.is_sequence_header() && !end_of_sequence
}

fn push_all(p: &mut Packager, out: &mut Out, frames: &[Frame]) {
    for f in frames {
        p.push(f).unwrap();
        out.drain(p);
    }
}

/// Every box of an init segment and of the segments decodes with mp4-atom.
fn check_boxes(init: &InitSegment, segments: &[&Segment]) {
    let buf = &mut &init.data[..];
    Ftyp::decode(buf).unwrap();
    Moov::decode(buf).unwrap();
    assert!(buf.is_empty());
    for seg in segments {
        let buf = &mut &seg.data[..];
        let mut kinds = Vec::new();
        while !buf.is_empty() {
            kinds.push(Any::decode(buf).unwrap().kind().to_string());
        }
        assert_eq!(kinds[0], "styp");
        assert!(kinds.len() >= 3 && kinds.len() % 2 == 1, "{kinds:?}");
    }
}

/// ffprobe and a full FFmpeg decode of init + segments report nothing on stderr;
/// returns the number of frames decoded.
fn check_decodes(dir: &Path, name: &str, init: &InitSegment, segments: &[&Segment]) -> u64 {
    let path = dir.join(name);
    let mut data = init.data.to_vec();
    for seg in segments {
        data.extend_from_slice(&seg.data);
    }
    std::fs::write(&path, &data).unwrap();
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&probe.stderr);
    assert!(
        probe.status.success() && stderr.is_empty(),
        "ffprobe {name}: {stderr}"
    );
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && stderr.is_empty(),
        "ffmpeg {name}: {stderr}"
    );
    String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// Presentation times (seconds) of a stream's packets, in presentation order.
fn packet_pts(path: &Path, stream: &str) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pts: Vec<f64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    pts.sort_by(f64::total_cmp);
    pts
}

/// Package a whole FFmpeg-made stream and check it every way we can.
fn round_trip(name: &str, args: &str, fps: u64) {
    if !tools_present() {
        return;
    }
    let dir = workdir(name);
    let frames = make_flv(&dir, "in.flv", args);
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = Out::default();
    push_all(&mut p, &mut out, &frames);
    p.finish();
    out.drain(&mut p);
    assert!(out.discontinuities.is_empty(), "{:?}", out.discontinuities);
    assert_eq!(out.inits.len(), 2);

    let is_media = |f: &&Frame| is_media(f);
    let video_in: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Video)
        .filter(is_media)
        .collect();
    // Audio before the first video key frame is dropped, so that both tracks start
    // segment 1 together.
    let first_key = video_in[0].timestamp;
    let audio_in = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Audio && f.timestamp >= first_key)
        .filter(is_media)
        .count() as u64;

    for kind in [TrackKind::Video, TrackKind::Audio] {
        let init = out.init(kind, 1);
        let segs = out.segs(kind, 1);
        assert!(segs.len() >= 2, "{kind:?}: {} segments", segs.len());
        check_boxes(init, &segs);
        for (i, seg) in segs.iter().enumerate() {
            assert_eq!(seg.number, i as u64 + 1);
            if kind == TrackKind::Video {
                assert!(seg.starts_with_keyframe);
            }
            // Each segment decodes on its own after the init segment.
            check_decodes(&dir, &format!("{kind:?}-{}.mp4", seg.number), init, &[seg]);
        }
        let decoded = check_decodes(&dir, &format!("{kind:?}.mp4"), init, &segs);
        let total: u64 = segs.iter().map(|s| s.duration).sum();
        match kind {
            TrackKind::Video => {
                assert_eq!(decoded, video_in.len() as u64, "every video frame decodes");
                // Presentation times survive (B-frame composition offsets included).
                let pts_in = packet_pts(&dir.join("in.flv"), "v:0");
                let pts_out = packet_pts(&dir.join("Video.mp4"), "v:0");
                assert_eq!(pts_in.len(), pts_out.len());
                for (i, o) in pts_in.iter().zip(&pts_out) {
                    assert!((i - o).abs() < 0.0015, "pts {i} in, {o} out");
                }
                let frame = 90_000 / fps;
                let span = u64::from(video_in.last().unwrap().timestamp) * 90 + frame;
                assert!(total.abs_diff(span) <= frame, "{total} vs {span}");
            }
            TrackKind::Audio => {
                assert_eq!(decoded, audio_in, "every audio frame decodes");
                assert!(total.abs_diff(audio_in * 1024) <= 1024, "{total}");
            }
        }
    }
    // Video and audio segment N start together (within an audio frame), except that
    // the source's audio may start later than its video.
    let video_segs = out.segs(TrackKind::Video, 1);
    for (v, a) in video_segs.iter().zip(out.segs(TrackKind::Audio, 1)) {
        assert_eq!(v.number, a.number);
        let v_s = v.start as f64 / 90_000.0;
        let a_s = a.start as f64 / f64::from(a.timescale);
        let late = if v.number == 1 { 0.1 } else { 0.025 };
        let ok = (-0.001..late).contains(&(a_s - v_s));
        assert!(ok, "segment {}: {v_s} vs {a_s}", v.number);
    }
}

#[test]
fn high_profile_b_frames_44k_mono() {
    round_trip(
        "high",
        "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine -t 5 \
         -c:v libx264 -g 60 -c:a aac",
        30,
    );
}

#[test]
fn baseline_25fps_48k_stereo() {
    round_trip(
        "baseline",
        "-f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=sample_rate=48000 -t 6 \
         -c:v libx264 -profile:v baseline -g 50 -c:a aac -ac 2",
        25,
    );
}

/// A reconnect (marked) and a backwards jump (detected): both segments after the
/// break are flagged, the timeline continues, and everything still decodes.
#[test]
fn discontinuities_still_decode() {
    if !tools_present() {
        return;
    }
    let dir = workdir("disc");
    let frames = make_flv(
        &dir,
        "in.flv",
        "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine -t 3 \
         -c:v libx264 -g 30 -c:a aac",
    );
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = Out::default();
    push_all(&mut p, &mut out, &frames);
    p.mark_discontinuity();
    push_all(&mut p, &mut out, &frames); // new publisher: same headers, time from 0
    push_all(&mut p, &mut out, &frames); // not marked: detected as going backwards
    p.finish();
    out.drain(&mut p);
    assert_eq!(out.discontinuities.len(), 2, "{:?}", out.discontinuities);
    assert_eq!(out.inits.len(), 2, "same configuration: no new init");
    let media_frames = |kind| {
        let f = frames.iter().filter(|f| f.kind == kind);
        f.filter(|f| is_media(f)).count() as u64
    };
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let segs = out.segs(kind, 1);
        assert_eq!(segs.iter().filter(|s| s.discontinuity).count(), 2);
        for pair in segs.windows(2) {
            assert!(pair[1].start >= pair[0].start + pair[0].duration);
            assert_eq!(pair[1].number, pair[0].number + 1);
        }
        check_boxes(out.init(kind, 1), &segs);
        let name = format!("{kind:?}.mp4");
        let decoded = check_decodes(&dir, &name, out.init(kind, 1), &segs);
        assert_eq!(
            decoded,
            3 * media_frames(kind.into_frame_kind()),
            "{kind:?}"
        );
    }
}

/// A new resolution mid-stream: Init version 2, flagged segment, both halves decode.
#[test]
fn resolution_change_gets_a_new_init() {
    if !tools_present() {
        return;
    }
    let dir = workdir("reso");
    let args = |size: &str| {
        format!(
            "-f lavfi -i testsrc2=size={size}:rate=30 -f lavfi -i sine -t 3 \
             -c:v libx264 -g 30 -c:a aac"
        )
    };
    let first = make_flv(&dir, "a.flv", &args("320x240"));
    let mut second = make_flv(&dir, "b.flv", &args("160x120"));
    for f in &mut second {
        f.timestamp += 3000; // continuous time: only the configuration changes
    }
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = Out::default();
    push_all(&mut p, &mut out, &first);
    push_all(&mut p, &mut out, &second);
    p.finish();
    out.drain(&mut p);
    let v2 = out.init(TrackKind::Video, 2);
    assert_eq!((v2.info.width, v2.info.height), (Some(160), Some(120)));
    for version in [1, 2] {
        let segs = out.segs(TrackKind::Video, version);
        assert!(!segs.is_empty());
        assert_eq!(segs[0].discontinuity, version == 2);
        let init = out.init(TrackKind::Video, version);
        check_boxes(init, &segs);
        let decoded = check_decodes(&dir, &format!("v{version}.mp4"), init, &segs);
        assert_eq!(decoded, 90);
    }
}

trait IntoFrameKind {
    fn into_frame_kind(self) -> FrameKind;
}

impl IntoFrameKind for TrackKind {
    fn into_frame_kind(self) -> FrameKind {
        match self {
            TrackKind::Video => FrameKind::Video,
            TrackKind::Audio => FrameKind::Audio,
        }
    }
}
