//! The fake over HTTP: logins, sessions, envelopes, paging and faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use serde_json::{Value, json};

use super::*;

const SIGN: &str = "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginBySign";
const APP: &str = "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret";
const DFS: &str = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.";

struct Env {
    fake: Arc<KingdeeFake>,
    ctx: Ctx,
    running: Running,
    client: reqwest::Client,
}

async fn env() -> Env {
    let ctx = Ctx::new(Clock::new());
    let fake = KingdeeFake::new(ctx.clone());
    let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env { fake, ctx, running, client: reqwest::Client::new() }
}

impl Env {
    async fn post(
        &self,
        service: impl AsRef<str>,
        body: Value,
        sid: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .client
            .post(format!("{}/k3cloud/{}.common.kdsvc", self.running.url, service.as_ref()))
            .body(body.to_string());
        if let Some(sid) = sid {
            req = req.header("cookie", format!("kdservice-sessionid={sid}"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn login(&self) -> String {
        let ts =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
        let sign = login_sign(ACCT_ID, USER_NAME, APP_ID, APP_SECRET, &ts);
        let (_, headers, body) =
            self.post(SIGN, json!({"parameters": [ACCT_ID, USER_NAME, APP_ID, ts, sign, 2052]}), None).await;
        assert_eq!(body["LoginResultType"], 1, "{body}");
        let sid = body["KDSVCSessionId"].as_str().unwrap().to_string();
        let cookies: Vec<&str> = headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert!(cookies.iter().any(|c| c.starts_with(&format!("kdservice-sessionid={sid}"))), "{cookies:?}");
        sid
    }
}

fn labor(cc: &str) -> Value {
    json!({"FDate": "2025-05-06", "FCostCenterId": {"FNumber": cc}, "FEmployeeId": {"FNumber": "E0003"},
           "FHours": 7.5, "FAmount": 1125.0, "FNote": "联调"})
}

#[tokio::test]
async fn logins_succeed_and_fail_in_the_spec_shapes() {
    let e = env().await;
    e.login().await;
    let (_, _, ok) =
        e.post(APP, json!({"parameters": [ACCT_ID, USER_NAME, APP_ID, APP_SECRET, 2052]}), None).await;
    assert_eq!(ok["LoginResultType"], 1);
    assert_eq!(ok["Context"]["DBid"], ACCT_ID);
    let (_, _, wrong) =
        e.post(APP, json!({"acctid": ACCT_ID, "userName": USER_NAME, "appId": APP_ID, "appSecret": "nope", "lcid": 2052}), None).await;
    assert_eq!(
        (wrong["LoginResultType"].as_i64(), wrong["IsSuccessByAPI"].as_bool()),
        (Some(0), Some(false))
    );
    let (_, _, pw) = e
        .post(
            "Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser",
            json!({"parameters": [ACCT_ID, USER_NAME, "bad", 2052]}),
            None,
        )
        .await;
    assert_eq!(pw["Message"], "用户名或密码错误");
    let (_, _, stale) = e
        .post(
            SIGN,
            json!({"parameters": [ACCT_ID, USER_NAME, APP_ID, "1700000000",
            login_sign(ACCT_ID, USER_NAME, APP_ID, APP_SECRET, "1700000000"), 2052]}),
            None,
        )
        .await;
    assert_eq!(stale["LoginResultType"], -1);
    e.ctx.faults.bad_signature_next(1);
    let ts = e.ctx.clock.now_secs().to_string();
    let sign = login_sign(ACCT_ID, USER_NAME, APP_ID, APP_SECRET, &ts);
    let (_, _, forced) =
        e.post(SIGN, json!({"parameters": [ACCT_ID, USER_NAME, APP_ID, ts, sign, 2052]}), None).await;
    assert_eq!(forced["Message"], "签名验证失败");
    assert_eq!(e.fake.logins(), 2);
}

#[tokio::test]
async fn lost_sessions_answer_msgcode_1_wrapped_for_queries() {
    let e = env().await;
    let sid = e.login().await;
    let q = json!({"data": {"FormId": LABOR_COST, "FieldKeys": "FID", "Limit": 1}});
    let (_, _, rows) = e.post(format!("{DFS}ExecuteBillQuery"), q.clone(), Some(&sid)).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    e.ctx.faults.expire_tokens();
    let (status, _, lost) = e.post(format!("{DFS}ExecuteBillQuery"), q, Some(&sid)).await;
    assert_eq!(status, 200);
    assert_eq!(lost[0][0]["Result"]["ResponseStatus"]["MsgCode"], 1);
    assert_eq!(lost[0][0]["Result"]["ResponseStatus"]["Errors"][0]["Message"], "会话信息已丢失，请重新登录");
    let (_, _, save) = e
        .post(format!("{DFS}Save"), json!({"formid": LABOR_COST, "data": {"Model": labor("CB0101")}}), None)
        .await;
    assert_eq!(save["Result"]["ResponseStatus"]["MsgCode"], 1);
    assert_eq!(save["Result"]["ResponseStatus"]["IsSuccess"], false);
    // Time runs out too.
    let sid = e.login().await;
    e.ctx.clock.advance_ms(SESSION_TTL_SECS * 1000);
    let (_, _, view) = e
        .post(
            format!("{DFS}View"),
            json!({"formid": LABOR_COST, "data": {"Number": "RGCB000001"}}),
            Some(&sid),
        )
        .await;
    assert_eq!(view["Result"]["ResponseStatus"]["MsgCode"], 1);
}

#[tokio::test]
async fn header_signature_mode_is_verified() {
    let e = env().await;
    let path = format!("/k3cloud/{DFS}View.common.kdsvc");
    let data = app_data(ACCT_ID, USER_NAME, "2052", ORG_NUM);
    let ts = "1700000000123";
    let api_sig = kd_hmac(&api_string_to_sign(&path, ts, ts), &api_secret(APP_ID).unwrap());
    let send = |kd_sig: String| {
        e.client
            .post(format!("{}{path}", e.running.url))
            .header("X-Api-ClientID", "123456")
            .header("X-Api-Auth-Version", "2.0")
            .header("x-api-timestamp", ts)
            .header("x-api-nonce", ts)
            .header("x-api-signheaders", "X-Api-TimeStamp,X-Api-Nonce")
            .header("X-Api-Signature", api_sig.clone())
            .header("X-Kd-Appkey", APP_ID)
            .header("X-Kd-Appdata", base64::engine::general_purpose::STANDARD.encode(&data))
            .header("X-Kd-Signature", kd_sig)
            .body(json!({"formid": LABOR_COST, "data": {"Number": "RGCB000002"}}).to_string())
            .send()
    };
    use base64::Engine;
    let good: Value = serde_json::from_str(
        &send(kd_signature(APP_ID, &data, APP_SECRET)).await.unwrap().text().await.unwrap(),
    )
    .unwrap();
    assert_eq!(good["Result"]["Result"]["FBillNo"], "RGCB000002", "{good}");
    let bad: Value = serde_json::from_str(
        &send(kd_signature(APP_ID, &data, "wrong")).await.unwrap().text().await.unwrap(),
    )
    .unwrap();
    assert_eq!(bad["Result"]["ResponseStatus"]["MsgCode"], 1);
}

#[tokio::test]
async fn save_submit_audit_view_delete() {
    let e = env().await;
    let sid = e.login().await;
    let save = |body| e.post(format!("{DFS}Save"), body, Some(&sid));
    // Positional with data as a JSON string.
    let (_, _, saved) =
        save(json!({"parameters": [LABOR_COST, json!({"Model": labor("CB0201")}).to_string()]})).await;
    let status = &saved["Result"]["ResponseStatus"];
    assert_eq!(status["IsSuccess"], true, "{saved}");
    let number = status["SuccessEntitys"][0]["Number"].as_str().unwrap().to_string();
    let id = status["SuccessEntitys"][0]["Id"].as_i64().unwrap();
    assert_eq!(saved["Result"]["Id"], id);
    // Unknown base data and a missing field.
    let mut bad = labor("CB9999");
    bad.as_object_mut().unwrap().remove("FHours");
    let (_, _, failed) = save(json!({"formid": LABOR_COST, "data": {"Model": bad}})).await;
    let status = &failed["Result"]["ResponseStatus"];
    assert_eq!((status["IsSuccess"].as_bool(), status["MsgCode"].as_i64()), (Some(false), Some(11)));
    let fields: Vec<&str> =
        status["Errors"].as_array().unwrap().iter().map(|e| e["FieldName"].as_str().unwrap()).collect();
    assert_eq!(fields, ["FHours", "FCostCenterId"]);
    // Unknown form.
    let (_, _, unknown) = save(json!({"formid": "NOPE", "data": {"Model": {}}})).await;
    assert_eq!(unknown["Result"]["ResponseStatus"]["MsgCode"], 4);

    let op = |name: &'static str, data: Value| {
        e.post(format!("{DFS}{name}"), json!({"formid": LABOR_COST, "data": data}), Some(&sid))
    };
    let (_, _, audit_early) = op("Audit", json!({"Numbers": [number]})).await;
    assert_eq!(audit_early["Result"]["ResponseStatus"]["IsSuccess"], false);
    let (_, _, submit) = op("Submit", json!({"CreateOrgId": 0, "Numbers": [], "Ids": id.to_string()})).await;
    assert_eq!(submit["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Number"], number.as_str());
    let (_, _, audit) = op("Audit", json!({"Numbers": [number]})).await;
    assert_eq!(audit["Result"]["ResponseStatus"]["IsSuccess"], true);
    let (_, _, view) = op("View", json!({"Number": number})).await;
    assert_eq!(view["Result"]["Result"]["FDocumentStatus"], "C");
    assert_eq!(view["Result"]["Result"]["FCostCenterId"]["FNumber"], "CB0201");
    let (_, _, del) = op("Delete", json!({"Numbers": [number]})).await;
    assert_eq!(del["Result"]["ResponseStatus"]["MsgCode"], 11);
    // A fresh bill can be deleted; then View finds nothing.
    let (_, _, saved) = save(json!({"formid": LABOR_COST, "data": {"Model": labor("CB0101")}})).await;
    let n2 = saved["Result"]["Number"].as_str().unwrap().to_string();
    let (_, _, del) = op("Delete", json!({"Numbers": [n2]})).await;
    assert_eq!(del["Result"]["ResponseStatus"]["IsSuccess"], true);
    let (_, _, gone) = op("View", json!({"Number": n2})).await;
    assert_eq!(gone["Result"]["ResponseStatus"]["MsgCode"], 10);
    assert_eq!(e.fake.created().len(), 2);
}

#[tokio::test]
async fn batch_save_reports_per_index_and_partial_faults() {
    let e = env().await;
    let sid = e.login().await;
    e.ctx.faults.partial_next(1, vec![2]);
    let models = json!([labor("CB0101"), labor("CB9999"), labor("CB0102"), labor("CB0301")]);
    let (_, _, out) = e
        .post(
            &format!("{DFS}BatchSave"),
            json!({"formid": LABOR_COST, "data": {"Model": models, "BatchCount": 4}}),
            Some(&sid),
        )
        .await;
    let status = &out["Result"]["ResponseStatus"];
    assert_eq!(status["IsSuccess"], false);
    let ok: Vec<i64> =
        status["SuccessEntitys"].as_array().unwrap().iter().map(|s| s["DIndex"].as_i64().unwrap()).collect();
    let bad: Vec<i64> =
        status["Errors"].as_array().unwrap().iter().map(|s| s["DIndex"].as_i64().unwrap()).collect();
    assert_eq!((ok, bad), (vec![0, 3], vec![1, 2]));
    assert_eq!(e.fake.created().len(), 2);
}

#[tokio::test]
async fn bill_query_pages_filters_and_rejects_big_limits() {
    let e = env().await;
    let sid = e.login().await;
    let q = |data: Value| e.post(format!("{DFS}ExecuteBillQuery"), json!({"data": data}), Some(&sid));
    let mut ids = Vec::new();
    for page in 0.. {
        let (_, _, rows) =
            q(json!({"FormId": LABOR_COST, "FieldKeys": "FID,FBillNo,FModifyDate", "OrderString": "FID ASC",
                                    "StartRow": page * 45, "Limit": 45}))
            .await;
        let rows = rows.as_array().unwrap().clone();
        ids.extend(rows.iter().map(|r| r[0].as_i64().unwrap()));
        if rows.len() < 45 {
            break;
        }
    }
    assert_eq!(ids.len(), SEEDED_LABOR_COST);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let (_, _, audited) = q(json!({"FormId": LABOR_COST, "FieldKeys": "FBillNo",
        "FilterString": "FDocumentStatus='C' and FModifyDate>='2025-03-02 00:00:00'"}))
    .await;
    assert!(!audited.as_array().unwrap().is_empty());
    let (_, _, too_big) = q(json!({"FormId": LABOR_COST, "FieldKeys": "FID", "Limit": 20000})).await;
    assert_eq!(too_big[0][0]["Result"]["ResponseStatus"]["MsgCode"], 8);
    let (_, _, empty) =
        q(json!({"FormId": LABOR_COST, "FieldKeys": "FID", "FilterString": "FBillNo='none'"})).await;
    assert_eq!(empty, json!([]));
}

#[tokio::test]
async fn throttle_and_gateway_errors_and_lost_replies() {
    let e = env().await;
    let sid = e.login().await;
    e.ctx.faults.throttle_next(1);
    let (status, _, throttled) = e
        .post(
            format!("{DFS}View"),
            json!({"formid": LABOR_COST, "data": {"Number": "RGCB000001"}}),
            Some(&sid),
        )
        .await;
    assert_eq!((status, throttled["Result"]["ResponseStatus"]["MsgCode"].as_i64()), (200, Some(14)));
    e.ctx.faults.fail_next(1, 502);
    let (status, _, page) = e
        .post(
            format!("{DFS}View"),
            json!({"formid": LABOR_COST, "data": {"Number": "RGCB000001"}}),
            Some(&sid),
        )
        .await;
    assert_eq!(status, 502);
    assert!(page.as_str().unwrap().contains("<html>"));
    e.fake.lose_save_replies(1);
    let (status, _, _) = e
        .post(
            format!("{DFS}Save"),
            json!({"formid": LABOR_COST, "data": {"Model": labor("CB0101")}}),
            Some(&sid),
        )
        .await;
    assert_eq!(status, 504);
    assert_eq!(e.fake.created().len(), 1, "the save was committed before the reply was lost");
    let snap = qiao_sandbox_kit::System::snapshot(e.fake.as_ref());
    assert_eq!(snap["created"].as_array().map(Vec::len), Some(1));
    assert_eq!(snap["bills"][LABOR_COST].as_array().map(Vec::len), Some(SEEDED_LABOR_COST + 1));
}
