//! `/health` (the process is alive) and `/ready` (it can serve), with a JSON
//! body naming each check: `database` (fails → 503), `listeners` (fails →
//! 503), `ffmpeg` (missing → `warn`, still 200: streams run source-only),
//! and `shutdown` once the server is stopping (→ 503).
//!
//! The `database` check commits a real write (a row rewritten in a
//! transaction, [`StreamRepository::probe_write`]) within [`DB_TIMEOUT`]: a
//! database that answers reads but cannot take a write (disk full — for
//! SQLite also less than 1 MiB free —, read-only, write-locked, PostgreSQL
//! down) is not ready, since streams could not be created or recorded.
//!
//! [`StreamRepository::probe_write`]: streaming_core::repo::StreamRepository::probe_write

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;

/// How long `/ready` waits for the database to commit its write probe.
const DB_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an FFmpeg probe result is reused.
const FFMPEG_TTL: Duration = Duration::from_secs(30);

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
}

/// Outcome of one readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Working.
    Pass,
    /// Degraded but serving (e.g. no FFmpeg: source-only).
    Warn,
    /// Not working: the server is not ready.
    Fail,
}

/// One named check of `/ready`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    pub status: CheckStatus,
    /// Human-readable detail (never a secret).
    pub detail: String,
}

/// The body of `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` (200) or `not_ready` (503).
    pub status: String,
    /// Names of checks that warn (the server is ready but degraded).
    pub degraded: Vec<String>,
    /// Every check by name: `database`, `listeners`, `ffmpeg`, and `shutdown`
    /// while stopping.
    pub checks: BTreeMap<String, Check>,
}

/// Finds FFmpeg (`-version`), remembering the answer for a while.
#[derive(Clone, Default)]
pub struct FfmpegProbe {
    program: Option<PathBuf>,
    last: Arc<Mutex<Option<(Instant, Check)>>>,
}

impl FfmpegProbe {
    pub fn new(program: Option<PathBuf>) -> Self {
        Self {
            program,
            last: Arc::default(),
        }
    }

    async fn check(&self) -> Check {
        if let Some((at, check)) = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && at.elapsed() < FFMPEG_TTL
        {
            return check;
        }
        let program = self
            .program
            .clone()
            .unwrap_or_else(|| PathBuf::from("ffmpeg"));
        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg("-version")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let check = match tokio::time::timeout(Duration::from_secs(2), cmd.output()).await {
            Ok(Ok(out)) if out.status.success() => Check {
                status: CheckStatus::Pass,
                detail: String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("ffmpeg")
                    .to_string(),
            },
            Ok(Ok(out)) => Check {
                status: CheckStatus::Warn,
                detail: format!(
                    "{} -version exited with {}; streams run source-only",
                    program.display(),
                    out.status
                ),
            },
            Ok(Err(e)) => Check {
                status: CheckStatus::Warn,
                detail: format!(
                    "{} not found ({e}); streams run source-only (install the ffmpeg package for the ladder)",
                    program.display()
                ),
            },
            Err(_) => Check {
                status: CheckStatus::Warn,
                detail: format!(
                    "{} -version did not answer in 2 s; streams run source-only",
                    program.display()
                ),
            },
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), check.clone()));
        check
    }
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The cache of the database check (see [`Readiness`](crate::Readiness)).
pub(crate) type DbCheckCache = Arc<tokio::sync::Mutex<Option<(Instant, Check)>>>;

/// How long a database check's answer is reused.
const DB_CHECK_TTL: Duration = Duration::from_secs(1);

/// Whether the database commits a write: one probe at a time, answers reused
/// for [`DB_CHECK_TTL`] (a flood of `/ready` during an outage makes no writes).
async fn database_check(state: &ApiState) -> Check {
    let mut cached = state.readiness.db_check.lock().await;
    if let Some((at, check)) = cached.as_ref()
        && at.elapsed() < DB_CHECK_TTL
    {
        return check.clone();
    }
    let backend = state.repo.backend();
    let check = match tokio::time::timeout(DB_TIMEOUT, state.repo.probe_write()).await {
        Ok(Ok(())) => Check {
            status: CheckStatus::Pass,
            detail: format!("{backend} commits writes"),
        },
        Ok(Err(e)) => Check {
            status: CheckStatus::Fail,
            detail: format!("{backend} cannot commit a write: {e}"),
        },
        Err(_) => Check {
            status: CheckStatus::Fail,
            detail: format!(
                "{backend} did not commit a write within {} s (unreachable, or write-locked by \
                 another process)",
                DB_TIMEOUT.as_secs()
            ),
        },
    };
    *cached = Some((Instant::now(), check.clone()));
    check
}

/// Readiness: the database answers and the listeners are bound.
#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready (possibly degraded: see `degraded`)", body = Readiness),
        (status = 503, description = "Not ready: a check failed", body = Readiness),
    )
)]
pub async fn ready(State(state): State<ApiState>) -> Response {
    let (database, ffmpeg) = tokio::join!(database_check(&state), state.readiness.ffmpeg.check());
    let listeners = if state.readiness.listeners.is_empty() {
        Check {
            status: CheckStatus::Pass,
            detail: "embedded router (no listeners reported)".into(),
        }
    } else {
        Check {
            status: CheckStatus::Pass,
            detail: state
                .readiness
                .listeners
                .iter()
                .map(|(name, addr)| format!("{name} on {addr}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    };
    let mut checks = BTreeMap::from([
        ("database".to_string(), database),
        ("listeners".to_string(), listeners),
        ("ffmpeg".to_string(), ffmpeg),
    ]);
    if state
        .readiness
        .shutdown
        .as_ref()
        .is_some_and(|t| t.is_cancelled())
    {
        checks.insert(
            "shutdown".into(),
            Check {
                status: CheckStatus::Fail,
                detail: "the server is shutting down".into(),
            },
        );
    }
    let ok = checks.values().all(|c| c.status != CheckStatus::Fail);
    let degraded = checks
        .iter()
        .filter(|(_, c)| c.status == CheckStatus::Warn)
        .map(|(n, _)| n.clone())
        .collect();
    let body = Readiness {
        status: if ok { "ready" } else { "not_ready" }.into(),
        degraded,
        checks,
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
