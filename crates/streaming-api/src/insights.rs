//! Stream analytics: `GET /api/v1/analytics/{stream_id}?from=&to=`.
//!
//! A health score (0–100) from weighted factors, each with its own score and
//! the measured value behind it, plain-language recommendations, and trends
//! (first half of the range against the second). Factors:
//!
//! | factor | measured | 100 at | 0 at |
//! |---|---|---|---|
//! | `ingest_stability` | coefficient of variation of the ingest bitrate | ≤ 15 % | ≥ 50 % |
//! | `keyframe_interval` | source segment length (the packager cuts at the first keyframe after 2 s) | ≤ 2.5 s | ≥ 8 s |
//! | `buffering` | average stall time / watch time (beacons) | ≤ 1 % | ≥ 10 % |
//! | `errors` | errors per minute | 0 | ≥ 10 |
//! | `transcoder_speed` | average FFmpeg speed (fed in real time, 1.0× is keeping up) | ≥ 0.97× | ≤ 0.8× |
//!
//! A factor without data (no transcoder, no beaconing players, no media in
//! memory) is left out and the others' weights renormalised.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ApiState;
use crate::docs::AdminErrors;
use crate::extract::{Admin, ApiPath, ApiQuery, parse_id};
use crate::history::{MetricsPoint, Step, load, range};
use crate::problem::Problem;

/// `?from=&to=` (an empty or reversed range has no samples).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// Start (RFC 3339, years 0000–9999; extended years such as `-262143`
    /// are a 400 `invalid-query` problem) [default: `to` − 1 h].
    pub from: Option<DateTime<Utc>>,
    /// End (RFC 3339, years 0000–9999; extended years such as `-262143`
    /// are a 400 `invalid-query` problem) [default: now].
    pub to: Option<DateTime<Utc>>,
}

/// One input of the health score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Factor {
    /// `ingest_stability`, `keyframe_interval`, `buffering`, `errors`, `transcoder_speed`.
    pub name: &'static str,
    /// 0–100.
    pub score: u8,
    /// Share of the health score (weights of the factors present add to 1).
    pub weight: f64,
    /// The measured value.
    pub value: f64,
    pub unit: &'static str,
    /// What the value means.
    pub detail: String,
}

/// How one figure moved over the range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trend {
    /// Average over the first half of the range.
    pub first_half: f64,
    /// Average over the second half.
    pub second_half: f64,
    /// Relative change, percent (0 when the first half is 0).
    pub change_pct: f64,
    /// `rising`, `falling` or `steady` (±10 %).
    pub direction: &'static str,
}

/// Trends of the main figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trends {
    pub viewers: Trend,
    pub ingest_kbps: Trend,
    pub egress_kbps: Trend,
    pub buffering_ratio: Trend,
}

/// Totals over the range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    /// 1-second samples in the range.
    pub samples: u64,
    pub peak_viewers: u64,
    pub avg_viewers: f64,
    pub avg_ingest_kbps: f64,
    pub errors: u64,
}

/// A stream's health over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct Analytics {
    pub stream_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// 0–100 (`null` without any sample in the range).
    pub health_score: Option<u8>,
    /// `good` (≥ 80), `fair` (≥ 50), `poor`, or `unknown`.
    pub grade: &'static str,
    pub factors: Vec<Factor>,
    /// What to change, most important first.
    pub recommendations: Vec<String>,
    pub trends: Option<Trends>,
    pub summary: Summary,
}

/// Linear score: 100 at `good` or better, 0 at `bad` or worse.
fn linear(value: f64, good: f64, bad: f64) -> u8 {
    let t = ((value - good) / (bad - good)).clamp(0.0, 1.0);
    (100.0 * (1.0 - t)).round() as u8
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / f64::from(n))
}

fn trend(points: &[MetricsPoint], f: impl Fn(&MetricsPoint) -> f64) -> Trend {
    let half = points.len() / 2;
    let a = mean(points[..half].iter().map(&f)).unwrap_or(0.0);
    let b = mean(points[half..].iter().map(&f)).unwrap_or(0.0);
    let change = if a.abs() < f64::EPSILON {
        0.0
    } else {
        (b - a) / a * 100.0
    };
    let direction = if a.abs() < f64::EPSILON && b > 0.0 || change > 10.0 {
        "rising"
    } else if change < -10.0 {
        "falling"
    } else {
        "steady"
    };
    let r = |v: f64| (v * 100.0).round() / 100.0;
    Trend {
        first_half: r(a),
        second_half: r(b),
        change_pct: r(change),
        direction,
    }
}

/// The analysis of a range's points; `segment_secs` is the source's
/// recent segment length when its media is in memory.
pub fn analyse(points: &[MetricsPoint], segment_secs: Option<f64>) -> (Vec<Factor>, Vec<String>) {
    let mut factors: Vec<(Factor, f64)> = Vec::new();
    let mut recs: Vec<(u8, String)> = Vec::new();
    // Ingest: skip the first seconds (the rate window fills up).
    let ingest: Vec<f64> = points
        .iter()
        .map(|p| p.ingest_kbps)
        .filter(|v| *v > 0.0)
        .skip(5)
        .collect();
    if let Some(avg) = mean(ingest.iter().copied()).filter(|_| ingest.len() >= 5) {
        let var = mean(ingest.iter().map(|v| (v - avg).powi(2))).unwrap_or(0.0);
        let cv = if avg > 0.0 { var.sqrt() / avg } else { 0.0 };
        let score = linear(cv, 0.15, 0.5);
        let detail = format!("ingest {avg:.0} kb/s varies by ±{:.0} %", cv * 100.0);
        if cv > 0.25 {
            recs.push((
                score,
                format!(
                    "Ingest bitrate unstable (±{:.0} % around {avg:.0} kb/s): use CBR or a VBV \
                     buffer/max-rate in the encoder, and check the broadcaster's upload bandwidth.",
                    cv * 100.0
                ),
            ));
        }
        factors.push((
            Factor {
                name: "ingest_stability",
                score,
                weight: 0.25,
                value: (cv * 1000.0).round() / 1000.0,
                unit: "coefficient of variation",
                detail,
            },
            0.25,
        ));
    }
    if let Some(secs) = segment_secs {
        let score = linear(secs, 2.5, 8.0);
        if secs > 2.5 {
            recs.push((
                score,
                format!(
                    "Keyframe interval {secs:.0} s; set 2 s (OBS: Output → Keyframe Interval 2; \
                     FFmpeg: -g <2 × fps> -keyint_min <2 × fps> -sc_threshold 0). Long GOPs \
                     make long segments: more latency and slower quality switches."
                ),
            ));
        }
        factors.push((
            Factor {
                name: "keyframe_interval",
                score,
                weight: 0.15,
                value: (secs * 100.0).round() / 100.0,
                unit: "s",
                detail: format!("segments of {secs:.1} s (one keyframe interval or more)"),
            },
            0.15,
        ));
    }
    let watched: Vec<&MetricsPoint> = points
        .iter()
        .filter(|p| p.concurrent_viewers > 0.0)
        .collect();
    if !watched.is_empty() {
        let ratio = mean(watched.iter().map(|p| p.buffering_ratio)).unwrap_or(0.0);
        let score = linear(ratio, 0.01, 0.10);
        if ratio > 0.02 {
            recs.push((
                score,
                format!(
                    "Viewers spent {:.1} % of their watch time buffering: lower the top rendition's \
                     bitrate or add a lower rung to the ladder.",
                    ratio * 100.0
                ),
            ));
        }
        factors.push((
            Factor {
                name: "buffering",
                score,
                weight: 0.30,
                value: (ratio * 10_000.0).round() / 10_000.0,
                unit: "ratio",
                detail: format!("{:.2} % of watch time stalled", ratio * 100.0),
            },
            0.30,
        ));
    }
    if !points.is_empty() {
        let errors: u64 = points.iter().map(|p| p.errors).sum();
        let minutes = points.iter().map(|p| u64::from(p.samples)).sum::<u64>() as f64 / 60.0;
        let per_min = errors as f64 / minutes.max(1.0 / 60.0);
        let score = linear(per_min, 0.0, 10.0);
        if errors > 0 {
            recs.push((
                score,
                format!(
                    "{errors} errors in the range ({per_min:.1} per minute): see the server log \
                     for ingest, delivery and player errors of this stream."
                ),
            ));
        }
        factors.push((
            Factor {
                name: "errors",
                score,
                weight: 0.15,
                value: (per_min * 100.0).round() / 100.0,
                unit: "errors/min",
                detail: format!("{errors} errors"),
            },
            0.15,
        ));
    }
    let speeds: Vec<f64> = points.iter().filter_map(|p| p.transcoder_speed).collect();
    if let Some(avg) = mean(speeds.iter().copied()) {
        let slowest = speeds.iter().copied().fold(f64::INFINITY, f64::min);
        // Fed in real time, FFmpeg cannot beat 1.0×: keeping up is ~1.0×.
        let score = linear(-avg, -0.97, -0.8);
        if avg < 0.95 {
            recs.push((
                score,
                format!(
                    "The transcoder ran at {avg:.2}× real time (slowest {slowest:.2}×): drop a \
                     rung, lower the top rung's resolution, or give the server more CPU."
                ),
            ));
        }
        factors.push((
            Factor {
                name: "transcoder_speed",
                score,
                weight: 0.15,
                value: (avg * 100.0).round() / 100.0,
                unit: "× real time",
                detail: format!("average {avg:.2}×, slowest {slowest:.2}×"),
            },
            0.15,
        ));
    }
    let total: f64 = factors.iter().map(|(_, w)| w).sum();
    let factors = factors
        .into_iter()
        .map(|(mut f, w)| {
            f.weight = ((w / total) * 1000.0).round() / 1000.0;
            f
        })
        .collect();
    recs.sort_by_key(|(score, _)| *score);
    (factors, recs.into_iter().map(|(_, r)| r).collect())
}

/// The score of weighted factors.
pub fn score(factors: &[Factor]) -> Option<u8> {
    if factors.is_empty() {
        return None;
    }
    let s: f64 = factors.iter().map(|f| f64::from(f.score) * f.weight).sum();
    Some(s.round().clamp(0.0, 100.0) as u8)
}

/// Recent source segment length, from the media in memory.
fn segment_secs(state: &ApiState, stream_id: Uuid) -> Option<f64> {
    let summary = state.store.as_ref()?.summary(stream_id)?;
    let r = summary.rendition("source")?;
    mean(r.recent_durations_secs.iter().copied())
}

/// A stream's health score, its factors, recommendations and trends.
#[utoipa::path(
    get, path = "/api/v1/analytics/{stream_id}", tag = "analytics",
    security(("bearer" = [])),
    params(("stream_id" = Uuid, Path, description = "Stream id"), AnalyticsQuery),
    responses((status = 200, description = "Health, recommendations and trends", body = Analytics), AdminErrors)
)]
pub async fn analytics(
    State(state): State<ApiState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> Result<Json<Analytics>, Problem> {
    let stream_id = parse_id(&id, "stream")?;
    let (from, to) = range(q.from, q.to, Duration::hours(1))?;
    state.stream(stream_id).await?;
    // Seconds for up to 2 h (raw samples), minutes beyond; a range longer
    // than one page (~7 days of minutes) is analysed from its end.
    let span = to.signed_duration_since(from).num_seconds();
    let step = if span <= 7200 {
        Step::OneSecond
    } else {
        Step::OneMinute
    };
    let max_span = Duration::seconds(step.seconds() * crate::history::MAX_POINTS);
    let from = from.max(to.checked_sub_signed(max_span).unwrap_or(from));
    let (points, _) = load(&state, stream_id, from, to, step).await?;
    let (factors, recommendations) = analyse(&points, segment_secs(&state, stream_id));
    let health_score = score(&factors);
    let grade = match health_score {
        None => "unknown",
        Some(s) if s >= 80 => "good",
        Some(s) if s >= 50 => "fair",
        Some(_) => "poor",
    };
    let samples: u64 = points.iter().map(|p| u64::from(p.samples)).sum();
    let weight = |p: &MetricsPoint| f64::from(p.samples);
    let wavg = |f: &dyn Fn(&MetricsPoint) -> f64| {
        if samples == 0 {
            0.0
        } else {
            let v = points.iter().map(|p| f(p) * weight(p)).sum::<f64>() / samples as f64;
            (v * 100.0).round() / 100.0
        }
    };
    let summary = Summary {
        samples,
        peak_viewers: points.iter().map(|p| p.viewers_max).max().unwrap_or(0),
        avg_viewers: wavg(&|p| p.concurrent_viewers),
        avg_ingest_kbps: wavg(&|p| p.ingest_kbps),
        errors: points.iter().map(|p| p.errors).sum(),
    };
    let trends = (points.len() >= 2).then(|| Trends {
        viewers: trend(&points, |p| p.concurrent_viewers),
        ingest_kbps: trend(&points, |p| p.ingest_kbps),
        egress_kbps: trend(&points, |p| p.egress_kbps),
        buffering_ratio: trend(&points, |p| p.buffering_ratio),
    });
    Ok(Json(Analytics {
        stream_id,
        from,
        to,
        health_score,
        grade,
        factors,
        recommendations,
        trends,
        summary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn point(t: i64, viewers: f64, ingest: f64, ratio: f64, speed: Option<f64>) -> MetricsPoint {
        MetricsPoint {
            at: DateTime::from_timestamp(t, 0).unwrap(),
            samples: 1,
            concurrent_viewers: viewers,
            viewers_min: viewers as u64,
            viewers_max: viewers as u64,
            ingest_kbps: ingest,
            egress_kbps: viewers * 1000.0,
            buffering_ratio: ratio,
            errors: 0,
            transcoder_speed: speed,
            quality_distribution: BTreeMap::new(),
        }
    }

    #[test]
    fn a_healthy_stream_scores_high_with_no_recommendation() {
        let pts: Vec<_> = (0..60)
            .map(|i| point(i, 10.0, 3000.0 + (i % 3) as f64 * 50.0, 0.0, Some(1.0)))
            .collect();
        let (f, r) = analyse(&pts, Some(2.0));
        assert_eq!(f.len(), 5);
        assert!(r.is_empty(), "{r:?}");
        assert_eq!(score(&f), Some(100));
    }

    #[test]
    fn long_gops_unstable_ingest_buffering_and_slow_transcoding_are_named() {
        let pts: Vec<_> = (0..60)
            .map(|i| {
                let ingest = if i % 2 == 0 { 500.0 } else { 4000.0 };
                point(i, (i / 6) as f64, ingest, 0.08, Some(0.85))
            })
            .collect();
        let (f, r) = analyse(&pts, Some(8.0));
        let s = score(&f).unwrap();
        assert!(s < 30, "score {s}");
        let all = r.join("\n");
        assert!(all.contains("Keyframe interval 8 s; set 2 s"), "{all}");
        assert!(all.contains("Ingest bitrate unstable"), "{all}");
        assert!(all.contains("buffering"), "{all}");
        assert!(all.contains("0.85× real time"), "{all}");
        let speed = f.iter().find(|f| f.name == "transcoder_speed").unwrap();
        assert!(speed.score < 50, "{speed:?}");
        let t = trend(&pts, |p| p.concurrent_viewers);
        assert_eq!(t.direction, "rising");
    }

    #[test]
    fn factors_without_data_are_left_out() {
        let pts: Vec<_> = (0..20).map(|i| point(i, 0.0, 0.0, 0.0, None)).collect();
        let (f, _) = analyse(&pts, None);
        assert_eq!(f.len(), 1, "only errors: {f:?}");
        assert_eq!(f[0].weight, 1.0);
        assert_eq!(score(&[]), None);
    }
}
