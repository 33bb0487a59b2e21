//! The player pages and their static assets, served from the binary so no
//! internet is needed at run time: `/watch/{id}` (hls.js in low-latency mode,
//! or native HLS on Safari), `/watch/{id}/dash` (dash.js, low-latency
//! settings) and `/watch/{id}/shaka` (Shaka Player on the HLS master, LL mode).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use uuid::Uuid;

use super::response::not_found;
use crate::assets;

pub async fn page(Path(stream_id): Path<String>) -> Response {
    match Uuid::parse_str(&stream_id) {
        Ok(id) => Html(assets::watch_page(&id.to_string())).into_response(),
        Err(_) => not_found("stream"),
    }
}

pub async fn dash_page(Path(stream_id): Path<String>) -> Response {
    match Uuid::parse_str(&stream_id) {
        Ok(id) => Html(assets::dash_test_page(&id.to_string())).into_response(),
        Err(_) => not_found("stream"),
    }
}

pub async fn shaka_page(Path(stream_id): Path<String>) -> Response {
    match Uuid::parse_str(&stream_id) {
        Ok(id) => Html(assets::shaka_page(&id.to_string())).into_response(),
        Err(_) => not_found("stream"),
    }
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match assets::static_asset(&name) {
        Some(a) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            a.body,
        )
            .into_response(),
        None => not_found("asset"),
    }
}
