//! Dates of the host's clock (`context.now`, milliseconds since the epoch)
//! as text, without a calendar crate.

/// Civil date and time (UTC) of milliseconds since the epoch:
/// (year, month, day, hour, minute, second).
pub fn civil(ms: u64) -> (i64, u32, u32, u64, u64, u64) {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60)
}

/// RFC 3339 UTC time: `2026-11-23T09:35:00Z`.
pub fn rfc3339(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// RFC 3339 UTC time with milliseconds, for moments measured against each other (a
/// downtime's start and end): `2026-11-23T09:35:00.250Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", ms % 1000)
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as Kubernetes writes them
/// (`2026-11-23T09:35:00Z`, fractions of a second allowed); `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms: u64 = match frac.get(..frac.len().min(3)) {
        Some("") | None => 0,
        Some(f) => f.parse::<u64>().ok()? * 10u64.pow(3 - f.len() as u32),
    };
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + sec;
    Some(secs * 1000 + ms)
}

/// A compact, sortable UTC time for names and keys: `20261123T093500Z`.
pub fn compact(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_426_500_000), "2026-11-23T09:35:00Z");
        assert_eq!(rfc3339_ms(1_795_426_500_250), "2026-11-23T09:35:00.250Z");
        for ms in [0, 951_782_400_000, 1_795_426_500_000, 1_795_426_500_250] {
            assert_eq!(parse_rfc3339(&rfc3339_ms(ms)), Some(ms));
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms - ms % 1000));
        }
        assert_eq!(parse_rfc3339("2026-11-23T09:35:00.5Z"), Some(1_795_426_500_500));
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-11-23T09:35:00+01:00",
            "now",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(compact(1_795_426_500_000), "20261123T093500Z");
        // 2000-02-29 (a leap day of a century leap year).
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
