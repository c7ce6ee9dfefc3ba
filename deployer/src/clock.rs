//! Wall-clock helpers without a date crate: UTC calendar dates, timestamps for people, and the
//! `10m` / `2h` durations of `--since`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Days since 1970-01-01 -> (year, month, day), UTC. Howard Hinnant's `civil_from_days`.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 -> `YYYY-MM-DD` (the date format of API Gateway's GetUsage).
pub fn date(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix seconds -> `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(secs: u64) -> String {
    let rem = secs % 86_400;
    format!("{} {:02}:{:02}:{:02}", date((secs / 86_400) as i64), rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Unix milliseconds -> `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), as CloudWatch Logs timestamps read.
pub fn utc_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        date(secs.div_euclid(86_400)),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// `30s`, `10m`, `2h`, `7d` (a whole number and one unit) -> a duration.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 =
        digits.parse().map_err(|_| format!("`{text}`: expected a number and a unit, e.g. 30s, 10m, 2h, 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    if secs == 0 {
        return Err(format!("`{text}`: must be more than zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// The inverse of [`parse_duration`]: the largest unit that divides the duration (`90m`, `2h`).
pub fn format_duration(d: Duration) -> String {
    match d.as_secs() {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_they_are_written() {
        for text in ["30s", "90m", "2h", "7d", "61s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(parse_duration("120m").unwrap()), "2h");
    }

    #[test]
    fn utc_formats_unix_seconds() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_795_632_000), "2026-11-25 18:40:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn dates_and_millisecond_timestamps() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_782), "2026-11-25");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(utc_ms(1_795_632_000_123), "2026-11-25T18:40:00.123Z");
        assert_eq!(utc_ms(951_868_799_999), "2000-02-29T23:59:59.999Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "10", "m", "10x", "-5m", "0m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
