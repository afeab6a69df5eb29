//! The connection config: app credentials, the optional robot and callback secrets, and the
//! two API hosts.

use qiao_sdk::{Error, Result, Value};
use serde::Deserialize;

/// The old API's host.
pub const DEFAULT_OAPI_URL: &str = "https://oapi.dingtalk.com";
/// The new API's host.
pub const DEFAULT_API_URL: &str = "https://api.dingtalk.com";

/// A number written as a JSON number or as a string of digits (agent ids are often quoted).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum NumberOrText {
    /// `2876543210`.
    Number(i64),
    /// `"2876543210"`.
    Text(String),
}

impl NumberOrText {
    /// The number, if it is one.
    pub fn value(&self) -> Option<i64> {
        match self {
            NumberOrText::Number(n) => Some(*n),
            NumberOrText::Text(s) => s.trim().parse().ok(),
        }
    }
}

/// The connection config as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// AppKey (Client ID) of the internal app.
    pub app_key: String,
    /// AppSecret (Client Secret). Secret.
    pub app_secret: String,
    /// AgentId of the app, for work notifications.
    #[serde(default)]
    pub agent_id: Option<NumberOrText>,
    /// Access token of a custom group robot. Secret.
    #[serde(default)]
    pub robot_access_token: Option<String>,
    /// Signing secret ("加签", starts with `SEC`) of that robot. Secret.
    #[serde(default)]
    pub robot_secret: Option<String>,
    /// Callback token (event subscription). Secret.
    #[serde(default)]
    pub token: Option<String>,
    /// Callback EncodingAESKey (43 characters). Secret.
    #[serde(default)]
    pub aes_key: Option<String>,
    /// The receiver id sealed into callbacks: the app key (new console), corpId (legacy
    /// registration) or suiteKey (ISV apps). Defaults to `app_key`.
    #[serde(default)]
    pub owner_key: Option<String>,
    /// Sets both hosts at once (a sandbox serving both generations on one port).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The old API's host; default `https://oapi.dingtalk.com`.
    #[serde(default)]
    pub oapi_url: Option<String>,
    /// The new API's host; default `https://api.dingtalk.com`.
    #[serde(default)]
    pub api_url: Option<String>,
}

impl Config {
    /// Parses and checks a config, reporting every problem at once.
    pub fn load(value: &Value) -> Result<Config> {
        let config: Config = qiao_sdk::parse_config(value)?;
        let mut problems = Vec::new();
        if config.app_key.trim().is_empty() {
            problems.push("config.app_key: must not be empty".to_string());
        }
        if config.app_secret.is_empty() {
            problems.push("config.app_secret: must not be empty".to_string());
        }
        for (name, url) in
            [("base_url", &config.base_url), ("oapi_url", &config.oapi_url), ("api_url", &config.api_url)]
        {
            if let Some(url) = url {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("https://") || lower.starts_with("http://"))
                    || url.contains(['?', '#'])
                {
                    problems
                        .push(format!("config.{name}: must be an http(s) URL without query, got {url:?}"));
                }
            }
        }
        if let Some(agent) = &config.agent_id
            && agent.value().is_none()
        {
            problems.push(format!("config.agent_id: must be a number, got {agent:?}"));
        }
        if config.robot_secret.is_some() && config.robot_access_token.is_none() {
            problems.push("config.robot_secret: needs robot_access_token".to_string());
        }
        if let Some(key) = &config.aes_key
            && key.len() != 43
        {
            problems.push(format!("config.aes_key: must be 43 characters, got {}", key.len()));
        }
        if config.token.is_some() != config.aes_key.is_some() {
            problems.push("config.token and config.aes_key: set both or neither".to_string());
        }
        if problems.is_empty() { Ok(config) } else { Err(Error::config(problems.join("; "))) }
    }

    /// The old API's base URL, without a trailing `/`.
    pub fn oapi(&self) -> &str {
        self.oapi_url
            .as_deref()
            .or(self.base_url.as_deref())
            .unwrap_or(DEFAULT_OAPI_URL)
            .trim_end_matches('/')
    }

    /// The new API's base URL, without a trailing `/`.
    pub fn api(&self) -> &str {
        self.api_url.as_deref().or(self.base_url.as_deref()).unwrap_or(DEFAULT_API_URL).trim_end_matches('/')
    }

    /// The agent id, or a config error naming what needs it.
    pub fn agent(&self, what: &str) -> Result<i64> {
        self.agent_id
            .as_ref()
            .and_then(NumberOrText::value)
            .ok_or_else(|| Error::config(format!("config.agent_id: required for {what}")))
    }

    /// The callback receiver id.
    pub fn owner(&self) -> &str {
        self.owner_key.as_deref().unwrap_or(&self.app_key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    #[test]
    fn hosts_default_to_the_real_ones_and_base_url_sets_both() {
        let c = Config::load(&json!({"app_key": "k", "app_secret": "s"})).unwrap();
        assert_eq!((c.oapi(), c.api()), (DEFAULT_OAPI_URL, DEFAULT_API_URL));
        let c = Config::load(&json!({"app_key": "k", "app_secret": "s", "base_url": "http://127.0.0.1:9/",
                                     "api_url": "http://127.0.0.1:8"}))
        .unwrap();
        assert_eq!((c.oapi(), c.api()), ("http://127.0.0.1:9", "http://127.0.0.1:8"));
        assert_eq!(c.owner(), "k");
    }

    #[test]
    fn every_problem_is_reported() {
        let e =
            Config::load(&json!({"app_key": "", "app_secret": "s", "oapi_url": "ftp://x", "agent_id": "abc",
                                     "aes_key": "short"}))
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        for part in ["config.app_key", "config.oapi_url", "config.agent_id", "config.aes_key", "set both"] {
            assert!(e.message().contains(part), "{part}: {e}");
        }
        let e = Config::load(&json!({"app_key": "k", "app_secret": "s", "secret": "x"})).unwrap_err();
        assert!(e.message().contains("unknown field `secret`"), "{e}");
        let c = Config::load(&json!({"app_key": "k", "app_secret": "s", "agent_id": "2876543210"})).unwrap();
        assert_eq!(c.agent("x").unwrap(), 2_876_543_210);
    }
}
