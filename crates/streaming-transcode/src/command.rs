//! The FFmpeg command line for a ladder.
//!
//! Input: the source video as FLV on stdin. Output: one FLV per rung, written
//! to a Unix socket we listen on. The flags that keep renditions aligned with
//! the source by construction:
//! - `-copyts`, `-fps_mode passthrough` and `-enc_time_base -1`: every output
//!   frame keeps its source timestamp (milliseconds, as FLV carries them);
//! - `-force_key_frames source`: a keyframe wherever the source has one, so the
//!   packager can cut every rendition at the source's segment boundaries;
//! - `-sc_threshold 0` and `-g` = segment duration: no extra scene-cut
//!   keyframes, and a keyframe at least every segment;
//! - `-tune zerolatency`: no B-frames, no look-ahead, frames out at once.
//! - `-analyzeduration 0 -probesize 32768`: no 5-second probe before the
//!   first output frame (0.8 s instead of 5.2 s to the first 480p bytes).
//!   Audio is not transcoded: every rendition shares the source's AAC track.

use std::path::PathBuf;

use streaming_core::hub::RenditionSpec;

/// One rung's output.
#[derive(Debug, Clone)]
pub struct Output {
    pub spec: RenditionSpec,
    pub socket: PathBuf,
}

/// Builds the argument list (without the program name).
pub fn ffmpeg_args(
    outputs: &[Output],
    preset: &str,
    source_fps: f64,
    segment_ms: u32,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-nostats",
        "-progress",
        "pipe:1",
        "-stats_period",
        "1",
        // Start at once: the sequence header tells the codec, no probing needed.
        "-analyzeduration",
        "0",
        "-probesize",
        "32768",
        "-copyts",
        "-f",
        "flv",
        "-i",
        "pipe:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for o in outputs {
        let fps = o.spec.frame_rate.max(1.0);
        let gop = ((fps * f64::from(segment_ms) / 1000.0).round() as u32).max(1);
        let kbps = o.spec.video_kbps.max(1);
        let mut filter = format!("scale={}:{}:flags=bicubic", o.spec.width, o.spec.height);
        // Cap the frame rate only when the source is clearly faster than the rung.
        if source_fps > fps + 0.5 {
            filter.push_str(&format!(",fps={fps}"));
        }
        a.extend(
            [
                "-map",
                "0:v:0",
                "-vf",
                &filter,
                "-c:v",
                "libx264",
                "-preset",
                preset,
                "-tune",
                "zerolatency",
                "-profile:v",
                "main",
                "-pix_fmt",
                "yuv420p",
                "-b:v",
                &format!("{kbps}k"),
                "-maxrate",
                &format!("{}k", kbps * 11 / 10),
                "-bufsize",
                &format!("{}k", kbps * 2),
                "-g",
                &gop.to_string(),
                "-sc_threshold",
                "0",
                "-force_key_frames",
                "source",
                "-forced-idr",
                "1",
                "-fps_mode",
                "passthrough",
                "-enc_time_base",
                "-1",
                "-an",
                "-flvflags",
                "no_duration_filesize",
                "-f",
                "flv",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        a.push(format!("unix:{}", o.socket.display()));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_output_per_rung_with_alignment_flags() {
        let spec = |name: &str, w, h, k| RenditionSpec {
            name: Arc::from(name),
            width: w,
            height: h,
            video_kbps: k,
            frame_rate: 30.0,
        };
        let outs = vec![
            Output {
                spec: spec("720p", 1280, 720, 5000),
                socket: "/tmp/a.sock".into(),
            },
            Output {
                spec: spec("480p", 854, 480, 2000),
                socket: "/tmp/b.sock".into(),
            },
        ];
        let args = ffmpeg_args(&outs, "veryfast", 30.0, 2000).join(" ");
        assert!(args.contains("-copyts -f flv -i pipe:0"));
        assert_eq!(
            args.matches("-force_key_frames source -forced-idr 1")
                .count(),
            2
        );
        assert!(args.contains("scale=1280:720:flags=bicubic -c:v libx264"));
        assert!(args.contains("-b:v 2000k -maxrate 2200k -bufsize 4000k -g 60"));
        assert!(args.ends_with("unix:/tmp/b.sock"));
        assert!(!args.contains("fps=30"));
        let fast = ffmpeg_args(&outs[..1], "veryfast", 60.0, 2000).join(" ");
        assert!(fast.contains("scale=1280:720:flags=bicubic,fps=30"));
    }
}
