use std::sync::Arc;

use bytes::Bytes;
use streaming_media::media::{MediaFrame, TrackConfig, TrackKind};

use super::*;

const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

fn video_config() -> Arc<TrackConfig> {
    Arc::new(TrackConfig::h264(Bytes::from_static(AVCC)).unwrap())
}

fn audio_config() -> Arc<TrackConfig> {
    Arc::new(TrackConfig::aac(Bytes::from_static(&[0x11, 0x90])).unwrap())
}

fn video(ts: u32, key: bool) -> MediaFrame {
    MediaFrame {
        kind: TrackKind::Video,
        timestamp: ts,
        composition_time: 0,
        key,
        data: Bytes::from(vec![0, 0, 0, 1, if key { 0x65 } else { 0x41 }]),
    }
}

fn audio(ts: u32) -> MediaFrame {
    MediaFrame {
        kind: TrackKind::Audio,
        timestamp: ts,
        composition_time: 0,
        key: true,
        data: Bytes::from_static(&[0x21, 0x10]),
    }
}

/// What a subscription holds right now, as `(track, timestamp, key)` for frames
/// and a label for the rest.
fn drain(rx: &mut Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(msg) = rx.try_recv() {
        out.push(match msg {
            HubMessage::Config { track, config } => format!("config {track} {:?}", config.kind),
            HubMessage::Frame { track, frame } => {
                format!(
                    "{track} {}{}",
                    frame.timestamp,
                    if frame.key && frame.kind == TrackKind::Video {
                        "k"
                    } else {
                        ""
                    }
                )
            }
            HubMessage::Discontinuity { track } => format!("discontinuity {track:?}"),
            HubMessage::Ladder(l) => format!("ladder {}", l.len()),
            HubMessage::End => "end".into(),
        });
    }
    out
}

fn spec(name: &str) -> RenditionSpec {
    RenditionSpec {
        name: name.into(),
        width: 640,
        height: 360,
        video_kbps: 800,
        frame_rate: 30.0,
    }
}

#[tokio::test]
async fn fan_out_takeover_and_end() {
    let hub = StreamHub::new();
    let mut consumer = hub.consumer();
    let id = Uuid::new_v4();
    let (p1, start) = hub.publish(id, 1, None);
    assert_eq!(start, PublishStart::New);
    let mut opened = consumer.recv().await.unwrap();
    assert_eq!(opened.stream_id, id);
    p1.config(audio_config());
    p1.frame(audio(5));
    assert!(
        matches!(opened.rx.recv().await.unwrap(), HubMessage::Config { track, .. } if &*track == AUDIO)
    );
    assert!(
        matches!(opened.rx.recv().await.unwrap(), HubMessage::Frame { frame, .. } if frame.timestamp == 5)
    );

    let key = Uuid::new_v4();
    let (p2, start) = hub.publish(id, 2, Some(key));
    assert_eq!(start, PublishStart::TookOver);
    assert!(p1.cancelled().is_cancelled());
    p1.frame(audio(6));
    assert_eq!(
        drain(&mut opened.rx),
        ["discontinuity None"],
        "nothing of a taken-over publisher follows the takeover"
    );
    assert!(
        !p1.end(),
        "a taken-over publisher does not end the broadcast"
    );
    assert!(
        !hub.kick_key(id, Uuid::new_v4()),
        "another key's revocation spares it"
    );
    assert!(!p2.cancelled().is_cancelled());
    assert!(hub.kick_key(id, key));
    assert!(p2.cancelled().is_cancelled());
    assert!(hub.is_live(id));
    assert!(p2.end());
    assert!(matches!(opened.rx.recv().await.unwrap(), HubMessage::End));
    assert!(!hub.is_live(id));
    assert!(hub.subscribe(id).is_none());
}

#[test]
fn a_late_joiner_starts_at_the_last_key_frame_with_the_configs() {
    let hub = StreamHub::new();
    let id = Uuid::new_v4();
    let (p, _) = hub.publish(id, 1, None);
    p.config(video_config());
    p.config(audio_config());
    p.frame(video(0, true));
    p.frame(audio(10));
    p.frame(video(33, false));
    p.frame(audio(1990));
    p.frame(video(2000, true)); // a new group: audio before 2000 ms goes
    p.frame(audio(2010));
    p.frame(video(2033, false));

    let mut late = hub.subscribe(id).unwrap();
    assert_eq!(
        drain(&mut late),
        [
            "config source Video",
            "config audio Audio",
            "source 2000k",
            "audio 2010",
            "source 2033"
        ]
    );
    // Then the live messages, with no gap and no duplicate.
    p.frame(audio(2031));
    p.frame(video(2066, false));
    assert_eq!(drain(&mut late), ["audio 2031", "source 2066"]);

    // A changed configuration empties its track's group until the next key frame.
    let mut other = AVCC.to_vec();
    other[11] = 0x1e;
    p.config(Arc::new(TrackConfig::h264(Bytes::from(other)).unwrap()));
    p.frame(video(2100, false));
    let mut later = hub.subscribe(id).unwrap();
    assert_eq!(
        drain(&mut later),
        [
            "config source Video",
            "config audio Audio",
            "audio 2010",
            "audio 2031"
        ]
    );
    // A repeated configuration changes nothing.
    p.config(audio_config());
    p.frame(video(2133, true));
    let mut last = hub.subscribe(id).unwrap();
    assert_eq!(
        drain(&mut last),
        ["config source Video", "config audio Audio", "source 2133k"]
    );

    // After a takeover, nothing of the old publisher is replayed.
    let (p2, _) = hub.publish(id, 2, None);
    assert!(drain(&mut hub.subscribe(id).unwrap()).is_empty());
    p2.config(audio_config());
    p2.frame(audio(0));
    assert_eq!(
        drain(&mut hub.subscribe(id).unwrap()),
        ["config audio Audio", "audio 0"]
    );
}

#[test]
fn groups_stay_within_their_bounds() {
    let limits = GroupLimits {
        max_frames: 50,
        max_bytes: 1 << 20,
        audio_window_ms: 1000,
    };
    let hub = StreamHub::with_limits(limits);
    let id = Uuid::new_v4();
    let (p, _) = hub.publish(id, 1, None);
    p.config(audio_config());
    // Audio only: the last second is kept.
    for i in 0..500u32 {
        p.frame(audio(i * 20));
    }
    let size = |hub: &StreamHub, track: &str| {
        let b = hub.lock().streams[&id].broadcast.clone();
        lock(&b).groups.group_size(track)
    };
    assert_eq!(size(&hub, AUDIO), (50, 100), "frame bound first");
    let replay = drain(&mut hub.subscribe(id).unwrap());
    assert_eq!(replay.last().unwrap(), "audio 9980");

    // Video that never sends another key frame: the group is dropped at the bound,
    // and a late joiner waits for the next key frame.
    p.config(video_config());
    p.frame(video(10_000, true));
    for i in 1..=60u32 {
        p.frame(video(10_000 + i * 33, false));
        assert!(size(&hub, SOURCE).0 <= 50);
    }
    assert_eq!(size(&hub, SOURCE), (0, 0));
    assert!(
        !drain(&mut hub.subscribe(id).unwrap())
            .iter()
            .any(|m| m.starts_with("source ")),
        "no frames of a group that outgrew the bounds"
    );
    p.frame(video(12_100, true));
    assert_eq!(size(&hub, SOURCE).0, 1);

    // Bytes bound too.
    let hub = StreamHub::with_limits(GroupLimits {
        max_frames: 1000,
        max_bytes: 100,
        audio_window_ms: 1000,
    });
    let (p, _) = hub.publish(id, 1, None);
    p.config(video_config());
    for i in 0..25u32 {
        p.frame(video(i * 33, i == 0));
    }
    assert_eq!(
        size(&hub, SOURCE),
        (0, 0),
        "25 frames of 5 bytes exceed 100 bytes"
    );
}

#[test]
fn renditions_are_tracks_of_the_same_broadcast() {
    let hub = StreamHub::new();
    let mut consumer = hub.consumer();
    let id = Uuid::new_v4();
    let (p, _) = hub.publish(id, 1, None);
    let mut opened = consumer.try_recv().unwrap();
    let tracks = opened.tracks.clone();
    let (r720, r360): (Arc<str>, Arc<str>) = ("720p".into(), "360p".into());
    tracks.ladder(vec![spec("720p"), spec("360p")].into());
    p.config(video_config());
    p.frame(video(0, true));
    for r in [&r720, &r360] {
        tracks.config(r, video_config());
        tracks.frame(r, video(0, true));
        tracks.frame(r, video(33, false));
    }
    tracks.frame(&SOURCE.into(), video(66, true)); // not the transcoder's track
    assert_eq!(drain(&mut opened.rx).len(), 9);

    let mut late = hub.subscribe(id).unwrap();
    assert_eq!(
        drain(&mut late),
        [
            "ladder 2",
            "config source Video",
            "config 720p Video",
            "config 360p Video",
            "source 0k",
            "720p 0k",
            "720p 33",
            "360p 0k",
            "360p 33"
        ]
    );
    tracks.restarted(&r720);
    tracks.ladder(vec![spec("720p")].into());
    assert_eq!(
        drain(&mut late),
        ["discontinuity Some(\"720p\")", "ladder 1"]
    );
    assert_eq!(
        drain(&mut hub.subscribe(id).unwrap()),
        ["ladder 1", "config source Video", "source 0k"],
        "a restarted rendition starts over; one that left the ladder is forgotten"
    );
    assert!(p.end());
    tracks.frame(&r720, video(99, true));
    assert!(tracks.is_ended());
    assert_eq!(drain(&mut late), ["end"]);
    assert!(hub.tracks(id).is_none());
}

/// Subscribing while frames are being published: every subscriber sees the
/// frames from its first key frame on, each exactly once, in order.
#[test]
fn joining_during_publishing_has_no_gap_and_no_duplicate() {
    let hub = StreamHub::new();
    let id = Uuid::new_v4();
    let (p, _) = hub.publish(id, 1, None);
    p.config(video_config());
    // The publisher asks for a subscription every 100 frames and goes on at once,
    // so subscribing races with publishing at many points of a group.
    let (go, asked) = std::sync::mpsc::channel::<()>();
    let publisher = std::thread::spawn(move || {
        for i in 0..3000u32 {
            p.frame(video(i, i % 25 == 0));
            if i % 100 == 50 {
                let _ = go.send(());
            }
        }
        p
    });
    let mut subs = Vec::new();
    while asked.recv().is_ok() {
        subs.push(hub.subscribe(id).unwrap());
    }
    let _p = publisher.join().unwrap();
    assert_eq!(subs.len(), 30);
    for mut rx in subs {
        let mut last: Option<u32> = None;
        while let Ok(msg) = rx.try_recv() {
            let HubMessage::Frame { frame, .. } = msg else {
                continue;
            };
            match last {
                None => assert!(frame.key, "first frame {} is a key frame", frame.timestamp),
                Some(l) => assert_eq!(frame.timestamp, l + 1, "gap or duplicate"),
            }
            last = Some(frame.timestamp);
        }
        if let Some(l) = last {
            assert_eq!(l, 2999);
        }
    }
}
