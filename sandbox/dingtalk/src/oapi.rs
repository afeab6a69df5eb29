//! The old API (`oapi.dingtalk.com`): `/gettoken`, the custom robot, work notifications and
//! attendance results. Token in the `access_token` query parameter; every answer is HTTP 200
//! and failure is `errcode != 0`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use qiao_sandbox_kit::TokenCheck;
use serde_json::{Value, json};

use crate::errors::{new_api, ok, old, wrapped};
use crate::time::{cst_midnight, day_of_date};
use crate::{
    AGENT_ID, APP_KEY, APP_SECRET, DingTalkFake, Notification, ROBOT_ACCESS_TOKEN, ROBOT_PER_MINUTE,
    ROBOT_SECRET, RobotMessage, TOKEN_TTL_SECS, crypto,
};

type Params = Query<HashMap<String, String>>;
type Fake = State<Arc<DingTalkFake>>;

/// How an old endpoint reports token failures.
#[derive(Clone, Copy)]
pub(crate) enum Family {
    /// Legacy endpoints: the code itself (`40014`, `42001`, `41001`).
    Direct,
    /// `/topapi/*`: `errcode 88` with the code as `sub_code`.
    Topapi,
}

impl DingTalkFake {
    /// The app's current token if it still lives (the token APIs hand it out again), else a
    /// fresh one.
    pub(crate) fn token_for(&self, app_key: &str) -> String {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(token) = current.get(app_key)
            && matches!(self.tokens.check(token), TokenCheck::Valid(_))
        {
            return token.clone();
        }
        let token = self.tokens.issue(TOKEN_TTL_SECS, json!({"app_key": app_key}));
        current.insert(app_key.to_string(), token.clone());
        token
    }

    /// Checks an old-API `access_token`: the answer in `family`'s shape when it fails.
    pub(crate) fn old_token_failure(&self, token: Option<&String>, family: Family) -> Option<Response> {
        let failure = match token.map(String::as_str) {
            None | Some("") => ("41001", "access_token is blank", 41001, "缺少access_token参数"),
            Some(t) => match self.tokens.check(t) {
                TokenCheck::Valid(_) => return None,
                TokenCheck::Expired => ("42001", "access_token已过期", 42001, "access_token超时"),
                TokenCheck::Unknown => ("40014", "不合法的access_token", 40014, "不合法的access_token"),
            },
        };
        Some(match family {
            // A blank token on /topapi is reported with sub code 40000 (captured reply).
            Family::Topapi if failure.0 == "41001" => wrapped("40000", failure.1),
            Family::Topapi => wrapped(failure.0, failure.1),
            Family::Direct => old(failure.2, failure.3),
        })
    }
}

/// `GET /gettoken?appkey=&appsecret=`.
pub(crate) async fn gettoken(State(fake): Fake, Query(q): Params) -> Response {
    let key = q.get("appkey").or_else(|| q.get("corpid"));
    let secret = q.get("appsecret").or_else(|| q.get("corpsecret"));
    match (key, secret) {
        (None, _) | (_, None) => old(40035, "缺少参数 corpid or appkey"),
        (Some(k), Some(s)) if k == APP_KEY && s == APP_SECRET => {
            let token = fake.token_for(k);
            ok(json!({"access_token": token, "expires_in": TOKEN_TTL_SECS}))
        }
        _ => old(40096, "不合法的appKey或appSecret"),
    }
}

/// `POST /robot/send?access_token=&timestamp=&sign=`.
pub(crate) async fn robot_send(State(fake): Fake, Query(q): Params, body: String) -> Response {
    if q.get("access_token").map(String::as_str) != Some(ROBOT_ACCESS_TOKEN) {
        return old(300005, "token is not exist");
    }
    let now = fake.ctx.clock.now_ms();
    let timestamp = q.get("timestamp").cloned().unwrap_or_default();
    let Ok(ts) = timestamp.parse::<i64>() else {
        return old(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]");
    };
    if (now - ts).abs() > 3_600_000 {
        return old(310000, "invalid timestamp");
    }
    if q.get("sign").map(String::as_str) != Some(crypto::robot_sign(ROBOT_SECRET, &timestamp).as_str()) {
        return old(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]");
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return old(40035, "缺少参数 json");
    };
    let msgtype = body["msgtype"].as_str().unwrap_or_default().to_string();
    let content = body.get(msgtype.as_str()).cloned().unwrap_or(Value::Null);
    let valid = match msgtype.as_str() {
        "text" => content["content"].as_str().is_some_and(|c| !c.is_empty()),
        "markdown" => content["title"].is_string() && content["text"].as_str().is_some_and(|t| !t.is_empty()),
        "link" => content["text"].is_string() && content["messageUrl"].is_string(),
        "actionCard" | "feedCard" => content.is_object(),
        _ => false,
    };
    if !valid {
        return old(40035, &format!("缺少参数 {msgtype}"));
    }
    let mut state = fake.state();
    let window = state.robot_window.entry(ROBOT_ACCESS_TOKEN.to_string()).or_default();
    while window.front().is_some_and(|t| *t <= now - 60_000) {
        window.pop_front();
    }
    if window.len() >= ROBOT_PER_MINUTE {
        return old(130101, "send too fast, exceed 20 times per minute");
    }
    window.push_back(now);
    state.robot_messages.push(RobotMessage {
        robot: ROBOT_ACCESS_TOKEN.to_string(),
        msgtype,
        content,
        at: body.get("at").cloned().unwrap_or(Value::Null),
        at_ms: now,
    });
    old(0, "ok")
}

fn body_json(body: &str) -> Option<Value> {
    serde_json::from_str::<Value>(body).ok().filter(Value::is_object)
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `POST /topapi/message/corpconversation/asyncsend_v2?access_token=`.
pub(crate) async fn asyncsend(State(fake): Fake, Query(q): Params, body: String) -> Response {
    if let Some(e) = fake.old_token_failure(q.get("access_token"), Family::Topapi) {
        return e;
    }
    let Some(body) = body_json(&body) else {
        return wrapped("40035", "缺少参数 agent_id");
    };
    let agent_id = as_i64(&body["agent_id"]);
    if agent_id.is_none() {
        return wrapped("40035", "缺少参数 agent_id");
    }
    if agent_id != Some(AGENT_ID) {
        return wrapped("40056", "不合法的agentid");
    }
    let userids: Vec<String> = body["userid_list"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if userids.is_empty()
        && body["to_all_user"] != json!(true)
        && body["dept_id_list"].as_str().unwrap_or("").is_empty()
    {
        return wrapped("40035", "缺少参数 userid_list");
    }
    if userids.len() > 100 {
        return wrapped("40035", "userid_list 最多支持100个用户");
    }
    let msg = &body["msg"];
    let msgtype = msg["msgtype"].as_str().unwrap_or_default();
    let valid = match msgtype {
        "text" => msg["text"]["content"].as_str().is_some_and(|c| !c.is_empty()),
        "markdown" => msg["markdown"]["title"].is_string() && msg["markdown"]["text"].is_string(),
        "oa" => msg["oa"]["head"].is_object() && msg["oa"]["body"].is_object(),
        "link" | "action_card" | "image" | "file" | "voice" => msg[msgtype].is_object(),
        _ => false,
    };
    if !valid {
        return wrapped("40035", "缺少参数 msg");
    }
    let mut state = fake.state();
    state.next_task_id += 1;
    let task_id = state.next_task_id;
    state.notifications.push(Notification {
        task_id,
        agent_id: AGENT_ID,
        userids,
        msg: msg.clone(),
        at_ms: fake.ctx.clock.now_ms(),
    });
    ok(json!({"task_id": task_id, "request_id": crate::errors::request_id()}))
}

/// `POST /topapi/message/corpconversation/getsendprogress`: every task is delivered at once.
pub(crate) async fn send_progress(State(fake): Fake, Query(q): Params, body: String) -> Response {
    if let Some(e) = fake.old_token_failure(q.get("access_token"), Family::Topapi) {
        return e;
    }
    let task_id = body_json(&body).and_then(|b| as_i64(&b["task_id"]));
    if !fake.state().notifications.iter().any(|n| Some(n.task_id) == task_id) {
        return wrapped("40035", "不合法的task_id");
    }
    ok(json!({"progress": {"progress_in_percent": 100, "status": 2}}))
}

/// `POST /topapi/message/corpconversation/getsendresult`: recipients known to the seed are
/// unread, the others invalid.
pub(crate) async fn send_result(State(fake): Fake, Query(q): Params, body: String) -> Response {
    if let Some(e) = fake.old_token_failure(q.get("access_token"), Family::Topapi) {
        return e;
    }
    let task_id = body_json(&body).and_then(|b| as_i64(&b["task_id"]));
    let state = fake.state();
    let Some(n) = state.notifications.iter().find(|n| Some(n.task_id) == task_id) else {
        return wrapped("40035", "不合法的task_id");
    };
    let known = |u: &&String| qiao_sandbox_kit::seed::PEOPLE.iter().any(|p| p.dingtalk_user_id == u.as_str());
    let unread: Vec<&String> = n.userids.iter().filter(known).collect();
    let invalid: Vec<&String> = n.userids.iter().filter(|u| !known(u)).collect();
    ok(json!({"send_result": {"read_user_id_list": [], "unread_user_id_list": unread,
                               "invalid_user_id_list": invalid, "forbidden_user_id_list": [],
                               "failed_user_id_list": [], "invalid_dept_id_list": []}}))
}

/// `POST /attendance/list?access_token=`: results of `userIdList` between `workDateFrom` and
/// `workDateTo` (whole days, at most 7 apart), `offset`/`limit` (≤ 50) paging with `hasMore`.
pub(crate) async fn attendance_list(State(fake): Fake, Query(q): Params, body: String) -> Response {
    if let Some(e) = fake.old_token_failure(q.get("access_token"), Family::Direct) {
        return e;
    }
    let Some(body) = body_json(&body) else {
        return old(40035, "缺少参数 workDateFrom");
    };
    let from = body["workDateFrom"].as_str().and_then(day_of_date);
    let to = body["workDateTo"].as_str().and_then(day_of_date);
    let (Some(from), Some(to)) = (from, to) else {
        return old(40035, "缺少参数 workDateFrom/workDateTo，格式 yyyy-MM-dd HH:mm:ss");
    };
    if to < from || to - from > 7 {
        return old(40035, "workDateFrom 和 workDateTo 的间隔不能超过7天");
    }
    let Some(users) = body["userIdList"].as_array() else {
        return old(40035, "缺少参数 userIdList");
    };
    let users: Vec<&str> = users.iter().filter_map(Value::as_str).collect();
    if users.is_empty() || users.len() > 50 {
        return old(40035, "userIdList 必须包含1到50个用户");
    }
    let offset = as_i64(&body["offset"]).unwrap_or(0);
    let limit = as_i64(&body["limit"]).unwrap_or(50);
    if offset < 0 || !(1..=50).contains(&limit) {
        return old(40035, "offset 不能为负数，limit 取值 1 到 50");
    }
    let (lo, hi) = (cst_midnight(from), cst_midnight(to));
    let state = fake.state();
    let matching: Vec<&Value> = state
        .attendance
        .iter()
        .filter(|r| {
            let day = r["workDate"].as_i64().unwrap_or(0);
            (lo..=hi).contains(&day) && users.contains(&r["userId"].as_str().unwrap_or(""))
        })
        .collect();
    let (offset, limit) = (offset as usize, limit as usize);
    let page: Vec<&Value> = matching.iter().skip(offset).take(limit).copied().collect();
    let has_more = offset + page.len() < matching.len();
    ok(json!({"hasMore": has_more, "recordresult": page}))
}

/// Any other path: DingTalk's "unknown API" answers.
pub(crate) async fn unknown_api(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/v1.0/") {
        new_api(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )
    } else {
        old(22, &format!("Invalid method[submsg=不合法ApiName {path}]"))
    }
}
