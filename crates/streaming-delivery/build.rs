//! Bundles the web player into the binary.
//!
//! The player libraries (hls.js, dash.js, Shaka Player) come from npm, pinned
//! by `web/package-lock.json`. When `web/node_modules` lacks one of them this
//! script runs `npm ci` in `web/`; then it copies the minified libraries and
//! the page sources into `OUT_DIR`, where `src/assets.rs` includes them.
//! Nothing is fetched at run time.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (path under `web/`, file name in `OUT_DIR`).
const LIBRARIES: &[(&str, &str)] = &[
    ("node_modules/hls.js/dist/hls.min.js", "hls.min.js"),
    (
        "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
        "dash.all.min.js",
    ),
    (
        "node_modules/shaka-player/dist/shaka-player.hls.js",
        "shaka-player.hls.js",
    ),
];

/// Page sources, copied as they are.
const PAGES: &[&str] = &[
    "watch.html",
    "watch.js",
    "watch.css",
    "hls-live.js",
    "live-ui.js",
    "session.js",
    "dash-test.html",
    "dash-page.js",
    "shaka.html",
    "shaka-page.js",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest_dir.join("../../web");
    let web = web.canonicalize().unwrap_or(web);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    for file in ["package.json", "package-lock.json"].iter().chain(PAGES) {
        println!("cargo:rerun-if-changed={}", web.join(file).display());
    }
    for (src, _) in LIBRARIES {
        // A deleted node_modules re-runs this script, which installs it again.
        println!("cargo:rerun-if-changed={}", web.join(src).display());
    }

    if LIBRARIES.iter().any(|(src, _)| !web.join(src).is_file()) {
        npm_ci(&web);
    }

    for (src, name) in LIBRARIES {
        copy(&web.join(src), &out.join(name));
    }
    for page in PAGES {
        copy(&web.join(page), &out.join(page));
    }
}

fn npm_ci(web: &Path) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    println!(
        "cargo:warning=installing the web player libraries: npm ci in {}",
        web.display()
    );
    let status = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(web)
        // Keep npm's output off stdout, which cargo reads for `cargo:` lines.
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`npm ci` in {} failed ({s}). The watch pages bundle hls.js, dash.js and Shaka Player from npm \
             (pinned by web/package-lock.json); check access to the npm registry and run \
             `npm ci` in web/ by hand to see the error.",
            web.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "npm was not found on PATH. Building streaming-delivery bundles the web player \
             libraries (hls.js, dash.js, Shaka Player) from npm: install Node.js and npm (e.g. \
             `apt-get install nodejs npm`), or run `npm ci` in {} on a machine that has them.",
            web.display()
        ),
        Err(e) => panic!("could not run npm ({e}) to install the web player libraries"),
    }
}

fn copy(from: &Path, to: &Path) {
    let bytes = fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    assert!(!bytes.is_empty(), "{} is empty", from.display());
    // Leave an identical file alone so its mtime does not trigger rebuilds.
    if fs::read(to).ok().as_deref() != Some(&bytes[..]) {
        fs::write(to, &bytes).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
}
