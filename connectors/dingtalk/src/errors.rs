//! DingTalk's answers → values or classified errors.
//!
//! Old API: HTTP 200 with `errcode != 0` (the `/topapi/*` family wraps gateway errors as
//! `errcode 88` + `sub_code`). New API: HTTP 4xx/5xx with `{code, message, requestid}`. The
//! sandbox's (and the gateway's) throttle can answer any path in the old shape, so every answer
//! is checked for both. The table is `README.md` § Errors.

use qiao_sdk::http::{Response, classify_status};
use qiao_sdk::{Error, Value};

/// A failed call: the token was refused (refresh it and retry once), or anything else.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The access token is invalid, expired or missing.
    Token(String),
    /// Classified.
    Other(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

/// Wait after a per-second QPS limit.
pub const PER_SECOND_RETRY_MS: u64 = 1_000;
/// Wait after a per-minute limit (robot 20/min, per-minute API quotas).
pub const PER_MINUTE_RETRY_MS: u64 = 60_000;

/// The body of a finished call, or its failure. `what` names the call in messages
/// (`POST /topapi/message/corpconversation/asyncsend_v2`).
pub fn classify(resp: &Response, what: &str) -> Result<Value, Failure> {
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if let Some(body) = &body
        && let Some(code) = body.get("errcode").and_then(Value::as_i64)
        && code != 0
    {
        let errmsg = body["errmsg"].as_str().unwrap_or_default();
        let sub_code = body["sub_code"]
            .as_str()
            .map(str::to_string)
            .or_else(|| body["sub_code"].as_i64().map(|c| c.to_string()));
        let sub_msg = body["sub_msg"].as_str().unwrap_or(errmsg);
        return Err(errcode(code, errmsg, sub_code.as_deref(), sub_msg, what));
    }
    if !resp.is_success() {
        if let Some(body) = &body
            && let Some(code) = body.get("code").and_then(Value::as_str)
        {
            let message = body["message"].as_str().unwrap_or_default();
            return Err(code_failure(resp.status, code, message, what));
        }
        let text: String = resp.text().chars().take(200).collect();
        let message = format!("{what} returned HTTP {}: {text}", resp.status);
        return Err(Failure::Other(
            classify_status(resp.status, resp.retry_after_ms())
                .unwrap_or_else(|| Error::permanent(message.clone())),
        ));
    }
    match body {
        Some(v) => Ok(v),
        None => Err(Failure::Other(Error::transient(format!(
            "{what} answered HTTP {} with a body that is not JSON: {}",
            resp.status,
            resp.text().chars().take(200).collect::<String>()
        )))),
    }
}

/// The failure of an old-API `errcode`.
pub fn errcode(code: i64, errmsg: &str, sub_code: Option<&str>, sub_msg: &str, what: &str) -> Failure {
    let msg = |m: &str| format!("{what}: dingtalk errcode {code}: {m}");
    match code {
        40014 | 42001 | 41001 | 40001 | 40000 => Failure::Token(msg(errmsg)),
        88 => match sub_code.filter(|s| !s.is_empty()) {
            // "Temporarily forbidden" without a QPS sub code lasts about a second.
            None => Failure::Other(Error::rate_limited(msg(errmsg), Some(PER_SECOND_RETRY_MS))),
            Some(sub) => match sub.parse::<i64>() {
                Ok(sub) if sub != 88 => match errcode(sub, sub_msg, None, sub_msg, what) {
                    Failure::Token(_) => Failure::Token(msg(&format!("sub_code {sub}: {sub_msg}"))),
                    Failure::Other(e) => Failure::Other(qiao_sdk::error_of_class(
                        e.class(),
                        msg(&format!("sub_code {sub}: {sub_msg}")),
                        e.retry_after_ms(),
                    )),
                },
                _ if sub.contains("parameter") => {
                    Failure::Other(Error::invalid_input(msg(&format!("sub_code {sub}: {sub_msg}"))))
                }
                _ => Failure::Other(Error::permanent(msg(&format!("sub_code {sub}: {sub_msg}")))),
            },
        },
        90018 => Failure::Other(Error::rate_limited(msg(errmsg), Some(PER_SECOND_RETRY_MS))),
        90006 | 90005 | 41047 | 41048 | 660026 | 130101 => {
            Failure::Other(Error::rate_limited(msg(errmsg), Some(PER_MINUTE_RETRY_MS)))
        }
        -1 => Failure::Other(Error::transient(msg(errmsg))),
        40096 | 40089 => {
            Failure::Other(Error::config(msg(&format!("{errmsg} (check app_key and app_secret)"))))
        }
        40056 => Failure::Other(Error::config(msg(&format!("{errmsg} (check agent_id)")))),
        60011 | 60020 => {
            Failure::Other(Error::config(msg(&format!("{errmsg} (grant the app the permission or IP)"))))
        }
        300005 | 300001 => {
            Failure::Other(Error::config(msg(&format!("{errmsg} (check robot_access_token)"))))
        }
        310000 if errmsg.contains("keywords") => Failure::Other(Error::invalid_input(msg(errmsg))),
        310000 => Failure::Other(Error::config(msg(&format!(
            "{errmsg} (check robot_secret and the robot's security settings)"
        )))),
        22 => Failure::Other(Error::config(msg(&format!("{errmsg} (is oapi_url DingTalk's old API host?)")))),
        40035 | 33012 | 60121 | 400002 => Failure::Other(Error::invalid_input(msg(errmsg))),
        _ => Failure::Other(Error::permanent(msg(errmsg))),
    }
}

/// The failure of a new-API error body.
pub fn code_failure(status: u16, code: &str, message: &str, what: &str) -> Failure {
    let msg = format!("{what} returned HTTP {status} {code}: {message}");
    match code {
        "InvalidAuthentication" | "AuthenticationFailed.MissingParameter" | "Unauthorized" => {
            Failure::Token(msg)
        }
        "invalidClientIdOrSecret" => {
            Failure::Other(Error::config(format!("{msg} (check app_key and app_secret)")))
        }
        c if c.contains("QpsLimit") || c.starts_with("Throttling") => {
            Failure::Other(Error::rate_limited(msg, Some(PER_SECOND_RETRY_MS)))
        }
        c if c.starts_with("Forbidden") => {
            Failure::Other(Error::config(format!("{msg} (grant the app this API's permission)")))
        }
        "InvalidAction.NotFound" => {
            Failure::Other(Error::config(format!("{msg} (is api_url DingTalk's new API host?)")))
        }
        _ if status == 429 => Failure::Other(Error::rate_limited(msg, Some(PER_SECOND_RETRY_MS))),
        _ if status >= 500 => Failure::Other(Error::transient(msg)),
        _ if status == 401 => Failure::Token(msg),
        _ => Failure::Other(Error::invalid_input(msg)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    fn class_of(status: u16, body: Value) -> Result<ErrorClass, &'static str> {
        match classify(&Response::new(status).with_json(&body), "POST /x") {
            Ok(_) => Err("ok"),
            Err(Failure::Token(_)) => Err("token"),
            Err(Failure::Other(e)) => Ok(e.class()),
        }
    }

    #[test]
    fn old_api_codes() {
        use ErrorClass::*;
        let cases: &[(Value, Result<ErrorClass, &str>)] = &[
            (json!({"errcode": 0, "errmsg": "ok"}), Err("ok")),
            (json!({"errcode": 42001, "errmsg": "access_token超时"}), Err("token")),
            (json!({"errcode": 40014, "errmsg": "不合法的access_token"}), Err("token")),
            (json!({"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token"}), Err("token")),
            (json!({"errcode": 88, "sub_code": "40000", "sub_msg": "access_token is blank"}), Err("token")),
            (json!({"errcode": 88, "errmsg": "forbidden"}), Ok(RateLimited)),
            (json!({"errcode": 88, "sub_code": "90018", "sub_msg": "qps"}), Ok(RateLimited)),
            (json!({"errcode": 88, "sub_code": "40035", "sub_msg": "缺少参数 msg"}), Ok(InvalidInput)),
            (json!({"errcode": 88, "sub_code": "40056", "sub_msg": "不合法的agentid"}), Ok(Config)),
            (json!({"errcode": 88, "sub_code": "isv.invalid-parameter", "sub_msg": "x"}), Ok(InvalidInput)),
            (json!({"errcode": 90018, "errmsg": "qps"}), Ok(RateLimited)),
            (json!({"errcode": 90006, "errmsg": "per minute"}), Ok(RateLimited)),
            (json!({"errcode": 130101, "errmsg": "send too fast"}), Ok(RateLimited)),
            (json!({"errcode": 660026, "errmsg": "too many"}), Ok(RateLimited)),
            (json!({"errcode": -1, "errmsg": "系统繁忙"}), Ok(Transient)),
            (json!({"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}), Ok(Config)),
            (json!({"errcode": 310000, "errmsg": "sign not match"}), Ok(Config)),
            (json!({"errcode": 310000, "errmsg": "invalid timestamp"}), Ok(Config)),
            (json!({"errcode": 310000, "errmsg": "keywords not in content"}), Ok(InvalidInput)),
            (json!({"errcode": 300005, "errmsg": "token is not exist"}), Ok(Config)),
            (json!({"errcode": 40035, "errmsg": "缺少参数"}), Ok(InvalidInput)),
            (json!({"errcode": 22, "errmsg": "Invalid method"}), Ok(Config)),
            (json!({"errcode": 12345, "errmsg": "?"}), Ok(Permanent)),
        ];
        for (body, want) in cases {
            assert_eq!(class_of(200, body.clone()), *want, "{body}");
        }
        let e = classify(
            &Response::new(200).with_json(&json!({"errcode": 130101, "errmsg": "x"})),
            "POST /robot/send",
        );
        let Err(Failure::Other(e)) = e else { panic!("{e:?}") };
        assert_eq!(e.retry_after_ms(), Some(PER_MINUTE_RETRY_MS));
        assert!(e.message().starts_with("POST /robot/send: dingtalk errcode 130101"), "{e}");
    }

    #[test]
    fn new_api_codes() {
        use ErrorClass::*;
        let body = |code: &str| json!({"code": code, "message": "m", "requestid": "r"});
        assert_eq!(class_of(400, body("InvalidAuthentication")), Err("token"));
        assert_eq!(class_of(401, body("InvalidAuthentication")), Err("token"));
        assert_eq!(class_of(400, body("AuthenticationFailed.MissingParameter")), Err("token"));
        assert_eq!(class_of(400, body("invalidClientIdOrSecret")), Ok(Config));
        assert_eq!(class_of(403, body("Forbidden.AccessDenied.QpsLimitForApi")), Ok(RateLimited));
        assert_eq!(class_of(403, body("Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")), Ok(RateLimited));
        assert_eq!(class_of(403, body("Forbidden.AccessDenied.AccessTokenPermissionDenied")), Ok(Config));
        assert_eq!(class_of(400, body("invalidParameter")), Ok(InvalidInput));
        assert_eq!(class_of(400, body("param.nextToken.error")), Ok(InvalidInput));
        assert_eq!(class_of(400, body("userNotExist")), Ok(InvalidInput));
        assert_eq!(class_of(503, body("ServiceUnavailable")), Ok(Transient));
        assert_eq!(class_of(503, json!({"errcode": -1, "code": "ServiceUnavailable"})), Ok(Transient));
        assert_eq!(class_of(502, json!("gateway")), Ok(Transient));
        let e = classify(&Response::new(200).with_text("<html>"), "GET /x");
        assert!(matches!(e, Err(Failure::Other(e)) if e.class() == Transient));
    }
}
