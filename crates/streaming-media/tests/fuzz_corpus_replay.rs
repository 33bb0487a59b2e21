//! Replays every committed fuzz corpus entry (`fuzz/corpus/<target>/*`)
//! through the same function the cargo-fuzz target calls
//! (`streaming_media::fuzzing`), so that stable `cargo test` keeps the parsers
//! honest without libFuzzer (docs/ARCHITECTURE.md, "Tests"). Crashes the
//! fuzzer found are committed to the corpus as regression inputs.

use std::path::PathBuf;
use std::time::Instant;

use streaming_media::fuzzing::TARGETS;

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// The corpus files of `target`, sorted; fails when the directory is missing
/// or empty (a target without a corpus is not being replayed).
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = corpus_root().join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "fuzz corpus {} missing ({e}); regenerate with fuzz/make_seeds.sh",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "fuzz corpus {} is empty; regenerate with fuzz/make_seeds.sh",
        dir.display()
    );
    files
}

fn replay(target: &str) {
    let (_, body) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target} in streaming_media::fuzzing"));
    let files = corpus(target);
    let started = Instant::now();
    let mut failures = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("read corpus file");
        if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} corpus inputs failed (reproduce with `cargo fuzz run {target} FILE` in fuzz/):\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    eprintln!(
        "{target}: replayed {} inputs in {:?}",
        files.len(),
        started.elapsed()
    );
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_bin() {
    let manifest =
        std::fs::read_to_string(corpus_root().join("../Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
        let src = corpus_root().join(format!("../fuzz_targets/{name}.rs"));
        let src =
            std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        assert!(
            src.contains(&format!("streaming_media::fuzzing::{name}(")),
            "fuzz_targets/{name}.rs must call streaming_media::fuzzing::{name}"
        );
        corpus(name);
    }
}

#[test]
fn rtmp_chunk() {
    replay("rtmp_chunk");
}

#[test]
fn rtmp_raw() {
    replay("rtmp_raw");
}

#[test]
fn amf0() {
    replay("amf0");
}

#[test]
fn flv_tag() {
    replay("flv_tag");
}

#[test]
fn avcc() {
    replay("avcc");
}

#[test]
fn sps() {
    replay("sps");
}

#[test]
fn asc() {
    replay("asc");
}

#[test]
fn packager() {
    replay("packager");
}

#[test]
fn flv_demux() {
    replay("flv_demux");
}
