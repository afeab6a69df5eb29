//! Jira's time formats, in the site time zone the fake runs in ([`SITE_TIME_ZONE`]).
//!
//! Issue and worklog datetimes are `yyyy-MM-dd'T'HH:mm:ss.SSSZ` with a colon-less offset
//! (`2024-05-02T09:14:03.512+0800`); JQL dates are minute-precision local times
//! (`"2024-05-02 09:14"`) or relative periods (`-15m`).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{self, TimeZone};

/// The time zone of the fake's site and of its API user's profile: JQL dates are read in it
/// and datetimes are written with its offset. China has no daylight saving time, so this is
/// `+0800` all year.
pub const SITE_TIME_ZONE: &str = "Asia/Shanghai";

fn site_zone() -> TimeZone {
    TimeZone::get(SITE_TIME_ZONE).unwrap_or_else(|_| TimeZone::fixed(tz::offset(8)))
}

/// `ms` as Jira writes datetimes: `2024-05-02T09:14:03.512+0800`.
pub fn format_jira(ms: i64) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(site_zone()).strftime("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// Parses a datetime in Jira's strict input form (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`, offset without
/// a colon), as worklog `started` must be written. Anything else is `None`.
pub fn parse_jira(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 28
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && (b[23] == b'+' || b[23] == b'-')
        && b.iter().enumerate().all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%z", s).ok().map(|t| t.as_millisecond())
}

/// Parses a JQL date value: `yyyy-MM-dd HH:mm`, `yyyy/MM/dd HH:mm`, `yyyy-MM-dd`, `yyyy/MM/dd`
/// (local to the site zone), or a relative period such as `-15m`, `-2h`, `-1d`, `-1w` from
/// `now_ms`. Returns epoch milliseconds.
pub fn parse_jql_date(s: &str, now_ms: i64) -> Option<i64> {
    let s = s.trim();
    if let Some(rel) = s.strip_prefix('-') {
        let (num, unit) = rel.split_at(rel.len().checked_sub(1)?);
        let n: i64 = num.parse().ok()?;
        let unit_ms = match unit {
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        return Some(now_ms - n * unit_ms);
    }
    let normal = s.replace('/', "-");
    let civil = if normal.len() == 16 {
        DateTime::strptime("%Y-%m-%d %H:%M", &normal).ok()?
    } else if normal.len() == 10 {
        jiff::civil::Date::strptime("%Y-%m-%d", &normal).ok()?.to_datetime(jiff::civil::Time::midnight())
    } else {
        return None;
    };
    civil.to_zoned(site_zone()).ok().map(|z| z.timestamp().as_millisecond())
}

/// `ms` as a JQL minute in the site zone (`2024-05-02 09:14`), seconds dropped.
pub fn format_jql_minute(ms: i64) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(site_zone()).strftime("%Y-%m-%d %H:%M").to_string()
}

/// `ms` as the ISO minute the `X-RateLimit-Reset` header carries (`2024-05-02T01:15Z`, UTC).
pub fn format_reset(ms: i64) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H:%MZ").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // 2024-05-02T01:14:03.512Z
    const MS: i64 = 1_714_612_443_512;

    #[test]
    fn formats_with_colonless_site_offset() {
        assert_eq!(format_jira(MS), "2024-05-02T09:14:03.512+0800");
        assert_eq!(format_jql_minute(MS), "2024-05-02 09:14");
        assert_eq!(format_reset(MS), "2024-05-02T01:14Z");
    }

    #[test]
    fn parses_only_the_strict_started_form() {
        assert_eq!(parse_jira("2024-05-02T09:14:03.512+0800"), Some(MS));
        assert_eq!(parse_jira("2024-05-02T01:14:03.512+0000"), Some(MS));
        for bad in ["2024-05-02T09:14:03.512+08:00", "2024-05-02T01:14:03Z", "2024-05-02T01:14:03.512Z", "x"]
        {
            assert_eq!(parse_jira(bad), None, "{bad}");
        }
    }

    #[test]
    fn jql_dates_are_minutes_in_the_site_zone() {
        let minute = MS - 3_512;
        assert_eq!(parse_jql_date("2024-05-02 09:14", 0), Some(minute));
        assert_eq!(parse_jql_date("2024/05/02 09:14", 0), Some(minute));
        assert_eq!(parse_jql_date("2024-05-02", 0), Some(minute - (9 * 60 + 14) * 60_000));
        assert_eq!(parse_jql_date("-15m", MS), Some(MS - 900_000));
        assert_eq!(parse_jql_date("2024-05-02T09:14", 0), None);
        assert_eq!(parse_jql_date("yesterday", 0), None);
    }
}
