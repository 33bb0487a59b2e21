//! Extractors whose rejections are problem documents, not axum's plain text,
//! and the admin bearer-token check (constant time).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use streaming_core::keys;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::ApiState;
use crate::problem::{Problem, ProblemKind};

/// A JSON request body (`application/json`); malformed bodies are 400,
/// well-formed bodies of the wrong shape 422, other media types 415.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_problem(e)),
        }
    }
}

fn json_problem(e: JsonRejection) -> Problem {
    match e {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            ProblemKind::UnsupportedMediaType,
            "the request body must be application/json",
        ),
        JsonRejection::JsonDataError(e) => Problem::new(ProblemKind::InvalidInput, e.body_text()),
        JsonRejection::JsonSyntaxError(e) => Problem::new(ProblemKind::InvalidBody, e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(ProblemKind::PayloadTooLarge, other.body_text())
        }
        other => Problem::new(ProblemKind::InvalidBody, other.body_text()),
    }
}

/// Query parameters; malformed ones are a 400 problem.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Problem::new(ProblemKind::InvalidQuery, e.body_text()))
            }
            Err(e) => Err(Problem::new(ProblemKind::InvalidQuery, e.body_text())),
        }
    }
}

/// Path parameters; a segment that cannot be decoded names no resource (404).
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(Problem::new(ProblemKind::NotFound, e.body_text())),
        }
    }
}

/// Parses a path segment as a UUID; anything else names no resource (404).
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found(what))
}

/// Proof that the caller presented the admin bearer token.
pub struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            });
        // An address over its failed-token budget is not even checked.
        if let Some(p) = state
            .guard
            .admin_refused(crate::guard::client_of(&parts.extensions))
        {
            return Err(p);
        }
        // Hashing first makes the comparison constant-time in the length too.
        let ok = match (&state.admin_token, presented) {
            (Some(expected), Some(p)) => bool::from(keys::hash(expected).ct_eq(&keys::hash(p))),
            _ => false,
        };
        if ok {
            return Ok(Admin);
        }
        let ip = crate::guard::client_of(&parts.extensions);
        if let Some(p) = state.guard.admin_failed(ip) {
            return Err(p);
        }
        Err(Problem::new(
            ProblemKind::Unauthorized,
            "a valid admin bearer token is required (Authorization: Bearer <token>)",
        ))
    }
}
