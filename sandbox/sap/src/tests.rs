//! Protocol tests through a served fake: authentication, formats, paging, filters, keys,
//! CSRF, ETags, writes, `$batch` and the fault answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use super::*;

const WBS: &str = "/sap/opu/odata/sap/API_ENTERPRISE_PROJECT_SRV;v=0002/A_EnterpriseProjectElement";
const PR_ROOT: &str = "/sap/opu/odata/sap/API_PURCHASEREQ_PROCESS_SRV";
const WBS_V4: &str = "/sap/opu/odata4/sap/api_enterpriseproject/srvd_a2x/sap/enterpriseproject/0002/A_EnterpriseProjectElement";

struct Env {
    fake: Arc<SapFake>,
    ctx: Ctx,
    running: Running,
    http: Client,
}

async fn env() -> Env {
    let ctx = Ctx::new(Clock::new());
    let fake = SapFake::new(ctx.clone());
    let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env { fake, ctx, running, http: Client::new() }
}

impl Env {
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.running.url) }
    }
    fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).basic_auth(USER, Some(PASSWORD)).header("accept", "application/json")
    }
    fn send(&self, method: &str, path: &str) -> RequestBuilder {
        self.http
            .request(method.parse().unwrap(), self.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .header("accept", "application/json")
    }
    /// (token, cookie header) from a CSRF fetch.
    async fn csrf(&self) -> (String, String) {
        let r = self.get(&format!("{PR_ROOT}/")).header("x-csrf-token", "Fetch").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let token = r.headers()["x-csrf-token"].to_str().unwrap().to_string();
        let cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect();
        assert!(cookies.iter().any(|c| c.starts_with("SAP_SESSIONID_S4H_100=")), "{cookies:?}");
        (token, cookies.join("; "))
    }
}

trait JsonBody {
    fn jbody(self, v: &Value) -> Self;
}

impl JsonBody for RequestBuilder {
    fn jbody(self, v: &Value) -> Self {
        self.header("content-type", "application/json").body(v.to_string())
    }
}

async fn body(r: Response) -> Value {
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[tokio::test]
async fn basic_auth_is_required_and_failures_are_html() {
    let env = env().await;
    let r = env.http.get(env.url(WBS)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic realm=\"SAP NetWeaver"));
    assert!(r.text().await.unwrap().contains("<html>"));
    let r = env.http.get(env.url(WBS)).basic_auth(USER, Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = env.get(&format!("{WBS}?sap-client=200")).send().await.unwrap();
    assert_eq!(r.status(), 401, "an unknown client is refused");
    let r = env.get(&format!("{WBS}?sap-client=100&$top=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oauth_client_credentials_give_bearer_tokens_that_expire() {
    let env = env().await;
    let r = env
        .http
        .post(env.url(TOKEN_PATH))
        .basic_auth(OAUTH_CLIENT_ID, Some(OAUTH_CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = body(r).await;
    assert_eq!(token["token_type"], "Bearer");
    let bearer = token["access_token"].as_str().unwrap().to_string();
    let call = || {
        env.http
            .get(env.url(&format!("{WBS}?$top=1")))
            .bearer_auth(&bearer)
            .header("accept", "application/json")
    };
    assert_eq!(call().send().await.unwrap().status(), 200);
    env.ctx.faults.expire_tokens();
    let r = call().send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let r = env
        .http
        .post(env.url(TOKEN_PATH))
        .basic_auth(OAUTH_CLIENT_ID, Some("nope"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn v2_is_atom_unless_json_is_asked_for() {
    let env = env().await;
    let r = env
        .http
        .get(env.url(&format!("{WBS}?$top=2")))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/atom+xml"));
    let xml = r.text().await.unwrap();
    assert!(xml.contains("<feed") && xml.contains("<m:properties>") && xml.contains("P-100001.1"), "{xml}");
    let r = env
        .http
        .get(env.url(&format!("{WBS}?$top=2&$format=json")))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await["d"]["results"].as_array().unwrap().len(), 2);
    // v4 is JSON by default.
    let r = env
        .http
        .get(env.url(&format!("{WBS_V4}?$top=2")))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn v2_pages_with_absolute_next_links_and_string_counts() {
    let env = env().await;
    let first = body(
        env.get(&format!("{WBS}?$inlinecount=allpages&$orderby=LastChangeDateTime asc"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let d = &first["d"];
    assert_eq!(d["__count"], json!(WBS_COUNT.to_string()));
    assert_eq!(d["results"].as_array().unwrap().len(), DEFAULT_PAGE_SIZE);
    let row = &d["results"][0];
    assert_eq!(row["ProjectElement"], "P-100001.1");
    assert!(row["LastChangeDateTime"].as_str().unwrap().ends_with("+0000)/"), "{row}");
    assert!(row["PlannedStartDate"].as_str().unwrap().starts_with("/Date("));
    assert!(row["__metadata"]["etag"].as_str().unwrap().starts_with("W/\"datetimeoffset'"));
    assert!(row["__metadata"]["uri"].as_str().unwrap().contains("A_EnterpriseProjectElement(guid'"));
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for r in page["d"]["results"].as_array().unwrap() {
            seen.push(r["ProjectElementUUID"].as_str().unwrap().to_string());
        }
        let Some(next) = page["d"]["__next"].as_str() else { break };
        assert!(next.starts_with("http://") && next.contains("$skiptoken="), "{next}");
        page = body(env.get(next).send().await.unwrap()).await;
    }
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((n, seen.len()), (WBS_COUNT, WBS_COUNT));

    // $top larger than the page size: the server pages within it.
    let page = body(env.get(&format!("{WBS}?$top=70&$skip=10")).send().await.unwrap()).await;
    assert_eq!(page["d"]["results"].as_array().unwrap().len(), 50);
    let next = page["d"]["__next"].as_str().unwrap().to_string();
    let page = body(env.get(&next).send().await.unwrap()).await;
    assert_eq!(page["d"]["results"].as_array().unwrap().len(), 20);
    assert!(page["d"].get("__next").is_none());
    let count = env.get(&format!("{WBS}/$count")).send().await.unwrap().text().await.unwrap();
    assert_eq!(count, WBS_COUNT.to_string());
}

#[tokio::test]
async fn v4_pages_with_relative_next_links_and_numbers() {
    let env = env().await;
    env.fake.set_page_size(40);
    let page = body(
        env.get(&format!("{WBS_V4}?$count=true&$select=ProjectElement,LastChangeDateTime"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["@odata.count"], json!(WBS_COUNT));
    assert_eq!(page["@odata.context"], "$metadata#A_EnterpriseProjectElement");
    let row = &page["value"][0];
    assert!(row["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    assert!(row.get("ProjectElementDescription").is_none(), "$select applies: {row}");
    assert!(row["LastChangeDateTime"].as_str().unwrap().ends_with('Z'));
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with("A_EnterpriseProjectElement?") && next.ends_with("$skiptoken=40"), "{next}");
    let root = WBS_V4.trim_end_matches("A_EnterpriseProjectElement");
    let page2 = body(env.get(&format!("{root}{next}")).send().await.unwrap()).await;
    assert_eq!(page2["value"].as_array().unwrap().len(), 40);
    assert_ne!(page2["value"][0]["ProjectElement"], row["ProjectElement"]);

    let items = "/sap/opu/odata4/sap/api_purchaserequisition_2/srvd_a2x/sap/purchaserequisition/0001/A_PurchaseRequisitionItem?$top=1";
    let item = &body(env.get(items).send().await.unwrap()).await["value"][0];
    assert!(item["RequestedQuantity"].is_number(), "{item}");
    assert_eq!(item["DeliveryDate"].as_str().unwrap().len(), 10, "Edm.Date: {item}");
    let item = &body(env.get(&format!("{PR_ROOT}/A_PurchaseRequisitionItem?$top=1")).send().await.unwrap())
        .await["d"]["results"][0];
    assert!(item["RequestedQuantity"].is_string(), "{item}");
}

#[tokio::test]
async fn filters_follow_the_version_and_errors_have_the_gateway_shape() {
    let env = env().await;
    let v2 = format!(
        "{WBS}?$filter=LastChangeDateTime ge datetimeoffset'2024-05-02T00:00:00Z' and ProjectElement ne 'x'&$inlinecount=allpages&$top=1"
    );
    let n2 = body(env.get(&v2).send().await.unwrap()).await["d"]["__count"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert!(n2 > 0 && n2 < WBS_COUNT, "{n2}");
    let v4 = format!(
        "{WBS_V4}?$filter=LastChangeDateTime ge 2024-05-02T00:00:00Z and ProjectElement ne 'x'&$count=true&$top=1"
    );
    assert_eq!(body(env.get(&v4).send().await.unwrap()).await["@odata.count"], json!(n2));
    let dt = format!(
        "{WBS}?$filter=PlannedStartDate le datetime'2024-05-01T00:00:00'&$inlinecount=allpages&$top=0"
    );
    assert_ne!(body(env.get(&dt).send().await.unwrap()).await["d"]["__count"], "0");

    let r =
        env.get(&format!("{WBS}?$filter=LastChangeDateTime ge 2024-05-02T00:00:00Z")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e = body(r).await;
    assert_eq!(e["error"]["code"], codes::BAD_QUERY);
    assert_eq!(e["error"]["message"]["lang"], "en");
    assert!(e["error"]["innererror"]["transactionid"].as_str().unwrap().len() == 32);
    assert_eq!(e["error"]["innererror"]["application"]["service_id"], "API_ENTERPRISE_PROJECT_SRV");
    let r = env.get(&format!("{WBS}?$count=true")).send().await.unwrap();
    assert_eq!(r.status(), 400, "$count is v4 only");
    let r =
        env.get("/sap/opu/odata/sap/API_ENTERPRISE_PROJECT_SRV/A_EnterpriseProject").send().await.unwrap();
    assert_eq!(r.status(), 404, "version 0001 is not served");
    assert_eq!(body(r).await["error"]["code"], codes::NO_SERVICE);
    let r = env.get("/sap/opu/odata/sap/API_COSTCENTER_SRV/A_Nope").send().await.unwrap();
    assert_eq!(body(r).await["error"]["code"], codes::NO_SEGMENT);
}

#[tokio::test]
async fn composite_keys_and_etags_on_single_reads() {
    let env = env().await;
    let key = "A_CostCenter(ControllingArea='A000',CostCenter='10101101',ValidityEndDate=datetime'9999-12-31T00%3A00%3A00')";
    let r = env.get(&format!("/sap/opu/odata/sap/API_COSTCENTER_SRV/{key}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let cc = body(r).await;
    assert_eq!(cc["d"]["ValidityEndDate"], "/Date(253402214400000)/");
    assert_eq!(cc["d"]["CostCenterName"], "ERP系统升级项目组");
    assert_eq!(cc["d"]["__metadata"]["etag"], json!(etag));
    let v4 = "/sap/opu/odata4/sap/api_costcenter/srvd_a2x/sap/costcenter/0001/A_CostCenter(ControllingArea='A000',CostCenter='10101101',ValidityEndDate=9999-12-31)";
    let cc4 = body(env.get(v4).send().await.unwrap()).await;
    assert_eq!(cc4["ValidityEndDate"], "9999-12-31");
    let old = key.replace("9999-12-31", "2023-12-31");
    let r = env.get(&format!("/sap/opu/odata/sap/API_COSTCENTER_SRV/{old}")).send().await.unwrap();
    assert_eq!(body(r).await["d"]["CostCenterName"], "ERP系统升级（旧）");
    let r = env
        .get(&format!("/sap/opu/odata/sap/API_COSTCENTER_SRV/{}", key.replace("10101101", "99999999")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let stock = "/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod?$filter=InventorySpecialStockType eq 'Q'";
    let rows = body(env.get(stock).send().await.unwrap()).await;
    assert_eq!(rows["d"]["results"].as_array().unwrap().len(), 4);
    assert_eq!(rows["d"]["results"][0]["WBSElementExternalID"], "P-100001.1");
}

fn wbs_uuid(env: &Env, id: &str) -> String {
    env.fake.find("A_EnterpriseProjectElement", "ProjectElement", id)[0]["ProjectElementUUID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn writes_need_the_csrf_token_and_its_session() {
    let env = env().await;
    let url = format!("{WBS}(guid'{}')", wbs_uuid(&env, "P-100001.1"));
    let patch = json!({"ProjectElementDescription": "ERP系统升级 - 需求分析（修订）"});
    let r = env.send("PATCH", &url).header("if-match", "*").jbody(&patch).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-csrf-token"], "Required");
    assert_eq!(r.text().await.unwrap(), "CSRF token validation failed");
    let (token, cookie) = env.csrf().await;
    let r = env
        .send("PATCH", &url)
        .header("if-match", "*")
        .header("x-csrf-token", &token)
        .jbody(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the token alone, without its session cookie, is refused");
    let r = env
        .send("PATCH", &url)
        .header("if-match", "*")
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        .jbody(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    env.ctx.faults.invalidate_csrf();
    let r = env
        .send("PATCH", &url)
        .header("if-match", "*")
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        .jbody(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(env.fake.csrf_rejections(), 3);
    assert_eq!(env.fake.writes().len(), 1);
}

#[tokio::test]
async fn updates_need_a_current_etag() {
    let env = env().await;
    let (token, cookie) = env.csrf().await;
    let url = format!("{WBS}(guid'{}')", wbs_uuid(&env, "P-100002.1"));
    let etag = env.get(&url).send().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let patch = |if_match: Option<&str>, body: Value| {
        let mut r =
            env.send("PATCH", &url).header("x-csrf-token", &token).header("cookie", &cookie).jbody(&body);
        if let Some(m) = if_match {
            r = r.header("if-match", m);
        }
        r.send()
    };
    let r = patch(None, json!({"ProcessingStatus": "20"})).await.unwrap();
    assert_eq!(r.status(), 428);
    assert_eq!(body(r).await["error"]["code"], codes::PRECONDITION_REQUIRED);
    let r = patch(Some(&etag), json!({"ProcessingStatus": "20"})).await.unwrap();
    assert_eq!(r.status(), 204);
    let fresh = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(fresh, etag);
    let r = patch(Some(&etag), json!({"ProcessingStatus": "40"})).await.unwrap();
    assert_eq!(r.status(), 412);
    let e = body(r).await;
    assert_eq!(e["error"]["code"], codes::PRECONDITION_FAILED);
    assert!(e["error"]["innererror"]["errordetails"].is_array());
    let r = patch(Some(&fresh), json!({"ProcessingStatus": "99"})).await.unwrap();
    assert_eq!(r.status(), 400);
    let e = body(r).await;
    assert_eq!(e["error"]["code"], codes::STATUS);
    assert_eq!(e["error"]["innererror"]["errordetails"][0]["target"], "ProcessingStatus");
    let r = patch(Some(&fresh), json!({"PlannedEndDate": "/Date(0)/"})).await.unwrap();
    assert_eq!(body(r).await["error"]["code"], codes::DATES);
    let r = patch(Some(&fresh), json!({"Nope": 1})).await.unwrap();
    assert_eq!(body(r).await["error"]["code"], codes::BAD_PAYLOAD);
    // MERGE tunnelled through POST.
    let r = env
        .send("POST", &url)
        .header("x-http-method", "MERGE")
        .header("if-match", &fresh)
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        .jbody(&json!({"ProjectElementDescription": "智能制造MES实施 - 方案评审"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let now = env.fake.find("A_EnterpriseProjectElement", "ProjectElement", "P-100002.1");
    assert_eq!(now[0]["ProjectElementDescription"], "智能制造MES实施 - 方案评审");
    assert_eq!(now[0]["ProcessingStatus"], "20");
    assert_eq!(env.fake.writes().len(), 2);
}

fn new_pr(qty: &str, material: &str) -> Value {
    json!({
        "PurchaseRequisitionType": "NB",
        "PurReqnDescription": "数据中心扩容",
        "to_PurchaseReqnItem": {"results": [{
            "Material": material, "Plant": "1010", "RequestedQuantity": qty, "BaseUnit": "EA",
            "PurchaseRequisitionPrice": "8500.00", "AccountAssignmentCategory": "P", "WBSElement": "P-100004.1",
            "DeliveryDate": "/Date(1717200000000)/"
        }]}
    })
}

#[tokio::test]
async fn creates_deep_insert_and_validate() {
    let env = env().await;
    let (token, cookie) = env.csrf().await;
    let post = |body: Value| {
        env.send("POST", &format!("{PR_ROOT}/A_PurchaseRequisitionHeader"))
            .header("x-csrf-token", &token)
            .header("cookie", &cookie)
            .jbody(&body)
            .send()
    };
    let r = post(new_pr("2", "M-1001")).await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("A_PurchaseRequisitionHeader('{}')", FIRST_PR + PR_COUNT as u64))
    );
    let pr = body(r).await;
    assert_eq!(pr["d"]["PurchaseRequisition"], json!((FIRST_PR + PR_COUNT as u64).to_string()));
    let item = &pr["d"]["to_PurchaseReqnItem"]["results"][0];
    assert_eq!(item["RequestedQuantity"], "2.000");
    assert_eq!(item["PurchaseRequisitionItem"], "00010");
    let r = post(new_pr("0", "M-1001")).await.unwrap();
    assert_eq!(r.status(), 400);
    let e = body(r).await;
    assert_eq!(e["error"]["code"], codes::QUANTITY);
    assert_eq!(e["error"]["innererror"]["errordetails"][0]["target"], "RequestedQuantity");
    let r = post(new_pr("1", "M-9999")).await.unwrap();
    assert_eq!(body(r).await["error"]["code"], codes::MATERIAL);
    let mut numeric = new_pr("1", "M-1001");
    numeric["to_PurchaseReqnItem"]["results"][0]["RequestedQuantity"] = json!(1);
    let r = post(numeric).await.unwrap();
    assert_eq!(body(r).await["error"]["code"], codes::BAD_PAYLOAD, "v2 decimals are strings");
    assert_eq!(env.fake.count("A_PurchaseRequisitionHeader"), PR_COUNT + 1);
    let r = env
        .send("POST", "/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod")
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        .jbody(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

fn batch_body(changesets: &[Value]) -> String {
    let mut s = String::new();
    for (i, cs) in changesets.iter().enumerate() {
        s.push_str(&format!(
            "--batch_t\r\nContent-Type: multipart/mixed; boundary=cs_{i}\r\n\r\n--cs_{i}\r\nContent-Type: application/http\r\n\
             Content-Transfer-Encoding: binary\r\n\r\nPOST A_PurchaseRequisitionHeader HTTP/1.1\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\n\r\n{cs}\r\n--cs_{i}--\r\n\r\n"
        ));
    }
    s.push_str(
        "--batch_t\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
                GET A_PurchaseRequisitionHeader('10000001')?$format=json HTTP/1.1\r\n\r\n\r\n--batch_t--\r\n",
    );
    s
}

#[tokio::test]
async fn batch_changesets_succeed_or_fail_alone() {
    let env = env().await;
    let (token, cookie) = env.csrf().await;
    env.ctx.faults.partial_next(1, vec![1]);
    let body = batch_body(&[new_pr("1", "M-1001"), new_pr("2", "M-1002"), new_pr("0", "M-1003")]);
    let r = env
        .send("POST", &format!("{PR_ROOT}/$batch"))
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        .header("content-type", "multipart/mixed; boundary=batch_t")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let text = r.text().await.unwrap();
    let b = batch::boundary(&ct).unwrap();
    let statuses: Vec<&str> = text.lines().filter(|l| l.starts_with("HTTP/1.1")).collect();
    assert_eq!(
        statuses,
        vec![
            "HTTP/1.1 201 Created",
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 200 OK"
        ],
        "{text}"
    );
    assert!(text.contains(codes::ACCOUNT_ASSIGNMENT), "the forced failure: {text}");
    assert!(text.contains(codes::QUANTITY), "the real validation failure: {text}");
    assert!(text.starts_with(&format!("--{b}")));
    // Only the first changeset was applied.
    assert_eq!(env.fake.count("A_PurchaseRequisitionHeader"), PR_COUNT + 1);
    assert_eq!(
        env.fake.writes().iter().filter(|w| w["entity_set"] == "A_PurchaseRequisitionHeader").count(),
        1
    );
    // Without a token the batch is refused as a whole.
    let r = env
        .send("POST", &format!("{PR_ROOT}/$batch"))
        .header("content-type", "multipart/mixed; boundary=batch_t")
        .body(batch_body(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn throttle_and_server_errors_have_the_system_shapes() {
    let env = env().await;
    env.ctx.faults.throttle_next(1);
    let r = env.get(WBS).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    env.ctx.faults.fail_next(1, 503);
    let r = env.get(WBS).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(body(r).await["error"]["code"], codes::TECHNICAL);
    assert_eq!(env.get(&format!("{WBS}?$top=1")).send().await.unwrap().status(), 200);
}

#[test]
fn v4_service_table_matches_the_model() {
    for (name, path) in V4_SERVICES {
        let s = model::SERVICES.iter().find(|s| s.v2_name == *name).unwrap();
        assert_eq!(s.v4_path, *path);
    }
    assert_eq!(V4_SERVICES.len(), model::SERVICES.len());
}
