//! The connection config: where the system is, how to log on, client and language, and the
//! default OData version.

use qiao_sdk::{Error, Result, Value};
use serde::Deserialize;

/// OAuth 2.0 client credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Token endpoint; default `{base_url}/sap/bc/sec/oauth2/token`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Requested scope.
    #[serde(default)]
    pub scope: Option<String>,
}

/// The connection config (see `schemas/config.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://host[:port]`, no path.
    pub base_url: String,
    /// Basic authentication user.
    #[serde(default)]
    pub user: Option<String>,
    /// Basic authentication password.
    #[serde(default)]
    pub password: Option<String>,
    /// OAuth client credentials (instead of Basic).
    #[serde(default)]
    pub oauth: Option<OAuth>,
    /// `sap-client`.
    #[serde(default)]
    pub client: Option<String>,
    /// `sap-language`.
    #[serde(default)]
    pub language: Option<String>,
    /// Default OData version (2 or 4).
    #[serde(default = "default_version")]
    pub odata_version: u8,
    /// Per-request timeout.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

fn default_version() -> u8 {
    2
}

/// The OData version of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SAP Gateway, `/sap/opu/odata/sap/`.
    V2,
    /// RAP, `/sap/opu/odata4/sap/`.
    V4,
}

fn version_of(n: u8, path: &str) -> Result<Version> {
    match n {
        2 => Ok(Version::V2),
        4 => Ok(Version::V4),
        other => Err(Error::config(format!("{path}: OData version must be 2 or 4, got {other}"))),
    }
}

impl Config {
    /// Parses and checks a config, reporting every problem at once.
    pub fn load(value: &Value) -> Result<Config> {
        let config: Config = qiao_sdk::parse_config(value)?;
        let mut problems = Vec::new();
        let url = config.base_url.trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            problems.push(format!(
                "config.base_url: must start with http:// or https://, got {:?}",
                config.base_url
            ));
        } else if url.splitn(4, '/').nth(3).is_some() || url.contains(['?', '#']) {
            problems.push(format!(
                "config.base_url: must be scheme, host and port only (no path), got {:?}",
                config.base_url
            ));
        }
        match (&config.user, &config.password, &config.oauth) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            (_, _, Some(_)) => {
                problems.push("config: give either user and password or oauth, not both".into())
            }
            _ => problems.push("config: user and password (or oauth) are required".into()),
        }
        if let Some(c) = &config.client
            && !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
        {
            problems.push(format!("config.client: must be three digits, got {c:?}"));
        }
        if let Err(e) = version_of(config.odata_version, "config.odata_version") {
            problems.push(e.message().to_string());
        }
        if config.timeout_ms == Some(0) {
            problems.push("config.timeout_ms: must be at least 1".into());
        }
        if problems.is_empty() { Ok(config) } else { Err(Error::config(problems.join("; "))) }
    }

    /// `base_url` without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// The version an operation uses: its own `version`, else the config's.
    pub fn version(&self, requested: Option<u8>) -> Result<Version> {
        match requested {
            Some(n) => version_of(n, "version"),
            None => version_of(self.odata_version, "config.odata_version"),
        }
    }

    /// The service root URL (no trailing slash): v2 `{base}/sap/opu/odata/sap/{service}`,
    /// v4 `{base}/sap/opu/odata4/sap/{service}`, or `{base}{service}` for a path starting
    /// with `/`.
    pub fn service_root(&self, service: &str, version: Version) -> String {
        let service = service.trim_end_matches('/');
        if service.starts_with('/') {
            return format!("{}{service}", self.base());
        }
        let prefix = match version {
            Version::V2 => "/sap/opu/odata/sap/",
            Version::V4 => "/sap/opu/odata4/sap/",
        };
        format!("{}{prefix}{service}", self.base())
    }

    /// The OAuth token endpoint.
    pub fn token_url(&self) -> Option<String> {
        let o = self.oauth.as_ref()?;
        Some(o.token_url.clone().unwrap_or_else(|| format!("{}/sap/bc/sec/oauth2/token", self.base())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    #[test]
    fn checks_everything_at_once() {
        let e = Config::load(&json!({"base_url": "ftp://x/y", "client": "1000", "odata_version": 3}))
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        let m = e.message();
        assert!(
            m.contains("config.base_url") && m.contains("user and password") && m.contains("config.client"),
            "{m}"
        );
        assert!(m.contains("config.odata_version"), "{m}");
        let e = Config::load(&json!({"base_url": "https://h/sap/opu", "user": "u", "password": "p"}))
            .unwrap_err();
        assert!(e.message().contains("no path"), "{e}");
        assert!(
            Config::load(&json!({"base_url": "https://h", "user": "u", "password": "p", "extra": 1}))
                .is_err()
        );
    }

    #[test]
    fn builds_service_roots_per_version() {
        let c = Config::load(
            &json!({"base_url": "https://my1-api.s4hana.cloud.sap/", "user": "u", "password": "p"}),
        )
        .unwrap();
        assert_eq!(
            c.service_root("API_ENTERPRISE_PROJECT_SRV;v=0002", Version::V2),
            "https://my1-api.s4hana.cloud.sap/sap/opu/odata/sap/API_ENTERPRISE_PROJECT_SRV;v=0002"
        );
        assert_eq!(
            c.service_root("api_x/srvd_a2x/sap/x/0001/", Version::V4),
            "https://my1-api.s4hana.cloud.sap/sap/opu/odata4/sap/api_x/srvd_a2x/sap/x/0001"
        );
        assert_eq!(c.service_root("/custom/srv", Version::V2), "https://my1-api.s4hana.cloud.sap/custom/srv");
        assert_eq!(c.version(None).unwrap(), Version::V2);
        assert_eq!(c.version(Some(4)).unwrap(), Version::V4);
        assert_eq!(c.version(Some(3)).unwrap_err().class(), ErrorClass::Config);
        assert_eq!(c.token_url(), None);
    }
}
