// Watch page: plays /hls/{id}/master.m3u8 and follows the stream's status.
//
// Engine: hls.js wherever Media Source Extensions work, except on Apple's
// Safari, whose native HLS is preferred; native HLS elsewhere only when
// hls.js cannot run (e.g. iPhone Safari before MSE). Recent Chromium also
// answers "maybe" to canPlayType(HLS), so that answer alone does not decide.
// `?engine=native` or `?engine=hlsjs` forces one (for tests).
//
// Low latency: hls.js runs in its low-latency mode (settings and why in
// hls-live.js): LL-HLS plays PART-HOLD-BACK behind the live edge, a playlist
// without parts as ordinary HLS. Below the video (live-ui.js): "Behind live
// N s" (`hls.latency`, refreshed 4×/s), a "Go live" button that seeks to
// `hls.liveSyncPosition` (enabled when more than 1 s behind it, or paused),
// and the quality menu, which switches with `hls.nextLevel` (the buffered
// picture plays on and the new level starts at the next fragment; setting
// `currentLevel` would flush the buffer and freeze the picture until the next
// keyframe); "Auto" hands the choice back to hls.js (`nextLevel = -1`).
//
// Status: GET /api/v1/streams/{id}/status every 2 s, every 0.5 s while the
// page waits for the stream to go live, so playback starts right after the
// first part is out. When the stream turns ACTIVE and nothing plays, the
// source is (re)loaded. Fatal network errors are retried while the stream is
// ACTIVE (or its status is unknown or ERROR): the first few every 0.5 s (a
// stream that just went live has its master playlist once both tracks have
// a part), then with exponential back-off.
//
// Beacons (session.js): before loading anything the page asks the server for
// a signed session id (POST /api/v1/streams/{id}/sessions; ids are minted by
// the server, a made-up one is refused), loads the master playlist with
// `?sid=<id>` and POSTs player events to /api/v1/sessions/{sid}/events
// (startup, stall_start/stall_end, quality_change, error, and a heartbeat
// every 2 s while playing or paused-but-visible), so its requests and its
// beacons make one session. Without an id (the server refused one, or did
// not answer within 3 s) the page plays all the same and sends no beacons.
// Beacon failures are ignored.
//
// Tests read `window.__player` = { hls, video, engine, status, errors, sessionId,
// liveLatency() } (liveLatency: the "behind live" figure, seconds or null).
(function () {
  "use strict";

  var STATUS_POLL_MS = 2000;
  var STATUS_POLL_WAITING_MS = 500;
  var RETRY_QUICK_MS = 500;
  var RETRY_QUICK_COUNT = 6;
  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 16000;
  // No progress for this long while the stream is ACTIVE counts as stalled.
  var STALL_MS = 12000;

  var streamId = document.body.dataset.streamId || "";
  var enc = encodeURIComponent(streamId);
  var masterUrl = "/hls/" + enc + "/master.m3u8";
  var statusUrl = "/api/v1/streams/" + enc + "/status";

  var video = document.getElementById("video");
  var statusEl = document.getElementById("status");
  var titleEl = document.getElementById("title");
  var overlay = document.getElementById("overlay");
  var overlayText = document.getElementById("overlay-text");
  var engineEl = document.getElementById("engine");
  var qualityEl = document.getElementById("quality");
  var behindEl = document.getElementById("behind");
  var goLiveBtn = document.getElementById("go-live");
  var qualitySelect = document.getElementById("quality-menu");

  var hls = null;
  var engine = chooseEngine();
  var status = null; // last status from the API: PENDING | ACTIVE | ENDED | ERROR
  var loadedAt = 0; // when the current source was attached, 0 = none
  var lastProgressAt = 0;
  var lastTime = -1;
  var retryDelay = RETRY_MIN_MS;
  var quickRetries = RETRY_QUICK_COUNT;
  var retryTimer = null;
  var mediaRecoveries = 0;
  var userPaused = false;
  var errors = [];
  var quality = null; // current rendition name (hls.js), e.g. "720p"
  var startupSent = false;
  var hasPlayed = false;
  var stallStartedAt = 0; // 0 = not stalled

  video.muted = true;

  var player = {
    get hls() {
      return hls;
    },
    video: video,
    get engine() {
      return engine;
    },
    get status() {
      return status;
    },
    errors: errors,
    get sessionId() {
      return session.id;
    },
    reload: function () {
      load();
    },
    liveLatency: function () {
      return liveLatency();
    },
  };
  window.__player = player;

  // ---- beacons (session.js) -------------------------------------------

  var session = window.WatchSession.create({
    streamId: streamId,
    quality: function () {
      return quality;
    },
    heartbeatDue: function () {
      var playing = !video.paused && !video.ended;
      var pausedVisible = video.paused && hasPlayed && document.visibilityState === "visible";
      return !!loadedAt && (playing || pausedVisible);
    },
    hasPlayed: function () {
      return hasPlayed;
    },
    noteError: noteError,
  });
  var beacon = session.beacon;

  // The rendition name of an hls.js level: the `{name}` in
  // /hls/{id}/{name}/index.m3u8 when present (exact), else "source" for
  // level 0 and "{height}p" for the others.
  function levelName(level, index) {
    var url = level && (level.uri || level.url);
    if (Array.isArray(url)) url = url[0]; // older hls.js: a list of URLs
    var m = typeof url === "string" && url.match(/\/hls\/[^/]+\/([^/?#]+)\/index\.m3u8/);
    if (m) return decodeURIComponent(m[1]);
    if (index === 0) return "source";
    return level && level.height ? level.height + "p" : null;
  }

  function chooseEngine() {
    var forced = new URLSearchParams(window.location.search).get("engine");
    if (forced === "native" || forced === "hlsjs") return forced;
    var hlsjsOk = typeof window.Hls !== "undefined" && window.Hls.isSupported();
    var nativeOk = video.canPlayType("application/vnd.apple.mpegurl") !== "";
    var isAppleSafari = /^Apple/.test(navigator.vendor || "");
    if (nativeOk && (isAppleSafari || !hlsjsOk)) return "native";
    if (hlsjsOk) return "hlsjs";
    return nativeOk ? "native" : "none";
  }

  // ---- presentation ----------------------------------------------------

  var LABELS = {
    PENDING: ["Waiting for the broadcaster…", "badge-pending"],
    ACTIVE: ["Live", "badge-live"],
    ENDED: ["Stream ended", "badge-ended"],
    ERROR: ["Stream error", "badge-error"],
    NOT_FOUND: ["Stream not found", "badge-error"],
  };

  function showStatus(key) {
    var label = LABELS[key] || ["Connecting…", "badge-pending"];
    statusEl.textContent = label[0];
    statusEl.className = "badge " + label[1];
    updateOverlay();
  }

  function updateOverlay() {
    var playing = !video.paused && video.readyState >= 2;
    var text = null;
    var busy = false;
    if (engine === "none") {
      text = "This browser cannot play HLS video.";
    } else if (status === "ENDED" && !playing) {
      text = "Stream ended";
    } else if (status === "PENDING" && !playing) {
      text = "Waiting for the broadcaster…";
      busy = true;
    } else if ((status === "ERROR" || status === "NOT_FOUND") && !playing) {
      text = LABELS[status][0];
    } else if (!playing && !userPaused && video.readyState < 3) {
      text = loadedAt ? "Loading…" : "Connecting…";
      busy = true;
    }
    overlay.hidden = text === null;
    overlay.classList.toggle("busy", busy);
    if (text !== null) overlayText.textContent = text;
  }

  function noteError(msg) {
    errors.push(msg);
    if (errors.length > 50) errors.shift();
    if (window.console) console.warn("[watch]", msg);
  }

  // ---- playback --------------------------------------------------------

  function teardown() {
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (hls) {
      hls.destroy();
      hls = null;
    }
    loadedAt = 0;
  }

  // The master playlist, under the session id when there is one.
  function sourceUrl() {
    return session.id ? masterUrl + "?sid=" + encodeURIComponent(session.id) : masterUrl;
  }

  function load() {
    teardown();
    if (engine === "none") {
      updateOverlay();
      return;
    }
    engineEl.textContent = engine === "native" ? "native HLS" : "hls.js " + window.Hls.version;
    loadedAt = Date.now();
    lastProgressAt = loadedAt;
    mediaRecoveries = 0;
    if (engine === "native") {
      video.src = sourceUrl();
      video.load();
      tryPlay();
    } else {
      var Hls = window.Hls;
      hls = new Hls(window.HlsLive.config());
      hls.on(Hls.Events.MANIFEST_PARSED, function () {
        menu.refresh();
        tryPlay();
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, function (_e, data) {
        var level = hls && hls.levels[data.level];
        qualityEl.textContent = level && level.height ? level.height + "p" : "";
        if (hls && !hls.autoLevelEnabled) qualitySelect.value = String(hls.manualLevel);
        var name = levelName(level, data.level);
        if (name && name !== quality) {
          quality = name;
          beacon("quality_change", {});
        }
      });
      hls.on(Hls.Events.FRAG_BUFFERED, function () {
        retryDelay = RETRY_MIN_MS;
      });
      hls.on(Hls.Events.ERROR, onHlsError);
      hls.loadSource(sourceUrl());
      hls.attachMedia(video);
    }
    updateOverlay();
  }

  // ---- live position (hls-live.js, live-ui.js) --------------------------

  // Seconds behind the live edge, or null when unknown (not playing live).
  function liveLatency() {
    if (!loadedAt || video.readyState < 2) return null;
    if (hls) return window.HlsLive.latency(hls);
    return engine === "native" ? window.HlsLive.nativeLatency(video) : null;
  }

  // Where "Go live" goes.
  function liveSyncPosition() {
    if (hls) return window.HlsLive.syncPosition(hls);
    return engine === "native" ? window.HlsLive.nativeSyncPosition(video) : null;
  }

  window.LiveUi.liveBar({
    video: video,
    behindEl: behindEl,
    goLiveBtn: goLiveBtn,
    latency: liveLatency,
    lag: function () {
      var pos = liveSyncPosition();
      return liveLatency() === null || pos === null ? null : pos - video.currentTime;
    },
    goLive: function () {
      var pos = liveSyncPosition();
      if (pos !== null && isFinite(pos)) video.currentTime = pos;
      userPaused = false;
    },
  });

  var menu = window.LiveUi.qualityMenu(qualitySelect, {
    levels: function () {
      return hls ? hls.levels : [];
    },
    auto: function () {
      return !hls || hls.autoLevelEnabled;
    },
    current: function () {
      return hls ? hls.manualLevel : -1;
    },
    // nextLevel: switch at the next fragment, without flushing what is
    // buffered (-1: automatic again).
    choose: function (index) {
      if (hls) hls.nextLevel = index;
    },
  });

  function onHlsError(_event, data) {
    if (!data.fatal) return;
    var Hls = window.Hls;
    noteError("hls.js fatal " + data.type + ": " + data.details);
    beacon("error", { message: ("hls.js fatal " + data.type + ": " + data.details).slice(0, 500) });
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2 && hls) {
      mediaRecoveries += 1;
      hls.recoverMediaError();
      return;
    }
    scheduleRetry();
  }

  function scheduleRetry() {
    teardown();
    // Nothing to fetch yet (PENDING) or ever (ENDED, NOT_FOUND): the status
    // poll loads the source again when the stream turns ACTIVE.
    if (status === "PENDING" || status === "ENDED" || status === "NOT_FOUND") {
      updateOverlay();
      return;
    }
    var delay;
    if (quickRetries > 0 && !hasPlayed) {
      quickRetries -= 1;
      delay = RETRY_QUICK_MS;
    } else {
      delay = retryDelay;
      retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
    }
    retryTimer = setTimeout(function () {
      retryTimer = null;
      load();
    }, delay);
    updateOverlay();
  }

  function tryPlay() {
    var p = video.play();
    if (p && typeof p.catch === "function") {
      p.catch(function (err) {
        // Autoplay may be refused; the controls remain.
        noteError("play(): " + (err && err.name ? err.name : err));
      });
    }
  }

  function isPlaying() {
    if (!loadedAt && !retryTimer) return false;
    if (retryTimer) return true; // a reload is already scheduled
    if (userPaused) return true; // respect the viewer's pause
    if (video.ended) return false;
    return Date.now() - lastProgressAt < STALL_MS;
  }

  video.addEventListener("timeupdate", function () {
    if (video.currentTime !== lastTime) {
      lastTime = video.currentTime;
      lastProgressAt = Date.now();
    }
  });
  function endStall() {
    if (!stallStartedAt) return;
    beacon("stall_end", { duration_ms: Date.now() - stallStartedAt });
    stallStartedAt = 0;
  }

  video.addEventListener("playing", function () {
    if (!startupSent && loadedAt) {
      startupSent = true;
      beacon("startup", { startup_ms: Date.now() - loadedAt });
    }
    hasPlayed = true;
    endStall();
    userPaused = false;
    retryDelay = RETRY_MIN_MS;
    updateOverlay();
  });
  video.addEventListener("pause", function () {
    // A pause while media is ready and not ended is the viewer's.
    userPaused = !video.ended && video.readyState >= 2 && !video.seeking;
    updateOverlay();
  });
  video.addEventListener("waiting", function () {
    if (hasPlayed && !stallStartedAt) {
      stallStartedAt = Date.now();
      beacon("stall_start", {});
    }
    updateOverlay();
  });
  video.addEventListener("canplay", function () {
    endStall();
    updateOverlay();
  });
  video.addEventListener("ended", function () {
    updateOverlay();
  });
  video.addEventListener("error", function () {
    if (engine !== "native") return;
    var err = video.error;
    noteError("video error " + (err ? err.code + " " + (err.message || "") : ""));
    scheduleRetry();
  });

  // ---- status polling --------------------------------------------------

  function poll() {
    fetch(statusUrl, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (res) {
        if (res.status === 404) return { status: "NOT_FOUND" };
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json();
      })
      .then(function (body) {
        applyStatus(body);
      })
      .catch(function (err) {
        // Keep the last known status; the next poll may succeed.
        noteError("status poll: " + err.message);
      })
      .then(function () {
        setTimeout(poll, waitingForLive() ? STATUS_POLL_WAITING_MS : STATUS_POLL_MS);
      });
  }

  // Nothing has played and the stream is not live yet (it may go live any
  // moment). Once ACTIVE, the source is loaded and retried by load() itself.
  function waitingForLive() {
    return !hasPlayed && (status === null || status === "PENDING");
  }

  function applyStatus(body) {
    if (body && typeof body.name === "string" && body.name) {
      titleEl.textContent = body.name;
      document.title = body.name + " · Live";
    }
    var next = body && body.status;
    var previous = status;
    status = next;
    showStatus(next);
    if (next === "ACTIVE") {
      var becameActive = previous !== "ACTIVE";
      if (becameActive) {
        retryDelay = RETRY_MIN_MS;
        quickRetries = RETRY_QUICK_COUNT;
      }
      // Going live cuts short a pending back-off.
      if (!isPlaying() || (becameActive && retryTimer)) load();
    } else if ((next === "PENDING" || next === "ENDED" || next === "NOT_FOUND") && retryTimer) {
      // Not live: stop retrying until the stream turns ACTIVE.
      teardown();
      updateOverlay();
    }
  }

  showStatus(null);
  // Start as soon as the session id is there: a stream that is already live
  // (or a finished recording) plays without waiting for the first status answer.
  session.mint().then(function () {
    load();
    poll();
  });
})();
