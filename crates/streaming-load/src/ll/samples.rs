//! Hand-written LL-HLS media playlists for the unit tests, in the shapes of
//! RFC 8216bis's examples (§4.4.3–4.4.5, appendix on low-latency playlists)
//! and of this project's server (`segment-N.P.m4s`, a per-viewer `?sid=`).

/// This server's shape: 2 s segments of four 0.5 s parts, parts listed for
/// the last two complete segments and for segment 23 in progress (two parts
/// so far), the hint naming part 23.2, a report for the 240p rendition.
pub const SERVER: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:19
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init.mp4?sid=v1\"
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z
#EXTINF:2.000,
segment-19.m4s?sid=v1
#EXTINF:2.000,
segment-20.m4s?sid=v1
#EXT-X-PART:DURATION=0.5,URI=\"segment-21.0.m4s?sid=v1\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"segment-21.1.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.5,URI=\"segment-21.2.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.5,URI=\"segment-21.3.m4s?sid=v1\"
#EXTINF:2.000,
segment-21.m4s?sid=v1
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.0.m4s?sid=v1\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.1.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.2.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.3.m4s?sid=v1\"
#EXTINF:2.000,
segment-22.m4s?sid=v1
#EXT-X-PART:DURATION=0.5,URI=\"segment-23.0.m4s?sid=v1\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"segment-23.1.m4s?sid=v1\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"segment-23.2.m4s?sid=v1\"
#EXT-X-RENDITION-REPORT:URI=\"../240p/index.m3u8?sid=v1\",LAST-MSN=23,LAST-PART=1
";

/// The RFC's style: 4 s segments, 1/3 s parts with letters for part names
/// (so the part cannot be read from the URI), a date on the first segment,
/// three parts of segment 272 in progress.
pub const RFC_STYLE: &str = "#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:6
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:13:36.106Z
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.00008,
fileSequence266.mp4
#EXTINF:4.00008,
fileSequence267.mp4
#EXTINF:4.00008,
fileSequence268.mp4
#EXTINF:4.00008,
fileSequence269.mp4
#EXTINF:4.00008,
fileSequence270.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.0.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.1.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.2.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.3.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.4.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.5.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.6.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.7.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.8.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.9.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.10.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.11.mp4\"
#EXTINF:4.00008,
fileSequence271.mp4
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:14:00.106Z
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.a.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.b.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.c.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart272.d.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2
#EXT-X-RENDITION-REPORT:URI=\"../4M/waitForMSN.php\",LAST-MSN=273,LAST-PART=1
";

/// A delta update of [`SERVER`]'s stream one part later (`_HLS_skip=YES`):
/// segments 19 and 20 skipped; segment 23 just completed, so no part of
/// segment 24 is listed yet and the hint names part 24.0.
pub const DELTA: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:19
#EXT-X-SKIP:SKIPPED-SEGMENTS=2
#EXT-X-MAP:URI=\"init.mp4?sid=v1\"
#EXTINF:2.000,
segment-21.m4s?sid=v1
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.0.m4s?sid=v1\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.1.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.2.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.5,URI=\"segment-22.3.m4s?sid=v1\"
#EXTINF:2.000,
segment-22.m4s?sid=v1
#EXT-X-PART:DURATION=0.5,URI=\"segment-23.0.m4s?sid=v1\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"segment-23.1.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.5,URI=\"segment-23.2.m4s?sid=v1\"
#EXT-X-PART:DURATION=0.48,URI=\"segment-23.3.m4s?sid=v1\"
#EXTINF:1.980,
segment-23.m4s?sid=v1
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"segment-24.0.m4s?sid=v1\"
";

/// Today's plain playlist: no LL tag at all.
pub const PLAIN: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:5
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:2.000,
segment-5.m4s
#EXTINF:2.000,
segment-6.m4s
";
