//! The HTTP client of the viewers: loopback targets only, every request
//! bounded in time (its own timeout and the end of the run), no proxy, no
//! redirects; outcomes recorded in [`Stats`] by request kind.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use serde_json::Value;
use tokio::time::Instant;

use crate::stats::Stats;
use crate::target::check_loopback_url;

/// Longest a single request may take (it is also cut at the end of the run).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after a failed master or playlist request.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// An HTTP client bound to loopback targets and to the end of the run.
pub struct Http {
    client: reqwest::Client,
    /// The end of the run: no request starts after it, none outlives it.
    pub deadline: Instant,
}

impl Http {
    pub fn new(deadline: Instant) -> Result<Self, String> {
        Self::with_idle_connections(deadline, 64)
    }

    /// A client keeping up to `idle` connections open for reuse (a low-latency
    /// viewer has two requests in flight per track; held requests one each).
    pub fn with_idle_connections(deadline: Instant, idle: usize) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // Never through a proxy, never follow a redirect: every request goes
            // to the (loopback-checked) address it names.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(idle)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client, deadline })
    }

    /// GET (or POST `body` as JSON) `url`; records the outcome under `kind`.
    pub async fn request(
        &self,
        stats: &mut Stats,
        kind: &'static str,
        url: &Url,
        post: Option<&Value>,
    ) -> Option<Bytes> {
        if check_loopback_url(url).is_err() {
            stats.failed(kind, "non_loopback_refused");
            return None;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return None;
        }
        let limit = (self.deadline - now).min(REQUEST_TIMEOUT);
        let req = match post {
            None => self.client.get(url.clone()),
            Some(v) => self
                .client
                .post(url.clone())
                .header("content-type", "application/json")
                .body(v.to_string()),
        };
        let started = Instant::now();
        let res = tokio::time::timeout(limit, async {
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        match res {
            Err(_) if Instant::now() >= self.deadline => {
                stats.aborted_at_deadline += 1;
                None
            }
            Err(_) => {
                stats.failed(kind, "timeout");
                None
            }
            Ok(Err(e)) => {
                let what = if e.is_connect() {
                    "connect"
                } else if e.is_timeout() {
                    "timeout"
                } else if e.is_body() || e.is_decode() {
                    "body"
                } else {
                    "transport"
                };
                stats.failed(kind, what);
                None
            }
            Ok(Ok((status, _))) if !status.is_success() => {
                stats.failed(kind, &format!("http_{}", status.as_u16()));
                None
            }
            Ok(Ok((_, body))) => {
                stats.ok(kind, body.len() as u64, started.elapsed());
                Some(body)
            }
        }
    }

    pub async fn get(&self, stats: &mut Stats, kind: &'static str, url: &Url) -> Option<Bytes> {
        self.request(stats, kind, url, None).await
    }
}

/// Sleeps `d`, but not past the end of the run.
pub async fn sleep_bounded(d: Duration, deadline: Instant) {
    tokio::time::sleep_until((Instant::now() + d).min(deadline)).await;
}
