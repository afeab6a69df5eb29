//! The DingTalk connector, built to Wasm, through the host against the DingTalk fake: every
//! operation, every fault mode, paging across pages, encrypted callbacks, and a real flow
//! (finished approvals → work notifications) with token expiry and throttling armed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qiao_contract::{ConnectorError, ErrorClass};
use qiao_engine::{FlowRunner, TriggerInput};
use qiao_fake_dingtalk::{
    AGENT_ID, APP_KEY, APP_SECRET, CALLBACK_AES_KEY, CALLBACK_TOKEN, DingTalkFake, MATERIAL_PROCESS,
    ROBOT_ACCESS_TOKEN, ROBOT_PER_MINUTE, ROBOT_SECRET, time,
};
use qiao_flow::MemorySecrets;
use qiao_host::{CallError, Connection, Connector, ConnectorPolicy, LimitsOverride, RuntimeConfig};
use qiao_sandbox_kit::seed::PEOPLE;
use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use qiao_store::Store;
use serde_json::{Value, json};

use crate::common::{load, loopback_policy, runtime_with, serve};

const TOKEN_PATH: &str = "/v1.0/oauth2/accessToken";

/// The host's clock is the sandbox clock, so advancing it ages tokens on both sides.
struct SandboxClock(Clock);

impl qiao_host::Clock for SandboxClock {
    fn now_ms(&self) -> u64 {
        self.0.now_ms().max(0) as u64
    }
}

struct Env {
    fake: Arc<DingTalkFake>,
    running: Running,
    connector: Connector,
    conn: Connection,
}

impl Env {
    fn ctx(&self) -> &Ctx {
        self.fake.ctx()
    }

    fn token_calls(&self) -> usize {
        self.ctx().journal.matching("POST", TOKEN_PATH).len()
    }

    fn connect(&self, config: &Value) -> Result<Connection> {
        Ok(self.connector.connect(&format!("dingtalk-{}", fastrand_scope()), config)?)
    }
}

fn fastrand_scope() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn config(url: &str) -> Value {
    json!({
        "app_key": APP_KEY, "app_secret": APP_SECRET, "agent_id": AGENT_ID,
        "robot_access_token": ROBOT_ACCESS_TOKEN, "robot_secret": ROBOT_SECRET,
        "token": CALLBACK_TOKEN, "aes_key": CALLBACK_AES_KEY, "owner_key": APP_KEY,
        "oapi_url": url, "api_url": url,
    })
}

async fn env_with(policy: ConnectorPolicy) -> Result<Env> {
    let ctx = Ctx::new(Clock::new());
    let fake = DingTalkFake::new(ctx.clone());
    let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse()?).await?;
    let rt = runtime_with(RuntimeConfig {
        clock: Arc::new(SandboxClock(ctx.clock.clone())),
        ..Default::default()
    })?;
    let connector = load(&rt, "dingtalk", policy).await?;
    let conn = connector.connect(&format!("dingtalk-{}", fastrand_scope()), &config(&running.url))?;
    Ok(Env { fake, running, connector, conn })
}

async fn env() -> Result<Env> {
    env_with(loopback_policy()).await
}

fn connector_error(e: CallError) -> ConnectorError {
    match e {
        CallError::Connector(e) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

// ---- actions ------------------------------------------------------------------------------

#[tokio::test]
async fn robot_send_posts_signed_text_and_markdown_once_per_key() -> Result<()> {
    let env = env().await?;
    let text = json!({"text": "ERP 升级构建失败 @13800000000", "at_mobiles": ["13800000000"]});
    let out = env.conn.invoke("robot-send", &text, "flow:r1:notify").await?;
    assert_eq!(out.output, json!({"sent": true, "msgtype": "text"}));
    let md = json!({"markdown": {"title": "审批通过", "text": "### 物料申请已通过\n- 物料: M-1002"}, "at_user_ids": ["lina02"]});
    env.conn.invoke("robot-send", &md, "flow:r2:notify").await?;
    // A retry of the first record does not post again.
    env.conn.invoke("robot-send", &text, "flow:r1:notify").await?;
    let sent = env.fake.robot_messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].msgtype, "text");
    assert_eq!(sent[0].content["content"], "ERP 升级构建失败 @13800000000");
    assert_eq!(sent[0].at["atMobiles"], json!(["13800000000"]));
    assert_eq!(sent[1].msgtype, "markdown");
    assert_eq!(sent[1].content["title"], "审批通过");
    assert_eq!(sent[1].at["atUserIds"], json!(["lina02"]));
    assert_eq!(env.ctx().journal.matching("POST", "/robot/send").len(), 2);
    Ok(())
}

#[tokio::test]
async fn bad_robot_secret_is_a_config_error_naming_310000() -> Result<()> {
    let env = env().await?;
    let mut cfg = config(&env.running.url);
    cfg["robot_secret"] = json!("SECnot-the-right-secret");
    let conn = env.connect(&cfg)?;
    let err = connector_error(conn.invoke("robot-send", &json!({"text": "你好"}), "k").await.unwrap_err());
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(err.message().contains("310000") && err.message().contains("sign not match"), "{err}");
    let mut cfg = config(&env.running.url);
    cfg["robot_access_token"] = json!("no-such-robot");
    let conn = env.connect(&cfg)?;
    let err = connector_error(conn.invoke("robot-send", &json!({"text": "你好"}), "k").await.unwrap_err());
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(err.message().contains("300005"), "{err}");
    assert!(env.fake.robot_messages().is_empty());
    Ok(())
}

#[tokio::test]
async fn robot_sending_too_fast_is_rate_limited_until_the_minute_is_over() -> Result<()> {
    let env = env().await?;
    for i in 0..ROBOT_PER_MINUTE {
        env.conn.invoke("robot-send", &json!({"text": format!("第{i}条")}), &format!("k{i}")).await?;
    }
    let err =
        connector_error(env.conn.invoke("robot-send", &json!({"text": "第21条"}), "k21").await.unwrap_err());
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert_eq!(err.retry_after_ms(), Some(60_000));
    assert!(err.message().contains("130101"), "{err}");
    env.ctx().clock.advance_ms(61_000);
    env.conn.invoke("robot-send", &json!({"text": "第21条"}), "k21").await?;
    assert_eq!(env.fake.robot_messages().len(), ROBOT_PER_MINUTE + 1);
    Ok(())
}

#[tokio::test]
async fn work_notify_delivers_to_each_user_once_per_key() -> Result<()> {
    let env = env().await?;
    let input = json!({"userids": ["zhangwei01", "lina02"], "markdown": {"title": "工时提醒", "text": "请于今天 18:00 前填写工时"}});
    let out = env.conn.invoke("work-notify", &input, "flow:w1:notify").await?;
    assert!(out.output["task_id"].as_i64().is_some(), "{}", out.output);
    env.conn.invoke("work-notify", &input, "flow:w1:notify").await?;
    let oa = json!({"userids": "wangqiang03", "oa": {"head": {"bgcolor": "FFBBBBBB", "text": "审批"},
                                                       "body": {"title": "物料申请已通过", "content": "M-1002 × 2"}}});
    env.conn.invoke("work-notify", &oa, "flow:w2:notify").await?;
    assert_eq!(env.fake.notifications().len(), 2);
    assert_eq!(env.fake.notifications_for("lina02").len(), 1);
    assert_eq!(env.fake.notifications_for("lina02")[0]["markdown"]["title"], "工时提醒");
    assert_eq!(env.fake.notifications_for("wangqiang03")[0]["msgtype"], "oa");
    assert_eq!(env.token_calls(), 1, "the token is cached");
    Ok(())
}

#[tokio::test]
async fn create_approval_files_form_values_once_per_key() -> Result<()> {
    let env = env().await?;
    let input = json!({"process_code": MATERIAL_PROCESS, "originator_user_id": "chenjing05",
                       "form": {"物料编码": "M-1003", "数量": 300, "用途": "机房布线", "项目": "MES"}});
    let out = env.conn.invoke("create-approval", &input, "flow:a1:file").await?;
    let id = out.output["instance_id"].as_str().context("instance_id")?.to_string();
    env.conn.invoke("create-approval", &input, "flow:a1:file").await?;
    assert_eq!(env.fake.created_instances(), vec![id.clone()]);
    let instance = env.fake.instance(&id).context("created")?;
    assert_eq!(instance["status"], "RUNNING");
    let form = instance["formComponentValues"].as_array().context("form")?;
    assert!(form.iter().any(|f| f["name"] == "数量" && f["value"] == "300"), "{form:?}");
    // A missing required field is the input's fault.
    let bad =
        json!({"process_code": MATERIAL_PROCESS, "originator_user_id": "chenjing05", "form": {"数量": 1}});
    let err = connector_error(env.conn.invoke("create-approval", &bad, "flow:a2:file").await.unwrap_err());
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err}");
    assert!(err.message().contains("invalidParameter"), "{err}");
    Ok(())
}

// ---- triggers -----------------------------------------------------------------------------

/// Polls until a round ends, returning every record id and the number of pages.
async fn drain(
    conn: &Connection,
    op: &str,
    params: &Value,
    cursor: &mut Option<String>,
) -> Result<(Vec<String>, usize)> {
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let batch = conn.poll(op, params, cursor.as_deref()).await?;
        pages += 1;
        ids.extend(batch.records.into_iter().map(|r| r.id.unwrap_or_default()));
        *cursor = batch.next_cursor.or(cursor.take());
        if !batch.more {
            return Ok((ids, pages));
        }
        assert!(pages < 100, "paging does not end");
    }
}

fn finished_ids(fake: &DingTalkFake, code: &str) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = fake.instance_ids(code, "COMPLETED").into_iter().collect();
    ids.extend(fake.instance_ids(code, "TERMINATED"));
    ids
}

#[tokio::test]
async fn approvals_completed_pages_through_every_finished_instance_once() -> Result<()> {
    let env = env().await?;
    let params = json!({"process_code": MATERIAL_PROCESS, "window": "30d"});
    let mut cursor = None;
    let (ids, pages) = drain(&env.conn, "approvals-completed", &params, &mut cursor).await?;
    let expected = finished_ids(&env.fake, MATERIAL_PROCESS);
    assert!(expected.len() > 20, "the seed needs more than one page: {}", expected.len());
    assert_eq!(pages, 2);
    assert_eq!(ids.len(), expected.len(), "no duplicates");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);

    // Nothing new: the next round emits nothing.
    let (again, _) = drain(&env.conn, "approvals-completed", &params, &mut cursor).await?;
    assert!(again.is_empty(), "{again:?}");

    // An instance finishes: the next round emits exactly it, with its result.
    let running = env.fake.instance_ids(MATERIAL_PROCESS, "RUNNING");
    assert!(env.fake.complete_instance(&running[0], false));
    env.ctx().clock.advance_ms(1_000);
    let batch = env.conn.poll("approvals-completed", &params, cursor.as_deref()).await?;
    let mut got: Vec<_> = batch.records.clone();
    let mut c = batch.next_cursor.clone().or(cursor.clone());
    if batch.more {
        let (rest, _) = drain(&env.conn, "approvals-completed", &params, &mut c).await?;
        assert!(rest.is_empty(), "{rest:?}");
    }
    assert_eq!(got.len(), 1);
    let record = got.remove(0);
    assert_eq!(record.id.as_deref(), Some(running[0].as_str()));
    assert_eq!(
        (record.data["status"].as_str(), record.data["result"].as_str()),
        (Some("COMPLETED"), Some("refuse"))
    );
    assert_eq!(record.data["processCode"], MATERIAL_PROCESS);
    let (after, _) = drain(&env.conn, "approvals-completed", &params, &mut c).await?;
    assert!(after.is_empty(), "emitted once: {after:?}");
    Ok(())
}

#[tokio::test]
async fn attendance_records_page_across_windows_user_chunks_and_offsets() -> Result<()> {
    let env = env().await?;
    // 6 real users and 50 unknown ones: two chunks of ≤ 50 users.
    let mut users: Vec<String> = PEOPLE.iter().map(|p| p.dingtalk_user_id.to_string()).collect();
    users.extend((0..50).map(|i| format!("nobody{i:02}")));
    let today = time::cst_day(env.ctx().clock.now_ms());
    let params = json!({"user_ids": users, "start_date": time::date_of_day(today - 10)});
    let mut cursor = None;
    let (ids, pages) = drain(&env.conn, "attendance-records", &params, &mut cursor).await?;
    let (lo, hi) = (time::cst_midnight(today - 10), time::cst_midnight(today - 1));
    let expected: BTreeSet<String> = env
        .fake
        .attendance_records()
        .iter()
        .filter(|r| (lo..=hi).contains(&r["workDate"].as_i64().unwrap_or(0)))
        .map(|r| r["id"].to_string())
        .collect();
    assert!(expected.len() > 50, "a window needs more than one page");
    assert_eq!(ids.len(), expected.len(), "no duplicates");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    assert!(pages >= 4, "two windows, two chunks each, more than one page in the first: {pages}");
    let queries = env.ctx().journal.matching("POST", "/attendance/list");
    assert_eq!(queries.len(), pages);
    // Today is not over: nothing more to read until tomorrow.
    let (none, _) = drain(&env.conn, "attendance-records", &params, &mut cursor).await?;
    assert!(none.is_empty());
    env.ctx().clock.advance_ms(86_400_000);
    let (tomorrow, _) = drain(&env.conn, "attendance-records", &params, &mut cursor).await?;
    let today_rows = env
        .fake
        .attendance_records()
        .iter()
        .filter(|r| r["workDate"].as_i64() == Some(time::cst_midnight(today)))
        .count();
    assert_eq!(tomorrow.len(), today_rows);
    Ok(())
}

// ---- faults -------------------------------------------------------------------------------

#[tokio::test]
async fn expired_tokens_are_refreshed_transparently_with_one_token_call() -> Result<()> {
    let env = env().await?;
    let notify = json!({"userids": "zhaolei06", "text": "提醒"});
    env.conn.invoke("work-notify", &notify, "n1").await?;
    assert_eq!(env.token_calls(), 1);

    // Old API, /topapi family (88 + sub_code 42001).
    env.ctx().faults.expire_tokens();
    env.conn.invoke("work-notify", &notify, "n2").await?;
    assert_eq!(env.token_calls(), 2);
    // New API (400 InvalidAuthentication).
    env.ctx().faults.expire_tokens();
    let input = json!({"process_code": MATERIAL_PROCESS, "originator_user_id": "zhaolei06",
                       "form": {"物料编码": "M-1001", "数量": 1, "用途": "测试", "项目": "ERP"}});
    env.conn.invoke("create-approval", &input, "a1").await?;
    assert_eq!(env.token_calls(), 3);
    // Legacy endpoint (42001 direct).
    env.ctx().faults.expire_tokens();
    let params = json!({"user_ids": ["zhaolei06"]});
    env.conn.poll("attendance-records", &params, None).await?;
    assert_eq!(env.token_calls(), 4);
    // Time passing: the connector renews before the 7200 s are over, without a failed call.
    env.ctx().clock.advance_ms(7_200_000);
    env.conn.invoke("work-notify", &notify, "n3").await?;
    assert_eq!(env.token_calls(), 5);
    let refused = env
        .ctx()
        .journal
        .entries()
        .iter()
        .filter(|e| e.path == "/topapi/message/corpconversation/asyncsend_v2")
        .count();
    assert_eq!(refused, 4, "n1, n2 refused once and retried, n3");
    assert_eq!(env.fake.notifications().len(), 3);
    Ok(())
}

#[tokio::test]
async fn wrong_app_secret_is_a_config_error() -> Result<()> {
    let env = env().await?;
    let mut cfg = config(&env.running.url);
    cfg["app_secret"] = json!("wrong");
    let conn = env.connect(&cfg)?;
    let err = connector_error(
        conn.invoke("work-notify", &json!({"userids": "lina02", "text": "x"}), "k").await.unwrap_err(),
    );
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(err.message().contains("invalidClientIdOrSecret"), "{err}");
    assert!(!err.message().contains("wrong"), "the secret stays out of messages: {err}");
    Ok(())
}

#[tokio::test]
async fn throttling_is_rate_limited_and_the_next_call_succeeds() -> Result<()> {
    let env = env().await?;
    let notify = json!({"userids": "liuyang04", "text": "限流测试"});
    // Old-API throttle (errcode 90018) on the token call and on a send.
    env.ctx().faults.throttle_next(1);
    let err = connector_error(env.conn.invoke("work-notify", &notify, "t1").await.unwrap_err());
    assert_eq!((err.class(), err.retry_after_ms()), (ErrorClass::RateLimited, Some(1_000)), "{err}");
    env.conn.invoke("work-notify", &notify, "t1").await?;
    env.ctx().faults.throttle_next(1);
    let err = connector_error(env.conn.invoke("work-notify", &notify, "t2").await.unwrap_err());
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert!(err.message().contains("90018"), "{err}");
    env.conn.invoke("work-notify", &notify, "t2").await?;
    // New-API throttle (403 Forbidden.AccessDenied.QpsLimitForApi).
    env.fake.throttle_new_api_next(1);
    let params = json!({"process_code": MATERIAL_PROCESS, "window": "1d"});
    let err = connector_error(env.conn.poll("approvals-completed", &params, None).await.unwrap_err());
    assert_eq!((err.class(), err.retry_after_ms()), (ErrorClass::RateLimited, Some(1_000)), "{err}");
    assert!(err.message().contains("QpsLimitForApi"), "{err}");
    env.conn.poll("approvals-completed", &params, None).await?;
    assert_eq!(env.fake.notifications().len(), 2, "each throttled send went out once");
    Ok(())
}

#[tokio::test]
async fn server_errors_resets_and_slow_answers_are_transient() -> Result<()> {
    let policy = ConnectorPolicy {
        allow_private: true,
        limits: LimitsOverride { http_timeout_ms: Some(500), ..Default::default() },
        ..Default::default()
    };
    let env = env_with(policy).await?;
    let notify = json!({"userids": "lina02", "text": "x"});
    env.conn.invoke("work-notify", &notify, "warm").await?;
    for (arm, what) in [(0, "503"), (1, "reset"), (2, "slow")] {
        match arm {
            0 => env.ctx().faults.fail_next(1, 503),
            1 => env.ctx().faults.reset_next(1),
            _ => env.ctx().faults.slow_next(1, 2_000),
        }
        let key = format!("k-{what}");
        let err = connector_error(env.conn.invoke("work-notify", &notify, &key).await.unwrap_err());
        assert_eq!(err.class(), ErrorClass::Transient, "{what}: {err}");
        env.conn.invoke("work-notify", &notify, &key).await?;
    }
    env.ctx().faults.fail_next(1, 500);
    let err = connector_error(
        env.conn
            .poll("approvals-completed", &json!({"process_code": MATERIAL_PROCESS}), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    // Wait out the slow answer the connector gave up on: the fake drops a request whose client
    // hung up, so that send never happened, and each failed send went out once on its retry.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(env.fake.notifications().len(), 1 + 3);
    Ok(())
}

// ---- callbacks ----------------------------------------------------------------------------

#[derive(Clone)]
struct Receiver {
    conn: Connection,
    records: Arc<Mutex<Vec<qiao_contract::SourceRecord>>>,
    errors: Arc<Mutex<Vec<ConnectorError>>>,
}

/// What `qiao serve` would do: pass the query string in `x-qiao-query`, answer with the reply.
async fn receive(State(rx): State<Receiver>, RawQuery(query): RawQuery, body: axum::body::Bytes) -> Response {
    let headers = vec![("x-qiao-query".to_string(), query.unwrap_or_default())];
    match rx.conn.verify_webhook(&headers, &body).await {
        Ok(result) => {
            rx.records.lock().unwrap().extend(result.records);
            match result.reply {
                Some(reply) => {
                    (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK), reply.body).into_response()
                }
                None => StatusCode::OK.into_response(),
            }
        }
        Err(e) => {
            let e = connector_error(e);
            rx.errors.lock().unwrap().push(e.clone());
            (StatusCode::FORBIDDEN, e.to_string()).into_response()
        }
    }
}

#[tokio::test]
async fn callbacks_verify_decrypt_and_answer_success_and_bad_signatures_are_refused() -> Result<()> {
    let env = env().await?;
    let rx = Receiver { conn: env.conn.clone(), records: Arc::default(), errors: Arc::default() };
    let addr = serve(
        axum::Router::new().route("/dingtalk/events", axum::routing::post(receive)).with_state(rx.clone()),
    )
    .await?;
    let url = format!("http://{addr}/dingtalk/events");

    let check = env.fake.push_callback(&url, &json!({"EventType": "check_url"})).await?;
    assert!(check.acknowledged, "{check:?}");
    let event = json!({"EventType": "bpms_instance_change", "processInstanceId": "a171de6c-8bc4-4fa5-9a7f-0c1d2e3f4a5b",
                       "processCode": MATERIAL_PROCESS, "type": "finish", "result": "agree", "staffId": "lina02",
                       "corpId": qiao_fake_dingtalk::CORP_ID, "createTime": 1714525080000_i64, "finishTime": 1714528680000_i64});
    let out = env.fake.push_callback(&url, &event).await?;
    assert!(out.acknowledged, "{out:?}");
    {
        let records = rx.records.lock().unwrap();
        assert_eq!(records.len(), 1, "the handshake carries no record");
        assert_eq!(
            records[0].id.as_deref(),
            Some("bpms_instance_change:a171de6c-8bc4-4fa5-9a7f-0c1d2e3f4a5b:finish")
        );
        assert_eq!(records[0].data, event);
    }

    env.ctx().faults.bad_signature_next(1);
    let bad = env.fake.push_callback(&url, &event).await?;
    assert!(bad.signed_wrongly);
    assert!(!bad.acknowledged);
    assert_eq!(bad.status, 403);
    let errors = rx.errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].class(), ErrorClass::Unauthorized);
    assert!(errors[0].message().contains("msg_signature does not match"), "{}", errors[0]);
    assert_eq!(rx.records.lock().unwrap().len(), 1, "nothing from the forged delivery");

    // A connection expecting another receiver refuses even a well-signed delivery.
    let mut cfg = config(&env.running.url);
    cfg["owner_key"] = json!(qiao_fake_dingtalk::CORP_ID);
    let other = Receiver { conn: env.connect(&cfg)?, records: Arc::default(), errors: Arc::default() };
    let addr =
        serve(axum::Router::new().route("/cb", axum::routing::post(receive)).with_state(other.clone()))
            .await?;
    let out = env.fake.push_callback(&format!("http://{addr}/cb"), &event).await?;
    assert!(!out.acknowledged);
    assert!(other.errors.lock().unwrap()[0].message().contains("receiver"), "{:?}", other.errors);
    Ok(())
}

// ---- a real flow --------------------------------------------------------------------------

fn flow_yaml(url: &str) -> String {
    format!(
        r#"
flow: approvals-to-notify
description: Tell applicants their material request finished
connections:
  dt:
    connector: dingtalk@^0.1
    config: {{ app_key: "{APP_KEY}", app_secret: "${{secret.dingtalk_app_secret}}", agent_id: {AGENT_ID}, oapi_url: "{url}", api_url: "{url}" }}
trigger:
  poll:
    connection: dt
    operation: approvals-completed
    every: 1m
    params: {{ process_code: "{MATERIAL_PROCESS}", window: 30d }}
steps:
  - id: notify
    action:
      connection: dt
      operation: work-notify
      input:
        userids: record.originatorUserId
        text: "record.processInstanceId ~ ' ' ~ record.status ~ ' ' ~ record.result"
    retry: {{ attempts: 6, backoff: 20ms, max_backoff: 2s }}
"#
    )
}

fn runner(yaml: &str, connector: &Connector, store: &Store) -> Result<FlowRunner> {
    let secrets = MemorySecrets::new().with_secret("dingtalk_app_secret", APP_SECRET);
    crate::common::flow_runner("approvals.yaml", yaml, connector, store, &secrets)
}

/// Notified instance ids, counted.
fn notified(fake: &DingTalkFake) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for n in fake.notifications() {
        let text = n.msg["text"]["content"].as_str().unwrap_or_default().to_string();
        let id = text.split(' ').next().unwrap_or_default().to_string();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn flow_notifies_every_finished_approval_once_through_expiry_and_throttling() -> Result<()> {
    let env = env().await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let runner = runner(&flow_yaml(&env.running.url), &env.connector, &store)?;

    // First run: throttling armed (token call, a list page, sends).
    env.ctx().faults.throttle_next(3);
    let run = runner.fire(TriggerInput::Poll).await?;
    let expected = finished_ids(&env.fake, MATERIAL_PROCESS);
    let c = run.info.counts;
    assert_eq!(
        (c.records_in as usize, c.records_out as usize, c.failed),
        (expected.len(), expected.len(), 0),
        "{c:?}"
    );
    let counts = notified(&env.fake);
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(counts.values().all(|n| *n == 1), "no duplicate notifications: {counts:?}");
    let throttled = env.ctx().journal.entries().iter().filter(|e| e.fault == Some("throttle")).count();
    assert_eq!(throttled, 3);

    // Three instances finish; every token expires and the gateway throttles again.
    let running = env.fake.instance_ids(MATERIAL_PROCESS, "RUNNING");
    assert!(env.fake.complete_instance(&running[0], true));
    assert!(env.fake.complete_instance(&running[1], false));
    assert!(env.fake.terminate_instance(&running[2]));
    env.ctx().clock.advance_ms(1_000);
    env.ctx().faults.expire_tokens();
    env.ctx().faults.throttle_next(2);
    let tokens_before = env.token_calls();
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!((run.info.counts.records_in, run.info.counts.failed), (3, 0), "{:?}", run.info.counts);
    let counts = notified(&env.fake);
    assert_eq!(counts.len(), expected.len() + 3);
    assert!(counts.values().all(|n| *n == 1), "no duplicate notifications: {counts:?}");
    for id in &running[..3] {
        assert_eq!(counts.get(id), Some(&1), "{id}");
    }
    let refreshes = env
        .ctx()
        .journal
        .matching("POST", TOKEN_PATH)
        .iter()
        .filter(|e| e.status == 200 && e.fault.is_none())
        .count();
    assert!(env.token_calls() > tokens_before, "the expired token was refreshed");
    assert_eq!(refreshes, 2, "one token at the start, one after the expiry");
    let texts: Vec<String> = env
        .fake
        .notifications()
        .iter()
        .map(|n| n.msg["text"]["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(texts.contains(&format!("{} COMPLETED agree", running[0])), "{texts:?}");
    assert!(texts.contains(&format!("{} COMPLETED refuse", running[1])), "{texts:?}");
    assert!(texts.contains(&format!("{} TERMINATED ", running[2])), "{texts:?}");

    // Nothing new: a third run sends nothing.
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(run.info.counts.records_in, 0);
    assert_eq!(env.fake.notifications().len(), expected.len() + 3);
    Ok(())
}
