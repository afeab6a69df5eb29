//! The fake over real HTTP: token handshake, envelopes, paging, batch saves and faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use serde_json::{Value, json};

use crate::*;

async fn serve() -> (Arc<YonyouFake>, Ctx, Running) {
    let ctx = Ctx::new(Clock::new());
    let fake = YonyouFake::new(ctx.clone());
    let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (fake, ctx, running)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn get_json(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap())
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new().post(url).body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap())
}

async fn token(base: &str, ctx: &Ctx, path: &str) -> (u16, Value) {
    let ts = ctx.clock.now_ms().to_string();
    let sig = enc(&sign(APP_KEY, APP_SECRET, &ts));
    get_json(&format!("{base}{AUTH_PREFIX}{path}?appKey={APP_KEY}&timestamp={ts}&signature={sig}")).await
}

async fn access_token(base: &str, ctx: &Ctx) -> String {
    let (_, body) = token(base, ctx, TOKEN_PATH_V1).await;
    body["data"]["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn token_handshake_checks_signature_app_and_timestamp() {
    let (fake, ctx, running) = serve().await;
    let base = &running.url;
    let (status, body) = token(base, &ctx, TOKEN_PATH).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "00000");
    assert_eq!(body["data"]["expire"], 7200);
    assert_eq!(body["data"]["access_token"].as_str().unwrap().len(), 32);

    let ts = ctx.clock.now_ms().to_string();
    let sig = sign(APP_KEY, APP_SECRET, &ts);
    let url = |key: &str, ts: &str, sig: &str| {
        format!("{base}{TOKEN_PATH}?appKey={key}&timestamp={ts}&signature={sig}")
    };
    // Double encoding is a classic client bug: refused.
    let (_, body) = get_json(&url(APP_KEY, &ts, &enc(&enc(&sig)))).await;
    assert_eq!(body["code"], code::SIGNATURE_INVALID);
    assert!(body.get("data").is_none());
    let (_, body) = get_json(&url("nope", &ts, &enc(&sig))).await;
    assert_eq!(body["code"], code::APP_UNKNOWN);
    let old = (ctx.clock.now_ms() - TIMESTAMP_SKEW_MS - 1000).to_string();
    let (_, body) = get_json(&url(APP_KEY, &old, &enc(&sign(APP_KEY, APP_SECRET, &old)))).await;
    assert_eq!(body["code"], code::TIMESTAMP_INVALID);
    ctx.faults.bad_signature_next(1);
    let (_, body) = get_json(&url(APP_KEY, &ts, &enc(&sig))).await;
    assert_eq!(body["code"], code::SIGNATURE_INVALID);
    assert_eq!(fake.tokens_issued(), 1);
}

#[tokio::test]
async fn business_calls_need_a_live_url_encoded_token() {
    let (_fake, ctx, running) = serve().await;
    let base = &running.url;
    let token = access_token(base, &ctx).await;
    assert!(token.contains('+') && token.contains('/'), "v1 tokens need URL encoding: {token}");
    let list = |t: &str| format!("{base}{GATEWAY_PREFIX}{}?access_token={t}", paths::PROJECT_LIST);
    let (_, body) = post_json(&list(&enc(&token)), &json!({"pageIndex": 1, "pageSize": 10})).await;
    assert_eq!(body["code"], "200");
    assert_eq!(body["data"]["recordCount"], 4);
    assert_eq!(body["data"]["recordList"][0]["code"], "ERP");
    // Unencoded, the `+` arrives as a space: not the token.
    let (status, body) = post_json(&list(&token), &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (200, Some(code::TOKEN_INVALID)));

    ctx.clock.advance_ms(TOKEN_TTL_SECS * 1000);
    let (_, body) = post_json(&list(&enc(&token)), &json!({})).await;
    assert_eq!(body["code"], code::TOKEN_INVALID);
    let (_, body) = token_refresh_then_expire_by_fault(base, &ctx).await;
    assert_eq!(body["code"], code::TOKEN_INVALID);
}

async fn token_refresh_then_expire_by_fault(base: &str, ctx: &Ctx) -> (u16, Value) {
    let token = access_token(base, ctx).await;
    let url = format!("{base}{}?access_token={}", paths::STAFF_LIST, enc(&token));
    let (_, body) = post_json(&url, &json!({})).await;
    assert_eq!(body["data"]["recordList"][0]["code"], "E0001");
    ctx.faults.expire_tokens();
    post_json(&url, &json!({})).await
}

#[tokio::test]
async fn payment_applies_page_and_filter_by_pubts() {
    let (fake, ctx, running) = serve().await;
    let base = &running.url;
    let token = enc(&access_token(base, &ctx).await);
    let url = format!("{base}{GATEWAY_PREFIX}{}?access_token={token}", paths::PAYMENT_APPLY_LIST);
    let mut codes = Vec::new();
    for page in 1..=4 {
        let (_, body) = post_json(&url, &json!({"pageIndex": page, "pageSize": 50})).await;
        assert_eq!(body["data"]["pageCount"], 4);
        assert_eq!(body["data"]["recordCount"], PAYMENT_APPLY_COUNT);
        codes.extend(body["data"]["recordList"].as_array().unwrap().iter().map(|r| r["code"].clone()));
    }
    assert_eq!(codes.len(), PAYMENT_APPLY_COUNT);
    codes.dedup();
    assert_eq!(codes.len(), PAYMENT_APPLY_COUNT);

    assert!(fake.touch_payment_apply("FKSQ-2024-0007"));
    let since = json!({"pageSize": 10, "simpleVOs": [{"field": "pubts", "op": "egt", "value1": "2025-01-01 00:00:00"}]});
    let (_, body) = post_json(&url, &since).await;
    assert_eq!(body["data"]["recordCount"], 1);
    assert_eq!(body["data"]["recordList"][0]["code"], "FKSQ-2024-0007");
    let (_, body) = post_json(&url, &json!({"simpleVOs": [{"field": "x", "op": "~"}]})).await;
    assert_eq!(body["code"], code::LOGIC_ERROR);

    let (_, body) = post_json(&format!("{base}{}?access_token={token}", paths::DEPT_TREE), &json!({})).await;
    assert_eq!(body["data"].as_array().unwrap().len(), DEPARTMENTS.len());
    let (_, body) = post_json(&format!("{base}{}?access_token={token}", paths::ACCBOOK), &json!({})).await;
    assert_eq!(
        (body["success"].as_bool(), body["data"][0]["code"].as_str()),
        (Some(true), Some(ACCBOOK_CODE))
    );
    let (_, body) =
        get_json(&format!("{base}{}?id=2172161512916528001&access_token={token}", paths::PROJECT_DETAIL))
            .await;
    assert_eq!(body["data"]["name"], "ERP系统升级");
}

fn voucher(n: usize, dept: &str) -> Value {
    json!({"accbookCode": "0001", "voucherTypeCode": "1", "makerMobile": "13800000000",
           "resubmitCheckKey": format!("key-{n}"),
           "bodies": [
             {"description": format!("付款申请{n}"), "accsubjectCode": "6602", "debitOriginal": 100.0 + n as f64,
              "clientAuxiliaryList": [{"filedCode": "dept", "valueCode": dept}, {"filedCode": "project", "valueCode": "MES"}]},
             {"description": format!("付款申请{n}"), "accsubjectCode": "1002", "creditOriginal": 100.0 + n as f64}]})
}

#[tokio::test]
async fn batch_save_reports_per_item_failures_and_dedupes() {
    let (fake, ctx, running) = serve().await;
    let base = &running.url;
    let token = enc(&access_token(base, &ctx).await);
    let url = format!("{base}{GATEWAY_PREFIX}{}?access_token={token}", paths::VOUCHER_BATCH_ADD);
    let items: Vec<Value> = (0..6).map(|n| voucher(n, if n == 4 { "D9999" } else { "D0102" })).collect();
    ctx.faults.partial_next(1, vec![1]);
    let (status, body) = post_json(&url, &json!({"data": items})).await;
    assert_eq!((status, body["code"].as_str()), (200, Some("200")));
    let data = &body["data"];
    assert_eq!(
        (data["count"].as_u64(), data["sucessCount"].as_u64(), data["failCount"].as_u64()),
        (Some(6), Some(4), Some(2))
    );
    assert!(data["messages"][0].as_str().unwrap().starts_with("第2条[key-1]："), "{data}");
    assert_eq!(data["messages"][1], "第5条[key-4]：第1行辅助核算部门编码[D9999]不存在");
    let keys: Vec<&str> =
        data["infos"].as_array().unwrap().iter().map(|i| i["resubmitCheckKey"].as_str().unwrap()).collect();
    assert_eq!(keys, ["key-0", "key-2", "key-3", "key-5"]);

    // The same batch again: the four saved ones are replayed, the injected failure now saves.
    let (_, body) = post_json(&url, &json!({"data": items})).await;
    assert_eq!(body["data"]["sucessCount"], 5);
    assert_eq!(fake.vouchers().len(), 5);
    assert_eq!(fake.replayed_saves(), 4);

    let single = format!("{base}{}?access_token={token}", paths::VOUCHER_ADD);
    let mut bad = voucher(9, "D0101");
    bad["bodies"][0]["debitOriginal"] = Value::Null;
    let (_, body) = post_json(&single, &bad).await;
    assert_eq!(
        (body["code"].as_str(), body["message"].as_str()),
        (Some("999"), Some("第1行分录金额不能为空"))
    );
    let (_, body) = post_json(&single, &voucher(9, "D0101")).await;
    assert_eq!(body["data"]["billCode"], "记-0006");
    let query = format!("{base}{}?access_token={token}", paths::VOUCHER_QUERY);
    let (_, body) =
        post_json(&query, &json!({"accbookCode": "0001", "pager": {"pageIndex": 2, "pageSize": 4}})).await;
    assert_eq!(body["data"]["recordCount"], 6);
    assert_eq!(body["data"]["recordList"].as_array().unwrap().len(), 2);
    assert_eq!(fake.snapshot_vouchers_len(), 6);
}

impl YonyouFake {
    fn snapshot_vouchers_len(&self) -> usize {
        qiao_sandbox_kit::System::snapshot(self)["vouchers"].as_array().map_or(0, Vec::len)
    }
}

#[tokio::test]
async fn faults_answer_in_yonyou_shapes() {
    let (fake, ctx, running) = serve().await;
    let base = &running.url;
    let token = enc(&access_token(base, &ctx).await);
    let url = format!("{base}{}?access_token={token}", paths::MATERIAL_LIST);
    ctx.faults.throttle_next(1);
    let resp = reqwest::Client::new().post(&url).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["code"], code::THROTTLED);
    ctx.faults.fail_next(1, 503);
    let (status, body) = post_json(&url, &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("999")));
    fake.revoke_api(paths::MATERIAL_LIST);
    let (_, body) = post_json(&url, &json!({})).await;
    assert_eq!(body["code"], code::API_NOT_AUTHORIZED);

    let (_, body) =
        get_json(&format!("{base}/open-auth/dataCenter/getGatewayAddress?tenantId={TENANT_ID}")).await;
    assert_eq!(body["data"]["gatewayUrl"], format!("http://{}{GATEWAY_PREFIX}", running.addr));
    let (_, body) = get_json(&format!("{base}/open-auth/dataCenter/getGatewayAddress?tenantId=x")).await;
    assert_eq!(body["code"], code::TENANT_UNKNOWN);
}
