//! The writer over synthetic packager output: keys stored and deleted,
//! numbering, progress, and the rendered LL-HLS playlist.

use std::sync::Arc;

use bytes::Bytes;
use streaming_core::store::{Key, MemoryStore, PartRef, SegmentStore, SharedStore};
use streaming_media::packager::{InitSegment, PackagerEvent, Part, Segment, TrackInfo, TrackKind};
use uuid::Uuid;

use super::{MediaWriter, RenderConfig, personalize};

pub(crate) fn video_info() -> TrackInfo {
    TrackInfo {
        kind: TrackKind::Video,
        codec: "avc1.64001f".into(),
        timescale: 90_000,
        width: Some(1280),
        height: Some(720),
        frame_rate: Some(30.0),
        sample_rate: None,
        channels: None,
    }
}

pub(crate) fn config() -> RenderConfig {
    RenderConfig {
        segment_target_ms: 2000,
        part_target_ms: 500,
        playlist_segments: 3,
        retained_segments: 4,
        cdn_mode: false,
        low_latency: true,
    }
}

/// Segment `n` (packager numbering) as four 0.5 s parts, then the segment.
pub(crate) fn segment_events(n: u64, parts: u32) -> Vec<PackagerEvent> {
    let mut out = Vec::new();
    for i in 0..parts {
        out.push(PackagerEvent::Part(Part {
            track: TrackKind::Video,
            segment: n,
            index: i,
            data: Bytes::from(vec![i as u8; 100]),
            start: (n - 1) * 180_000 + u64::from(i) * 45_000,
            duration: 45_000,
            timescale: 90_000,
            independent: i == 0,
        }));
    }
    out.push(PackagerEvent::Segment(Segment {
        track: TrackKind::Video,
        number: n,
        start: (n - 1) * 180_000,
        duration: 45_000 * u64::from(parts),
        timescale: 90_000,
        data: Bytes::from(vec![0u8; 100 * parts as usize]),
        discontinuity: false,
        init_version: 1,
        starts_with_keyframe: true,
    }));
    out
}

fn writer() -> (MediaWriter, Arc<MemoryStore>, Uuid) {
    writer_with(config(), 1000)
}

/// A writer (segment numbers from `base`) with the source's init segment out.
pub(crate) fn writer_with(
    config: RenderConfig,
    base: u64,
) -> (MediaWriter, Arc<MemoryStore>, Uuid) {
    let store = Arc::new(MemoryStore::new());
    let shared: SharedStore = store.clone();
    let id = Uuid::new_v4();
    let mut w = MediaWriter::open(id, shared, config, base);
    w.event(
        PackagerEvent::Init(InitSegment {
            track: TrackKind::Video,
            version: 1,
            data: Bytes::from_static(b"init"),
            info: video_info(),
        }),
        None,
    );
    (w, store, id)
}

fn playlist(store: &MemoryStore, id: Uuid) -> String {
    let o = store
        .get(
            id,
            &Key::Playlist {
                rendition: "source".into(),
                skip: false,
            },
        )
        .expect("playlist stored");
    String::from_utf8(personalize(&o.data, None).to_vec()).unwrap()
}

#[test]
fn parts_segments_and_playlists_land_under_their_keys() {
    let (mut w, store, id) = writer();
    assert!(
        store.get(id, &Key::Master).is_none(),
        "nothing playable yet"
    );
    for n in 1..=2 {
        for ev in segment_events(n, 4) {
            w.event(ev, None);
        }
    }
    // Numbers are the packager's plus the broadcast's base.
    let seg = Key::Segment {
        rendition: "source".into(),
        msn: 1002,
    };
    // Its parts as served, each with its `prft` (a 32-byte box, version 1).
    assert_eq!(store.get(id, &seg).unwrap().data.len(), 4 * (32 + 100));
    assert!(store.get(id, &Key::Master).is_some());
    assert!(store.get(id, &Key::Mpd).is_some());
    // Two parts of segment 3 are out: listed, with the hint on the third.
    for ev in segment_events(3, 4).into_iter().take(2) {
        w.event(ev, None);
    }
    let text = playlist(&store, id);
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.5"), "{text}");
    assert!(text.contains("segment-1003.1.m4s"), "{text}");
    assert!(
        text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"segment-1003.2.m4s\""),
        "{text}"
    );
    let rx = store.progress(id, "source").unwrap();
    let p = *rx.borrow();
    assert_eq!(p.last_part, Some(PartRef { msn: 1003, part: 1 }));
    assert_eq!(p.last_segment, Some(1002));

    // The window slides: old segments and parts are deleted.
    for ev in segment_events(3, 4).into_iter().skip(2) {
        w.event(ev, None);
    }
    for n in 4..=6 {
        for ev in segment_events(n, 4) {
            w.event(ev, None);
        }
    }
    let gone = Key::Segment {
        rendition: "source".into(),
        msn: 1001,
    };
    assert!(store.get(id, &gone).is_none(), "segment 1 slid out");
    let old_part = Key::Part {
        rendition: "source".into(),
        msn: 1003,
        part: 0,
    };
    assert!(
        store.get(id, &old_part).is_none(),
        "parts stay for recent segments only"
    );
    let recent_part = Key::Part {
        rendition: "source".into(),
        msn: 1006,
        part: 3,
    };
    assert!(store.get(id, &recent_part).is_some());
    assert_eq!(w.last_number(), Some(1006));
    let summary = store.summary(id).unwrap();
    assert_eq!(
        summary.rendition("source").unwrap().newest_segment,
        Some(1006)
    );

    // A discontinuity abandons the open segment's parts.
    for ev in segment_events(7, 4).into_iter().take(1) {
        w.event(ev, None);
    }
    w.event(
        PackagerEvent::Discontinuity {
            reason: "test".into(),
        },
        None,
    );
    let abandoned = Key::Part {
        rendition: "source".into(),
        msn: 1007,
        part: 0,
    };
    assert!(store.get(id, &abandoned).is_none());
    let text = playlist(&store, id);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("#EXT-X-PART:") && l.contains("segment-1007.")),
        "{text}"
    );

    // The end closes the playlist, without LL tags.
    w.finish();
    let text = playlist(&store, id);
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    assert!(!text.contains("EXT-X-PART"), "{text}");
    assert!(store.progress(id, "source").unwrap().borrow().ended);
}

#[test]
fn per_viewer_ids_fill_the_slot() {
    let text = Bytes::from_static(b"a.m4s?sid=__SID__\nb.m4s\n");
    assert_eq!(personalize(&text, Some("x.y")), "a.m4s?sid=x.y\nb.m4s\n");
    assert_eq!(personalize(&text, None), "a.m4s\nb.m4s\n");
}

fn mpd(store: &MemoryStore, id: Uuid) -> Option<String> {
    let o = store.get(id, &Key::Mpd)?;
    Some(String::from_utf8(personalize(&o.data, None).to_vec()).unwrap())
}

#[test]
fn ll_dash_lists_the_first_segment_while_in_progress() {
    let (mut w, store, id) = writer();
    assert!(mpd(&store, id).is_none(), "no part yet");
    let mut events = segment_events(1, 4).into_iter();
    w.event(events.next().unwrap(), None);
    // One part out: the MPD announces segment 1001 early, the HLS master waits
    // for a complete segment (hls.js and Shaka start only from one).
    let text = mpd(&store, id).expect("MPD after the first part");
    assert!(text.contains("startNumber=\"1001\""), "{text}");
    assert!(
        text.contains("availabilityTimeComplete=\"false\""),
        "{text}"
    );
    assert!(text.contains("<S t=\"0\" d=\"180000\""), "{text}");
    assert!(store.get(id, &Key::Master).is_none());
    for ev in events {
        w.event(ev, None);
    }
    // Complete: the same segment, now timed by its real duration, and the
    // next one in progress.
    let text = mpd(&store, id).unwrap();
    assert!(text.contains("startNumber=\"1001\""), "{text}");
    assert!(store.get(id, &Key::Master).is_some());
}

#[test]
fn without_low_latency_the_mpd_waits_for_a_complete_segment() {
    let cfg = RenderConfig {
        low_latency: false,
        ..config()
    };
    let (mut w, store, id) = writer_with(cfg, 0);
    let mut events = segment_events(1, 4);
    let seg = events.pop().unwrap();
    for ev in events {
        w.event(ev, None);
    }
    assert!(mpd(&store, id).is_none());
    w.event(seg, None);
    assert!(mpd(&store, id).is_some());
}

fn hinted(store: &MemoryStore, id: Uuid) -> String {
    let text = playlist(store, id);
    text.lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap_or_else(|| panic!("no hint:\n{text}"))
        .to_string()
}

/// 0.5 s parts in 2 s segments cut on 2 s key frames: after the fourth part
/// the segment is as long as the last one, so the next part is the next
/// segment's first (`N.4` would never be made: a 404 that hls.js backs off
/// from, stalling playback).
#[test]
fn the_hint_moves_to_the_next_segment_when_the_key_frame_is_due() {
    let (mut w, store, id) = writer();
    for n in 1..=2 {
        for ev in segment_events(n, 4) {
            w.event(ev, None);
        }
    }
    let mut parts = segment_events(3, 4).into_iter();
    for (i, want) in ["1003.1", "1003.2", "1003.3", "1004.0"].iter().enumerate() {
        w.event(parts.next().unwrap(), None);
        let line = hinted(&store, id);
        assert!(
            line.contains(&format!("URI=\"segment-{want}.m4s\"")),
            "after part {i}: {line}"
        );
    }
    // The segment closes: the hint stays on the next segment's first part.
    w.event(parts.next().unwrap(), None);
    assert!(hinted(&store, id).contains("segment-1004.0.m4s"));
    // Longer GOPs (a segment of 6 parts before): 4 parts are not enough.
    for ev in segment_events(4, 6) {
        w.event(ev, None);
    }
    for ev in segment_events(5, 6).into_iter().take(4) {
        w.event(ev, None);
    }
    assert!(hinted(&store, id).contains("segment-1005.4.m4s"));
}

#[test]
fn a_closed_segment_is_its_served_parts_in_one_shared_buffer() {
    let (mut w, store, id) = writer();
    for ev in segment_events(1, 4) {
        w.event(ev, None);
    }
    let key = |part: Option<u32>| match part {
        Some(part) => Key::Part {
            rendition: "source".into(),
            msn: 1001,
            part,
        },
        None => Key::Segment {
            rendition: "source".into(),
            msn: 1001,
        },
    };
    let seg = store.get(id, &key(None)).unwrap().data;
    let parts: Vec<Bytes> = (0..4)
        .map(|p| store.get(id, &key(Some(p))).unwrap().data)
        .collect();
    assert_eq!(
        seg,
        parts.concat(),
        "the segment is its parts, byte for byte"
    );
    let range = seg.as_ptr() as usize..seg.as_ptr() as usize + seg.len();
    for p in &parts {
        assert!(
            range.contains(&(p.as_ptr() as usize)),
            "each part is a view of the segment's buffer, not a copy"
        );
        assert_eq!(
            &p[4..8],
            b"prft",
            "parts keep their producer reference time"
        );
    }
}
