//! Operation tests against `MockHost`, on realistic SAP payloads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use qiao_sdk::http::{HttpError, Request, Response};
use qiao_sdk::testing::MockHost;
use qiao_sdk::{ErrorClass, json};

use super::*;
use crate::client::{CSRF_KEY, Csrf};
use crate::poll::Cursor;

const BASE: &str = "https://my400123-api.s4hana.cloud.sap";
const WBS: &str = "https://my400123-api.s4hana.cloud.sap/sap/opu/odata/sap/API_ENTERPRISE_PROJECT_SRV;v=0002/A_EnterpriseProjectElement";

fn config() -> Value {
    json!({"base_url": BASE, "user": "COMM_USER", "password": "pw", "client": "100", "language": "ZH"})
}

fn params() -> Value {
    json!({"service": "API_ENTERPRISE_PROJECT_SRV;v=0002", "entity_set": "A_EnterpriseProjectElement",
           "select": "ProjectElement,ProjectElementDescription"})
}

fn wbs(n: u32, changed_ms: i64) -> Value {
    json!({
        "__metadata": {"uri": format!("{WBS}(guid'fa163e9c-1d2e-1eda-b0b0-02000000000{n}')"), "type": "API_ENTERPRISE_PROJECT_SRV.A_EnterpriseProjectElementType",
                       "etag": format!("W/\"datetimeoffset'{n}'\"")},
        "ProjectElementUUID": format!("fa163e9c-1d2e-1eda-b0b0-02000000000{n}"),
        "ProjectElement": format!("P-100001.{n}"),
        "ProjectElementDescription": "ERP系统升级 - 需求分析",
        "PlannedStartDate": "/Date(1714521600000)/",
        "LastChangeDateTime": format!("/Date({changed_ms}+0000)/"),
    })
}

fn poll(cursor: Option<&str>) -> Result<Batch> {
    let (c, p) = (config(), params());
    SapConnector::poll(PollRequest { op: ENTITIES_CHANGED, config: &c, params: &p, cursor })
}

fn invoke(op: &str, input: Value) -> Result<ActionOutput> {
    let c = config();
    SapConnector::invoke(InvokeRequest { op, config: &c, input: &input, idempotency_key: "flow:rec:step" })
}

#[test]
fn polls_pages_and_moves_the_watermark_only_at_the_end() {
    let host = MockHost::new()
        .http(|req: &Request| {
            let page = if req.url().contains("skiptoken") {
                json!({"d": {"results": [wbs(3, 1_714_525_200_000)]}})
            } else {
                json!({"d": {"results": [wbs(1, 1_714_521_600_000), wbs(2, 1_714_525_200_000)],
                              "__next": format!("{WBS}?$skiptoken=2&sap-client=100")}})
            };
            Ok(Response::new(200).with_json(&page))
        })
        .install();
    let first = poll(None).unwrap();
    assert!(first.more);
    assert_eq!(first.records.len(), 2);
    assert_eq!(
        first.records[0].id.as_deref(),
        Some("fa163e9c-1d2e-1eda-b0b0-020000000001@2024-05-01T00:00:00Z")
    );
    let rec = &first.records[0].data;
    assert_eq!(rec["LastChangeDateTime"], "2024-05-01T00:00:00Z");
    assert_eq!(rec["_etag"], "W/\"datetimeoffset'1'\"");
    assert!(rec.get("__metadata").is_none());
    let req = &host.requests()[0];
    assert_eq!(req.url_without_query(), WBS);
    assert_eq!(
        req.query_param("$filter").as_deref(),
        Some("LastChangeDateTime ge datetimeoffset'1970-01-01T00:00:00Z'")
    );
    assert_eq!(req.query_param("$orderby").as_deref(), Some("LastChangeDateTime asc,ProjectElementUUID asc"));
    assert_eq!(
        req.query_param("$select").as_deref(),
        Some("ProjectElement,ProjectElementDescription,LastChangeDateTime,ProjectElementUUID")
    );
    assert_eq!(req.query_param("sap-client").as_deref(), Some("100"));
    assert_eq!(req.query_param("sap-language").as_deref(), Some("ZH"));
    assert_eq!(req.header_value("accept"), Some("application/json"));
    assert!(req.header_value("authorization").unwrap().starts_with("Basic "));
    let mid: Cursor = serde_json::from_str(first.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(mid.since, "1970-01-01T00:00:00Z", "the watermark waits for the last page");
    assert_eq!(mid.max.as_deref(), Some("2024-05-01T01:00:00Z"));

    let last = poll(first.next_cursor.as_deref()).unwrap();
    assert!(!last.more);
    assert_eq!(host.requests()[1].url(), format!("{WBS}?$skiptoken=2&sap-client=100&sap-language=ZH"));
    let end: Cursor = serde_json::from_str(last.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(end.since, "2024-05-01T01:00:00Z");
    assert_eq!(
        end.seen,
        vec!["fa163e9c-1d2e-1eda-b0b0-020000000002", "fa163e9c-1d2e-1eda-b0b0-020000000003"]
    );
    assert_eq!(end.next, None);
}

#[test]
fn the_next_round_skips_what_was_seen_at_the_watermark() {
    let _host = MockHost::new()
        .http(|req: &Request| {
            assert!(req.query_param("$filter").unwrap().contains("ge datetimeoffset'2024-05-01T01:00:00Z'"));
            Ok(Response::new(200).with_json(
                &json!({"d": {"results": [wbs(2, 1_714_525_200_000), wbs(4, 1_714_525_200_000)]}}),
            ))
        })
        .install();
    let cursor = json!({"since": "2024-05-01T01:00:00Z", "seen": ["fa163e9c-1d2e-1eda-b0b0-020000000002"]})
        .to_string();
    let batch = poll(Some(&cursor)).unwrap();
    let ids: Vec<_> = batch.records.iter().map(|r| r.id.clone().unwrap()).collect();
    assert_eq!(ids, vec!["fa163e9c-1d2e-1eda-b0b0-020000000004@2024-05-01T01:00:00Z"]);
    let end: Cursor = serde_json::from_str(batch.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(end.seen.len(), 2, "{end:?}");
    assert_eq!(poll(Some("{not json")).unwrap_err().class(), ErrorClass::Config);
}

#[test]
fn v4_polls_use_bare_literals_and_relative_next_links() {
    let host = MockHost::new()
        .http(|req: &Request| {
            let body = if req.url().contains("skiptoken") {
                json!({"value": []})
            } else {
                json!({"value": [{"@odata.etag": "W/\"1\"", "ProjectElementUUID": "fa163e9c-1d2e-1eda-b0b0-020000000001",
                    "LastChangeDateTime": "2024-05-01T00:00:00.5Z"}], "@odata.nextLink": "A_EnterpriseProjectElement?$skiptoken=1"})
            };
            Ok(Response::new(200).with_json(&body))
        })
        .install();
    let (c, p) = (
        config(),
        json!({"service": "api_enterpriseproject/srvd_a2x/sap/enterpriseproject/0002",
        "entity_set": "A_EnterpriseProjectElement", "version": 4, "filter": "ProcessingStatus eq '10'"}),
    );
    let b = SapConnector::poll(PollRequest { op: ENTITIES_CHANGED, config: &c, params: &p, cursor: None })
        .unwrap();
    assert_eq!(b.records[0].data["_etag"], "W/\"1\"");
    assert_eq!(
        host.requests()[0].query_param("$filter").as_deref(),
        Some("(LastChangeDateTime ge 1970-01-01T00:00:00Z) and (ProcessingStatus eq '10')")
    );
    let b = SapConnector::poll(PollRequest {
        op: ENTITIES_CHANGED,
        config: &c,
        params: &p,
        cursor: b.next_cursor.as_deref(),
    })
    .unwrap();
    assert!(!b.more);
    assert!(host.requests()[1].url().starts_with(&format!(
        "{BASE}/sap/opu/odata4/sap/api_enterpriseproject/srvd_a2x/sap/enterpriseproject/0002/A_EnterpriseProjectElement?$skiptoken=1"
    )));
    let end: Cursor = serde_json::from_str(b.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(end.since, "2024-05-01T00:00:00.500Z");
}

/// A fake answering the CSRF fetch, GETs with an ETag, and writes that need token + cookie.
fn sap_host(current_token: &'static str, etag_sequence: Vec<&'static str>) -> MockHost {
    let mut etags = etag_sequence.into_iter();
    let mut current_etag = etags.next().unwrap_or("W/\"e1\"");
    MockHost::new().http(move |req: &Request| {
        let method = req.method();
        if method == "GET" && req.header_value("x-csrf-token") == Some("Fetch") {
            return Ok(Response::new(200)
                .with_header("x-csrf-token", current_token)
                .with_header("set-cookie", "SAP_SESSIONID_S4H_100=sess1; path=/; HttpOnly")
                .with_header("set-cookie", "sap-usercontext=sap-client=100; path=/"));
        }
        if method == "GET" {
            return Ok(Response::new(200).with_header("etag", current_etag).with_json(&json!({"d": {"PurchaseRequisition": "1"}})));
        }
        if req.header_value("x-csrf-token") != Some(current_token)
            || req.header_value("cookie") != Some("SAP_SESSIONID_S4H_100=sess1; sap-usercontext=sap-client=100")
        {
            return Ok(Response::new(403).with_header("x-csrf-token", "Required").with_text("CSRF token validation failed"));
        }
        if req.header_value("if-match") != Some(current_etag) {
            if let Some(next) = etags.next() {
                current_etag = next;
            }
            return Ok(Response::new(412).with_json(&json!({"error": {"code": "/IWBEP/CM_MGW_RT/153", "message": {"lang": "en", "value": "changed"}}})));
        }
        Ok(Response::new(204).with_header("etag", "W/\"new\""))
    })
}

fn update_input(etag: Option<&str>) -> Value {
    let mut v = json!({"service": "API_PURCHASEREQ_PROCESS_SRV", "entity_set": "A_PurchaseRequisitionItem",
        "key": {"PurchaseRequisition": "10000012", "PurchaseRequisitionItem": "00010"},
        "data": {"RequestedQuantity": 5, "DeliveryDate": "2024-06-01"}});
    if let Some(e) = etag {
        v["etag"] = json!(e);
    }
    v
}

#[test]
fn update_fetches_csrf_reads_the_etag_and_refetches_a_refused_token() {
    let host = sap_host("tok-2", vec!["W/\"e1\""])
        .kv_json(CSRF_KEY, &Csrf { token: "tok-1".into(), cookie: "SAP_SESSIONID_S4H_100=old".into() })
        .install();
    let out = invoke(UPDATE, update_input(None)).unwrap();
    assert_eq!(out.output["_etag"], "W/\"new\"");
    assert_eq!(out.output["key"], "(PurchaseRequisition='10000012',PurchaseRequisitionItem='00010')");
    let reqs = host.requests();
    let summary: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method(), r.header_value("x-csrf-token").unwrap_or("-")))
        .collect();
    assert_eq!(summary, vec!["GET -", "PATCH tok-1", "GET Fetch", "PATCH tok-2"]);
    let patch = &reqs[3];
    assert_eq!(patch.header_value("if-match"), Some("W/\"e1\""));
    assert_eq!(
        patch.body_json(),
        Some(json!({"RequestedQuantity": "5", "DeliveryDate": "/Date(1717200000000)/"}))
    );
    assert!(patch.url().starts_with(
        "https://my400123-api.s4hana.cloud.sap/sap/opu/odata/sap/API_PURCHASEREQ_PROCESS_SRV/A_PurchaseRequisitionItem(PurchaseRequisition='10000012',PurchaseRequisitionItem='00010')?sap-client=100"
    ));
    assert_eq!(host.kv_get_json::<Csrf>(CSRF_KEY).unwrap().token, "tok-2");
}

/// Someone changes the entity between our read and our write, once: the first GET sees
/// `e1`, the entity is at `e2` by the time the write arrives, the second GET sees `e2`.
fn racing_host() -> MockHost {
    let mut gets = 0;
    MockHost::new().http(move |req: &Request| {
        if req.header_value("x-csrf-token") == Some("Fetch") {
            return Ok(Response::new(200).with_header("x-csrf-token", "t"));
        }
        if req.method() == "GET" {
            gets += 1;
            return Ok(Response::new(200).with_header("etag", if gets == 1 { "W/\"e1\"" } else { "W/\"e2\"" }).with_json(&json!({"d": {}})));
        }
        if req.header_value("if-match") == Some("W/\"e2\"") {
            return Ok(Response::new(204).with_header("etag", "W/\"e3\""));
        }
        Ok(Response::new(412).with_json(&json!({"error": {"code": "/IWBEP/CM_MGW_RT/153", "message": {"lang": "en", "value": "changed"}}})))
    })
}

#[test]
fn stale_etags_are_invalid_input_unless_auto() {
    let _host = racing_host().install();
    let e = invoke(UPDATE, update_input(Some("W/\"old\""))).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().contains("412") && e.message().contains("/IWBEP/CM_MGW_RT/153"), "{e}");
    drop(_host);
    let _host = racing_host().install();
    let e = invoke(UPDATE, update_input(None)).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput, "without auto a race is not retried");
    drop(_host);
    let host = racing_host().install();
    let mut input = update_input(Some("auto"));
    input["method"] = json!("MERGE");
    let out = invoke(UPDATE, input).unwrap();
    assert_eq!(out.output["_etag"], "W/\"e3\"");
    let calls: Vec<String> = host
        .requests()
        .iter()
        .filter(|r| r.header_value("x-csrf-token") != Some("Fetch"))
        .map(|r| {
            format!(
                "{} {} {}",
                r.method(),
                r.header_value("x-http-method").unwrap_or("-"),
                r.header_value("if-match").unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(calls, vec!["GET - -", "POST MERGE W/\"e1\"", "GET - -", "POST MERGE W/\"e2\""]);
}

#[test]
fn a_second_csrf_refusal_is_unauthorized() {
    let _host = MockHost::new()
        .http(|req: &Request| {
            if req.header_value("x-csrf-token") == Some("Fetch") {
                return Ok(Response::new(200).with_header("x-csrf-token", "t"));
            }
            Ok(Response::new(403)
                .with_header("x-csrf-token", "Required")
                .with_text("CSRF token validation failed"))
        })
        .install();
    let input = json!({"service": "API_PURCHASEREQ_PROCESS_SRV", "entity_set": "A_PurchaseRequisitionHeader", "data": {"PurReqnDescription": "x"}});
    let e = invoke(CREATE, input).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unauthorized);
}

#[test]
fn bulk_create_maps_changesets_to_items() {
    let host = MockHost::new()
        .http(|req: &Request| {
            if req.method() == "GET" {
                return Ok(Response::new(200).with_header("x-csrf-token", "t").with_header("set-cookie", "SAP_SESSIONID_S4H_100=s; path=/"));
            }
            let body = req.body_text().unwrap();
            assert_eq!(body.matches("Content-Type: multipart/mixed; boundary=changeset_").count(), 3, "{body}");
            let answer = "--srv\r\nContent-Type: multipart/mixed; boundary=c1\r\n\r\n--c1\r\nContent-Type: application/http\r\n\r\n\
HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{\"d\":{\"__metadata\":{\"etag\":\"W/\\\"1\\\"\"},\"PurchaseRequisition\":\"10000111\",\"to_PurchaseReqnItem\":{\"results\":[{\"RequestedQuantity\":\"2.000\"}]}}}\r\n--c1--\r\n\r\n\
--srv\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n\
{\"error\":{\"code\":\"KI/235\",\"message\":{\"lang\":\"en\",\"value\":\"Account 0000400000 requires an assignment to a CO object\"}}}\r\n\
--srv\r\nContent-Type: multipart/mixed; boundary=c3\r\n\r\n--c3\r\nContent-Type: application/http\r\n\r\n\
HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{\"d\":{\"PurchaseRequisition\":\"10000112\"}}\r\n--c3--\r\n\r\n--srv--\r\n";
            Ok(Response::new(202).with_header("content-type", "multipart/mixed; boundary=srv").with_text(answer))
        })
        .install();
    let item = json!({"PurReqnDescription": "扩容", "to_PurchaseReqnItem": [{"Material": "M-1001", "RequestedQuantity": 2}]});
    let out = invoke(
        CREATE,
        json!({"service": "API_PURCHASEREQ_PROCESS_SRV", "entity_set": "A_PurchaseRequisitionHeader",
        "items": [item, item, item]}),
    )
    .unwrap();
    assert_eq!(out.output, json!({"succeeded": 2, "failed": 1}));
    let items = out.items.unwrap();
    assert_eq!(items[0].as_ref().unwrap()["to_PurchaseReqnItem"][0]["RequestedQuantity"], 2);
    assert_eq!(items[0].as_ref().unwrap()["_etag"], "W/\"1\"");
    let e = items[1].as_ref().unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().contains("KI/235"), "{e}");
    assert_eq!(items[2].as_ref().unwrap()["PurchaseRequisition"], "10000112");
    let batch = &host.requests()[1];
    assert!(
        batch.url().starts_with(&format!(
            "{BASE}/sap/opu/odata/sap/API_PURCHASEREQ_PROCESS_SRV/$batch?sap-client=100"
        ))
    );
    assert!(
        batch.body_text().unwrap().contains("\"RequestedQuantity\":\"2\""),
        "v2 decimals go out as strings"
    );
}

#[test]
fn errors_are_classified() {
    let cases: [(u16, &str, ErrorClass); 6] = [
        (401, "", ErrorClass::Unauthorized),
        (
            403,
            "{\"error\":{\"code\":\"/IWBEP/CM_MGW_RT/052\",\"message\":{\"lang\":\"en\",\"value\":\"No authorization\"}}}",
            ErrorClass::Permanent,
        ),
        (404, "", ErrorClass::InvalidInput),
        (429, "", ErrorClass::RateLimited),
        (500, "", ErrorClass::Transient),
        (503, "", ErrorClass::Transient),
    ];
    for (status, body, class) in cases {
        let _host = MockHost::new()
            .http(move |_| Ok(Response::new(status).with_header("retry-after", "3").with_text(body)))
            .install();
        let e =
            invoke(GET, json!({"service": "API_COSTCENTER_SRV", "entity_set": "A_CostCenter", "key": "'x'"}))
                .unwrap_err();
        assert_eq!(e.class(), class, "{status}: {e}");
        if status == 429 {
            assert_eq!(e.retry_after_ms(), Some(3000));
        }
    }
    let _host = MockHost::new().http(|_| Err(HttpError::Connect("connection reset".into()))).install();
    let e =
        invoke(QUERY, json!({"service": "API_COSTCENTER_SRV", "entity_set": "A_CostCenter"})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
}

#[test]
fn oauth_tokens_are_cached_and_refreshed_once() {
    let host = MockHost::new()
        .http(|req: &Request| {
            if req.url().contains("/oauth2/token") {
                assert_eq!(req.body_text().as_deref(), Some("grant_type=client_credentials"));
                return Ok(Response::new(200).with_json(
                    &json!({"access_token": format!("tok{}", req.url().len()), "expires_in": 3600}),
                ));
            }
            if req.header_value("authorization") == Some("Bearer stale") {
                return Ok(Response::new(401));
            }
            Ok(Response::new(200).with_json(&json!({"d": {"results": []}})))
        })
        .kv_json(client::OAUTH_KEY, &json!({"token": "stale", "expires_ms": u64::MAX}))
        .install();
    let c = json!({"base_url": BASE, "oauth": {"client_id": "cid", "client_secret": "sec"}});
    let input = json!({"service": "API_COSTCENTER_SRV", "entity_set": "A_CostCenter"});
    let out =
        SapConnector::invoke(InvokeRequest { op: QUERY, config: &c, input: &input, idempotency_key: "k" })
            .unwrap();
    assert_eq!(out.output, json!([]));
    let auth: Vec<String> = host
        .requests()
        .iter()
        .map(|r| r.header_value("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(auth[0], "Bearer stale");
    assert!(auth[1].starts_with("Basic "), "the token request authenticates the client: {auth:?}");
    assert!(auth[2].starts_with("Bearer tok"));
}

#[test]
fn query_follows_pages_and_normalizes() {
    let host = MockHost::new()
        .http(|req: &Request| {
            let body = if req.url().contains("skiptoken") {
                json!({"d": {"results": [{"Material": "M-1002", "MatlWrhsStkQtyInMatlBaseUnit": "3.000"}]}})
            } else {
                json!({"d": {"results": [{"Material": "M-1001", "MatlWrhsStkQtyInMatlBaseUnit": "12.000"}],
                    "__next": format!("{BASE}/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod?$skiptoken=1")}})
            };
            Ok(Response::new(200).with_json(&body))
        })
        .install();
    let out = invoke(
        QUERY,
        json!({"service": "API_MATERIAL_STOCK_SRV", "entity_set": "A_MatlStkInAcctMod",
        "filter": "Plant eq '1010'", "select": ["Material", "MatlWrhsStkQtyInMatlBaseUnit"], "top": 10}),
    )
    .unwrap();
    assert_eq!(
        out.output,
        json!([{"Material": "M-1001", "MatlWrhsStkQtyInMatlBaseUnit": 12}, {"Material": "M-1002", "MatlWrhsStkQtyInMatlBaseUnit": 3}])
    );
    let first = &host.requests()[0];
    assert_eq!(first.query_param("$filter").as_deref(), Some("Plant eq '1010'"));
    assert_eq!(first.query_param("$top").as_deref(), Some("10"));
    let e = invoke(CREATE, json!({"service": "S", "entity_set": "E"})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    let e = invoke(
        UPDATE,
        json!({"service": "S", "entity_set": "E", "key": "'1'", "data": {}, "method": "POST"}),
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
}
