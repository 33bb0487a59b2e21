//! HLS text from the broadcast model (RFC 8216bis; LL-HLS §4.4.3.7–4.4.5.2):
//! the multivariant playlist and each rendition's media playlist, full and as
//! a delta update. URIs are relative; per-viewer ids go in the [`SID_SLOT`].
//!
//! [`SID_SLOT`]: super::SID_SLOT

use streaming_core::store::RenditionKind;
use streaming_media::hls::{
    AudioRendition, LowLatency, MasterPlaylist, MediaPlaylist, MediaSegment, OpenSegment,
    PartEntry, RenditionReport, Skip, Variant, write_master, write_media,
};

use super::RenderConfig;
use super::model::{BroadcastModel, PartMeta, RenditionModel};
use super::slot;
use crate::packaging::{AUDIO, SOURCE};

/// The packager numbers init segments from 1; the first is `init.mp4`.
pub const FIRST_INIT: u32 = 1;

/// The URI of a rendition's init segment of a given version.
pub fn init_uri(version: u32) -> String {
    if version <= FIRST_INIT {
        "init.mp4".to_string()
    } else {
        format!("init-{version}.mp4")
    }
}

pub fn segment_uri(msn: u64) -> String {
    format!("segment-{msn}.m4s")
}

pub fn part_uri(msn: u64, part: u32) -> String {
    format!("segment-{msn}.{part}.m4s")
}

/// The multivariant playlist; `None` until a manifest can be written.
pub fn master(m: &BroadcastModel, _cfg: &RenderConfig) -> Option<String> {
    if !m.manifest_ready() {
        return None;
    }
    let videos = m.videos();
    let audio = m.audio();
    let audio_group = audio.map(|_| "audio".to_string());
    let (audio_peak, audio_avg) = audio.map(|a| a.bandwidth()).unwrap_or_default();
    let mut variants = Vec::new();
    for v in &videos {
        let (peak, avg) = v.bandwidth();
        let mut codecs = v.info.codec.clone();
        if let Some(a) = audio {
            codecs.push(',');
            codecs.push_str(&a.info.codec);
        }
        variants.push(Variant {
            uri: slot(format!("{}/index.m3u8", v.name), true),
            bandwidth: peak + audio_peak,
            average_bandwidth: Some(avg + audio_avg),
            codecs,
            resolution: v.info.width.zip(v.info.height),
            frame_rate: v.info.frame_rate,
            audio_group: audio_group.clone(),
        });
    }
    if videos.is_empty()
        && let Some(a) = audio
    {
        // Audio-only broadcast: the audio playlist is the only variant.
        variants.push(Variant {
            uri: slot(format!("{AUDIO}/index.m3u8"), true),
            bandwidth: audio_peak,
            average_bandwidth: Some(audio_avg),
            codecs: a.info.codec.clone(),
            resolution: None,
            frame_rate: None,
            audio_group: None,
        });
    }
    let audio_renditions = match (videos.is_empty(), audio) {
        (false, Some(a)) => vec![AudioRendition {
            group_id: "audio".into(),
            name: "Audio".into(),
            uri: slot(format!("{AUDIO}/index.m3u8"), true),
            default: true,
            channels: a.info.channels,
            language: None,
        }],
        _ => Vec::new(),
    };
    Some(write_master(&MasterPlaylist {
        variants,
        audio: audio_renditions,
        independent_segments: true,
    }))
}

fn part_entries(
    r: &RenditionModel,
    msn: u64,
    parts: &[PartMeta],
    per_viewer: bool,
) -> Vec<PartEntry> {
    let ts = r.timescale();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| PartEntry {
            duration_secs: p.duration as f64 / ts,
            uri: slot(part_uri(msn, i as u32), per_viewer),
            independent: p.independent,
            gap: false,
        })
        .collect()
}

/// A rendition's media playlist (`skip`: the delta update of
/// `_HLS_skip=YES`); `None` while it is not playable.
pub fn media_playlist(
    m: &BroadcastModel,
    r: &RenditionModel,
    cfg: &RenderConfig,
    skip: bool,
) -> Option<String> {
    if !r.playable() {
        return None;
    }
    let per_viewer = !cfg.cdn_mode;
    let window = cfg.playlist_segments;
    let ts = r.timescale();
    // While live, every video playlist starts at the same number: the
    // renditions begin a segment or two after the source (FFmpeg starts on
    // the source), and a player switching to a level that has nothing under
    // its playhead stalls. Once ended, each lists all it has.
    let first_of = |x: &RenditionModel| {
        x.segments
            .get(x.segments.len().saturating_sub(window))
            .map(|s| s.number)
    };
    let floor = (r.info.kind == RenditionKind::Video && !m.ended)
        .then(|| m.videos().into_iter().filter_map(first_of).max())
        .flatten();
    let skip_n = r.segments.len().saturating_sub(window);
    let listed: Vec<_> = r
        .segments
        .iter()
        .skip(skip_n)
        .filter(|s| floor.is_none_or(|f| s.number >= f))
        .collect();
    let first = listed.first()?.number;
    let hidden_disc = r
        .segments
        .iter()
        .take_while(|s| s.number < first)
        .filter(|s| s.discontinuity)
        .count() as u64;
    let max_secs = r
        .segments
        .iter()
        .map(|s| s.duration as f64 / ts)
        .fold(0.0, f64::max);
    let target_secs = (f64::from(cfg.segment_target_ms) / 1000.0).max(max_secs);
    let low_latency = cfg.low_latency && !m.ended;
    // Numbers mean the same instant in every rendition: a rendition missing
    // some (its transcoder restarted) lists them as gaps, timed by the source.
    let reference = m.renditions.get(SOURCE).filter(|_| &*r.name != SOURCE);
    let mut segments: Vec<MediaSegment> = Vec::with_capacity(listed.len());
    let mut previous: Option<&super::model::SegmentMeta> = None;
    for s in &listed {
        if let Some(p) = previous {
            for n in p.number + 1..s.number {
                let duration_secs = reference
                    .and_then(|x| x.segment(n).map(|g| g.duration as f64 / x.timescale()))
                    .unwrap_or(p.duration as f64 / ts);
                segments.push(MediaSegment {
                    number: n,
                    duration_secs,
                    uri: slot(segment_uri(n), per_viewer),
                    map_uri: slot(init_uri(p.init_version), per_viewer),
                    gap: true,
                    ..MediaSegment::default()
                });
            }
        }
        segments.push(MediaSegment {
            number: s.number,
            duration_secs: s.duration as f64 / ts,
            uri: slot(segment_uri(s.number), per_viewer),
            map_uri: slot(init_uri(s.init_version), per_viewer),
            discontinuity: s.discontinuity,
            program_date_time_ms: Some(s.program_date_time_ms),
            gap: false,
            parts: if low_latency {
                part_entries(r, s.number, &s.parts, per_viewer)
            } else {
                Vec::new()
            },
        });
        previous = Some(s);
    }
    let low_latency = low_latency.then(|| {
        let part_target = f64::from(cfg.part_target_ms) / 1000.0;
        let open = r.open.as_ref().map(|o| OpenSegment {
            number: o.number,
            discontinuity: o.discontinuity,
            map_uri: slot(init_uri(o.init_version), per_viewer),
            program_date_time_ms: o.start.map(|st| {
                m.availability_start_ms.unwrap_or_default() + (st as f64 * 1000.0 / ts) as i64
            }),
            parts: part_entries(r, o.number, &o.parts, per_viewer),
        });
        let scale = |ms: u32| u64::from(ms) * u64::from(r.info.timescale) / 1000;
        let next = match r.hinted_part(scale(cfg.segment_target_ms), scale(cfg.part_target_ms)) {
            Some(p) => part_uri(p.msn, p.part),
            None => part_uri(first, 0),
        };
        let mut reports = Vec::new();
        let others = m
            .videos()
            .into_iter()
            .chain(m.audio())
            .filter(|x| x.name != r.name);
        for x in others {
            let Some(last_msn) = x
                .last_part()
                .map(|p| p.msn)
                .or(x.segments.back().map(|s| s.number))
            else {
                continue;
            };
            reports.push(RenditionReport {
                uri: slot(format!("../{}/index.m3u8", x.name), true),
                last_msn,
                last_part: x.last_part().filter(|p| p.msn == last_msn).map(|p| p.part),
            });
        }
        LowLatency {
            part_target_secs: part_target,
            part_hold_back_secs: 3.0 * part_target,
            can_block_reload: true,
            can_skip_until_secs: Some(6.0 * target_secs.ceil()),
            hold_back_secs: None,
            open_segment: open,
            preload_hint: Some(slot(next, per_viewer)),
            rendition_reports: reports,
        }
    });
    Some(write_media(&MediaPlaylist {
        target_duration_secs: target_secs.round().max(1.0) as u32,
        media_sequence: first,
        discontinuity_sequence: r.dropped_discontinuities + hidden_disc,
        segments,
        ended: m.ended,
        independent_segments: true,
        skip: if skip && low_latency.is_some() {
            Skip::Yes
        } else {
            Skip::None
        },
        low_latency,
    }))
}
