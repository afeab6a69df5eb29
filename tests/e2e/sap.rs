//! The SAP S/4HANA connector, built to Wasm, through the real host against the SAP fake:
//! polling in v2 and v4 across pages, every action, the CSRF and ETag handshakes, `$batch`
//! partial failures, every generic fault mode, and a real flow with faults armed.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use qiao_contract::{ActionOutput, ConnectorError, ErrorClass};
use qiao_engine::{FlowRunner, RunnerOptions, TriggerInput};
use qiao_fake_sap::{CLIENT, PASSWORD, PR_COUNT, SapFake, USER, WBS_COUNT};
use qiao_flow::{MemorySecrets, StaticCatalog};
use qiao_host::{CallError, Connection};
use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use qiao_store::{RunStatus, Store};
use serde_json::{Value, json};

use crate::common::{load, loopback_policy, runtime};

const PROJECT_SRV: &str = "API_ENTERPRISE_PROJECT_SRV;v=0002";
const PROJECT_V4: &str = "api_enterpriseproject/srvd_a2x/sap/enterpriseproject/0002";
const PR_SRV: &str = "API_PURCHASEREQ_PROCESS_SRV";
const WBS_SET: &str = "A_EnterpriseProjectElement";

struct Env {
    fake: Arc<SapFake>,
    ctx: Ctx,
    running: Running,
    conn: Connection,
}

fn config(url: &str) -> Value {
    json!({"base_url": url, "user": USER, "password": PASSWORD, "client": CLIENT, "language": "ZH"})
}

async fn env_with(scope: &str, extra: Value) -> Result<Env> {
    let ctx = Ctx::new(Clock::new());
    let fake = SapFake::new(ctx.clone());
    let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse()?).await?;
    let mut cfg = config(&running.url);
    if let (Value::Object(c), Value::Object(e)) = (&mut cfg, extra) {
        c.extend(e);
    }
    let rt = runtime()?;
    let connector = load(&rt, "sap", loopback_policy()).await?;
    let conn = connector.connect(scope, &cfg)?;
    Ok(Env { fake, ctx, running, conn })
}

async fn env(scope: &str) -> Result<Env> {
    env_with(scope, json!({})).await
}

fn connector_error(e: CallError) -> ConnectorError {
    match e {
        CallError::Connector(e) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

impl Env {
    async fn invoke(&self, op: &str, input: Value) -> Result<ActionOutput, ConnectorError> {
        self.conn.invoke(op, &input, "e2e").await.map_err(connector_error)
    }

    /// Polls until the round ends; returns every record and the final cursor.
    async fn poll_round(
        &self,
        params: &Value,
        cursor: Option<String>,
    ) -> Result<(Vec<qiao_contract::SourceRecord>, Option<String>, usize)> {
        let mut cursor = cursor;
        let mut records = Vec::new();
        let mut pages = 0;
        loop {
            let batch = self.conn.poll("entities-changed", params, cursor.as_deref()).await?;
            pages += 1;
            records.extend(batch.records);
            if batch.next_cursor.is_some() {
                cursor = batch.next_cursor;
            }
            if !batch.more {
                return Ok((records, cursor, pages));
            }
            assert!(pages < 100, "the round does not end");
        }
    }

    fn wbs_uuid(&self, id: &str) -> String {
        self.fake.find(WBS_SET, "ProjectElement", id)[0]["ProjectElementUUID"].as_str().unwrap().to_string()
    }
}

fn unique(ids: impl IntoIterator<Item = String>) -> usize {
    ids.into_iter().collect::<HashSet<_>>().len()
}

#[tokio::test]
async fn entities_changed_v2_pages_resumes_and_sees_new_changes_once() -> Result<()> {
    let env = env("sap-poll-v2").await?;
    let params = json!({"service": PROJECT_SRV, "entity_set": WBS_SET, "select": "ProjectElement,ProjectElementDescription"});
    let (records, cursor, pages) = env.poll_round(&params, None).await?;
    assert_eq!(pages, 3, "120 WBS elements at 50 per page");
    assert_eq!(records.len(), WBS_COUNT);
    assert_eq!(unique(records.iter().filter_map(|r| r.id.clone())), WBS_COUNT);
    let first = &records[0].data;
    assert_eq!(first["ProjectElement"], "P-100001.1");
    assert!(first["ProjectElementDescription"].as_str().unwrap().starts_with("ERP系统升级"));
    assert_eq!(first["LastChangeDateTime"], "2024-05-01T00:00:00Z");
    assert!(first["_etag"].as_str().unwrap().starts_with("W/\"datetimeoffset'"));
    assert!(first.get("__metadata").is_none() && first.get("PlannedStartDate").is_none(), "{first}");
    // Oldest first, ties broken by key.
    let times: Vec<&str> = records.iter().map(|r| r.data["LastChangeDateTime"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    // The next round finds nothing: the last instant's elements are remembered.
    let (again, cursor, _) = env.poll_round(&params, cursor).await?;
    assert!(again.is_empty(), "{:?}", again.iter().map(|r| &r.id).collect::<Vec<_>>());

    // A change in SAP shows up once, with its new values.
    assert_eq!(
        env.fake.change(
            WBS_SET,
            "ProjectElement",
            "P-100002.2",
            &[("ProjectElementDescription", "智能制造MES实施 - 设备联调")]
        ),
        1
    );
    let (changed, cursor, _) = env.poll_round(&params, cursor).await?;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].data["ProjectElementDescription"], "智能制造MES实施 - 设备联调");
    let (none, _, _) = env.poll_round(&params, cursor).await?;
    assert!(none.is_empty());

    // The journal shows what the trigger asked for.
    let gets = env.ctx.journal.matching("GET", "/A_EnterpriseProjectElement");
    assert!(
        gets[0].query.contains("datetimeoffset") && gets[0].query.contains("sap-client=100"),
        "{}",
        gets[0].query
    );
    Ok(())
}

#[tokio::test]
async fn entities_changed_v4_follows_relative_next_links() -> Result<()> {
    let env = env_with("sap-poll-v4", json!({"odata_version": 4})).await?;
    env.fake.set_page_size(40);
    let params = json!({"service": PROJECT_V4, "entity_set": WBS_SET, "filter": "ProcessingStatus eq '10'"});
    let (records, cursor, pages) = env.poll_round(&params, None).await?;
    assert_eq!((records.len(), pages), (WBS_COUNT, 3));
    let r = &records[5].data;
    assert_eq!(r["PlannedStartDate"].as_str().unwrap().len(), 10, "Edm.Date in v4: {r}");
    assert!(r["_etag"].as_str().unwrap().starts_with("W/\"2024"));
    let cursor_json: Value = serde_json::from_str(cursor.as_deref().unwrap())?;
    assert_eq!(cursor_json["since"], records.last().unwrap().data["LastChangeDateTime"]);
    let v4_gets = env.ctx.journal.matching("GET", "/0002/A_EnterpriseProjectElement");
    assert_eq!(v4_gets.len(), 3);
    assert!(v4_gets[1].query.contains("$skiptoken=40"), "{}", v4_gets[1].query);
    Ok(())
}

#[tokio::test]
async fn get_and_query_read_any_entity_set_in_both_versions() -> Result<()> {
    let env = env("sap-read").await?;
    let key = json!({"ControllingArea": "A000", "CostCenter": "10101101", "ValidityEndDate": "9999-12-31"});
    let cc = env
        .invoke("get", json!({"service": "API_COSTCENTER_SRV", "entity_set": "A_CostCenter", "key": key}))
        .await?
        .output;
    assert_eq!(cc["CostCenterName"], "ERP系统升级项目组");
    assert_eq!(cc["ValidityEndDate"], "9999-12-31T00:00:00Z");
    assert!(cc["_etag"].is_string());
    let cc4 = env
        .invoke("get", json!({"service": "api_costcenter/srvd_a2x/sap/costcenter/0001", "version": 4, "entity_set": "A_CostCenter", "key": key}))
        .await?
        .output;
    assert_eq!(cc4["CostCenterName"], "ERP系统升级项目组");

    let items = env
        .invoke("query", json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionItem",
            "filter": "Material eq 'M-1001' and AccountAssignmentCategory eq 'P'", "select": ["PurchaseRequisition", "RequestedQuantity", "DeliveryDate"]}))
        .await?
        .output;
    let items = items.as_array().unwrap();
    assert!(items.len() > 20, "{}", items.len());
    assert!(items.iter().all(|i| i["RequestedQuantity"].is_number()), "{:?}", items[0]);
    assert!(items[0]["DeliveryDate"].as_str().unwrap().ends_with("T00:00:00Z"));
    let all = env
        .invoke("query", json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader"}))
        .await?
        .output;
    assert_eq!(all.as_array().unwrap().len(), PR_COUNT, "every page followed");
    let capped = env.invoke("query", json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "top": 70, "orderby": "PurchaseRequisition desc"})).await?.output;
    assert_eq!(capped.as_array().unwrap().len(), 70);
    assert_eq!(capped[0]["PurchaseRequisition"], (qiao_fake_sap::FIRST_PR + PR_COUNT as u64 - 1).to_string());
    let stock = env
        .invoke(
            "query",
            json!({"service": "api_materialstock/srvd_a2x/sap/materialstock/0001", "version": 4,
            "entity_set": "A_MatlStkInAcctMod", "filter": "Material eq 'M-1003'"}),
        )
        .await?
        .output;
    assert_eq!(stock[0]["MatlWrhsStkQtyInMatlBaseUnit"], 1500);

    let e = env.invoke("get", json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "key": {"PurchaseRequisition": "99999999"}})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().contains("404"), "{e}");
    let e = env
        .invoke(
            "query",
            json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "filter": "Nope eq 1"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().contains("/IWBEP/CM_MGW_RT/022"), "{e}");
    Ok(())
}

fn pr(wbs: &str, qty: Value) -> Value {
    json!({"PurchaseRequisitionType": "NB", "PurReqnDescription": format!("{wbs} 布线材料"),
        "to_PurchaseReqnItem": [{"Material": "M-1003", "Plant": "1010", "RequestedQuantity": qty, "BaseUnit": "M",
            "PurchaseRequisitionPrice": 3.2, "AccountAssignmentCategory": "P", "WBSElement": wbs, "DeliveryDate": "2024-06-01"}]})
}

#[tokio::test]
async fn create_needs_csrf_and_reports_validation_errors() -> Result<()> {
    let env = env("sap-create").await?;
    let out = env.invoke("create", json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "data": pr("P-100001.1", json!(25))})).await?;
    let created = &out.output;
    assert_eq!(created["PurchaseRequisition"], (qiao_fake_sap::FIRST_PR + PR_COUNT as u64).to_string());
    assert_eq!(created["to_PurchaseReqnItem"][0]["RequestedQuantity"], 25);
    assert_eq!(created["to_PurchaseReqnItem"][0]["DeliveryDate"], "2024-06-01T00:00:00Z");
    assert_eq!(env.fake.csrf_tokens_issued(), 1);
    let e = env.invoke("create", json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "data": pr("P-100001.1", json!(0))})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().contains("ME/083") && e.message().contains("RequestedQuantity"), "{e}");
    let e = env.invoke("create", json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "data": pr("P-999", json!(1))})).await.unwrap_err();
    assert!(e.message().contains("KI/235"), "{e}");
    assert_eq!(env.fake.csrf_tokens_issued(), 1, "the token is cached in kv");
    assert_eq!(env.fake.count("A_PurchaseRequisitionHeader"), PR_COUNT + 1);
    // v4 create of a WBS element.
    let project = env.fake.find("A_EnterpriseProject", "Project", "P-100003")[0]["ProjectUUID"].clone();
    let wbs = env
        .invoke("create", json!({"service": PROJECT_V4, "version": 4, "entity_set": WBS_SET,
            "data": {"ProjectElement": "P-100003.9", "ProjectUUID": project, "ProjectElementDescription": "客户关系管理平台 - 二期",
                     "PlannedStartDate": "2024-07-01", "PlannedEndDate": "2024-09-30"}}))
        .await?;
    assert_eq!(wbs.output["ProjectElement"], "P-100003.9");
    assert_eq!(wbs.output["PlannedEndDate"], "2024-09-30");
    Ok(())
}

#[tokio::test]
async fn writes_recover_from_invalidated_csrf_and_expired_sessions() -> Result<()> {
    let env = env("sap-csrf").await?;
    let key = json!({"ProjectElementUUID": env.wbs_uuid("P-100004.1")});
    let update = |desc: &str| json!({"service": PROJECT_SRV, "entity_set": WBS_SET, "key": key, "data": {"ProjectElementDescription": desc}});
    env.invoke("update", update("数据中心运维 - 巡检")).await?;
    assert_eq!((env.fake.csrf_tokens_issued(), env.fake.csrf_rejections()), (1, 0));

    env.ctx.faults.invalidate_csrf();
    let out = env.invoke("update", update("数据中心运维 - 季度巡检")).await?;
    assert!(out.output["_etag"].as_str().unwrap().starts_with("W/"));
    assert_eq!(
        (env.fake.csrf_tokens_issued(), env.fake.csrf_rejections()),
        (2, 1),
        "refused once, refetched, retried"
    );

    env.ctx.faults.expire_tokens();
    env.invoke("update", update("数据中心运维 - 年度巡检")).await?;
    assert_eq!((env.fake.csrf_tokens_issued(), env.fake.csrf_rejections()), (3, 2));
    let now = env.fake.find(WBS_SET, "ProjectElement", "P-100004.1");
    assert_eq!(now[0]["ProjectElementDescription"], "数据中心运维 - 年度巡检");
    assert_eq!(env.fake.writes().len(), 3, "no write was applied twice");
    Ok(())
}

#[tokio::test]
async fn stale_etags_are_refused_and_auto_reads_again() -> Result<()> {
    let env = env("sap-etag").await?;
    let key = json!({"ProjectElementUUID": env.wbs_uuid("P-100001.2")});
    let read =
        env.invoke("get", json!({"service": PROJECT_SRV, "entity_set": WBS_SET, "key": key})).await?.output;
    let etag = read["_etag"].as_str().unwrap().to_string();
    // Someone changes the element in SAP after we read it.
    env.fake.change(WBS_SET, "ProjectElement", "P-100001.2", &[("ProcessingStatus", "20")]);
    let input = |etag: &str| {
        json!({"service": PROJECT_SRV, "entity_set": WBS_SET, "key": key, "etag": etag, "method": "MERGE",
        "data": {"ProjectElementDescription": "ERP系统升级 - 方案设计（终版）"}})
    };
    let e = env.invoke("update", input(&etag)).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.message().contains("412") && e.message().contains("/IWBEP/CM_MGW_RT/153"), "{e}");
    assert_eq!(env.fake.writes().len(), 0);
    let out = env.invoke("update", input("auto")).await?;
    assert_ne!(out.output["_etag"], json!(etag));
    let now = &env.fake.find(WBS_SET, "ProjectElement", "P-100001.2")[0];
    assert_eq!(
        (now["ProcessingStatus"].as_str(), now["ProjectElementDescription"].as_str()),
        (Some("20"), Some("ERP系统升级 - 方案设计（终版）"))
    );
    Ok(())
}

#[tokio::test]
async fn batch_partial_failures_give_per_item_outcomes() -> Result<()> {
    let env = env("sap-batch").await?;
    env.ctx.faults.partial_next(1, vec![1, 3]);
    let items: Vec<Value> = ["P-100001.1", "P-100001.2", "P-100002.1", "P-100002.2", "P-100003.1"]
        .iter()
        .map(|w| pr(w, json!(4)))
        .collect();
    let out = env
        .invoke(
            "create",
            json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "items": items}),
        )
        .await?;
    assert_eq!(out.output, json!({"succeeded": 3, "failed": 2}));
    let outcomes = out.items.unwrap();
    let failed: Vec<usize> =
        outcomes.iter().enumerate().filter(|(_, o)| o.is_err()).map(|(i, _)| i).collect();
    assert_eq!(failed, vec![1, 3]);
    for i in [1, 3] {
        let e = outcomes[i].as_ref().unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.message().contains("KI/235") && e.message().contains(&format!("item {i}")), "{e}");
    }
    assert!(outcomes[4].as_ref().unwrap()["PurchaseRequisition"].is_string());
    assert_eq!(env.fake.count("A_PurchaseRequisitionHeader"), PR_COUNT + 3);
    assert_eq!(env.fake.batches(), 1);

    // Bulk update: ETags read in one retrieval batch, changes in one changeset batch; the
    // locked item and the stale one fail alone.
    let uuids: Vec<String> =
        ["P-100004.1", "P-100004.2", "P-100001.1"].iter().map(|w| env.wbs_uuid(w)).collect();
    env.ctx.faults.partial_next(1, vec![0]);
    let items = json!([
        {"key": {"ProjectElementUUID": uuids[0]}, "data": {"ProcessingStatus": "20"}},
        {"key": {"ProjectElementUUID": uuids[1]}, "data": {"ProcessingStatus": "20"}},
        {"key": {"ProjectElementUUID": uuids[2]}, "data": {"ProcessingStatus": "20"}, "etag": "W/\"datetimeoffset'2020-01-01T00%3A00%3A00.0000000Z'\""},
        {"key": {"ProjectElementUUID": uuids[1]}, "data": {"ProcessingStatus": "99"}, "etag": "*"},
    ]);
    let out =
        env.invoke("update", json!({"service": PROJECT_SRV, "entity_set": WBS_SET, "items": items})).await?;
    let outcomes = out.items.unwrap();
    let classes: Vec<Option<ErrorClass>> =
        outcomes.iter().map(|o| o.as_ref().err().map(|e| e.class())).collect();
    assert_eq!(
        classes,
        vec![
            Some(ErrorClass::InvalidInput),
            None,
            Some(ErrorClass::InvalidInput),
            Some(ErrorClass::InvalidInput)
        ]
    );
    assert!(outcomes[0].as_ref().unwrap_err().message().contains("MC/601"));
    assert!(outcomes[2].as_ref().unwrap_err().message().contains("412"));
    assert!(outcomes[3].as_ref().unwrap_err().message().contains("CJ/042"));
    let updates: Vec<Value> = env.fake.writes().into_iter().filter(|w| w["op"] == "update").collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(env.fake.batches(), 3);
    Ok(())
}

#[tokio::test]
async fn generic_faults_have_the_right_class_and_the_next_call_recovers() -> Result<()> {
    let env = env_with("sap-faults", json!({"timeout_ms": 400})).await?;
    let read = json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "key": {"PurchaseRequisition": "10000001"}});
    env.invoke("get", read.clone()).await?;

    env.ctx.faults.throttle_next(1);
    let e = env.invoke("get", read.clone()).await.unwrap_err();
    assert_eq!((e.class(), e.retry_after_ms()), (ErrorClass::RateLimited, Some(2000)), "{e}");
    env.invoke("get", read.clone()).await?;

    for status in [500, 502, 503] {
        env.ctx.faults.fail_next(1, status);
        let e = env.invoke("get", read.clone()).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient, "{status}: {e}");
        assert!(e.message().contains("/IWBEP/CX_MGW_TECH_EXCEPTION"), "{e}");
        env.invoke("get", read.clone()).await?;
    }

    env.ctx.faults.reset_next(1);
    let e = env.invoke("get", read.clone()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    env.invoke("get", read.clone()).await?;

    env.ctx.faults.slow_next(1, 1500);
    let e = env.invoke("get", read.clone()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert!(e.message().contains("timeout"), "{e}");
    env.invoke("get", read.clone()).await?;

    // A throttled write after a CSRF fetch: the write itself is throttled, nothing applied.
    let key = json!({"ProjectElementUUID": env.wbs_uuid("P-100003.1")});
    let update = json!({"service": PROJECT_SRV, "entity_set": WBS_SET, "key": key, "data": {"ProcessingStatus": "20"}, "etag": "*"});
    env.invoke("update", update.clone()).await?;
    env.ctx.faults.throttle_next(1);
    assert_eq!(env.invoke("update", update.clone()).await.unwrap_err().class(), ErrorClass::RateLimited);
    env.invoke("update", update).await?;
    assert_eq!(env.fake.writes().len(), 2);

    // Wrong credentials are unauthorized.
    let rt = runtime()?;
    let connector = load(&rt, "sap", loopback_policy()).await?;
    let mut bad = config(&env.running.url);
    bad["password"] = json!("wrong");
    let conn = connector.connect("sap-faults-bad", &bad)?;
    let e = connector_error(conn.invoke("get", &read, "k").await.unwrap_err());
    assert_eq!(e.class(), ErrorClass::Unauthorized);
    Ok(())
}

#[tokio::test]
async fn oauth_tokens_are_fetched_cached_and_renewed_after_expiry() -> Result<()> {
    let ctx = Ctx::new(Clock::new());
    let fake = SapFake::new(ctx.clone());
    let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse()?).await?;
    let rt = runtime()?;
    let connector = load(&rt, "sap", loopback_policy()).await?;
    let cfg = json!({"base_url": running.url, "client": CLIENT,
        "oauth": {"client_id": qiao_fake_sap::OAUTH_CLIENT_ID, "client_secret": qiao_fake_sap::OAUTH_CLIENT_SECRET}});
    let conn = connector.connect("sap-oauth", &cfg)?;
    let read = json!({"service": PR_SRV, "entity_set": "A_PurchaseRequisitionHeader", "key": "'10000002'"});
    conn.invoke("get", &read, "k").await?;
    conn.invoke("get", &read, "k").await?;
    assert_eq!(fake.oauth_tokens_issued(), 1);
    ctx.faults.expire_tokens();
    let out = conn.invoke("get", &read, "k").await?;
    assert_eq!(out.output["PurchaseRequisition"], "10000002");
    assert_eq!(fake.oauth_tokens_issued(), 2, "one transparent refresh");
    Ok(())
}

fn flow_yaml(url: &str) -> String {
    format!(
        r#"
flow: wbs-to-requisitions
description: Order cabling for every changed WBS element of the CRM project
connections:
  s4:
    connector: sap@^0.1
    config:
      base_url: "{url}"
      user: {USER}
      password: "${{secret.sap_password}}"
      client: "100"
trigger:
  poll:
    connection: s4
    operation: entities-changed
    every: 1m
    params:
      service: "{PROJECT_SRV}"
      entity_set: {WBS_SET}
      filter: "startswith(ProjectElement,'P-100003')"
      select: [ProjectElement, ProjectElementDescription]
steps:
  - id: order
    action:
      connection: s4
      operation: create
      input:
        service: "'{PR_SRV}'"
        entity_set: "'A_PurchaseRequisitionHeader'"
        data:
          PurReqnDescription: "'布线 ' ~ record.ProjectElement"
          to_PurchaseReqnItem:
            - Material: "'M-1003'"
              Plant: "'1010'"
              RequestedQuantity: 10
              BaseUnit: "'M'"
              AccountAssignmentCategory: "'P'"
              WBSElement: record.ProjectElement
    retry: {{ attempts: 6, backoff: 10ms, max_backoff: 50ms }}
"#
    )
}

#[tokio::test]
async fn flow_creates_one_requisition_per_changed_wbs_with_faults_armed() -> Result<()> {
    let env = env("sap-flow-setup").await?;
    env.fake.set_page_size(4);
    let rt = runtime()?;
    let connector = load(&rt, "sap", loopback_policy()).await?;
    let catalog = StaticCatalog::new(vec![connector.info().clone()]);
    let secrets = MemorySecrets::new().with_secret("sap_password", PASSWORD);
    let plan = qiao_flow::load("wbs.yaml", &flow_yaml(&env.running.url), &catalog, &secrets)
        .map_err(|d| anyhow::anyhow!("flow does not load:\n{d}"))?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let c = connector.clone();
    let runner = FlowRunner::new(plan, move |_| Some(c.clone()), store.clone(), RunnerOptions::default())?;

    let expected: Vec<String> = env
        .fake
        .find(WBS_SET, "ProjectElement", "P-100003.1")
        .into_iter()
        .chain((1..=20).flat_map(|n| env.fake.find(WBS_SET, "ProjectElement", &format!("P-100003.1.{n:02}"))))
        .map(|w| w["ProjectElement"].as_str().unwrap().to_string())
        .collect();
    assert!(expected.len() > 8, "{expected:?}");

    // Faults on whatever comes next: a poll page, a CSRF fetch or a create (the engine
    // retries polls after 1 s, 2 s, ..., so a few faults keep the test short).
    env.ctx.faults.reset_next(1);
    env.ctx.faults.fail_next(1, 503);
    // A delay rides along with the next fault-free request only after the first two.
    env.ctx.faults.slow_next(3, 200);
    let run = runner.fire(TriggerInput::Poll).await?;
    let c = run.info.counts;
    assert_eq!(
        (c.records_in, c.records_out, c.failed),
        (expected.len() as u64, expected.len() as u64, 0),
        "{c:?}"
    );
    assert_eq!(run.info.status, RunStatus::Succeeded);

    // A second round after a change in SAP: throttled, and the cached CSRF token is dead.
    env.fake.change(
        WBS_SET,
        "ProjectElement",
        "P-100003.1.02",
        &[("ProjectElementDescription", "客户关系管理平台 - 接口开发")],
    );
    env.ctx.faults.throttle_next(1);
    env.ctx.faults.invalidate_csrf();
    let run2 = runner.fire(TriggerInput::Poll).await?;
    assert_eq!((run2.info.counts.records_in, run2.info.counts.records_out), (1, 1), "{:?}", run2.info.counts);
    let run3 = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(run3.info.counts.records_in, 0, "nothing is emitted twice");

    // Exactly one requisition per WBS element of the first round, plus one for the change.
    let created: Vec<String> = env
        .fake
        .writes()
        .into_iter()
        .filter(|w| w["op"] == "create" && w["entity_set"] == "A_PurchaseRequisitionHeader")
        .map(|w| w["fields"]["PurReqnDescription"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created.len(), expected.len() + 1, "{created:?}");
    for wbs in &expected {
        let n = created.iter().filter(|d| *d == &format!("布线 {wbs}")).count();
        let want = if wbs == "P-100003.1.02" { 2 } else { 1 };
        assert_eq!(n, want, "{wbs}: {created:?}");
    }
    let faults: Vec<&str> = env.ctx.journal.entries().iter().filter_map(|e| e.fault).collect();
    for f in ["reset", "fail", "throttle", "slow"] {
        assert!(faults.contains(&f), "{f} was applied: {faults:?}");
    }
    assert!(env.fake.csrf_rejections() >= 1);
    assert!(store.cursor("wbs-to-requisitions")?.is_some());
    assert!(store.list_dead_letters(None)?.is_empty());
    Ok(())
}
