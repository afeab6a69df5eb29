//! Talking to one service: authentication (Basic, or an OAuth client-credentials token cached
//! in `kv`), `sap-client` / `sap-language` on every request, JSON negotiation, and the CSRF
//! handshake for writes (token and session cookies cached in `kv`; a `403 x-csrf-token:
//! Required` refetches them and retries once).

use qiao_sdk::http::{Request, Response};
use qiao_sdk::{Error, Result, Value, clock, kv};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Version};
use crate::errors::{check, is_csrf_refusal};

/// `kv` key of the CSRF token and its session cookies.
pub const CSRF_KEY: &str = "csrf";
/// `kv` key of the OAuth access token.
pub const OAUTH_KEY: &str = "oauth";
/// A cached OAuth token is dropped this long before it expires.
const TOKEN_MARGIN_MS: u64 = 60_000;

/// A CSRF token with the cookies of the session it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Csrf {
    /// The `x-csrf-token` value.
    pub token: String,
    /// `name=value; name2=value2`.
    pub cookie: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OAuthToken {
    token: String,
    expires_ms: u64,
}

/// One service of one connection.
pub struct Service<'a> {
    /// The connection config.
    pub config: &'a Config,
    /// The OData version.
    pub version: Version,
    /// The service root URL, no trailing slash.
    pub root: String,
}

impl<'a> Service<'a> {
    /// The service `service` (see [`Config::service_root`]) in `version`.
    pub fn new(config: &'a Config, service: &str, version: Version) -> Self {
        Service { config, version, root: config.service_root(service, version) }
    }

    /// Whether this is v4.
    pub fn v4(&self) -> bool {
        self.version == Version::V4
    }

    /// `{root}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.root, path.trim_start_matches('/'))
    }

    /// Resolves a next link: absolute as is, `/path` against the host, otherwise relative to
    /// the service root.
    pub fn resolve(&self, link: &str) -> String {
        if link.starts_with("http://") || link.starts_with("https://") {
            link.to_string()
        } else if link.starts_with('/') {
            format!("{}{link}", self.config.base())
        } else {
            self.url(link)
        }
    }

    /// `sap-client` and `sap-language`, unless the URL has them already.
    fn with_system_params(&self, mut req: Request) -> Request {
        let has = |req: &Request, k: &str| req.query_params().iter().any(|(n, _)| n == k);
        if let Some(c) = &self.config.client
            && !has(&req, "sap-client")
        {
            req = req.query("sap-client", c);
        }
        if let Some(l) = &self.config.language
            && !has(&req, "sap-language")
        {
            req = req.query("sap-language", l);
        }
        if let Some(t) = self.config.timeout_ms {
            req = req.timeout_ms(t);
        }
        req.header("accept", "application/json")
    }

    fn authorize(&self, req: Request, fresh: bool) -> Result<Request> {
        if let (Some(user), Some(password)) = (&self.config.user, &self.config.password) {
            return Ok(req.basic(user, password));
        }
        Ok(req.bearer(self.oauth_token(fresh)?))
    }

    fn oauth_token(&self, fresh: bool) -> Result<String> {
        let (Some(oauth), Some(url)) = (&self.config.oauth, self.config.token_url()) else {
            return Err(Error::config("config: user and password (or oauth) are required"));
        };
        if !fresh
            && let Some(t) = kv::get_json::<OAuthToken>(OAUTH_KEY)
            && t.expires_ms > clock::now_ms()
        {
            return Ok(t.token);
        }
        let mut form = String::from("grant_type=client_credentials");
        if let Some(scope) = &oauth.scope {
            form.push_str(&format!("&scope={}", qiao_sdk::encode::url_component(scope)));
        }
        let resp = Request::post(url)
            .basic(&oauth.client_id, &oauth.client_secret)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()?;
        if resp.status == 400 || resp.status == 401 {
            return Err(Error::unauthorized(format!(
                "{} refused the client credentials ({}): {}",
                resp.request_line(),
                resp.status,
                resp.text().chars().take(200).collect::<String>()
            )));
        }
        let body: Value = check(resp)?.json()?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| Error::permanent("the token answer has no access_token"))?;
        let expires_in = body["expires_in"].as_u64().unwrap_or(3600);
        let cached = OAuthToken {
            token: token.to_string(),
            expires_ms: (clock::now_ms() + expires_in * 1000).saturating_sub(TOKEN_MARGIN_MS),
        };
        kv::set_json(OAUTH_KEY, &cached)?;
        Ok(cached.token)
    }

    /// Sends `req` with authentication; with OAuth, a 401 gets a fresh token and one retry.
    /// Any status is returned.
    pub fn send(&self, req: Request) -> Result<Response> {
        let req = self.with_system_params(req);
        let resp = self.authorize(req.clone(), false)?.send()?;
        if resp.status == 401 && self.config.oauth.is_some() {
            qiao_sdk::debug!("access token refused; fetching a new one");
            kv::delete(OAUTH_KEY);
            return self.authorize(req, true)?.send();
        }
        Ok(resp)
    }

    /// Fetches a CSRF token with a fresh session and caches it.
    pub fn fetch_csrf(&self) -> Result<Csrf> {
        let resp = check(self.send(Request::get(self.url("")).header("x-csrf-token", "Fetch"))?)?;
        let token = resp
            .header("x-csrf-token")
            .filter(|t| !t.eq_ignore_ascii_case("required") && !t.is_empty())
            .ok_or_else(|| Error::permanent(format!("{} issued no CSRF token", resp.request_line())))?
            .to_string();
        let cookie = resp
            .header_all("set-cookie")
            .filter_map(|c| c.split(';').next().map(str::trim))
            .filter(|c| c.contains('='))
            .collect::<Vec<_>>()
            .join("; ");
        let csrf = Csrf { token, cookie };
        kv::set_json(CSRF_KEY, &csrf)?;
        Ok(csrf)
    }

    fn csrf(&self) -> Result<Csrf> {
        match kv::get_json::<Csrf>(CSRF_KEY) {
            Some(c) => Ok(c),
            None => self.fetch_csrf(),
        }
    }

    /// Sends a modifying request with the CSRF token and session cookies. A CSRF refusal
    /// refetches them and retries once; a second refusal is `unauthorized`. Any other status
    /// is returned.
    pub fn write(&self, req: Request) -> Result<Response> {
        let with = |c: &Csrf| {
            let r = req.clone().header("x-csrf-token", &c.token);
            if c.cookie.is_empty() { r } else { r.header("cookie", &c.cookie) }
        };
        let resp = self.send(with(&self.csrf()?))?;
        if !is_csrf_refusal(resp.status, &resp.headers) {
            return Ok(resp);
        }
        qiao_sdk::debug!("CSRF token refused; fetching a new one");
        let resp = self.send(with(&self.fetch_csrf()?))?;
        if is_csrf_refusal(resp.status, &resp.headers) {
            kv::delete(CSRF_KEY);
            return Err(crate::errors::classify(resp.status, &resp.headers, &resp.body, resp.request_line()));
        }
        Ok(resp)
    }
}
