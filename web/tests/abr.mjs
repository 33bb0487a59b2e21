#!/usr/bin/env node
// Adaptive-bitrate acceptance in headless Chromium: hls.js switches levels on
// demand without stalling, dash.js sees every representation.
//
//   node web/tests/abr.mjs <watch-url> <dash-url>
//        [--start-timeout 30] [--switch-timeout 20] [--hold 2]
//        [--dash-advance 3] [--max-stall 1.0] [--min-levels 3] [--max-video-freeze N]
//        [--switch-mode current|next|menu] [--hls-only] [--from-window-start]
//        [--chromium /usr/bin/chromium]
//
// HLS (the watch page, `window.__player.hls`):
//   1. waits until the video plays; records hls.levels (heights, bitrates) and
//      the level playing, and lets it play --hold seconds;
//   2. forces another level through `hls.currentLevel` (immediate switch;
//      with `--switch-mode next`: `hls.nextLevel`, a smooth switch at the next
//      fragment; with `--switch-mode menu`: by choosing it in the page's
//      quality menu, which sets `hls.nextLevel`), waits until hls.js reports
//      LEVEL_SWITCHED to it and
//      currentTime has advanced --hold seconds since;
//   3. forces a level different from both the first and the second likewise;
//   4. (menu mode) chooses "Auto" in the menu: hls.js must be back in
//      automatic selection (`autoLevelEnabled`), and the page must show its
//      "Behind live" figure; then pauses the video for 2 s ("Go live" must
//      become enabled) and presses Enter on "Go live" (keyboard): playback
//      must resume within 1 s of hls.js's live sync position (reported as
//      `menu`).
//   With --from-window-start, playback is first moved to the start of the
//   live window (seekable.start + 0.3 s) and the stall figures restart there:
//   the switches then happen in the oldest segment the playlists offer.
//   Throughout, a 100 ms sampler in the page measures stalls: the longest time
//   currentTime did not advance while the video was not paused (and the
//   longest `waiting` → `playing` interval), from the first played frame on.
//   It also reports picture freezes: totalVideoFrames not growing while
//   currentTime advances (audio plays on, the picture stands still). hls.js
//   1.x's immediate switch (`currentLevel = n`) flushes the video buffer under
//   the playhead without seeking, and Chromium then shows nothing new until the
//   next keyframe after the playhead: up to one GOP of frozen picture. Reported
//   as `longestVideoFreeze`; it fails the run only with --max-video-freeze.
// DASH (the dash test page, `window.__player.dash`, dash.js 5; skipped with
// --hls-only):
//   waits until the video plays, reads dash.getRepresentationsByType("video")
//   and waits until currentTime has advanced --dash-advance seconds.
//
// Prints ONE JSON line with everything measured; exit status 0 iff at least
// --min-levels hls.js levels, both forced switches reported by LEVEL_SWITCHED,
// longest stall <= --max-stall seconds, longest picture freeze <=
// --max-video-freeze (if given), currentTime advanced, frames decoded, and
// (unless --hls-only) dash.js listed --min-levels video representations (as many as hls.js
// levels) while its currentTime advanced; 1 otherwise; 2 on bad usage.
// Chromium gets a fresh temporary profile each run (as in play.mjs).

import { DEFAULT_CHROMIUM, collectErrors, deadline, freshProfile, launch, removeProfile } from "./browser.mjs";

const USAGE =
  "usage: node abr.mjs <watch-url> <dash-url> [--start-timeout N] [--switch-timeout N] " +
  "[--hold N] [--dash-advance N] [--max-stall N] [--min-levels N] [--max-video-freeze N] [--switch-mode current|next|menu] [--hls-only] [--from-window-start] [--chromium PATH]";

function usage(msg) {
  console.error(`abr.mjs: ${msg}\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    watchUrl: null,
    dashUrl: null,
    startTimeout: 30,
    switchTimeout: 20,
    hold: 2,
    dashAdvance: 3,
    maxStall: 1.0,
    minLevels: 3,
    maxVideoFreeze: Infinity,
    switchMode: "current",
    hlsOnly: false,
    fromWindowStart: false,
    chromium: DEFAULT_CHROMIUM,
  };
  const numeric = {
    "--start-timeout": "startTimeout",
    "--switch-timeout": "switchTimeout",
    "--hold": "hold",
    "--dash-advance": "dashAdvance",
    "--max-stall": "maxStall",
    "--min-levels": "minLevels",
    "--max-video-freeze": "maxVideoFreeze",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg in numeric) {
      const value = Number(argv[++i]);
      if (!Number.isFinite(value) || value < 0) usage(`${arg} needs a non-negative number`);
      opts[numeric[arg]] = value;
    } else if (arg === "--chromium") {
      const value = argv[++i];
      if (!value) usage(`${arg} needs a value`);
      opts.chromium = value;
    } else if (arg === "--hls-only") {
      opts.hlsOnly = true;
    } else if (arg === "--from-window-start") {
      opts.fromWindowStart = true;
    } else if (arg === "--switch-mode") {
      const value = argv[++i];
      if (!["current", "next", "menu"].includes(value)) usage(`${arg} needs current, next or menu`);
      opts.switchMode = value;
    } else if (arg.startsWith("--")) {
      usage(`unknown option ${arg}`);
    } else if (opts.watchUrl === null) {
      opts.watchUrl = arg;
    } else if (opts.dashUrl === null) {
      opts.dashUrl = arg;
    } else {
      usage(`unexpected argument ${arg}`);
    }
  }
  if (!opts.watchUrl || !opts.dashUrl) usage("missing <watch-url> or <dash-url>");
  return opts;
}

const round3 = (x) => (typeof x === "number" && Number.isFinite(x) ? Math.round(x * 1000) / 1000 : x);

// ---- code run in the page ------------------------------------------------

// Installs `window.__abr`: a stall sampler on the video and, when hls.js is
// there, listeners on its level events. Idempotent; re-attaches to a new hls
// instance if the page replaced it (counted in `reloads`).
function installMonitor() {
  if (window.__abr) return true;
  const p = window.__player;
  const video = (p && p.video) || document.querySelector("video");
  if (!video) return false;
  const m = {
    started: false,
    startedAt: 0,
    startTime: 0,
    startFrames: 0,
    lastTime: 0,
    lastAdvanceAt: 0,
    longestFreezeMs: 0,
    freezes: [], // [{at: currentTime, ms}] of every freeze >= 300 ms
    waitingSince: null,
    longestWaitingMs: 0,
    waitingCount: 0,
    samples: 0,
    switched: [], // LEVEL_SWITCHED: {level, at (ms since start), time, height}
    switching: [], // LEVEL_SWITCHING: {level, at}
    hlsErrors: [],
    reloads: 0,
    hls: null,
    timeline: [], // every 500 ms: [currentTime, totalVideoFrames, videoHeight, video buffered, audio buffered]
    // Picture freezes: totalVideoFrames not growing while currentTime does
    // (audio goes on, the picture stands still).
    lastFrames: 0,
    lastFrameAt: 0,
    longestVideoFreezeMs: 0,
    videoFreezes: [], // [{at: currentTime, ms}] of every picture freeze >= 300 ms
    events: [], // a bounded log of hls.js events, for diagnosis
  };
  window.__abr = m;
  const now = () => performance.now();

  function attachHls() {
    const hls = window.__player && window.__player.hls;
    if (!hls || hls === m.hls) return;
    if (m.hls) m.reloads += 1;
    m.hls = hls;
    const Hls = window.Hls;
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => {
      m.switched.push({
        level: d.level,
        at: Math.round(now() - (m.startedAt || now())),
        time: video.currentTime,
      });
    });
    hls.on(Hls.Events.LEVEL_SWITCHING, (_e, d) => {
      m.switching.push({ level: d.level, at: Math.round(now() - (m.startedAt || now())) });
    });
    const log = (s) => {
      if (m.events.length < 80) m.events.push(`${(video.currentTime || 0).toFixed(2)} ${s}`);
    };
    hls.on(Hls.Events.FRAG_BUFFERED, (_e, d) => {
      const f = d.frag;
      log(`buffered ${f.type} L${f.level} sn${f.sn} ${f.start.toFixed(2)}+${f.duration.toFixed(2)}`);
    });
    hls.on(Hls.Events.BUFFER_FLUSHING, (_e, d) => log(`flushing ${d.type || "all"} ${d.startOffset}-${d.endOffset}`));
    hls.on(Hls.Events.LEVEL_SWITCHING, (_e, d) => log(`switching L${d.level}`));
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => log(`switched L${d.level}`));
    hls.on(Hls.Events.ERROR, (_e, d) => log(`error ${d.details}${d.fatal ? " fatal" : ""}`));
    hls.on(Hls.Events.ERROR, (_e, d) => {
      if (m.hlsErrors.length < 30) m.hlsErrors.push(`${d.fatal ? "fatal " : ""}${d.type}: ${d.details}`);
    });
  }
  attachHls();

  video.addEventListener("waiting", () => {
    if (m.started && m.waitingSince === null) {
      m.waitingSince = now();
      m.waitingCount += 1;
    }
  });
  video.addEventListener("playing", () => {
    if (m.waitingSince !== null) {
      m.longestWaitingMs = Math.max(m.longestWaitingMs, now() - m.waitingSince);
      m.waitingSince = null;
    }
  });

  m.timer = setInterval(() => {
    attachHls();
    const t = now();
    const ct = video.currentTime;
    if (!m.started) {
      if (ct > 0 && !video.paused) {
        m.started = true;
        m.startedAt = t;
        m.startTime = ct;
        const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
        m.startFrames = q ? q.totalVideoFrames : 0;
        m.lastTime = ct;
        m.lastAdvanceAt = t;
        m.lastFrames = m.startFrames;
        m.lastFrameAt = t;
      }
      return;
    }
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const frames = q ? q.totalVideoFrames : 0;
    if (frames !== m.lastFrames || video.paused || video.ended) {
      const still = t - m.lastFrameAt;
      if (frames !== m.lastFrames && still >= 300) m.videoFreezes.push({ at: Math.round(ct * 10) / 10, ms: Math.round(still) });
      m.lastFrames = frames;
      m.lastFrameAt = t;
    } else {
      m.longestVideoFreezeMs = Math.max(m.longestVideoFreezeMs, t - m.lastFrameAt);
    }
    m.samples += 1;
    if (m.samples % 5 === 0 && m.timeline.length < 400) {
      const ranges = (b) => {
        const o = [];
        for (let i = 0; b && i < b.length; i++) o.push(`${b.start(i).toFixed(2)}-${b.end(i).toFixed(2)}`);
        return o.join(",");
      };
      const tracks = (m.hls && m.hls.bufferController && m.hls.bufferController.tracks) || {};
      const sb = (k) => (tracks[k] && tracks[k].buffer ? ranges(tracks[k].buffer.buffered) : "");
      m.timeline.push([Math.round(ct * 100) / 100, frames, video.videoHeight, sb("video"), sb("audio")]);
    }
    if (video.paused || video.ended || ct !== m.lastTime) {
      const frozen = t - m.lastAdvanceAt;
      // The interval just ended counts as frozen only if time did not move
      // for longer than the sampling period.
      if (ct !== m.lastTime && frozen >= 300) m.freezes.push({ at: Math.round(ct * 10) / 10, ms: Math.round(frozen) });
      m.lastTime = ct;
      m.lastAdvanceAt = t;
    } else {
      m.longestFreezeMs = Math.max(m.longestFreezeMs, t - m.lastAdvanceAt);
    }
    if (m.waitingSince !== null) m.longestWaitingMs = Math.max(m.longestWaitingMs, t - m.waitingSince);
  }, 100);
  return true;
}

function snapshot() {
  const p = window.__player || {};
  const video = p.video || document.querySelector("video");
  const m = window.__abr || null;
  const q = video && video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const hls = p.hls || null;
  return {
    time: video ? video.currentTime : null,
    paused: video ? video.paused : null,
    readyState: video ? video.readyState : null,
    width: video ? video.videoWidth : null,
    height: video ? video.videoHeight : null,
    frames: q ? q.totalVideoFrames : 0,
    dropped: q ? q.droppedVideoFrames : 0,
    hls: hls
      ? {
          currentLevel: hls.currentLevel,
          loadLevel: hls.loadLevel,
          autoLevelEnabled: hls.autoLevelEnabled,
          levels: hls.levels.map((l) => ({ height: l.height, width: l.width, bitrate: l.bitrate, name: l.name })),
        }
      : null,
    monitor: m
      ? {
          started: m.started,
          startTime: m.startTime,
          startFrames: m.startFrames,
          longestFreezeMs: m.longestFreezeMs,
          longestWaitingMs: m.longestWaitingMs,
          waitingCount: m.waitingCount,
          freezes: m.freezes.slice(-20),
          samples: m.samples,
          switched: m.switched,
          switching: m.switching,
          hlsErrors: m.hlsErrors,
          reloads: m.reloads,
          timeline: m.timeline,
          longestVideoFreezeMs: m.longestVideoFreezeMs,
          videoFreezes: m.videoFreezes.slice(-20),
          events: m.events,
        }
      : null,
  };
}

// ---- drivers --------------------------------------------------------------

async function waitPlaying(page, timeoutS) {
  await page.waitForFunction(
    () => {
      const p = window.__player;
      const v = (p && p.video) || document.querySelector("video");
      return !!v && v.currentTime > 0 && !v.paused;
    },
    null,
    { timeout: timeoutS * 1000, polling: 100 },
  );
}

// Moves playback to the start of the live window and, once it plays on from
// there, restarts the stall and freeze figures (the seek is not a switch).
async function seekToWindowStart(page, opts) {
  const seek = { ok: false };
  try {
    seek.from = round3(await page.evaluate(() => window.__player.video.currentTime));
    seek.to = round3(
      await page.evaluate(() => {
        const v = window.__player.video;
        v.currentTime = v.seekable.start(0) + 0.3;
        return v.currentTime;
      }),
    );
    await page.waitForFunction(
      (t) => {
        const v = window.__player.video;
        return !v.seeking && !v.paused && v.currentTime >= t + 0.3;
      },
      seek.to,
      { timeout: opts.switchTimeout * 1000, polling: 50 },
    );
    seek.at = round3(
      await page.evaluate(() => {
        const m = window.__abr;
        m.longestFreezeMs = 0;
        m.longestWaitingMs = 0;
        m.longestVideoFreezeMs = 0;
        m.freezes = [];
        m.videoFreezes = [];
        return window.__player.video.currentTime;
      }),
    );
    seek.ok = true;
  } catch (err) {
    seek.error = (err && err.message ? err.message : String(err)).split("\n")[0];
  }
  return seek;
}

// Forces `level` and waits for LEVEL_SWITCHED to it plus `hold` s of playback.
async function forceLevel(page, level, opts) {
  const t0 = Date.now();
  const before = await page.evaluate(() => window.__abr.switched.length);
  if (opts.switchMode === "menu") {
    await page.selectOption("#quality-menu", String(level), { timeout: 5000 });
  } else {
    await page.evaluate(
      ([l, mode]) => {
        if (mode === "next") window.__player.hls.nextLevel = l;
        else window.__player.hls.currentLevel = l;
      },
      [level, opts.switchMode],
    );
  }
  const sw = { level, ok: false };
  try {
    const handle = await page.waitForFunction(
      ([l, from]) => {
        const s = window.__abr.switched.slice(from).find((e) => e.level === l);
        return s ? { time: window.__player.video.currentTime } : null;
      },
      [level, before],
      { timeout: opts.switchTimeout * 1000, polling: 100 },
    );
    const at = await handle.jsonValue();
    sw.switchedAfterMs = Date.now() - t0;
    sw.timeAtSwitch = round3(at.time);
    await page.waitForFunction(
      ([t, hold]) => window.__player.video.currentTime >= t + hold,
      [at.time, opts.hold],
      { timeout: (opts.hold + opts.switchTimeout) * 1000, polling: 100 },
    );
    const s = await page.evaluate(snapshot);
    sw.timeAfterHold = round3(s.time);
    sw.videoSize = `${s.width}x${s.height}`;
    sw.currentLevel = s.hls && s.hls.currentLevel;
    sw.ok = true;
  } catch (err) {
    sw.error = (err && err.message ? err.message : String(err)).split("\n")[0];
  }
  return sw;
}

// Chooses "Auto" in the quality menu; reads the menu and the live figure;
// pauses, then goes live with the keyboard.
async function backToAuto(page) {
  const menu = { ok: false };
  try {
    await page.selectOption("#quality-menu", "-1", { timeout: 5000 });
    await page.waitForTimeout(300);
    Object.assign(
      menu,
      await page.evaluate(() => {
        const sel = document.getElementById("quality-menu");
        return {
          options: Array.from(sel.options).map((o) => o.textContent),
          value: sel.value,
          autoLevelEnabled: window.__player.hls.autoLevelEnabled,
          behind: document.getElementById("behind").textContent,
          goLiveDisabled: document.getElementById("go-live").disabled,
        };
      }),
    );
    const levels = await page.evaluate(() => window.__player.hls.levels.length);
    await page.evaluate(() => window.__player.video.pause());
    await page.waitForTimeout(2000);
    menu.goLiveEnabledWhenPaused = await page.evaluate(() => !document.getElementById("go-live").disabled);
    await page.focus("#go-live");
    await page.keyboard.press("Enter");
    await page.waitForTimeout(1000);
    Object.assign(
      menu,
      await page.evaluate(() => {
        const v = window.__player.video;
        const pos = window.__player.hls.liveSyncPosition;
        return { playingAfterGoLive: !v.paused, lagAfterGoLive: Math.round((pos - v.currentTime) * 1000) / 1000 };
      }),
    );
    menu.ok =
      menu.autoLevelEnabled === true &&
      menu.value === "-1" &&
      menu.options.length === levels + 1 &&
      /^Behind live \d+\.\d s$/.test(menu.behind) &&
      menu.goLiveEnabledWhenPaused === true &&
      menu.playingAfterGoLive === true &&
      Math.abs(menu.lagAfterGoLive) < 1;
  } catch (err) {
    menu.error = (err && err.message ? err.message : String(err)).split("\n")[0];
  }
  return menu;
}

async function runHls(context, opts, errors) {
  const out = { ok: false };
  const page = await context.newPage();
  collectErrors(page, errors, "hls page: ");
  try {
    await page.goto(opts.watchUrl, { waitUntil: "domcontentloaded", timeout: opts.startTimeout * 1000 });
    await page.waitForFunction(installMonitor, null, { timeout: opts.startTimeout * 1000, polling: 50 });
    const started = Date.now();
    try {
      await waitPlaying(page, opts.startTimeout);
      await page.waitForFunction(() => window.__abr.started && !!window.__abr.hls, null, {
        timeout: 5000,
        polling: 100,
      });
    } catch {
      out.error = `playback did not start within ${opts.startTimeout} s: ${JSON.stringify(await page.evaluate(snapshot))}`;
      return out;
    }
    out.startupMs = Date.now() - started;
    const first = await page.evaluate(snapshot);
    const levels = first.hls.levels;
    out.levels = levels.length;
    out.heights = levels.map((l) => l.height);
    out.bitrates = levels.map((l) => l.bitrate);
    // The level playing now: the last LEVEL_SWITCHED, else currentLevel.
    const sw = first.monitor.switched;
    const start = sw.length ? sw[sw.length - 1].level : first.hls.currentLevel;
    out.startLevel = start;
    out.startHeight = levels[start] ? levels[start].height : null;
    out.startSize = `${first.width}x${first.height}`;
    out.switchMode = opts.switchMode;
    out.switches = [];
    if (levels.length >= 2) {
      // Let the start level play for --hold seconds first.
      await page.waitForFunction(
        ([t, hold]) => window.__player.video.currentTime >= t + hold,
        [first.monitor.startTime, opts.hold],
        { timeout: (opts.hold + opts.switchTimeout) * 1000, polling: 100 },
      );
      if (opts.fromWindowStart) {
        out.seek = await seekToWindowStart(page, opts);
        if (!out.seek.ok) return out;
      }
      // The level playing now (hls.js's own ABR may have moved since the
      // start: with LL-HLS parts it measures bandwidth sooner). First: the
      // level farthest from it; second: one neither of them (with 3 levels,
      // every level gets played).
      const now = await page.evaluate(() => {
        const sw = window.__abr.switched;
        return sw.length ? sw[sw.length - 1].level : window.__player.hls.currentLevel;
      });
      out.levelBeforeSwitches = now;
      const idx = levels.map((_, i) => i);
      const a = idx.filter((i) => i !== now).sort((x, y) => Math.abs(y - now) - Math.abs(x - now))[0];
      const b = idx.find((i) => i !== now && i !== a) ?? now;
      for (const target of [a, b]) {
        const r = await forceLevel(page, target, opts);
        r.height = levels[target].height;
        out.switches.push(r);
        if (!r.ok) break;
      }
    }
    if (opts.switchMode === "menu") out.menu = await backToAuto(page);
    const last = await page.evaluate(snapshot);
    const m = last.monitor;
    out.playedFrom = round3(m.startTime);
    out.playedTo = round3(last.time);
    // Since playback started (or, with --from-window-start, since the seek).
    out.advanced = round3(last.time - (out.seek ? out.seek.at : m.startTime));
    out.frames = last.frames - m.startFrames;
    out.dropped = last.dropped;
    out.longestStall = round3(Math.max(m.longestFreezeMs, m.longestWaitingMs) / 1000);
    out.longestFreeze = round3(m.longestFreezeMs / 1000);
    out.longestWaiting = round3(m.longestWaitingMs / 1000);
    out.waitingEvents = m.waitingCount;
    out.freezes = m.freezes;
    out.longestVideoFreeze = round3(m.longestVideoFreezeMs / 1000);
    out.videoFreezes = m.videoFreezes;
    out.samples = m.samples;
    out.levelSwitched = m.switched.map((s) => s.level);
    out.hlsErrors = m.hlsErrors;
    out.reloads = m.reloads;
    out.endSize = `${last.width}x${last.height}`;
    out.timeline = m.timeline;
    out.events = m.events;
    out.ok =
      out.levels >= opts.minLevels &&
      out.switches.length === 2 &&
      out.switches.every((s) => s.ok) &&
      out.longestStall <= opts.maxStall &&
      out.longestVideoFreeze <= opts.maxVideoFreeze &&
      (opts.switchMode !== "menu" || (out.menu && out.menu.ok)) &&
      out.advanced > 0 &&
      out.frames > 0;
    return out;
  } catch (err) {
    out.error = (err && err.message ? err.message : String(err)).split("\n")[0];
    return out;
  } finally {
    await page.close().catch(() => {});
  }
}

async function runDash(context, opts, errors, wantReps) {
  const out = { ok: false };
  const page = await context.newPage();
  collectErrors(page, errors, "dash page: ");
  try {
    await page.goto(opts.dashUrl, { waitUntil: "domcontentloaded", timeout: opts.startTimeout * 1000 });
    const started = Date.now();
    try {
      await waitPlaying(page, opts.startTimeout);
    } catch {
      out.error = `playback did not start within ${opts.startTimeout} s: ${JSON.stringify(await page.evaluate(snapshot))}`;
      return out;
    }
    out.startupMs = Date.now() - started;
    out.version = await page.evaluate(() => window.__player.dash.getVersion());
    const start = await page.evaluate(snapshot);
    const handle = await page.waitForFunction(
      () => {
        const reps = window.__player.dash.getRepresentationsByType("video") || [];
        return reps.length
          ? reps.map((r) => ({ id: r.id, height: r.height, width: r.width, bandwidth: r.bandwidth }))
          : null;
      },
      null,
      { timeout: 10000, polling: 100 },
    );
    const reps = await handle.jsonValue();
    out.representations = reps.length;
    out.ids = reps.map((r) => r.id);
    out.heights = reps.map((r) => r.height);
    out.bandwidths = reps.map((r) => r.bandwidth);
    try {
      await page.waitForFunction(
        ([t, adv]) => window.__player.video.currentTime >= t + adv,
        [start.time, opts.dashAdvance],
        { timeout: (opts.dashAdvance + 15) * 1000, polling: 100 },
      );
    } catch {
      /* reported through `advanced` */
    }
    const end = await page.evaluate(snapshot);
    out.current = await page.evaluate(() => {
      const r = window.__player.dash.getCurrentRepresentationForType("video");
      return r ? r.id : null;
    });
    out.advanced = round3(end.time - start.time);
    out.frames = end.frames - start.frames;
    out.size = `${end.width}x${end.height}`;
    out.ok = out.representations >= Math.max(opts.minLevels, wantReps) && out.advanced >= opts.dashAdvance && out.frames > 0;
    return out;
  } catch (err) {
    out.error = (err && err.message ? err.message : String(err)).split("\n")[0];
    return out;
  } finally {
    await page.close().catch(() => {});
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const errors = [];
  const result = { ok: false, hls: null, dash: null, errors };
  const t0 = Date.now();
  const profile = freshProfile("abr-mjs");
  deadline(
    "abr.mjs",
    2 * opts.startTimeout + 2 * (opts.switchTimeout * 2 + opts.hold) + opts.dashAdvance + 40,
    result,
    errors,
    profile,
    () => (result.elapsedMs = Date.now() - t0),
  );

  let context = null;
  try {
    context = await launch(profile, opts.chromium);
    // The persistent context opens a blank page; each check gets its own.
    result.hls = await runHls(context, opts, errors);
    if (!opts.hlsOnly) {
      const wantReps = result.hls && result.hls.levels ? result.hls.levels : 0;
      result.dash = await runDash(context, opts, errors, wantReps);
    }
    result.ok = !!(result.hls.ok && (opts.hlsOnly || result.dash.ok));
  } catch (err) {
    errors.push(`abr.mjs: ${err && err.message ? err.message.split("\n")[0] : String(err)}`);
  } finally {
    if (context) await context.close().catch(() => {});
    removeProfile(profile);
  }
  result.elapsedMs = Date.now() - t0;
  return result;
}

const result = await main();
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
