//! Calls with the app's access token: fetched from the new token API, cached in `kv` with its
//! expiry, refreshed a little early, and refreshed once more when DingTalk refuses it.

use qiao_sdk::http::Request;
use qiao_sdk::{Error, Result, Value, clock, json, kv};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::errors::{Failure, classify};

/// Refresh this long before the token's own expiry (DingTalk tokens live 7200 s).
pub const REFRESH_EARLY_MS: u64 = 300_000;

/// The cached token.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct CachedToken {
    /// The access token.
    pub token: String,
    /// When DingTalk said it expires, host-clock ms.
    pub expires_at_ms: u64,
}

/// The `kv` key of the cached token (per app key, in case the connection's config changes).
pub fn token_key(config: &Config) -> String {
    format!("dingtalk:token:{}", config.app_key)
}

/// A live cached token, or a fresh one from `POST /v1.0/oauth2/accessToken`.
pub fn access_token(config: &Config) -> Result<String> {
    let key = token_key(config);
    if let Some(cached) = kv::get_json::<CachedToken>(&key)
        && clock::now_ms() + REFRESH_EARLY_MS < cached.expires_at_ms
    {
        return Ok(cached.token);
    }
    let what = "POST /v1.0/oauth2/accessToken";
    let resp = Request::post(format!("{}/v1.0/oauth2/accessToken", config.api()))
        .json(&json!({"appKey": config.app_key, "appSecret": config.app_secret}))
        .send()?;
    let body = classify(&resp, what).map_err(|f| match f {
        // A refused token on the token API itself means the credentials are wrong.
        Failure::Token(m) => Error::config(m),
        Failure::Other(e) => e,
    })?;
    let token = body["accessToken"]
        .as_str()
        .or_else(|| body["access_token"].as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::permanent(format!("{what} answered without accessToken")))?
        .to_string();
    let ttl = body["expireIn"].as_u64().or_else(|| body["expires_in"].as_u64()).unwrap_or(7200);
    let cached = CachedToken { token: token.clone(), expires_at_ms: clock::now_ms() + ttl * 1000 };
    kv::set_json(&key, &cached)?;
    qiao_sdk::debug!("fetched a DingTalk access token valid for {ttl} s");
    Ok(token)
}

/// Sends the request `build` makes with a token and classifies the answer. When DingTalk
/// refuses the token (expired, invalid, missing), the cached one is dropped, a new one is
/// fetched and the request is sent once more; a second refusal is `unauthorized`.
pub fn call(config: &Config, what: &str, build: impl Fn(&str) -> Request) -> Result<Value> {
    let token = access_token(config)?;
    match classify(&build(&token).send()?, what) {
        Ok(v) => Ok(v),
        Err(Failure::Other(e)) => Err(e),
        Err(Failure::Token(message)) => {
            qiao_sdk::debug!("DingTalk refused the cached token ({message}); refreshing it");
            kv::delete(&token_key(config));
            let token = access_token(config)?;
            match classify(&build(&token).send()?, what) {
                Ok(v) => Ok(v),
                Err(Failure::Other(e)) => Err(e),
                Err(Failure::Token(message)) => Err(Error::unauthorized(message)),
            }
        }
    }
}

/// A call to the old API (`oapi_url`): `POST path?access_token=` with a JSON body.
pub fn oapi_post(config: &Config, path: &str, body: &Value) -> Result<Value> {
    let url = format!("{}{path}", config.oapi());
    call(config, &format!("POST {path}"), |token| Request::post(&url).query("access_token", token).json(body))
}

/// A call to the new API (`api_url`) with the token in `x-acs-dingtalk-access-token`.
pub fn api_call(
    config: &Config,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Value> {
    let url = format!("{}{path}", config.api());
    call(config, &format!("{method} {path}"), |token| {
        let mut req = Request::new(method, &url)
            .query_pairs(query.iter().copied())
            .header("x-acs-dingtalk-access-token", token);
        if let Some(body) = body {
            req = req.json(body);
        }
        req
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::ErrorClass;
    use qiao_sdk::http::Response;
    use qiao_sdk::testing::MockHost;

    fn config() -> Config {
        Config::load(&json!({"app_key": "dingk", "app_secret": "s3cret", "base_url": "https://dt.test"}))
            .unwrap()
    }

    #[test]
    fn token_is_cached_until_shortly_before_expiry() {
        let mut n = 0;
        let host = MockHost::new()
            .http(move |req| {
                assert_eq!(req.url_without_query(), "https://dt.test/v1.0/oauth2/accessToken");
                assert_eq!(req.body_json().unwrap(), json!({"appKey": "dingk", "appSecret": "s3cret"}));
                n += 1;
                Ok(Response::new(200).with_json(&json!({"accessToken": format!("t{n}"), "expireIn": 7200})))
            })
            .install();
        let c = config();
        assert_eq!(access_token(&c).unwrap(), "t1");
        host.advance_ms(7_200_000 - REFRESH_EARLY_MS - 1);
        assert_eq!(access_token(&c).unwrap(), "t1");
        host.advance_ms(1);
        assert_eq!(access_token(&c).unwrap(), "t2");
        assert_eq!(host.requests().len(), 2);
    }

    #[test]
    fn a_refused_token_is_refreshed_once() {
        let host = MockHost::new()
            .kv_json("dingtalk:token:dingk", &CachedToken { token: "old".into(), expires_at_ms: u64::MAX })
            .http(|req| {
                if req.url_without_query().ends_with("/accessToken") {
                    return Ok(Response::new(200).with_json(&json!({"accessToken": "new", "expireIn": 7200})));
                }
                Ok(match req.query_param("access_token").as_deref() {
                    Some("new") => Response::new(200).with_json(&json!({"errcode": 0, "hasMore": false})),
                    _ => {
                        Response::new(200).with_json(&json!({"errcode": 42001, "errmsg": "access_token超时"}))
                    }
                })
            })
            .install();
        let out = oapi_post(&config(), "/attendance/list", &json!({})).unwrap();
        assert_eq!(out["hasMore"], false);
        let urls: Vec<String> = host.requests().iter().map(|r| r.url_without_query().to_string()).collect();
        assert_eq!(
            urls,
            [
                "https://dt.test/attendance/list",
                "https://dt.test/v1.0/oauth2/accessToken",
                "https://dt.test/attendance/list"
            ]
        );
        assert_eq!(host.kv_get_json::<CachedToken>("dingtalk:token:dingk").unwrap().token, "new");
    }

    #[test]
    fn a_token_refused_twice_is_unauthorized_and_bad_credentials_are_config() {
        let _host = MockHost::new()
            .http(|req| {
                if req.url_without_query().ends_with("/accessToken") {
                    return Ok(Response::new(200).with_json(&json!({"accessToken": "t", "expireIn": 7200})));
                }
                Ok(Response::new(400)
                    .with_json(&json!({"code": "InvalidAuthentication", "message": "不合法的access_token"})))
            })
            .install();
        let e = api_call(
            &config(),
            "GET",
            "/v1.0/workflow/processInstances",
            &[("processInstanceId", "x")],
            None,
        )
        .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
        drop(_host);
        let _host = MockHost::new()
            .http(|_| {
                Ok(Response::new(400).with_json(
                    &json!({"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"}),
                ))
            })
            .install();
        let e = access_token(&config()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config, "{e}");
        assert!(!e.message().contains("s3cret"), "secrets never reach messages: {e}");
    }
}
