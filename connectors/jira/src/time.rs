//! Time without a time-zone database: Jira datetimes (`2024-05-02T09:14:03.512+0800`), ISO 8601
//! input, JQL minutes and UTC output, over fixed UTC offsets (see [`crate::config::Zone`]).

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// The local wall-clock fields of `ms` at `offset_min` minutes east of UTC.
fn fields(ms: i64, offset_min: i32) -> (i64, i64, i64, i64, i64, i64, i64) {
    let local = ms + i64::from(offset_min) * MINUTE_MS;
    let (y, mo, d) = civil_from_days(local.div_euclid(DAY_MS));
    let t = local.rem_euclid(DAY_MS);
    (y, mo, d, t / 3_600_000, t / MINUTE_MS % 60, t / 1000 % 60, t % 1000)
}

fn offset_text(offset_min: i32, colon: bool) -> String {
    let sign = if offset_min < 0 { '-' } else { '+' };
    let a = offset_min.unsigned_abs();
    if colon {
        format!("{sign}{:02}:{:02}", a / 60, a % 60)
    } else {
        format!("{sign}{:02}{:02}", a / 60, a % 60)
    }
}

/// Jira's datetime form at `offset_min`: `2024-05-02T09:14:03.512+0800`.
pub fn format_jira(ms: i64, offset_min: i32) -> String {
    let (y, mo, d, h, mi, s, f) = fields(ms, offset_min);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}{}", offset_text(offset_min, false))
}

/// ISO 8601 in UTC with milliseconds: `2024-05-02T01:14:03.512Z`.
pub fn format_utc(ms: i64) -> String {
    let (y, mo, d, h, mi, s, f) = fields(ms, 0);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}Z")
}

/// A JQL date at `offset_min`, seconds dropped: `2024-05-02 09:14`.
pub fn format_jql_minute(ms: i64, offset_min: i32) -> String {
    let (y, mo, d, h, mi, _, _) = fields(ms, offset_min);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// `ms` rounded down to its minute.
pub fn floor_minute(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Parses an ISO 8601 datetime with an offset (`Z`, `+0800`, `+08:00`, `+08`) and optional
/// seconds and fraction, Jira's own form included. A datetime without an offset, or a date
/// `yyyy-MM-dd` / JQL-style `yyyy-MM-dd HH:mm`, is read as local time at `default_offset_min`.
pub fn parse_datetime(s: &str, default_offset_min: i32) -> Option<i64> {
    let s = s.trim();
    if s.len() < 10 || !s.is_char_boundary(10) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let mut dp = date.split('-');
    let (y, mo, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if dp.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * DAY_MS;
    let mut offset = i64::from(default_offset_min);
    if !rest.is_empty() {
        let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
        let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
        let (time, zone) = rest.split_at(zone_at);
        let mut tp = time.split(':');
        let h = num(tp.next()?)?;
        let mi = num(tp.next()?)?;
        let (sec, frac) = match tp.next() {
            None => (0, 0),
            Some(sf) => {
                let (sec, frac) = sf.split_once('.').unwrap_or((sf, ""));
                let frac_ms = if frac.is_empty() {
                    0
                } else {
                    let digits: String = frac.chars().chain("000".chars()).take(3).collect();
                    num(frac)?;
                    num(&digits)?
                };
                (num(sec)?, frac_ms)
            }
        };
        if tp.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        ms += h * 3_600_000 + mi * MINUTE_MS + sec * 1000 + frac;
        if !zone.is_empty() {
            offset = parse_offset(zone)?;
        }
    }
    Some(ms - offset * MINUTE_MS)
}

/// `Z`, `+0800`, `+08:00`, `+08` → minutes east of UTC.
pub fn parse_offset(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        2 => (num(&digits)?, 0),
        4 => (num(&digits[..2])?, num(&digits[2..])?),
        _ => return None,
    };
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-05-02T01:14:03.512Z
    const MS: i64 = 1_714_612_443_512;

    #[test]
    fn formats() {
        assert_eq!(format_jira(MS, 480), "2024-05-02T09:14:03.512+0800");
        assert_eq!(format_jira(MS, -330), "2024-05-01T19:44:03.512-0530");
        assert_eq!(format_utc(MS), "2024-05-02T01:14:03.512Z");
        assert_eq!(format_jql_minute(MS, 480), "2024-05-02 09:14");
        assert_eq!(format_jql_minute(0, 0), "1970-01-01 00:00");
        assert_eq!(floor_minute(MS), MS - 3_512);
    }

    #[test]
    fn parses_jira_and_iso_forms() {
        for s in [
            "2024-05-02T09:14:03.512+0800",
            "2024-05-02T09:14:03.512+08:00",
            "2024-05-02T01:14:03.512Z",
            "2024-05-01T19:44:03.512-0530",
            "2024-05-02T01:14:03.5120Z",
        ] {
            assert_eq!(parse_datetime(s, 0), Some(MS), "{s}");
        }
        assert_eq!(parse_datetime("2024-05-02T09:14", 480), Some(MS - 3_512));
        assert_eq!(parse_datetime("2024-05-02 09:14", 480), Some(MS - 3_512));
        assert_eq!(parse_datetime("2024-05-02", 0), Some(days_from_civil(2024, 5, 2) * DAY_MS));
        assert_eq!(parse_datetime("2000-02-29T00:00:00Z", 0), Some(951_782_400_000));
        for bad in ["", "2024-13-01", "2024-05-02T25:00Z", "yesterday", "2024-05-02T09:14+8", "2024-05-02X"] {
            assert_eq!(parse_datetime(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-800_000, -1, 0, 59, 11_016, 19_845, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
