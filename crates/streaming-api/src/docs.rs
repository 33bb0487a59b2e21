//! The OpenAPI document (`/api/openapi.json`), Swagger UI (`/api/docs`,
//! files compiled in, no network), the AsyncAPI 3.0 document of the WebSocket
//! channel (`/api/asyncapi.json`), the reusable error responses of the
//! operations, and the problem answers for unknown routes and methods.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::problem::{Problem, ProblemKind};

/// Declares the `bearer` security scheme (the admin token).
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token: STREAMING_ADMIN_TOKEN, else generated into DATA_DIR/admin_token",
                    ))
                    .build(),
            ),
        );
    }
}

/// Errors of an admin operation without a body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// Malformed query parameter.
    #[response(status = 400, content_type = "application/problem+json")]
    InvalidQuery(Problem),
    /// No valid admin bearer token.
    #[response(status = 401, content_type = "application/problem+json",
               headers(("www-authenticate" = String, description = "`Bearer`")))]
    Unauthorized(Problem),
    /// No such stream or key.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Too many requests from this address; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json",
               headers(("retry-after" = u64, description = "Seconds to wait")))]
    RateLimited(Problem),
    /// The database is unavailable; retry later.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors of an admin operation with a JSON body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    /// Malformed JSON.
    #[response(status = 400, content_type = "application/problem+json")]
    InvalidBody(Problem),
    /// No valid admin bearer token.
    #[response(status = 401, content_type = "application/problem+json",
               headers(("www-authenticate" = String, description = "`Bearer`")))]
    Unauthorized(Problem),
    /// No such stream.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The body is too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Well-formed JSON with an invalid value.
    #[response(status = 422, content_type = "application/problem+json")]
    InvalidInput(Problem),
    /// Too many requests from this address; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json",
               headers(("retry-after" = u64, description = "Seconds to wait")))]
    RateLimited(Problem),
    /// The database is unavailable; retry later.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors of the public beacon operation.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BeaconErrors {
    /// The body is not JSON.
    #[response(status = 400, content_type = "application/problem+json")]
    InvalidBody(Problem),
    /// Not a session id this server signed for the stream the events name.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The stream is not live (beacons are taken for live streams only), or
    /// the session belongs to another stream.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is larger than `http.max_beacon_body_bytes` (64 KiB) or holds
    /// more than `http.max_beacon_events` (20) events.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Well-formed JSON that is not an event (unknown `type`, missing field),
    /// or no event at all.
    #[response(status = 422, content_type = "application/problem+json")]
    InvalidInput(Problem),
    /// More than `sessions.beacons_per_session_per_sec` beacons for this
    /// session (or, for a session new to this node, too many new sessions
    /// from this address).
    #[response(status = 429, content_type = "application/problem+json",
               headers(("retry-after" = u64, description = "Seconds to wait")))]
    RateLimited(Problem),
    /// The node holds its maximum of live viewer sessions (a session new to
    /// this node is not opened); retry later.
    #[response(status = 503, content_type = "application/problem+json",
               headers(("retry-after" = u64, description = "Seconds to wait")))]
    Overloaded(Problem),
}

/// Errors of the public session-minting operation.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum MintErrors {
    /// No such stream.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// More than `sessions.new_per_addr_per_sec` new sessions from this address.
    #[response(status = 429, content_type = "application/problem+json",
               headers(("retry-after" = u64, description = "Seconds to wait")))]
    RateLimited(Problem),
    /// The node holds its maximum of live viewer sessions, or the database
    /// is unavailable; retry later.
    #[response(status = 503, content_type = "application/problem+json",
               headers(("retry-after" = u64, description = "Seconds to wait")))]
    Unavailable(Problem),
}

/// Errors of a public operation.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum PublicErrors {
    /// No such stream.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Too many requests from this address; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json",
               headers(("retry-after" = u64, description = "Seconds to wait")))]
    RateLimited(Problem),
    /// The database is unavailable; retry later.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Any path under `/api/v1` that names no operation.
pub async fn unknown_route() -> Problem {
    Problem::new(ProblemKind::NotFound, "no such API route")
}

/// A known path with a method it does not have.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        ProblemKind::MethodNotAllowed,
        "this path does not take that method",
    )
}

/// `/api/openapi.json` and Swagger UI at `/api/docs`.
pub fn router(doc: utoipa::openapi::OpenApi) -> Router {
    // No online validator badge: the page must not reach out to the internet.
    let config = Config::new(["/api/openapi.json"]).validator_url("none");
    let swagger: Router = SwaggerUi::new("/api/docs")
        .url("/api/openapi.json", doc)
        .config(config)
        .into();
    swagger.route(
        "/api/asyncapi.json",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                crate::ASYNCAPI,
            )
        }),
    )
}
