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
        assert_eq!(compact(1_795_426_500_000), "20261123T093500Z");
        // 2000-02-29 (a leap day of a century leap year).
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
