//! Response helpers: content types, cache headers, validators, 404s.

use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use streaming_media::timefmt;

pub const M3U8: &str = "application/vnd.apple.mpegurl";
pub const MPD: &str = "application/dash+xml";
/// Live playlists and manifests change every segment.
pub const CACHE_LIVE: &str = "public, max-age=1";
/// A closed playlist or a segment never changes.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A 404 that caches nothing and says what was not found.
pub fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        format!("{what} not found\n"),
    )
        .into_response()
}

/// A body with its validators; answers `If-None-Match` with 304.
pub fn body(
    req_headers: &HeaderMap,
    content_type: &str,
    cache: &str,
    last_modified_ms: i64,
    etag: String,
    data: Bytes,
) -> Response {
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let last_modified = timefmt::http_date(last_modified_ms.div_euclid(1000));
    let not_modified = req_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, etag_value)
        .header(header::LAST_MODIFIED, last_modified);
    if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::empty()).unwrap_or_default();
    }
    builder
        .header(header::CONTENT_LENGTH, data.len())
        .body(Body::from(data))
        .unwrap_or_default()
}

/// The body bytes of a response, when known before it is sent
/// (`Content-Length`, or a body of exact size); `None` for a streamed body
/// (the segment in progress, sent part by part).
pub fn body_len(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| resp.body().size_hint().exact())
}

/// `resp` with its body counted as it is sent: `on_chunk(bytes)` for every
/// chunk that goes out. How the viewer sessions and the egress counter
/// charge a streamed body, whose length [`body_len`] cannot tell.
pub fn count_body(resp: Response, on_chunk: impl Fn(u64) + Send + 'static) -> Response {
    let (parts, body) = resp.into_parts();
    let counted = body.into_data_stream().inspect(move |chunk| {
        if let Ok(b) = chunk
            && !b.is_empty()
        {
            on_chunk(b.len() as u64);
        }
    });
    Response::from_parts(parts, Body::from_stream(counted))
}

/// A strong validator for generated text (FNV-1a 64 of the body).
pub fn etag_of(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// `GET /time`: the server clock for DASH `UTCTiming` (urn:mpeg:dash:utc:http-iso:2014),
/// so players never need an outside time server.
pub async fn time() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        timefmt::rfc3339_millis(crate::packaging::now_ms()),
    )
        .into_response()
}
