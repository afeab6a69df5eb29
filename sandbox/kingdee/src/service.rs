//! The HTTP face: one handler that reads the service name from the path, checks the session
//! (or the header signature), and answers in K/3's envelopes.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use qiao_sandbox_kit::TokenCheck;
use serde_json::{Value, json};

use crate::body::{Args, get_ci};
use crate::query::BillQuery;
use crate::store::{Outcome, StatusOp};
use crate::{
    ACCT_ID, APP_ID, APP_SECRET, KingdeeFake, PASSWORD, SESSION_TTL_SECS, SIGN_TOLERANCE_SECS, USER_NAME,
    forms, sign,
};

const AUTH: &str = "kingdee.bos.webapi.servicesstub.authservice.";
const FORMS: &str = "kingdee.bos.webapi.servicesstub.dynamicformservice.";
/// The server's words when the session is gone.
pub const SESSION_LOST: &str = "会话信息已丢失，请重新登录";

/// A JSON answer with extra headers.
pub fn json_response(status: StatusCode, body: &Value, headers: &[(&str, String)]) -> Response {
    let mut b = Response::builder().status(status).header("content-type", "application/json; charset=utf-8");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(body.to_string())).unwrap_or_default()
}

/// A failed `Result.ResponseStatus` with one error.
pub fn failure(msg_code: u32, field: Option<&str>, message: &str) -> Value {
    status_envelope(&Outcome {
        successes: vec![],
        errors: vec![crate::store::ItemError {
            field: field.map(str::to_string),
            message: message.into(),
            index: 0,
        }],
        msg_code,
    })
}

/// `{"Result": {"ResponseStatus": ..}}` for an outcome (plus `Id`/`Number` of the first success).
fn status_envelope(o: &Outcome) -> Value {
    let ok = o.errors.is_empty();
    let mut status = json!({
        "IsSuccess": ok,
        "Errors": o.errors.iter().map(|e| json!({"FieldName": e.field, "Message": e.message, "DIndex": e.index})).collect::<Vec<_>>(),
        "SuccessEntitys": o.successes.iter().map(|s| json!({"Id": s.id, "Number": s.number, "DIndex": s.index})).collect::<Vec<_>>(),
        "SuccessMessages": [],
        "MsgCode": if ok { 0 } else { o.msg_code },
    });
    if !ok {
        status["ErrorCode"] = json!(500);
    }
    let mut result = json!({"ResponseStatus": status});
    if let Some(first) = o.successes.first() {
        result["Id"] = json!(first.id);
        result["Number"] = json!(first.number);
        result["NeedReturnData"] = json!([{}]);
    }
    json!({"Result": result})
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body, &[])
}

/// Every request lands here.
pub async fn dispatch(
    State(fake): State<Arc<KingdeeFake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let lower = path.to_ascii_lowercase();
    let service = lower.strip_prefix(crate::PATH_PREFIX).and_then(|s| s.strip_suffix(".common.kdsvc"));
    let Some(service) = service else {
        return not_found();
    };
    if method != Method::POST {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let Some(args) = Args::parse(&body) else {
        return ok(failure(8, None, "请求参数格式错误，应为JSON对象"));
    };
    if let Some(login) = service.strip_prefix(AUTH) {
        return match login {
            "loginbysign" | "loginbysign2" => fake.login_by_sign(&args),
            "loginbyappsecret" | "loginbyappsecret2" => fake.login_checked(&args, Login::AppSecret),
            "validateuser" | "validateuser2" => fake.login_checked(&args, Login::Password),
            _ => not_found(),
        };
    }
    let Some(op) = service.strip_prefix(FORMS) else {
        return not_found();
    };
    let is_query = op == "executebillquery";
    if !matches!(op, "save" | "batchsave" | "submit" | "audit" | "delete" | "view" | "executebillquery") {
        return not_found();
    }
    if let Err(message) = fake.authorize(path, &headers) {
        return ok(wrap_if(is_query, failure(1, None, &message)));
    }
    let (form_id, data) = args.form_call();
    let form_id = form_id.or_else(|| get_ci(&data, "FormId").and_then(Value::as_str).map(str::to_string));
    let Some(form_id) = form_id.filter(|f| !f.is_empty()) else {
        return ok(wrap_if(is_query, failure(5, None, "表单FormId不能为空")));
    };
    let Some(form) = forms::form(&form_id) else {
        return ok(wrap_if(is_query, failure(4, None, &format!("业务对象“{form_id}”不存在"))));
    };
    let now = fake.now_text();
    match op {
        "save" | "batchsave" => {
            let answer = fake.save(form, &data, op == "batchsave", &now);
            if fake.take_lost_reply() {
                return fake_gateway_timeout(&fake);
            }
            answer
        }
        "submit" => ok(status_envelope(&fake.store().change_status(form, StatusOp::Submit, &data, &now))),
        "audit" => ok(status_envelope(&fake.store().change_status(form, StatusOp::Audit, &data, &now))),
        "delete" => ok(status_envelope(&fake.store().change_status(form, StatusOp::Delete, &data, &now))),
        "view" => match fake.store().view(form, &data) {
            Some(entity) => ok(json!({"Result": {"ResponseStatus": null, "Result": entity}})),
            None => {
                let mut body = failure(10, None, "单据不存在或已被删除");
                body["Result"]["Result"] = Value::Null;
                ok(body)
            }
        },
        _ => match BillQuery::from_data(&data) {
            Ok(q) => ok(Value::Array(fake.store().query(form, &q).into_iter().map(Value::Array).collect())),
            Err(message) => ok(wrap_if(true, failure(8, None, &message))),
        },
    }
}

fn fake_gateway_timeout(fake: &KingdeeFake) -> Response {
    use qiao_sandbox_kit::System;
    fake.server_error(StatusCode::GATEWAY_TIMEOUT)
}

fn not_found() -> Response {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header("content-type", "text/html; charset=utf-8")
        .body(Body::from("<html><body><h2>404 - 找不到文件或目录。</h2></body></html>"))
        .unwrap_or_default()
}

/// ExecuteBillQuery wraps its failures in `[[...]]`.
fn wrap_if(query: bool, body: Value) -> Value {
    if query { json!([[body]]) } else { body }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Login {
    AppSecret,
    Password,
}

fn login_failure(result_type: i32, message: &str) -> Response {
    ok(json!({
        "Message": message, "MessageCode": null, "LoginResultType": result_type, "Context": null,
        "KDSVCSessionId": null, "FormId": null, "ErrorStackTrace": null, "Lcid": 0,
        "AccessToken": null, "IsSuccessByAPI": false
    }))
}

impl KingdeeFake {
    /// `[acctId, username, appId, timestamp, sign, lcid]`.
    fn login_by_sign(&self, args: &Args) -> Response {
        let acct = args.text(0, &["acctid"]).unwrap_or_default();
        let user = args.text(1, &["username"]).unwrap_or_default();
        let app_id = args.text(2, &["appid"]).unwrap_or_default();
        let ts = args.text(3, &["timestamp"]).unwrap_or_default();
        let sign = args.text(4, &["sign"]).unwrap_or_default();
        let lcid = args.text(5, &["lcid"]).unwrap_or_else(|| "2052".into());
        if let Some(failed) = check_identity(&acct, &user) {
            return failed;
        }
        if app_id != APP_ID {
            return login_failure(0, "第三方系统登录授权验证失败：应用ID不存在");
        }
        // The caller signs with its real clock, so freshness is checked against the real
        // clock too (advancing the sandbox clock must not break every login).
        let real_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let fresh = ts.parse::<i64>().is_ok_and(|t| (real_now - t).abs() <= SIGN_TOLERANCE_SECS);
        if !fresh {
            return login_failure(-1, "时间戳已过期，请检查服务器时间");
        }
        let want = sign::login_sign(&acct, &user, &app_id, APP_SECRET, &ts);
        let forced_bad = self.ctx.faults.take_bad_signature();
        if forced_bad || !sign.eq_ignore_ascii_case(&want) {
            return login_failure(-1, "签名验证失败");
        }
        self.session(&user, &lcid)
    }

    /// `LoginByAppSecret [acctId, username, appId, appSecret, lcid]` or
    /// `ValidateUser [acctId, username, password, lcid]`.
    fn login_checked(&self, args: &Args, how: Login) -> Response {
        let acct = args.text(0, &["acctid"]).unwrap_or_default();
        let user = args.text(1, &["username"]).unwrap_or_default();
        if let Some(failed) = check_identity(&acct, &user) {
            return failed;
        }
        let lcid = match how {
            Login::AppSecret => {
                let app_id = args.text(2, &["appid"]).unwrap_or_default();
                let secret = args.text(3, &["appsecret", "appsec"]).unwrap_or_default();
                if app_id != APP_ID || secret != APP_SECRET {
                    return login_failure(0, "第三方系统登录授权验证失败：应用ID或应用密钥错误");
                }
                args.text(4, &["lcid"])
            }
            Login::Password => {
                if args.text(2, &["password"]).as_deref() != Some(PASSWORD) {
                    return login_failure(0, "用户名或密码错误");
                }
                args.text(3, &["lcid"])
            }
        };
        self.session(&user, &lcid.unwrap_or_else(|| "2052".into()))
    }

    fn session(&self, user: &str, lcid: &str) -> Response {
        let sid = self.sessions.issue(SESSION_TTL_SECS, json!({"user": user, "lcid": lcid}));
        let asp = format!("{:024x}", fastrand::u128(..) & ((1u128 << 96) - 1));
        let body = json!({
            "Message": null, "MessageCode": "CheckPasswordPolicy", "LoginResultType": 1,
            "Context": {"UserLocale": "zh-CN", "LCId": lcid.parse::<i64>().unwrap_or(2052), "DBid": ACCT_ID, "SessionId": sid,
                        "UserId": 100_001, "UserName": user, "DisplayVersion": "9.0.553.10",
                        "DataCenterName": "演示账套", "CurrentOrganizationInfo": {"ID": 1, "Name": "总部"}},
            "KDSVCSessionId": sid, "FormId": null, "ErrorStackTrace": null, "Lcid": 0,
            "AccessToken": null, "IsSuccessByAPI": true
        });
        let cookies = [
            ("set-cookie", format!("kdservice-sessionid={sid}; path=/")),
            ("set-cookie", format!("ASP.NET_SessionId={asp}; path=/; HttpOnly")),
        ];
        json_response(StatusCode::OK, &body, &cookies)
    }

    /// Checks the session cookie/header, or the header signature; the error is the message of
    /// the `MsgCode` 1 answer.
    fn authorize(&self, path: &str, headers: &HeaderMap) -> Result<(), String> {
        let h = |name: &str| header(headers, name);
        if let Some(signature) = h("x-kd-signature") {
            return self.check_signed_headers(path, signature, headers);
        }
        let from_cookie = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("kdservice-sessionid"))
            .map(|(_, v)| v.to_string());
        let sid = from_cookie
            .or_else(|| h("kdservice-sessionid").map(str::to_string))
            .or_else(|| h("sid").map(str::to_string));
        match sid.map(|s| self.sessions.check(&s)) {
            Some(TokenCheck::Valid(_)) => Ok(()),
            _ => Err(SESSION_LOST.into()),
        }
    }

    fn check_signed_headers(&self, path: &str, signature: &str, headers: &HeaderMap) -> Result<(), String> {
        let h = |name: &str| header(headers, name);
        let bad = || Err("签名验证失败，请检查应用ID、应用密钥与签名算法".to_string());
        let client_ok = h("x-api-clientid").is_none_or(|c| c == sign::client_id(APP_ID));
        if self.ctx.faults.take_bad_signature() || h("x-kd-appkey") != Some(APP_ID) || !client_ok {
            return bad();
        }
        let data = h("x-kd-appdata").and_then(|d| B64.decode(d).ok()).and_then(|d| String::from_utf8(d).ok());
        let Some(data) = data else { return bad() };
        let parts: Vec<&str> = data.split(',').collect();
        if parts.first() != Some(&ACCT_ID) || parts.get(1) != Some(&USER_NAME) {
            return bad();
        }
        if signature != sign::kd_signature(APP_ID, &data, APP_SECRET) {
            return bad();
        }
        if let Some(api_signature) = h("x-api-signature") {
            let nonce = h("x-api-nonce").unwrap_or_default();
            let ts = h("x-api-timestamp").unwrap_or_default();
            let key = sign::api_secret(APP_ID).unwrap_or_default();
            if api_signature != sign::kd_hmac(&sign::api_string_to_sign(path, nonce, ts), &key) {
                return bad();
            }
        }
        Ok(())
    }

    fn save(&self, form: &'static forms::FormDef, data: &Value, batch: bool, now: &str) -> Response {
        let Some(model) = get_ci(data, "Model").filter(|m| !m.is_null()) else {
            return ok(failure(8, None, "参数错误：Model不能为空"));
        };
        let models: Vec<Value> = match (batch, model) {
            (true, Value::Array(list)) => list.clone(),
            (true, single) => vec![single.clone()],
            (false, single) => vec![single.clone()],
        };
        let forced: Vec<usize> =
            if batch { self.ctx.faults.take_partial().unwrap_or_default() } else { Vec::new() };
        let mut out = Outcome::default();
        let mut store = self.store();
        for (index, m) in models.iter().enumerate() {
            if forced.contains(&index) {
                out.errors.push(crate::store::ItemError {
                    field: None,
                    message: "数据校验未通过：单据被业务规则拒绝（注入的部分失败）".into(),
                    index,
                });
                out.msg_code = 11;
                continue;
            }
            match store.save(form, m, now) {
                Ok((id, number)) => out.successes.push(crate::store::Success { id, number, index }),
                Err(errors) => {
                    out.msg_code = 11;
                    out.errors.extend(errors.into_iter().map(|(field, message)| crate::store::ItemError {
                        field: (!field.is_empty()).then_some(field),
                        message,
                        index,
                    }));
                }
            }
        }
        ok(status_envelope(&out))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_identity(acct: &str, user: &str) -> Option<Response> {
    if acct != ACCT_ID {
        return Some(login_failure(-1, "数据中心不存在或已被禁用"));
    }
    if user != USER_NAME {
        return Some(login_failure(0, "用户名或密码错误"));
    }
    None
}
