//! Per-address limits and cross-origin rules of the API (T086, T087).
//!
//! Routes fall in two classes:
//!
//! - **public** — what players call: beacons (`/api/v1/sessions/…`),
//!   session ids (`POST /api/v1/streams/{id}/sessions`) and the stream
//!   status (`GET /api/v1/streams/{id}/status`): `http.public_requests_per_sec`
//!   per address (100/s), CORS for `cors.playback_origins` (any by default);
//! - **operations** — `/health`, `/ready`: not limited (probes);
//! - **control** — everything else under `/api/`: `http.api_requests_per_min`
//!   per address (100/min, seed T086), CORS only for `cors.admin_origins`
//!   (none by default).
//!
//! Beyond a rate the answer is `429` problem+json with `Retry-After`.
//! Failed admin-token attempts are counted per address too
//! ([`Guard::admin_refused`], [`Guard::admin_failed`]): after
//! `http.admin_failures_per_min` (20) in a minute the address gets `429`
//! instead of `401` until the window clears, so a token cannot be guessed at
//! line rate. The address is the [`ClientAddr`] the HTTP server put on the
//! request (after trusted proxies).
//!
//! A CORS preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered here: `204` with the allow
//! headers for an allowed origin, `403` problem otherwise.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use streaming_core::config::{CorsConfig, HttpConfig};
use streaming_core::limits::{ClientAddr, KeyedRate, LimitKind, Limits, Origins, addr_key};

use crate::problem::{Problem, ProblemKind};

/// Which limits and CORS rules a route follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Called by players (any origin by default).
    Public,
    /// The control plane (admin token; no origin by default).
    Control,
    /// `/health` and `/ready`: probes of orchestrators and load balancers,
    /// cheap (readiness results are cached briefly), not rate-limited.
    Operations,
}

/// The class of an API path.
pub fn classify(method: &Method, path: &str) -> RouteClass {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["health"] | ["ready"] => RouteClass::Operations,
        ["api", "v1", "sessions", ..] => RouteClass::Public,
        ["api", "v1", "streams", _, "status"] => RouteClass::Public,
        ["api", "v1", "streams", _, "sessions"] if method != Method::GET => RouteClass::Public,
        _ => RouteClass::Control,
    }
}

/// The API's per-address limiters and CORS rules.
#[derive(Debug, Clone)]
pub struct Guard {
    limits: Option<Limits>,
    control: KeyedRate<IpAddr>,
    public: KeyedRate<IpAddr>,
    admin_failures: KeyedRate<IpAddr>,
    playback: Origins,
    admin: Origins,
}

impl Default for Guard {
    /// No limits, any origin for public routes, none for the control plane.
    fn default() -> Self {
        Self {
            limits: None,
            control: KeyedRate::per_minute(0),
            public: KeyedRate::per_second(0),
            admin_failures: KeyedRate::per_minute(0),
            playback: Origins::new(&["*".to_string()]),
            admin: Origins::default(),
        }
    }
}

/// The address of a request (unknown without the HTTP server: `0.0.0.0`).
pub fn client_of(headers_ext: &axum::http::Extensions) -> IpAddr {
    headers_ext
        .get::<ClientAddr>()
        .map(|c| c.0)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

impl Guard {
    pub fn new(http: &HttpConfig, cors: &CorsConfig, limits: Limits) -> Self {
        Self {
            limits: Some(limits),
            control: KeyedRate::per_minute(http.api_requests_per_min),
            public: KeyedRate::per_second(http.public_requests_per_sec),
            admin_failures: KeyedRate::per_minute(http.admin_failures_per_min),
            playback: Origins::new(&cors.playback_origins),
            admin: Origins::new(&cors.admin_origins),
        }
    }

    /// The origins allowed on playback routes (also the WebSocket's origin check).
    pub fn playback_origins(&self) -> &Origins {
        &self.playback
    }

    fn trip(&self, kind: LimitKind, ip: IpAddr, detail: impl FnOnce() -> String) {
        if let Some(l) = &self.limits {
            l.trip(kind, Some(ip), detail);
        }
    }

    /// `429` while `ip` is over its failed-token budget.
    pub fn admin_refused(&self, ip: IpAddr) -> Option<Problem> {
        let wait = self
            .admin_failures
            .would_refuse(&addr_key(ip), Instant::now())?;
        self.trip(LimitKind::HttpAdminFailures, ip, || {
            "too many failed admin-token attempts; answering 429".into()
        });
        Some(Problem::rate_limited(
            "too many failed admin-token attempts from this address; retry later",
            wait,
        ))
    }

    /// Counts a failed token attempt; the `429` when it was one too many.
    pub fn admin_failed(&self, ip: IpAddr) -> Option<Problem> {
        let wait = self
            .admin_failures
            .check(&addr_key(ip), Instant::now())
            .err()?;
        self.trip(LimitKind::HttpAdminFailures, ip, || {
            "too many failed admin-token attempts; answering 429".into()
        });
        Some(Problem::rate_limited(
            "too many failed admin-token attempts from this address; retry later",
            wait,
        ))
    }
}

fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The middleware: preflights, rate limits, CORS headers.
pub async fn middleware(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let class = classify(req.method(), req.uri().path());
    let origins = match class {
        RouteClass::Public => &guard.playback,
        RouteClass::Control => &guard.admin,
        RouteClass::Operations => return next.run(req).await,
    };
    let origin = origin(req.headers());
    let allowed = origin
        .as_deref()
        .and_then(|o| origins.allow(o))
        .and_then(|o| HeaderValue::from_str(&o).ok());
    if is_preflight(&req) {
        let Some(allow) = allowed else {
            return Problem::new(
                ProblemKind::Forbidden,
                "this origin may not call this route (see cors.playback_origins / cors.admin_origins)",
            )
            .into_response();
        };
        let (methods, headers) = match class {
            RouteClass::Public | RouteClass::Operations => ("GET, POST, OPTIONS", "content-type"),
            RouteClass::Control => (
                "GET, POST, PATCH, DELETE, OPTIONS",
                "authorization, content-type",
            ),
        };
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(headers),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        return resp;
    }
    let ip = client_of(req.extensions());
    let (rate, kind, what) = match class {
        RouteClass::Public | RouteClass::Operations => (
            &guard.public,
            LimitKind::HttpPublicRate,
            "public API requests",
        ),
        RouteClass::Control => (&guard.control, LimitKind::HttpApiRate, "API requests"),
    };
    let mut resp = match rate.check(&addr_key(ip), Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            guard.trip(kind, ip, || {
                format!("too many {what} from this address; 429")
            });
            Problem::rate_limited(format!("too many {what} from this address"), wait)
                .into_response()
        }
    };
    if let Some(allow) = allowed {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after, location"),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        let id = "7f1c5a47-6ad8-4f7c-9f52-6bb2cc1b4f10";
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            classify(&post, &format!("/api/v1/sessions/{id}/events")),
            RouteClass::Public
        );
        assert_eq!(
            classify(&get, &format!("/api/v1/streams/{id}/status")),
            RouteClass::Public
        );
        assert_eq!(
            classify(&post, &format!("/api/v1/streams/{id}/sessions")),
            RouteClass::Public
        );
        assert_eq!(
            classify(&get, &format!("/api/v1/streams/{id}")),
            RouteClass::Control
        );
        assert_eq!(classify(&get, "/api/v1/streams"), RouteClass::Control);
        assert_eq!(classify(&get, "/api/openapi.json"), RouteClass::Control);
        assert_eq!(classify(&get, "/health"), RouteClass::Operations);
        assert_eq!(classify(&get, "/ready"), RouteClass::Operations);
    }

    #[test]
    fn failed_tokens_turn_into_429_after_the_budget() {
        let http = HttpConfig {
            admin_failures_per_min: 3,
            ..HttpConfig::default()
        };
        let g = Guard::new(
            &http,
            &CorsConfig::default(),
            Limits::new(streaming_core::metrics::Metrics::new()),
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(g.admin_refused(ip).is_none());
            assert!(g.admin_failed(ip).is_none());
        }
        assert!(g.admin_refused(ip).is_some());
        assert_eq!(g.admin_failed(ip).unwrap().kind(), ProblemKind::RateLimited);
        assert!(g.admin_refused("192.0.2.2".parse().unwrap()).is_none());
    }
}
