//! The Kingdee K/3 Cloud connector, built to Wasm, through the real host against the Kingdee
//! fake: every operation, session loss with one transparent re-login, per-item batch
//! outcomes, paging without loss or duplicates, every fault mode, and a flow that books each
//! worklog exactly once while sessions expire and the gateway fails.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result};
use qiao_contract::ErrorClass;
use qiao_engine::{FlowRunner, RunnerOptions, TriggerInput};
use qiao_fake_kingdee::{self as fake, KingdeeFake};
use qiao_flow::{MemorySecrets, StaticCatalog};
use qiao_host::{Connection, Connector};
use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use qiao_store::Store;
use serde_json::{Value, json};

use crate::common::{load, loopback_policy, runtime};

struct Env {
    fake: Arc<KingdeeFake>,
    ctx: Ctx,
    running: Running,
    connector: Connector,
}

async fn env() -> Result<Env> {
    let ctx = Ctx::new(Clock::new());
    let fake = KingdeeFake::new(ctx.clone());
    let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse()?).await?;
    let rt = runtime()?;
    let connector = load(&rt, "kingdee", loopback_policy()).await?;
    Ok(Env { fake, ctx, running, connector })
}

impl Env {
    fn config(&self) -> Value {
        json!({"base_url": format!("{}/k3cloud", self.running.url), "acct_id": fake::ACCT_ID,
               "user_name": fake::USER_NAME, "app_id": fake::APP_ID, "app_secret": fake::APP_SECRET,
               "timeout_ms": 1500})
    }

    fn connect(&self, scope: &str) -> Result<Connection> {
        Ok(self.connector.connect(scope, &self.config())?)
    }

    fn login_calls(&self) -> usize {
        self.ctx.journal.matching("POST", "LoginBySign.common.kdsvc").len()
    }
}

fn labor(cc: &str, note: &str) -> Value {
    json!({"FDate": "2025-05-06", "FCostCenterId": {"FNumber": cc}, "FEmployeeId": {"FNumber": "E0002"},
           "FHours": 8, "FAmount": 1280.0, "FNote": note})
}

fn class_of(e: &qiao_host::CallError) -> ErrorClass {
    e.class()
}

#[tokio::test]
async fn every_operation_against_the_fake() -> Result<()> {
    let e = env().await?;
    let conn = e.connect("ops")?;
    let form = fake::LABOR_COST;

    let saved =
        conn.invoke("save", &json!({"form_id": form, "model": labor("CB0101", "联调")}), "k-save").await?;
    let number = saved.output["Number"].as_str().context("number")?.to_string();
    let id = saved.output["Id"].clone();
    assert_eq!(saved.output["deduplicated"], false);
    let bill =
        e.fake.bills(form).into_iter().find(|b| b["FBillNo"] == number.as_str()).context("saved bill")?;
    assert_eq!(bill["FNote"], "联调 (qiao:k-save)");
    assert_eq!(bill["FCostCenterId"]["FNumber"], "CB0101");

    let viewed = conn.invoke("view", &json!({"form_id": form, "number": number}), "k").await?;
    assert_eq!(viewed.output["FDocumentStatus"], "A");
    let submitted = conn.invoke("submit", &json!({"form_id": form, "ids": [id]}), "k").await?;
    assert_eq!(submitted.output["items"][0]["Number"], number.as_str());
    conn.invoke("audit", &json!({"form_id": form, "numbers": [number]}), "k").await?;
    let viewed = conn.invoke("view", &json!({"form_id": form, "id": id}), "k").await?;
    assert_eq!(viewed.output["FDocumentStatus"], "C");

    // Auditing again and deleting an audited bill are business errors.
    let again = conn.invoke("audit", &json!({"form_id": form, "numbers": [number]}), "k").await.unwrap_err();
    assert_eq!(class_of(&again), ErrorClass::InvalidInput);
    assert!(again.to_string().contains("不能重复审核"), "{again}");
    let del = conn.invoke("delete", &json!({"form_id": form, "numbers": [number]}), "k").await.unwrap_err();
    assert_eq!(class_of(&del), ErrorClass::InvalidInput);

    // Validation errors name the fields.
    let mut bad = labor("CB9999", "");
    bad.as_object_mut().context("model")?.remove("FHours");
    let err = conn.invoke("save", &json!({"form_id": form, "model": bad}), "k-bad").await.unwrap_err();
    assert_eq!(class_of(&err), ErrorClass::InvalidInput);
    let text = err.to_string();
    assert!(
        text.contains("FHours: 字段“工时”是必填项")
            && text.contains("FCostCenterId: ")
            && text.contains("CB9999"),
        "{text}"
    );

    // Save, submit and audit in one go; then a fresh bill is deleted.
    let ssa = conn
        .invoke("save-submit-audit", &json!({"form_id": form, "model": labor("CB0201", "")}), "k-ssa")
        .await?;
    assert_eq!(ssa.output["FDocumentStatus"], "C");
    let audited =
        e.fake.bills(form).into_iter().find(|b| b["FBillNo"] == ssa.output["Number"]).context("ssa bill")?;
    assert_eq!(audited["FDocumentStatus"], "C");
    let fresh =
        conn.invoke("save", &json!({"form_id": form, "model": labor("CB0301", "")}), "k-fresh").await?;
    conn.invoke("delete", &json!({"form_id": form, "numbers": [fresh.output["Number"]]}), "k").await?;
    let gone = conn
        .invoke("view", &json!({"form_id": form, "number": fresh.output["Number"]}), "k")
        .await
        .unwrap_err();
    assert_eq!(class_of(&gone), ErrorClass::InvalidInput);

    // A requisition with entries, and a query reading its entry rows.
    let req = json!({"FApplicationDate": "2025-05-06", "FApplicantId": {"FNumber": "E0004"},
                     "FEntity": [{"FMaterialId": {"FNumber": "M-1002"}, "FReqQty": 2}, {"FMaterialId": {"FNumber": "M-1003"}, "FReqQty": 300}]});
    let saved_req =
        conn.invoke("save", &json!({"form_id": fake::REQUISITION, "model": req}), "k-req").await?;
    let batch = conn
        .poll("bill-query", &json!({"form_id": fake::REQUISITION, "field_keys": ["FBillNo", "FMaterialId.FNumber", "FEntity_FEntryID"],
                                    "filter": format!("FBillNo='{}'", saved_req.output["Number"].as_str().unwrap_or_default())}), None)
        .await?;
    let materials: Vec<&Value> = batch.records.iter().map(|r| &r.data["FMaterialId.FNumber"]).collect();
    assert_eq!(materials, [&json!("M-1002"), &json!("M-1003")]);
    assert!(batch.records[0].id.as_deref().is_some_and(|id| id.contains('-')), "FID-entry ids");

    // Unknown forms are refused for good.
    let unknown =
        conn.invoke("view", &json!({"form_id": "NOPE_Form", "number": "X"}), "k").await.unwrap_err();
    assert_eq!(class_of(&unknown), ErrorClass::Permanent);
    assert_eq!(e.fake.created().len(), 4);
    assert_eq!(e.fake.logins(), 1, "one session served every call");
    Ok(())
}

#[tokio::test]
async fn lost_session_costs_exactly_one_extra_login() -> Result<()> {
    let e = env().await?;
    let conn = e.connect("sess")?;
    let view = json!({"form_id": fake::LABOR_COST, "number": "RGCB000003"});
    conn.invoke("view", &view, "k").await?;
    conn.invoke("view", &view, "k").await?;
    assert_eq!(e.login_calls(), 1, "the session is cached in kv");
    e.ctx.faults.expire_tokens();
    let out = conn.invoke("view", &view, "k").await?;
    assert_eq!(out.output["FBillNo"], "RGCB000003");
    assert_eq!(e.login_calls(), 2);
    // Time running out works the same way.
    e.ctx.clock.advance_ms(fake::SESSION_TTL_SECS * 1000 + 1000);
    conn.poll(
        "bill-query",
        &json!({"form_id": fake::LABOR_COST, "field_keys": ["FBillNo"], "page_size": 5}),
        None,
    )
    .await?;
    assert_eq!(e.login_calls(), 3);
    let lost: Vec<_> =
        e.ctx.journal.entries().into_iter().filter(|j| j.path.contains("DynamicFormService")).collect();
    assert_eq!(lost.len(), 6, "two refused calls, their two retries and two straight ones");
    Ok(())
}

#[tokio::test]
async fn batch_save_reports_each_item_at_its_index() -> Result<()> {
    let e = env().await?;
    let conn = e.connect("batch")?;
    e.ctx.faults.partial_next(1, vec![3]);
    let models = json!([
        labor("CB0101", "a"),
        labor("CB9999", "b"),
        labor("CB0102", "c"),
        labor("CB0201", "d"),
        labor("CB0301", "e")
    ]);
    let out =
        conn.invoke("batch-save", &json!({"form_id": fake::LABOR_COST, "models": models}), "k-batch").await?;
    let items = out.items.context("per-item outcomes")?;
    assert_eq!(items.len(), 5);
    let oks: Vec<usize> = items.iter().enumerate().filter(|(_, i)| i.is_ok()).map(|(n, _)| n).collect();
    assert_eq!(oks, [0, 2, 4]);
    let err1 = items[1].as_ref().unwrap_err();
    assert_eq!(err1.class(), ErrorClass::InvalidInput);
    assert!(err1.message().contains("CB9999"), "{err1}");
    assert!(items[3].as_ref().unwrap_err().message().contains("注入"), "the injected failure");
    assert_eq!(out.output["saved"], 3);
    let created = e.fake.created();
    assert_eq!(created.len(), 3);
    let numbers: Vec<&Value> = [0, 2, 4].iter().map(|&i| &items[i].as_ref().unwrap()["Number"]).collect();
    let made: Vec<&Value> = created.iter().map(|c| &c["Number"]).collect();
    assert_eq!(numbers, made);
    let notes: Vec<String> = e
        .fake
        .bills(fake::LABOR_COST)
        .iter()
        .rev()
        .take(3)
        .map(|b| b["FNote"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(notes, ["e (qiao:k-batch#4)", "c (qiao:k-batch#2)", "a (qiao:k-batch#0)"]);

    // The same key again (a replay): the saved items are found, not saved twice; item 3 is
    // saved now, item 1 still fails validation.
    let again =
        conn.invoke("batch-save", &json!({"form_id": fake::LABOR_COST, "models": models}), "k-batch").await?;
    let items = again.items.context("items")?;
    let oks: Vec<usize> = items.iter().enumerate().filter(|(_, i)| i.is_ok()).map(|(n, _)| n).collect();
    assert_eq!(oks, [0, 2, 3, 4]);
    assert_eq!(items[0].as_ref().unwrap()["Number"], *numbers[0]);
    assert_eq!(e.fake.created().len(), 4);
    Ok(())
}

#[tokio::test]
async fn bill_query_pages_lose_and_repeat_nothing() -> Result<()> {
    let e = env().await?;
    let conn = e.connect("query")?;
    // Offset paging over FID.
    let params = json!({"form_id": fake::LABOR_COST, "field_keys": ["FID", "FBillNo", "FCostCenterId.FNumber"], "page_size": 40});
    let mut cursor: Option<String> = None;
    let mut ids = Vec::new();
    loop {
        let batch = conn.poll("bill-query", &params, cursor.as_deref()).await?;
        ids.extend(batch.records.iter().map(|r| r.id.clone().unwrap_or_default()));
        cursor = batch.next_cursor.clone();
        if !batch.more {
            break;
        }
    }
    assert_eq!(ids.len(), fake::SEEDED_LABOR_COST);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), fake::SEEDED_LABOR_COST);
    assert_eq!(
        e.ctx.journal.matching("POST", "ExecuteBillQuery.common.kdsvc").len(),
        5,
        "4 full pages and a short one"
    );

    // Changed-since paging: pages of 25 across ties in FModifyDate.
    let params = json!({"form_id": fake::LABOR_COST, "field_keys": ["FBillNo", "FDocumentStatus"],
                        "modified_field": "FModifyDate", "page_size": 25});
    let mut cursor: Option<String> = None;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let batch = conn.poll("bill-query", &params, cursor.as_deref()).await?;
        seen.extend(batch.records.iter().map(|r| r.id.clone().unwrap_or_default()));
        cursor = batch.next_cursor.clone();
        if !batch.more {
            break;
        }
    }
    assert_eq!(seen.len(), fake::SEEDED_LABOR_COST);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), fake::SEEDED_LABOR_COST);

    // Nothing changed: nothing comes. A new bill and a submitted old one come once each.
    let idle = conn.poll("bill-query", &params, cursor.as_deref()).await?;
    assert!(idle.records.is_empty(), "{:?}", idle.records);
    let cursor = idle.next_cursor.or(cursor);
    let saved = conn
        .invoke("save", &json!({"form_id": fake::LABOR_COST, "model": labor("CB0102", "")}), "k-new")
        .await?;
    conn.invoke("submit", &json!({"form_id": fake::LABOR_COST, "numbers": ["RGCB000001"]}), "k").await?;
    let fresh = conn.poll("bill-query", &params, cursor.as_deref()).await?;
    let got: BTreeSet<String> =
        fresh.records.iter().map(|r| r.data["FBillNo"].as_str().unwrap_or_default().to_string()).collect();
    let want: BTreeSet<String> =
        ["RGCB000001".to_string(), saved.output["Number"].as_str().unwrap_or_default().to_string()].into();
    assert_eq!(got, want);
    let after = conn.poll("bill-query", &params, fresh.next_cursor.as_deref()).await?;
    assert!(after.records.is_empty(), "{:?}", after.records);
    Ok(())
}

#[tokio::test]
async fn every_fault_mode_has_its_class_and_the_next_call_recovers() -> Result<()> {
    let e = env().await?;
    let conn = e.connect("faults")?;
    let view = json!({"form_id": fake::LABOR_COST, "number": "RGCB000010"});
    conn.invoke("view", &view, "k").await?;

    e.ctx.faults.throttle_next(1);
    let err = conn.invoke("view", &view, "k").await.unwrap_err();
    assert_eq!(class_of(&err), ErrorClass::RateLimited, "{err}");
    conn.invoke("view", &view, "k").await?;

    for status in [500, 502, 503, 504] {
        e.ctx.faults.fail_next(1, status);
        let err = conn.invoke("view", &view, "k").await.unwrap_err();
        assert_eq!(class_of(&err), ErrorClass::Transient, "{status}: {err}");
        assert!(err.to_string().contains(&status.to_string()), "{err}");
    }
    conn.invoke("view", &view, "k").await?;

    e.ctx.faults.reset_next(1);
    let err = conn.invoke("view", &view, "k").await.unwrap_err();
    assert_eq!(class_of(&err), ErrorClass::Transient, "{err}");
    conn.invoke("view", &view, "k").await?;

    e.ctx.faults.slow_next(1, 3_000);
    let err = conn.invoke("view", &view, "k").await.unwrap_err();
    assert_eq!(class_of(&err), ErrorClass::Transient, "{err}");
    conn.invoke("view", &view, "k").await?;

    // A refused login signature is unauthorized; the next login goes through.
    e.ctx.faults.expire_tokens();
    e.ctx.faults.bad_signature_next(1);
    let err = conn.invoke("view", &view, "k").await.unwrap_err();
    assert_eq!(class_of(&err), ErrorClass::Unauthorized, "{err}");
    assert!(err.to_string().contains("签名验证失败"), "{err}");
    conn.invoke("view", &view, "k").await?;

    // Throttled and failing logins are classified like any call.
    e.ctx.faults.expire_tokens();
    e.ctx.faults.throttle_next(1);
    assert_eq!(class_of(&conn.invoke("view", &view, "k").await.unwrap_err()), ErrorClass::RateLimited);
    e.ctx.faults.fail_next(1, 503);
    assert_eq!(class_of(&conn.invoke("view", &view, "k").await.unwrap_err()), ErrorClass::Transient);
    conn.invoke("view", &view, "k").await?;
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_are_config_errors() -> Result<()> {
    let e = env().await?;
    let mut config = e.config();
    config["auth"] = json!("app-secret");
    config["app_secret"] = json!("not-the-secret");
    let conn = e.connector.connect("wrong", &config)?;
    let err = conn
        .invoke("view", &json!({"form_id": fake::LABOR_COST, "number": "RGCB000001"}), "k")
        .await
        .unwrap_err();
    assert_eq!(class_of(&err), ErrorClass::Config, "{err}");
    assert!(!err.to_string().contains("not-the-secret"), "no secret in errors: {err}");
    config["app_secret"] = json!(fake::APP_SECRET);
    let conn = e.connector.connect("right", &config)?;
    conn.invoke("view", &json!({"form_id": fake::LABOR_COST, "number": "RGCB000001"}), "k").await?;
    let mut pw = e.config();
    pw["auth"] = json!("password");
    pw["password"] = json!(fake::PASSWORD);
    let conn = e.connector.connect("pw", &pw)?;
    conn.invoke("view", &json!({"form_id": fake::LABOR_COST, "number": "RGCB000001"}), "k").await?;
    Ok(())
}

#[tokio::test]
async fn a_save_whose_reply_was_lost_is_found_not_repeated() -> Result<()> {
    let e = env().await?;
    let conn = e.connect("lost")?;
    let input = json!({"form_id": fake::LABOR_COST, "model": labor("CB0101", "丢失应答")});
    e.fake.lose_save_replies(1);
    let err = conn.invoke("save", &input, "flow:WL-9:book").await.unwrap_err();
    assert_eq!(class_of(&err), ErrorClass::Transient, "{err}");
    assert_eq!(e.fake.created().len(), 1, "the server committed it");
    let again = conn.invoke("save", &input, "flow:WL-9:book").await?;
    assert_eq!(again.output["deduplicated"], true);
    assert_eq!(again.output["Number"], e.fake.created()[0]["Number"]);
    assert_eq!(e.fake.created().len(), 1, "no second bill");
    // A later, unrelated save with the same content is a new bill (no mark left behind).
    conn.invoke("save", &input, "flow:WL-10:book").await?;
    assert_eq!(e.fake.created().len(), 2);
    Ok(())
}

const WORKLOGS: usize = 12;

#[tokio::test]
async fn flow_books_each_worklog_once_while_sessions_expire_and_the_gateway_fails() -> Result<()> {
    let e = env().await?;
    let projects = ["ERP", "MES", "CRM", "OPS"];
    let worklogs: Vec<Value> = (1..=WORKLOGS)
        .map(|i| {
            json!({"id": format!("WL-{i}"), "project": projects[i % 4], "employee": format!("E000{}", 1 + i % 6),
                   "seconds": 1800 * i, "date": format!("2025-05-{:02}", 1 + i % 28)})
        })
        .collect();
    let yaml = format!(
        r#"
flow: worklogs-to-k3
connections:
  k3:
    connector: kingdee
    config: {config}
trigger:
  manual: {{}}
tables:
  cost_center: {{ ERP: CB0101, MES: CB0102, CRM: CB0201, OPS: CB0301 }}
concurrency: 4
steps:
  - id: lines
    foreach: record.worklogs
  - id: to-cost
    map:
      FDate: record.date
      FCostCenterId: {{ FNumber: "lookup('cost_center', record.project)" }}
      FEmployeeId: {{ FNumber: record.employee }}
      FHours: record.seconds / 3600
      FAmount: record.seconds / 3600 * 150
      FNote: "'工时 ' ~ record.id"
  - id: book
    action:
      connection: k3
      operation: save
      input: {{ form_id: "'PRJ_LaborCost'", model: record }}
    retry: {{ attempts: 6, backoff: 10ms, max_backoff: 50ms }}
"#,
        config = {
            let mut c = e.config();
            c["app_secret"] = json!("${secret.k3_secret}");
            c
        }
    );
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let catalog = StaticCatalog::new(vec![e.connector.info().clone()]);
    let plan = qiao_flow::load(
        "k3.yaml",
        &yaml,
        &catalog,
        &MemorySecrets::new().with_secret("k3_secret", fake::APP_SECRET),
    )
    .map_err(|d| {
        anyhow::anyhow!(
            "flow does not load:
{d}"
        )
    })?;
    let c = e.connector.clone();
    let runner = FlowRunner::new(plan, move |_| Some(c.clone()), store.clone(), RunnerOptions::default())?;

    // A first run logs in; then every session dies, the gateway fails twice and one save is
    // committed but its reply lost.
    runner.fire(TriggerInput::Manual { input: json!({"worklogs": worklogs[..2]}) }).await?;
    let logins_before = e.login_calls();
    // Two records start at once with no session cached: each may log in.
    assert!((1..=2).contains(&logins_before), "{logins_before}");
    e.ctx.faults.expire_tokens();
    e.ctx.faults.fail_next(2, 503);
    e.fake.lose_save_replies(1);
    let run = runner.fire(TriggerInput::Manual { input: json!({"worklogs": worklogs[2..]}) }).await?;
    let c = run.info.counts;
    assert_eq!(
        (c.records_in, c.failed, c.records_out),
        (WORKLOGS as u64 - 1, 0, WORKLOGS as u64 - 2),
        "{c:?}"
    );
    assert!(e.login_calls() > logins_before, "the lost session was replaced");

    let mut per_worklog: HashMap<String, usize> = HashMap::new();
    for bill in e.fake.bills(fake::LABOR_COST) {
        let note = bill["FNote"].as_str().unwrap_or_default();
        if let Some(rest) = note.strip_prefix("工时 ") {
            let id = rest.split_whitespace().next().unwrap_or_default().to_string();
            *per_worklog.entry(id).or_default() += 1;
        }
    }
    assert_eq!(per_worklog.len(), WORKLOGS, "{per_worklog:?}");
    assert!(per_worklog.values().all(|n| *n == 1), "each worklog booked exactly once: {per_worklog:?}");
    assert_eq!(e.fake.created().len(), WORKLOGS);
    let wl5 = e
        .fake
        .bills(fake::LABOR_COST)
        .into_iter()
        .find(|b| b["FNote"].as_str().is_some_and(|n| n.starts_with("工时 WL-5 ")))
        .context("WL-5")?;
    assert_eq!(wl5["FCostCenterId"]["FNumber"], "CB0102");
    assert_eq!(wl5["FHours"], 2.5);
    assert_eq!(
        e.ctx.journal.entries().iter().filter(|j| j.status == 504).count(),
        1,
        "the lost reply happened"
    );
    Ok(())
}
