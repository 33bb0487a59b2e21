#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| streaming_media::fuzzing::flv_demux(data));
