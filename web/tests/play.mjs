#!/usr/bin/env node
// Plays a page in headless Chromium and checks that its <video> really plays.
//
//   node web/tests/play.mjs <page-url> [--seconds 7] [--min-advance 5]
//        [--start-timeout 20] [--chromium /usr/bin/chromium] [--screenshot FILE]
//        [--ignore-https-errors]   (a certificate made at test time)
//
// Waits until video.currentTime > 0, samples currentTime and
// getVideoPlaybackQuality().totalVideoFrames, waits --seconds, samples again,
// and prints ONE JSON line:
//   {"ok":bool,"start":s,"end":s,"advanced":s,"frames":n,"errors":[...]}
// where `frames` is the number of frames decoded between the two samples and
// `errors` holds the page's console errors and uncaught exceptions.
// Exit status: 0 iff advanced >= --min-advance and frames > 0; 1 otherwise;
// 2 on bad usage. The video is found as window.__player.video, else the
// first <video> element. Chromium gets a fresh temporary profile each run.

import { DEFAULT_CHROMIUM, collectErrors, deadline, freshProfile, launch, removeProfile } from "./browser.mjs";

const USAGE =
  "usage: node play.mjs <page-url> [--seconds N] [--min-advance N] " +
  "[--start-timeout N] [--chromium PATH] [--screenshot FILE] [--ignore-https-errors]";

function parseArgs(argv) {
  const opts = {
    url: null,
    seconds: 7,
    minAdvance: 5,
    startTimeout: 20,
    chromium: DEFAULT_CHROMIUM,
    screenshot: null,
    ignoreHttpsErrors: false,
  };
  const numeric = { "--seconds": "seconds", "--min-advance": "minAdvance", "--start-timeout": "startTimeout" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg in numeric) {
      const value = Number(argv[++i]);
      if (!Number.isFinite(value) || value < 0) usage(`${arg} needs a non-negative number`);
      opts[numeric[arg]] = value;
    } else if (arg === "--ignore-https-errors") {
      opts.ignoreHttpsErrors = true;
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

function usage(msg) {
  console.error(`play.mjs: ${msg}\n${USAGE}`);
  process.exit(2);
}

// Runs in the page.
function sampleVideo() {
  const v = (window.__player && window.__player.video) || document.querySelector("video");
  if (!v) return null;
  const q = typeof v.getVideoPlaybackQuality === "function" ? v.getVideoPlaybackQuality() : null;
  return {
    time: v.currentTime,
    frames: q ? q.totalVideoFrames : 0,
    dropped: q ? q.droppedVideoFrames : 0,
    paused: v.paused,
    readyState: v.readyState,
    width: v.videoWidth,
    height: v.videoHeight,
  };
}

const round3 = (x) => Math.round(x * 1000) / 1000;

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const errors = [];
  const result = { ok: false, start: null, end: null, advanced: 0, frames: 0, errors };
  const profile = freshProfile("play-mjs");
  deadline("play.mjs", opts.startTimeout + opts.seconds + 45, result, errors, profile);

  let context = null;
  try {
    // HTTPS tests use a certificate made at test time (no trusted CA).
    context = await launch(profile, opts.chromium, { ignoreHTTPSErrors: opts.ignoreHttpsErrors });
    const page = context.pages()[0] || (await context.newPage());
    collectErrors(page, errors);

    await page.goto(opts.url, { waitUntil: "domcontentloaded", timeout: opts.startTimeout * 1000 });
    try {
      await page.waitForFunction(
        () => {
          const v = (window.__player && window.__player.video) || document.querySelector("video");
          return !!v && v.currentTime > 0;
        },
        null,
        { timeout: opts.startTimeout * 1000, polling: 100 },
      );
    } catch (err) {
      const last = await page.evaluate(sampleVideo).catch(() => null);
      errors.push(`playback did not start within ${opts.startTimeout} s (video: ${JSON.stringify(last)})`);
      return result;
    }
    const start = await page.evaluate(sampleVideo);
    await page.waitForTimeout(opts.seconds * 1000);
    const end = await page.evaluate(sampleVideo);
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot });

    result.start = round3(start.time);
    result.end = round3(end.time);
    result.advanced = round3(end.time - start.time);
    result.frames = end.frames - start.frames;
    result.dropped = end.dropped - start.dropped;
    result.size = `${end.width}x${end.height}`;
    result.ok = result.advanced >= opts.minAdvance && result.frames > 0;
    return result;
  } catch (err) {
    errors.push(`play.mjs: ${err && err.message ? err.message.split("\n")[0] : String(err)}`);
    return result;
  } finally {
    if (context) await context.close().catch(() => {});
    removeProfile(profile);
  }
}

const result = await main();
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
