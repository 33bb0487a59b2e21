// hls.js in low-latency mode, for the watch page (watch.js).
//
// - HlsLive.config(): the hls.js settings. `lowLatencyMode` on: with an
//   LL-HLS playlist (parts, blocking reload, preload hints) hls.js plays
//   PART-HOLD-BACK behind the live edge; a playlist without parts plays as
//   ordinary HLS (HOLD-BACK, else 3 target durations). The target latency
//   is deliberately not set (`liveSyncDuration(Count)` would override
//   PART-HOLD-BACK). Behind its target (after a stall) hls.js plays at up to
//   1.5× speed to catch up. 30 s of media is kept behind the playhead.
//   4xx answers are not retried by hls.js; the page's own back-off is.
// - HlsLive.latency(hls): seconds behind the live edge (`hls.latency`: the
//   estimated edge, playlist end + its age, minus the playhead), or null.
// - HlsLive.syncPosition(hls): hls.js's live sync point (the target latency
//   behind the edge), where "Go live" seeks.
// - HlsLive.nativeLatency(video) / nativeSyncPosition(video): the same for
//   native HLS (Safari), from the seekable range.
(function () {
  "use strict";

  var MAX_CATCH_UP_RATE = 1.5;
  var BACK_BUFFER_S = 30;

  function policy(ttfb, load, timeouts, errors, delay, maxDelay) {
    return {
      default: {
        maxTimeToFirstByteMs: ttfb,
        maxLoadTimeMs: load,
        timeoutRetry: { maxNumRetry: timeouts, retryDelayMs: 0, maxRetryDelayMs: 0 },
        errorRetry: { maxNumRetry: errors, retryDelayMs: delay, maxRetryDelayMs: maxDelay },
      },
    };
  }

  function config() {
    return {
      lowLatencyMode: true,
      maxLiveSyncPlaybackRate: MAX_CATCH_UP_RATE,
      backBufferLength: BACK_BUFFER_S,
      enableWorker: true,
      manifestLoadPolicy: policy(10000, 20000, 2, 2, 500, 2000),
      // A blocking playlist reload is held up to 3 target durations.
      playlistLoadPolicy: policy(10000, 20000, 2, 4, 500, 4000),
      fragLoadPolicy: policy(10000, 120000, 4, 6, 500, 8000),
    };
  }

  function latency(hls) {
    var details = hls && hls.latestLevelDetails;
    if (!details || !details.live) return null;
    return hls.latency > 0 ? hls.latency : null;
  }

  function syncPosition(hls) {
    var pos = hls ? hls.liveSyncPosition : null;
    return typeof pos === "number" && isFinite(pos) ? pos : null;
  }

  function nativeSyncPosition(video) {
    if (!video.seekable.length || video.duration !== Infinity) return null;
    return video.seekable.end(video.seekable.length - 1);
  }

  function nativeLatency(video) {
    var end = nativeSyncPosition(video);
    return end === null ? null : end - video.currentTime;
  }

  window.HlsLive = {
    config: config,
    latency: latency,
    syncPosition: syncPosition,
    nativeLatency: nativeLatency,
    nativeSyncPosition: nativeSyncPosition,
  };
})();
