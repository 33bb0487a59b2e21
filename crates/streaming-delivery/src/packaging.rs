//! Packager tasks: one per live stream, fed by the hub, writing the store.
//!
//! The sans-IO [`Packager`] does the CMAF work; this task only moves the hub's
//! tracks in (`source` and `audio` to the source packager, each rendition's
//! track to its [`FollowerPackager`]) and events out, stamps wall-clock times
//! and closes the stream's media when the hub says the broadcast is over.

use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;
use std::sync::Arc;
use streaming_core::config::MediaConfig;
use streaming_core::hub::{self, CancellationToken, HubMessage, OpenedStream, StreamHub};
use streaming_core::store::{
    RenditionInfo, RenditionKind, SegmentStore, StoredSegment, StreamMedia,
};

use streaming_media::packager::{
    FollowerPackager, Packager, PackagerConfig, PackagerEvent, TrackInfo, TrackKind,
};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

/// The rendition name of the untouched source video and of the audio track.
pub const SOURCE: &str = "source";
pub const AUDIO: &str = "audio";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Spawns a packager for every broadcast the hub opens, on `tracker`, until
/// `stop` fires (running packagers finish when their broadcast ends).
pub fn spawn_packagers(
    hub: &StreamHub,
    store: SegmentStore,
    config: MediaConfig,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let mut opened = hub.consumer();
    let inner = tracker.clone();
    tracker.spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => break,
                s = opened.recv() => match s {
                    Some(s) => s,
                    None => break,
                },
            };
            let span = info_span!("packager", stream_id = %stream.stream_id);
            inner.spawn(run(stream, store.clone(), config.clone()).instrument(span));
        }
    });
}

async fn run(stream: OpenedStream, store: SegmentStore, config: MediaConfig) {
    let OpenedStream {
        stream_id, mut rx, ..
    } = stream;
    let started = now_ms();
    // Segment URLs are cached as immutable, so numbers must never repeat across
    // broadcasts of a stream, even after a restart: number from the start time
    // in seconds (segments last about 2 s, so a later broadcast starts above),
    // and above the previous broadcast's last number in this process.
    let previous_last = store
        .get(stream_id)
        .and_then(|m| {
            m.with(|st| {
                st.renditions
                    .values()
                    .filter_map(|r| r.segments.back())
                    .map(|s| s.number)
                    .max()
            })
        })
        .unwrap_or_default();
    let number_base = ((started / 1000).max(0) as u64).max(previous_last);
    let media = store.open(stream_id, started);
    let packager_config = PackagerConfig {
        target_segment_ms: config.segment_duration_ms,
        part_target_ms: config.part_duration_ms,
    };
    let mut out = Output {
        media: &media,
        number_base,
        anchored: false,
    };
    let mut source = Packager::new(packager_config.clone());
    let mut followers: BTreeMap<Arc<str>, FollowerPackager> = BTreeMap::new();
    info!("packaging started");
    loop {
        match rx.recv().await {
            Ok(HubMessage::Config { track, config }) => {
                let result = if is_source(&track) {
                    source.configure(&config)
                } else if let Some(f) = followers.get_mut(&track) {
                    f.configure(&config)
                } else {
                    Ok(())
                };
                if let Err(e) = result {
                    warn!(track = %track, error = %e, "decoder configuration refused");
                }
            }
            Ok(HubMessage::Frame { track, frame }) => {
                let result = if is_source(&track) {
                    source.push_media(&frame)
                } else if let Some(f) = followers.get_mut(&track) {
                    f.push_media(&frame)
                } else {
                    Ok(())
                };
                if let Err(e) = result {
                    warn!(track = %track, error = %e, timestamp = frame.timestamp, "frame dropped");
                }
            }
            Ok(HubMessage::Discontinuity { track: None }) => {
                info!("publisher changed: starting a discontinuity");
                source.mark_discontinuity();
                for f in followers.values_mut() {
                    f.restart();
                }
            }
            Ok(HubMessage::Discontinuity { track: Some(track) }) => {
                if let Some(f) = followers.get_mut(&track) {
                    f.restart();
                }
            }
            Ok(HubMessage::Ladder(specs)) => {
                followers.retain(|name, _| {
                    let keep = specs.iter().any(|s| &s.name == name);
                    if !keep {
                        media.remove_rendition(name, now_ms());
                    }
                    keep
                });
                for spec in specs.iter() {
                    followers
                        .entry(spec.name.clone())
                        .or_insert_with(|| FollowerPackager::new(packager_config.clone()));
                }
            }
            Ok(HubMessage::End) | Err(RecvError::Closed) => break,
            Err(RecvError::Lagged(n)) => {
                warn!(
                    lost = n,
                    "packager fell behind the hub; frames lost, starting a discontinuity"
                );
                source.mark_discontinuity();
                for f in followers.values_mut() {
                    f.restart();
                }
            }
        }
        while let Some(start) = source.poll_segment_start() {
            for f in followers.values_mut() {
                f.cut(&start);
            }
        }
        out.drain(&mut source);
        for (name, f) in followers.iter_mut() {
            out.drain_follower(f, name);
        }
    }
    source.finish();
    out.drain(&mut source);
    for (name, f) in followers.iter_mut() {
        f.finish();
        out.drain_follower(f, name);
    }
    media.mark_ended(now_ms());
    info!("packaging ended; playlists closed");
    // The closed playlists stay for late viewers, then the memory is freed.
    let media = media.clone();
    tokio::spawn(async move {
        tokio::time::sleep(ENDED_RETENTION).await;
        if store.remove_if_current(stream_id, &media) {
            debug!(%stream_id, "ended broadcast's segments released");
        }
    });
}

/// The encoder's own tracks go to the source packager.
fn is_source(track: &str) -> bool {
    track == hub::SOURCE || track == hub::AUDIO
}

/// How long an ended broadcast's playlists and segments stay fetchable.
const ENDED_RETENTION: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn rendition_name(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Video => SOURCE,
        TrackKind::Audio => AUDIO,
    }
}

fn rendition_info(info: &TrackInfo) -> RenditionInfo {
    RenditionInfo {
        kind: match info.kind {
            TrackKind::Video => RenditionKind::Video,
            TrackKind::Audio => RenditionKind::Audio,
        },
        codec: info.codec.clone(),
        timescale: info.timescale,
        width: info.width,
        height: info.height,
        frame_rate: info.frame_rate,
        sample_rate: info.sample_rate,
        channels: info.channels,
    }
}

/// Moves packager output into the store.
struct Output<'a> {
    media: &'a StreamMedia,
    number_base: u64,
    anchored: bool,
}

impl Output<'_> {
    fn drain(&mut self, packager: &mut Packager) {
        while let Some(ev) = packager.poll_output() {
            self.event(ev, None);
        }
    }

    fn drain_follower(&mut self, packager: &mut FollowerPackager, name: &str) {
        while let Some(ev) = packager.poll_output() {
            self.event(ev, Some(name));
        }
    }

    /// `rendition` is `None` for the source packager (video → `source`, audio → `audio`).
    fn event(&mut self, ev: PackagerEvent, rendition: Option<&str>) {
        let now = now_ms();
        let media = self.media;
        match ev {
            PackagerEvent::Init(init) => {
                let name = rendition.unwrap_or(rendition_name(init.track));
                debug!(rendition = name, version = init.version, codec = %init.info.codec, "init segment");
                media.put_init(
                    name,
                    rendition_info(&init.info),
                    init.version,
                    init.data,
                    now,
                );
            }
            PackagerEvent::Part(_) => {}
            PackagerEvent::Segment(seg) => {
                let ts = u64::from(seg.timescale.max(1));
                let end_ms = ((seg.start + seg.duration) * 1000 / ts) as i64;
                if !self.anchored && rendition.is_none() {
                    // The first segment completes now: media time `end` is now.
                    media.set_availability_start(now - end_ms);
                    self.anchored = true;
                }
                let start_ms = (seg.start * 1000 / ts) as i64;
                let pdt = media.with(|s| s.availability_start_ms) + start_ms;
                let name = rendition.unwrap_or(rendition_name(seg.track));
                let number = self.number_base + seg.number;
                debug!(
                    rendition = name,
                    number,
                    duration = seg.duration as f64 / ts as f64,
                    bytes = seg.data.len(),
                    "segment"
                );
                media.put_segment(
                    name,
                    StoredSegment {
                        number,
                        start: seg.start,
                        duration: seg.duration,
                        timescale: seg.timescale,
                        data: seg.data,
                        discontinuity: seg.discontinuity,
                        init_version: seg.init_version,
                        program_date_time_ms: pdt,
                    },
                    now,
                );
            }
            PackagerEvent::Discontinuity { reason } => {
                warn!(rendition = rendition.unwrap_or(SOURCE), %reason, "timestamp discontinuity");
            }
        }
    }
}
