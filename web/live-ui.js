// Live controls shared by the player pages (watch.js, dash-page.js,
// shaka-page.js): the "behind live" figure, the "Go live" button and the
// quality menu. Each page hands in an adapter over its player; nothing here
// knows hls.js, dash.js or Shaka.
//
//   LiveUi.liveBar({
//     video,                 // the <video>
//     behindEl, goLiveBtn,   // <span>, <button>
//     latency(),             // seconds behind the live edge, or null (not live / unknown)
//     lag(),                 // seconds behind the player's own live position
//                            // (its target latency), or null
//     goLive(),              // jumps to that position
//   })
//
// The figure is refreshed 4×/s ("Behind live 1.4 s"); the button is enabled
// when the player is more than GO_LIVE_LAG_S behind its live position (a paused
// or seeked-back viewer), so a player that already plays at its target
// latency does not offer a jump that would change nothing.
//
//   LiveUi.qualityMenu(select, { levels(), current(), choose(index), auto() })
//
// fills a <select> with "Auto" (value -1) and one option per level, best
// first; `choose(i)` / `choose(-1)` are called on change. `refresh()` on the
// returned object re-reads the levels (e.g. when hls.js parsed the master).
(function () {
  "use strict";

  var REFRESH_MS = 250;
  var GO_LIVE_LAG_S = 1.0;

  function safe(fn) {
    try {
      var v = fn();
      return typeof v === "number" && isFinite(v) ? v : null;
    } catch (_e) {
      return null;
    }
  }

  function liveBar(a) {
    var last = { latency: null, lag: null };
    function update() {
      var latency = safe(a.latency);
      var lag = safe(a.lag);
      last.latency = latency;
      last.lag = lag;
      if (latency === null) {
        a.behindEl.textContent = "";
        a.behindEl.parentElement.classList.remove("is-live");
      } else {
        a.behindEl.textContent = "Behind live " + Math.max(0, latency).toFixed(1) + " s";
        a.behindEl.parentElement.classList.add("is-live");
      }
      var behind = lag !== null && (lag > GO_LIVE_LAG_S || a.video.paused);
      a.goLiveBtn.disabled = latency === null || !behind;
    }
    a.goLiveBtn.addEventListener("click", function () {
      try {
        a.goLive();
      } catch (_e) {
        // The next refresh shows where playback is.
      }
      var p = a.video.play();
      if (p && typeof p.catch === "function") p.catch(function () {});
      update();
    });
    setInterval(update, REFRESH_MS);
    update();
    return {
      // The figures as last shown: {latency, lag} in seconds (or null).
      get shown() {
        return { latency: last.latency, lag: last.lag };
      },
      update: update,
    };
  }

  function qualityMenu(select, a) {
    function label(level) {
      var parts = [];
      if (level.height) parts.push(level.height + "p");
      if (level.bitrate) parts.push((level.bitrate / 1e6).toFixed(1) + " Mbps");
      return parts.join(" · ") || "level " + level.index;
    }
    function refresh() {
      var levels = a.levels() || [];
      var current = a.auto() ? -1 : a.current();
      while (select.firstChild) select.removeChild(select.firstChild);
      var auto = document.createElement("option");
      auto.value = "-1";
      auto.textContent = "Auto";
      select.appendChild(auto);
      levels
        .map(function (l, i) {
          return { index: i, height: l.height || 0, bitrate: l.bitrate || 0 };
        })
        .sort(function (x, y) {
          return y.height - x.height || y.bitrate - x.bitrate;
        })
        .forEach(function (l) {
          var o = document.createElement("option");
          o.value = String(l.index);
          o.textContent = label(l);
          select.appendChild(o);
        });
      select.value = String(current);
      select.disabled = levels.length < 2;
    }
    select.addEventListener("change", function () {
      var v = parseInt(select.value, 10);
      a.choose(isNaN(v) ? -1 : v);
    });
    refresh();
    return { refresh: refresh };
  }

  window.LiveUi = { liveBar: liveBar, qualityMenu: qualityMenu };
})();
