// The DASH player page (/watch/{id}/dash): dash.js 5 in low-latency mode
// playing /dash/{id}/manifest.mpd, with the same "behind live" figure and
// "Go live" button as the watch page (live-ui.js).
//
// dash.js turns its low-latency mode on by itself for an MPD whose segments
// are announced before they are complete (availabilityTimeComplete="false").
// Settings:
// - target latency: the MPD's ServiceDescription (<Latency target>) when it
//   has one; an LL MPD without it gets LL_FALLBACK_DELAY_S; an ordinary MPD
//   keeps dash.js's own choice (suggestedPresentationDelay, else 4 segments);
// - live catch-up on: playback rate between 0.5× and 1.5× to hold the target;
// - ABR: the low-latency rule LoL+ (loLPRule; it replaces the others) with
//   the default moof-parsing throughput estimate of chunked downloads.
//
// Until something has played, an error (the MPD is 404 before the stream is
// live) or an exception thrown by dash.js starts a fresh player after 0.5 s
// (for the first 30 s, so a viewer waiting for the broadcaster sees its first
// part at once), then every 2 s.
//
// Tests read `window.__player` = { dash, video, engine, liveLatency() }.
(function () {
  "use strict";

  var LL_FALLBACK_DELAY_S = 1.5;
  var RETRY_QUICK_MS = 500;
  var RETRY_QUICK_COUNT = 60;
  var RETRY_MS = 2000;
  var failures = 0;
  var played = false;
  var retryTimer = null;

  var id = document.body.dataset.streamId;
  var video = document.getElementById("video");
  // Absolute: dash.js's CMCD reporter cannot parse a relative URL.
  var url = new URL("/dash/" + encodeURIComponent(id) + "/manifest.mpd", window.location.href).href;
  var dash = null;

  var SETTINGS = {
    streaming: {
      liveCatchup: {
        enabled: true,
        mode: "liveCatchupModeDefault",
        playbackRate: { min: -0.5, max: 0.5 },
      },
      abr: {
        rules: {
          throughputRule: { active: false },
          bolaRule: { active: false },
          insufficientBufferRule: { active: false },
          switchHistoryRule: { active: false },
          droppedFramesRule: { active: false },
          abandonRequestsRule: { active: false },
          l2ARule: { active: false },
          loLPRule: { active: true },
        },
      },
    },
  };

  // An LL MPD (a segment template announced early) without a target latency.
  function wantsFallbackDelay(mpd) {
    var hasTarget =
      mpd &&
      [].concat(mpd.ServiceDescription || []).some(function (sd) {
        return [].concat((sd && sd.Latency) || []).some(function (l) {
          return l && Number(l.target) > 0;
        });
      });
    var text = "";
    try {
      text = JSON.stringify(mpd.Period || mpd.Period_asArray || []);
    } catch (_e) {
      text = "";
    }
    return !hasTarget && /"availabilityTimeComplete":\s*"?false/.test(text);
  }

  // One attempt: a fresh player on the MPD. Until something has played, an
  // error ends it and the next attempt follows (a player that failed to load
  // is not reused: dash.js 5 does not recover from attachSource after that).
  function start() {
    var player = dashjs.MediaPlayer().create();
    dash = player;
    player.updateSettings(SETTINGS);
    player.on(dashjs.MediaPlayer.events.MANIFEST_LOADED, function (e) {
      if (wantsFallbackDelay(e && e.data)) {
        player.updateSettings({ streaming: { delay: { liveDelay: LL_FALLBACK_DELAY_S } } });
      }
    });
    player.on(dashjs.MediaPlayer.events.ERROR, function (e) {
      var err = e && e.error ? e.error : e;
      if (played) {
        console.error("dash.js error", JSON.stringify(err));
        return;
      }
      console.warn("dash.js error before playback", JSON.stringify(err));
      retry(player);
    });
    player.initialize(video, url, true);
  }

  function retry(player) {
    if (played || retryTimer || player !== dash) return;
    failures += 1;
    retryTimer = setTimeout(
      function () {
        retryTimer = null;
        if (played) return;
        try {
          player.destroy();
        } catch (_e) {
          // A fresh player follows all the same.
        }
        start();
      },
      failures <= RETRY_QUICK_COUNT ? RETRY_QUICK_MS : RETRY_MS,
    );
  }

  // An exception thrown inside dash.js before anything played (dash.js 5.2
  // can throw on the MPD of a stream that has just gone live) also retries.
  function onException(e) {
    if (played || !dash) return;
    var why = e && (e.message || (e.reason && e.reason.message) || e.reason);
    console.warn("exception before playback: " + why);
    retry(dash);
  }
  window.addEventListener("error", onException);
  window.addEventListener("unhandledrejection", onException);

  video.addEventListener("playing", function () {
    played = true;
  });
  start();

  function isLive() {
    try {
      return dash.isReady() && dash.isDynamic() && video.readyState >= 2;
    } catch (_e) {
      return false;
    }
  }

  function liveLatency() {
    if (!isLive()) return null;
    var l = dash.getCurrentLiveLatency();
    return typeof l === "number" && isFinite(l) && l > 0 ? l : null;
  }

  window.LiveUi.liveBar({
    video: video,
    behindEl: document.getElementById("behind"),
    goLiveBtn: document.getElementById("go-live"),
    latency: liveLatency,
    lag: function () {
      var l = liveLatency();
      return l === null ? null : l - dash.getTargetLiveDelay();
    },
    goLive: function () {
      dash.seekToOriginalLive();
    },
  });

  window.__player = {
    get dash() {
      return dash;
    },
    video: video,
    engine: "dash.js " + dash.getVersion(),
    liveLatency: liveLatency,
  };
})();
