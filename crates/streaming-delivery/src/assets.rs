//! The web player, compiled into the binary.
//!
//! `build.rs` takes hls.js and dash.js from `web/node_modules` (pinned by
//! `web/package-lock.json`) and the page sources from `web/`, and puts them in
//! `OUT_DIR`; they are included here, so the server needs no internet and no
//! files on disk at run time.
//!
//! - [`static_asset`]: the files served at `/static/{name}`.
//! - [`watch_page`]: `/watch/{stream_id}`, the HLS player page.
//! - [`dash_test_page`]: a bare dash.js player of `/dash/{stream_id}/manifest.mpd`,
//!   for browser tests.

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
static WATCH_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/watch.html"));
static DASH_TEST_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/dash-test.html"));

/// The placeholder that the page templates carry for the stream id.
const STREAM_ID_PLACEHOLDER: &str = "{{STREAM_ID}}";

/// The file served at `/static/{name}`: `hls.min.js`, `dash.all.min.js`,
/// `watch.js` or `watch.css`. `None` for any other name.
pub fn static_asset(name: &str) -> Option<Asset> {
    let (body, content_type) = match name {
        "hls.min.js" => (HLS_JS, JS),
        "dash.all.min.js" => (DASH_JS, JS),
        "watch.js" => (WATCH_JS, JS),
        "watch.css" => (WATCH_CSS, CSS),
        _ => return None,
    };
    Some(Asset { body, content_type })
}

/// The watch page (HTML) for `stream_id`, HTML-escaped into the template.
pub fn watch_page(stream_id: &str) -> String {
    render(WATCH_HTML, stream_id)
}

/// The dash.js test page (HTML) for `stream_id`.
pub fn dash_test_page(stream_id: &str) -> String {
    render(DASH_TEST_HTML, stream_id)
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
        for name in ["hls.min.js", "dash.all.min.js", "watch.js", "watch.css"] {
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
        assert!(page.contains("/static/hls.min.js"));
        assert!(page.contains("/static/watch.js"));
        assert!(page.contains("/static/watch.css"));
        assert!(!page.contains(STREAM_ID_PLACEHOLDER));

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
        assert!(page.contains("/static/dash.all.min.js"));
        assert!(!page.contains(STREAM_ID_PLACEHOLDER));
    }
}
