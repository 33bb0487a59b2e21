//! A scripted LL-HLS origin for the load tool's tests (RFC 8216bis §6.2.5):
//! one stream whose parts (250 ms, four to a 1 s segment) appear on a timer;
//! playlists with `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-SKIP`; blocking
//! reloads and requests for the next part held until it exists (400 when too
//! far ahead, 503 after 3 s); a per-viewer `sid` required on every media
//! request; every request counted per viewer and path.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use tokio::sync::watch;

pub const PART_MS: u64 = 250;
pub const PARTS_PER_SEGMENT: u64 = 4;
/// Segments listed per playlist.
const WINDOW: u64 = 10;
/// Parts already made when the origin starts (a full window of segments).
const INITIAL: u64 = 40;
const CAN_SKIP_UNTIL_S: u64 = 6;
const HOLD_LIMIT: Duration = Duration::from_secs(3);

pub struct Origin {
    /// false: ordinary HLS playlists (no LL-HLS tag), as servers without LL.
    ll: bool,
    /// Parts made so far (global part `g` exists when this is > g).
    produced: watch::Receiver<u64>,
    /// Wall clock (ms) of media time 0.
    anchor_ms: i64,
    sids: AtomicU64,
    /// Requests by `sid` + path.
    pub hits: Mutex<HashMap<String, u32>>,
    pub skip_requests: AtomicU64,
    pub blocking_requests: AtomicU64,
    pub segment_requests: AtomicU64,
    pub part_requests: AtomicU64,
}

impl Origin {
    fn produced(&self) -> u64 {
        *self.produced.borrow()
    }

    /// Waits until part `g` exists; false after the hold limit.
    async fn wait_for(&self, g: u64) -> bool {
        let mut rx = self.produced.clone();
        tokio::time::timeout(HOLD_LIMIT, rx.wait_for(|p| *p > g))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Requests of all viewers for the paths `filter` accepts.
    pub fn count(&self, filter: impl Fn(&str) -> bool) -> u32 {
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|(k, _)| filter(k)).map(|(_, v)| v).sum()
    }

    /// The largest number of times one viewer fetched one file, and that file.
    pub fn most_fetched(&self, filter: impl Fn(&str) -> bool) -> (u32, String) {
        let hits = self.hits.lock().unwrap();
        hits.iter()
            .filter(|(k, _)| filter(k))
            .map(|(k, v)| (*v, k.clone()))
            .max()
            .unwrap_or_default()
    }

    fn media_playlist(&self, sid: &str, skip: bool) -> String {
        let p = self.produced();
        let complete = p / PARTS_PER_SEGMENT;
        let first = complete.saturating_sub(WINDOW);
        let seg_s = PART_MS * PARTS_PER_SEGMENT / 1000;
        // Delta update: segments ending more than CAN-SKIP-UNTIL before the end.
        let skipped = if skip {
            (first..complete)
                .filter(|n| (n + 1) * seg_s + CAN_SKIP_UNTIL_S < complete * seg_s)
                .count() as u64
        } else {
            0
        };
        let mut t = format!("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{seg_s}\n");
        if self.ll {
            t.push_str(&format!(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},CAN-SKIP-UNTIL={CAN_SKIP_UNTIL_S}.0\n\
                 #EXT-X-PART-INF:PART-TARGET={:.3}\n",
                3.0 * PART_MS as f64 / 1000.0,
                PART_MS as f64 / 1000.0
            ));
        }
        t.push_str(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n"));
        if skipped > 0 {
            t.push_str(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n"));
        }
        let listed = first + skipped;
        t.push_str(&format!("#EXT-X-MAP:URI=\"init.mp4?sid={sid}\"\n"));
        let pdt = self.anchor_ms + (listed * PART_MS * PARTS_PER_SEGMENT) as i64;
        t.push_str(&format!("#EXT-X-PROGRAM-DATE-TIME:{}\n", iso(pdt)));
        let ll = self.ll;
        let part_line = |t: &mut String, n: u64, i: u64| {
            if !ll {
                return;
            }
            let ind = if i == 0 { ",INDEPENDENT=YES" } else { "" };
            t.push_str(&format!(
                "#EXT-X-PART:DURATION={:.3},URI=\"segment-{n}.{i}.m4s?sid={sid}\"{ind}\n",
                PART_MS as f64 / 1000.0
            ));
        };
        for n in listed..complete {
            if n + 2 >= complete {
                for i in 0..PARTS_PER_SEGMENT {
                    part_line(&mut t, n, i);
                }
            }
            t.push_str(&format!(
                "#EXTINF:{seg_s}.000,\nsegment-{n}.m4s?sid={sid}\n"
            ));
        }
        for i in 0..p % PARTS_PER_SEGMENT {
            part_line(&mut t, complete, i);
        }
        if ll {
            t.push_str(&format!(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"segment-{complete}.{}.m4s?sid={sid}\"\n",
                p % PARTS_PER_SEGMENT
            ));
        }
        t
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for ms since the epoch (days to civil date
/// after Howard Hinnant's algorithm).
fn iso(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

async fn handle(State(o): State<Arc<Origin>>, uri: Uri) -> Response {
    let Ok(url) = Url::parse(&format!("http://origin{uri}")) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let q = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let path = url.path().to_owned();
    if path == "/hls/s/master.m3u8" {
        let sid = format!("v{}", o.sids.fetch_add(1, Ordering::Relaxed));
        return format!(
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Audio\",DEFAULT=YES,URI=\"audio/index.m3u8?sid={sid}\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"audio\"\n\
             source/index.m3u8?sid={sid}\n"
        )
        .into_response();
    }
    let Some(sid) = q("sid") else {
        return status(StatusCode::FORBIDDEN);
    };
    *o.hits
        .lock()
        .unwrap()
        .entry(format!("{sid}|{path}"))
        .or_default() += 1;
    let Some(file) = path
        .strip_prefix("/hls/s/source/")
        .or_else(|| path.strip_prefix("/hls/s/audio/"))
    else {
        return status(StatusCode::NOT_FOUND);
    };
    if file == "index.m3u8" {
        let skip = q("_HLS_skip").as_deref() == Some("YES");
        if skip {
            o.skip_requests.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(msn) = q("_HLS_msn") {
            o.blocking_requests.fetch_add(1, Ordering::Relaxed);
            let (Ok(msn), Ok(part)) = (
                msn.parse::<u64>(),
                q("_HLS_part").unwrap_or_default().parse::<u64>(),
            ) else {
                return status(StatusCode::BAD_REQUEST);
            };
            let g = msn * PARTS_PER_SEGMENT + part;
            if part >= PARTS_PER_SEGMENT || g > o.produced() + PARTS_PER_SEGMENT {
                return status(StatusCode::BAD_REQUEST);
            }
            if !o.wait_for(g).await {
                return status(StatusCode::SERVICE_UNAVAILABLE);
            }
        }
        return o.media_playlist(&sid, skip).into_response();
    }
    if file == "init.mp4" {
        return vec![0u8; 600].into_response();
    }
    let Some(name) = file
        .strip_prefix("segment-")
        .and_then(|f| f.strip_suffix(".m4s"))
    else {
        return status(StatusCode::NOT_FOUND);
    };
    let nums: Vec<u64> = name.split('.').filter_map(|n| n.parse().ok()).collect();
    match nums[..] {
        [n] => {
            o.segment_requests.fetch_add(1, Ordering::Relaxed);
            if (n + 1) * PARTS_PER_SEGMENT <= o.produced() {
                vec![1u8; 4000].into_response()
            } else {
                status(StatusCode::NOT_FOUND)
            }
        }
        [n, i] if i < PARTS_PER_SEGMENT => {
            o.part_requests.fetch_add(1, Ordering::Relaxed);
            let g = n * PARTS_PER_SEGMENT + i;
            // The next part is held until it is made; later ones do not exist.
            if g > o.produced() || !o.wait_for(g).await {
                return status(StatusCode::NOT_FOUND);
            }
            vec![2u8; 1000].into_response()
        }
        _ => status(StatusCode::NOT_FOUND),
    }
}

/// Starts the LL-HLS origin on 127.0.0.1; it runs until the test's runtime ends.
pub async fn start() -> (SocketAddr, Arc<Origin>) {
    start_with(true).await
}

/// The origin without LL-HLS (`ll` false): ordinary playlists only.
pub async fn start_with(ll: bool) -> (SocketAddr, Arc<Origin>) {
    let (tx, rx) = watch::channel(INITIAL);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let origin = Arc::new(Origin {
        ll,
        produced: rx,
        // Part g (0-based) ends at media time (g + 1) × PART_MS and is made
        // (INITIAL + k) ticks after the start for g = INITIAL + k - 1.
        anchor_ms: now_ms - (INITIAL * PART_MS) as i64,
        sids: AtomicU64::new(0),
        hits: Mutex::default(),
        skip_requests: AtomicU64::new(0),
        blocking_requests: AtomicU64::new(0),
        segment_requests: AtomicU64::new(0),
        part_requests: AtomicU64::new(0),
    });
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut made = INITIAL;
        loop {
            tokio::time::sleep_until(start + Duration::from_millis((made + 1 - INITIAL) * PART_MS))
                .await;
            made += 1;
            if tx.send(made).is_err() {
                return;
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(origin.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, origin)
}
