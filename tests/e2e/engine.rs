//! Flows end to end: YAML → plan → engine, with the HTTP connector as Wasm against a loopback
//! source and sink. Durable delivery, retries by class, dead letters and replay.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use qiao_engine::{FlowRunner, RunnerOptions, TriggerInput};
use qiao_flow::{MemorySecrets, StaticCatalog};
use qiao_host::Connector;
use qiao_store::{RecordStatus, RunStatus, Store};
use serde_json::{Value, json};

use crate::common::{load, loopback_policy, runtime, serve};

/// The source of worklogs and the ERP sink, with fault switches.
#[derive(Clone, Default)]
pub struct Erp {
    /// Every booking request: (idempotency key, body).
    pub requests: Arc<Mutex<Vec<(String, Value)>>>,
    /// Bookings by idempotency key (the sink deduplicates).
    pub booked: Arc<Mutex<HashMap<String, Value>>>,
    /// When set, WL-7 is rejected with 422.
    pub reject_seven: Arc<AtomicBool>,
    /// Keys that already failed once with 503.
    pub flaked: Arc<Mutex<Vec<String>>>,
    /// Alerts posted by `on_failure`.
    pub alerts: Arc<Mutex<Vec<Value>>>,
}

async fn alert(State(erp): State<Erp>, axum::Json(body): axum::Json<Value>) -> StatusCode {
    erp.alerts.lock().unwrap().push(body);
    StatusCode::OK
}

pub const RECORDS: usize = 50;

/// 50 worklogs: WL-5 has an unknown project, every tenth has 0 seconds.
async fn worklogs(Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(10);
    let items: Vec<Value> = (1..=RECORDS)
        .skip((page - 1) * size)
        .take(size)
        .map(|i| {
            json!({
                "id": format!("WL-{i}"),
                "project": if i == 5 { "UNKNOWN" } else if i % 2 == 0 { "PM" } else { "OPS" },
                "seconds": if i % 10 == 0 { 0 } else { 1800 * i },
                "author": "张三",
            })
        })
        .collect();
    axum::Json(json!({"items": items}))
}

async fn book(State(erp): State<Erp>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    erp.requests.lock().unwrap().push((key.clone(), body.clone()));
    let source = body["source_id"].as_str().unwrap_or_default().to_string();
    if source == "WL-7" && erp.reject_seven.load(Ordering::Relaxed) {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"error": "cost center closed"})))
            .into_response();
    }
    if source == "WL-3" {
        let mut flaked = erp.flaked.lock().unwrap();
        if !flaked.contains(&key) {
            flaked.push(key);
            return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
        }
    }
    let mut booked = erp.booked.lock().unwrap();
    let n = booked.len();
    booked.entry(key).or_insert(body);
    (StatusCode::CREATED, axum::Json(json!({"voucher": format!("V-{n}")}))).into_response()
}

pub async fn erp_server() -> Result<(SocketAddr, Erp)> {
    let erp = Erp { reject_seven: Arc::new(AtomicBool::new(true)), ..Default::default() };
    let router = axum::Router::new()
        .route("/worklogs", get(worklogs))
        .route("/book", post(book))
        .route("/alert", post(alert))
        .with_state(erp.clone());
    Ok((serve(router).await?, erp))
}

pub fn flow_yaml(addr: SocketAddr) -> String {
    format!(
        r#"
flow: worklogs-to-erp
description: Book worklogs as labor cost
connections:
  src:
    connector: http@^0.1
    config: {{ base_url: "http://{addr}" }}
  erp:
    connector: http
    config: {{ base_url: "http://{addr}" }}
trigger:
  poll:
    connection: src
    operation: poll-json
    every: 1s
    params:
      url: /worklogs
      records_path: items
      id_field: id
      pagination: {{ type: page, param: page, size_param: per_page, size: 10 }}
tables:
  cost_center: {{ PM: CC-1001, OPS: CC-2002 }}
concurrency: 8
steps:
  - id: to-cost
    map:
      source_id: record.id
      cost_center: lookup('cost_center', record.project)
      hours: record.seconds / 3600
      labor_cost: record.seconds / 3600 * 120
      author: record.author
  - id: billable
    filter: record.hours > 0
  - id: book
    action:
      connection: erp
      operation: request
      input: {{ method: "'POST'", url: "'/book'", json: record }}
    retry: {{ attempts: 3, backoff: 10ms, max_backoff: 50ms }}
"#
    )
}

pub async fn http_connector() -> Result<Connector> {
    let rt = runtime()?;
    load(&rt, "http", loopback_policy()).await
}

fn runner(yaml: &str, connector: &Connector, store: &Store) -> Result<FlowRunner> {
    crate::common::flow_runner("worklogs.yaml", yaml, connector, store, &MemorySecrets::new())
}

#[tokio::test]
async fn poll_map_filter_action_with_retries_dead_letters_and_replay() -> Result<()> {
    let (addr, erp) = erp_server().await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let http = http_connector().await?;
    let runner = runner(&flow_yaml(addr), &http, &store)?;

    let run = runner.fire(TriggerInput::Poll).await?;
    let c = run.info.counts;
    assert_eq!((c.records_in, c.filtered, c.failed, c.records_out), (50, 5, 2, 43), "{c:?}");
    assert_eq!(run.info.status, RunStatus::CompletedWithFailures);

    // Every billable record booked once; WL-3 needed a retry with the same idempotency key.
    let booked = erp.booked.lock().unwrap().clone();
    assert_eq!(booked.len(), 43);
    let wl3: Vec<String> = erp
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, b)| b["source_id"] == "WL-3")
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(wl3.len(), 2);
    assert_eq!(wl3[0], wl3[1]);
    assert_eq!(wl3[0], "worklogs-to-erp:WL-3:book");
    let wl2 = booked.get("worklogs-to-erp:WL-2:book").context("WL-2 booked")?;
    assert_eq!(wl2["cost_center"], "CC-1001");
    assert_eq!(wl2["labor_cost"], 120.0);

    // The cursor of the last page is committed and nothing is in flight.
    assert!(store.cursor("worklogs-to-erp")?.is_some());
    assert!(store.pending_batches("worklogs-to-erp")?.is_empty());

    // Two dead letters, each naming the step and the reason.
    let dls = store.list_dead_letters(Some("worklogs-to-erp"))?;
    assert_eq!(dls.len(), 2);
    let by_key: HashMap<String, _> =
        dls.iter().map(|(id, d)| (d.state.key.clone(), (*id, d.clone()))).collect();
    let (_, wl5) = &by_key["WL-5"];
    assert_eq!(wl5.step, "to-cost");
    assert_eq!(wl5.class, "invalid-input");
    assert!(wl5.error.contains("UNKNOWN") && wl5.error.contains("steps[0].map.cost_center"), "{}", wl5.error);
    let (wl7_id, wl7) = &by_key["WL-7"];
    assert_eq!(wl7.step, "book");
    assert_eq!(wl7.class, "invalid-input");
    assert_eq!(wl7.attempts, 1, "invalid input is not retried");
    assert!(wl7.error.contains("422"), "{}", wl7.error);

    // Per-record outcomes are in the run history.
    let (_, outcomes) = store.get_run(run.run_id)?;
    assert_eq!(outcomes.len(), 50);
    assert_eq!(outcomes.iter().filter(|o| o.status == RecordStatus::Filtered).count(), 5);

    // Fix the ERP, replay WL-7: it resumes at `book` and is booked.
    erp.reject_seven.store(false, Ordering::Relaxed);
    store.replay_dead_letter(*wl7_id, 0).await?;
    let resumed = runner.resume().await?.context("the replayed record is pending")?;
    assert_eq!(resumed.info.counts.records_out, 1);
    assert!(erp.booked.lock().unwrap().contains_key("worklogs-to-erp:WL-7:book"));
    assert_eq!(store.list_dead_letters(None)?.len(), 1);

    // Polling again re-reads the same pages (no since-cursor here): the sink deduplicates on
    // the idempotency key, so nothing is booked twice.
    runner.fire(TriggerInput::Poll).await?;
    assert_eq!(erp.booked.lock().unwrap().len(), 44);
    Ok(())
}

#[tokio::test]
async fn foreach_splits_records_and_manual_trigger_runs_once() -> Result<()> {
    let rt = runtime()?;
    let guest = load(&rt, "misbehave", Default::default()).await?;
    let yaml = r#"
flow: split-lines
connections:
  t: { connector: misbehave, config: {} }
trigger:
  manual: {}
steps:
  - id: lines
    foreach: record.lines
  - id: echo
    action: { connection: t, operation: echo, input: { sku: record.sku, qty: record.qty * 2 } }
  - id: big-only
    filter: steps.echo.output.qty > 2
"#;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let catalog = StaticCatalog::new(vec![guest.info().clone()]);
    let plan = qiao_flow::load("split.yaml", yaml, &catalog, &MemorySecrets::new())
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let g = guest.clone();
    let runner = FlowRunner::new(plan, move |_| Some(g.clone()), store.clone(), RunnerOptions::default())?;
    let input = json!({"lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 3}]});
    let run = runner.fire(TriggerInput::Manual { input }).await?;
    let c = run.info.counts;
    // 1 parent + 3 children in; A filtered (2 is not > 2), B and C done.
    assert_eq!((c.records_in, c.records_out, c.filtered, c.failed), (4, 2, 1, 0), "{c:?}");
    let (_, outcomes) = store.get_run(run.run_id)?;
    let done: Vec<&str> =
        outcomes.iter().filter(|o| o.status == RecordStatus::Done).map(|o| o.key.as_str()).collect();
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|k| k.contains('/')), "children are keyed parent/index: {done:?}");
    Ok(())
}

#[tokio::test]
async fn on_failure_action_gets_the_error() -> Result<()> {
    let (addr, erp) = erp_server().await?;
    let yaml = format!(
        r#"
flow: alerting
connections:
  erp: {{ connector: http, config: {{ base_url: "http://{addr}" }} }}
trigger: {{ manual: {{}} }}
tables:
  cost_center: {{ PM: CC-1001 }}
steps:
  - id: to-cost
    map: {{ source_id: record.id, cost_center: "lookup('cost_center', record.project)" }}
on_failure:
  connection: erp
  operation: request
  input:
    method: "'POST'"
    url: "'/alert'"
    json: {{ text: "'booking failed at ' ~ error.step ~ ': ' ~ error.message", record: error.record_key, class: error.class }}
"#
    );
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let runner = runner(&yaml, &http_connector().await?, &store)?;
    let run = runner.fire(TriggerInput::Manual { input: json!({"id": "X-1", "project": "NOPE"}) }).await?;
    assert_eq!(run.info.counts.failed, 1);
    let alerts = erp.alerts.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0]["record"].as_str().unwrap_or_default().starts_with("sha256:"),
        "no id: keyed by content"
    );
    assert_eq!(alerts[0]["class"], "invalid-input");
    let text = alerts[0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("booking failed at to-cost: ") && text.contains("NOPE"), "{text}");
    assert_eq!(store.list_dead_letters(None)?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn on_error_fail_stops_the_run_and_keeps_the_record_for_the_next_one() -> Result<()> {
    let (addr, erp) = erp_server().await?;
    let yaml = flow_yaml(addr).replace(
        "retry: { attempts: 3, backoff: 10ms, max_backoff: 50ms }",
        "retry: { attempts: 3, backoff: 10ms, max_backoff: 50ms }\n    on_error: fail",
    );
    assert!(yaml.contains("on_error: fail"));
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let runner = runner(&yaml, &http_connector().await?, &store)?;
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(run.info.status, RunStatus::Failed);
    let error = run.info.error.clone().unwrap_or_default();
    assert!(error.contains("WL-7") && error.contains("422"), "{error}");
    // Nothing dead-lettered for WL-7, the first page stays in flight, no cursor committed.
    assert!(store.list_dead_letters(None)?.iter().all(|(_, d)| d.state.key != "WL-7"));
    assert!(!store.pending_batches("worklogs-to-erp")?.is_empty());
    assert_eq!(store.cursor("worklogs-to-erp")?, None);
    assert!(!erp.booked.lock().unwrap().contains_key("worklogs-to-erp:WL-7:book"));

    // Once the ERP accepts it, the next start finishes the batch and commits the cursor.
    erp.reject_seven.store(false, Ordering::Relaxed);
    let resumed = runner.resume().await?.context("pending work")?;
    assert_ne!(resumed.info.status, RunStatus::Failed, "{:?}", resumed.info);
    assert!(erp.booked.lock().unwrap().contains_key("worklogs-to-erp:WL-7:book"));
    assert!(store.pending_batches("worklogs-to-erp")?.is_empty());
    assert!(store.cursor("worklogs-to-erp")?.is_some());
    Ok(())
}

#[tokio::test]
async fn schedule_flow_fires_once_with_the_tick_as_record() -> Result<()> {
    let rt = runtime()?;
    let guest = load(&rt, "misbehave", Default::default()).await?;
    let yaml = r#"
flow: nightly
connections:
  t: { connector: misbehave, config: {} }
trigger:
  schedule: { cron: "30 2 * * *", timezone: Asia/Shanghai }
steps:
  - id: stamp
    action: { connection: t, operation: echo, input: { at: record.scheduled_at } }
"#;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let catalog = StaticCatalog::new(vec![guest.info().clone()]);
    let plan = qiao_flow::load("nightly.yaml", yaml, &catalog, &MemorySecrets::new())
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let g = guest.clone();
    let runner = FlowRunner::new(plan, move |_| Some(g.clone()), store.clone(), RunnerOptions::default())?;
    let runs = runner.run(true).await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].info.trigger, "schedule");
    assert_eq!(runs[0].info.counts.records_out, 1);
    let (_, outcomes) = store.get_run(runs[0].run_id)?;
    assert!(outcomes[0].key.contains('T'), "keyed by the tick time: {}", outcomes[0].key);
    Ok(())
}

/// A run keeps at most `max_outcomes_per_run` outcomes of done and filtered records (a
/// webhook consumer's run lasts as long as the server), every failure, and the full counts.
#[tokio::test]
async fn run_history_keeps_failures_and_a_bounded_number_of_other_outcomes() -> Result<()> {
    let (addr, _erp) = erp_server().await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let http = http_connector().await?;
    let options = RunnerOptions { max_outcomes_per_run: 10, ..RunnerOptions::default() };
    let runner = crate::common::flow_runner_with(
        "worklogs.yaml",
        &flow_yaml(addr),
        &http,
        &store,
        &MemorySecrets::new(),
        options,
    )?;

    let run = runner.fire(TriggerInput::Poll).await?;
    let c = run.info.counts;
    assert_eq!((c.records_in, c.filtered, c.failed, c.records_out), (50, 5, 2, 43), "{c:?}");
    assert_eq!(c.outcomes_omitted, 38, "48 done or filtered, 10 kept");
    let (info, outcomes) = store.get_run(run.run_id)?;
    assert_eq!(info.counts, c);
    assert_eq!(outcomes.len(), 12, "{outcomes:?}");
    let failed: Vec<&str> =
        outcomes.iter().filter(|o| o.status == RecordStatus::DeadLettered).map(|o| o.key.as_str()).collect();
    assert_eq!(failed.len(), 2, "every failure is kept: {failed:?}");
    Ok(())
}
