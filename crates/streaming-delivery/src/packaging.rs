//! Packager tasks: one per live stream, fed by the hub, writing the store.
//!
//! The sans-IO [`Packager`] does the CMAF work; this task only moves the hub's
//! tracks in (`source` and `audio` to the source packager, each rendition's
//! track to its [`FollowerPackager`]) and events out to the [`MediaWriter`]
//! (which numbers, stamps wall-clock times, stores and renders), and closes
//! the stream's media when the hub says the broadcast is over.

use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use streaming_core::hub::{self, CancellationToken, HubMessage, OpenedStream, StreamHub};
use streaming_core::store::SharedStore;
use uuid::Uuid;

use crate::publish::{MediaWriter, RenderConfig};
use streaming_media::packager::{FollowerPackager, Packager, PackagerConfig};
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
    store: SharedStore,
    config: RenderConfig,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let mut opened = hub.consumer();
    let inner = tracker.clone();
    let numbers = Numbers::default();
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
            inner.spawn(
                run(stream, store.clone(), config.clone(), numbers.clone()).instrument(span),
            );
        }
    });
}

async fn run(stream: OpenedStream, store: SharedStore, config: RenderConfig, numbers: Numbers) {
    let OpenedStream {
        stream_id, mut rx, ..
    } = stream;
    let started = now_ms();
    let number_base = numbers.base(stream_id, started);
    let mut out = MediaWriter::open(stream_id, store.clone(), config.clone(), number_base);
    let packager_config = PackagerConfig {
        target_segment_ms: config.segment_target_ms,
        part_target_ms: config.part_target_ms,
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
                        out.remove_rendition(name);
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
        drain(&mut out, &mut source);
        for (name, f) in followers.iter_mut() {
            drain_follower(&mut out, f, name);
        }
    }
    source.finish();
    drain(&mut out, &mut source);
    for (name, f) in followers.iter_mut() {
        f.finish();
        drain_follower(&mut out, f, name);
    }
    out.finish();
    numbers.ended(stream_id, out.last_number());
    info!("packaging ended; playlists closed");
    // The closed playlists stay for late viewers, then the memory is freed.
    let generation = out.generation();
    tokio::spawn(async move {
        tokio::time::sleep(ENDED_RETENTION).await;
        if store.remove(stream_id, generation) {
            debug!(%stream_id, "ended broadcast's segments released");
        }
    });
}

fn drain(out: &mut MediaWriter, packager: &mut Packager) {
    while let Some(ev) = packager.poll_output() {
        out.event(ev, None);
    }
}

fn drain_follower(out: &mut MediaWriter, packager: &mut FollowerPackager, name: &str) {
    while let Some(ev) = packager.poll_output() {
        out.event(ev, Some(name));
    }
}

/// Segment numbering across broadcasts. URLs of segments are cached as
/// immutable, so numbers never repeat across broadcasts of a stream, even
/// after a restart: a broadcast numbers from its start time in seconds
/// (segments last about 2 s, so a later broadcast starts above), and above
/// the previous broadcast's last number in this process. Decided here, never
/// read back from the store.
#[derive(Clone, Default)]
pub struct Numbers(Arc<Mutex<HashMap<Uuid, u64>>>);

impl Numbers {
    fn base(&self, stream: Uuid, started_ms: i64) -> u64 {
        let previous = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stream)
            .copied();
        ((started_ms / 1000).max(0) as u64).max(previous.unwrap_or_default())
    }

    fn ended(&self, stream: Uuid, last: Option<u64>) {
        if let Some(last) = last {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let e = map.entry(stream).or_default();
            *e = (*e).max(last);
            // Bounded: forget the oldest when very many streams have ended.
            if map.len() > 100_000 {
                map.clear();
            }
        }
    }
}

/// The encoder's own tracks go to the source packager.
fn is_source(track: &str) -> bool {
    track == hub::SOURCE || track == hub::AUDIO
}

/// How long an ended broadcast's playlists and segments stay fetchable.
const ENDED_RETENTION: std::time::Duration = std::time::Duration::from_secs(15 * 60);
