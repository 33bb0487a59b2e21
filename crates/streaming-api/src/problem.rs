//! Errors as RFC 9457 problem documents (`application/problem+json`).
//!
//! Every error the API returns has a stable `type`, one per [`ProblemKind`]:
//! `https://streaming.invalid/problems/{kind}`. Clients branch on `type` (and
//! `status`); `title` is the kind's fixed summary and `detail` is for humans.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use streaming_core::CoreError;
use tracing::{error, warn};
use utoipa::ToSchema;

/// Base of every problem `type` URI.
pub const TYPE_BASE: &str = "https://streaming.invalid/problems/";

/// The kinds of problem the API reports; each maps to one `type` and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// 400: the body is not JSON, or not the JSON the operation takes.
    InvalidBody,
    /// 400: a query parameter is malformed or out of range.
    InvalidQuery,
    /// 401: no valid admin bearer token.
    Unauthorized,
    /// 403: the credential is not valid for this (e.g. a session id the server did not sign).
    Forbidden,
    /// 404: no such stream, key or route.
    NotFound,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 409: the stream's state machine forbids the change.
    InvalidTransition,
    /// 409: the request conflicts with existing state (e.g. a session id of another stream).
    Conflict,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 415: the body must be `application/json`.
    UnsupportedMediaType,
    /// 422: well-formed JSON with an invalid value (e.g. an empty name).
    InvalidInput,
    /// 429: too many requests from this address (or session); see `Retry-After`.
    RateLimited,
    /// 500: a bug; the log has the details.
    Internal,
    /// 503: the database cannot be reached; retry later.
    DatabaseUnavailable,
    /// 503: a capacity limit of this node is reached; see `Retry-After`.
    Overloaded,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 15] = [
        ProblemKind::InvalidBody,
        ProblemKind::InvalidQuery,
        ProblemKind::Unauthorized,
        ProblemKind::Forbidden,
        ProblemKind::RateLimited,
        ProblemKind::Overloaded,
        ProblemKind::NotFound,
        ProblemKind::MethodNotAllowed,
        ProblemKind::InvalidTransition,
        ProblemKind::Conflict,
        ProblemKind::PayloadTooLarge,
        ProblemKind::UnsupportedMediaType,
        ProblemKind::InvalidInput,
        ProblemKind::Internal,
        ProblemKind::DatabaseUnavailable,
    ];

    /// The last segment of the `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::InvalidBody => "invalid-body",
            ProblemKind::InvalidQuery => "invalid-query",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::RateLimited => "rate-limited",
            ProblemKind::Overloaded => "overloaded",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::InvalidTransition => "invalid-transition",
            ProblemKind::Conflict => "conflict",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::InvalidInput => "invalid-input",
            ProblemKind::Internal => "internal",
            ProblemKind::DatabaseUnavailable => "database-unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::InvalidBody | ProblemKind::InvalidQuery => StatusCode::BAD_REQUEST,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::InvalidTransition | ProblemKind::Conflict => StatusCode::CONFLICT,
            ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemKind::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::InvalidBody => "Invalid request body",
            ProblemKind::InvalidQuery => "Invalid query parameter",
            ProblemKind::Unauthorized => "Unauthorized",
            ProblemKind::Forbidden => "Forbidden",
            ProblemKind::RateLimited => "Too many requests",
            ProblemKind::Overloaded => "Overloaded",
            ProblemKind::NotFound => "Not found",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::InvalidTransition => "Invalid stream state transition",
            ProblemKind::Conflict => "Conflict",
            ProblemKind::PayloadTooLarge => "Payload too large",
            ProblemKind::UnsupportedMediaType => "Unsupported media type",
            ProblemKind::InvalidInput => "Invalid input",
            ProblemKind::Internal => "Internal server error",
            ProblemKind::DatabaseUnavailable => "Database unavailable",
        }
    }

    pub fn type_uri(self) -> String {
        format!("{TYPE_BASE}{}", self.slug())
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(title = "Problem")]
pub struct Problem {
    /// Stable identifier of the kind of problem:
    /// `https://streaming.invalid/problems/{unauthorized|forbidden|rate-limited|overloaded|not-found|invalid-body|invalid-query|invalid-input|invalid-transition|conflict|method-not-allowed|payload-too-large|unsupported-media-type|database-unavailable|internal}`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary, fixed per `type`.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    #[serde(skip)]
    #[schema(ignore)]
    code: ProblemKind,
    /// Seconds for `Retry-After` (429, 503).
    #[serde(skip)]
    #[schema(ignore)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.type_uri(),
            title: kind.title().to_string(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            code: kind,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(detail: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Self::new(ProblemKind::RateLimited, detail).retry_after(retry_after)
    }

    /// Sets `Retry-After` (whole seconds, rounded up, at least 1).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn kind(&self) -> ProblemKind {
        self.code
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ProblemKind::NotFound, format!("no such {what}"))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.code == ProblemKind::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry = match (self.retry_after, self.code) {
            (Some(s), _) => Some(s),
            (None, ProblemKind::DatabaseUnavailable | ProblemKind::Overloaded) => Some(5),
            (None, ProblemKind::RateLimited) => Some(1),
            _ => None,
        };
        if let Some(s) = retry {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// Whether a database error means "the database cannot take this right
/// now" (503, retry) rather than a bug (500): unreachable, shutting down,
/// out of connections or disk, read-only, busy or locked. See
/// [`streaming_core::repo::is_unavailable`] for the exact codes.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    streaming_core::repo::is_unavailable(e)
}

impl From<CoreError> for Problem {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::StreamNotFound(_) => Problem::not_found("stream"),
            CoreError::KeyNotFound(_) => Problem::not_found("stream key"),
            CoreError::InvalidTransition { .. } => {
                Problem::new(ProblemKind::InvalidTransition, e.to_string())
            }
            CoreError::Invalid(d) => Problem::new(ProblemKind::InvalidInput, d),
            CoreError::Database { ref source, .. } if is_unavailable(source) => {
                warn!(error = %e, "database unavailable");
                Problem::new(
                    ProblemKind::DatabaseUnavailable,
                    "the database is unavailable; retry later",
                )
            }
            other => {
                error!(error = %other, "internal error");
                Problem::new(ProblemKind::Internal, "internal error; see the server log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_types_and_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for k in ProblemKind::ALL {
            assert!(seen.insert(k.type_uri()), "duplicate type {}", k.type_uri());
            assert!(k.status().is_client_error() || k.status().is_server_error());
        }
    }

    #[test]
    fn problem_json_shape() {
        let p = Problem::new(ProblemKind::NotFound, "no such stream");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "https://streaming.invalid/problems/not-found");
        assert_eq!(v["status"], 404);
        assert_eq!(v["title"], "Not found");
        assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
        let resp = p.into_response();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let resp = Problem::rate_limited("slow down", std::time::Duration::from_millis(1500))
            .into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn a_full_disk_is_503() {
        let p: Problem = CoreError::Database {
            context: "disk full",
            source: sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space",
            )),
        }
        .into();
        assert_eq!(p.kind(), ProblemKind::DatabaseUnavailable);
        assert_eq!(p.into_response().status(), 503);
    }

    #[test]
    fn pool_timeouts_are_503_and_bugs_500() {
        let p: Problem = CoreError::Database {
            context: "x",
            source: sqlx::Error::PoolTimedOut,
        }
        .into();
        assert_eq!(p.kind(), ProblemKind::DatabaseUnavailable);
        let p: Problem = CoreError::Database {
            context: "x",
            source: sqlx::Error::RowNotFound,
        }
        .into();
        assert_eq!(p.kind(), ProblemKind::Internal);
    }
}
