//! The web player, compiled into the binary.
//!
//! `build.rs` takes hls.js, dash.js and Shaka Player from `web/node_modules`
//! (pinned by `web/package-lock.json`) and the page sources from `web/`, and
//! puts them in `OUT_DIR`; they are included here, so the server needs no
//! internet and no files on disk at run time.
//!
//! - [`static_asset`]: the files served at `/static/{name}`.
//! - [`watch_page`]: `/watch/{stream_id}`, the HLS player page (hls.js in
//!   low-latency mode, or native HLS on Safari).
//! - [`dash_test_page`]: a dash.js player (low-latency settings) of
//!   `/dash/{stream_id}/manifest.mpd`.
//! - [`shaka_page`]: a Shaka Player page (low-latency mode) of the HLS master
//!   playlist.

/// A static file: its bytes and its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static HLS_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hls.min.js"));
static DASH_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dash.all.min.js"));
static WATCH_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/watch.js"));
static WATCH_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/watch.css"));
static SHAKA_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shaka-player.hls.js"));
static HLS_LIVE_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hls-live.js"));
static LIVE_UI_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/live-ui.js"));
static SESSION_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/session.js"));
static DASH_PAGE_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dash-page.js"));
static SHAKA_PAGE_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shaka-page.js"));
static WATCH_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/watch.html"));
static DASH_TEST_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/dash-test.html"));
static SHAKA_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/shaka.html"));

/// The placeholder that the page templates carry for the stream id.
const STREAM_ID_PLACEHOLDER: &str = "{{STREAM_ID}}";

/// The names served at `/static/{name}`.
pub const STATIC_NAMES: &[&str] = &[
    "hls.min.js",
    "dash.all.min.js",
    "shaka-player.hls.js",
    "watch.js",
    "watch.css",
    "hls-live.js",
    "live-ui.js",
    "session.js",
    "dash-page.js",
    "shaka-page.js",
];

/// The file served at `/static/{name}` (one of [`STATIC_NAMES`]); `None` for
/// any other name.
pub fn static_asset(name: &str) -> Option<Asset> {
    let (body, content_type) = match name {
        "hls.min.js" => (HLS_JS, JS),
        "dash.all.min.js" => (DASH_JS, JS),
        "shaka-player.hls.js" => (SHAKA_JS, JS),
        "watch.js" => (WATCH_JS, JS),
        "watch.css" => (WATCH_CSS, CSS),
        "hls-live.js" => (HLS_LIVE_JS, JS),
        "live-ui.js" => (LIVE_UI_JS, JS),
        "session.js" => (SESSION_JS, JS),
        "dash-page.js" => (DASH_PAGE_JS, JS),
        "shaka-page.js" => (SHAKA_PAGE_JS, JS),
        _ => return None,
    };
    Some(Asset { body, content_type })
}

/// The watch page (HTML) for `stream_id`, HTML-escaped into the template.
pub fn watch_page(stream_id: &str) -> String {
    render(WATCH_HTML, stream_id)
}

/// The dash.js page (HTML) for `stream_id`.
pub fn dash_test_page(stream_id: &str) -> String {
    render(DASH_TEST_HTML, stream_id)
}

/// The Shaka Player page (HTML) for `stream_id`.
pub fn shaka_page(stream_id: &str) -> String {
    render(SHAKA_HTML, stream_id)
}

fn render(template: &str, stream_id: &str) -> String {
    template.replace(STREAM_ID_PLACEHOLDER, &html_escape(stream_id))
}

/// Escapes text for HTML element content and quoted attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_assets_are_bundled() {
        for &name in STATIC_NAMES {
            let asset = static_asset(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(!asset.body.is_empty(), "{name} is empty");
            assert!(asset.content_type.starts_with("text/"), "{name}");
        }
        assert_eq!(static_asset("watch.css").unwrap().content_type, CSS);
        assert!(static_asset("../Cargo.toml").is_none());
        assert!(static_asset("").is_none());
        // The real libraries, not placeholders.
        assert!(HLS_JS.len() > 100_000);
        assert!(DASH_JS.len() > 100_000);
        assert!(SHAKA_JS.len() > 100_000);
        assert!(
            std::str::from_utf8(SHAKA_JS)
                .unwrap()
                .contains("shaka.Player")
        );
        assert!(
            std::str::from_utf8(DASH_JS)
                .unwrap()
                .contains("MediaPlayer")
        );
    }

    #[test]
    fn watch_page_carries_the_escaped_stream_id() {
        let page = watch_page("abc-123");
        assert!(page.contains(r#"data-stream-id="abc-123""#));
        assert!(!page.contains(STREAM_ID_PLACEHOLDER));
        assert_scripts_served(&page, &["hls.min.js", "live-ui.js", "watch.js"]);

        let page = watch_page(r#""><script>alert('x')&"#);
        assert!(
            page.contains(r#"data-stream-id="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&amp;""#)
        );
        assert!(!page.contains("<script>alert"));
    }

    #[test]
    fn dash_test_page_carries_the_escaped_stream_id() {
        let page = dash_test_page("s<1>");
        assert!(page.contains(r#"data-stream-id="s&lt;1&gt;""#));
        assert!(!page.contains(STREAM_ID_PLACEHOLDER));
        assert_scripts_served(&page, &["dash.all.min.js", "dash-page.js"]);
    }

    #[test]
    fn shaka_page_carries_the_escaped_stream_id() {
        let page = shaka_page("s&1");
        assert!(page.contains(r#"data-stream-id="s&amp;1""#));
        assert!(!page.contains(STREAM_ID_PLACEHOLDER));
        assert_scripts_served(&page, &["shaka-player.hls.js", "shaka-page.js"]);
    }

    /// Every `/static/…` the page references is served, `must` among them,
    /// and the live controls are labelled.
    fn assert_scripts_served(page: &str, must: &[&str]) {
        let refs: Vec<&str> = page
            .split("\"/static/")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        for name in must {
            assert!(refs.contains(name), "{name} not referenced: {refs:?}");
        }
        for name in &refs {
            assert!(static_asset(name).is_some(), "{name} is not served");
        }
        assert!(page.contains(r#"<button id="go-live" type="button""#));
        assert!(page.contains(r#"aria-label="Live playback""#));
    }
}
