//! The connection config and the user's time zone.

use qiao_sdk::{Error, Result, Value};
use serde::Deserialize;

/// Request timeout when the config sets none.
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
/// The time zone JQL dates are written in when the config names none.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// The connection config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://<site>.atlassian.net`.
    pub base_url: String,
    /// The Atlassian account e-mail the API token belongs to.
    pub email: String,
    /// The API token (secret).
    pub api_token: String,
    /// The secret of the admin webhook (secret); needed by `verify-webhook`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// The API user's profile time zone (JQL dates are read in it).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Per-request timeout in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

impl Config {
    /// Parses and checks `config`, reporting every problem at once.
    pub fn load(config: &Value) -> Result<Config> {
        let c: Config = qiao_sdk::parse_config(config)?;
        let mut problems = Vec::new();
        let base = c.base_url.trim_end_matches('/');
        let rest = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"));
        match rest {
            None => problems
                .push(format!("config.base_url: must start with https:// or http://, got {:?}", c.base_url)),
            Some(r) if r.is_empty() || r.contains(['?', '#']) => {
                problems.push(format!(
                    "config.base_url: must be the site URL without query or fragment, got {:?}",
                    c.base_url
                ));
            }
            Some(_) => {}
        }
        if !c.email.contains('@') {
            problems.push(
                "config.email: must be the e-mail of the Atlassian account the API token belongs to".into(),
            );
        }
        if c.api_token.trim().is_empty() {
            problems.push("config.api_token: must not be empty".into());
        }
        if let Err(e) = c.zone() {
            problems.push(e.message().to_string());
        }
        if c.timeout_ms == Some(0) {
            problems.push("config.timeout_ms: must be at least 1".into());
        }
        if problems.is_empty() { Ok(c) } else { Err(Error::config(problems.join("; "))) }
    }

    /// The site URL without a trailing `/`.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// The configured time zone.
    pub fn zone(&self) -> Result<Zone> {
        Zone::parse(self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE))
    }
}

/// A time zone as a fixed UTC offset. Jira reads JQL dates in the API user's profile zone;
/// without a time-zone database in the component, zones are limited to those without
/// daylight saving time (most of East and South Asia) and explicit offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// Minutes east of UTC.
    pub offset_min: i32,
}

/// IANA zones without daylight saving time, with their offset in minutes.
const FIXED_ZONES: &[(&str, i32)] = &[
    ("Asia/Shanghai", 480),
    ("Asia/Chongqing", 480),
    ("Asia/Harbin", 480),
    ("PRC", 480),
    ("Asia/Hong_Kong", 480),
    ("Asia/Macau", 480),
    ("Asia/Taipei", 480),
    ("Asia/Singapore", 480),
    ("Asia/Kuala_Lumpur", 480),
    ("Asia/Manila", 480),
    ("Australia/Perth", 480),
    ("Asia/Tokyo", 540),
    ("Asia/Seoul", 540),
    ("Asia/Bangkok", 420),
    ("Asia/Ho_Chi_Minh", 420),
    ("Asia/Jakarta", 420),
    ("Asia/Kolkata", 330),
    ("Asia/Calcutta", 330),
    ("Asia/Dubai", 240),
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("GMT", 0),
];

impl Zone {
    /// An IANA name from the fixed-offset list, or an offset (`+08:00`, `+0800`, `UTC+8`).
    pub fn parse(name: &str) -> Result<Zone> {
        if let Some((_, off)) = FIXED_ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Ok(Zone { offset_min: *off });
        }
        let offset = name.strip_prefix("UTC").or_else(|| name.strip_prefix("GMT")).unwrap_or(name);
        let parsed = match offset.len() {
            2 | 3 if offset.starts_with(['+', '-']) => offset[1..]
                .parse::<i64>()
                .ok()
                .filter(|h| *h <= 14)
                .map(|h| if offset.starts_with('-') { -h * 60 } else { h * 60 }),
            _ => crate::time::parse_offset(offset).filter(|_| offset != "Z" && offset != "z"),
        };
        parsed.map(|m| Zone { offset_min: m as i32 }).ok_or_else(|| {
            Error::config(format!(
                "config.time_zone: {name:?} is not supported: use a zone without daylight saving time such as \
                 \"Asia/Shanghai\", or a fixed offset such as \"+08:00\""
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::json;

    #[test]
    fn zones() {
        assert_eq!(Zone::parse("Asia/Shanghai").unwrap().offset_min, 480);
        assert_eq!(Zone::parse("+05:30").unwrap().offset_min, 330);
        assert_eq!(Zone::parse("UTC+8").unwrap().offset_min, 480);
        assert_eq!(Zone::parse("UTC-0330").unwrap().offset_min, -210);
        assert!(Zone::parse("Europe/Berlin").unwrap_err().message().contains("daylight saving"));
    }

    #[test]
    fn reports_every_problem() {
        let e = Config::load(
            &json!({"base_url": "ftp://x", "email": "bot", "api_token": " ", "time_zone": "Mars/Base"}),
        )
        .err()
        .unwrap();
        let m = e.message();
        for field in ["base_url", "email", "api_token", "time_zone"] {
            assert!(m.contains(&format!("config.{field}")), "{m}");
        }
        let ok = Config::load(
            &json!({"base_url": "https://acme.atlassian.net/", "email": "a@b.cn", "api_token": "t"}),
        )
        .unwrap();
        assert_eq!(ok.base(), "https://acme.atlassian.net");
        assert_eq!(ok.zone().unwrap().offset_min, 480);
        let e = Config::load(&json!({"base_url": "https://x", "email": "a@b", "api_token": "t", "token": 1}))
            .err()
            .unwrap();
        assert!(e.message().contains("unknown field"), "{e}");
    }
}
