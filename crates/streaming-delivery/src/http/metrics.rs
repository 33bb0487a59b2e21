//! Prometheus: `GET /metrics`, and the middleware that measures delivery
//! requests (duration histogram by kind, egress bytes by stream and
//! rendition, HTTP errors of live streams).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use streaming_core::keys;
use streaming_core::metrics::{CONTENT_TYPE, Metrics, RequestKind};
use uuid::Uuid;

use super::DeliveryState;

/// `GET /metrics`: every metric in the OpenMetrics text format, for a
/// caller presenting the metrics bearer token (unless `/metrics` is public).
pub async fn scrape(State(state): State<DeliveryState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.guard.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let ok = presented.is_some_and(|p| keys::verify(p, &keys::hash(expected)));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                "/metrics needs the metrics bearer token (metrics.token, STREAMING_METRICS_TOKEN)\n",
            )
                .into_response();
        }
    }
    scrape_open(State(state.metrics)).await
}

/// `GET /metrics` without a token (the separate metrics listener).
pub async fn scrape_open(State(metrics): State<Metrics>) -> Response {
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        metrics.encode(),
    )
        .into_response()
}

/// What a delivery path is: its stream, rendition label and request kind.
fn classify(path: &str) -> Option<(Option<Uuid>, &str, RequestKind)> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (root, id) = (parts.next()?, parts.next()?);
    let id = Uuid::parse_str(id).ok();
    let rest: Vec<&str> = parts.collect();
    match (root, rest.as_slice()) {
        ("hls", ["master.m3u8"]) => Some((id, "master", RequestKind::Playlist)),
        ("dash", ["manifest.mpd"]) => Some((id, "manifest", RequestKind::Manifest)),
        ("hls", [rendition, file]) => {
            let kind = if file.ends_with(".m3u8") {
                RequestKind::Playlist
            } else if file.starts_with("init") {
                RequestKind::Init
            } else {
                RequestKind::Segment
            };
            Some((id, rendition, kind))
        }
        _ => None,
    }
}

/// Middleware around the HLS/DASH routes.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let Some((id, rendition, kind)) = classify(req.uri().path()) else {
        return next.run(req).await;
    };
    let rendition = rendition.to_string();
    let head = req.method() == Method::HEAD;
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics.request_duration(kind, started.elapsed().as_secs_f64());
    let Some(id) = id else { return resp };
    let status = resp.status();
    if status.is_success() && !head {
        // Known length: counted now; streamed (the segment in progress):
        // counted chunk by chunk as it is sent.
        match super::body_len(&resp) {
            Some(0) => {}
            Some(bytes) => metrics.egress_bytes(id, &rendition, bytes),
            None => {
                return super::count_body(resp, move |bytes| {
                    metrics.egress_bytes(id, &rendition, bytes);
                });
            }
        }
    } else if status == StatusCode::NOT_FOUND {
        metrics.stream_error(id, "http_404");
    } else if status.is_server_error() {
        metrics.stream_error(id, "http_5xx");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_delivery_paths() {
        let id = Uuid::new_v4();
        let c = |p: String| classify(&p).map(|(i, r, k)| (i, r.to_string(), k));
        assert_eq!(
            c(format!("/hls/{id}/master.m3u8")),
            Some((Some(id), "master".into(), RequestKind::Playlist))
        );
        assert_eq!(
            c(format!("/hls/{id}/720p/index.m3u8")),
            Some((Some(id), "720p".into(), RequestKind::Playlist))
        );
        assert_eq!(
            c(format!("/hls/{id}/source/init-2.mp4")),
            Some((Some(id), "source".into(), RequestKind::Init))
        );
        assert_eq!(
            c(format!("/hls/{id}/source/segment-7.m4s")),
            Some((Some(id), "source".into(), RequestKind::Segment))
        );
        assert_eq!(
            c(format!("/dash/{id}/manifest.mpd")),
            Some((Some(id), "manifest".into(), RequestKind::Manifest))
        );
        assert_eq!(c("/hls/nope/master.m3u8".into()).map(|x| x.0), Some(None));
        assert_eq!(c("/time".into()), None);
    }
}
