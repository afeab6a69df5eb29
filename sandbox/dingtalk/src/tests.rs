//! The fake's protocol over real HTTP: tokens, error shapes, robot signing and limits, work
//! notifications, approval and attendance paging, callback crypto.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::extract::{Query, State};
use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use serde_json::{Value, json};

use super::*;
use crate::crypto::{callback_signature, decrypt, encrypt, robot_sign};

async fn serve() -> (Arc<DingTalkFake>, Running) {
    let ctx = Ctx::new(Clock::new());
    let fake = DingTalkFake::new(ctx.clone());
    let running = start(fake.clone(), ctx, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (fake, running)
}

async fn get(url: &str) -> Value {
    serde_json::from_str(&reqwest::get(url).await.unwrap().text().await.unwrap()).unwrap()
}

async fn post(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req =
        reqwest::Client::new().post(url).header("content-type", "application/json").body(body.to_string());
    if let Some(t) = token {
        req = req.header("x-acs-dingtalk-access-token", t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), serde_json::from_str(&resp.text().await.unwrap()).unwrap())
}

async fn old_token(base: &str) -> String {
    let t = get(&format!("{base}/gettoken?appkey={APP_KEY}&appsecret={APP_SECRET}")).await;
    t["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn token_apis_share_tokens_and_report_failures_per_generation() {
    let (fake, srv) = serve().await;
    let base = &srv.url;
    let t = get(&format!("{base}/gettoken?appkey={APP_KEY}&appsecret={APP_SECRET}")).await;
    assert_eq!((t["errcode"].as_i64(), t["expires_in"].as_i64()), (Some(0), Some(7200)));
    let (status, n) = post(
        &format!("{base}/v1.0/oauth2/accessToken"),
        None,
        json!({"appKey": APP_KEY, "appSecret": APP_SECRET}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(n["accessToken"], t["access_token"], "the same token while it lives");
    assert_eq!(n["expireIn"], 7200);
    assert_eq!(fake.tokens_issued(), 1);

    let bad = get(&format!("{base}/gettoken?appkey={APP_KEY}&appsecret=nope")).await;
    assert_eq!(bad["errcode"], 40096);
    let (status, bad) =
        post(&format!("{base}/v1.0/oauth2/accessToken"), None, json!({"appKey": APP_KEY, "appSecret": "x"}))
            .await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("invalidClientIdOrSecret")));

    // Expired tokens: 42001 direct, 88/42001 wrapped, 400 InvalidAuthentication on the new API.
    let token = t["access_token"].as_str().unwrap();
    fake.ctx().faults.expire_tokens();
    let (_, a) = post(&format!("{base}/attendance/list?access_token={token}"), None, json!({})).await;
    assert_eq!(a["errcode"], 42001);
    let (_, w) = post(
        &format!("{base}/topapi/message/corpconversation/asyncsend_v2?access_token={token}"),
        None,
        json!({}),
    )
    .await;
    assert_eq!((w["errcode"].as_i64(), w["sub_code"].as_str()), (Some(88), Some("42001")));
    let (status, n) =
        post(&format!("{base}/v1.0/workflow/processes/instanceIds/query"), Some(token), json!({})).await;
    assert_eq!((status, n["code"].as_str()), (400, Some("InvalidAuthentication")));
    let (status, n) =
        post(&format!("{base}/v1.0/workflow/processes/instanceIds/query"), None, json!({})).await;
    assert_eq!((status, n["code"].as_str()), (400, Some("AuthenticationFailed.MissingParameter")));
    let (_, a) = post(&format!("{base}/attendance/list?access_token=bogus"), None, json!({})).await;
    assert_eq!(a["errcode"], 40014);
    // A fresh token is issued after expiry.
    assert_ne!(old_token(base).await, token);
    assert_eq!(fake.tokens_issued(), 2);
}

#[tokio::test]
async fn throttle_and_server_errors_have_dingtalk_shapes() {
    let (fake, srv) = serve().await;
    fake.ctx().faults.throttle_next(1);
    let t = get(&format!("{}/gettoken?appkey={APP_KEY}&appsecret={APP_SECRET}", srv.url)).await;
    assert_eq!(t["errcode"], 90018);
    fake.throttle_new_api_next(1);
    let (status, n) =
        post(&format!("{}/v1.0/workflow/processInstances", srv.url), Some("x"), json!({})).await;
    assert_eq!((status, n["code"].as_str()), (403, Some("Forbidden.AccessDenied.QpsLimitForApi")));
    fake.ctx().faults.fail_next(1, 503);
    let (status, n) = post(&format!("{}/attendance/list", srv.url), None, json!({})).await;
    assert_eq!((status, n["errcode"].as_i64()), (503, Some(-1)));
    let (status, n) = post(&format!("{}/topapi/nope", srv.url), None, json!({})).await;
    assert_eq!((status, n["errcode"].as_i64()), (200, Some(22)));
}

fn robot_url(base: &str, ts: i64, secret: &str) -> String {
    let sign =
        robot_sign(secret, &ts.to_string()).replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    format!("{base}/robot/send?access_token={ROBOT_ACCESS_TOKEN}&timestamp={ts}&sign={sign}")
}

#[tokio::test]
async fn robot_checks_signature_window_and_rate() {
    let (fake, srv) = serve().await;
    let now = fake.ctx().clock.now_ms();
    let text =
        json!({"msgtype": "text", "text": {"content": "构建 42 失败"}, "at": {"atMobiles": ["13800000000"]}});
    let (_, r) = post(&robot_url(&srv.url, now, ROBOT_SECRET), None, text.clone()).await;
    assert_eq!(r["errcode"], 0, "{r}");
    let (_, r) = post(&robot_url(&srv.url, now, "SECwrong"), None, text.clone()).await;
    assert_eq!(r["errcode"], 310000);
    assert!(r["errmsg"].as_str().unwrap().starts_with("sign not match"));
    let (_, r) = post(&robot_url(&srv.url, now - 3_700_000, ROBOT_SECRET), None, text.clone()).await;
    assert_eq!((r["errcode"].as_i64(), r["errmsg"].as_str()), (Some(310000), Some("invalid timestamp")));
    let (_, r) = post(&format!("{}/robot/send?access_token=nope", srv.url), None, text.clone()).await;
    assert_eq!(r["errcode"], 300005);
    let md = json!({"msgtype": "markdown", "markdown": {"title": "日报", "text": "### 今日完成\n- 物料申请 3 条"}});
    for i in 1..ROBOT_PER_MINUTE {
        let (_, r) = post(&robot_url(&srv.url, now, ROBOT_SECRET), None, md.clone()).await;
        assert_eq!(r["errcode"], 0, "message {i}");
    }
    let (_, r) = post(&robot_url(&srv.url, now, ROBOT_SECRET), None, md.clone()).await;
    assert_eq!(r["errcode"], 130101);
    assert_eq!(fake.robot_messages().len(), ROBOT_PER_MINUTE);
    // A minute later the robot sends again.
    fake.ctx().clock.advance_ms(60_001);
    let (_, r) = post(&robot_url(&srv.url, now + 60_001, ROBOT_SECRET), None, md).await;
    assert_eq!(r["errcode"], 0);
    assert_eq!(fake.robot_messages()[0].at["atMobiles"][0], "13800000000");
}

#[tokio::test]
async fn work_notifications_are_delivered_per_user() {
    let (fake, srv) = serve().await;
    let token = old_token(&srv.url).await;
    let url = format!("{}/topapi/message/corpconversation/asyncsend_v2?access_token={token}", srv.url);
    let msg = json!({"msgtype": "text", "text": {"content": "工时提醒"}});
    let (_, r) =
        post(&url, None, json!({"agent_id": AGENT_ID, "userid_list": "zhangwei01,lina02", "msg": msg})).await;
    assert_eq!(r["errcode"], 0);
    let task_id = r["task_id"].as_i64().unwrap();
    assert_eq!(fake.notifications_for("lina02"), vec![msg.clone()]);
    let (_, r) = post(&url, None, json!({"agent_id": 1, "userid_list": "lina02", "msg": msg})).await;
    assert_eq!((r["errcode"].as_i64(), r["sub_code"].as_str()), (Some(88), Some("40056")));
    let (_, r) =
        post(&url, None, json!({"agent_id": AGENT_ID, "userid_list": "lina02", "msg": {"msgtype": "text"}}))
            .await;
    assert_eq!(r["sub_code"], "40035");
    let progress = format!("{}/topapi/message/corpconversation/getsendresult?access_token={token}", srv.url);
    let (_, r) = post(&progress, None, json!({"agent_id": AGENT_ID, "task_id": task_id})).await;
    assert_eq!(r["send_result"]["unread_user_id_list"], json!(["zhangwei01", "lina02"]));
    assert_eq!(fake.snapshot()["notifications"]["zhangwei01"][0]["task_id"], task_id);
}

async fn new_token(base: &str) -> String {
    let (_, n) = post(
        &format!("{base}/v1.0/oauth2/accessToken"),
        None,
        json!({"appKey": APP_KEY, "appSecret": APP_SECRET}),
    )
    .await;
    n["accessToken"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn approvals_page_with_next_token_and_can_be_created_and_completed() {
    let (fake, srv) = serve().await;
    let token = new_token(&srv.url).await;
    let now = fake.ctx().clock.now_ms();
    let query = format!("{}/v1.0/workflow/processes/instanceIds/query", srv.url);
    let mut ids = Vec::new();
    let mut next = json!(0);
    loop {
        let body = json!({"processCode": MATERIAL_PROCESS, "startTime": now - 60 * 86_400_000_i64,
                          "endTime": now, "nextToken": next, "maxResults": 20});
        let (status, r) = post(&query, Some(&token), body).await;
        assert_eq!(status, 200, "{r}");
        ids.extend(r["result"]["list"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
        match r["result"].get("nextToken") {
            Some(t) => next = t.clone(),
            None => break,
        }
    }
    let expected = SEEDED_INSTANCES - SEEDED_INSTANCES / 3;
    assert_eq!(ids.len(), expected);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), expected);

    let (status, r) = post(
        &query,
        Some(&token),
        json!({"processCode": MATERIAL_PROCESS, "startTime": 0,
        "endTime": now, "nextToken": 0, "maxResults": 20}),
    )
    .await;
    assert_eq!((status, r["code"].as_str()), (400, Some("invalidParameter")), "120-day window");
    let (status, _) = post(
        &query,
        Some(&token),
        json!({"processCode": MATERIAL_PROCESS, "startTime": now - 1000,
        "nextToken": 0, "maxResults": 21}),
    )
    .await;
    assert_eq!(status, 400);

    let get_url = |id: &str| format!("{}/v1.0/workflow/processInstances?processInstanceId={id}", srv.url);
    let fetch = |id: String| {
        let token = token.clone();
        let url = get_url(&id);
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .header("x-acs-dingtalk-access-token", token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap())
        }
    };
    let (_, inst) = fetch(ids[1].clone()).await;
    assert_eq!(inst["success"], true);
    let result = &inst["result"];
    assert_eq!(result["status"], "COMPLETED");
    assert_eq!(result["result"], "agree");
    assert_eq!(result["formComponentValues"][0]["name"], "物料编码");
    assert!(result["title"].as_str().unwrap().contains("物料申请"));

    let create = format!("{}/v1.0/workflow/processInstances", srv.url);
    let form = json!([{"name": "物料编码", "value": "M-1002"}, {"name": "数量", "value": "2"},
                      {"name": "用途", "value": "机房扩容"}, {"name": "项目", "value": "ERP"}]);
    let (status, r) = post(
        &create,
        Some(&token),
        json!({"processCode": MATERIAL_PROCESS,
        "originatorUserId": "lina02", "deptId": 1, "formComponentValues": form}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let id = r["instanceId"].as_str().unwrap().to_string();
    assert_eq!(fake.created_instances(), vec![id.clone()]);
    let (status, r) = post(
        &create,
        Some(&token),
        json!({"processCode": MATERIAL_PROCESS,
        "originatorUserId": "lina02", "deptId": 1, "formComponentValues": [{"name": "数量", "value": "2"}]}),
    )
    .await;
    assert_eq!((status, r["code"].as_str()), (400, Some("invalidParameter")));
    let (status, r) = post(
        &create,
        Some(&token),
        json!({"processCode": "PROC-NOPE",
        "originatorUserId": "lina02", "deptId": 1}),
    )
    .await;
    assert_eq!((status, r["code"].as_str()), (400, Some("processCodeNotExist")));

    assert!(fake.complete_instance(&id, false));
    assert!(!fake.complete_instance(&id, true), "only running instances complete");
    let (_, inst) = fetch(id).await;
    assert_eq!(
        (inst["result"]["status"].as_str(), inst["result"]["result"].as_str()),
        (Some("COMPLETED"), Some("refuse"))
    );
    assert!(inst["result"]["finishTime"].is_string());
}

#[tokio::test]
async fn attendance_pages_with_has_more_and_enforces_limits() {
    let (fake, srv) = serve().await;
    let token = old_token(&srv.url).await;
    let url = format!("{}/attendance/list?access_token={token}", srv.url);
    let today = time::cst_day(fake.ctx().clock.now_ms());
    let from = time::date_of_day(today - 6);
    let to = time::date_of_day(today);
    let users: Vec<&str> = qiao_sandbox_kit::seed::PEOPLE.iter().map(|p| p.dingtalk_user_id).collect();
    let mut rows = Vec::new();
    let mut offset = 0;
    loop {
        let body = json!({"workDateFrom": format!("{from} 00:00:00"), "workDateTo": format!("{to} 00:00:00"),
                          "userIdList": users, "offset": offset, "limit": 7});
        let (_, r) = post(&url, None, body).await;
        assert_eq!(r["errcode"], 0, "{r}");
        let page = r["recordresult"].as_array().unwrap().clone();
        offset += page.len();
        rows.extend(page);
        if r["hasMore"] != true {
            break;
        }
    }
    let expected = (today - 6..=today).filter(|d| time::weekday(*d) < 5).count() * users.len() * 2;
    assert_eq!(rows.len(), expected);
    assert!(rows.iter().all(|r| r["checkType"] == "OnDuty" || r["checkType"] == "OffDuty"));

    let (_, r) = post(
        &url,
        None,
        json!({"workDateFrom": format!("{} 00:00:00", time::date_of_day(today - 8)),
        "workDateTo": format!("{to} 00:00:00"), "userIdList": users, "offset": 0, "limit": 50}),
    )
    .await;
    assert_eq!(r["errcode"], 40035, "more than 7 days");
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    let (_, r) = post(
        &url,
        None,
        json!({"workDateFrom": format!("{to} 00:00:00"),
        "workDateTo": format!("{to} 00:00:00"), "userIdList": many, "offset": 0, "limit": 50}),
    )
    .await;
    assert_eq!(r["errcode"], 40035, "more than 50 users");
}

/// A callback receiver doing what a correct integration does.
async fn receiver(
    Query(q): Query<std::collections::HashMap<String, String>>,
    State(seen): State<Arc<std::sync::Mutex<Vec<String>>>>,
    body: String,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_str(&body).unwrap();
    let enc = body["encrypt"].as_str().unwrap();
    let ok = callback_signature(CALLBACK_TOKEN, &q["timestamp"], &q["nonce"], enc) == q["msg_signature"];
    let (event, owner) = decrypt(CALLBACK_AES_KEY, enc).unwrap();
    assert_eq!(owner, APP_KEY);
    seen.lock().unwrap().push(format!("{ok}:{event}"));
    let reply = if ok { "success" } else { "refused" };
    let encrypted = encrypt(CALLBACK_AES_KEY, [1; 16], reply, APP_KEY).unwrap();
    let signature = callback_signature(CALLBACK_TOKEN, "1700000000000", "abcdefgh", &encrypted);
    axum::Json(
        json!({"msg_signature": signature, "timeStamp": "1700000000000", "nonce": "abcdefgh", "encrypt": encrypted}),
    )
}

#[tokio::test]
async fn callbacks_are_encrypted_signed_and_the_reply_is_checked() {
    let (fake, _srv) = serve().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let router = axum::Router::new().route("/cb", axum::routing::post(receiver)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{addr}/cb");
    let event = json!({"EventType": "bpms_instance_change", "processInstanceId": "abc", "type": "finish"});
    let out = fake.push_callback(&url, &event).await.unwrap();
    assert!(out.acknowledged, "{out:?}");
    fake.ctx().faults.bad_signature_next(1);
    let out = fake.push_callback(&url, &event).await.unwrap();
    assert!(out.signed_wrongly);
    assert!(!out.acknowledged);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], format!("true:{event}"));
    assert!(seen[1].starts_with("false:"));
    assert_eq!(fake.callbacks().len(), 2);
}
