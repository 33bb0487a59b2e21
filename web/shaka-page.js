// The Shaka Player page (/watch/{id}/shaka): Shaka Player (HLS build) plays
// the master playlist /hls/{id}/master.m3u8 with `streaming.lowLatencyMode`
// on, so an LL-HLS playlist is played from its parts (PART-HOLD-BACK behind
// the edge, blocking reloads, preload hints) and an ordinary one as plain
// HLS. Same "behind live" figure and "Go live" button as the watch page
// (live-ui.js). A load failure is retried, the first 10 times after 0.5 s,
// then every 2 s: the stream may not be live yet, and Shaka 5.2 cannot load a
// playlist whose first segment is still in progress (only parts: "Request
// without URIs"), which lasts up to one segment after the stream goes live.
//
// Tests read `window.__player` = { shaka, video, engine, liveLatency() }.
(function () {
  "use strict";

  var RETRY_QUICK_MS = 500;
  var RETRY_QUICK_COUNT = 10;
  var RETRY_MS = 2000;
  var failures = 0;

  var id = document.body.dataset.streamId;
  var video = document.getElementById("video");
  var url = "/hls/" + encodeURIComponent(id) + "/master.m3u8";
  var player = null;
  var playerApi = {
    get shaka() {
      return player;
    },
    video: video,
    engine: "shaka-player " + shaka.Player.version,
    liveLatency: liveLatency,
    errors: [],
  };
  window.__player = playerApi;

  shaka.polyfill.installAll();

  function noteError(where, err) {
    var msg = where + ": " + (err && err.code ? "shaka error " + err.code : String(err));
    playerApi.errors.push(msg);
    console.warn("[shaka]", msg);
  }

  function load() {
    player
      .load(url)
      .then(function () {
        var p = video.play();
        if (p && typeof p.catch === "function") p.catch(function () {});
      })
      .catch(function (err) {
        noteError("load", err);
        failures += 1;
        setTimeout(load, failures <= RETRY_QUICK_COUNT ? RETRY_QUICK_MS : RETRY_MS);
      });
  }

  function start() {
    if (!shaka.Player.isBrowserSupported()) {
      noteError("start", "browser not supported");
      return;
    }
    player = new shaka.Player();
    player.configure({
      streaming: { lowLatencyMode: true },
    });
    player.addEventListener("error", function (e) {
      noteError("player", e && e.detail);
    });
    player.attach(video).then(load, function (err) {
      noteError("attach", err);
    });
  }

  // Seconds behind the live edge: from the playlist's clock
  // (EXT-X-PROGRAM-DATE-TIME) when it has one, else from the seek range.
  function liveLatency() {
    if (!player || !player.isLive() || video.readyState < 2) return null;
    var s = player.getStats().liveLatency;
    if (typeof s === "number" && isFinite(s) && s > 0) return s;
    var end = player.seekRange().end;
    return isFinite(end) ? Math.max(0, end - video.currentTime) : null;
  }

  window.LiveUi.liveBar({
    video: video,
    behindEl: document.getElementById("behind"),
    goLiveBtn: document.getElementById("go-live"),
    latency: liveLatency,
    lag: function () {
      if (!player || !player.isLive()) return null;
      var end = player.seekRange().end;
      return isFinite(end) ? end - video.currentTime : null;
    },
    goLive: function () {
      player.goToLive();
    },
  });

  start();
})();
