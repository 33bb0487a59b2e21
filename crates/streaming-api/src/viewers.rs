//! Viewer sessions of a stream. Active sessions and
//! `concurrent_viewers` come from the in-memory registry
//! ([`ViewerSessions`](streaming_core::sessions::ViewerSessions)); ended ones
//! from the repository.

use axum::Json;
use axum::extract::State;

use crate::ApiState;
use crate::docs::AdminErrors;
use crate::extract::{Admin, ApiPath, ApiQuery, parse_id};
use crate::problem::Problem;
use crate::streams::page_request;
use crate::views::{ViewerList, ViewerListQuery};

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
