//! Admin bearer-token check (constant time).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::ApiState;
use crate::streams::problem;

pub fn require_admin(state: &ApiState, headers: &HeaderMap) -> Result<(), Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = match (&state.admin_token, presented) {
        (Some(expected), Some(p)) => bool::from(expected.as_bytes().ct_eq(p.as_bytes())),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let mut resp = problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required",
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
        Err(resp.into_response())
    }
}
