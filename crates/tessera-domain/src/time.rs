//! Instants as milliseconds since the Unix epoch, and Elasticsearch time units.

use std::time::Duration;

/// Milliseconds since the Unix epoch. The domain never reads a clock: every
/// rule that depends on "now" takes it as an argument.
pub type Millis = i64;

/// The one wording of a malformed duration, wherever one is parsed.
pub const EXPECTED_DURATION: &str =
    "expected a whole number followed by a unit: d, h, m, s, ms, micros or nanos (e.g. 30s, 20m)";

/// Parses an Elasticsearch time value such as `20m`, `1d`, `500ms` or `30s`.
///
/// Accepted units: `d`, `h`, `m`, `s`, `ms`, `micros`, `nanos`. A bare number
/// is refused, as Elasticsearch refuses it for these settings.
pub fn parse_time_value(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("failed to parse [{text}]: {EXPECTED_DURATION}"))?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!("failed to parse [{text}]: {EXPECTED_DURATION}"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("failed to parse [{text}]: the number is too large"))?;
    let per_unit = match unit {
        "d" => Duration::from_secs(86_400),
        "h" => Duration::from_secs(3_600),
        "m" => Duration::from_secs(60),
        "s" => Duration::from_secs(1),
        "ms" => Duration::from_millis(1),
        "micros" => Duration::from_micros(1),
        "nanos" => Duration::from_nanos(1),
        _ => return Err(format!("failed to parse [{text}]: {EXPECTED_DURATION}")),
    };
    u32::try_from(n)
        .ok()
        .and_then(|n| per_unit.checked_mul(n))
        .ok_or_else(|| format!("failed to parse [{text}]: the value is too large"))
}

/// A duration as whole milliseconds, saturating.
pub fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`); the month is 1 to 12.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` that is `z` days after 1970-01-01
/// (Howard Hinnant's `civil_from_days`), the inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_time_value("20m"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse_time_value("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_time_value("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_time_value(" 1h "), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "20", "m", "20x", "-1s", "1.5h", "99999999999999999999s"] {
            assert!(parse_time_value(bad).is_err(), "{bad}");
        }
    }
}
