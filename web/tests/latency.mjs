#!/usr/bin/env node
// Glass-to-glass latency in headless Chromium: reads the capture clock that
// the publisher paints into every picture (crates/streaming-server/tests/
// common/clock_publish.rs) back from the frames the page presents.
//
//   node web/tests/latency.mjs <page-url> [--warmup 4] [--window 20]
//        [--start-timeout 30] [--quality NAME] [--chromium /usr/bin/chromium]
//        [--screenshot FILE]
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
// --quality NAME pins playback to the rendition NAME (`source`, `360p`, …:
// the `NAME/index.m3u8` of the HLS master, the `Representation id="NAME"`
// of the MPD) with the player's ABR off, once the player has its levels:
// hls.js `nextLevel` (manual level: ABR off; the buffered picture plays on),
// dash.js `autoSwitchBitrate.video` off and
// `setRepresentationForTypeById('video', NAME)`, Shaka `abr.enabled` off and
// `selectVariantTrack` of the variant of NAME's height (its `originalVideoId`
// when it names NAME, else the bandwidth nearest NAME's). NAME's size and
// bandwidth come from the server's master playlist (/hls/{id}/master.m3u8).
// The pin is re-applied if the player is replaced or leaves the rendition.
// Every presented frame's size is read (requestVideoFrameCallback metadata,
// else videoWidth/videoHeight); the pin has taken effect at the first clock
// frame of NAME's height after it was applied, the window opens `--warmup`
// seconds after that instant (not after the first frame) and counts only
// frames of NAME's height. Frames of another height after the pin took effect
// are counted as `framesOnOther` (a sound run has none).
//
// Prints {"event":"opened","at":ms} when the page has been navigated to
// (a harness can start publishing then), then ONE result JSON line:
//   openedAt, firstFrameAt (Unix ms: first decoded frame), openToFirstFrameMs,
//   frames (decoded, all run), misreads, unsynced, window: {from, to, samples,
//   fps, latency: {median, p95, min, max, mean} (s), playerLatency: {median,
//   last} (s), waiting, longestStall (s), stalls (≥ 0.3 s), advanced (s)},
//   engine, errors; with --quality, pinned: {name, width, height, bandwidth,
//   via, applied (times), appliedAt, effectiveAt, pinToEffectMs,
//   engineHeight, framesBefore, framesOnOther, state}.
// With LATENCY_TRACE=1 in the environment, every request the page makes
// (when it ended, in ms since the page was opened; status; path; how long it
// took) and the video's loadstart,
// loadedmetadata, playing and waiting events are written to stderr, to see
// where the time to the first frame goes.
//
// Exit status: 0 iff a frame was decoded, the window holds samples, no
// misread was seen and (with --quality) the pin took effect and held; 1 otherwise; 2 on bad usage. Chromium gets a fresh
// temporary profile each run.

import { DEFAULT_CHROMIUM, collectErrors, deadline, freshProfile, launch, removeProfile } from "./browser.mjs";

const USAGE =
  "usage: node latency.mjs <page-url> [--warmup N] [--window N] [--start-timeout N] " +
  "[--quality NAME] [--chromium PATH] [--screenshot FILE]";

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
    quality: null,
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
    } else if (arg === "--chromium" || arg === "--screenshot" || arg === "--quality") {
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
  if (opts.quality !== null && !/^[A-Za-z0-9_.-]+$/.test(opts.quality)) usage("--quality needs a rendition name");
  return opts;
}

// ---- code run in the page (installed before the page's own scripts) -------

function installMeter(opts) {
  const COLS = 16;
  const ROWS = 9;
  const BITS = 64;
  const SYNC = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0];
  const W = 320;
  const H = 180;
  const MAX_AGE_MS = 120000;
  const MAX_SAMPLES = 20000;
  const QUALITY = opts && opts.quality ? String(opts.quality) : null;

  const M = {
    installedAt: Date.now(),
    presented: 0,
    frames: 0,
    unsynced: 0,
    misreads: 0,
    misreadKinds: { manchester: 0, crc: 0, implausible: 0 },
    firstFrameAt: null,
    samples: [], // [wall ms, clock ms, mediaTime s, frame height px]
    player: [], // [wall ms, player latency s|null, currentTime s, paused, playbackRate]
    waiting: [], // wall ms of each `waiting` after the first frame
    stalls: [], // [start wall ms, duration ms] of currentTime standing still ≥ 300 ms
    method: null,
    // --quality: the pinned rendition (see the header).
    pin: QUALITY
      ? {
          name: QUALITY,
          width: null,
          height: null,
          bandwidth: null,
          via: null,
          applied: 0,
          appliedAt: null,
          effectiveAt: null,
          engineHeight: null,
          framesBefore: 0,
          framesOnOther: 0,
          state: "waiting for the player",
        }
      : null,
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

    function read(mediaTime, frameHeight) {
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
      const height = frameHeight || video.videoHeight;
      const pin = M.pin;
      if (pin) {
        if (pin.effectiveAt !== null) {
          if (height !== pin.height) pin.framesOnOther++;
        } else if (pin.appliedAt !== null && height === pin.height) {
          pin.effectiveAt = wall;
          pin.state = "took effect";
        } else {
          pin.framesBefore++;
        }
      }
      if (M.samples.length < MAX_SAMPLES) M.samples.push([wall, got.ms, mediaTime, height]);
    }

    if (typeof video.requestVideoFrameCallback === "function") {
      M.method = "requestVideoFrameCallback";
      const onFrame = (_now, meta) => {
        read(
          meta && typeof meta.mediaTime === "number" ? meta.mediaTime : video.currentTime,
          meta && meta.height ? meta.height : 0,
        );
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      M.method = "requestAnimationFrame";
      const onAnim = () => {
        if (video.currentTime !== lastMediaTime) {
          lastMediaTime = video.currentTime;
          read(lastMediaTime, 0);
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

    if (M.pin) setInterval(pinTick, 100);
  }

  // ---- --quality: pin the rendition ----------------------------------------

  let masterBusy = false;
  let pinnedEngine = null; // the player instance the pin was set up on
  let lastApply = 0;

  // NAME's size and bandwidth from the master playlist's EXT-X-STREAM-INF.
  function learnTarget() {
    const pin = M.pin;
    const id = location.pathname.match(/^\/watch\/([^/]+)/);
    if (masterBusy || !id) return;
    masterBusy = true;
    const uri = new RegExp("(^|/)" + pin.name.replace(/[.]/g, "\\.") + "/index\\.m3u8([?#]|$)");
    fetch("/hls/" + id[1] + "/master.m3u8", { cache: "no-store" })
      .then((r) => (r.ok ? r.text() : ""))
      .then((text) => {
        const lines = text.split(/\r?\n/);
        for (let i = 0; i < lines.length; i++) {
          if (!lines[i].startsWith("#EXT-X-STREAM-INF:")) continue;
          let j = i + 1;
          while (j < lines.length && (lines[j].startsWith("#") || !lines[j].trim())) j++;
          if (j >= lines.length || !uri.test(lines[j].trim())) continue;
          const res = /RESOLUTION=(\d+)x(\d+)/.exec(lines[i]);
          const bw = /[:,]BANDWIDTH=(\d+)/.exec(lines[i]);
          if (res) {
            pin.width = Number(res[1]);
            pin.height = Number(res[2]);
            pin.bandwidth = bw ? Number(bw[1]) : null;
          }
        }
        if (pin.height === null) pin.state = "the master playlist does not list " + pin.name;
      })
      .catch(() => {})
      .finally(() => {
        masterBusy = false;
      });
  }

  function applied(via) {
    const pin = M.pin;
    pin.applied++;
    pin.via = via;
    lastApply = Date.now();
    if (pin.appliedAt === null) pin.appliedAt = lastApply;
    if (pin.effectiveAt === null) pin.state = "applied";
  }

  // hls.js (watch page): the level whose playlist URL has /NAME/.
  function pinHls(hls) {
    const pin = M.pin;
    if (!hls || !hls.levels || !hls.levels.length) return;
    const idx = hls.levels.findIndex((l) => {
      let u = l.url || l.uri;
      if (Array.isArray(u)) u = u[0];
      return typeof u === "string" && u.includes("/" + pin.name + "/");
    });
    if (idx < 0) {
      pin.state = "hls.js has no level " + pin.name;
      return;
    }
    pin.engineHeight = hls.levels[idx].height || null;
    if (hls !== pinnedEngine || hls.autoLevelEnabled || hls.manualLevel !== idx) {
      pinnedEngine = hls;
      hls.nextLevel = idx;
      applied("hls.js nextLevel = " + idx);
    }
  }

  // dash.js (dash page): Representation id NAME, ABR off.
  function pinDash(dash) {
    const pin = M.pin;
    if (!dash) return;
    if (dash !== pinnedEngine) {
      pinnedEngine = dash;
      dash.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
    }
    if (!dash.isReady()) return;
    let reps;
    try {
      reps = dash.getRepresentationsByType("video") || [];
    } catch (_e) {
      return; // streaming not initialized yet
    }
    const rep = reps.find((r) => r && r.id === pin.name);
    if (!rep) {
      if (reps.length) pin.state = "dash.js has no Representation " + pin.name;
      return;
    }
    pin.engineHeight = rep.height || null;
    const cur = dash.getCurrentRepresentationForType("video");
    if (!cur || cur.id !== pin.name) {
      if (Date.now() - lastApply > 1000) {
        dash.setRepresentationForTypeById("video", pin.name, true);
        applied("dash.js setRepresentationForTypeById('video', '" + pin.name + "', forceReplace)");
      }
    } else if (pin.appliedAt === null) {
      applied("dash.js already on " + pin.name + ", autoSwitchBitrate.video off");
    }
  }

  // Shaka (shaka page): the variant of NAME's height, ABR off.
  function pinShaka(player) {
    const pin = M.pin;
    if (!player || typeof player.getVariantTracks !== "function" || pin.height === null) return;
    const tracks = player.getVariantTracks();
    if (!tracks.length) return;
    if (player !== pinnedEngine) {
      pinnedEngine = player;
      player.configure({ abr: { enabled: false } });
    }
    const same = tracks.filter((t) => t.height === pin.height);
    const off = (t) => Math.abs((t.bandwidth || 0) - (pin.bandwidth || 0));
    const want = same.find((t) => t.originalVideoId === pin.name) || same.sort((a, b) => off(a) - off(b))[0];
    if (!want) {
      pin.state = "Shaka has no variant " + pin.height + "p";
      return;
    }
    pin.engineHeight = want.height;
    const active = tracks.find((t) => t.active);
    if (!active || active.height !== pin.height) {
      if (Date.now() - lastApply > 1000) {
        player.selectVariantTrack(want, true);
        applied("Shaka selectVariantTrack(" + want.width + "x" + want.height + ", " + want.bandwidth + " b/s, clearBuffer)");
      }
    } else if (pin.appliedAt === null) {
      applied("Shaka already on " + active.width + "x" + active.height + ", abr.enabled off");
    }
  }

  function pinTick() {
    const pin = M.pin;
    if (pin.height === null) learnTarget();
    const p = window.__player;
    if (!p) return;
    try {
      if ("hls" in p) pinHls(p.hls);
      else if ("dash" in p) pinDash(p.dash);
      else if ("shaka" in p) pinShaka(p.shaka);
      else pin.state = "unknown player page";
    } catch (e) {
      pin.state = "pin failed: " + (e && e.message ? e.message : String(e));
    }
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

// Figures of the samples in [from, to) (only frames `height` px high when
// `height` is given).
function summarize(m, from, to, height = null) {
  const lat = m.samples
    .filter(([wall, , , h]) => wall >= from && wall < to && (height === null || h === height))
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
  const pinWait = opts.quality ? opts.startTimeout : 0;
  deadline("latency.mjs", opts.startTimeout + pinWait + opts.warmup + opts.window + 45, result, errors, profile);

  let context = null;
  try {
    context = await launch(profile, opts.chromium);
    const page = context.pages()[0] || (await context.newPage());
    collectErrors(page, errors);
    await page.addInitScript(installMeter, { quality: opts.quality });
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
    // With --quality the window opens `warmup` s after the pin took effect.
    let start = first;
    if (opts.quality) {
      try {
        await page.waitForFunction(() => window.__meter.pin.effectiveAt !== null, null, {
          timeout: opts.startTimeout * 1000,
          polling: 50,
        });
      } catch (_e) {
        const pin = await page.evaluate(() => window.__meter.pin).catch(() => null);
        errors.push(`--quality ${opts.quality}: the pin did not take effect within ${opts.startTimeout} s`);
        result.pinned = pin;
        return result;
      }
      start = await page.evaluate(() => window.__meter.pin.effectiveAt);
    }
    const from = start + opts.warmup * 1000;
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
    result.window = summarize(m, from, to, m.pin ? m.pin.height : null);
    result.all = summarize(m, m.firstFrameAt, to);
    result.ok = m.frames > 0 && m.misreads === 0 && result.window.samples > 0;
    if (m.pin) {
      result.pinned = { ...m.pin, pinToEffectMs: m.pin.effectiveAt - m.pin.appliedAt };
      if (m.pin.framesOnOther > 0) {
        errors.push(`--quality ${opts.quality}: ${m.pin.framesOnOther} frames of another rendition after the pin`);
        result.ok = false;
      }
    }
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
