//! Streams: create (with the first key, shown once), list (paged), get,
//! rename, delete, and the public status the watch page polls.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use streaming_core::model::{PageRequest, Stream};
use streaming_core::store::RenditionKind;
use tracing::info;
use uuid::Uuid;

use crate::ApiState;
use crate::docs::{AdminErrors, BodyErrors, PublicErrors};
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery, parse_id};
use crate::problem::{Problem, ProblemKind};
use crate::views::{
    CreatedStream, PublicStatus, Quality, StreamDetail, StreamList, StreamListQuery,
    StreamNameBody, StreamSummary, StreamUrls,
};

impl ApiState {
    pub(crate) fn urls(&self, id: Uuid) -> StreamUrls {
        StreamUrls::new(&self.rtmp_base, &self.http_base, id)
    }

    /// The stream, or a 404 problem.
    pub(crate) async fn stream(&self, id: Uuid) -> Result<Stream, Problem> {
        self.repo
            .get_stream(id)
            .await?
            .ok_or_else(|| Problem::not_found("stream"))
    }
}

/// Page request from optional query values (bounds as documented).
pub(crate) fn page_request(
    page: Option<u32>,
    per_page: Option<u32>,
) -> Result<PageRequest, Problem> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(PageRequest::DEFAULT_PER_PAGE);
    if page > 1_000_000 {
        return Err(Problem::new(
            ProblemKind::InvalidQuery,
            "page must be 1 to 1000000",
        ));
    }
    PageRequest::new(page, per_page).ok_or_else(|| {
        Problem::new(
            ProblemKind::InvalidQuery,
            "page must be at least 1 and per_page 1 to 100",
        )
    })
}

/// Create a stream and its first key.
#[utoipa::path(
    post, path = "/api/v1/streams", tag = "streams",
    security(("bearer" = [])),
    request_body = StreamNameBody,
    responses(
        (status = 201, description = "Created; the key is shown once", body = CreatedStream,
         headers(("location" = String, description = "URL of the new stream"))),
        BodyErrors,
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    _: Admin,
    ApiJson(body): ApiJson<StreamNameBody>,
) -> Result<Response, Problem> {
    let created = state.repo.create_stream(&body.name).await?;
    let s = &created.stream;
    info!(stream_id = %s.id, key_id = %created.key.id, "stream created through the API");
    let urls = state.urls(s.id);
    let body = CreatedStream {
        id: s.id,
        name: s.name.clone(),
        status: s.status.into(),
        created_at: s.created_at,
        key_id: created.key.id,
        publish_url: format!("{}/{}", urls.rtmp_url, created.plaintext_key),
        stream_key: created.plaintext_key,
        rtmp_url: urls.rtmp_url,
        hls_url: urls.hls_url,
        dash_url: urls.dash_url,
        watch_url: urls.watch_url,
    };
    let location = HeaderValue::from_str(&format!("/api/v1/streams/{}", s.id))
        .map_err(|_| Problem::new(ProblemKind::Internal, "bad location"))?;
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(body),
    )
        .into_response())
}

/// List streams, newest first, one page at a time.
#[utoipa::path(
    get, path = "/api/v1/streams", tag = "streams",
    security(("bearer" = [])),
    params(StreamListQuery),
    responses((status = 200, description = "One page of streams", body = StreamList), AdminErrors)
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Admin,
    ApiQuery(q): ApiQuery<StreamListQuery>,
) -> Result<Json<StreamList>, Problem> {
    let page = page_request(q.page, q.per_page)?;
    let got = state
        .repo
        .page_streams(q.status.map(Into::into), page)
        .await?;
    Ok(Json(StreamList {
        items: got
            .items
            .iter()
            .map(|s| StreamSummary::new(s, state.urls(s.id)))
            .collect(),
        page: got.page,
        per_page: got.per_page,
        total: got.total,
    }))
}

async fn detail(state: &ApiState, s: Stream) -> Result<StreamDetail, Problem> {
    let concurrent_viewers = state.sessions.count(s.id);
    let mut qualities: Vec<Quality> = state
        .repo
        .list_quality_levels(s.id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    if qualities.is_empty() {
        qualities = live_qualities(state, s.id);
    } else if let Some(m) = state.store.as_ref().and_then(|st| st.summary(s.id))
        && !m.ended
    {
        for q in &mut qualities {
            q.behind_source_ms = m.rendition(&q.name).and_then(|r| r.behind_source_ms);
        }
    }
    let urls = state.urls(s.id);
    Ok(StreamDetail {
        id: s.id,
        name: s.name,
        status: s.status.into(),
        created_at: s.created_at,
        started_at: s.started_at,
        ended_at: s.ended_at,
        live: state.hub.is_live(s.id),
        concurrent_viewers,
        quality_distribution: state.sessions.quality_distribution(s.id),
        qualities,
        rtmp_url: urls.rtmp_url,
        hls_url: urls.hls_url,
        dash_url: urls.dash_url,
        watch_url: urls.watch_url,
    })
}

/// The video renditions the segment store holds for a live stream.
fn live_qualities(state: &ApiState, id: Uuid) -> Vec<Quality> {
    let Some(m) = state.store.as_ref().and_then(|s| s.summary(id)) else {
        return Vec::new();
    };
    {
        if m.ended {
            return Vec::new();
        }
        m.renditions
            .iter()
            .filter(|r| r.info.kind == RenditionKind::Video)
            .map(|r| {
                let avg = r.average_bps;
                Quality {
                    name: r.name.to_string(),
                    width: r.info.width,
                    height: r.info.height,
                    bitrate_kbps: u32::try_from(avg / 1000).ok().filter(|b| *b > 0),
                    frame_rate: r.info.frame_rate,
                    codec: Some(r.info.codec.clone()),
                    behind_source_ms: r.behind_source_ms,
                }
            })
            .collect()
    }
}

/// One stream: status, viewers, qualities, times and URLs.
#[utoipa::path(
    get, path = "/api/v1/streams/{id}", tag = "streams",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Stream id")),
    responses((status = 200, description = "The stream", body = StreamDetail), AdminErrors)
)]
pub async fn get_stream(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StreamDetail>, Problem> {
    let id = parse_id(&id, "stream")?;
    let s = state.stream(id).await?;
    Ok(Json(detail(&state, s).await?))
}

/// Rename a stream.
#[utoipa::path(
    patch, path = "/api/v1/streams/{id}", tag = "streams",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Stream id")),
    request_body = StreamNameBody,
    responses((status = 200, description = "The renamed stream", body = StreamDetail), BodyErrors)
)]
pub async fn rename(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<StreamNameBody>,
) -> Result<Json<StreamDetail>, Problem> {
    let id = parse_id(&id, "stream")?;
    let s = state.repo.rename_stream(id, &body.name).await?;
    Ok(Json(detail(&state, s).await?))
}

/// Delete a stream, its keys and its history; a live publish is cut.
#[utoipa::path(
    delete, path = "/api/v1/streams/{id}", tag = "streams",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Stream id")),
    responses((status = 204, description = "Deleted"), AdminErrors)
)]
pub async fn delete(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    let id = parse_id(&id, "stream")?;
    state.repo.delete_stream(id).await?;
    if state.hub.kick(id) {
        info!(stream_id = %id, "stream deleted: live publish cut");
    } else {
        info!(stream_id = %id, "stream deleted");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Public: what the watch page needs to show (no secrets, no token).
#[utoipa::path(
    get, path = "/api/v1/streams/{id}/status", tag = "streams",
    params(("id" = Uuid, Path, description = "Stream id")),
    responses((status = 200, description = "Public status", body = PublicStatus), PublicErrors)
)]
pub async fn status(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "stream")?;
    let s = state.stream(id).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-cache")],
        Json(PublicStatus {
            id: s.id,
            name: s.name,
            status: s.status.into(),
        }),
    )
        .into_response())
}
