//! HLS (RFC 8216bis): master and media playlists over the stored CMAF segments.

use axum::extract::{Path, RawQuery, State};
use std::time::Instant;

use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use bytes::Bytes;
use streaming_core::sessions::SignedSid;
use streaming_core::store::{Rendition, RenditionKind, StoredSegment, StreamMediaState};
use streaming_media::hls::{
    AudioRendition, MasterPlaylist, MediaPlaylist, MediaSegment, Variant, write_master, write_media,
};
use uuid::Uuid;

use super::DeliveryState;
use super::response::{self, CACHE_IMMUTABLE, CACHE_LIVE, M3U8, not_found};
use crate::packaging::{AUDIO, SOURCE};
use crate::sessions::{
    ManifestSession, ResolvedSession, etag_without_sid, manifest_session, sid_of, with_sid,
};

/// The packager numbers init segments from 1; the first is `init.mp4`.
const FIRST_INIT: u32 = 1;

/// The URI of a rendition's init segment of a given version.
pub fn init_uri(version: u32) -> String {
    if version <= FIRST_INIT {
        "init.mp4".to_string()
    } else {
        format!("init-{version}.mp4")
    }
}

/// A rendition is playable once it has an init segment and one media segment.
pub(crate) fn playable(r: &Rendition) -> bool {
    !r.inits.is_empty() && !r.segments.is_empty()
}

/// The source announced audio (its init is stored) but its first segment is
/// not out yet. A master playlist or MPD written now would offer video only,
/// and players read the master once: better answer "no media yet" for the
/// few milliseconds between the first video and the first audio segment.
pub(crate) fn audio_pending(st: &StreamMediaState) -> bool {
    !st.ended
        && st
            .renditions
            .get(AUDIO)
            .is_some_and(|r| !r.inits.is_empty() && r.segments.is_empty())
}

/// A master playlist or MPD can be written: some rendition is playable and
/// no announced audio is pending (what [`master_text`] and the MPD writer
/// need, without writing them).
pub(crate) fn manifest_ready(st: &StreamMediaState) -> bool {
    !audio_pending(st)
        && (!video_renditions(st).is_empty() || st.renditions.get(AUDIO).is_some_and(playable))
}

/// What a master playlist or MPD request starts with: the stream (404 if
/// unknown), its media as they stand (404 until a manifest can be written)
/// and the session the manifest is written for (see
/// [`manifest_session`]). `what` names the manifest; the error is what was
/// not found.
pub(crate) fn manifest_request(
    state: &DeliveryState,
    stream_id: &str,
    query: Option<&str>,
    ext: &Extensions,
    what: &str,
) -> Result<(Uuid, StreamMediaState, ManifestSession), String> {
    let Some((id, media)) = Uuid::parse_str(stream_id)
        .ok()
        .and_then(|id| Some((id, state.store.get(id)?)))
    else {
        return Err("stream".into());
    };
    let snapshot = media.snapshot();
    if !manifest_ready(&snapshot) {
        return Err(format!("{what} (the stream has no media yet)"));
    }
    let peer = crate::sessions::client_ip(ext);
    let session = manifest_session(&state.sessions, id, sid_of(query), peer, Instant::now());
    Ok((id, snapshot, session))
}

pub async fn master(
    State(state): State<DeliveryState>,
    Path(stream_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ext: Extensions,
) -> Response {
    let (id, snapshot, session) =
        match manifest_request(&state, &stream_id, query.as_deref(), &ext, "playlist") {
            Ok(r) => r,
            Err(missing) => return not_found(&missing),
        };
    let sid = session.signed().map(SignedSid::as_str);
    let Some(text) = master_text(&snapshot, sid) else {
        return not_found("playlist (the stream has no media yet)");
    };
    let cache = if snapshot.ended {
        CACHE_IMMUTABLE
    } else {
        CACHE_LIVE
    };
    let etag = etag_without_sid(&text, sid);
    let data = Bytes::from(text);
    let mut resp = response::body(&headers, M3U8, cache, snapshot.updated_ms, etag, data);
    session.settle(&mut resp, &state.sessions, id, "hls", &headers);
    resp
}

/// Playable video renditions, best first (the source leads).
pub(crate) fn video_renditions(st: &StreamMediaState) -> Vec<(&str, &Rendition)> {
    let mut v: Vec<_> = st
        .renditions
        .iter()
        .filter(|(_, r)| r.info.kind == RenditionKind::Video && playable(r))
        .map(|(n, r)| (n.as_str(), r))
        .collect();
    v.sort_by_key(|(n, r)| (*n != SOURCE, std::cmp::Reverse(r.info.height.unwrap_or(0))));
    v
}

pub(crate) fn master_text(st: &StreamMediaState, sid: Option<&str>) -> Option<String> {
    if audio_pending(st) {
        return None;
    }
    let videos = video_renditions(st);
    let audio = st.renditions.get(AUDIO).filter(|r| playable(r));
    if videos.is_empty() && audio.is_none() {
        return None;
    }
    let audio_group = audio.map(|_| "audio".to_string());
    let (audio_peak, audio_avg) = audio.map(|a| a.bandwidth()).unwrap_or_default();
    let mut variants = Vec::new();
    for (name, v) in &videos {
        let (peak, avg) = v.bandwidth();
        let mut codecs = v.info.codec.clone();
        if let Some(a) = audio {
            codecs.push(',');
            codecs.push_str(&a.info.codec);
        }
        variants.push(Variant {
            uri: with_sid(format!("{name}/index.m3u8"), sid),
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
            uri: with_sid(format!("{AUDIO}/index.m3u8"), sid),
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
            uri: with_sid(format!("{AUDIO}/index.m3u8"), sid),
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

/// `GET /hls/{id}/{rendition}/{index.m3u8 | init.mp4 | init-V.mp4 | segment-N.m4s}`
pub async fn rendition_file(
    State(state): State<DeliveryState>,
    Path((stream_id, rendition, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ext: Extensions,
) -> Response {
    let Some((id, media)) = Uuid::parse_str(&stream_id)
        .ok()
        .and_then(|id| Some((id, state.store.get(id)?)))
    else {
        return not_found("stream");
    };
    if file == "index.m3u8" {
        let snapshot = media.snapshot();
        // Only an id this server signed for this stream goes on to the
        // segment URIs; anything else is counted and dropped.
        let peer = crate::sessions::client_ip(&ext);
        let valid = sid_of(query.as_deref())
            .and_then(|t| state.sessions.verify(id, t, peer))
            .map(|sid| state.sessions.signer().sign(id, sid));
        let sid = valid.as_ref().map(SignedSid::as_str);
        let Some(text) = media_text(&snapshot, &rendition, &state, sid) else {
            return not_found("rendition");
        };
        let etag = etag_without_sid(&text, sid);
        let cache = if snapshot.ended {
            CACHE_IMMUTABLE
        } else {
            CACHE_LIVE
        };
        let data = Bytes::from(text);
        let modified = snapshot
            .renditions
            .get(&rendition)
            .map_or(snapshot.updated_ms, |r| r.updated_ms);
        let mut resp = response::body(&headers, M3U8, cache, modified, etag, data);
        resp.extensions_mut().insert(ResolvedSession {
            sid: valid.map(|s| s.id()),
            opened: false,
        });
        return resp;
    }
    if let Some(version) = parse_init(&file) {
        let found = media.with(|st| {
            let r = st.renditions.get(&rendition)?;
            Some((r.inits.get(&version)?.clone(), r.info.kind, r.updated_ms))
        });
        let Some((data, kind, modified)) = found else {
            return not_found("init segment");
        };
        // Not immutable: a later broadcast of the stream may bring another
        // decoder configuration under the same URL. It is tiny; revalidate.
        let etag = response::etag_of(&data);
        return response::body(&headers, mp4_type(kind), CACHE_LIVE, modified, etag, data);
    }
    if let Some(number) = parse_segment(&file) {
        let found = media.with(|st| {
            let r = st.renditions.get(&rendition)?;
            let s = r.segment(number)?;
            Some((s.data.clone(), r.info.kind, s.program_date_time_ms))
        });
        let Some((data, kind, modified)) = found else {
            return not_found("segment");
        };
        let etag = format!("\"seg-{rendition}-{number}-{}\"", data.len());
        return response::body(
            &headers,
            mp4_type(kind),
            CACHE_IMMUTABLE,
            modified,
            etag,
            data,
        );
    }
    not_found("file")
}

fn mp4_type(kind: RenditionKind) -> &'static str {
    match kind {
        RenditionKind::Video => "video/mp4",
        RenditionKind::Audio => "audio/mp4",
    }
}

fn parse_init(file: &str) -> Option<u32> {
    if file == "init.mp4" {
        return Some(FIRST_INIT);
    }
    let v = file.strip_prefix("init-")?.strip_suffix(".mp4")?;
    v.parse().ok().filter(|v| *v > FIRST_INIT)
}

fn parse_segment(file: &str) -> Option<u64> {
    let n = file.strip_prefix("segment-")?.strip_suffix(".m4s")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

pub(crate) fn media_text(
    st: &StreamMediaState,
    rendition: &str,
    state: &DeliveryState,
    sid: Option<&str>,
) -> Option<String> {
    // In CDN mode segment URLs stay per-stream, never per-viewer.
    let sid = sid.filter(|_| !state.cdn_mode);
    let r = st.renditions.get(rendition).filter(|r| playable(r))?;
    let window = state.media.playlist_segments.max(1);
    // While live, every video playlist starts at the same number: the
    // renditions begin a segment or two after the source (FFmpeg starts on
    // the source), and a player switching to a level that has nothing under
    // its playhead stalls. Once ended, each lists all it has.
    let floor = (r.info.kind == RenditionKind::Video && !st.ended)
        .then(|| {
            video_renditions(st)
                .iter()
                .filter_map(|(_, v)| v.listed(window).next().map(|s| s.number))
                .max()
        })
        .flatten();
    let listed: Vec<_> = r
        .listed(window)
        .filter(|s| floor.is_none_or(|f| s.number >= f))
        .collect();
    let first = listed.first()?.number;
    let hidden_disc = r
        .segments
        .iter()
        .take_while(|s| s.number < first)
        .filter(|s| s.discontinuity)
        .count() as u64;
    let discontinuity_sequence = st
        .discontinuity_sequence
        .get(rendition)
        .copied()
        .unwrap_or_default()
        + hidden_disc;
    let max_secs = r
        .segments
        .iter()
        .map(|s| s.duration_secs())
        .fold(0.0, f64::max);
    let target = (f64::from(state.media.segment_duration_ms) / 1000.0).max(max_secs);
    // Numbers mean the same instant in every rendition: a rendition missing
    // some (its transcoder restarted) lists them as gaps, timed by the source.
    let reference = st.renditions.get(SOURCE).filter(|_| rendition != SOURCE);
    let mut segments: Vec<MediaSegment> = Vec::with_capacity(listed.len());
    let mut previous: Option<&StoredSegment> = None;
    for s in &listed {
        if let Some(p) = previous {
            for n in p.number + 1..s.number {
                let duration_secs = reference
                    .and_then(|r| r.segment(n))
                    .map_or(p.duration_secs(), StoredSegment::duration_secs);
                segments.push(MediaSegment {
                    number: n,
                    duration_secs,
                    uri: with_sid(format!("segment-{n}.m4s"), sid),
                    map_uri: with_sid(init_uri(p.init_version), sid),
                    discontinuity: false,
                    program_date_time_ms: None,
                    gap: true,
                    ..Default::default()
                });
            }
        }
        segments.push(MediaSegment {
            number: s.number,
            duration_secs: s.duration_secs(),
            uri: with_sid(format!("segment-{}.m4s", s.number), sid),
            map_uri: with_sid(init_uri(s.init_version), sid),
            discontinuity: s.discontinuity,
            program_date_time_ms: Some(s.program_date_time_ms),
            gap: false,
            ..Default::default()
        });
        previous = Some(s);
    }
    Some(write_media(&MediaPlaylist {
        target_duration_secs: target.round().max(1.0) as u32,
        media_sequence: first,
        discontinuity_sequence,
        segments,
        ended: st.ended,
        independent_segments: true,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use streaming_core::store::{RenditionInfo, StoredSegment};

    fn rendition(kind: RenditionKind, codec: &str, segments: u64) -> Rendition {
        Rendition {
            info: RenditionInfo {
                kind,
                codec: codec.into(),
                timescale: 1000,
                width: Some(640).filter(|_| kind == RenditionKind::Video),
                height: Some(360).filter(|_| kind == RenditionKind::Video),
                frame_rate: None,
                sample_rate: None,
                channels: Some(2).filter(|_| kind == RenditionKind::Audio),
            },
            inits: [(1, Bytes::from_static(b"init"))].into(),
            segments: (0..segments)
                .map(|n| StoredSegment {
                    number: n,
                    start: n * 2000,
                    duration: 2000,
                    timescale: 1000,
                    data: Bytes::from_static(b"media"),
                    discontinuity: false,
                    init_version: 1,
                    program_date_time_ms: 0,
                })
                .collect(),
            updated_ms: 0,
        }
    }

    #[test]
    fn no_master_while_the_announced_audio_has_no_segment() {
        let mut st = StreamMediaState {
            renditions: Default::default(),
            ended: false,
            availability_start_ms: 0,
            updated_ms: 0,
            discontinuity_sequence: Default::default(),
        };
        st.renditions.insert(
            SOURCE.into(),
            rendition(RenditionKind::Video, "avc1.42c01f", 1),
        );
        st.renditions.insert(
            AUDIO.into(),
            rendition(RenditionKind::Audio, "mp4a.40.2", 0),
        );
        assert!(!manifest_ready(&st));
        assert!(
            master_text(&st, None).is_none(),
            "video-only master offered"
        );
        st.renditions.insert(
            AUDIO.into(),
            rendition(RenditionKind::Audio, "mp4a.40.2", 1),
        );
        assert!(manifest_ready(&st));
        let m = master_text(&st, None).unwrap();
        assert!(m.contains("avc1.42c01f,mp4a.40.2"), "{m}");
        // A video-only broadcast (no audio announced) is served at once.
        st.renditions.remove(AUDIO);
        assert!(master_text(&st, None).is_some());
        assert!(manifest_ready(&st));
        st.renditions.remove(SOURCE);
        assert!(!manifest_ready(&st) && master_text(&st, None).is_none());
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_init("init.mp4"), Some(1));
        assert_eq!(parse_init("init-3.mp4"), Some(3));
        assert_eq!(parse_init("init-1.mp4"), None);
        assert_eq!(init_uri(1), "init.mp4");
        assert_eq!(init_uri(2), "init-2.mp4");
        assert_eq!(parse_init("init-x.mp4"), None);
        assert_eq!(parse_segment("segment-12.m4s"), Some(12));
        assert_eq!(parse_segment("segment-+1.m4s"), None);
        assert_eq!(parse_segment("segment-99999999999999999999999.m4s"), None);
        assert_eq!(parse_segment("../segment-1.m4s"), None);
    }
}
