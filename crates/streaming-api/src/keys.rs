//! Stream keys: create or rotate (the new key shown once), list (never the
//! key), revoke. Revoking cuts a live publish at once: the hub cancels the
//! publisher's connection, and ingest refuses the key from then on.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::ApiState;
use crate::docs::AdminErrors;
use crate::extract::{Admin, ApiPath, ApiQuery, parse_id};
use crate::problem::Problem;
use crate::views::{CreateKeyQuery, CreatedKey, KeyInfo, KeyList};

/// Create a new key for a stream; with `rotate=true` every other key is revoked.
#[utoipa::path(
    post, path = "/api/v1/streams/{id}/keys", tag = "keys",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Stream id"), CreateKeyQuery),
    responses((status = 201, description = "Created; the key is shown once", body = CreatedKey), AdminErrors)
)]
pub async fn create(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CreateKeyQuery>,
) -> Result<Response, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    let (key, plaintext) = state.repo.add_key(stream_id).await?;
    let mut revoked_keys = 0;
    if q.rotate.unwrap_or(false) {
        for old in state.repo.list_keys(stream_id).await? {
            if old.id != key.id && !old.is_revoked() {
                state.repo.revoke_key(old.id).await?;
                revoked_keys += 1;
            }
        }
        if revoked_keys > 0 && state.hub.kick(stream_id) {
            info!(%stream_id, "keys rotated: live publish cut");
        }
    }
    info!(%stream_id, key_id = %key.id, revoked_keys, "stream key created through the API");
    let info = KeyInfo::from(&key);
    let body = CreatedKey {
        id: key.id,
        stream_id,
        prefix: info.prefix,
        created_at: key.created_at,
        publish_url: format!("{}/{plaintext}", state.rtmp_base),
        stream_key: plaintext,
        rtmp_url: state.rtmp_base.to_string(),
        revoked_keys,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response())
}

/// List a stream's keys (id, prefix, times; never the key).
#[utoipa::path(
    get, path = "/api/v1/streams/{id}/keys", tag = "keys",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Stream id")),
    responses((status = 200, description = "The stream's keys, oldest first", body = KeyList), AdminErrors)
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyList>, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    state.stream(stream_id).await?;
    let keys = state.repo.list_keys(stream_id).await?;
    Ok(Json(KeyList {
        items: keys.iter().map(KeyInfo::from).collect(),
    }))
}

/// Revoke a key. A live publish of the stream is cut within 2 s and the key
/// is refused from then on. Revoking a revoked key changes nothing.
#[utoipa::path(
    delete, path = "/api/v1/streams/{id}/keys/{key_id}", tag = "keys",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Stream id"),
        ("key_id" = Uuid, Path, description = "Key id"),
    ),
    responses((status = 200, description = "The revoked key", body = KeyInfo), AdminErrors)
)]
pub async fn revoke(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath((id, key_id)): ApiPath<(String, String)>,
) -> Result<Json<KeyInfo>, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    let key_id = parse_id(&key_id, "stream key")?;
    let was_active = match state.repo.get_key(key_id).await? {
        Some(k) if k.stream_id == stream_id => !k.is_revoked(),
        _ => return Err(Problem::not_found("stream key")),
    };
    let key = state.repo.revoke_key(key_id).await?;
    // Only a publisher that authenticated with this key is cut.
    let cut = was_active && state.hub.kick_key(stream_id, key_id);
    info!(%stream_id, %key_id, live_publish_cut = cut, "stream key revoked through the API");
    Ok(Json(KeyInfo::from(&key)))
}
