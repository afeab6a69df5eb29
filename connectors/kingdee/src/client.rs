//! Talking to K/3 Cloud: the session login (cached in `kv`), and one call with a transparent
//! re-login when the server says the session is lost.

use qiao_sdk::http::{Request, Response, status_class};
use qiao_sdk::{Error, Result, Value, clock, error_of_class, json, kv};
use serde::{Deserialize, Serialize};

use crate::config::{AuthMode, Config};
use crate::reply::status_of;
use crate::sign::login_sign;

/// The kv key of the cached session.
const SESSION_KEY: &str = "session";
const AUTH: &str = "Kingdee.BOS.WebApi.ServicesStub.AuthService.";
/// The prefix of every business service.
pub const FORM_SERVICE: &str = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.";

/// A logged-in session as cached in `kv`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// `KDSVCSessionId`.
    sid: String,
    /// Other cookies the login set (`ASP.NET_SessionId=...`), replayed as they came.
    cookies: Vec<String>,
    /// [`Config::fingerprint`] of the config that logged in.
    of: String,
}

impl Session {
    fn cookie_header(&self) -> String {
        let mut parts = vec![format!("kdservice-sessionid={}", self.sid)];
        parts.extend(self.cookies.iter().cloned());
        parts.join("; ")
    }
}

fn cached(config: &Config) -> Option<Session> {
    kv::get_json::<Session>(SESSION_KEY).filter(|s| s.of == config.fingerprint())
}

/// Calls `FORM_SERVICE + op` with `body`, logging in first when no session is cached and once
/// more when the server says the session is lost. Returns the parsed answer; system failures
/// (`MsgCode` 2, 4, 6, 7, 13, 14, 15) are errors, business failures are left to the caller.
pub fn call(config: &Config, op: &str, body: &Value) -> Result<Value> {
    let mut session = match cached(config) {
        Some(s) => s,
        None => login(config)?,
    };
    let mut relogged = false;
    loop {
        let reply = post(config, &format!("{FORM_SERVICE}{op}"), body, Some(&session))?;
        if let Some(status) = status_of(&reply) {
            if status.session_lost() {
                kv::delete(SESSION_KEY);
                if relogged {
                    return Err(Error::unauthorized(format!(
                        "{op}: the session was lost again right after logging in: {}",
                        status.messages()
                    )));
                }
                qiao_sdk::debug!("kingdee session lost during {op}; logging in again");
                session = login(config)?;
                relogged = true;
                continue;
            }
            if let Some(e) = status.system_error(op) {
                return Err(e);
            }
        }
        return Ok(reply);
    }
}

/// One POST; transport failures, HTTP errors, gateway pages and `response_error:` bodies become
/// classified errors.
fn post(config: &Config, service: &str, body: &Value, session: Option<&Session>) -> Result<Value> {
    let mut req = Request::post(config.url(service)).json(body);
    if let Some(s) = session {
        req = req.header("kdservice-sessionid", &s.sid).header("cookie", s.cookie_header());
    }
    if let Some(ms) = config.timeout_ms {
        req = req.timeout_ms(ms);
    }
    let resp = req.send()?;
    parse(resp, service)
}

fn parse(resp: Response, service: &str) -> Result<Value> {
    let op = service.rsplit('.').next().unwrap_or(service);
    if !(resp.status == 200 || resp.status == 206) {
        let text = resp.text();
        let snippet: String = text.trim().chars().take(200).collect();
        let class = status_class(resp.status).unwrap_or(qiao_sdk::ErrorClass::Transient);
        // 3xx from a K/3 gateway means a login page or a moved site: nothing to retry.
        let class = if (300..400).contains(&resp.status) { qiao_sdk::ErrorClass::Config } else { class };
        let retry = resp.retry_after_ms();
        return Err(error_of_class(
            class,
            format!("kingdee {op} returned HTTP {}: {snippet}", resp.status),
            retry,
        ));
    }
    let text = resp.text();
    if let Some(rest) = text.trim_start().strip_prefix("response_error:") {
        let message = serde_json::from_str::<Value>(rest)
            .ok()
            .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| rest.chars().take(200).collect());
        return Err(Error::transient(format!("kingdee {op} answered with a server exception: {message}")));
    }
    resp.json::<Value>()
}

/// Logs in per `config.auth`, caches the session and returns it.
pub fn login(config: &Config) -> Result<Session> {
    let app_id = config.app_id.clone().unwrap_or_default();
    let lcid = config.lcid;
    let (service, params) = match config.auth {
        AuthMode::Sign => {
            let ts = (clock::now_ms() / 1000).to_string();
            let secret = config.app_secret.as_deref().unwrap_or_default();
            let sign = login_sign(&config.acct_id, &config.user_name, &app_id, secret, &ts);
            ("LoginBySign", json!([config.acct_id, config.user_name, app_id, ts, sign, lcid]))
        }
        AuthMode::AppSecret => {
            let secret = config.app_secret.clone().unwrap_or_default();
            ("LoginByAppSecret", json!([config.acct_id, config.user_name, app_id, secret, lcid]))
        }
        AuthMode::Password => {
            let password = config.password.clone().unwrap_or_default();
            ("ValidateUser", json!([config.acct_id, config.user_name, password, lcid]))
        }
    };
    let url_service = format!("{AUTH}{service}");
    let mut req = Request::post(config.url(&url_service)).json(&json!({"parameters": params}));
    if let Some(ms) = config.timeout_ms {
        req = req.timeout_ms(ms);
    }
    let resp = req.send()?;
    let cookies: Vec<(String, String)> = resp
        .header_all("set-cookie")
        .filter_map(|c| c.split(';').next())
        .filter_map(|c| c.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let reply = parse(resp, &url_service)?;
    if let Some(status) = status_of(&reply)
        && let Some(e) = status.system_error(service)
    {
        return Err(e);
    }
    let result_type =
        reply.get("LoginResultType").and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
    let message = reply.get("Message").and_then(Value::as_str).unwrap_or("no message").to_string();
    let sid = reply
        .get("KDSVCSessionId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            cookies
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("kdservice-sessionid"))
                .map(|(_, v)| v.clone())
        });
    match (result_type, sid) {
        // 1 success; -2/-4 password-policy warnings; -5 "needs form handling" (seen for admins).
        (Some(1 | -2 | -4 | -5), Some(sid)) => {
            let session = Session {
                sid,
                cookies: cookies
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("kdservice-sessionid"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                of: config.fingerprint(),
            };
            kv::set_json(SESSION_KEY, &session)?;
            Ok(session)
        }
        (Some(-1), _) => {
            Err(Error::unauthorized(format!("kingdee {service} refused (LoginResultType -1): {message}")))
        }
        (Some(t), _) => Err(Error::config(format!(
            "kingdee {service} refused the credentials of user {:?} in data center {:?} (LoginResultType {t}): {message}",
            config.user_name, config.acct_id
        ))),
        (None, _) => Err(Error::permanent(format!("kingdee {service} answered without LoginResultType"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::ErrorClass;
    use qiao_sdk::http::Response;
    use qiao_sdk::testing::MockHost;
    use std::cell::Cell;
    use std::rc::Rc;

    pub fn config() -> Config {
        Config::parse(&json!({"base_url": "https://k3.test/k3cloud", "acct_id": "62f0a1b2c3d4e5", "user_name": "demo",
            "app_id": "123456_abcdEFGHijklMNOPqrstUVWXyz012345", "app_secret": "0123456789abcdef0123456789abcdef"}))
        .unwrap()
    }

    fn login_ok(sid: &str) -> Response {
        Response::new(200)
            .with_header("set-cookie", format!("kdservice-sessionid={sid}; path=/"))
            .with_header("set-cookie", "ASP.NET_SessionId=abc; path=/; HttpOnly")
            .with_json(&json!({"LoginResultType": 1, "KDSVCSessionId": sid, "Message": null}))
    }

    #[test]
    fn login_by_sign_sends_the_vector_signature_and_caches_cookies() {
        let host = MockHost::new().now_ms(1_700_000_000_000).http(|_| Ok(login_ok("S1"))).install();
        let s = login(&config()).unwrap();
        assert_eq!(s.sid, "S1");
        let sent = &host.requests()[0];
        assert_eq!(
            sent.url(),
            "https://k3.test/k3cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginBySign.common.kdsvc"
        );
        let params = sent.body_json().unwrap()["parameters"].clone();
        assert_eq!(params[3], "1700000000");
        assert_eq!(params[4], "e631348dc92aaf016e2f886a5bf884cf6b94c5aef2f62f8800fcf0321aa1576c");
        assert_eq!(params[5], 2052);
        let cached: Session = host.kv_get_json(SESSION_KEY).unwrap();
        assert_eq!(cached.cookie_header(), "kdservice-sessionid=S1; ASP.NET_SessionId=abc");
    }

    #[test]
    fn login_failures_are_classified() {
        let cases = [(0, ErrorClass::Config), (-1, ErrorClass::Unauthorized), (-7, ErrorClass::Config)];
        for (t, class) in cases {
            let _host = MockHost::new()
                .http(move |_| {
                    Ok(Response::new(200)
                        .with_json(&json!({"LoginResultType": t, "Message": "用户名或密码错误"})))
                })
                .install();
            let e = login(&config()).unwrap_err();
            assert_eq!(e.class(), class, "{t}: {e}");
            assert!(!e.message().contains("0123456789abcdef"), "no secret in messages: {e}");
        }
    }

    #[test]
    fn lost_session_logs_in_once_more_and_retries() {
        let logins = Rc::new(Cell::new(0));
        let seen = logins.clone();
        let host = MockHost::new()
            .kv_json(SESSION_KEY, &Session { sid: "OLD".into(), cookies: vec![], of: config().fingerprint() })
            .http(move |req| {
                if req.url().contains("AuthService") {
                    seen.set(seen.get() + 1);
                    return Ok(login_ok("NEW"));
                }
                if req.header_value("kdservice-sessionid") == Some("OLD") {
                    return Ok(Response::new(200).with_json(&json!([[{"Result": {"ResponseStatus": {"IsSuccess": false,
                        "MsgCode": 1, "Errors": [{"FieldName": null, "Message": "会话信息已丢失，请重新登录", "DIndex": 0}]}}}]])));
                }
                Ok(Response::new(200).with_json(&json!([[100001, "RGCB000001"]])))
            })
            .install();
        let rows = call(&config(), "ExecuteBillQuery", &json!({"data": {}})).unwrap();
        assert_eq!(rows, json!([[100001, "RGCB000001"]]));
        assert_eq!(logins.get(), 1);
        assert_eq!(host.requests().len(), 3);
    }

    #[test]
    fn a_session_lost_twice_is_unauthorized() {
        let _host = MockHost::new()
            .http(|req| {
                if req.url().contains("AuthService") {
                    return Ok(login_ok("S"));
                }
                Ok(Response::new(200).with_json(
                    &json!({"Result": {"ResponseStatus": {"IsSuccess": false, "MsgCode": 1, "Errors": []}}}),
                ))
            })
            .install();
        let e = call(&config(), "Save", &json!({})).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unauthorized);
    }

    #[test]
    fn transport_and_gateway_failures() {
        let cases: Vec<(Response, ErrorClass)> = vec![
            (Response::new(502).with_text("<html>502</html>"), ErrorClass::Transient),
            (Response::new(429).with_header("retry-after", "3"), ErrorClass::RateLimited),
            (
                Response::new(200).with_text("response_error:{\"Message\":\"对象引用未设置\"}"),
                ErrorClass::Transient,
            ),
            (Response::new(200).with_text("<html>maintenance</html>"), ErrorClass::Transient),
            (
                Response::new(200)
                    .with_json(&json!({"Result": {"ResponseStatus": {"IsSuccess": false, "MsgCode": 14,
                    "Errors": [{"Message": "接口调用次数超过限制"}]}}})),
                ErrorClass::RateLimited,
            ),
        ];
        for (resp, class) in cases {
            let _host = MockHost::new()
                .kv_json(
                    SESSION_KEY,
                    &Session { sid: "S".into(), cookies: vec![], of: config().fingerprint() },
                )
                .http(move |_| Ok(resp.clone()))
                .install();
            let e = call(&config(), "View", &json!({})).unwrap_err();
            assert_eq!(e.class(), class, "{e}");
        }
    }
}
