//! FFmpeg's `-progress` output: blocks of `key=value` lines ending in
//! `progress=continue` (or `progress=end`).

/// One progress report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub frame: u64,
    pub fps: f64,
    /// Encoding speed relative to real time (1.0 = real time).
    pub speed: f64,
    pub drop_frames: u64,
    pub dup_frames: u64,
    pub out_time_us: i64,
    pub end: bool,
}

/// Accumulates lines; yields a report at each `progress=` line.
#[derive(Debug, Default)]
pub struct ProgressParser {
    current: Progress,
}

impl ProgressParser {
    pub fn line(&mut self, line: &str) -> Option<Progress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key {
            "frame" => self.current.frame = value.parse().unwrap_or(self.current.frame),
            "fps" => self.current.fps = value.parse().unwrap_or(0.0),
            "speed" => {
                self.current.speed = value.trim_end_matches('x').trim().parse().unwrap_or(0.0);
            }
            "drop_frames" => self.current.drop_frames = value.parse().unwrap_or(0),
            "dup_frames" => self.current.dup_frames = value.parse().unwrap_or(0),
            "out_time_us" | "out_time_ms" => self.current.out_time_us = value.parse().unwrap_or(0),
            "progress" => {
                self.current.end = value == "end";
                return Some(self.current.clone());
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks() {
        let mut p = ProgressParser::default();
        let text = "frame=120\nfps=29.97\nstream_0_0_q=23.0\nbitrate=N/A\nout_time_us=4000000\ndup_frames=1\ndrop_frames=2\nspeed=0.998x\nprogress=continue\nframe=150\nspeed=N/A\nprogress=end\n";
        let reports: Vec<_> = text.lines().filter_map(|l| p.line(l)).collect();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].frame, 120);
        assert!((reports[0].speed - 0.998).abs() < 1e-9);
        assert_eq!((reports[0].drop_frames, reports[0].dup_frames), (2, 1));
        assert_eq!(reports[0].out_time_us, 4_000_000);
        assert!(reports[1].end);
        assert_eq!(reports[1].speed, 0.0);
        assert_eq!(p.line("garbage"), None);
    }
}
