#!/usr/bin/env node
// Glass-to-glass latency in headless Chromium: reads the capture clock that
// the publisher paints into every picture (crates/streaming-server/tests/
// common/clock_publish.rs) back from the frames the page presents.
//
//   node web/tests/latency.mjs <page-url> [--warmup 4] [--window 20]
//        [--start-timeout 30] [--chromium /usr/bin/chromium] [--screenshot FILE]
//
// The page is any of the player pages (/watch/{id}, /watch/{id}/dash,
// /watch/{id}/shaka); its <video> is window.__player.video, else the first
// <video>, and its own latency estimate window.__player.liveLatency() (seconds
// behind the live edge, or null).
//
// In the page, every presented frame (requestVideoFrameCallback; without it,
// requestAnimationFrame and a changed currentTime) is drawn to a 320×180
// canvas and its clock decoded: row 0 of a 16×9 grid is a sync pattern, the
// other rows 64 Manchester-coded bits (48-bit Unix ms + CRC-16/CCITT-FALSE).
// Each decoded frame gives one latency sample, Date.now() − its clock (both
// this machine's system clock). Pictures without the sync row (black, before
// the first frame) are counted as `unsynced`; pictures with it whose bits or
// CRC do not check, or whose clock is implausible (in the future, or > 120 s
// old), as `misreads`.
//
// Prints {"event":"opened","at":ms} when the page has been navigated to
// (a harness can start publishing then), then ONE result JSON line:
//   openedAt, firstFrameAt (Unix ms: first decoded frame), openToFirstFrameMs,
//   frames (decoded, all run), misreads, unsynced, window: {from, to, samples,
//   fps, latency: {median, p95, min, max, mean} (s), playerLatency: {median,
//   last} (s), waiting, longestStall (s), stalls (≥ 0.3 s), advanced (s)},
//   engine, errors.
// With LATENCY_TRACE=1 in the environment, every request the page makes
// (when it ended, in ms since the page was opened; status; path; how long it
// took) and the video's loadstart,
// loadedmetadata, playing and waiting events are written to stderr, to see
// where the time to the first frame goes.
//
// Exit status: 0 iff a frame was decoded, the window holds samples and no
// misread was seen; 1 otherwise; 2 on bad usage. Chromium gets a fresh
// temporary profile each run.

import { DEFAULT_CHROMIUM, collectErrors, deadline, freshProfile, launch, removeProfile } from "./browser.mjs";

const USAGE =
  "usage: node latency.mjs <page-url> [--warmup N] [--window N] [--start-timeout N] " +
  "[--chromium PATH] [--screenshot FILE]";

function usage(msg) {
  console.error(`latency.mjs: ${msg}\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    url: null,
    warmup: 4,
    window: 20,
    startTimeout: 30,
    chromium: DEFAULT_CHROMIUM,
    screenshot: null,
  };
  const numeric = { "--warmup": "warmup", "--window": "window", "--start-timeout": "startTimeout" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg in numeric) {
      const value = Number(argv[++i]);
      if (!Number.isFinite(value) || value < 0) usage(`${arg} needs a non-negative number`);
      opts[numeric[arg]] = value;
    } else if (arg === "--chromium" || arg === "--screenshot") {
      const value = argv[++i];
      if (!value) usage(`${arg} needs a value`);
      opts[arg.slice(2)] = value;
    } else if (arg.startsWith("--")) {
      usage(`unknown option ${arg}`);
    } else if (opts.url === null) {
      opts.url = arg;
    } else {
      usage(`unexpected argument ${arg}`);
    }
  }
  if (!opts.url) usage("missing <page-url>");
  return opts;
}

// ---- code run in the page (installed before the page's own scripts) -------

function installMeter() {
  const COLS = 16;
  const ROWS = 9;
  const BITS = 64;
  const SYNC = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0];
  const W = 320;
  const H = 180;
  const MAX_AGE_MS = 120000;
  const MAX_SAMPLES = 20000;

  const M = {
    installedAt: Date.now(),
    presented: 0,
    frames: 0,
    unsynced: 0,
    misreads: 0,
    misreadKinds: { manchester: 0, crc: 0, implausible: 0 },
    firstFrameAt: null,
    samples: [], // [wall ms, clock ms, mediaTime s]
    player: [], // [wall ms, player latency s|null, currentTime s, paused, playbackRate]
    waiting: [], // wall ms of each `waiting` after the first frame
    stalls: [], // [start wall ms, duration ms] of currentTime standing still ≥ 300 ms
    method: null,
  };
  window.__meter = M;

  function crc16(bytes) {
    let crc = 0xffff;
    for (const b of bytes) {
      crc ^= b << 8;
      for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
  }

  // Mean luma of the middle half of cell (r, c), as clock_publish.rs reads it.
  function cell(px, r, c) {
    const x0 = Math.floor(((4 * c + 1) * W) / (4 * COLS));
    const x1 = Math.max(x0 + 1, Math.floor(((4 * c + 3) * W) / (4 * COLS)));
    const y0 = Math.floor(((4 * r + 1) * H) / (4 * ROWS));
    const y1 = Math.max(y0 + 1, Math.floor(((4 * r + 3) * H) / (4 * ROWS)));
    let sum = 0;
    let n = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = (y * W + x) * 4;
        sum += (px[i] * 299 + px[i + 1] * 587 + px[i + 2] * 114) / 1000;
        n++;
      }
    }
    return sum / n;
  }

  // -> {ms} | {error: "nosync" | "manchester" | "crc"}
  function decode(px) {
    for (let c = 0; c < COLS; c++) {
      const v = cell(px, 0, c);
      if (SYNC[c] ? !(v > 160) : !(v < 96)) return { error: "nosync" };
    }
    const bits = [];
    for (let b = 0; b < BITS; b++) {
      const i = COLS + 2 * b;
      const a = cell(px, Math.floor(i / COLS), i % COLS);
      const z = cell(px, Math.floor((i + 1) / COLS), (i + 1) % COLS);
      if (Math.abs(a - z) < 64) return { error: "manchester" };
      bits.push(a > z ? 1 : 0);
    }
    const bytes = [];
    for (let k = 0; k < 8; k++) {
      let byte = 0;
      for (let j = 0; j < 8; j++) byte = (byte << 1) | bits[8 * k + j];
      bytes.push(byte);
    }
    let ms = 0;
    for (let k = 0; k < 6; k++) ms = ms * 256 + bytes[k];
    if (crc16(bytes.slice(0, 6)) !== bytes[6] * 256 + bytes[7]) return { error: "crc" };
    return { ms };
  }

  function start() {
    const video = (window.__player && window.__player.video) || document.querySelector("video");
    if (!video) {
      setTimeout(start, 20);
      return;
    }
    const canvas = document.createElement("canvas");
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    let lastClock = -1;
    let lastMediaTime = -1;

    function read(mediaTime) {
      if (video.readyState < 2 || !video.videoWidth) return;
      const wall = Date.now();
      M.presented++;
      let px;
      try {
        ctx.drawImage(video, 0, 0, W, H);
        px = ctx.getImageData(0, 0, W, H).data;
      } catch (_e) {
        return;
      }
      const got = decode(px);
      if (got.error === "nosync") {
        M.unsynced++;
        return;
      }
      if (got.error) {
        M.misreads++;
        M.misreadKinds[got.error]++;
        return;
      }
      const age = wall - got.ms;
      if (age < -50 || age > MAX_AGE_MS) {
        M.misreads++;
        M.misreadKinds.implausible++;
        return;
      }
      if (got.ms === lastClock) return; // the same picture again
      lastClock = got.ms;
      M.frames++;
      if (M.firstFrameAt === null) M.firstFrameAt = wall;
      if (M.samples.length < MAX_SAMPLES) M.samples.push([wall, got.ms, mediaTime]);
    }

    if (typeof video.requestVideoFrameCallback === "function") {
      M.method = "requestVideoFrameCallback";
      const onFrame = (_now, meta) => {
        read(meta && typeof meta.mediaTime === "number" ? meta.mediaTime : video.currentTime);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      M.method = "requestAnimationFrame";
      const onAnim = () => {
        if (video.currentTime !== lastMediaTime) {
          lastMediaTime = video.currentTime;
          read(lastMediaTime);
        }
        requestAnimationFrame(onAnim);
      };
      requestAnimationFrame(onAnim);
    }

    video.addEventListener("waiting", () => {
      if (M.firstFrameAt !== null) M.waiting.push(Date.now());
    });

    // Player latency, position and stalls, 10×/s.
    let lastTime = -1;
    let stillSince = 0;
    let tick = 0;
    setInterval(() => {
      const wall = Date.now();
      const t = video.currentTime;
      if (M.firstFrameAt !== null) {
        if (t !== lastTime || video.paused) {
          if (stillSince && wall - stillSince >= 300) M.stalls.push([stillSince, wall - stillSince]);
          stillSince = 0;
        } else if (!stillSince) {
          stillSince = wall;
        }
      }
      lastTime = t;
      if (tick++ % 2 === 0 && M.player.length < MAX_SAMPLES) {
        let lat = null;
        try {
          const p = window.__player;
          lat = p && typeof p.liveLatency === "function" ? p.liveLatency() : null;
        } catch (_e) {
          lat = null;
        }
        M.player.push([wall, typeof lat === "number" && Number.isFinite(lat) ? lat : null, t, video.paused, video.playbackRate]);
      }
      // A stall still under way counts as one that ends now.
      M.openStall = stillSince ? [stillSince, wall - stillSince] : null;
    }, 100);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}

// ---- figures ---------------------------------------------------------------

const r3 = (x) => (typeof x === "number" && Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function summarize(m, from, to) {
  const lat = m.samples
    .filter(([wall]) => wall >= from && wall < to)
    .map(([wall, clock]) => (wall - clock) / 1000)
    .sort((a, b) => a - b);
  const player = m.player.filter(([wall]) => wall >= from && wall < to);
  const playerLat = player
    .map((p) => p[1])
    .filter((x) => x !== null)
    .sort((a, b) => a - b);
  const stalls = m.stalls.concat(m.openStall ? [m.openStall] : []).filter(([s, d]) => s + d > from && s < to);
  const advanced = player.length >= 2 ? player[player.length - 1][2] - player[0][2] : 0;
  return {
    from,
    to,
    samples: lat.length,
    fps: r3(lat.length / ((to - from) / 1000)),
    latency: {
      median: r3(quantile(lat, 0.5)),
      p95: r3(quantile(lat, 0.95)),
      min: r3(lat[0]),
      max: r3(lat[lat.length - 1]),
      mean: r3(lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null),
    },
    playerLatency: {
      median: r3(quantile(playerLat, 0.5)),
      last: r3(playerLat.length ? player.filter((p) => p[1] !== null).pop()[1] : null),
    },
    maxPlaybackRate: r3(player.reduce((a, p) => Math.max(a, p[4]), 0)),
    waiting: m.waiting.filter((w) => w >= from && w < to).length,
    stalls: stalls.length,
    longestStall: r3(stalls.reduce((a, [, d]) => Math.max(a, d), 0) / 1000),
    advanced: r3(advanced),
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const errors = [];
  const result = { ok: false, url: opts.url, errors };
  const profile = freshProfile("latency-mjs");
  deadline("latency.mjs", opts.startTimeout + opts.warmup + opts.window + 45, result, errors, profile);

  let context = null;
  try {
    context = await launch(profile, opts.chromium);
    const page = context.pages()[0] || (await context.newPage());
    collectErrors(page, errors);
    await page.addInitScript(installMeter);
    if (process.env.LATENCY_TRACE === "1") {
      const t0 = Date.now();
      const since = () => String(Date.now() - t0).padStart(6);
      const started = new Map();
      page.on("request", (req) => started.set(req, Date.now()));
      page.on("requestfinished", async (req) => {
        const res = await req.response().catch(() => null);
        const u = new URL(req.url());
        const took = Date.now() - (started.get(req) || Date.now());
        started.delete(req);
        console.error(
          `${since()} ms ${res ? res.status() : "---"} ${req.method()} ${u.pathname}${u.search} (took ${took} ms)`,
        );
      });
      page.on("requestfailed", (req) => console.error(`${since()} ms failed ${req.url()}`));
      await page.exposeFunction("__traceEvent", (name) => console.error(`${since()} ms video ${name}`));
      await page.addInitScript(() => {
        document.addEventListener("DOMContentLoaded", () => {
          const v = document.querySelector("video");
          for (const ev of ["loadstart", "loadedmetadata", "playing", "waiting"]) {
            v.addEventListener(ev, () => window.__traceEvent(`${ev} t=${v.currentTime.toFixed(3)}`));
          }
        });
      });
    }

    await page.goto(opts.url, { waitUntil: "domcontentloaded", timeout: opts.startTimeout * 1000 });
    const openedAt = Date.now();
    result.openedAt = openedAt;
    console.log(JSON.stringify({ event: "opened", at: openedAt }));

    try {
      await page.waitForFunction(() => window.__meter && window.__meter.firstFrameAt !== null, null, {
        timeout: opts.startTimeout * 1000,
        polling: 50,
      });
    } catch (_e) {
      const m = await page.evaluate(() => window.__meter).catch(() => null);
      errors.push(
        `no clock frame decoded within ${opts.startTimeout} s (presented ${m && m.presented}, ` +
          `unsynced ${m && m.unsynced}, misreads ${m && m.misreads})`,
      );
      Object.assign(result, m ? { presented: m.presented, unsynced: m.unsynced, misreads: m.misreads } : {});
      return result;
    }
    const first = await page.evaluate(() => window.__meter.firstFrameAt);
    const from = first + opts.warmup * 1000;
    const to = from + opts.window * 1000;
    await page.waitForTimeout(Math.max(0, to - Date.now() + 100));
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
    const m = await page.evaluate(() => window.__meter);
    result.engine = await page.evaluate(() => (window.__player && window.__player.engine) || null);
    result.method = m.method;
    result.firstFrameAt = m.firstFrameAt;
    result.openToFirstFrameMs = m.firstFrameAt - openedAt;
    result.firstClock = m.samples.length ? m.samples[0][1] : null;
    result.presented = m.presented;
    result.frames = m.frames;
    result.unsynced = m.unsynced;
    result.misreads = m.misreads;
    result.misreadKinds = m.misreadKinds;
    result.window = summarize(m, from, to);
    result.all = summarize(m, m.firstFrameAt, to);
    result.ok = m.frames > 0 && m.misreads === 0 && result.window.samples > 0;
    return result;
  } catch (err) {
    errors.push(`latency.mjs: ${err && err.message ? err.message.split("\n")[0] : String(err)}`);
    return result;
  } finally {
    if (context) await context.close().catch(() => {});
    removeProfile(profile);
  }
}

const result = await main();
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
