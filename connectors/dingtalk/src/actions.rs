//! The actions: `robot-send`, `work-notify`, `create-approval`.
//!
//! DingTalk's send and create APIs take no idempotency key, so the connector keeps one: after
//! a successful call it stores the output in `kv` under the engine's idempotency key, and a
//! retry with the same key returns that output without calling DingTalk again. A crash between
//! DingTalk's answer and the `kv` write can still send twice (README § Delivery).

use qiao_sdk::http::Request;
use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, clock, json, kv};
use serde::Deserialize;

use crate::client::{api_call, oapi_post};
use crate::config::Config;
use crate::crypto::robot_sign;
use crate::errors::{Failure, classify};

/// The `kv` key remembering a completed action.
pub fn done_key(op: &str, idempotency_key: &str) -> String {
    format!("dingtalk:done:{op}:{idempotency_key}")
}

/// Runs `send` unless an action with the same idempotency key already completed.
fn once(op: &str, idempotency_key: &str, send: impl FnOnce() -> Result<Value>) -> Result<ActionOutput> {
    let key = done_key(op, idempotency_key);
    if !idempotency_key.is_empty()
        && let Some(done) = kv::get_json::<Value>(&key)
    {
        qiao_sdk::debug!("{op} already done for this idempotency key; not sending again");
        return Ok(ActionOutput::new(done));
    }
    let output = send()?;
    if !idempotency_key.is_empty()
        && let Err(e) = kv::set_json(&key, &output)
    {
        // Sent but not remembered: a retry would send again. Say so, and do not fail the step.
        qiao_sdk::warn!("{op} sent, but remembering it failed ({e}); a retry would send again");
    }
    Ok(ActionOutput::new(output))
}

/// A markdown message.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Markdown {
    title: String,
    text: String,
}

/// Input of `robot-send`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RobotInput {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    markdown: Option<Markdown>,
    #[serde(default)]
    at_mobiles: Vec<String>,
    #[serde(default)]
    at_user_ids: Vec<String>,
    #[serde(default)]
    at_all: bool,
}

/// The `msgtype` and its object from exactly one of `text` / `markdown`.
fn message(text: Option<String>, markdown: Option<Markdown>) -> Result<(&'static str, Value)> {
    match (text, markdown) {
        (Some(t), None) if !t.is_empty() => Ok(("text", json!({"content": t}))),
        (None, Some(m)) if !m.text.is_empty() => Ok(("markdown", json!({"title": m.title, "text": m.text}))),
        (Some(_), Some(_)) => Err(Error::invalid_input("input: give either text or markdown, not both")),
        _ => Err(Error::invalid_input("input: needs a non-empty text or markdown.text")),
    }
}

/// `robot-send`: a text or markdown message to the configured group robot, signed when a
/// `robot_secret` is configured.
pub fn robot_send(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: RobotInput = req.input()?;
    let Some(robot) = config.robot_access_token.as_deref() else {
        return Err(Error::config("config.robot_access_token: required for robot-send"));
    };
    let (msgtype, content) = message(input.text, input.markdown)?;
    let body = json!({
        "msgtype": msgtype,
        msgtype: content,
        "at": {"atMobiles": input.at_mobiles, "atUserIds": input.at_user_ids, "isAtAll": input.at_all},
    });
    once("robot-send", req.idempotency_key, || {
        let mut request = Request::post(format!("{}/robot/send", config.oapi())).query("access_token", robot);
        if let Some(secret) = &config.robot_secret {
            let timestamp = clock::now_ms().to_string();
            let sign = robot_sign(secret, &timestamp);
            request = request.query("timestamp", &timestamp).query("sign", sign);
        }
        classify(&request.json(&body).send()?, "POST /robot/send").map_err(|f| match f {
            // The robot has its own token; an app-token code here means the robot's is wrong.
            Failure::Token(m) => Error::config(m),
            Failure::Other(e) => e,
        })?;
        Ok(json!({"sent": true, "msgtype": msgtype}))
    })
}

/// Recipients as a list or a comma-separated string.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum UserIds {
    List(Vec<String>),
    Joined(String),
}

impl UserIds {
    fn into_vec(self) -> Vec<String> {
        match self {
            UserIds::List(v) => v,
            UserIds::Joined(s) => {
                s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
            }
        }
    }
}

/// Input of `work-notify`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct NotifyInput {
    #[serde(default)]
    userids: Option<UserIds>,
    #[serde(default)]
    dept_ids: Vec<String>,
    #[serde(default)]
    to_all_user: bool,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    markdown: Option<Markdown>,
    /// An OA message object (`{"head": {...}, "body": {...}}`).
    #[serde(default)]
    oa: Option<Value>,
}

/// The most recipients one `asyncsend_v2` call takes.
pub const MAX_NOTIFY_USERS: usize = 100;

/// `work-notify`: a work notification from the app (`agent_id`) to users.
pub fn work_notify(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let agent_id = config.agent("work-notify")?;
    let input: NotifyInput = req.input()?;
    let userids = input.userids.map(UserIds::into_vec).unwrap_or_default();
    if userids.is_empty() && input.dept_ids.is_empty() && !input.to_all_user {
        return Err(Error::invalid_input("input: needs userids, dept_ids or to_all_user"));
    }
    if userids.len() > MAX_NOTIFY_USERS {
        return Err(Error::invalid_input(format!(
            "input.userids: at most {MAX_NOTIFY_USERS} users per notification, got {}",
            userids.len()
        )));
    }
    let msg = match input.oa {
        Some(oa) if input.text.is_none() && input.markdown.is_none() => {
            if !(oa["head"].is_object() && oa["body"].is_object()) {
                return Err(Error::invalid_input("input.oa: needs head and body objects"));
            }
            json!({"msgtype": "oa", "oa": oa})
        }
        Some(_) => return Err(Error::invalid_input("input: give one of text, markdown or oa")),
        None => {
            let (msgtype, content) = message(input.text, input.markdown)?;
            json!({"msgtype": msgtype, msgtype: content})
        }
    };
    let body = json!({
        "agent_id": agent_id,
        "userid_list": userids.join(","),
        "dept_id_list": input.dept_ids.join(","),
        "to_all_user": input.to_all_user,
        "msg": msg,
    });
    once("work-notify", req.idempotency_key, || {
        let out = oapi_post(&config, "/topapi/message/corpconversation/asyncsend_v2", &body)?;
        Ok(json!({"task_id": out["task_id"], "request_id": out["request_id"]}))
    })
}

/// Input of `create-approval`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ApprovalInput {
    process_code: String,
    originator_user_id: String,
    #[serde(default)]
    dept_id: Option<crate::config::NumberOrText>,
    /// Form field name → value.
    form: serde_json::Map<String, Value>,
}

/// A form value as DingTalk wants it: strings as they are, numbers and booleans as text,
/// tables, dates and contacts (arrays, objects) as JSON text.
fn form_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The department an approval is filed under when the input names none (the root).
pub const DEFAULT_DEPT_ID: i64 = 1;

/// `create-approval`: starts an approval instance of `process_code`.
pub fn create_approval(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: ApprovalInput = req.input()?;
    let dept_id = match &input.dept_id {
        None => DEFAULT_DEPT_ID,
        Some(d) => {
            d.value().ok_or_else(|| Error::invalid_input(format!("input.dept_id: not a number: {d:?}")))?
        }
    };
    let values: Vec<Value> =
        input.form.iter().map(|(name, value)| json!({"name": name, "value": form_value(value)})).collect();
    let body = json!({
        "processCode": input.process_code,
        "originatorUserId": input.originator_user_id,
        "deptId": dept_id,
        "formComponentValues": values,
    });
    once("create-approval", req.idempotency_key, || {
        let out = api_call(&config, "POST", "/v1.0/workflow/processInstances", &[], Some(&body))?;
        let id = out["instanceId"].as_str().ok_or_else(|| {
            Error::permanent("POST /v1.0/workflow/processInstances answered without instanceId")
        })?;
        Ok(json!({"instance_id": id}))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::ErrorClass;
    use qiao_sdk::http::Response;
    use qiao_sdk::testing::MockHost;

    fn config() -> Value {
        json!({"app_key": "k", "app_secret": "s", "agent_id": 2876543210_i64, "base_url": "https://dt.test",
               "robot_access_token": "rt", "robot_secret": "SECexample"})
    }

    fn invoke(
        op: fn(InvokeRequest<'_>) -> Result<ActionOutput>,
        input: Value,
        key: &str,
    ) -> Result<ActionOutput> {
        let config = config();
        op(InvokeRequest { op: "x", config: &config, input: &input, idempotency_key: key })
    }

    #[test]
    fn robot_send_signs_and_is_sent_once_per_idempotency_key() {
        let host = MockHost::new()
            .now_ms(1_700_000_000_000)
            .http(|_| Ok(Response::new(200).with_json(&json!({"errcode": 0, "errmsg": "ok"}))))
            .install();
        let input = json!({"markdown": {"title": "审批", "text": "### 已通过"}, "at_user_ids": ["lina02"]});
        let out = invoke(robot_send, input.clone(), "flow:rec-1:notify").unwrap();
        assert_eq!(out.output, json!({"sent": true, "msgtype": "markdown"}));
        let sent = &host.requests()[0];
        assert_eq!(sent.url_without_query(), "https://dt.test/robot/send");
        assert_eq!(sent.query_param("access_token").as_deref(), Some("rt"));
        assert_eq!(sent.query_param("timestamp").as_deref(), Some("1700000000000"));
        assert_eq!(sent.query_param("sign").as_deref(), Some("uroalHrWHORz59talE1o26b8HuX2kOp8WlAN91F9Pj0="));
        assert!(sent.url().contains("sign=uroalHrWHORz59talE1o26b8HuX2kOp8WlAN91F9Pj0%3D"), "{}", sent.url());
        let body = sent.body_json().unwrap();
        assert_eq!(body["msgtype"], "markdown");
        assert_eq!(body["at"]["atUserIds"], json!(["lina02"]));
        // The retry of the same record and step does not send again.
        assert_eq!(invoke(robot_send, input, "flow:rec-1:notify").unwrap().output, out.output);
        assert_eq!(host.requests().len(), 1);
    }

    #[test]
    fn robot_errors_are_mapped() {
        let _host = MockHost::new()
            .http(|_| {
                Ok(Response::new(200).with_json(&json!({"errcode": 310000, "errmsg": "sign not match"})))
            })
            .install();
        let e = invoke(robot_send, json!({"text": "x"}), "k").unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        drop(_host);
        let _host = MockHost::new()
            .http(
                |_| Ok(Response::new(200).with_json(&json!({"errcode": 130101, "errmsg": "send too fast"}))),
            )
            .install();
        let e = invoke(robot_send, json!({"text": "x"}), "k").unwrap_err();
        assert_eq!((e.class(), e.retry_after_ms()), (ErrorClass::RateLimited, Some(60_000)));
        let e = invoke(robot_send, json!({"text": "x", "markdown": {"title": "t", "text": "y"}}), "k")
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
    }

    #[test]
    fn work_notify_sends_a_joined_userid_list() {
        let host = MockHost::new()
            .kv_json("dingtalk:token:k", &json!({"token": "t", "expires_at_ms": u64::MAX}))
            .http(|_| {
                Ok(Response::new(200)
                    .with_json(&json!({"errcode": 0, "task_id": 256271667526_i64, "request_id": "r"})))
            })
            .install();
        let out = invoke(work_notify, json!({"userids": ["zhangwei01", "lina02"], "text": "工时提醒"}), "k1")
            .unwrap();
        assert_eq!(out.output["task_id"], 256271667526_i64);
        let sent = &host.requests()[0];
        assert_eq!(sent.query_param("access_token").as_deref(), Some("t"));
        let body = sent.body_json().unwrap();
        assert_eq!(body["userid_list"], "zhangwei01,lina02");
        assert_eq!(body["agent_id"], 2876543210_i64);
        assert_eq!(body["msg"], json!({"msgtype": "text", "text": {"content": "工时提醒"}}));
        let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
        let e = invoke(work_notify, json!({"userids": many, "text": "x"}), "k2").unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        let e = invoke(work_notify, json!({"text": "x"}), "k3").unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
    }

    #[test]
    fn create_approval_sends_form_component_values() {
        let host = MockHost::new()
            .kv_json("dingtalk:token:k", &json!({"token": "t", "expires_at_ms": u64::MAX}))
            .http(|_| Ok(Response::new(200).with_json(&json!({"instanceId": "a171de6c-8bc4"}))))
            .install();
        let input = json!({"process_code": "PROC-1", "originator_user_id": "lina02",
                           "form": {"物料编码": "M-1002", "数量": 2, "明细": [{"a": 1}]}});
        let out = invoke(create_approval, input, "k").unwrap();
        assert_eq!(out.output, json!({"instance_id": "a171de6c-8bc4"}));
        let sent = &host.requests()[0];
        assert_eq!(sent.header_value("x-acs-dingtalk-access-token"), Some("t"));
        let body = sent.body_json().unwrap();
        assert_eq!(body["deptId"], 1);
        let values = body["formComponentValues"].as_array().unwrap();
        assert!(values.contains(&json!({"name": "数量", "value": "2"})));
        assert!(values.contains(&json!({"name": "明细", "value": "[{\"a\":1}]"})));
    }
}
