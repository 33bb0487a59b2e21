//! MPEG-DASH (ISO/IEC 23009-1, DASH-IF IOP live): a manifest over the very
//! segments HLS serves. Dynamic while live, static once the stream ends.

use axum::extract::{Path, RawQuery, State};

use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use bytes::Bytes;
use streaming_core::sessions::SignedSid;
use streaming_core::store::{Rendition, StreamMediaState};
use streaming_media::dash::{
    AdaptationSet, ContentType, Mpd, Representation, TimelineEntry, write_mpd,
};
use uuid::Uuid;

use super::DeliveryState;
use super::hls::playable;
use super::response::{self, CACHE_IMMUTABLE, CACHE_LIVE, MPD, not_found};
use crate::packaging::{AUDIO, SOURCE};
use crate::sessions::{etag_without_sid, with_sid};

pub async fn manifest(
    State(state): State<DeliveryState>,
    Path(stream_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ext: Extensions,
) -> Response {
    let (id, snapshot, session) = match super::hls::manifest_request(
        &state,
        &stream_id,
        query.as_deref(),
        &ext,
        "manifest",
    ) {
        Ok(r) => r,
        Err(missing) => return not_found(&missing),
    };
    let sid = session.signed().map(SignedSid::as_str);
    let Some(text) = mpd_text(&snapshot, id, &state, sid) else {
        return not_found("manifest (the stream has no media yet)");
    };
    let etag = etag_without_sid(&text, sid);
    let cache = if snapshot.ended {
        CACHE_IMMUTABLE
    } else {
        CACHE_LIVE
    };
    let data = Bytes::from(text);
    let mut resp = response::body(&headers, MPD, cache, snapshot.updated_ms, etag, data);
    session.settle(&mut resp, &state.sessions, id, "dash", &headers);
    resp
}

fn representation(
    id: Uuid,
    name: &str,
    r: &Rendition,
    listed: usize,
    reference: Option<&Rendition>,
    sid: Option<&str>,
) -> Representation {
    let segs: Vec<_> = r.listed(listed).collect();
    // `$Number$` counts timeline entries, so a rendition missing segments (its
    // transcoder restarted) keeps them in its timeline, timed by the source;
    // those few requests answer 404 and players skip or switch.
    let mut timeline = Vec::with_capacity(segs.len());
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
    let (peak, _) = r.bandwidth();
    let version = segs.last().map(|s| s.init_version).unwrap_or_default();
    // Segments are made once and live under /hls; the MPD points there.
    let base = format!("../../hls/{id}/{name}");
    Representation {
        id: name.to_string(),
        codecs: r.info.codec.clone(),
        bandwidth: peak.max(1),
        width: r.info.width,
        height: r.info.height,
        frame_rate: r.info.frame_rate,
        audio_sampling_rate: r.info.sample_rate,
        channels: r.info.channels,
        timescale: r.info.timescale,
        initialization: with_sid(format!("{base}/{}", super::hls::init_uri(version)), sid),
        media: with_sid(format!("{base}/segment-$Number$.m4s"), sid),
        start_number: segs.first().map(|s| s.number).unwrap_or(1),
        timeline,
        ..Default::default()
    }
}

pub(crate) fn mpd_text(
    st: &StreamMediaState,
    id: Uuid,
    state: &DeliveryState,
    sid: Option<&str>,
) -> Option<String> {
    if super::hls::audio_pending(st) {
        return None;
    }
    // In CDN mode segment URLs carry no `sid`; the MPD refresh URL
    // (`Location`) still does, so DASH viewers are counted by their refreshes.
    let location_sid = sid;
    let sid = sid.filter(|_| !state.cdn_mode);
    let listed = state.media.playlist_segments.max(1);
    let mut sets = Vec::new();
    let mut max_seg = 0f64;
    let mut window = 0f64;
    // One video AdaptationSet (every rendition cut on the same instants) and one audio.
    let videos = super::hls::video_renditions(st);
    let audio: Vec<_> = st
        .renditions
        .get(AUDIO)
        .filter(|r| playable(r))
        .map(|r| (AUDIO, r))
        .into_iter()
        .collect();
    for (group, content_type, mime) in [
        (videos, ContentType::Video, "video/mp4"),
        (audio, ContentType::Audio, "audio/mp4"),
    ] {
        if group.is_empty() {
            continue;
        }
        for (_, r) in &group {
            for s in r.listed(listed) {
                max_seg = max_seg.max(s.duration_secs());
            }
            window = window.max(r.listed(listed).map(|s| s.duration_secs()).sum());
        }
        sets.push(AdaptationSet {
            id: sets.len() as u32,
            content_type,
            mime_type: mime.into(),
            segment_alignment: true,
            representations: group
                .iter()
                .map(|(name, r)| {
                    let reference = st
                        .renditions
                        .get(SOURCE)
                        .filter(|_| *name != SOURCE && *name != AUDIO);
                    representation(id, name, r, listed, reference, sid)
                })
                .collect(),
        });
    }
    if sets.is_empty() {
        return None;
    }
    let target = f64::from(state.media.segment_duration_ms) / 1000.0;
    Some(write_mpd(&Mpd {
        dynamic: !st.ended,
        availability_start_time_ms: st.availability_start_ms,
        publish_time_ms: st.updated_ms,
        minimum_update_period_secs: target,
        time_shift_buffer_depth_secs: window.max(target),
        // About three segments behind the edge: players told to sit closer freeze.
        suggested_presentation_delay_secs: 3.0 * target,
        min_buffer_time_secs: target,
        max_segment_duration_secs: max_seg.max(target),
        media_presentation_duration_secs: st.ended.then_some(window),
        utc_timing_url: Some("/time".into()),
        period_start_secs: 0.0,
        // Refreshes keep the viewer's session.
        location: location_sid
            .filter(|_| !st.ended)
            .map(|s| with_sid("manifest.mpd".into(), Some(s))),
        adaptation_sets: sets,
        ..Default::default()
    }))
}
