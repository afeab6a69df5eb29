//! Native tests of the connector against MockHost answers captured in Yonyou's shapes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::rc::Rc;

use qiao_sdk::http::{HttpError, Request, Response};
use qiao_sdk::testing::MockHost;
use qiao_sdk::{ErrorClass, json};

use super::*;
use crate::api::{CachedToken, TOKEN_KEY};

const GW: &str = "https://c2.yonyoucloud.com/iuap-api-gateway";
const AUTH: &str = "https://c2.yonyoucloud.com/iuap-api-auth";

fn config() -> Value {
    json!({"base_url": GW, "token_url": AUTH, "app_key": "demo", "app_secret": "top-secret"})
}

fn token_answer(token: &str) -> Response {
    Response::new(200).with_json(
        &json!({"code": "00000", "message": "成功！", "data": {"access_token": token, "expire": 7200}}),
    )
}

fn is_token(req: &Request) -> bool {
    req.url_without_query().ends_with("/getAccessToken")
}

fn poll(params: Value, cursor: Option<&str>) -> Result<Batch> {
    Yonyou::poll(PollRequest { op: LIST, config: &config(), params: &params, cursor })
}

fn invoke(op: &str, input: Value, key: &str) -> Result<ActionOutput> {
    Yonyou::invoke(InvokeRequest { op, config: &config(), input: &input, idempotency_key: key })
}

#[test]
fn token_is_signed_cached_and_refreshed_ahead_of_expiry() {
    let tokens = Rc::new(RefCell::new(0));
    let t = tokens.clone();
    let host = MockHost::new()
        .now_ms(1_547_192_727_928)
        .http(move |req| {
            if is_token(req) {
                *t.borrow_mut() += 1;
                return Ok(token_answer(&format!("tok+{}/=", t.borrow())));
            }
            Ok(Response::new(200)
                .with_json(&json!({"code": "200", "data": {"ok": req.query_param("access_token")}})))
        })
        .install();
    let out = invoke(CALL, json!({"path": "/yonbip/x", "body": {}}), "k").unwrap();
    assert_eq!(out.output, json!({"ok": "tok+1/="}));
    let sent = host.requests();
    assert_eq!(sent[0].method(), "GET");
    assert_eq!(
        sent[0].url(),
        format!(
            "{AUTH}{DEFAULT_TOKEN_PATH}?appKey=demo&timestamp=1547192727928&signature=lnFTU9B9EcwhEOksJG5pIYtCUNrdotrzJxulNzy%2Ba%2FQ%3D"
        )
    );
    assert!(sent[1].url().ends_with("/yonbip/x?access_token=tok%2B1%2F%3D"), "{}", sent[1].url());
    let cached: CachedToken = host.kv_get_json(TOKEN_KEY).unwrap();
    assert_eq!(cached.refresh_at_ms, 1_547_192_727_928 + 7200 * 800);

    // Cached until 80% of its life, then refreshed before the server would refuse it.
    host.advance_ms(5_000_000);
    invoke(CALL, json!({"path": "/yonbip/x"}), "k").unwrap();
    assert_eq!(*tokens.borrow(), 1);
    host.advance_ms(800_000);
    let out = invoke(CALL, json!({"path": "/yonbip/x"}), "k").unwrap();
    assert_eq!((*tokens.borrow(), out.output), (2, json!({"ok": "tok+2/="})));
}

#[test]
fn refused_token_is_refreshed_once_then_unauthorized() {
    let refuse = Rc::new(RefCell::new(1));
    let r = refuse.clone();
    let host = MockHost::new()
        .kv_json(
            TOKEN_KEY,
            &CachedToken {
                token: "old".into(),
                app_key: "demo".into(),
                token_url: AUTH.into(),
                refresh_at_ms: u64::MAX,
            },
        )
        .http(move |req| {
            if is_token(req) {
                return Ok(token_answer("new"));
            }
            if *r.borrow() > 0 {
                *r.borrow_mut() -= 1;
                return Ok(Response::new(200).with_json(&json!({"code": "310036", "message": "非法token"})));
            }
            Ok(Response::new(200)
                .with_json(&json!({"code": "200", "data": {"token": req.query_param("access_token")}})))
        })
        .install();
    let out = invoke(CALL, json!({"path": "/yonbip/x"}), "k").unwrap();
    assert_eq!(out.output, json!({"token": "new"}));
    assert_eq!(host.take_requests().iter().filter(|r| is_token(r)).count(), 1);

    *refuse.borrow_mut() = 2;
    let e = invoke(CALL, json!({"path": "/yonbip/x"}), "k").unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unauthorized);
    assert!(e.message().contains("310036"), "{e}");
    assert_eq!(host.requests().len(), 3, "call, token, call: no loop");
}

#[test]
fn token_refusals_are_config_errors_and_transport_failures_transient() {
    let _host = MockHost::new()
        .http(|req| {
            if is_token(req) {
                return Ok(
                    Response::new(200).with_json(&json!({"code": "310002", "message": "签名校验失败"}))
                );
            }
            Err(HttpError::Timeout("slow".into()))
        })
        .install();
    let e = invoke(CALL, json!({"path": "/yonbip/x"}), "k").unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("签名校验失败") && !e.message().contains("top-secret"), "{e}");
}

fn page(page: u64, pages: u64, rows: Vec<Value>) -> Response {
    Response::new(200).with_json(&json!({"code": "200", "message": "操作成功", "data": {
        "pageIndex": page, "pageSize": 2, "recordCount": 5, "pageCount": pages, "recordList": rows}}))
}

#[test]
fn list_pages_until_page_count_and_moves_the_watermark_last() {
    let host = MockHost::new()
        .http(|req| {
            if is_token(req) {
                return Ok(token_answer("t"));
            }
            let body = req.body_json().unwrap();
            let n = body["pageIndex"].as_u64().unwrap();
            let rows = (1..=2)
                .map(|i| (n - 1) * 2 + i)
                .filter(|i| *i <= 5)
                .map(|i| json!({"id": 2_172_161_512_886_528_000u64 + i, "pubts": format!("2024-05-0{i} 10:00:00")}))
                .collect();
            Ok(page(n, 3, rows))
        })
        .install();
    let params = json!({"path": "/yonbip/EFI/paymentApply/list", "page_size": 2, "modified_field": "pubts",
                        "since": "2024-05-01 00:00:00", "conditions": {"dept_code": "D0101", "simpleVOs": [{"field": "status", "op": "eq", "value1": 1}]}});
    let b1 = poll(params.clone(), None).unwrap();
    assert!(b1.more);
    assert_eq!(b1.records[0].id.as_deref(), Some("2172161512886528001"));
    let c1: Value = serde_json::from_str(b1.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(c1, json!({"since": "2024-05-01 00:00:00", "max_seen": "2024-05-02 10:00:00", "page": 2}));
    let b2 = poll(params.clone(), b1.next_cursor.as_deref()).unwrap();
    let b3 = poll(params.clone(), b2.next_cursor.as_deref()).unwrap();
    assert!(!b3.more);
    assert_eq!(b3.records.len(), 1);
    let c3: Value = serde_json::from_str(b3.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(c3, json!({"since": "2024-05-05 10:00:00"}));

    let bodies: Vec<Value> =
        host.requests().iter().filter(|r| !is_token(r)).map(|r| r.body_json().unwrap()).collect();
    assert_eq!(bodies[0]["dept_code"], "D0101");
    assert_eq!(bodies[0]["pageSize"], 2);
    assert_eq!(
        bodies[0]["simpleVOs"],
        json!([{"field": "status", "op": "eq", "value1": 1},
        {"field": "pubts", "op": "egt", "value1": "2024-05-01 00:00:00"}])
    );
    assert_eq!(bodies[0]["queryOrders"], json!([{"field": "id", "order": "asc"}]));
    assert_eq!(bodies[2]["pageIndex"], 3);
    assert!(bodies.iter().all(|b| b["simpleVOs"][1]["value1"] == "2024-05-01 00:00:00"));

    let e = poll(params, Some("not json")).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config);
}

#[test]
fn list_accepts_array_and_legacy_answers() {
    let _host = MockHost::new()
        .http(|req| {
            if is_token(req) {
                return Ok(token_answer("t"));
            }
            Ok(Response::new(200).with_json(
                &json!({"success": true, "message": null, "data": [{"code": "0001", "name": "主账簿"}]}),
            ))
        })
        .install();
    let b =
        poll(json!({"path": "/yonbip/fi/fipub/basedoc/querybd/accbook", "id_field": "code"}), None).unwrap();
    assert_eq!((b.records.len(), b.records[0].id.as_deref(), b.more), (1, Some("0001"), false));
}

#[test]
fn save_one_carries_the_derived_key_and_maps_validation_errors() {
    let host = MockHost::new()
        .http(|req| {
            if is_token(req) {
                return Ok(token_answer("t"));
            }
            let body = req.body_json().unwrap();
            if body.get("data").is_some() {
                return Ok(
                    Response::new(200).with_json(&json!({"code": "999", "message": "部门编码[D9999]不存在"}))
                );
            }
            Ok(Response::new(200)
                .with_json(&json!({"code": "200", "data": {"voucherId": "1", "billCode": "记-0001"}})))
        })
        .install();
    let out = invoke(SAVE, json!({"data": {"accbookCode": "0001", "bodies": []}}), "flow:FK-1:book").unwrap();
    assert_eq!(out.output["billCode"], "记-0001");
    let sent = host.requests()[1].body_json().unwrap();
    assert_eq!(sent["resubmitCheckKey"], check_key("flow:FK-1:book", None));
    assert!(host.requests()[1].url_without_query().ends_with("/voucher/addVoucher"));

    let e = invoke(SAVE, json!({"path": "/yonbip/digitalModel/merchant/save", "data": {"code": "C1"}}), "k")
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().ends_with("部门编码[D9999]不存在"), "{e}");
    let e = invoke(SAVE, json!({"data": 5}), "k").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    let e = invoke(SAVE, json!({"data": []}), "k").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
}

#[test]
fn save_list_gives_one_outcome_per_item() {
    let host = MockHost::new()
        .http(|req| {
            if is_token(req) {
                return Ok(token_answer("t"));
            }
            let items = req.body_json().unwrap()["data"].as_array().unwrap().clone();
            let key = |i: usize| items[i]["resubmitCheckKey"].clone();
            Ok(Response::new(200).with_json(&json!({"code": "200", "data": {
                "count": 3, "sucessCount": 2, "failCount": 1,
                "messages": [format!("第2条[{}]：第1行分录金额不能为空", key(1).as_str().unwrap())],
                "infos": [{"resubmitCheckKey": key(0), "billCode": "记-1"}, {"resubmitCheckKey": key(2), "billCode": "记-2"}]}})))
        })
        .install();
    let out = invoke(SAVE, json!({"data": [{"n": 0}, {"n": 1}, {"n": 2}]}), "flow:batch:save").unwrap();
    let items = out.items.unwrap();
    assert_eq!(items[0].as_ref().unwrap()["billCode"], "记-1");
    let e = items[1].as_ref().unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().ends_with("第1行分录金额不能为空"), "{e}");
    assert_eq!(items[2].as_ref().unwrap()["billCode"], "记-2");
    assert_eq!((out.output["successCount"].as_u64(), out.output["failCount"].as_u64()), (Some(2), Some(1)));
    let sent = host.requests()[1].body_json().unwrap();
    assert!(host.requests()[1].url_without_query().ends_with("/voucher/batchAddVoucher"));
    assert_eq!(sent["data"][2]["resubmitCheckKey"], check_key("flow:batch:save", Some(2)));
}

#[test]
fn call_checks_its_input_and_throttling_is_rate_limited() {
    let _host = MockHost::new()
        .http(|req| {
            if is_token(req) {
                return Ok(token_answer("t"));
            }
            Ok(Response::new(429)
                .with_header("retry-after", "2")
                .with_json(&json!({"code": "310027", "message": "频率超限"})))
        })
        .install();
    let e = invoke(
        CALL,
        json!({"method": "GET", "path": "/yonbip/digitalModel/project/detail", "query": {"id": 1}}),
        "k",
    )
    .unwrap_err();
    assert_eq!((e.class(), e.retry_after_ms()), (ErrorClass::RateLimited, Some(2000)));
    for bad in [
        json!({"method": "PATCH", "path": "/x"}),
        json!({"path": "https://evil/x"}),
        json!({"path": "/x", "query": {"a": [1]}}),
        json!({"path": "/x", "query": {"access_token": "t"}}),
        json!({"path": "/x", "nope": 1}),
    ] {
        assert_eq!(invoke(CALL, bad.clone(), "k").unwrap_err().class(), ErrorClass::InvalidInput, "{bad}");
    }
    assert_eq!(invoke("nope", json!({}), "k").unwrap_err().class(), ErrorClass::Permanent);
    assert!(Yonyou::validate_config(&config()).is_ok());
}
