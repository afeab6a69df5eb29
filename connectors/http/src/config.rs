//! The connection config: base URL, fixed headers, authentication, timeout and the
//! idempotency header.

use std::collections::BTreeMap;

use qiao_sdk::{Error, Result, Value, parse_config};
use serde::Deserialize;

use crate::headers::{HeaderSet, check_header_name, check_header_value};
use crate::urls;

/// The default name of the header that carries the engine's idempotency key.
pub const DEFAULT_IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// A parsed and checked connection config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub auth: Option<Auth>,
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    #[serde(default)]
    pub idempotency_header: Option<String>,
}

/// How requests authenticate. No `Debug`: it holds secrets.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum Auth {
    Bearer { token: String },
    Basic { username: String, password: String },
    Header { name: String, value: String },
}

impl Config {
    /// Parses and checks a config; every problem found is listed in one `config` error.
    pub fn load(config: &Value) -> Result<Config> {
        let parsed: Config = parse_config(config)?;
        let problems = parsed.problems();
        if problems.is_empty() { Ok(parsed) } else { Err(Error::config(problems.join("; "))) }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(base) = &self.base_url
            && let Err(e) = urls::check_base_url(base)
        {
            problems.push(format!("config.base_url: {e}"));
        }
        for (name, value) in &self.headers {
            if let Err(e) = check_header_name(name).and_then(|()| check_header_value(value)) {
                problems.push(format!("config.headers.{name}: {e}"));
            }
        }
        match &self.auth {
            Some(Auth::Bearer { token }) if token.is_empty() => {
                problems.push("config.auth.token: must not be empty".into());
            }
            Some(Auth::Bearer { token }) if check_header_value(token).is_err() => {
                problems.push("config.auth.token: must not contain control characters".into());
            }
            Some(Auth::Basic { username, .. }) if username.is_empty() => {
                problems.push("config.auth.username: must not be empty".into());
            }
            Some(Auth::Header { name, value }) => {
                if let Err(e) = check_header_name(name) {
                    problems.push(format!("config.auth.name: {e}"));
                }
                if check_header_value(value).is_err() {
                    problems.push("config.auth.value: must not contain control characters".into());
                }
            }
            _ => {}
        }
        if self.timeout_ms == Some(0) {
            problems.push("config.timeout_ms: must be at least 1".into());
        }
        if let Some(name) = self.idempotency_header.as_deref().filter(|n| !n.is_empty())
            && let Err(e) = check_header_name(name)
        {
            problems.push(format!("config.idempotency_header: {e}"));
        }
        problems
    }

    /// The header carrying the idempotency key; `None` when disabled with `""`.
    pub fn idempotency_header(&self) -> Option<&str> {
        match self.idempotency_header.as_deref() {
            None => Some(DEFAULT_IDEMPOTENCY_HEADER),
            Some("") => None,
            Some(name) => Some(name),
        }
    }

    /// The request URL for `url`: absolute `http(s)://` URLs as they are, anything else
    /// appended to `base_url`. The error says why, for the caller to classify.
    pub fn resolve_url(&self, url: &str) -> std::result::Result<String, String> {
        if urls::is_absolute_http(url) {
            return Ok(url.to_owned());
        }
        if urls::has_scheme(url) {
            return Err(format!("url {url:?} is not an http:// or https:// URL"));
        }
        match &self.base_url {
            Some(base) => Ok(urls::join(base, url)),
            None => Err(format!("url {url:?} is relative and the connection has no base_url")),
        }
    }

    /// The config's fixed headers followed by the authentication header.
    pub fn headers(&self) -> HeaderSet {
        let mut headers = HeaderSet::default();
        for (name, value) in &self.headers {
            headers.set(name, value);
        }
        match &self.auth {
            Some(Auth::Bearer { token }) => headers.set("authorization", &format!("Bearer {token}")),
            Some(Auth::Basic { username, password }) => {
                let credentials = qiao_sdk::encode::base64(format!("{username}:{password}").as_bytes());
                headers.set("authorization", &format!("Basic {credentials}"));
            }
            Some(Auth::Header { name, value }) => headers.set(name, value),
            None => {}
        }
        headers
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    fn load(v: Value) -> Result<Config> {
        Config::load(&v)
    }

    #[test]
    fn accepts_a_full_config() {
        let c = load(json!({
            "base_url": "https://api.example.com/v2/",
            "headers": {"X-Tenant": "acme"},
            "auth": {"type": "basic", "username": "u", "password": "p"},
            "timeout_ms": 5000,
            "idempotency_header": "X-Request-Id"
        }))
        .unwrap();
        assert_eq!(c.idempotency_header(), Some("X-Request-Id"));
        let headers = c.headers().into_vec();
        assert_eq!(
            headers,
            [("X-Tenant".to_string(), "acme".to_string()), ("authorization".into(), "Basic dTpw".into())]
        );
        assert!(load(json!({})).is_ok());
        assert_eq!(load(json!({})).unwrap().idempotency_header(), Some("Idempotency-Key"));
        assert_eq!(load(json!({"idempotency_header": ""})).unwrap().idempotency_header(), None);
    }

    #[test]
    fn reports_every_problem() {
        let e = load(json!({
            "base_url": "ftp://files.example.com",
            "headers": {"Bad Name": "x"},
            "auth": {"type": "header", "name": "X-Key", "value": "a\nb"},
            "timeout_ms": 0
        }))
        .err()
        .unwrap();
        assert_eq!(e.class(), ErrorClass::Config);
        assert_eq!(
            e.message(),
            "config.base_url: must start with http:// or https://, got \"ftp://files.example.com\"; \
             config.headers.Bad Name: \"Bad Name\" is not a valid header name; \
             config.auth.value: must not contain control characters; config.timeout_ms: must be at least 1"
        );
    }

    #[test]
    fn auth_shape_is_checked() {
        let e = load(json!({"auth": {"type": "bearer"}})).err().unwrap();
        assert_eq!(e.message(), "config.auth: missing field `token`");
        let e = load(json!({"auth": {"type": "oauth"}})).err().unwrap();
        assert!(e.message().contains("unknown variant `oauth`"), "{e}");
        let e = load(json!({"auth": {"type": "bearer", "token": "t", "extra": 1}})).err().unwrap();
        assert!(e.message().contains("unknown field `extra`"), "{e}");
        let e = load(json!({"base_url": "https://x", "colour": "red"})).err().unwrap();
        assert!(e.message().contains("unknown field `colour`"), "{e}");
        let e = load(json!({"auth": {"type": "bearer", "token": ""}})).err().unwrap();
        assert_eq!(e.message(), "config.auth.token: must not be empty");
    }

    #[test]
    fn resolves_urls() {
        let c = load(json!({"base_url": "https://api.example.com/v2"})).unwrap();
        assert_eq!(c.resolve_url("items").unwrap(), "https://api.example.com/v2/items");
        assert_eq!(c.resolve_url("/items?a=1").unwrap(), "https://api.example.com/v2/items?a=1");
        assert_eq!(c.resolve_url("HTTPS://other.example.com/x").unwrap(), "HTTPS://other.example.com/x");
        assert!(c.resolve_url("ftp://x/y").unwrap_err().contains("not an http"));
        let c = load(json!({})).unwrap();
        assert_eq!(
            c.resolve_url("/items").unwrap_err(),
            "url \"/items\" is relative and the connection has no base_url"
        );
    }
}
