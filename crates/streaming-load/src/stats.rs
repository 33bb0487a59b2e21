//! Counters, latency samples and the JSON / human summaries.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// Requests, bytes, latencies and errors, keyed by request kind
/// (`master`, `playlist`, `init`, `segment`, `session`, `beacon`; in
/// low-latency mode also `playlist_blocking`, `part`, `part_hinted`).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub requests: BTreeMap<&'static str, u64>,
    pub bytes: BTreeMap<&'static str, u64>,
    pub latencies_ms: BTreeMap<&'static str, Vec<f64>>,
    pub errors: BTreeMap<String, u64>,
    /// Measured intervals that are not request latencies, in ms, possibly
    /// negative (`playlist_after_part`: a blocking playlist answer minus the
    /// answer of the held part it waited for).
    pub timings_ms: BTreeMap<&'static str, Vec<f64>>,
    /// Requests cut off by the end of the run (not errors).
    pub aborted_at_deadline: u64,
}

impl Stats {
    pub fn ok(&mut self, kind: &'static str, bytes: u64, latency: Duration) {
        *self.requests.entry(kind).or_default() += 1;
        *self.bytes.entry(kind).or_default() += bytes;
        self.latencies_ms
            .entry(kind)
            .or_default()
            .push(latency.as_secs_f64() * 1000.0);
    }

    /// A failed request of `kind`; `what` names the failure (`http_404`, `timeout` …).
    pub fn failed(&mut self, kind: &'static str, what: &str) {
        *self.requests.entry(kind).or_default() += 1;
        self.error(format!("{kind}_{what}"));
    }

    /// One sample of a named interval (see [`Stats::timings_ms`]).
    pub fn timing(&mut self, name: &'static str, ms: f64) {
        self.timings_ms.entry(name).or_default().push(ms);
    }

    pub fn error(&mut self, key: String) {
        *self.errors.entry(key).or_default() += 1;
    }

    pub fn merge(&mut self, other: Stats) {
        for (k, v) in other.requests {
            *self.requests.entry(k).or_default() += v;
        }
        for (k, v) in other.bytes {
            *self.bytes.entry(k).or_default() += v;
        }
        for (k, v) in other.latencies_ms {
            self.latencies_ms.entry(k).or_default().extend(v);
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.timings_ms {
            self.timings_ms.entry(k).or_default().extend(v);
        }
        self.aborted_at_deadline += other.aborted_at_deadline;
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes.values().sum()
    }

    /// `requests`, `errors`, `bytes` and `latency_ms` objects.
    pub fn to_json(&self) -> Value {
        let mut requests = serde_json::Map::new();
        requests.insert("total".into(), json!(self.total_requests()));
        for (k, v) in &self.requests {
            requests.insert((*k).into(), json!(v));
        }
        let mut bytes = serde_json::Map::new();
        bytes.insert("total".into(), json!(self.total_bytes()));
        for (k, v) in &self.bytes {
            bytes.insert((*k).into(), json!(v));
        }
        let latency: serde_json::Map<String, Value> = self
            .latencies_ms
            .iter()
            .map(|(k, v)| ((*k).to_string(), latency_json(v)))
            .collect();
        let mut j = json!({
            "requests": requests,
            "errors": { "total": self.total_errors(), "by_kind": self.errors },
            "bytes": bytes,
            "latency_ms": latency,
            "aborted_at_deadline": self.aborted_at_deadline,
        });
        if !self.timings_ms.is_empty() {
            let t: serde_json::Map<String, Value> = self
                .timings_ms
                .iter()
                .map(|(k, v)| ((*k).to_string(), timing_json(v)))
                .collect();
            j["timings_ms"] = Value::Object(t);
        }
        j
    }
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn latency_json(samples: &[f64]) -> Value {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    json!({
        "count": s.len(),
        "p50": round2(percentile(&s, 50.0)),
        "p90": round2(percentile(&s, 90.0)),
        "p99": round2(percentile(&s, 99.0)),
        "max": round2(s.last().copied().unwrap_or(0.0)),
    })
}

/// [`latency_json`] plus the smallest sample (intervals may be negative).
pub fn timing_json(samples: &[f64]) -> Value {
    let mut j = latency_json(samples);
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    j["min"] = json!(if min.is_finite() { round2(min) } else { 0.0 });
    j
}

/// A short table of the summary for humans (stderr).
pub fn human_table(stats: &Stats) -> String {
    let mut out = format!(
        "{:<17} {:>9} {:>14} {:>9} {:>9} {:>9} {:>9}\n",
        "kind", "requests", "bytes", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (kind, n) in &stats.requests {
        let mut s = stats.latencies_ms.get(kind).cloned().unwrap_or_default();
        s.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "{:<17} {:>9} {:>14} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
            kind,
            n,
            stats.bytes.get(kind).copied().unwrap_or(0),
            percentile(&s, 50.0),
            percentile(&s, 90.0),
            percentile(&s, 99.0),
            s.last().copied().unwrap_or(0.0),
        ));
    }
    for (name, v) in &stats.timings_ms {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "{name}: {} samples, ms p50 {:.1} p99 {:.1} min {:.1} max {:.1}\n",
            s.len(),
            percentile(&s, 50.0),
            percentile(&s, 99.0),
            s.first().copied().unwrap_or(0.0),
            s.last().copied().unwrap_or(0.0),
        ));
    }
    out.push_str(&format!("errors: {}", stats.total_errors()));
    for (k, v) in &stats.errors {
        out.push_str(&format!("  {k}={v}"));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 90.0), 90.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&s, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn merge_and_json() {
        let mut a = Stats::default();
        a.ok("segment", 100, Duration::from_millis(5));
        let mut b = Stats::default();
        b.ok("segment", 50, Duration::from_millis(7));
        b.failed("playlist", "http_404");
        a.merge(b);
        let j = a.to_json();
        assert_eq!(j["requests"]["total"], 3);
        assert_eq!(j["bytes"]["segment"], 150);
        assert_eq!(j["errors"]["total"], 1);
        assert_eq!(j["errors"]["by_kind"]["playlist_http_404"], 1);
        assert_eq!(j["latency_ms"]["segment"]["count"], 2);
        assert_eq!(j["latency_ms"]["segment"]["max"], 7.0);
        assert!(j.get("timings_ms").is_none(), "no timings, no key");
    }

    #[test]
    fn signed_timings_merge_and_report_their_minimum() {
        let mut a = Stats::default();
        a.timing("playlist_after_part", -1.5);
        a.timing("playlist_after_part", 0.25);
        let mut b = Stats::default();
        b.timing("playlist_after_part", 3.0);
        a.merge(b);
        let j = a.to_json();
        let t = &j["timings_ms"]["playlist_after_part"];
        assert_eq!(t["count"], 3);
        assert_eq!(t["min"], -1.5);
        assert_eq!(t["p50"], 0.25);
        assert_eq!(t["max"], 3.0);
        assert!(human_table(&a).contains("playlist_after_part: 3 samples"));
    }
}
