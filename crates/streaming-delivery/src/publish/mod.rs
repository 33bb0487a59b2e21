//! From packager output to the segment store: the one writer of a
//! broadcast's media.
//!
//! [`MediaWriter`] takes the packagers' events (init segments, parts,
//! segments, discontinuities), numbers segments (the packager's numbers from
//! a per-broadcast base, so URLs never repeat across broadcasts), stamps wall
//! clock times, keeps its own record of the window ([`model`]), stores the
//! bytes, renders each changed playlist once (full and delta), the master
//! playlist and the MPD when the set of segments or renditions changes, and
//! publishes every rendition's progress so that held requests wake. Handlers
//! read what it stored; nothing is read back from the store here.

pub mod model;
pub mod render_dash;
pub mod render_hls;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use bytes::Bytes;
use streaming_core::config::MediaConfig;
use streaming_core::store::{Generation, Key, Object, RenditionInfo, RenditionKind, SharedStore};
use streaming_media::cmaf;
use streaming_media::packager::{PackagerEvent, TrackInfo, TrackKind};
use tracing::{debug, warn};
use uuid::Uuid;

use crate::packaging::{AUDIO, SOURCE, now_ms};
use model::{
    BEHIND_SOURCE_KEPT, BroadcastModel, OpenSegment, PartMeta, RenditionModel, SegmentMeta,
};

/// Segments (before the open one) whose parts stay listed and fetchable:
/// RFC 8216bis §4.4.3.7 wants parts listed for about three target durations.
const PART_SEGMENTS: usize = 2;

/// How playlists and the MPD are written.
#[derive(Debug, Clone)]
pub struct RenderConfig {
    pub segment_target_ms: u32,
    pub part_target_ms: u32,
    /// Complete segments listed in each media playlist and the MPD.
    pub playlist_segments: usize,
    /// Segments kept fetchable (≥ listed).
    pub retained_segments: usize,
    /// `delivery.cdn_mode`: no per-viewer `sid` in init/part/segment URLs.
    pub cdn_mode: bool,
    /// LL-HLS tags and LL-DASH attributes.
    pub low_latency: bool,
}

/// Added to `media.part_duration_ms` for the packager's part target (and so
/// `PART-TARGET`): RTMP times are whole milliseconds, so 15 frames at 30 fps
/// last 500 or 501 ms. Without it a 500 ms part holds 14 frames when the
/// rounding falls one way, and a 2 s GOP ends in a part of a frame or two:
/// hls.js stops loading parts for seconds at such a sliver (stalls measured
/// at 200 and 500 ms parts), and the preload hint cannot foresee it. (AAC
/// frames still leave slivers at 500 ms parts: 4 × 23 frames of a 93.75-frame
/// segment; parts may not be shortened below 85 % of `PART-TARGET`, RFC
/// 8216bis §4.4.4.9, except the last.)
pub const PART_SLACK_MS: u32 = 2;

impl RenderConfig {
    pub fn new(media: &MediaConfig, cdn_mode: bool) -> Self {
        Self {
            segment_target_ms: media.segment_duration_ms,
            part_target_ms: media.part_duration_ms + PART_SLACK_MS,
            playlist_segments: media.playlist_segments.max(1),
            retained_segments: media.retained_segments.max(media.playlist_segments).max(2),
            cdn_mode,
            low_latency: media.low_latency,
        }
    }
}

/// The query a per-viewer session id takes in rendered text; replaced (or
/// removed) per request by [`personalize`].
pub const SID_SLOT: &str = "?sid=__SID__";

/// `uri` with the session slot when `per_viewer`.
pub fn slot(uri: String, per_viewer: bool) -> String {
    if per_viewer { uri + SID_SLOT } else { uri }
}

/// Rendered text for one viewer: the slot filled with `sid`, or removed.
pub fn personalize(text: &Bytes, sid: Option<&str>) -> Bytes {
    let Ok(s) = std::str::from_utf8(text) else {
        return text.clone();
    };
    if !s.contains(SID_SLOT) {
        return text.clone();
    }
    let with = sid.map(|sid| format!("?sid={sid}")).unwrap_or_default();
    Bytes::from(s.replace(SID_SLOT, &with))
}

/// An `ETag` for rendered text (before personalisation).
pub fn etag_for(data: &[u8]) -> Arc<str> {
    crate::http::etag_of(data).into()
}

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

/// The writer of one broadcast's media.
pub struct MediaWriter {
    stream: Uuid,
    generation: Generation,
    store: SharedStore,
    config: RenderConfig,
    number_base: u64,
    model: BroadcastModel,
    last_number: Option<u64>,
    /// When the source's first part of each recent segment came out
    /// (number, Unix ms), for the renditions' `behind_source_ms`.
    source_starts: std::collections::VecDeque<(u64, i64)>,
}

impl MediaWriter {
    /// Opens a new broadcast of `stream` in the store. Segment numbers are
    /// the packager's plus `number_base`.
    pub fn open(stream: Uuid, store: SharedStore, config: RenderConfig, number_base: u64) -> Self {
        let now = now_ms();
        let generation = store.open(stream, now);
        Self {
            stream,
            generation,
            store,
            config,
            number_base,
            model: BroadcastModel {
                modified_ms: now,
                ..BroadcastModel::default()
            },
            last_number: None,
            source_starts: std::collections::VecDeque::new(),
        }
    }

    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The highest segment number used (the next broadcast starts above it).
    pub fn last_number(&self) -> Option<u64> {
        self.last_number
    }

    pub fn model(&self) -> &BroadcastModel {
        &self.model
    }

    /// One packager event. `rendition` is `None` for the source packager
    /// (video → `source`, audio → `audio`).
    pub fn event(&mut self, ev: PackagerEvent, rendition: Option<&str>) {
        let now = now_ms();
        self.model.modified_ms = now;
        match ev {
            PackagerEvent::Init(init) => {
                let name = rendition.unwrap_or(rendition_name(init.track));
                debug!(rendition = name, version = init.version, codec = %init.info.codec, "init segment");
                let info = rendition_info(&init.info);
                let r = self
                    .model
                    .renditions
                    .entry(name.into())
                    .or_insert_with(|| RenditionModel::new(name.into(), info.clone(), now));
                r.info = info;
                if !r.init_versions.contains(&init.version) {
                    r.init_versions.push(init.version);
                }
                r.modified_ms = now;
                let key = Key::Init {
                    rendition: r.name.clone(),
                    version: init.version,
                };
                let progress = r.progress(false);
                self.put_media(key, init.data, now);
                self.store
                    .set_progress(self.stream, self.generation, name, progress);
            }
            PackagerEvent::Part(part) => {
                let name = rendition.unwrap_or(rendition_name(part.track));
                self.part(name, part, rendition.is_none(), now);
            }
            PackagerEvent::Segment(seg) => {
                let name = rendition.unwrap_or(rendition_name(seg.track));
                self.segment(name, seg, now);
            }
            PackagerEvent::Discontinuity { reason } => {
                warn!(rendition = rendition.unwrap_or(SOURCE), %reason, "timestamp discontinuity");
                let names: Vec<Arc<str>> = match rendition {
                    Some(n) => vec![n.into()],
                    None => vec![SOURCE.into(), AUDIO.into()],
                };
                for name in names {
                    self.discontinuity(&name, now);
                }
            }
        }
    }

    fn part(&mut self, name: &str, part: streaming_media::packager::Part, source: bool, now: i64) {
        let number = self.number_base + part.segment;
        let Some(r) = self.model.renditions.get_mut(name) else {
            return; // no init yet: the packager never does this
        };
        if r.open.as_ref().is_some_and(|o| o.number != number) {
            // A segment that never closed (should not happen): forget its parts.
            let stale = r.open.take();
            let keys = stale.map(|o| part_keys(&r.name, o.number, o.parts.len()));
            for k in keys.into_iter().flatten() {
                self.store.delete(self.stream, self.generation, &k);
            }
        }
        let open = r.open.get_or_insert_with(|| OpenSegment {
            number,
            start: r
                .segments
                .back()
                .filter(|s| s.number + 1 == number)
                .map(|s| s.start + s.duration),
            discontinuity: r.pending_discontinuity,
            init_version: r.init_versions.last().copied().unwrap_or(1),
            parts: Vec::new(),
            data: Vec::new(),
        });
        let index = open.parts.len() as u32;
        if open.parts.is_empty() {
            if &*r.name == SOURCE {
                if self.source_starts.len() == 8 {
                    self.source_starts.pop_front();
                }
                self.source_starts.push_back((number, now));
            } else if &*r.name != AUDIO
                && let Some(&(_, at)) = self.source_starts.iter().find(|(n, _)| *n == number)
            {
                if r.behind_source_ms.len() == BEHIND_SOURCE_KEPT {
                    r.behind_source_ms.pop_front();
                }
                let behind = u32::try_from((now - at).max(0)).unwrap_or(u32::MAX);
                debug!(
                    rendition = name,
                    number,
                    behind_ms = behind,
                    "first part behind the source's"
                );
                r.behind_source_ms.push_back(behind);
            }
        }
        if open.parts.is_empty() && open.start.is_none() {
            // The first segment (or the first after a gap): its `tfdt`.
            open.start = Some(part.start);
        }
        // Where this part starts in media time: its `prft` box (ISO/IEC
        // 14496-12 §8.16.5) says when that instant was captured.
        let part_start = Some(part.start);
        if index != part.index {
            debug!(
                rendition = name,
                number,
                index,
                packager_index = part.index,
                "part index differs"
            );
        }
        open.parts.push(PartMeta {
            duration: part.duration,
            independent: part.independent,
            bytes: part.data.len(),
        });
        if source && self.model.availability_start_ms.is_none() {
            // Media time `end of this part` is now.
            let ts = f64::from(part.timescale.max(1));
            let start = open.start.unwrap_or(0) as f64;
            let end: f64 = start + open.parts.iter().map(|p| p.duration as f64).sum::<f64>();
            self.model.availability_start_ms = Some(now - (end * 1000.0 / ts) as i64);
        }
        r.modified_ms = now;
        let key = Key::Part {
            rendition: r.name.clone(),
            msn: number,
            part: index,
        };
        let progress = r.progress(false);
        self.last_number = self.last_number.max(Some(number));
        let data = match (part_start, self.model.availability_start_ms) {
            (Some(start), Some(avail)) if self.config.low_latency => {
                let ts = u64::from(part.timescale.max(1));
                let captured = avail + (start * 1000 / ts) as i64;
                let prft = cmaf::prft(1, cmaf::ntp_from_unix_ms(captured), start);
                cmaf::with_prft(&part.data, &prft)
            }
            _ => part.data,
        };
        let starting = self.config.low_latency && self.model.videos().is_empty();
        if let Some(o) = self
            .model
            .renditions
            .get_mut(name)
            .and_then(|r| r.open.as_mut())
        {
            o.data.push(data.clone());
        }
        self.put_media(key, data, now);
        self.render_playlists(name, now);
        if starting {
            // Nothing complete yet: the LL-DASH manifest lists the first
            // segment in progress as soon as its first parts are out.
            self.render_manifests(now);
        }
        self.store
            .set_progress(self.stream, self.generation, name, progress);
    }

    fn segment(&mut self, name: &str, seg: streaming_media::packager::Segment, now: i64) {
        let number = self.number_base + seg.number;
        let avail = self.model.availability_start_ms.unwrap_or(now);
        let Some(r) = self.model.renditions.get_mut(name) else {
            return;
        };
        let (parts, part_data) = match r.open.take() {
            Some(o) if o.number == number => (o.parts, o.data),
            Some(o) => {
                for k in part_keys(&r.name, o.number, o.parts.len()) {
                    self.store.delete(self.stream, self.generation, &k);
                }
                (Vec::new(), Vec::new())
            }
            None => (Vec::new(), Vec::new()),
        };
        // The segment is its parts as they were served (with their `prft`),
        // in one buffer that the parts are then re-stored as views of: the
        // bytes are held once, and a segment fetched while in progress
        // (LL-DASH) and after it closed is the same.
        let joined = (!part_data.is_empty() && part_data.len() == parts.len()).then(|| {
            (
                join(&part_data),
                part_data.iter().map(Bytes::len).collect::<Vec<_>>(),
            )
        });
        drop(part_data);
        let seg_data = joined.as_ref().map_or(seg.data, |(whole, _)| whole.clone());
        let ts = u64::from(seg.timescale.max(1));
        let pdt = avail + (seg.start * 1000 / ts) as i64;
        debug!(
            rendition = name,
            number,
            duration = seg.duration as f64 / ts as f64,
            bytes = seg_data.len(),
            "segment"
        );
        r.segments.push_back(SegmentMeta {
            number,
            start: seg.start,
            duration: seg.duration,
            bytes: seg_data.len(),
            discontinuity: seg.discontinuity,
            init_version: seg.init_version,
            program_date_time_ms: pdt,
            parts,
        });
        r.pending_discontinuity = false;
        r.modified_ms = now;
        let mut deletes = Vec::new();
        while r.segments.len() > self.config.retained_segments {
            if let Some(old) = r.segments.pop_front() {
                r.dropped_discontinuities += u64::from(old.discontinuity);
                deletes.push(Key::Segment {
                    rendition: r.name.clone(),
                    msn: old.number,
                });
                deletes.extend(part_keys(&r.name, old.number, old.parts.len()));
            }
        }
        // Parts stay for the newest segments only.
        let keep_from = r.segments.len().saturating_sub(PART_SEGMENTS);
        for s in r.segments.iter_mut().take(keep_from) {
            if !s.parts.is_empty() {
                deletes.extend(part_keys(&r.name, s.number, s.parts.len()));
                s.parts.clear();
            }
        }
        let rendition = r.name.clone();
        let key = Key::Segment {
            rendition: rendition.clone(),
            msn: number,
        };
        let progress = r.progress(false);
        self.last_number = self.last_number.max(Some(number));
        self.put_media(key, seg_data, now);
        if let Some((whole, lens)) = joined {
            // Still listed: the parts become views of the segment's buffer.
            let mut at = 0;
            for (part, len) in lens.into_iter().enumerate() {
                let key = Key::Part {
                    rendition: rendition.clone(),
                    msn: number,
                    part: part as u32,
                };
                self.put_media(key, whole.slice(at..at + len), now);
                at += len;
            }
        }
        for k in &deletes {
            self.store.delete(self.stream, self.generation, k);
        }
        self.render_playlists(name, now);
        self.render_manifests(now);
        self.store
            .set_progress(self.stream, self.generation, name, progress);
    }

    /// The open segment of `name` is abandoned (its parts unlisted) and the
    /// next one starts a discontinuity.
    fn discontinuity(&mut self, name: &str, now: i64) {
        let Some(r) = self.model.renditions.get_mut(name) else {
            return;
        };
        r.pending_discontinuity = true;
        if let Some(o) = r.open.take() {
            for k in part_keys(&r.name, o.number, o.parts.len()) {
                self.store.delete(self.stream, self.generation, &k);
            }
            let progress = r.progress(false);
            self.render_playlists(name, now);
            self.store
                .set_progress(self.stream, self.generation, name, progress);
        }
    }

    /// A rendition left the ladder: its URLs answer 404 from now on.
    pub fn remove_rendition(&mut self, name: &str) {
        let now = now_ms();
        if self.model.renditions.remove(name).is_some() {
            self.store
                .remove_rendition(self.stream, self.generation, name);
            self.render_manifests(now);
        }
    }

    /// The broadcast is over: playlists close (`EXT-X-ENDLIST`), the MPD
    /// becomes static, waiters wake.
    pub fn finish(&mut self) {
        let now = now_ms();
        self.model.ended = true;
        self.model.modified_ms = now;
        let names: Vec<Arc<str>> = self.model.renditions.keys().cloned().collect();
        for name in &names {
            if let Some(r) = self.model.renditions.get_mut(name)
                && let Some(o) = r.open.take()
            {
                for k in part_keys(&r.name, o.number, o.parts.len()) {
                    self.store.delete(self.stream, self.generation, &k);
                }
            }
            self.render_playlists(name, now);
        }
        self.render_manifests(now);
        for name in &names {
            if let Some(r) = self.model.renditions.get(name) {
                let p = r.progress(true);
                self.store
                    .set_progress(self.stream, self.generation, name, p);
            }
        }
    }

    /// Stores rendered text (validator: a hash of the text).
    fn put(&self, key: Key, data: Bytes, now: i64) {
        let etag = etag_for(&data);
        self.put_with(key, data, now, etag);
    }

    /// Stores media bytes, which never change under their key within a
    /// broadcast (validator: broadcast, key and size, no hashing; init
    /// segments, tiny and reused across broadcasts, are hashed).
    fn put_media(&self, key: Key, data: Bytes, now: i64) {
        let g = self.generation.0;
        let etag: Arc<str> = match &key {
            Key::Part {
                rendition,
                msn,
                part,
            } => format!("\"{g}-{rendition}-{msn}.{part}-{}\"", data.len()),
            Key::Segment { rendition, msn } => format!("\"{g}-{rendition}-{msn}-{}\"", data.len()),
            _ => return self.put(key, data, now),
        }
        .into();
        self.put_with(key, data, now, etag);
    }

    fn put_with(&self, key: Key, data: Bytes, now: i64, etag: Arc<str>) {
        self.store.put(
            self.stream,
            self.generation,
            key,
            Object {
                data,
                modified_ms: now,
                etag,
            },
        );
    }

    fn render_playlists(&self, name: &str, now: i64) {
        let Some(r) = self.model.renditions.get(name) else {
            return;
        };
        for skip in [false, true] {
            let key = Key::Playlist {
                rendition: r.name.clone(),
                skip,
            };
            match render_hls::media_playlist(&self.model, r, &self.config, skip) {
                Some(text) => self.put(key, Bytes::from(text), now),
                None => self.store.delete(self.stream, self.generation, &key),
            }
        }
    }

    fn render_manifests(&self, now: i64) {
        self.store
            .set_summary(self.stream, self.generation, Arc::new(self.model.summary()));
        match render_hls::master(&self.model, &self.config) {
            Some(text) => self.put(Key::Master, Bytes::from(text), now),
            None => self
                .store
                .delete(self.stream, self.generation, &Key::Master),
        }
        match render_dash::mpd(&self.model, self.stream, &self.config) {
            Some(text) => self.put(Key::Mpd, Bytes::from(text), now),
            None => self.store.delete(self.stream, self.generation, &Key::Mpd),
        }
    }
}

/// Parts joined into one buffer (one copy).
fn join(parts: &[Bytes]) -> Bytes {
    let mut buf = bytes::BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for p in parts {
        buf.extend_from_slice(p);
    }
    buf.freeze()
}

fn part_keys(rendition: &Arc<str>, msn: u64, parts: usize) -> impl Iterator<Item = Key> + '_ {
    (0..parts as u32).map(move |part| Key::Part {
        rendition: rendition.clone(),
        msn,
        part,
    })
}
