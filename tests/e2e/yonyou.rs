//! The Yonyou YonBIP connector, built to Wasm, through the real host against the Yonyou fake:
//! the signed token handshake and its transparent refresh, list paging with a changed-since
//! watermark, voucher saves with per-item batch outcomes and deduplication, every fault mode,
//! and a real flow from payment applications to vouchers.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use qiao_contract::ErrorClass;
use qiao_engine::{FlowRunner, RunnerOptions, TriggerInput};
use qiao_fake_yonyou::{
    APP_KEY, APP_SECRET, AUTH_PREFIX, GATEWAY_PREFIX, PAYMENT_APPLY_COUNT, TOKEN_TTL_SECS, YonyouFake, paths,
};
use qiao_flow::{MemorySecrets, StaticCatalog};
use qiao_host::{CallError, Connection, Connector, ConnectorPolicy, LimitsOverride, RuntimeConfig};
use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use qiao_store::{RunStatus, Store};
use serde_json::{Value, json};

use crate::common::{load, loopback_policy, runtime_with};

/// The connectors' clock is the sandbox clock, so advancing it ages tokens on both sides.
struct SandboxClock(Clock);

impl qiao_host::Clock for SandboxClock {
    fn now_ms(&self) -> u64 {
        self.0.now_ms() as u64
    }
}

struct Env {
    ctx: Ctx,
    fake: Arc<YonyouFake>,
    running: Running,
    connector: Connector,
}

impl Env {
    async fn start() -> Result<Env> {
        Env::with_policy(loopback_policy()).await
    }

    async fn with_policy(policy: ConnectorPolicy) -> Result<Env> {
        let ctx = Ctx::new(Clock::new());
        let fake = YonyouFake::new(ctx.clone());
        let running = start(fake.clone(), ctx.clone(), "127.0.0.1:0".parse()?).await?;
        let rt = runtime_with(RuntimeConfig {
            clock: Arc::new(SandboxClock(ctx.clock.clone())),
            ..RuntimeConfig::default()
        })?;
        let connector = load(&rt, "yonyou", policy).await?;
        Ok(Env { ctx, fake, running, connector })
    }

    fn config(&self) -> Value {
        json!({
            "base_url": format!("{}{GATEWAY_PREFIX}", self.running.url),
            "token_url": format!("{}{AUTH_PREFIX}", self.running.url),
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
        })
    }

    fn connect(&self, scope: &str) -> Result<Connection> {
        Ok(self.connector.connect(scope, &self.config())?)
    }

    fn token_calls(&self) -> usize {
        self.ctx.journal.matching("GET", "getAccessToken").len()
    }

    fn calls(&self, path: &str) -> usize {
        self.ctx.journal.matching("POST", path).len() + self.ctx.journal.matching("GET", path).len()
    }
}

fn class(err: &CallError) -> ErrorClass {
    err.class()
}

async fn projects(conn: &Connection) -> Result<Value, CallError> {
    conn.invoke("call", &json!({"path": paths::PROJECT_LIST, "body": {"pageIndex": 1, "pageSize": 10}}), "k")
        .await
        .map(|o| o.output)
}

/// A balanced voucher booking `amount` on a department and project.
fn voucher(n: usize, dept: &str, amount: Value) -> Value {
    json!({
        "accbookCode": "0001", "voucherTypeCode": "1", "makerMobile": "13800000000", "srcBillCode": format!("SRC-{n}"),
        "bodies": [
            {"description": format!("付款申请 SRC-{n}"), "accsubjectCode": "6602", "debitOriginal": amount, "debitOrg": amount,
             "rateType": "01", "rateOrg": 1,
             "clientAuxiliaryList": [{"filedCode": "dept", "valueCode": dept}, {"filedCode": "project", "valueCode": "CRM"}]},
            {"description": format!("付款申请 SRC-{n}"), "accsubjectCode": "2202", "creditOriginal": 1000 + n,
             "creditOrg": 1000 + n, "rateType": "01", "rateOrg": 1}
        ]
    })
}

#[tokio::test]
async fn token_is_cached_and_refreshed_transparently() -> Result<()> {
    let env = Env::start().await?;
    let conn = env.connect("yonyou-token")?;
    let data = projects(&conn).await?;
    assert_eq!(data["recordCount"], 4);
    assert_eq!(data["recordList"][1]["name"], "智能制造MES实施");
    projects(&conn).await?;
    assert_eq!(env.token_calls(), 1, "the token is cached in kv between calls");

    // Expired by the server: one refused call, exactly one extra token call, one retry.
    env.ctx.faults.expire_tokens();
    let before = env.calls(paths::PROJECT_LIST);
    assert_eq!(projects(&conn).await?["recordCount"], 4);
    assert_eq!(env.token_calls(), 2);
    assert_eq!(env.calls(paths::PROJECT_LIST), before + 2);

    // Near the end of its life the token is replaced before the server refuses it.
    env.ctx.clock.advance_ms(TOKEN_TTL_SECS * 1000 * 9 / 10);
    let before = env.calls(paths::PROJECT_LIST);
    projects(&conn).await?;
    assert_eq!(env.token_calls(), 3);
    assert_eq!(env.calls(paths::PROJECT_LIST), before + 1, "no refused call");
    assert_eq!(env.fake.tokens_issued(), 3);
    Ok(())
}

async fn poll_round(
    conn: &Connection,
    params: &Value,
    mut cursor: Option<String>,
) -> Result<(Vec<Value>, Vec<String>, Option<String>)> {
    let (mut rows, mut ids) = (Vec::new(), Vec::new());
    loop {
        let batch = conn.poll("list", params, cursor.as_deref()).await?;
        for r in batch.records {
            ids.push(r.id.unwrap_or_default());
            rows.push(r.data);
        }
        cursor = batch.next_cursor;
        if !batch.more {
            return Ok((rows, ids, cursor));
        }
    }
}

#[tokio::test]
async fn list_pages_every_row_once_and_then_only_changes() -> Result<()> {
    let env = Env::start().await?;
    let conn = env.connect("yonyou-list")?;
    let params = json!({"path": paths::PAYMENT_APPLY_LIST, "page_size": 50, "modified_field": "pubts"});
    let (rows, ids, cursor) = poll_round(&conn, &params, None).await?;
    assert_eq!(rows.len(), PAYMENT_APPLY_COUNT);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), PAYMENT_APPLY_COUNT, "nothing duplicated");
    let expected: HashSet<String> =
        env.fake.payment_applies().iter().map(|r| r["id"].as_u64().unwrap_or_default().to_string()).collect();
    assert_eq!(unique.into_iter().cloned().collect::<HashSet<_>>(), expected, "nothing lost");
    assert_eq!(env.calls(paths::PAYMENT_APPLY_LIST), 4);
    let newest = rows.iter().filter_map(|r| r["pubts"].as_str()).max().unwrap_or_default().to_string();
    let watermark: Value = serde_json::from_str(cursor.as_deref().unwrap_or("{}"))?;
    assert_eq!(watermark, json!({"since": newest}));

    // One row changes: the next round reads only rows at or after the watermark.
    env.ctx.clock.advance_ms(60_000);
    assert!(env.fake.touch_payment_apply("FKSQ-2024-0007"));
    let (rows, _, cursor) = poll_round(&conn, &params, cursor).await?;
    let codes: Vec<&str> = rows.iter().filter_map(|r| r["code"].as_str()).collect();
    // The changed row, and the newest row again (the filter is >=), in id order.
    assert_eq!(codes, ["FKSQ-2024-0007", "FKSQ-2024-0180"]);
    let watermark: Value = serde_json::from_str(cursor.as_deref().unwrap_or("{}"))?;
    assert_eq!(
        watermark["since"],
        rows.iter().find(|r| r["code"] == "FKSQ-2024-0007").map(|r| r["pubts"].clone()).unwrap_or_default()
    );

    // Filters from the flow are merged into the body.
    let filtered = json!({"path": paths::PAYMENT_APPLY_LIST, "page_size": 500, "conditions": {"dept_code": "D0301",
        "simpleVOs": [{"field": "oriSum", "op": "gt", "value1": 20000}]}});
    let (rows, _, _) = poll_round(&conn, &filtered, None).await?;
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["dept_code"] == "D0301" && r["oriSum"].as_f64().unwrap_or_default() > 20000.0)
    );

    // Arrays in `data` are one page.
    let (depts, ids, _) =
        poll_round(&conn, &json!({"path": paths::DEPT_TREE, "id_field": "code"}), None).await?;
    assert_eq!(depts.len(), qiao_fake_yonyou::DEPARTMENTS.len());
    assert_eq!(ids[1], "D0101");
    Ok(())
}

#[tokio::test]
async fn save_batch_reports_failures_at_their_positions_and_dedupes_retries() -> Result<()> {
    let env = Env::start().await?;
    let conn = env.connect("yonyou-batch")?;
    let docs: Vec<Value> =
        (0..20).map(|n| voucher(n, if n == 17 { "D9999" } else { "D0201" }, json!(1000 + n))).collect();
    env.ctx.faults.partial_next(1, vec![3, 11]);
    let out = conn.invoke("save", &json!({"data": docs}), "budget:batch-1:book").await?;
    let items = out.items.clone().unwrap_or_default();
    assert_eq!(items.len(), 20);
    let failed: Vec<usize> = items.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
    assert_eq!(failed, [3, 11, 17]);
    for i in &failed {
        let e = items[*i].as_ref().err().map(|e| (e.class(), e.message().to_string()));
        assert!(
            matches!(&e, Some((ErrorClass::InvalidInput, m)) if m.starts_with(&format!("第{}条", i + 1))),
            "{e:?}"
        );
    }
    assert!(items[17].as_ref().is_err_and(|e| e.message().contains("D9999")));
    for (i, item) in items.iter().enumerate().filter(|(i, _)| !failed.contains(i)) {
        let saved = item.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(saved["srcBillCode"], format!("SRC-{i}"), "outcome {i} belongs to input {i}");
    }
    assert_eq!((out.output["successCount"].as_u64(), out.output["failCount"].as_u64()), (Some(17), Some(3)));
    assert_eq!(env.fake.vouchers().len(), 17);

    // The engine retries the same list with the same key: the 17 are not booked twice, the
    // two injected failures go through, the bad department fails again.
    let again = conn.invoke("save", &json!({"data": docs}), "budget:batch-1:book").await?;
    let failed: Vec<usize> = again
        .items
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [17]);
    let vouchers = env.fake.vouchers();
    assert_eq!(vouchers.len(), 19);
    assert_eq!(env.fake.replayed_saves(), 17);
    let sources: HashSet<&str> = vouchers.iter().filter_map(|v| v["srcBillCode"].as_str()).collect();
    assert_eq!(sources.len(), 19, "no duplicate write");
    Ok(())
}

#[tokio::test]
async fn save_one_call_and_validation_errors() -> Result<()> {
    let env = Env::start().await?;
    let conn = env.connect("yonyou-save")?;
    let out =
        conn.invoke("save", &json!({"data": voucher(1, "D0101", json!(1001))}), "budget:FK-1:book").await?;
    assert_eq!(out.output["billCode"], "记-0001");
    assert!(out.output["voucherId"].as_str().is_some_and(|id| id.len() == 19));
    let again =
        conn.invoke("save", &json!({"data": voucher(1, "D0101", json!(1001))}), "budget:FK-1:book").await?;
    assert_eq!(again.output["voucherId"], out.output["voucherId"]);
    assert_eq!((env.fake.vouchers().len(), env.fake.replayed_saves()), (1, 1));

    let err = conn
        .invoke("save", &json!({"data": voucher(2, "D0101", Value::Null)}), "budget:FK-2:book")
        .await
        .unwrap_err();
    assert_eq!(class(&err), ErrorClass::InvalidInput);
    assert!(err.to_string().contains("第1行分录金额不能为空"), "{err}");
    let err = conn
        .invoke("save", &json!({"data": voucher(3, "D9999", json!(1003))}), "budget:FK-3:book")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("部门编码[D9999]不存在"), "{err}");
    assert_eq!(env.fake.vouchers().len(), 1);

    let detail = conn
        .invoke(
            "call",
            &json!({"method": "GET", "path": paths::PROJECT_DETAIL, "query": {"id": "2172161512916528002"}}),
            "k",
        )
        .await?;
    assert_eq!(detail.output["code"], "MES");
    let books = conn
        .invoke("call", &json!({"path": paths::ACCBOOK, "body": {"fields": ["code", "name"]}}), "k")
        .await?;
    assert_eq!(books.output[0]["code"], "0001");
    let listed = conn
        .invoke("call", &json!({"path": paths::VOUCHER_QUERY, "body": {"accbookCode": "0001", "pager": {"pageIndex": 1, "pageSize": 20}}}), "k")
        .await?;
    assert_eq!(listed.output["recordList"][0]["header"]["billCode"], "记-0001");
    Ok(())
}

#[tokio::test]
async fn every_fault_mode_has_its_class_and_the_next_call_recovers() -> Result<()> {
    let policy = ConnectorPolicy {
        limits: LimitsOverride { call_timeout_ms: Some(1_500), ..Default::default() },
        ..loopback_policy()
    };
    let env = Env::with_policy(policy).await?;
    let conn = env.connect("yonyou-faults")?;
    projects(&conn).await?;

    env.ctx.faults.throttle_next(1);
    let err = projects(&conn).await.unwrap_err();
    assert_eq!(class(&err), ErrorClass::RateLimited);
    assert_eq!(err.connector_error().and_then(|e| e.retry_after_ms()), Some(1000));
    projects(&conn).await?;

    for status in [500, 502, 503] {
        env.ctx.faults.fail_next(1, status);
        let err = projects(&conn).await.unwrap_err();
        assert_eq!(class(&err), ErrorClass::Transient, "{status}: {err}");
        projects(&conn).await?;
    }

    env.ctx.faults.reset_next(1);
    assert_eq!(class(&projects(&conn).await.unwrap_err()), ErrorClass::Transient);
    projects(&conn).await?;

    env.ctx.faults.slow_next(1, 3_000);
    assert_eq!(class(&projects(&conn).await.unwrap_err()), ErrorClass::Transient);
    projects(&conn).await?;

    // The token request itself throttled or failing (a new connection has no cached token).
    let throttled = env.connect("yonyou-faults-token-throttled")?;
    env.ctx.faults.throttle_next(1);
    let err = projects(&throttled).await.unwrap_err();
    assert_eq!(
        (class(&err), err.connector_error().and_then(|e| e.retry_after_ms())),
        (ErrorClass::RateLimited, Some(1000))
    );
    projects(&throttled).await?;
    let failing = env.connect("yonyou-faults-token-failing")?;
    env.ctx.faults.fail_next(1, 503);
    assert_eq!(class(&projects(&failing).await.unwrap_err()), ErrorClass::Transient);
    projects(&failing).await?;
    let tokens = env.token_calls();
    assert_eq!(
        env.ctx.journal.matching("GET", "getAccessToken").iter().filter(|e| e.fault.is_some()).count(),
        2
    );
    assert!(tokens >= 5, "{tokens}");

    // A bad signature on the token call: refused as a config problem, nothing retried.
    let fresh = env.connect("yonyou-faults-signature")?;
    env.ctx.faults.bad_signature_next(1);
    let err = projects(&fresh).await.unwrap_err();
    assert_eq!(class(&err), ErrorClass::Config);
    assert!(err.to_string().contains("310002"), "{err}");
    projects(&fresh).await?;

    let wrong = env.connector.connect("yonyou-wrong-secret", &json!({
        "base_url": format!("{}{GATEWAY_PREFIX}", env.running.url), "token_url": format!("{}{AUTH_PREFIX}", env.running.url),
        "app_key": APP_KEY, "app_secret": "not-the-secret"}))?;
    let err = projects(&wrong).await.unwrap_err();
    assert_eq!(class(&err), ErrorClass::Config);
    assert!(!err.to_string().contains("not-the-secret"), "the secret never reaches errors: {err}");

    env.fake.revoke_api(paths::STAFF_LIST);
    let err = conn.invoke("call", &json!({"path": paths::STAFF_LIST, "body": {}}), "k").await.unwrap_err();
    assert_eq!(class(&err), ErrorClass::Config);
    assert!(err.to_string().contains("310037"), "{err}");

    let err = conn.poll("list", &json!({"path": paths::PAYMENT_APPLY_LIST, "conditions": {"simpleVOs": [{"field": "x", "op": "regex"}]}}), None).await.unwrap_err();
    assert_eq!(class(&err), ErrorClass::InvalidInput);
    Ok(())
}

fn flow_yaml(env: &Env) -> String {
    format!(
        r#"
flow: payments-to-vouchers
description: Book audited payment applications as vouchers
connections:
  yonyou:
    connector: yonyou@^0.1
    config:
      base_url: "{base}{GATEWAY_PREFIX}"
      token_url: "{base}{AUTH_PREFIX}"
      app_key: "{APP_KEY}"
      app_secret: "${{secret.yonyou_secret}}"
trigger:
  poll:
    connection: yonyou
    operation: list
    every: 1m
    params: {{ path: "{list}", page_size: 50, modified_field: pubts }}
concurrency: 4
steps:
  - id: audited
    filter: record.status == 1
  - id: to-voucher
    map:
      accbookCode: "'0001'"
      voucherTypeCode: "'1'"
      makerMobile: "'13800000000'"
      srcBillCode: record.code
      bodies:
        - description: "record.description ~ ' ' ~ record.code"
          accsubjectCode: "'6602'"
          debitOriginal: record.oriSum
          debitOrg: record.oriSum
          rateType: "'01'"
          rateOrg: 1
          clientAuxiliaryList:
            - {{ filedCode: "'dept'", valueCode: record.dept_code }}
            - {{ filedCode: "'project'", valueCode: record.project_code }}
        - description: "record.description ~ ' ' ~ record.code"
          accsubjectCode: "'2202'"
          creditOriginal: record.oriSum
          creditOrg: record.oriSum
          rateType: "'01'"
          rateOrg: 1
  - id: book
    action: {{ connection: yonyou, operation: save, input: {{ data: record }} }}
    retry: {{ attempts: 6, backoff: 10ms, max_backoff: 50ms }}
"#,
        base = env.running.url,
        list = paths::PAYMENT_APPLY_LIST,
    )
}

#[tokio::test]
async fn flow_books_every_audited_payment_once_through_expiry_and_throttling() -> Result<()> {
    let env = Env::start().await?;
    let secrets = MemorySecrets::new().with_secret("yonyou_secret", APP_SECRET);
    let catalog = StaticCatalog::new(vec![env.connector.info().clone()]);
    let plan = qiao_flow::load("payments.yaml", &flow_yaml(&env), &catalog, &secrets)
        .map_err(|d| anyhow::anyhow!("flow does not load:\n{d}"))?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let c = env.connector.clone();
    let runner = FlowRunner::new(plan, move |_| Some(c.clone()), store.clone(), RunnerOptions::default())?;

    // The first calls fail with a 503 and are throttled twice.
    env.ctx.faults.throttle_next(2);
    env.ctx.faults.fail_next(1, 503);
    let run = runner.fire(TriggerInput::Poll).await?;
    let c = run.info.counts;
    let audited: HashSet<String> = env
        .fake
        .payment_applies()
        .iter()
        .filter(|r| r["status"] == 1)
        .filter_map(|r| r["code"].as_str().map(str::to_string))
        .collect();
    assert_eq!(audited.len(), 135);
    assert_eq!((c.records_in, c.filtered, c.failed, c.records_out), (180, 45, 0, 135), "{c:?}");
    assert_eq!(run.info.status, RunStatus::Succeeded, "{:?}", run.info);

    let booked = |env: &Env| -> Vec<String> {
        env.fake.vouchers().iter().filter_map(|v| v["srcBillCode"].as_str().map(str::to_string)).collect()
    };
    let first = booked(&env);
    assert_eq!(first.iter().collect::<HashSet<_>>(), audited.iter().collect::<HashSet<_>>(), "nothing lost");
    assert_eq!(first.len(), 135, "no duplicate write");
    let faulted: Vec<_> = env.ctx.journal.entries().into_iter().filter(|e| e.fault.is_some()).collect();
    assert_eq!(faulted.len(), 3, "every armed fault hit a call: {faulted:?}");

    // The server expires the token and a row changes: the next round refreshes once, reads
    // the rows at or after the watermark and books the changed one under its own key again.
    env.ctx.faults.expire_tokens();
    env.ctx.clock.advance_ms(60_000);
    assert!(env.fake.touch_payment_apply("FKSQ-2024-0010"));
    let tokens_before = env.token_calls();
    let replayed_before = env.fake.replayed_saves();
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(env.token_calls(), tokens_before + 1, "exactly one extra token call");
    let c = run.info.counts;
    assert_eq!((c.records_in, c.records_out, c.failed), (2, 1, 1), "{c:?}");
    // FKSQ-2024-0180 carries the old watermark (>=): its save is answered from its
    // resubmitCheckKey. FKSQ-2024-0010 changed (a new amount) under the same record key, so
    // the same resubmitCheckKey with new content: Yonyou refuses it as already existing and
    // the record is dead-lettered for review instead of booking a second voucher.
    assert_eq!(env.fake.replayed_saves(), replayed_before + 1);
    let second = booked(&env);
    assert_eq!(second.len(), 135, "no duplicate write: {:?}", &second[135.min(second.len())..]);
    let dls = store.list_dead_letters(Some("payments-to-vouchers"))?;
    assert_eq!(dls.len(), 1);
    let (_, dl) = &dls[0];
    assert_eq!((dl.step.as_str(), dl.class.as_str()), ("book", "invalid-input"));
    assert!(dl.error.contains("310504"), "{}", dl.error);
    Ok(())
}
