//! Guards on what the tool may load: loopback addresses only, bounded time.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

/// The longest run accepted (`--duration`).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Parses `30s`, `500ms`, `5m`, `1h` or a bare number of seconds; 0 < d ≤ 1 h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (use e.g. 500ms, 30s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in `{s}` (ms, s, m or h)")),
    };
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("duration `{s}` must be positive"));
    }
    // Checked before building the Duration (which panics on infinity).
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("duration `{s}` exceeds the maximum of 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// True when `host` (as in a URL, IPv6 possibly in brackets) names the local
/// machine: `localhost`, 127.0.0.0/8, ::1 (or ::ffff:127.x.y.z).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Checks that `url` targets a loopback host; the error says why it is refused.
pub fn check_loopback_url(url: &Url) -> Result<(), String> {
    match url.host_str() {
        Some(h) if is_loopback_host(h) => Ok(()),
        Some(h) => Err(format!(
            "refusing target `{url}`: host `{h}` is not a loopback address \
             (only 127.0.0.0/8, ::1 and localhost may be loaded)"
        )),
        None => Err(format!("refusing target `{url}`: it has no host")),
    }
}

/// Resolves `host:port` and checks every address is loopback (so `localhost`
/// cannot be pointed elsewhere by a resolver); returns the addresses.
pub async fn resolve_loopback(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = tokio::net::lookup_host((h, port))
        .await
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("`{host}` resolves to no address"));
    }
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "refusing target `{host}`: it resolves to {bad}, which is not a loopback address"
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("8").unwrap(), Duration::from_secs(8));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("1e999").is_err());
        assert!(parse_duration("3601s").is_err());
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1",
            "127.1.2.3",
            "localhost",
            "LOCALHOST",
            "[::1]",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "0.0.0.0",
            "example.com",
            "192.168.1.1",
            "[::]",
            "8.8.8.8",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
        assert!(
            check_loopback_url(&Url::parse("http://127.0.0.1:8080/hls/x/master.m3u8").unwrap())
                .is_ok()
        );
        assert!(check_loopback_url(&Url::parse("rtmp://localhost/live/k").unwrap()).is_ok());
        assert!(check_loopback_url(&Url::parse("rtmp://[::1]:1935/live/k").unwrap()).is_ok());
        assert!(check_loopback_url(&Url::parse("http://10.1.1.1/x").unwrap()).is_err());
        assert!(check_loopback_url(&Url::parse("rtmp://example.com/live/k").unwrap()).is_err());
    }
}
