//! Yonyou's answers to error classes: HTTP status first, then the envelope's `code`.
//!
//! | answer | class |
//! | --- | --- |
//! | HTTP 429, or code `310027` | `rate-limited` (Retry-After, else 1 s) |
//! | HTTP 5xx, timeouts, resets, a body that is not JSON | `transient` |
//! | code `310036` (token bad or expired) | refresh the token and retry once, then `unauthorized` |
//! | code `310037` (API not granted to the app) | `config` |
//! | token API: any code but `00000` | `config` |
//! | code `999` in a 200 answer, `310504`/`310074` (already exists), other codes | `invalid-input` |
//! | `{"success": false}` (legacy base-doc answers) | `invalid-input` |

use qiao_sdk::http::{Response, status_class};
use qiao_sdk::{Error, ErrorClass, Result, Value, error_of_class};

/// Success of business APIs.
pub const OK: &str = "200";
/// Success of the auth APIs.
pub const AUTH_OK: &str = "00000";
/// Bad, unknown or expired token.
pub const TOKEN_INVALID: &str = "310036";
/// API not granted to the app.
pub const API_NOT_AUTHORIZED: &str = "310037";
/// Rate limited (assumed code).
pub const THROTTLED: &str = "310027";
/// Server logic error / validation failure.
pub const LOGIC_ERROR: &str = "999";
/// Document already exists.
pub const ALREADY_EXISTS: &[&str] = &["310504", "310074"];
/// Wait when a throttle answer names none.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 1000;

/// What a gateway answer means.
#[derive(Debug)]
pub enum Outcome {
    /// Success: the whole body.
    Ok(Value),
    /// The token was refused: refresh and retry.
    TokenInvalid(String),
}

/// `code` as text (some list APIs send `999` as a number).
pub fn code_of(body: &Value) -> Option<String> {
    match body.get("code")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn message_of(body: &Value) -> String {
    body.get("message").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Classifies one answer of `what` (`POST /yonbip/...`); `auth` for the token API, where any
/// refusal is a config problem.
pub fn classify(resp: &Response, what: &str, auth: bool) -> Result<Outcome> {
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let code = body.as_ref().and_then(code_of);
    let message = body.as_ref().map(message_of).unwrap_or_default();
    let detail = |code: &Option<String>| match code {
        Some(c) => format!("{what} answered {} with code {c}: {message}", resp.status),
        None => format!("{what} answered {}", resp.status),
    };
    if resp.status == 429 || code.as_deref() == Some(THROTTLED) {
        let wait = resp.retry_after_ms().unwrap_or(DEFAULT_RETRY_AFTER_MS);
        return Err(Error::rate_limited(detail(&code), Some(wait)));
    }
    if let Some(class) = status_class(resp.status) {
        // A refused token may come with an HTTP error status too.
        if code.as_deref() == Some(TOKEN_INVALID) && !auth {
            return Ok(Outcome::TokenInvalid(detail(&code)));
        }
        return Err(error_of_class(class, detail(&code), None));
    }
    let Some(body) = body else {
        // Not JSON: a proxy page while the service restarts.
        return resp.json::<Value>().map(Outcome::Ok);
    };
    let Some(code) = code else {
        return match body.get("success").and_then(Value::as_bool) {
            Some(false) => Err(Error::invalid_input(format!("{what} failed: {message}"))),
            _ => Ok(Outcome::Ok(body)),
        };
    };
    let class = match code.as_str() {
        OK | AUTH_OK => return Ok(Outcome::Ok(body)),
        TOKEN_INVALID if !auth => return Ok(Outcome::TokenInvalid(detail(&Some(code)))),
        _ if auth => ErrorClass::Config,
        API_NOT_AUTHORIZED => ErrorClass::Config,
        "500" | "502" | "503" | "504" => ErrorClass::Transient,
        // Validation failures of a save, and a document that already exists: the same input
        // fails the same way again.
        LOGIC_ERROR => ErrorClass::InvalidInput,
        c if ALREADY_EXISTS.contains(&c) => ErrorClass::InvalidInput,
        _ => ErrorClass::InvalidInput,
    };
    let mut text = detail(&Some(code));
    if auth {
        text.push_str(" (check app_key, app_secret and the clock)");
    } else if class == ErrorClass::Config {
        text.push_str(" (grant the API to the app in the developer console)");
    }
    Err(error_of_class(class, text, None))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::json;

    fn answer(status: u16, body: Value) -> Response {
        Response::new(status).with_json(&body)
    }

    fn class(status: u16, body: Value, auth: bool) -> std::result::Result<&'static str, ErrorClass> {
        match classify(&answer(status, body), "POST /x", auth) {
            Ok(Outcome::Ok(_)) => Ok("ok"),
            Ok(Outcome::TokenInvalid(_)) => Ok("refresh"),
            Err(e) => Err(e.class()),
        }
    }

    #[test]
    fn every_code_has_a_class() {
        use ErrorClass::*;
        assert_eq!(class(200, json!({"code": "200", "data": {}}), false), Ok("ok"));
        assert_eq!(class(200, json!({"code": "00000", "data": {}}), true), Ok("ok"));
        assert_eq!(class(200, json!({"code": "310036", "message": "非法token"}), false), Ok("refresh"));
        assert_eq!(class(401, json!({"code": "310036"}), false), Ok("refresh"));
        assert_eq!(class(200, json!({"code": "310037"}), false), Err(Config));
        assert_eq!(class(200, json!({"code": "310002", "message": "签名校验失败"}), true), Err(Config));
        assert_eq!(class(200, json!({"code": "310001"}), true), Err(Config));
        assert_eq!(class(200, json!({"code": "999", "message": "部门不存在"}), false), Err(InvalidInput));
        assert_eq!(class(200, json!({"code": 999, "message": "x"}), false), Err(InvalidInput));
        assert_eq!(class(200, json!({"code": "310504"}), false), Err(InvalidInput));
        assert_eq!(class(200, json!({"code": "503"}), false), Err(Transient));
        assert_eq!(class(503, json!({"code": "999", "message": "服务端逻辑异常"}), false), Err(Transient));
        assert_eq!(class(502, json!(null), true), Err(Transient));
        assert_eq!(class(200, json!({"success": true, "data": []}), false), Ok("ok"));
        assert_eq!(class(200, json!({"success": false, "message": "x"}), false), Err(InvalidInput));
        assert_eq!(class(200, json!([1, 2]), false), Ok("ok"));
    }

    #[test]
    fn throttle_carries_retry_after() {
        let r = answer(429, json!({"code": "310027"})).with_header("retry-after", "3");
        let e = classify(&r, "POST /x", false).unwrap_err();
        assert_eq!((e.class(), e.retry_after_ms()), (ErrorClass::RateLimited, Some(3000)));
        let e = classify(&answer(200, json!({"code": "310027"})), "POST /x", true).unwrap_err();
        assert_eq!(e.retry_after_ms(), Some(DEFAULT_RETRY_AFTER_MS));
        let e = classify(
            &answer(200, json!({"code": "999", "message": "第1行分录金额不能为空"})),
            "POST /x",
            false,
        )
        .unwrap_err();
        assert_eq!(e.message(), "POST /x answered 200 with code 999: 第1行分录金额不能为空");
        let e = classify(&Response::new(200).with_text("<html>"), "POST /x", false).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient);
    }
}
