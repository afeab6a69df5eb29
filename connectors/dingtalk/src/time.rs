//! Dates the way DingTalk writes them: China Standard Time (UTC+8) days for attendance,
//! ISO 8601 (minute precision, UTC) on the new workflow API, `yyyy-MM-dd HH:mm:ss` (China time)
//! on the old one. Written out here: the connector carries no date crate.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// UTC+8 in milliseconds.
pub const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// The China-time day number (days since 1970-01-01 CST) of `ms`.
pub fn cst_day(ms: i64) -> i64 {
    (ms + CST_OFFSET_MS).div_euclid(DAY_MS)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of a `YYYY-MM-DD...` string (anything after the date is ignored, as
/// DingTalk ignores the time part of attendance dates).
pub fn day_of_date(s: &str) -> Option<i64> {
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: i64 = s.get(5..7)?.parse().ok()?;
    let d: i64 = s.get(8..10)?.parse().ok()?;
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Epoch ms of a DingTalk timestamp: `2024-05-02T09:00Z`, `2024-05-02T09:00:30Z`,
/// `2024-05-02T17:00:00+08:00`, or `2024-05-02 17:00:00` (China time when no zone is given).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let day = day_of_date(s)?;
    let rest = s.get(10..)?;
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let hour: i64 = rest.get(0..2)?.parse().ok()?;
    let minute: i64 = rest.get(3..5)?.parse().ok()?;
    let mut tail = rest.get(5..)?;
    let mut second = 0;
    if let Some(after) = tail.strip_prefix(':') {
        second = after.get(0..2)?.parse().ok()?;
        tail = after.get(2..)?;
        if let Some(frac) = tail.strip_prefix('.') {
            tail = frac.trim_start_matches(|c: char| c.is_ascii_digit());
        }
    }
    let offset_ms = match tail {
        "Z" | "z" => 0,
        "" => CST_OFFSET_MS,
        zone => {
            let sign = match zone.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let m: i64 = zone.get(zone.len() - 2..)?.parse().ok()?;
            sign * (h * 60 + m) * 60_000
        }
    };
    Some(day * DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000 - offset_ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_match_the_spec_sample() {
        // The attendance sample: workDate 1714492800000 is 2024-05-01 00:00 CST.
        assert_eq!(
            day_of_date("2024-05-01 00:00:00").unwrap_or(0) * DAY_MS - CST_OFFSET_MS,
            1_714_492_800_000
        );
        assert_eq!(date_of_day(cst_day(1_714_525_080_000)), "2024-05-01");
        assert_eq!(day_of_date("2024-13-01"), None);
        let utc = 1_714_525_080_000;
        assert_eq!(parse_timestamp("2024-05-01T00:58Z"), Some(utc));
        assert_eq!(parse_timestamp("2024-05-01T00:58:00Z"), Some(utc));
        assert_eq!(parse_timestamp("2024-05-01T08:58:00.000+08:00"), Some(utc));
        assert_eq!(parse_timestamp("2024-05-01 08:58:00"), Some(utc));
        assert_eq!(parse_timestamp("2024-05-01"), None);
    }
}
