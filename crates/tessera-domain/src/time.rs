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
