//! Viewer sessions and metrics of a stream. Active sessions and
//! `concurrent_viewers` come from the in-memory registry
//! ([`ViewerSessions`](streaming_core::sessions::ViewerSessions)); ended ones
//! from the repository.

use axum::Json;
use axum::extract::State;

use crate::ApiState;
use crate::docs::AdminErrors;
use crate::extract::{Admin, ApiPath, ApiQuery, parse_id};
use crate::problem::{Problem, ProblemKind};
use crate::streams::page_request;
use crate::views::{MetricsList, MetricsQuery, ViewerList, ViewerListQuery};

/// A stream's viewer sessions, newest first, one page at a time.
#[utoipa::path(
    get, path = "/api/v1/streams/{id}/viewers", tag = "analytics",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Stream id"), ViewerListQuery),
    responses((status = 200, description = "One page of viewer sessions", body = ViewerList), AdminErrors)
)]
pub async fn viewers(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ViewerListQuery>,
) -> Result<Json<ViewerList>, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    let page = page_request(q.page, q.per_page)?;
    state.stream(stream_id).await?;
    let active = state.sessions.active(stream_id);
    let concurrent_viewers = active.len() as u64;
    if q.active.unwrap_or(false) {
        // Active sessions live in memory (the repository has them once ended).
        let total = active.len() as u64;
        let items = active
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit()).unwrap_or(usize::MAX))
            .map(Into::into)
            .collect();
        return Ok(Json(ViewerList {
            stream_id,
            items,
            page: page.page(),
            per_page: page.per_page(),
            total,
            concurrent_viewers,
        }));
    }
    let got = state
        .repo
        .page_viewer_sessions(stream_id, false, page)
        .await?;
    Ok(Json(ViewerList {
        stream_id,
        items: got.items.into_iter().map(Into::into).collect(),
        page: got.page,
        per_page: got.per_page,
        total: got.total,
        concurrent_viewers,
    }))
}

/// A stream's metrics samples, oldest first.
#[utoipa::path(
    get, path = "/api/v1/metrics/{stream_id}", tag = "analytics",
    security(("bearer" = [])),
    params(("stream_id" = Uuid, Path, description = "Stream id"), MetricsQuery),
    responses((status = 200, description = "Metrics samples", body = MetricsList), AdminErrors)
)]
pub async fn metrics(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> Result<Json<MetricsList>, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            ProblemKind::InvalidQuery,
            "limit must be 1 to 1000",
        ));
    }
    state.stream(stream_id).await?;
    let items = state.repo.list_metrics(stream_id, q.since, limit).await?;
    Ok(Json(MetricsList {
        stream_id,
        items: items.into_iter().map(Into::into).collect(),
    }))
}
