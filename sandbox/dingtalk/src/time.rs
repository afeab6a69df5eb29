//! Dates the way DingTalk writes them: China Standard Time (UTC+8) days for attendance,
//! minute-precision UTC ISO 8601 for the new workflow API.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// UTC+8 in milliseconds.
pub const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// The China-time day number (days since 1970-01-01 CST) of `ms`.
pub fn cst_day(ms: i64) -> i64 {
    (ms + CST_OFFSET_MS).div_euclid(DAY_MS)
}

/// Epoch milliseconds of midnight CST starting `day`.
pub fn cst_midnight(day: i64) -> i64 {
    day * DAY_MS - CST_OFFSET_MS
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Weekday of a day number, 0 = Monday.
pub fn weekday(day: i64) -> i64 {
    // 1970-01-01 was a Thursday.
    (day + 3).rem_euclid(7)
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

/// `2024-05-02T09:00Z`: the new workflow API's timestamps (UTC, minute precision).
pub fn iso_minute(ms: i64) -> String {
    let day = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS) / 60_000;
    format!("{}T{:02}:{:02}Z", date_of_day(day), rest / 60, rest % 60)
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
        assert_eq!(cst_midnight(day_of_date("2024-05-01 00:00:00").unwrap_or(0)), 1_714_492_800_000);
        assert_eq!(date_of_day(cst_day(1_714_525_080_000)), "2024-05-01");
        assert_eq!(weekday(day_of_date("2024-05-01").unwrap_or(0)), 2);
        assert_eq!(iso_minute(1_714_525_080_000), "2024-05-01T00:58Z");
        assert_eq!(day_of_date("2024-13-01"), None);
    }
}
