//! Frames are parsed once at ingest: what reaches the hub is decoder
//! configurations and codec-neutral frames on the `source` and `audio` tracks;
//! a bad frame is dropped and counted, and the stream goes on.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Ingest, Publisher, connect_from};
use streaming_core::config::IngestConfig;
use streaming_core::hub::{AUDIO, HubMessage, SOURCE};
use streaming_media::frame::{Frame, FrameKind};
use streaming_media::media::TrackKind;

/// The avcC FFmpeg/x264 wrote for testsrc2 320x240 High@1.3, 30 fps.
const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41,
    0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99,
    0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

fn tag(kind: FrameKind, ts: u32, body: &[u8]) -> Frame {
    Frame::new(kind, ts, Bytes::copy_from_slice(body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_gets_parsed_tracks_and_bad_frames_are_dropped() {
    let ingest = Ingest::start(IngestConfig::default(), None).await;
    let mut opened = ingest.ctx.hub.consumer();
    let (stream_id, key) = ingest.stream().await;
    let io = connect_from(1, ingest.addr).await;
    let mut p = Publisher::publish(io, &key, Duration::from_secs(5))
        .await
        .expect("publish accepted");
    let frames = [
        tag(FrameKind::Script, 0, b"\x02\x00\x0aonMetaData\x05"),
        tag(
            FrameKind::Video,
            0,
            &[&[0x17, 0, 0, 0, 0][..], AVCC].concat(),
        ),
        tag(FrameKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]),
        tag(
            FrameKind::Video,
            0,
            &[0x17, 1, 0, 0, 0x21, 0, 0, 0, 2, 0x65, 0x88],
        ),
        // A NAL unit claiming more bytes than the sample has: dropped.
        tag(FrameKind::Video, 33, &[0x27, 1, 0, 0, 0, 0, 0, 0, 9, 0x41]),
        // MP3 audio: unsupported, dropped.
        tag(FrameKind::Audio, 40, &[0x2f, 0xff, 0xfb]),
        tag(FrameKind::Audio, 23, &[0xaf, 1, 0x21, 0x10]),
        tag(FrameKind::Video, 66, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]),
    ];
    for f in &frames {
        p.session.send_frame(f).expect("send");
    }
    p.flush().await.expect("flush");

    let mut stream = tokio::time::timeout(Duration::from_secs(5), opened.recv())
        .await
        .expect("the broadcast opens")
        .expect("hub open");
    assert_eq!(stream.stream_id, stream_id);
    let mut got = Vec::new();
    while got.len() < 5 {
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.rx.recv())
            .await
            .expect("the parsed media arrives")
            .expect("hub open");
        got.push(match msg {
            HubMessage::Config { track, config } => {
                format!("config {track} {}", config.info.codec)
            }
            HubMessage::Frame { track, frame } => {
                assert!(!frame.data.is_empty());
                if frame.kind == TrackKind::Video {
                    assert_eq!(frame.data[..3], [0, 0, 0], "AVCC sample, no FLV header");
                }
                format!("{track} {} {}", frame.timestamp, frame.composition_time)
            }
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        got,
        [
            format!("config {SOURCE} avc1.64000D"),
            format!("config {AUDIO} mp4a.40.2"),
            format!("{SOURCE} 0 33"),
            format!("{AUDIO} 23 0"),
            format!("{SOURCE} 66 0"),
        ]
    );
    let totals = ingest.ctx.metrics.live_totals();
    assert_eq!(totals[&stream_id].errors, 2, "two bad frames counted");
    // Nothing else was forwarded (no script data): the next message ends it.
    drop(p);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.rx.recv()).await;
    assert!(matches!(end, Ok(Ok(HubMessage::End))), "{end:?}");
    ingest.stop().await;
}
