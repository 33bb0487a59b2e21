//! Unit tests of the registry: counting, sweeping, beacons, qualities.

use super::*;

#[test]
fn sessions_count_once_confirmed_and_end_after_inactivity() {
    let reg = ViewerSessions::new();
    let stream = Uuid::new_v4();
    let a = reg.start(stream, "hls", None);
    let idle = reg.start(stream, "hls", None);
    reg.touch(a, stream, None, 100, false);
    assert_eq!(reg.count(stream), 0);
    reg.touch(a, stream, Some("source"), 1000, true);
    reg.touch(a, stream, Some("audio"), 10, true);
    assert_eq!(reg.count(stream), 1);
    assert_eq!(reg.quality_distribution(stream)["source"], 1);
    // Another stream's id is not moved over.
    reg.touch(a, Uuid::new_v4(), Some("720p"), 5, true);
    assert_eq!(reg.quality_distribution(stream)["source"], 1);
    reg.touch(a, stream, Some("720p"), 0, true);
    assert_eq!(reg.switches(a), Some(1));
    let s = reg.sweep(Instant::now(), Duration::from_secs(60));
    assert_eq!(s.persist.len(), 1);
    assert_eq!(s.counts[&stream], 1);
    let later = Instant::now() + Duration::from_secs(61);
    let s = reg.sweep(later, Duration::from_secs(60));
    assert_eq!(s.counts[&stream], 0);
    assert_eq!(s.persist.len(), 1, "the unconfirmed one is dropped unsaved");
    let ended = &s.persist[0];
    assert_eq!(ended.id, a);
    assert_eq!(ended.bytes_sent, 1110, "the foreign touch is not charged");
    assert!(ended.ended_at.is_some());
    assert_eq!(reg.count(stream), 0);
    assert!(reg.switches(idle).is_none());
    // Once reported at 0, the stream drops out of the counts.
    assert!(reg.sweep(later, Duration::from_secs(60)).counts.is_empty());
}

#[test]
fn beacon_only_viewers_count_and_their_stalls_make_the_buffering_ratio() {
    let reg = ViewerSessions::new();
    let stream = Uuid::new_v4();
    let t0 = Instant::now();
    let timeout = Duration::from_secs(6);
    reg.sweep(t0, timeout);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let hb = |q: &str| Beacon::Heartbeat {
        quality: Some(q.into()),
    };
    reg.beacon(a, stream, hb("480p"), None).unwrap();
    reg.beacon(b, stream, hb("720p"), Some("ua".into()))
        .unwrap();
    assert_eq!(reg.count(stream), 2, "beacons alone make viewers");
    assert_eq!(
        reg.beacon(a, Uuid::new_v4(), Beacon::Error, None),
        Err(BeaconError::OtherStream)
    );
    reg.beacon(a, stream, Beacon::StallStart, None).unwrap();
    reg.beacon(
        b,
        stream,
        Beacon::QualityChange {
            quality: "480p".into(),
        },
        None,
    )
    .unwrap();
    reg.beacon(b, stream, Beacon::Error, None).unwrap();
    let s = reg.sweep(t0 + Duration::from_secs(1), timeout);
    let aud = &s.audiences[&stream];
    assert_eq!(aud.viewers, 2);
    assert_eq!(aud.quality_distribution["480p"], 2);
    assert_eq!(aud.player_errors, 1);
    assert_eq!(s.persist.len(), 2, "both confirmed sessions are saved");
    // Stall began after t0 (it started "now", just before the sweep):
    // its share is at most the tick, and watch time is 2 × 1 s.
    assert_eq!(aud.watch_ms, 2000);
    assert!(aud.stall_ms <= 1000);
    // A full stalled second: a's whole tick, b's none → ratio 0.5.
    let s = reg.sweep(t0 + Duration::from_secs(2), timeout);
    let aud = &s.audiences[&stream];
    assert_eq!((aud.watch_ms, aud.stall_ms), (2000, 1000));
    assert!((aud.buffering_ratio() - 0.5).abs() < 1e-9);
    assert_eq!(aud.player_errors, 0, "errors are reported once");
    reg.beacon(a, stream, Beacon::StallEnd { duration_ms: None }, None)
        .unwrap();
    assert_eq!(reg.get(a).unwrap().stalls, 1);
    let s = reg.sweep(t0 + Duration::from_secs(3), timeout);
    assert_eq!(s.audiences[&stream].stall_ms, 0, "the stall ended");
    assert_eq!(reg.get(b).unwrap().quality_switches, 1);
    assert_eq!(reg.get(b).unwrap().errors, 1);
    // Without heartbeats they end after the timeout and are persisted.
    let s = reg.sweep(Instant::now() + timeout, timeout);
    assert_eq!(s.persist.len(), 2);
    assert_eq!(s.counts[&stream], 0);
}

#[test]
fn audio_is_the_quality_only_without_recent_video() {
    let reg = ViewerSessions::new();
    let stream = Uuid::new_v4();
    let a = reg.start(stream, "hls", None);
    reg.touch(a, stream, Some("audio"), 1, true);
    assert_eq!(reg.quality_distribution(stream)["audio"], 1);
    let b = reg.start(stream, "hls", None);
    reg.touch(b, stream, Some("source"), 1, true);
    reg.touch(b, stream, Some("audio"), 1, true);
    assert_eq!(reg.quality_distribution(stream)["source"], 1);
}

#[test]
fn a_body_of_beacons_under_one_lock_records_what_one_call_each_does() {
    let body = || {
        vec![
            Beacon::Startup {
                startup_ms: 800,
                quality: Some("720p".into()),
            },
            Beacon::StallStart,
            Beacon::StallEnd {
                duration_ms: Some(300),
            },
            Beacon::QualityChange {
                quality: "480p".into(),
            },
            Beacon::Error,
            Beacon::Heartbeat {
                quality: Some("source".into()),
            },
        ]
    };
    let (one, batch) = (ViewerSessions::new(), ViewerSessions::new());
    let (stream, sid) = (Uuid::new_v4(), Uuid::new_v4());
    for b in body() {
        one.beacon(sid, stream, b, Some("ua".into())).unwrap();
    }
    batch
        .beacons(sid, stream, body(), Some("ua".into()))
        .unwrap();
    let (a, b) = (one.get(sid).unwrap(), batch.get(sid).unwrap());
    assert_eq!(
        (
            a.quality,
            a.quality_switches,
            a.startup_ms,
            a.stalls,
            a.errors
        ),
        (
            b.quality,
            b.quality_switches,
            b.startup_ms,
            b.stalls,
            b.errors
        )
    );
    assert_eq!(a.user_agent, b.user_agent);
    assert_eq!(b.quality_switches, 2);
    let now = Instant::now();
    let (sa, sb) = (
        one.sweep(now, Duration::from_secs(60)),
        batch.sweep(now, Duration::from_secs(60)),
    );
    assert_eq!(sa.audiences[&stream].player_errors, 1);
    assert_eq!(
        sa.audiences[&stream].player_errors,
        sb.audiences[&stream].player_errors
    );
    assert_eq!(sa.persist.len(), sb.persist.len());
    assert_eq!(
        batch.beacons(sid, Uuid::new_v4(), body(), None),
        Err(BeaconError::OtherStream)
    );
}
