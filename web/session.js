// Viewer session of the watch page: a signed session id and the beacons sent
// under it (see watch.js for when each beacon is sent).
//
//   var s = WatchSession.create({
//     streamId,
//     quality(),       // rendition name for the beacons, or null
//     heartbeatDue(),  // whether a heartbeat is due now (playing, or paused and visible)
//     hasPlayed(),     // whether anything played (the pagehide heartbeat)
//     noteError(msg),
//   });
//   s.mint().then(...)   // POST /api/v1/streams/{id}/sessions; resolves either
//                        // way within 3 s, with s.id set when the server gave one
//   s.beacon(type, extra)
//   s.id                 // "{uuid}.{mac}" or null
//
// Ids are minted by the server (a made-up one is refused). A heartbeat goes
// out every 2 s while heartbeatDue(), and one with sendBeacon on pagehide.
// Without an id no beacon is sent; beacon failures are ignored.
(function () {
  "use strict";

  var MINT_TIMEOUT_MS = 3000;
  var HEARTBEAT_MS = 2000;
  var ID_RE = /^[0-9a-f-]{36}\.[0-9a-f]{32}$/;

  function create(o) {
    var enc = encodeURIComponent(o.streamId);
    var mintUrl = "/api/v1/streams/" + enc + "/sessions";
    var id = null;
    var beaconUrl = null;

    function mint() {
      return new Promise(function (resolve) {
        var done = false;
        function finish() {
          if (!done) {
            done = true;
            resolve();
          }
        }
        setTimeout(finish, MINT_TIMEOUT_MS);
        try {
          fetch(mintUrl, { method: "POST", cache: "no-store", headers: { Accept: "application/json" } })
            .then(function (res) {
              if (res.status !== 201) throw new Error("HTTP " + res.status);
              return res.json();
            })
            .then(function (body) {
              var got = body && body.session_id;
              if (!done && typeof got === "string" && ID_RE.test(got)) {
                id = got;
                beaconUrl = "/api/v1/sessions/" + encodeURIComponent(got) + "/events";
              }
            })
            .catch(function (err) {
              o.noteError("session id: " + err.message);
            })
            .then(finish);
        } catch (_e) {
          finish();
        }
      });
    }

    function body(type, extra) {
      var ev = { type: type, stream_id: o.streamId };
      var q = o.quality();
      if (q) ev.quality = q;
      for (var k in extra) ev[k] = extra[k];
      return JSON.stringify(ev);
    }

    function beacon(type, extra) {
      if (!beaconUrl) return;
      try {
        fetch(beaconUrl, {
          method: "POST",
          keepalive: true,
          headers: { "Content-Type": "application/json" },
          body: body(type, extra || {}),
        }).catch(function () {});
      } catch (_e) {
        // Beacons must never break playback.
      }
    }

    setInterval(function () {
      if (o.heartbeatDue()) beacon("heartbeat", {});
    }, HEARTBEAT_MS);

    window.addEventListener("pagehide", function () {
      try {
        if (!navigator.sendBeacon || !o.hasPlayed() || !beaconUrl) return;
        navigator.sendBeacon(beaconUrl, new Blob([body("heartbeat", {})], { type: "application/json" }));
      } catch (_e) {
        // ignored
      }
    });

    return {
      mint: mint,
      beacon: beacon,
      get id() {
        return id;
      },
    };
  }

  window.WatchSession = { create: create };
})();
