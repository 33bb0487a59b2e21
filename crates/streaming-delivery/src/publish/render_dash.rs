//! The DASH manifest from the broadcast model (ISO/IEC 23009-1, DASH-IF IOP
//! live; low-latency per DASH-IF "Low-latency Modes for DASH"): dynamic while
//! live, static once ended, over the very segments HLS serves. With low
//! latency on, the segment in progress is listed (timed by the target) and
//! announced early with `availabilityTimeOffset` and
//! `availabilityTimeComplete="false"`: a request for it is answered with its
//! parts as they are produced (chunked transfer).

use streaming_media::dash::{
    AdaptationSet, ContentType, Mpd, ProducerReferenceTime, Representation, ServiceDescription,
    TimelineEntry, write_mpd,
};
use uuid::Uuid;

use super::model::{BroadcastModel, RenditionModel};
use super::render_hls::init_uri;
use super::{RenderConfig, slot};
use crate::packaging::{AUDIO, SOURCE};

fn representation(
    id: Uuid,
    m: &BroadcastModel,
    r: &RenditionModel,
    cfg: &RenderConfig,
    low_latency: bool,
) -> Representation {
    let per_viewer = !cfg.cdn_mode;
    let reference = m
        .renditions
        .get(SOURCE)
        .filter(|_| &*r.name != SOURCE && &*r.name != AUDIO);
    let skip = r.segments.len().saturating_sub(cfg.playlist_segments);
    let segs: Vec<_> = r.segments.iter().skip(skip).collect();
    // `$Number$` counts timeline entries, so a rendition missing segments (its
    // transcoder restarted) keeps them in its timeline, timed by the source;
    // those few requests answer 404 and players skip or switch.
    let mut timeline = Vec::with_capacity(segs.len() + 1);
    let mut previous: Option<u64> = None;
    for s in &segs {
        if let (Some(p), Some(reference)) = (previous, reference) {
            for n in p + 1..s.number {
                if let Some(g) = reference.segment(n) {
                    timeline.push(TimelineEntry {
                        start: g.start,
                        duration: g.duration,
                    });
                }
            }
        }
        timeline.push(TimelineEntry {
            start: s.start,
            duration: s.duration,
        });
        previous = Some(s.number);
    }
    let target = u64::from(cfg.segment_target_ms) * u64::from(r.info.timescale) / 1000;
    let mut ato = None;
    if low_latency && let Some(start) = r.open_start() {
        // The segment in progress (or about to start), timed by the target
        // duration: its request is answered part by part as it is made.
        timeline.push(TimelineEntry {
            start,
            duration: target.max(1),
        });
        let part = f64::from(cfg.part_target_ms) / 1000.0;
        ato = Some((f64::from(cfg.segment_target_ms) / 1000.0 - part).max(0.0));
    }
    let (peak, _) = r.bandwidth();
    let version = segs
        .last()
        .map(|s| s.init_version)
        .or(r.open.as_ref().map(|o| o.init_version))
        .unwrap_or(1);
    // Segments are made once and live under /hls; the MPD points there.
    let base = format!("../../hls/{id}/{}", r.name);
    Representation {
        id: r.name.to_string(),
        codecs: r.info.codec.clone(),
        bandwidth: peak.max(1),
        width: r.info.width,
        height: r.info.height,
        frame_rate: r.info.frame_rate,
        audio_sampling_rate: r.info.sample_rate,
        channels: r.info.channels,
        timescale: r.info.timescale,
        initialization: slot(format!("{base}/{}", init_uri(version)), per_viewer),
        media: slot(format!("{base}/segment-$Number$.m4s"), per_viewer),
        start_number: segs
            .first()
            .map(|s| s.number)
            .or(r.open.as_ref().map(|o| o.number))
            .unwrap_or(1),
        timeline,
        availability_time_offset: ato,
        availability_time_complete: ato.map(|_| false),
        // Media time 0 was captured at the availability start (the writer
        // anchors it so); parts carry `prft` boxes in band.
        producer_reference_time: low_latency.then(|| ProducerReferenceTime {
            id: 0,
            inband: true,
            wall_clock_time_ms: m.availability_start_ms.unwrap_or(m.modified_ms),
            presentation_time: 0,
        }),
    }
}

/// The MPD; `None` until a manifest can be written.
pub fn mpd(m: &BroadcastModel, id: Uuid, cfg: &RenderConfig) -> Option<String> {
    let low_latency = cfg.low_latency && !m.ended;
    // With low latency the first segment is listed while in progress.
    let starting = low_latency && m.starting();
    if !starting && !m.manifest_ready() {
        return None;
    }
    let listed = cfg.playlist_segments;
    let mut sets = Vec::new();
    let mut max_seg = 0f64;
    let mut window = 0f64;
    // One video AdaptationSet (every rendition cut on the same instants) and one audio.
    let (videos, audio): (_, Vec<_>) = if starting {
        let audio = m.renditions.get(AUDIO).filter(|r| r.starting());
        (m.starting_videos(), audio.into_iter().collect())
    } else {
        (m.videos(), m.audio().into_iter().collect())
    };
    for (group, content_type, mime) in [
        (videos, ContentType::Video, "video/mp4"),
        (audio, ContentType::Audio, "audio/mp4"),
    ] {
        if group.is_empty() {
            continue;
        }
        for r in &group {
            let ts = r.timescale();
            let skip = r.segments.len().saturating_sub(listed);
            let secs: Vec<f64> = r
                .segments
                .iter()
                .skip(skip)
                .map(|s| s.duration as f64 / ts)
                .collect();
            max_seg = secs.iter().copied().fold(max_seg, f64::max);
            window = window.max(secs.iter().sum());
        }
        sets.push(AdaptationSet {
            id: sets.len() as u32,
            content_type,
            mime_type: mime.into(),
            segment_alignment: true,
            representations: group
                .iter()
                .map(|r| representation(id, m, r, cfg, low_latency))
                .collect(),
        });
    }
    if sets.is_empty() {
        return None;
    }
    let target = f64::from(cfg.segment_target_ms) / 1000.0;
    let part = f64::from(cfg.part_target_ms) / 1000.0;
    Some(write_mpd(&Mpd {
        dynamic: !m.ended,
        availability_start_time_ms: m.availability_start_ms.unwrap_or(m.modified_ms),
        publish_time_ms: m.modified_ms,
        // With low latency the segment in progress is the last in the
        // timeline: players must learn the next one soon after it starts.
        minimum_update_period_secs: if low_latency { part.max(0.5) } else { target },
        time_shift_buffer_depth_secs: window.max(target),
        // About three segments behind the edge without low latency: players
        // told to sit closer freeze. With it, the ServiceDescription rules.
        suggested_presentation_delay_secs: if low_latency {
            3.0 * part.max(0.5)
        } else {
            3.0 * target
        },
        min_buffer_time_secs: if low_latency { part.max(0.5) } else { target },
        max_segment_duration_secs: max_seg.max(target),
        media_presentation_duration_secs: m.ended.then_some(window),
        utc_timing_url: Some("/time".into()),
        period_start_secs: 0.0,
        // Refreshes keep the viewer's session (even in CDN mode).
        location: (!m.ended).then(|| slot("manifest.mpd".into(), true)),
        adaptation_sets: sets,
        service_description: low_latency.then_some(ServiceDescription {
            target_latency_ms: 1500,
            min_latency_ms: 1000,
            max_latency_ms: 4000,
            min_playback_rate: 0.96,
            max_playback_rate: 1.04,
        }),
    }))
}
