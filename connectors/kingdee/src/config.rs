//! The connection config and the service URLs built from it.

use qiao_sdk::{Error, Result};
use serde::Deserialize;

/// How the connector logs in.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// `LoginBySign`: SHA-256 signature over acct, user, app id, app secret and timestamp
    /// (Kingdee's recommended login; the secret never travels).
    #[default]
    Sign,
    /// `LoginByAppSecret`: app id and app secret in the body.
    AppSecret,
    /// `ValidateUser`: user name and password in the body (not recommended by Kingdee).
    Password,
}

/// The connection config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The K/3 Cloud site, e.g. `https://erp.example.com/k3cloud` (`/k3cloud` is added when
    /// missing).
    pub base_url: String,
    /// The data center (账套) id.
    pub acct_id: String,
    /// The integration user.
    pub user_name: String,
    /// The third-party app id (`sign`, `app-secret`).
    #[serde(default)]
    pub app_id: Option<String>,
    /// The app secret (`sign`, `app-secret`).
    #[serde(default)]
    pub app_secret: Option<String>,
    /// The user's password (`password` mode only).
    #[serde(default)]
    pub password: Option<String>,
    /// Language id: 2052 zh-CN, 1033 en-US, 3076 zh-TW.
    #[serde(default = "default_lcid")]
    pub lcid: u32,
    /// Login mode.
    #[serde(default)]
    pub auth: AuthMode,
    /// Total time per request in milliseconds (the host caps it).
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

fn default_lcid() -> u32 {
    2052
}

impl Config {
    /// Parses and checks a config; every problem is reported at once.
    pub fn parse(value: &qiao_sdk::Value) -> Result<Config> {
        let config: Config = qiao_sdk::parse_config(value)?;
        let mut problems = Vec::new();
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            problems.push(format!(
                "config.base_url: must start with http:// or https://, got {:?}",
                config.base_url
            ));
        }
        if config.base_url.contains(['?', '#']) {
            problems.push("config.base_url: must not carry a query string or fragment".to_string());
        }
        for (name, v) in [("acct_id", &config.acct_id), ("user_name", &config.user_name)] {
            if v.trim().is_empty() {
                problems.push(format!("config.{name}: must not be empty"));
            }
        }
        let missing = |v: &Option<String>| v.as_deref().is_none_or(|s| s.is_empty());
        match config.auth {
            AuthMode::Sign | AuthMode::AppSecret => {
                if missing(&config.app_id) {
                    problems.push(format!("config.app_id: required when auth is {}", config.auth.name()));
                }
                if missing(&config.app_secret) {
                    problems.push(format!("config.app_secret: required when auth is {}", config.auth.name()));
                }
            }
            AuthMode::Password => {
                if missing(&config.password) {
                    problems.push("config.password: required when auth is password".to_string());
                }
            }
        }
        if problems.is_empty() { Ok(config) } else { Err(Error::config(problems.join("; "))) }
    }

    /// `POST` URL of `service` (`Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginBySign`).
    pub fn url(&self, service: &str) -> String {
        let base = self.base_url.trim_end_matches('/');
        let has_site = base.rsplit('/').next().is_some_and(|last| last.eq_ignore_ascii_case("k3cloud"));
        let site = if has_site { base.to_string() } else { format!("{base}/k3cloud") };
        format!("{site}/{service}.common.kdsvc")
    }

    /// A short fingerprint of who the session belongs to, so a cached session is not reused
    /// after the config changes.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!("{}\n{}\n{}\n{:?}", self.url(""), self.acct_id, self.user_name, self.app_id);
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

impl AuthMode {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Sign => "sign",
            AuthMode::AppSecret => "app-secret",
            AuthMode::Password => "password",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    #[test]
    fn urls_get_the_site_segment_once() {
        let c = Config::parse(&json!({"base_url": "http://h:8080", "acct_id": "a", "user_name": "u",
                                      "app_id": "1_x", "app_secret": "s"}))
        .unwrap();
        assert_eq!(c.url("S.Save"), "http://h:8080/k3cloud/S.Save.common.kdsvc");
        let c = Config { base_url: "https://h/K3Cloud/".into(), ..c };
        assert_eq!(c.url("S.Save"), "https://h/K3Cloud/S.Save.common.kdsvc");
        assert_eq!(c.lcid, 2052);
        assert_eq!(c.auth, AuthMode::Sign);
    }

    #[test]
    fn every_problem_is_reported() {
        let e =
            Config::parse(&json!({"base_url": "ftp://h", "acct_id": "", "user_name": "u", "auth": "sign"}))
                .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        let m = e.message();
        assert!(
            m.contains("config.base_url")
                && m.contains("config.acct_id")
                && m.contains("config.app_id")
                && m.contains("config.app_secret"),
            "{m}"
        );
        let e = Config::parse(
            &json!({"base_url": "http://h", "acct_id": "a", "user_name": "u", "auth": "password"}),
        )
        .unwrap_err();
        assert_eq!(e.message(), "config.password: required when auth is password");
        let e = Config::parse(
            &json!({"base_url": "http://h", "acct_id": "a", "user_name": "u", "auth": "oauth"}),
        )
        .unwrap_err();
        assert!(e.message().starts_with("config.auth"), "{e}");
    }
}
