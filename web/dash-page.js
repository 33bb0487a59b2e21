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
// Tests read `window.__player` = { dash, video, engine, liveLatency() }.
(function () {
  "use strict";

  var LL_FALLBACK_DELAY_S = 1.5;

  var id = document.body.dataset.streamId;
  var video = document.getElementById("video");
  var url = "/dash/" + encodeURIComponent(id) + "/manifest.mpd";
  var dash = dashjs.MediaPlayer().create();

  dash.updateSettings({
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
  });

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

  dash.on(dashjs.MediaPlayer.events.MANIFEST_LOADED, function (e) {
    if (wantsFallbackDelay(e && e.data)) {
      dash.updateSettings({ streaming: { delay: { liveDelay: LL_FALLBACK_DELAY_S } } });
    }
  });
  dash.on(dashjs.MediaPlayer.events.ERROR, function (e) {
    console.error("dash.js error", JSON.stringify(e && e.error ? e.error : e));
  });
  dash.initialize(video, url, true);

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
    dash: dash,
    video: video,
    engine: "dash.js " + dash.getVersion(),
    liveLatency: liveLatency,
  };
})();
