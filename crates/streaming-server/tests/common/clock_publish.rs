//! A publisher whose pictures carry their capture clock, for glass-to-glass
//! latency measured in a browser (`web/tests/latency.mjs` reads the code back).
//!
//! A thread paints raw yuv420p frames (640×360 by default, 30 fps) showing the
//! wall-clock time of their capture instant and writes each one, at that
//! instant, into `ffmpeg -f rawvideo -i -`, which adds a sine AAC track from
//! lavfi, encodes libx264 `-preset ultrafast -tune zerolatency` with a fixed
//! GOP (2 s at 30 fps) and publishes FLV over RTMP. Bounded in time (`seconds`);
//! the FFmpeg child is killed and the thread joined on drop.
//!
//! # The clock code (shared with `web/tests/latency.mjs`; change both together)
//!
//! The picture is a grid of [`COLS`] × [`ROWS`] equal cells (40×40 px at
//! 640×360), each wholly black (Y = 16) or white (Y = 235); a reader samples
//! the middle of each cell at relative coordinates, so any rendition size
//! works.
//!
//! - Row 0 is the fixed sync pattern [`SYNC`] (1 = white), asymmetric, so a
//!   picture that is not a clock frame (black, mid-transition, mirrored) is
//!   recognised as such.
//! - Rows 1.. carry [`BITS`] bits, row-major, two cells per bit (Manchester:
//!   1 = white then black, 0 = black then white), so every bit checks itself:
//!   two cells of the same shade are a misread, never a wrong bit.
//! - The 64 bits are the capture time in Unix milliseconds (48 bits, most
//!   significant first) followed by the CRC-16/CCITT-FALSE of those six bytes
//!   (big-endian), so a misread that slips through Manchester is still caught.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Cells across the picture.
pub const COLS: usize = 16;
/// Cells down the picture (one sync row, then the data rows).
pub const ROWS: usize = 9;
/// Bits carried: 48 of Unix ms and 16 of CRC.
pub const BITS: usize = 64;
/// Row 0 of the code (1 = white).
pub const SYNC: [u8; COLS] = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0];
/// Luma of a black and of a white cell (limited range, as FFmpeg reads yuv420p).
pub const BLACK: u8 = 16;
pub const WHITE: u8 = 235;

const _: () = assert!((ROWS - 1) * COLS == 2 * BITS);

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The shade (true = white) of every cell, row-major, for `unix_ms` (low 48 bits).
pub fn cells(unix_ms: u64) -> [bool; COLS * ROWS] {
    let ms = unix_ms & ((1 << 48) - 1);
    let bytes = &ms.to_be_bytes()[2..];
    let word = (ms << 16) | u64::from(crc16(bytes));
    let mut out = [false; COLS * ROWS];
    for (c, &s) in SYNC.iter().enumerate() {
        out[c] = s == 1;
    }
    for bit in 0..BITS {
        let one = (word >> (BITS - 1 - bit)) & 1 == 1;
        out[COLS + 2 * bit] = one;
        out[COLS + 2 * bit + 1] = !one;
    }
    out
}

/// Paints the Y plane (`width × height`) of a frame carrying `unix_ms`.
pub fn paint_luma(y: &mut [u8], width: usize, height: usize, unix_ms: u64) {
    let shades = cells(unix_ms);
    for row in 0..height {
        let r = row * ROWS / height;
        let line = &mut y[row * width..(row + 1) * width];
        for (col, px) in line.iter_mut().enumerate() {
            let c = col * COLS / width;
            *px = if shades[r * COLS + c] { WHITE } else { BLACK };
        }
    }
}

/// Why a picture did not yield a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Row 0 is not the sync pattern: not a clock picture.
    NoSync,
    /// Sync found, but a bit's two cells had the same shade.
    Manchester,
    /// Every bit read, but the CRC does not match.
    Crc,
}

/// Reads the clock back from a Y plane (full range or limited, any size): the
/// mean of the middle half of each cell, white above 128.
pub fn read_luma(y: &[u8], width: usize, height: usize) -> Result<u64, Unreadable> {
    let cell = |r: usize, c: usize| -> i32 {
        let (x0, x1) = (
            (4 * c + 1) * width / (4 * COLS),
            (4 * c + 3) * width / (4 * COLS),
        );
        let (y0, y1) = (
            (4 * r + 1) * height / (4 * ROWS),
            (4 * r + 3) * height / (4 * ROWS),
        );
        let mut sum = 0u64;
        let mut n = 0u64;
        for row in y0..y1.max(y0 + 1) {
            for col in x0..x1.max(x0 + 1) {
                sum += u64::from(y[row * width + col]);
                n += 1;
            }
        }
        (sum / n) as i32
    };
    for (c, &s) in SYNC.iter().enumerate() {
        let v = cell(0, c);
        let ok = if s == 1 { v > 160 } else { v < 96 };
        if !ok {
            return Err(Unreadable::NoSync);
        }
    }
    let mut word = 0u64;
    for bit in 0..BITS {
        let i = COLS + 2 * bit;
        let (a, b) = (
            cell(i / COLS, i % COLS),
            cell((i + 1) / COLS, (i + 1) % COLS),
        );
        if (a - b).abs() < 64 {
            return Err(Unreadable::Manchester);
        }
        word = (word << 1) | u64::from(a > b);
    }
    let ms = word >> 16;
    if crc16(&ms.to_be_bytes()[2..]) != (word & 0xFFFF) as u16 {
        return Err(Unreadable::Crc);
    }
    Ok(ms)
}

/// Unix time now, in milliseconds.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Options of a clock publish.
#[derive(Debug, Clone)]
pub struct ClockPublish {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// Frames between keyframes (60 = 2 s at 30 fps).
    pub gop: u32,
    pub video_kbps: u32,
    /// How long to publish.
    pub seconds: f64,
}

impl Default for ClockPublish {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            fps: 30,
            gop: 60,
            video_kbps: 1000,
            seconds: 180.0,
        }
    }
}

/// A running clock publisher (FFmpeg child + painting thread).
pub struct ClockPublisher {
    child: Child,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    first_frame_ms: Arc<AtomicU64>,
    frames: Arc<AtomicU64>,
}

impl ClockPublisher {
    /// Starts FFmpeg publishing to `rtmp_url` and the thread feeding it.
    pub fn start(rtmp_url: &str, opts: &ClockPublish) -> Self {
        crate::common::require("ffmpeg", "ffmpeg");
        let gop = opts.gop.to_string();
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-f", "rawvideo", "-pixel_format", "yuv420p"])
            .args(["-video_size", &format!("{}x{}", opts.width, opts.height)])
            .args(["-framerate", &opts.fps.to_string(), "-i", "-"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-map", "0:v", "-map", "1:a", "-shortest"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-pix_fmt", "yuv420p", "-g", &gop, "-keyint_min", &gop])
            .args([
                "-sc_threshold",
                "0",
                "-b:v",
                &format!("{}k", opts.video_kbps),
            ])
            .args(["-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"])
            .args(["-flush_packets", "1", "-f", "flv", rtmp_url])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ffmpeg");
        let stdin = child.stdin.take().expect("ffmpeg stdin");
        let stop = Arc::new(AtomicBool::new(false));
        let first_frame_ms = Arc::new(AtomicU64::new(0));
        let frames = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, first, frames, opts) = (
                stop.clone(),
                first_frame_ms.clone(),
                frames.clone(),
                opts.clone(),
            );
            std::thread::Builder::new()
                .name("clock-publish".into())
                .spawn(move || feed(stdin, &opts, &stop, &first, &frames))
                .expect("spawn clock thread")
        };
        Self {
            child,
            thread: Some(thread),
            stop,
            first_frame_ms,
            frames,
        }
    }

    /// Unix ms at which FFmpeg had taken the first frame: its write into the
    /// pipe returned (FFmpeg reads it once started, so its process start is
    /// not counted; its encoding, RTMP connect and everything after are).
    pub fn first_frame_unix_ms(&self) -> Option<u64> {
        match self.first_frame_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// Frames written to FFmpeg so far.
    pub fn frames_written(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Whether FFmpeg is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops feeding, kills FFmpeg and returns what it wrote on stderr.
    pub fn stop(mut self) -> String {
        self.halt();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ClockPublisher {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The painting loop: frame 0 is captured and written at once (the write
/// returns when FFmpeg, started, has read it: `start`); frame `i` is captured
/// (its clock read, painted and written) at `start + i / fps`, until `seconds`
/// have passed, `stop` is set or FFmpeg stops reading. Only frame 0 carries a
/// clock older than its entry into FFmpeg (by FFmpeg's start-up).
fn feed(
    mut stdin: ChildStdin,
    opts: &ClockPublish,
    stop: &AtomicBool,
    first: &AtomicU64,
    frames: &AtomicU64,
) {
    let (w, h) = (opts.width, opts.height);
    let mut frame = vec![128u8; w * h * 3 / 2];
    let total = (opts.seconds * f64::from(opts.fps)).round() as u64;
    let period = Duration::from_secs(1) / opts.fps;
    let mut start = Instant::now();
    for i in 0..total {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let at = start + period * u32::try_from(i).unwrap_or(u32::MAX);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        paint_luma(&mut frame[..w * h], w, h, unix_ms_now());
        if stdin.write_all(&frame).is_err() {
            return;
        }
        if i == 0 {
            start = Instant::now();
            first.store(unix_ms_now(), Ordering::Release);
        }
        frames.fetch_add(1, Ordering::Relaxed);
    }
}
