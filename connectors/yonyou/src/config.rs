//! The connection config: gateway and token hosts, the self-built app's key and secret.

use qiao_sdk::{Error, Result, Value};
use serde::Deserialize;

/// The token path documented since 2023-07.
pub const DEFAULT_TOKEN_PATH: &str = "/open-auth/selfAppAuth/base/v1/getAccessToken";
/// The field that carries the derived idempotency key in saved documents.
pub const DEFAULT_IDEMPOTENCY_FIELD: &str = "resubmitCheckKey";

/// A checked config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The gateway, without a trailing `/`.
    pub base_url: String,
    /// The token host; `base_url` when absent.
    #[serde(default)]
    pub token_url: Option<String>,
    /// appKey.
    pub app_key: String,
    /// appSecret.
    pub app_secret: String,
    /// Token API path.
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// Field for the derived idempotency key (`""`: none).
    #[serde(default = "default_idempotency_field")]
    pub idempotency_field: String,
}

fn default_token_path() -> String {
    DEFAULT_TOKEN_PATH.into()
}

fn default_idempotency_field() -> String {
    DEFAULT_IDEMPOTENCY_FIELD.into()
}

fn check_url(name: &str, url: &str, problems: &mut Vec<String>) {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        problems.push(format!("config.{name}: must start with http:// or https://, got {url:?}"));
    } else if url.contains(['?', '#']) {
        problems.push(format!("config.{name}: must not carry a query or fragment, got {url:?}"));
    }
}

impl Config {
    /// Parses and checks `config`, reporting every problem at once.
    pub fn load(config: &Value) -> Result<Config> {
        let mut c: Config = qiao_sdk::parse_config(config)?;
        let mut problems = Vec::new();
        check_url("base_url", &c.base_url, &mut problems);
        if let Some(t) = &c.token_url {
            check_url("token_url", t, &mut problems);
        }
        if c.app_key.trim().is_empty() {
            problems.push("config.app_key: must not be empty".into());
        }
        if c.app_secret.is_empty() {
            problems.push("config.app_secret: must not be empty".into());
        }
        if !c.token_path.starts_with('/') {
            problems.push(format!("config.token_path: must start with /, got {:?}", c.token_path));
        }
        if !problems.is_empty() {
            return Err(Error::config(problems.join("; ")));
        }
        c.base_url = c.base_url.trim_end_matches('/').to_string();
        c.token_url = c.token_url.map(|t| t.trim_end_matches('/').to_string());
        Ok(c)
    }

    /// The token host.
    pub fn token_base(&self) -> &str {
        self.token_url.as_deref().unwrap_or(&self.base_url)
    }

    /// `base_url` + `path` with exactly one `/` between them.
    pub fn gateway_url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    #[test]
    fn loads_and_reports_every_problem() {
        let c = Config::load(&json!({"base_url": "https://c2.yonyoucloud.com/iuap-api-gateway/", "app_key": "k", "app_secret": "s"})).unwrap();
        assert_eq!(c.token_base(), "https://c2.yonyoucloud.com/iuap-api-gateway");
        assert_eq!(c.gateway_url("/yonbip/x"), "https://c2.yonyoucloud.com/iuap-api-gateway/yonbip/x");
        assert_eq!(c.token_path, DEFAULT_TOKEN_PATH);
        let e = Config::load(
            &json!({"base_url": "ftp://x", "token_url": "https://t?x=1", "app_key": " ", "app_secret": ""}),
        )
        .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        for part in ["config.base_url", "config.token_url", "config.app_key", "config.app_secret"] {
            assert!(e.message().contains(part), "{e}");
        }
        let e =
            Config::load(&json!({"base_url": "https://x", "app_key": "k", "app_secret": "s", "secret": 1}))
                .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
    }
}
