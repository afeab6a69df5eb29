//! The new API (`api.dingtalk.com/v1.0/...`): the token API and OA approvals. Token in the
//! `x-acs-dingtalk-access-token` header; failures are HTTP 4xx with `{code, message,
//! requestid}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use qiao_sandbox_kit::TokenCheck;
use qiao_sandbox_kit::seed::PEOPLE;
use serde_json::{Value, json};

use crate::errors::{new_api, new_ok};
use crate::seed::{self, Instance, PROCESSES};
use crate::{APP_KEY, APP_SECRET, DingTalkFake, TOKEN_TTL_SECS};

type Fake = State<Arc<DingTalkFake>>;

/// The longest `startTime`..`endTime` span of the instance-id query.
pub const LIST_WINDOW_MS: i64 = 120 * 86_400_000;
/// The largest `maxResults` of the instance-id query.
pub const LIST_MAX_RESULTS: i64 = 20;

impl DingTalkFake {
    /// The new API's gate: an armed new-API throttle first, then the token header. `None`
    /// lets the call through.
    fn new_api_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if self.take_new_api_throttle() {
            return Some(new_api(
                StatusCode::FORBIDDEN,
                "Forbidden.AccessDenied.QpsLimitForApi",
                "请求过于频繁，限制将在 1 秒后结束",
            ));
        }
        let token = headers.get("x-acs-dingtalk-access-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if token.is_empty() {
            return Some(new_api(
                StatusCode::BAD_REQUEST,
                "AuthenticationFailed.MissingParameter",
                "缺少参数：x-acs-dingtalk-access-token",
            ));
        }
        match self.tokens.check(token) {
            TokenCheck::Valid(_) => None,
            TokenCheck::Expired | TokenCheck::Unknown => {
                Some(new_api(StatusCode::BAD_REQUEST, "InvalidAuthentication", "不合法的access_token"))
            }
        }
    }
}

fn invalid(message: &str) -> Response {
    new_api(StatusCode::BAD_REQUEST, "invalidParameter", message)
}

fn body_object(body: &str) -> Option<Value> {
    serde_json::from_str::<Value>(body).ok().filter(Value::is_object)
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `POST /v1.0/oauth2/accessToken` `{appKey, appSecret}` → `{accessToken, expireIn}`.
pub(crate) async fn access_token(State(fake): Fake, body: String) -> Response {
    if fake.take_new_api_throttle() {
        return new_api(StatusCode::FORBIDDEN, "Forbidden.AccessDenied.QpsLimitForApi", "请求过于频繁");
    }
    let body = body_object(&body).unwrap_or(Value::Null);
    let (Some(key), Some(secret)) = (body["appKey"].as_str(), body["appSecret"].as_str()) else {
        return new_api(StatusCode::BAD_REQUEST, "MissingParameter", "缺少参数 appKey 或 appSecret");
    };
    if key != APP_KEY || secret != APP_SECRET {
        return new_api(StatusCode::BAD_REQUEST, "invalidClientIdOrSecret", "无效的clientId或者clientSecret");
    }
    new_ok(json!({"accessToken": fake.token_for(key), "expireIn": TOKEN_TTL_SECS}))
}

/// `POST /v1.0/workflow/processInstances` → `{"instanceId"}`.
pub(crate) async fn create_instance(State(fake): Fake, headers: HeaderMap, body: String) -> Response {
    if let Some(e) = fake.new_api_refusal(&headers) {
        return e;
    }
    let Some(body) = body_object(&body) else {
        return invalid("请求体不是JSON对象");
    };
    let Some(process) = body["processCode"].as_str().and_then(|c| PROCESSES.iter().find(|p| p.code == c))
    else {
        return new_api(StatusCode::BAD_REQUEST, "processCodeNotExist", "processCode不存在");
    };
    let originator = body["originatorUserId"].as_str().unwrap_or_default();
    if !PEOPLE.iter().any(|p| p.dingtalk_user_id == originator) {
        return new_api(StatusCode::BAD_REQUEST, "userNotExist", "originatorUserId对应的用户不存在");
    }
    // Documented optional, effectively required (spec §7).
    let Some(dept_id) = as_i64(&body["deptId"]) else {
        return invalid("deptId不能为空");
    };
    let mut form = Vec::new();
    for v in body["formComponentValues"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let (Some(name), Some(value)) = (v["name"].as_str(), v["value"].as_str()) else {
            return invalid("formComponentValues 的每一项需要 name 和 value 字符串");
        };
        form.push((name.to_string(), value.to_string()));
    }
    if let Some(missing) = process.fields.iter().find(|f| !form.iter().any(|(n, v)| n == *f && !v.is_empty()))
    {
        return invalid(&format!("表单必填项 {missing} 未填写"));
    }
    let now = fake.ctx.clock.now_ms();
    let mut state = fake.state();
    let seq = state.instances.len();
    let mut rng = state.rng.take().unwrap_or_default();
    let id = seed::instance_id(&mut rng);
    state.rng = Some(rng);
    let approver =
        PEOPLE.iter().find(|p| p.dingtalk_user_id != originator).map_or("", |p| p.dingtalk_user_id);
    state.instances.push(Instance {
        id: id.clone(),
        process_code: process.code.to_string(),
        originator: originator.to_string(),
        dept_id,
        form,
        approver: approver.to_string(),
        create_ms: now,
        finish_ms: None,
        status: "RUNNING",
        result: "",
        business_id: seed::business_id(now, seq),
    });
    state.created.push(id.clone());
    new_ok(json!({"instanceId": id}))
}

/// `GET /v1.0/workflow/processInstances?processInstanceId=` → `{"success", "result"}`.
pub(crate) async fn get_instance(
    State(fake): Fake,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = fake.new_api_refusal(&headers) {
        return e;
    }
    let Some(id) = q.get("processInstanceId").filter(|id| !id.is_empty()) else {
        return invalid("缺少参数 processInstanceId");
    };
    match fake.instance(id) {
        Some(result) => new_ok(json!({"success": true, "result": result})),
        None => new_api(StatusCode::BAD_REQUEST, "processInstanceNotExist", "审批实例不存在"),
    }
}

/// `POST /v1.0/workflow/processes/instanceIds/query` → `{"success", "result": {"list",
/// "nextToken"}}`: ids of `processCode` created in `[startTime, endTime]` (≤ 120 days apart),
/// oldest first, `maxResults` ≤ 20, optionally only `statuses`; `nextToken` is absent on the
/// last page.
pub(crate) async fn list_instance_ids(State(fake): Fake, headers: HeaderMap, body: String) -> Response {
    if let Some(e) = fake.new_api_refusal(&headers) {
        return e;
    }
    let Some(body) = body_object(&body) else {
        return invalid("请求体不是JSON对象");
    };
    let Some(code) = body["processCode"].as_str() else {
        return invalid("缺少参数 processCode");
    };
    let Some(start) = as_i64(&body["startTime"]) else {
        return invalid("缺少参数 startTime");
    };
    let now = fake.ctx.clock.now_ms();
    let end = as_i64(&body["endTime"]).unwrap_or(now);
    if end < start || end - start > LIST_WINDOW_MS {
        return invalid("startTime 与 endTime 的间隔不能超过120天");
    }
    let max = as_i64(&body["maxResults"]).unwrap_or(LIST_MAX_RESULTS);
    if !(1..=LIST_MAX_RESULTS).contains(&max) {
        return invalid("maxResults 取值 1 到 20");
    }
    let Some(offset) = as_i64(&body["nextToken"]).filter(|n| *n >= 0) else {
        return new_api(StatusCode::BAD_REQUEST, "param.nextToken.error", "nextToken 不合法");
    };
    let statuses: Vec<&str> =
        body["statuses"].as_array().map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let users: Vec<&str> =
        body["userIds"].as_array().map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let state = fake.state();
    let mut matching: Vec<&Instance> = state
        .instances
        .iter()
        .filter(|i| i.process_code == code && (start..=end).contains(&i.create_ms))
        .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
        .filter(|i| users.is_empty() || users.contains(&i.originator.as_str()))
        .collect();
    matching.sort_by_key(|i| i.create_ms);
    let (offset, max) = (offset as usize, max as usize);
    let list: Vec<&str> = matching.iter().skip(offset).take(max).map(|i| i.id.as_str()).collect();
    let mut result = json!({"list": list});
    if offset + list.len() < matching.len() {
        result["nextToken"] = json!((offset + list.len()).to_string());
    }
    new_ok(json!({"success": true, "result": result}))
}
