//! Wall-clock and duration formatting for playlists and HTTP headers.
//!
//! - [`rfc3339_millis`]: RFC 3339 `date-time` in UTC with milliseconds, as
//!   `EXT-X-PROGRAM-DATE-TIME` wants it (RFC 8216bis §4.4.4.6).
//! - [`xs_datetime`]: XML Schema `xs:dateTime` for MPD attributes
//!   (ISO/IEC 23009-1 §5.3.1.2, e.g. `availabilityStartTime`).
//! - [`xs_duration`]: XML Schema `xs:duration`, e.g. `PT1M30.500S`.
//! - [`http_date`]: the IMF-fixdate of RFC 9110 §5.6.7.
//!
//! No clock is read here: the caller passes the time in. Dates are computed
//! with the proleptic Gregorian `civil_from_days` algorithm (H. Hinnant), so
//! every `i64` millisecond count in range maps to a date, including those
//! before 1970.

/// Milliseconds in one day.
const MS_PER_DAY: i64 = 86_400_000;

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    /// 0 = Sunday … 6 = Saturday.
    weekday: u32,
}

/// Converts days since 1970-01-01 into (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = if m <= 2 { y + 1 } else { y };
    (year, m as u32, d as u32)
}

fn civil_from_unix_ms(unix_ms: i64) -> Civil {
    let days = unix_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = unix_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let secs_of_day = (ms_of_day / 1000) as u32;
    Civil {
        year,
        month,
        day,
        hour: secs_of_day / 3600,
        minute: secs_of_day / 60 % 60,
        second: secs_of_day % 60,
        millis: (ms_of_day % 1000) as u32,
        // 1970-01-01 was a Thursday (4).
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in milliseconds (UTC).
///
/// ```
/// use streaming_media::timefmt::rfc3339_millis;
/// assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
/// ```
pub fn rfc3339_millis(unix_ms: i64) -> String {
    let c = civil_from_unix_ms(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// `xs:dateTime` in UTC with milliseconds; the same text as [`rfc3339_millis`].
pub fn xs_datetime(unix_ms: i64) -> String {
    rfc3339_millis(unix_ms)
}

/// `xs:duration` with millisecond precision: `PT2.000S`, `PT1M30.500S`,
/// `PT1H0M5.000S`. Hours and minutes appear only when non-zero (minutes also
/// when hours do); seconds always appear. Negative values get a leading `-`;
/// NaN is written as `PT0.000S`, infinities saturate.
pub fn xs_duration(secs: f64) -> String {
    let total_ms = if secs.is_nan() {
        0i128
    } else {
        // `as` saturates on overflow and infinities.
        (secs * 1000.0).round() as i128
    };
    let sign = if total_ms < 0 { "-" } else { "" };
    let total_ms = total_ms.unsigned_abs();
    let hours = total_ms / 3_600_000;
    let minutes = total_ms / 60_000 % 60;
    let seconds = total_ms / 1000 % 60;
    let millis = total_ms % 1000;
    let mut out = format!("{sign}PT");
    if hours > 0 {
        out.push_str(&format!("{hours}H{minutes}M"));
    } else if minutes > 0 {
        out.push_str(&format!("{minutes}M"));
    }
    out.push_str(&format!("{seconds}.{millis:03}S"));
    out
}

/// The IMF-fixdate of RFC 9110 §5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix_secs: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil_from_unix_ms(unix_secs.saturating_mul(1000));
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[c.weekday as usize],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1795820288` → Fri Nov 27 22:58:08 UTC 2026
        assert_eq!(
            rfc3339_millis(1_795_820_288_123),
            "2026-11-27T22:58:08.123Z"
        );
        // Leap day and end of a leap year.
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_millis(978_307_199_999), "2000-12-31T23:59:59.999Z");
        // 2100 is not a leap year.
        assert_eq!(
            rfc3339_millis(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(4_107_542_399_000),
            "2100-02-28T23:59:59.000Z"
        );
    }

    #[test]
    fn before_epoch() {
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(-86_400_000), "1969-12-31T00:00:00.000Z");
        assert_eq!(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
    }

    #[test]
    fn every_day_round_trips_through_a_naive_count() {
        // Walk forward day by day from 1969-01-01 and compare with a naive
        // calendar, which checks month lengths and leap years for 440 years.
        let mut days = -365i64;
        let (mut y, mut m, mut d) = (1969i64, 1u32, 1u32);
        while y < 2410 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
            days += 1;
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_820_288), "Fri, 27 Nov 2026 22:58:08 GMT");
    }

    #[test]
    fn durations() {
        assert_eq!(xs_duration(2.0), "PT2.000S");
        assert_eq!(xs_duration(0.0), "PT0.000S");
        assert_eq!(xs_duration(90.5), "PT1M30.500S");
        assert_eq!(xs_duration(3600.0), "PT1H0M0.000S");
        assert_eq!(xs_duration(3725.0625), "PT1H2M5.063S");
        assert_eq!(xs_duration(1.9999), "PT2.000S");
        assert_eq!(xs_duration(-1.5), "-PT1.500S");
        assert_eq!(xs_duration(f64::NAN), "PT0.000S");
    }
}
