//! Cron schedules: the next firing time in the flow's time zone.

use std::time::Duration;

use jiff::Zoned;

/// The next time strictly after `now` that `cron` matches in `tz`, and how long until then.
pub(crate) fn next_fire(
    cron: &croner::Cron,
    tz: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
) -> Option<(Zoned, Duration)> {
    let start = now.to_zoned(tz.clone());
    let next = cron.find_next_occurrence(&start, false).ok()?;
    let wait = next.timestamp().duration_since(now);
    Some((next, Duration::try_from(wait).unwrap_or_default()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn next_fire_respects_the_time_zone() {
        let cron: croner::Cron = "0 9 * * *".parse().unwrap();
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // 2026-11-25 00:30 UTC is 08:30 in Shanghai: next 09:00 Shanghai is 30 minutes away.
        let now: jiff::Timestamp = "2026-11-25T00:30:00Z".parse().unwrap();
        let (at, wait) = next_fire(&cron, &tz, now).unwrap();
        assert_eq!(at.to_string(), "2026-11-25T09:00:00+08:00[Asia/Shanghai]");
        assert_eq!(wait, Duration::from_secs(30 * 60));
    }
}
