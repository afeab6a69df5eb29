//! A protocol-faithful fake of the DingTalk (钉钉) open platform, for tests, the demo and
//! benchmarks. It sits on `qiao-sandbox-kit` (clock, faults, journal, tokens) and depends on
//! nothing of the runtime.
//!
//! The real platform has two hosts: `https://oapi.dingtalk.com` (old API: token in the query,
//! HTTP 200 with `errcode`) and `https://api.dingtalk.com` (new API, `/v1.0/...`: token in the
//! `x-acs-dingtalk-access-token` header, HTTP 4xx with `{code, message, requestid}`). The fake
//! serves both on one port, side by side; a client points both base URLs at it.
//!
//! Modelled: both token APIs (one token store, tokens valid on both generations), the custom
//! robot with HMAC-SHA256 signing and its per-minute limit, work notifications, OA approvals
//! (create, get, list ids with `nextToken` paging), attendance results with `offset`/`hasMore`
//! paging, and event callbacks pushed with DingTalk's AES/SHA-1 crypto. `README.md` lists the
//! error codes and what is assumed.

mod callback;
pub mod crypto;
mod errors;
mod oapi;
pub mod seed;
pub mod time;
mod workflow;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use qiao_sandbox_kit::{Ctx, System, Tokens};
use serde_json::{Value, json};

pub use callback::CallbackOutcome;
pub use seed::{CHANGE_PROCESS, MATERIAL_PROCESS, SEEDED_INSTANCES};

/// The demo app's AppKey (also the callback receiver id of the demo app).
pub const APP_KEY: &str = "dingqiaodemo8x3k2m";
/// The demo app's AppSecret.
pub const APP_SECRET: &str = "qiao-demo-app-secret-7f3c9a1e5b2d4f6a8c0e";
/// The demo corp's corpId.
pub const CORP_ID: &str = "dingqiaocorp0c1a2b3c4d5e";
/// The demo app's agent id (work notifications).
pub const AGENT_ID: i64 = 2_876_543_210;
/// The demo group robot's access token.
pub const ROBOT_ACCESS_TOKEN: &str = "5f1c0d9e8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";
/// The demo group robot's signing secret ("加签").
pub const ROBOT_SECRET: &str = "SECqiaodemo0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f";
/// The callback token the fake signs event pushes with.
pub const CALLBACK_TOKEN: &str = "qiaoCallbackToken2024";
/// The callback EncodingAESKey (43 characters).
pub const CALLBACK_AES_KEY: &str = "qiaoDemoEncodingAesKey0123456789abcdefGHIJK";
/// Token lifetime, seconds.
pub const TOKEN_TTL_SECS: i64 = 7200;
/// Messages one robot may send per minute.
pub const ROBOT_PER_MINUTE: usize = 20;

/// A message a group robot accepted.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RobotMessage {
    /// The robot's access token.
    pub robot: String,
    /// `text`, `markdown`, ...
    pub msgtype: String,
    /// The message body as sent (`text`, `markdown`, ... object).
    pub content: Value,
    /// The `at` object as sent.
    pub at: Value,
    /// Sandbox-clock ms when accepted.
    pub at_ms: i64,
}

/// A work notification accepted by `asyncsend_v2`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Notification {
    /// The `task_id` answered.
    pub task_id: i64,
    /// `agent_id`.
    pub agent_id: i64,
    /// The recipients.
    pub userids: Vec<String>,
    /// `msg` as sent.
    pub msg: Value,
    /// Sandbox-clock ms when accepted.
    pub at_ms: i64,
}

#[derive(Default)]
pub(crate) struct State {
    pub robot_messages: Vec<RobotMessage>,
    pub robot_window: HashMap<String, VecDeque<i64>>,
    pub notifications: Vec<Notification>,
    pub next_task_id: i64,
    pub instances: Vec<seed::Instance>,
    pub created: Vec<String>,
    pub attendance: Vec<Value>,
    pub callbacks: Vec<Value>,
    pub rng: Option<fastrand::Rng>,
}

/// The DingTalk fake.
pub struct DingTalkFake {
    pub(crate) ctx: Ctx,
    /// Access tokens from either token API.
    pub(crate) tokens: Tokens,
    /// The current token per app key: the token APIs return it again while it lives.
    pub(crate) current: Mutex<HashMap<String, String>>,
    pub(crate) state: Mutex<State>,
    /// Throttle answers armed for the new API only (403 `Forbidden.AccessDenied.QpsLimitForApi`).
    new_api_throttle: AtomicU32,
}

impl DingTalkFake {
    /// A fake seeded around the sandbox clock's now.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        let now = ctx.clock.now_ms();
        let tokens = Tokens::new("", ctx.clock.clone(), ctx.faults.clone());
        let state = State {
            instances: seed::instances(now),
            attendance: seed::attendance(now),
            next_task_id: 256_271_667_526,
            rng: Some(fastrand::Rng::with_seed(now as u64)),
            ..State::default()
        };
        Arc::new(DingTalkFake {
            ctx,
            tokens,
            current: Mutex::default(),
            state: Mutex::new(state),
            new_api_throttle: AtomicU32::new(0),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kit's context (clock, faults, journal).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Answers the next `n` new-API (`/v1.0/...`) calls with the new API's own throttle answer,
    /// HTTP 403 `Forbidden.AccessDenied.QpsLimitForApi` (the kit's `throttle` fault answers
    /// every path with the old API's `errcode 90018`).
    pub fn throttle_new_api_next(&self, n: u32) {
        self.new_api_throttle.fetch_add(n, Ordering::SeqCst);
    }

    pub(crate) fn take_new_api_throttle(&self) -> bool {
        self.new_api_throttle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    /// How many access tokens the token APIs issued.
    pub fn tokens_issued(&self) -> usize {
        self.tokens.issued_count()
    }

    /// Every robot message accepted, oldest first.
    pub fn robot_messages(&self) -> Vec<RobotMessage> {
        self.state().robot_messages.clone()
    }

    /// Every work notification accepted, oldest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.state().notifications.clone()
    }

    /// The work-notification messages delivered to `userid`, oldest first.
    pub fn notifications_for(&self, userid: &str) -> Vec<Value> {
        self.state()
            .notifications
            .iter()
            .filter(|n| n.userids.iter().any(|u| u == userid))
            .map(|n| n.msg.clone())
            .collect()
    }

    /// The ids of instances created through the API, oldest first.
    pub fn created_instances(&self) -> Vec<String> {
        self.state().created.clone()
    }

    /// One instance as `GET /v1.0/workflow/processInstances` returns its `result`.
    pub fn instance(&self, id: &str) -> Option<Value> {
        self.state().instances.iter().find(|i| i.id == id).map(seed::Instance::to_json)
    }

    /// Ids of the instances of `process_code` with `status`, oldest first.
    pub fn instance_ids(&self, process_code: &str, status: &str) -> Vec<String> {
        self.state()
            .instances
            .iter()
            .filter(|i| i.process_code == process_code && i.status == status)
            .map(|i| i.id.clone())
            .collect()
    }

    /// Finishes a RUNNING instance now: `COMPLETED` with `result` `agree` or `refuse`.
    /// Returns whether it was running.
    pub fn complete_instance(&self, id: &str, agree: bool) -> bool {
        self.finish(id, "COMPLETED", if agree { "agree" } else { "refuse" })
    }

    /// Terminates (withdraws) a RUNNING instance now. Returns whether it was running.
    pub fn terminate_instance(&self, id: &str) -> bool {
        self.finish(id, "TERMINATED", "")
    }

    fn finish(&self, id: &str, status: &'static str, result: &'static str) -> bool {
        let now = self.ctx.clock.now_ms();
        let mut state = self.state();
        match state.instances.iter_mut().find(|i| i.id == id && i.status == "RUNNING") {
            Some(i) => {
                i.status = status;
                i.result = result;
                i.finish_ms = Some(now);
                true
            }
            None => false,
        }
    }

    /// Every seeded attendance row (`recordresult` items).
    pub fn attendance_records(&self) -> Vec<Value> {
        self.state().attendance.clone()
    }

    /// The callbacks pushed so far: event, status answered, whether the reply verified.
    pub fn callbacks(&self) -> Vec<Value> {
        self.state().callbacks.clone()
    }
}

impl System for DingTalkFake {
    fn name(&self) -> &'static str {
        "dingtalk"
    }

    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/gettoken", get(oapi::gettoken))
            .route("/robot/send", post(oapi::robot_send))
            .route("/topapi/message/corpconversation/asyncsend_v2", post(oapi::asyncsend))
            .route("/topapi/message/corpconversation/getsendprogress", post(oapi::send_progress))
            .route("/topapi/message/corpconversation/getsendresult", post(oapi::send_result))
            .route("/attendance/list", post(oapi::attendance_list))
            .route("/v1.0/oauth2/accessToken", post(workflow::access_token))
            .route(
                "/v1.0/workflow/processInstances",
                post(workflow::create_instance).get(workflow::get_instance),
            )
            .route("/v1.0/workflow/processes/instanceIds/query", post(workflow::list_instance_ids))
            .fallback(oapi::unknown_api)
            .with_state(self)
    }

    /// The old API's per-app per-API QPS answer: HTTP 200 with `errcode 90018`. The
    /// alternatives are listed in the README (90006 per minute, 90005 per corp, `88` without
    /// a sub code, and the new API's 403 `Forbidden.AccessDenied.QpsLimitForApi`, which
    /// [`DingTalkFake::throttle_new_api_next`] arms).
    fn throttled(&self) -> Response {
        errors::old(90018, "当前企业对应的appkey调用该接口超过每秒限流阈值，请降低调用频率")
    }

    /// The gateway's answer to a server error: `status` with the new API's body shape and
    /// `errcode -1` (系统繁忙), so both generations' clients recognise it.
    fn server_error(&self, status: StatusCode) -> Response {
        use axum::response::IntoResponse;
        let body = json!({"errcode": -1, "errmsg": "系统繁忙", "code": "ServiceUnavailable",
                          "message": "系统繁忙，请稍后重试", "requestid": errors::request_id()});
        (status, axum::Json(body)).into_response()
    }

    fn snapshot(&self) -> Value {
        let state = self.state();
        let mut per_user: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for n in &state.notifications {
            for u in &n.userids {
                per_user.entry(u.clone()).or_default().push(json!({"task_id": n.task_id, "msg": n.msg}));
            }
        }
        let created: Vec<Value> = state
            .created
            .iter()
            .filter_map(|id| state.instances.iter().find(|i| &i.id == id))
            .map(seed::Instance::to_json)
            .collect();
        json!({
            "robot_messages": state.robot_messages,
            "notifications": per_user,
            "created_instances": created,
            "instances": state.instances.len(),
            "callbacks": state.callbacks,
        })
    }

    fn credentials(&self) -> Vec<(&'static str, String)> {
        vec![
            ("app_key", APP_KEY.into()),
            ("app_secret", APP_SECRET.into()),
            ("corp_id", CORP_ID.into()),
            ("agent_id", AGENT_ID.to_string()),
            ("robot_access_token", ROBOT_ACCESS_TOKEN.into()),
            ("robot_secret", ROBOT_SECRET.into()),
            ("callback_token", CALLBACK_TOKEN.into()),
            ("callback_aes_key", CALLBACK_AES_KEY.into()),
            ("material_process_code", MATERIAL_PROCESS.into()),
            ("change_process_code", CHANGE_PROCESS.into()),
        ]
    }
}
