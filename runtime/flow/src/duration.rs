//! Durations written the way people write them: `250ms`, `5s`, `5m`, `1h30m`, `2d`.

use std::fmt;
use std::str::FromStr;

/// A non-negative span of time parsed from `<number><unit>` parts (`ms`, `s`, `m`, `h`, `d`),
/// largest unit first, such as `5m`, `250ms` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

const UNITS: &[(&str, u64)] = &[("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

impl Duration {
    /// Wraps a std duration.
    pub const fn new(d: std::time::Duration) -> Self {
        Duration(d)
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// A duration of `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    /// The std duration.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

fn hint(s: &str) -> String {
    format!(
        "invalid duration {s:?}: write a whole number followed by a unit (ms, s, m, h, d), like 250ms, 5m or 1h30m"
    )
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(hint(s));
        }
        let mut total_ms: u64 = 0;
        let mut last_rank = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(hint(s));
            }
            let (number, after) = rest.split_at(digits);
            let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, after) = after.split_at(unit_len);
            let Some(rank) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(if unit.is_empty() && after.is_empty() {
                    format!(
                        "invalid duration {s:?}: {number:?} has no unit (ms, s, m, h, d), write e.g. {number}s"
                    )
                } else if unit.is_empty() {
                    hint(s)
                } else {
                    format!("invalid duration {s:?}: unknown unit {unit:?} (use ms, s, m, h or d)")
                });
            };
            if last_rank != usize::MAX && rank <= last_rank {
                return Err(format!(
                    "invalid duration {s:?}: write each unit once, largest first, like 1h30m"
                ));
            }
            last_rank = rank;
            let n: u64 =
                number.parse().map_err(|_| format!("invalid duration {s:?}: {number} is too large"))?;
            total_ms = n
                .checked_mul(UNITS[rank].1)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
            rest = after;
        }
        Ok(Duration::from_millis(total_ms))
    }
}

impl fmt::Display for Duration {
    /// Canonical form: `1h30m`, `250ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if ms >= *size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<u64, String> {
        s.parse::<Duration>().map(|d| d.as_std().as_millis() as u64)
    }

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("1s"), Ok(1_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert_eq!(ms("1m30s500ms"), Ok(90_500));
        assert_eq!(ms("0s"), Ok(0));
    }

    #[test]
    fn rejects_with_clear_messages() {
        assert_eq!(
            ms("5"),
            Err("invalid duration \"5\": \"5\" has no unit (ms, s, m, h, d), write e.g. 5s".into())
        );
        assert_eq!(ms("5 minutes"), Err(hint("5 minutes")));
        assert_eq!(
            ms("5min"),
            Err("invalid duration \"5min\": unknown unit \"min\" (use ms, s, m, h or d)".into())
        );
        assert!(ms("30m1h").is_err_and(|e| e.contains("largest first")));
        assert!(ms("").is_err());
        assert!(ms("-1s").is_err());
        assert!(ms("1.5s").is_err());
        assert!(ms("99999999999999999999d").is_err_and(|e| e.contains("too large")));
    }

    #[test]
    fn displays_canonically() {
        for s in ["250ms", "5m", "1h30m", "0s", "1d2h3m4s5ms"] {
            assert_eq!(s.parse::<Duration>().map(|d| d.to_string()), Ok(s.to_string()));
        }
    }
}
