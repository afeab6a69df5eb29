//! DingTalk's answers, in the two generations' shapes.
//!
//! - Old API ("oapi"): always HTTP 200; failure is `errcode != 0`. The `/topapi/*` family wraps
//!   gateway errors as `errcode 88` with `sub_code`/`sub_msg`; legacy endpoints (`/gettoken`,
//!   `/attendance/list`, `/robot/send`) put the code in `errcode` directly.
//! - New API (`/v1.0/...`): HTTP 4xx/5xx with `{"code", "message", "requestid"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request id as DingTalk prints them (13 lowercase alphanumerics).
pub fn request_id() -> String {
    (0..13).map(|_| fastrand::alphanumeric().to_ascii_lowercase()).collect()
}

/// An old-API success: `{"errcode":0,"errmsg":"ok", ...fields}` with HTTP 200.
pub fn ok(fields: Value) -> Response {
    let mut body = json!({"errcode": 0, "errmsg": "ok"});
    if let (Some(out), Value::Object(fields)) = (body.as_object_mut(), fields) {
        out.extend(fields);
    }
    Json(body).into_response()
}

/// An old-API failure with the code in `errcode` (HTTP 200).
pub fn old(errcode: i64, errmsg: &str) -> Response {
    Json(json!({"errcode": errcode, "errmsg": errmsg, "request_id": request_id()})).into_response()
}

/// A `/topapi/*` failure wrapped as `errcode 88` with a sub code (HTTP 200).
pub fn wrapped(sub_code: &str, sub_msg: &str) -> Response {
    Json(json!({
        "errcode": 88,
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "errmsg": format!("ding talk error[subcode={sub_code},submsg={sub_msg}]"),
        "request_id": request_id(),
    }))
    .into_response()
}

/// A new-API failure: `status` with `{"code", "message", "requestid"}`.
pub fn new_api(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message, "requestid": request_id()}))).into_response()
}

/// A new-API success body as it is (HTTP 200).
pub fn new_ok(body: Value) -> Response {
    Json(body).into_response()
}
