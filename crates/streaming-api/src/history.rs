//! Metrics history: `GET /api/v1/metrics/{stream_id}?from=&to=&step=`.
//!
//! `step=1s` returns the collector's 1-second samples as stored (the same
//! values the WebSocket pushed at those seconds); `step=10s` averages them
//! over 10-second buckets; `step=1m` returns the stored 1-minute roll-ups
//! (kept after raw samples expire, `metrics.raw_retention_hours`). Every point
//! has one shape: averages (`concurrent_viewers`, bitrates, buffering ratio,
//! viewers per quality), extremes (`viewers_min/max`), sums (`errors`), the
//! slowest transcoder speed, and how many 1-second samples went into it.
//! The newest few seconds reach the database in batches
//! (`metrics.flush_secs`, 5 s by default). Any range may be asked for: an
//! answer holds at most [`MAX_POINTS`] intervals, and when the range is longer
//! `next_from` says where the next page starts. An empty or reversed range
//! has no points. Dates are RFC 3339 date-times, whose years have four
//! digits (0000–9999, [`check_date`]); the extended years the date parser
//! also reads (`-262143-01-01T00:00:00Z`) are a 400 problem
//! (`invalid-query`), and all date arithmetic is checked, so no query can
//! overflow it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use streaming_core::model::{MetricsRollup, StreamMetrics};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ApiState;
use crate::docs::AdminErrors;
use crate::extract::{Admin, ApiPath, ApiQuery, parse_id};
use crate::problem::{Problem, ProblemKind};

/// Most points one answer holds.
pub const MAX_POINTS: i64 = 10_000;

/// Earliest year a query date may name (RFC 3339 years have four digits).
pub const MIN_YEAR: i32 = 0;
/// Latest year a query date may name.
pub const MAX_YEAR: i32 = 9999;

/// A query date (`name` is the parameter) that an RFC 3339 date-time can
/// name, or a 400 problem (`invalid-query`). In UTC that is one year wider
/// on each side than 0000–9999: `0000-01-01T00:00:00+23:59` is in the year
/// −1 and `9999-12-31T23:59:59-23:59` in 10000.
pub fn check_date(name: &str, t: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, Problem> {
    match t {
        Some(t) if !(MIN_YEAR - 1..=MAX_YEAR + 1).contains(&t.year()) => Err(Problem::new(
            ProblemKind::InvalidQuery,
            format!(
                "`{name}` must be an RFC 3339 date-time, years {MIN_YEAR:04} to {MAX_YEAR} \
                 (got {})",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        )),
        t => Ok(t),
    }
}

/// Resolution of the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Step {
    #[serde(rename = "1s")]
    OneSecond,
    #[serde(rename = "10s")]
    TenSeconds,
    #[serde(rename = "1m")]
    OneMinute,
}

impl Step {
    pub fn seconds(self) -> i64 {
        match self {
            Step::OneSecond => 1,
            Step::TenSeconds => 10,
            Step::OneMinute => 60,
        }
    }

    /// The finest step that fits a range in [`MAX_POINTS`] points.
    fn auto(range_secs: i64) -> Step {
        [Step::OneSecond, Step::TenSeconds]
            .into_iter()
            .find(|s| range_secs / s.seconds() <= 1000)
            .unwrap_or(Step::OneMinute)
    }
}

/// `?from=&to=&step=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Start, inclusive (RFC 3339, years 0000–9999; extended years such as
    /// `-262143` are a 400 `invalid-query` problem) [default: `to` − 10 min].
    pub from: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339, years 0000–9999; extended years such as
    /// `-262143` are a 400 `invalid-query` problem) [default: now].
    pub to: Option<DateTime<Utc>>,
    /// `1s`, `10s` or `1m` [default: the finest step with at most 1000 points].
    pub step: Option<Step>,
}

/// One point of the history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricsPoint {
    /// Start of the point's interval.
    pub at: DateTime<Utc>,
    /// 1-second samples in the interval.
    pub samples: u32,
    /// Average concurrent viewers (exact for `1s`).
    pub concurrent_viewers: f64,
    pub viewers_min: u64,
    pub viewers_max: u64,
    /// Average ingest bitrate, kbit/s.
    pub ingest_kbps: f64,
    /// Average egress bitrate, kbit/s.
    pub egress_kbps: f64,
    /// Average stall time / watch time of beaconing players.
    pub buffering_ratio: f64,
    /// Errors in the interval.
    pub errors: u64,
    /// Slowest transcoder speed in the interval.
    pub transcoder_speed: Option<f64>,
    /// Average viewers per quality.
    pub quality_distribution: BTreeMap<String, f64>,
}

/// A stream's metrics over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsHistory {
    pub stream_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: Step,
    /// Oldest first; intervals without samples are absent.
    pub points: Vec<MetricsPoint>,
    /// The range was longer than one answer holds: ask again from here.
    pub next_from: Option<DateTime<Utc>>,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl From<&StreamMetrics> for MetricsPoint {
    fn from(m: &StreamMetrics) -> Self {
        Self {
            at: m.at,
            samples: 1,
            concurrent_viewers: m.concurrent_viewers as f64,
            viewers_min: m.concurrent_viewers,
            viewers_max: m.concurrent_viewers,
            ingest_kbps: m.ingest_bitrate_kbps as f64,
            egress_kbps: m.egress_bitrate_kbps as f64,
            buffering_ratio: m.buffering_ratio,
            errors: m.errors,
            transcoder_speed: m.transcoder_speed,
            quality_distribution: m
                .quality_distribution
                .iter()
                .map(|(q, n)| (q.clone(), f64::from(*n)))
                .collect(),
        }
    }
}

impl From<MetricsRollup> for MetricsPoint {
    fn from(r: MetricsRollup) -> Self {
        Self {
            at: r.minute,
            samples: r.samples,
            concurrent_viewers: r.viewers_avg,
            viewers_min: r.viewers_min,
            viewers_max: r.viewers_max,
            ingest_kbps: r.ingest_kbps_avg,
            egress_kbps: r.egress_kbps_avg,
            buffering_ratio: r.buffering_ratio_avg,
            errors: r.errors,
            transcoder_speed: r.transcoder_speed_min,
            quality_distribution: r.quality_distribution,
        }
    }
}

/// Running sums of one bucket: viewers, ingest, egress, buffering, qualities.
type Sums = (f64, f64, f64, f64, BTreeMap<String, f64>);

/// Averages 1-second samples into buckets of `secs` (aligned to the epoch).
pub fn bucket(samples: &[StreamMetrics], secs: i64) -> Vec<MetricsPoint> {
    let mut out: Vec<MetricsPoint> = Vec::new();
    let mut sums: Vec<Sums> = Vec::new();
    for m in samples {
        let t = m.at.timestamp();
        let start = t - t.rem_euclid(secs);
        let at = DateTime::from_timestamp(start, 0).unwrap_or_default();
        if out.last().is_none_or(|p| p.at != at) {
            let mut p = MetricsPoint::from(m);
            p.at = at;
            out.push(p);
            sums.push((
                m.concurrent_viewers as f64,
                m.ingest_bitrate_kbps as f64,
                m.egress_bitrate_kbps as f64,
                m.buffering_ratio,
                m.quality_distribution
                    .iter()
                    .map(|(q, n)| (q.clone(), f64::from(*n)))
                    .collect(),
            ));
            continue;
        }
        let (Some(p), Some(s)) = (out.last_mut(), sums.last_mut()) else {
            continue;
        };
        p.samples += 1;
        p.viewers_min = p.viewers_min.min(m.concurrent_viewers);
        p.viewers_max = p.viewers_max.max(m.concurrent_viewers);
        p.errors += m.errors;
        p.transcoder_speed = match (p.transcoder_speed, m.transcoder_speed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        s.0 += m.concurrent_viewers as f64;
        s.1 += m.ingest_bitrate_kbps as f64;
        s.2 += m.egress_bitrate_kbps as f64;
        s.3 += m.buffering_ratio;
        for (q, n) in &m.quality_distribution {
            *s.4.entry(q.clone()).or_insert(0.0) += f64::from(*n);
        }
    }
    for (p, s) in out.iter_mut().zip(sums) {
        let n = f64::from(p.samples.max(1));
        p.concurrent_viewers = round3(s.0 / n);
        p.ingest_kbps = round3(s.1 / n);
        p.egress_kbps = round3(s.2 / n);
        p.buffering_ratio = round3(s.3 / n);
        p.quality_distribution = s.4.into_iter().map(|(q, v)| (q, round3(v / n))).collect();
    }
    out
}

/// The range a query names (defaults: `to` = now, `from` = `to` −
/// `default_span`); dates no RFC 3339 date-time can name are a 400 problem.
pub fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default_span: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Problem> {
    let from = check_date("from", from)?;
    let to = check_date("to", to)?.unwrap_or_else(Utc::now);
    let from = from.unwrap_or_else(|| {
        to.checked_sub_signed(default_span)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    });
    Ok((from, to))
}

/// Loads the points of `[from, to)` at a step, at most [`MAX_POINTS`]
/// intervals from `from`; returns them and where the next page starts.
pub async fn load(
    state: &ApiState,
    stream_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Step,
) -> Result<(Vec<MetricsPoint>, Option<DateTime<Utc>>), Problem> {
    if from >= to {
        return Ok((Vec::new(), None));
    }
    // Buckets are aligned: widen `from` to the bucket it falls in.
    let from = from
        .duration_trunc(Duration::seconds(step.seconds()))
        .unwrap_or(from);
    let page_end = from
        .checked_add_signed(Duration::seconds(step.seconds() * MAX_POINTS))
        .unwrap_or(to);
    let (end, next) = if page_end < to {
        (page_end, Some(page_end))
    } else {
        (to, None)
    };
    let limit = u32::try_from(MAX_POINTS * step.seconds()).unwrap_or(u32::MAX);
    let points = match step {
        Step::OneSecond | Step::TenSeconds => {
            let raw = state
                .repo
                .list_metrics_range(stream_id, from, end, limit)
                .await?;
            match step {
                Step::OneSecond => raw.iter().map(MetricsPoint::from).collect(),
                _ => bucket(&raw, step.seconds()),
            }
        }
        Step::OneMinute => state
            .repo
            .list_rollups(stream_id, from, end, limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    };
    Ok((points, next))
}

/// A stream's metrics over a time range, at 1 s, 10 s or 1 min resolution.
#[utoipa::path(
    get, path = "/api/v1/metrics/{stream_id}", tag = "analytics",
    security(("bearer" = [])),
    params(("stream_id" = Uuid, Path, description = "Stream id"), HistoryQuery),
    responses((status = 200, description = "Metrics points, oldest first", body = MetricsHistory), AdminErrors)
)]
pub async fn metrics(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<MetricsHistory>, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    let (from, to) = range(q.from, q.to, Duration::minutes(10))?;
    let step = q
        .step
        .unwrap_or_else(|| Step::auto(to.signed_duration_since(from).num_seconds()));
    state.stream(stream_id).await?;
    let (points, next_from) = load(&state, stream_id, from, to, step).await?;
    Ok(Json(MetricsHistory {
        stream_id,
        from,
        to,
        step,
        points,
        next_from,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, viewers: u64, q: u32) -> StreamMetrics {
        StreamMetrics {
            at: DateTime::from_timestamp(t, 0).unwrap(),
            concurrent_viewers: viewers,
            ingest_bitrate_kbps: 1000 + viewers,
            errors: 1,
            transcoder_speed: Some(1.0 + viewers as f64 / 100.0),
            quality_distribution: BTreeMap::from([("480p".into(), q)]),
            ..StreamMetrics::default()
        }
    }

    #[test]
    fn ten_second_buckets_average_and_sum() {
        let t0 = 1_800_000_000; // divisible by 10
        let samples: Vec<_> = (0..15).map(|i| sample(t0 + i, i as u64, 2)).collect();
        let p = bucket(&samples, 10);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].at.timestamp(), t0);
        assert_eq!(p[0].samples, 10);
        assert_eq!(p[0].concurrent_viewers, 4.5);
        assert_eq!((p[0].viewers_min, p[0].viewers_max), (0, 9));
        assert_eq!(p[0].errors, 10);
        assert_eq!(p[0].transcoder_speed, Some(1.0));
        assert_eq!(p[0].quality_distribution["480p"], 2.0);
        assert_eq!(p[1].samples, 5);
        assert_eq!(p[1].concurrent_viewers, 12.0);
    }

    #[test]
    fn auto_step_keeps_answers_small() {
        assert_eq!(Step::auto(60), Step::OneSecond);
        assert_eq!(Step::auto(3600), Step::TenSeconds);
        assert_eq!(Step::auto(86_400), Step::OneMinute);
        let (from, to) = range(None, None, Duration::minutes(1)).unwrap();
        assert_eq!(to - from, Duration::minutes(1));
    }

    #[test]
    fn dates_beyond_rfc_3339_years_are_a_400() {
        let parse = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        for bad in [
            "-262143-01-01T00:00:00Z",
            "+262142-12-31T23:59:59Z",
            "-0002-12-31T23:59:59Z",
            "+10001-01-01T00:00:00Z",
        ] {
            let t = parse(bad);
            for (from, to) in [(Some(t), None), (None, Some(t)), (Some(t), Some(t))] {
                let p = range(from, to, Duration::minutes(10)).unwrap_err();
                assert_eq!(p.kind(), ProblemKind::InvalidQuery, "{bad}");
                assert_eq!(p.status, 400);
                assert!(p.detail.contains("RFC 3339"), "{}", p.detail);
            }
        }
        // Every RFC 3339 date-time is accepted, offsets included.
        let fixed = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (from, to) = range(
            Some(fixed("0000-01-01T00:00:00+23:59")),
            Some(fixed("9999-12-31T23:59:59.999999-23:59")),
            Duration::minutes(10),
        )
        .unwrap();
        assert_eq!((from.year(), to.year()), (-1, 10000));
        // The default `from` of the earliest `to` is earlier still: fine.
        let (from, _) = range(None, Some(from), Duration::hours(1)).unwrap();
        assert_eq!(from.year(), -1);
    }
}
