//! Yonyou's response envelope `{code, message, data}` and the codes the fake answers with.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Response codes. Those marked *assumed* are not documented publicly; the connector README
/// lists the same choices.
pub mod code {
    /// Success of the auth APIs (token, data-center lookup).
    pub const AUTH_OK: &str = "00000";
    /// Success of the business APIs (also returned for partially failed batches).
    pub const OK: &str = "200";
    /// Bad, unknown or expired `access_token` on the gateway (third-party probe).
    pub const TOKEN_INVALID: &str = "310036";
    /// The API is not granted to the app in the developer console (believed).
    pub const API_NOT_AUTHORIZED: &str = "310037";
    /// Rate limited (assumed; sent with HTTP 429 and `Retry-After`).
    pub const THROTTLED: &str = "310027";
    /// Unknown `appKey` on the token API (assumed).
    pub const APP_UNKNOWN: &str = "310001";
    /// Wrong token signature (assumed).
    pub const SIGNATURE_INVALID: &str = "310002";
    /// Token request timestamp outside the allowed skew (assumed).
    pub const TIMESTAMP_INVALID: &str = "310003";
    /// Server logic error; also the code of validation failures of a save (documented).
    pub const LOGIC_ERROR: &str = "999";
    /// The document already exists: same `resubmitCheckKey` with different content.
    pub const ALREADY_EXISTS: &str = "310504";
    /// Unknown tenant in the data-center lookup (assumed).
    pub const TENANT_UNKNOWN: &str = "310004";
}

/// Seconds a throttled caller is asked to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// A business success: `{"code":"200","message":"操作成功","data":…}`.
pub fn ok(data: Value) -> Response {
    Json(json!({"code": code::OK, "message": "操作成功", "data": data})).into_response()
}

/// An auth-API success: `{"code":"00000","message":"成功！","data":…}`.
pub fn auth_ok(data: Value) -> Response {
    Json(json!({"code": code::AUTH_OK, "message": "成功！", "data": data})).into_response()
}

/// An error in a 200 answer: `{"code":…,"message":…}` without `data`.
pub fn error(code: &str, message: impl Into<String>) -> Response {
    Json(json!({"code": code, "message": message.into()})).into_response()
}

/// The gateway's answer for a bad or expired token.
pub fn token_invalid() -> Response {
    error(code::TOKEN_INVALID, "非法token或token已过期，请重新获取access_token")
}

/// The throttle answer: HTTP 429, `Retry-After`, the envelope with [`code::THROTTLED`].
pub fn throttled() -> Response {
    let body = json!({"code": code::THROTTLED, "message": "接口调用频率超过限制，请稍后再试"});
    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", RETRY_AFTER_SECS.to_string())], Json(body))
        .into_response()
}

/// A server error with `status`, in the envelope.
pub fn server_error(status: StatusCode) -> Response {
    (status, Json(json!({"code": code::LOGIC_ERROR, "message": "服务端逻辑异常"}))).into_response()
}
