//! Calls to Yonyou: the cached access token and the gateway call with one transparent retry
//! after a refused token.

use qiao_sdk::http::Request;
use qiao_sdk::{Error, Result, Value, clock, kv};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::envelope::{Outcome, classify};
use crate::sign::sign;

/// kv key of the cached token.
pub const TOKEN_KEY: &str = "access_token";
/// Share of the token lifetime after which it is refreshed ahead of time.
const REFRESH_AT_PERCENT: u64 = 80;

/// A token as cached in kv.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedToken {
    /// The token.
    pub token: String,
    /// The app it belongs to (a changed config does not reuse it).
    pub app_key: String,
    /// The token host it came from.
    pub token_url: String,
    /// When to fetch a new one (ms since the epoch).
    pub refresh_at_ms: u64,
}

#[derive(Deserialize)]
struct TokenData {
    access_token: String,
    #[serde(default = "default_expire")]
    expire: u64,
}

fn default_expire() -> u64 {
    7200
}

/// Fetches a new token from the token API and caches it.
fn fetch_token(config: &Config) -> Result<String> {
    let now = clock::now_ms();
    let timestamp = now.to_string();
    let url = format!("{}{}", config.token_base(), config.token_path);
    let resp = Request::get(&url)
        .query("appKey", &config.app_key)
        .query("timestamp", &timestamp)
        .query("signature", sign(&config.app_key, &config.app_secret, &timestamp))
        .send()?;
    let what = format!("GET {url}");
    let Outcome::Ok(body) = classify(&resp, &what, true)? else {
        return Err(Error::config(format!("{what} refused the app")));
    };
    let data: TokenData = serde_json::from_value(body.get("data").cloned().unwrap_or(Value::Null))
        .map_err(|e| Error::permanent(format!("{what} answered without a token: {e}")))?;
    let cached = CachedToken {
        token: data.access_token.clone(),
        app_key: config.app_key.clone(),
        token_url: config.token_base().to_string(),
        refresh_at_ms: now + data.expire * 1000 * REFRESH_AT_PERCENT / 100,
    };
    kv::set_json(TOKEN_KEY, &cached)?;
    qiao_sdk::debug!("yonyou access token fetched, valid for {} s", data.expire);
    Ok(data.access_token)
}

/// The cached token while it is fresh, else a new one.
fn token(config: &Config) -> Result<String> {
    match kv::get_json::<CachedToken>(TOKEN_KEY) {
        Some(t)
            if t.app_key == config.app_key
                && t.token_url == config.token_base()
                && clock::now_ms() < t.refresh_at_ms =>
        {
            Ok(t.token)
        }
        _ => fetch_token(config),
    }
}

/// One gateway call: `method` `path` with `query` and an optional JSON `body`. Returns the
/// whole answer body. A refused token is refreshed and the call repeated once.
pub fn call(
    config: &Config,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: Option<&Value>,
) -> Result<Value> {
    let url = config.gateway_url(path);
    let what = format!("{method} {}", path);
    let send = |token: &str| -> Result<Outcome> {
        let mut req =
            Request::new(method, &url).query_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        req = req.query("access_token", token);
        if let Some(b) = body {
            req = req.json(b);
        }
        classify(&req.send()?, &what, false)
    };
    match send(&token(config)?)? {
        Outcome::Ok(v) => Ok(v),
        Outcome::TokenInvalid(first) => {
            qiao_sdk::debug!("{first}; refreshing the token");
            kv::delete(TOKEN_KEY);
            match send(&fetch_token(config)?)? {
                Outcome::Ok(v) => Ok(v),
                Outcome::TokenInvalid(again) => {
                    Err(Error::unauthorized(format!("{again} (with a fresh token)")))
                }
            }
        }
    }
}
