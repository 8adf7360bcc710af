//! `xs:dateTime` as SAML uses it, to and from milliseconds since the epoch.
//! Time is always an argument: nothing here reads a clock.

use tessera_domain::time::{civil_from_days, days_from_civil};

/// Parses `YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm)` to milliseconds since the
/// Unix epoch. A time without a zone is refused (SAML requires UTC).
pub fn parse_instant(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let frac = &rest[1..1 + digits];
        let mut ms = 0;
        for i in 0..3 {
            ms = ms * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
        }
        millis = ms;
        rest = &rest[1 + digits..];
    }
    let offset_minutes = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let m = num(&[*h1, *h2])? * 60 + num(&[*m1, *m2])?;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(secs * 1_000 + millis)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDThh:mm:ss.fffZ`.
pub fn format_instant(ms: i64) -> String {
    let secs = ms.div_euclid(1_000);
    let millis = ms.rem_euclid(1_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3_600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_and_zones_apply() {
        let t = parse_instant("2026-12-01T12:56:15Z").unwrap();
        assert_eq!(t, 1_796_129_775_000);
        assert_eq!(format_instant(t), "2026-12-01T12:56:15.000Z");
        assert_eq!(parse_instant("2026-12-01T12:56:15.123456Z"), Some(t + 123));
        assert_eq!(parse_instant("2026-12-01T13:56:15+01:00"), Some(t));
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn malformed_instants_are_refused() {
        for bad in [
            "",
            "2026-12-01T12:56:15",
            "2026-13-01T12:56:15Z",
            "2026-12-01 12:56:15Z",
            "2026-12-01T12:56:15.Z",
            "2026-12-01T12:56:15+0100",
            "２026-12-01T12:56:15Z",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
