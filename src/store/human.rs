//! Times and sizes as docker prints and stores them: RFC 3339 timestamps, "3 days ago",
//! "72.8MB". Pure functions (plus the clock), used by the store records and the listings.

/// Days since 1970-01-01 -> (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch -> `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Parse an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `+01:00` offsets) to epoch seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't' && b[10] != b' ')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        rest = &r[n..];
    }
    let off = match rest {
        "Z" | "z" | "" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let oh: i64 = r[1..3].parse().ok()?;
            let om: i64 = r[4..6].parse().ok()?;
            let o = oh * 3600 + om * 60;
            if r.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo as u32, d as u32) * 86400 + h * 3600 + mi * 60 + se - off)
}

/// Docker's age wording: "About an hour ago", "3 days ago", "2 years ago".
pub fn human_age(then: Option<i64>, now: i64) -> String {
    let Some(t) = then else {
        return "N/A".into();
    };
    let s = (now - t).max(0);
    let text = if s < 1 {
        "Less than a second".to_string()
    } else if s < 60 {
        format!("{s} seconds")
    } else if s < 120 {
        "About a minute".into()
    } else if s < 3600 {
        format!("{} minutes", s / 60)
    } else if s < 7200 {
        "About an hour".into()
    } else if s < 3600 * 48 {
        format!("{} hours", s / 3600)
    } else if s < 86400 * 7 * 2 {
        format!("{} days", s / 86400)
    } else if s < 86400 * 30 * 3 {
        format!("{} weeks", s / (86400 * 7))
    } else if s < 86400 * 365 * 2 {
        format!("{} months", s / (86400 * 30))
    } else {
        format!("{} years", s / (86400 * 365))
    };
    format!("{text} ago")
}

/// Docker's sizes: SI units, 3 significant digits ("1.23MB", "72.8MB", "143MB", "0B").
pub fn human_size(n: u64) -> String {
    const U: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = if v >= 100.0 || i == 0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", U[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1234), "1.23kB");
        assert_eq!(human_size(72_800_000), "72.8MB");
        assert_eq!(human_size(143_000_000), "143MB");
        assert_eq!(human_size(2_000_000), "2MB");
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.5+01:00"),
            Some(1709204400)
        );
        assert_eq!(
            format_rfc3339(1709204400, 0),
            "2024-02-29T11:00:00.000000000Z"
        );
        assert_eq!(
            parse_rfc3339(&format_rfc3339(1234567890, 7)),
            Some(1234567890)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(human_age(Some(0), 30), "30 seconds ago");
        assert_eq!(human_age(Some(0), 3 * 86400), "3 days ago");
        assert_eq!(human_age(Some(0), 5000), "About an hour ago");
        assert_eq!(human_age(None, 5), "N/A");
    }
}
