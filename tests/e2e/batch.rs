//! The `batch` step end to end: records grouped by size, time and group, one bulk call per
//! group through the HTTP connector as Wasm, per-item outcomes mapped back to their source
//! records, and per-connection rate limits measured at the sink.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use qiao_engine::{FlowRunner, RunnerOptions, TriggerInput};
use qiao_flow::MemorySecrets;
use qiao_host::Connector;
use qiao_store::{RecordStatus, RunStatus, Store};
use serde_json::{Value, json};

use crate::common::serve;
use crate::engine::http_connector;

/// One bulk call as the sink saw it: arrival, idempotency key, item ids.
type Call = (Instant, String, Vec<String>);

/// The source (paged records) and the bulk sink, with its rules for failing items.
#[derive(Clone, Default)]
struct Sink {
    records: usize,
    /// Delay of each page of the source.
    slow_page_ms: u64,
    /// Every bulk call: (arrival, idempotency key, item ids).
    calls: Arc<Mutex<Vec<Call>>>,
    /// Item ids rejected for good (422).
    reject: Arc<HashSet<String>>,
    /// Item ids answered 503 the first time they are seen.
    flaky: Arc<HashSet<String>>,
    seen_flaky: Arc<Mutex<HashSet<String>>>,
    /// Items booked, by id, with how often each was booked.
    booked: Arc<Mutex<HashMap<String, usize>>>,
}

impl Sink {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn booked(&self) -> HashMap<String, usize> {
        self.booked.lock().unwrap().clone()
    }
}

fn cost_center(i: usize) -> &'static str {
    ["CB0101", "CB0102", "CB0201"][i % 3]
}

async fn records(State(sink): State<Sink>, Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(10);
    if sink.slow_page_ms > 0 && page > 1 {
        tokio::time::sleep(std::time::Duration::from_millis(sink.slow_page_ms)).await;
    }
    let items: Vec<Value> = (1..=sink.records)
        .skip((page - 1) * size)
        .take(size)
        .map(|i| json!({"id": format!("R-{i}"), "cost_center": cost_center(i), "hours": i % 8 + 1}))
        .collect();
    axum::Json(json!({"items": items}))
}

async fn bulk(
    State(sink): State<Sink>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = items.iter().map(|i| i["id"].as_str().unwrap_or_default().to_string()).collect();
    sink.calls.lock().unwrap().push((Instant::now(), key, ids.clone()));
    let results: Vec<Value> = ids
        .iter()
        .map(|id| {
            if sink.reject.contains(id) {
                return json!({"id": id, "error": format!("{id}: cost center closed"), "status": 422});
            }
            if sink.flaky.contains(id) && sink.seen_flaky.lock().unwrap().insert(id.clone()) {
                return json!({"id": id, "error": "busy", "status": 503});
            }
            *sink.booked.lock().unwrap().entry(id.clone()).or_default() += 1;
            json!({"id": id, "voucher": format!("V-{id}")})
        })
        .collect();
    axum::Json(json!({"results": results}))
}

async fn sink_server(sink: Sink) -> Result<SocketAddr> {
    let router =
        axum::Router::new().route("/records", get(records)).route("/bulk", post(bulk)).with_state(sink);
    serve(router).await
}

/// The flow: pages of 10 → map → batch `batch` → one bulk POST per group. `erp_extra` is
/// added to the `erp` connection (a rate limit).
fn flow(addr: SocketAddr, batch: &str, erp_extra: &str) -> String {
    format!(
        r#"
flow: bulk-costs
connections:
  src:
    connector: http
    config: {{ base_url: "http://{addr}" }}
  erp:
    connector: http
    config: {{ base_url: "http://{addr}" }}
{erp_extra}
trigger:
  poll:
    connection: src
    operation: poll-json
    every: 1m
    params:
      url: /records
      records_path: items
      id_field: id
      pagination: {{ type: page, param: page, size_param: per_page, size: 10 }}
concurrency: 4
steps:
  - id: to-cost
    map:
      id: record.id
      cost_center: record.cost_center
      amount: record.hours * 150
  - id: group
    batch: {batch}
  - id: book
    action:
      connection: erp
      operation: request
      input:
        method: "'POST'"
        url: "'/bulk'"
        json: {{ cost_center: record.group, items: record.items }}
        item_results: {{ path: "'results'", status_field: "'status'" }}
    retry: {{ attempts: 3, backoff: 10ms, max_backoff: 20ms }}
"#
    )
}

fn flow_runner(yaml: &str, connector: &Connector, store: &Store) -> Result<FlowRunner> {
    crate::common::flow_runner("bulk.yaml", yaml, connector, store, &MemorySecrets::new())
}

fn ids(range: impl Iterator<Item = usize>) -> HashSet<String> {
    range.map(|i| format!("R-{i}")).collect()
}

#[tokio::test]
async fn partial_failure_finishes_retries_and_dead_letters_each_item_on_its_own() -> Result<()> {
    // 100 records, one batch of 100: R-7, R-42 and R-99 are rejected, R-10 and R-20 flake once.
    let sink = Sink {
        records: 100,
        reject: Arc::new(ids([7, 42, 99].into_iter())),
        flaky: Arc::new(ids([10, 20].into_iter())),
        ..Sink::default()
    };
    let addr = sink_server(sink.clone()).await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let http = http_connector().await?;
    let runner = flow_runner(&flow(addr, "{ size: 100 }", ""), &http, &store)?;

    let run = runner.fire(TriggerInput::Poll).await?;
    let c = run.info.counts;
    assert_eq!((c.records_in, c.records_out, c.failed), (100, 97, 3), "{c:?}");
    assert_eq!(run.info.status, RunStatus::CompletedWithFailures);

    // One bulk call for the 100, then one retry carrying only the two flaky items.
    let calls = sink.calls();
    assert_eq!(calls.len(), 2, "{:?}", calls.iter().map(|c| c.2.len()).collect::<Vec<_>>());
    assert_eq!(calls[0].2.len(), 100);
    let mut retried = calls[1].2.clone();
    retried.sort();
    assert_eq!(retried, vec!["R-10".to_string(), "R-20".to_string()]);
    assert_ne!(calls[0].1, calls[1].1, "a different group gets a different idempotency key");

    // 97 booked exactly once; the rejected three are dead letters under their own record ids.
    let booked = sink.booked();
    assert_eq!(booked.len(), 97);
    assert!(booked.values().all(|n| *n == 1), "nothing booked twice");
    let dls = store.list_dead_letters(Some("bulk-costs"))?;
    let mut dead: Vec<(String, String, String)> =
        dls.iter().map(|(_, d)| (d.state.key.clone(), d.class.clone(), d.error.clone())).collect();
    dead.sort();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0].0, "R-42");
    assert_eq!(dead[0].1, "invalid-input");
    assert!(dead[0].2.contains("R-42: cost center closed"), "{}", dead[0].2);
    assert_eq!(dead.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), vec!["R-42", "R-7", "R-99"]);
    // A dead letter holds the record as it reached the batch step, ready for replay.
    let (_, r7) = dls.iter().find(|(_, d)| d.state.key == "R-7").unwrap();
    assert_eq!(r7.state.data["amount"], json!(150 * 8));

    assert!(store.pending_batches("bulk-costs")?.is_empty(), "every page completed");
    assert!(store.cursor("bulk-costs")?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_bulk_run_keeps_every_failure_and_a_bounded_number_of_other_outcomes() -> Result<()> {
    // 100 records in one bulk group, three rejected for good; the history keeps at most 10
    // outcomes that are not failures (the group's members end in one write).
    let sink = Sink { records: 100, reject: Arc::new(ids([7, 42, 99].into_iter())), ..Sink::default() };
    let addr = sink_server(sink.clone()).await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let http = http_connector().await?;
    let options = RunnerOptions { max_outcomes_per_run: 10, ..RunnerOptions::default() };
    let yaml = flow(addr, "{ size: 100 }", "");
    let runner =
        crate::common::flow_runner_with("bulk.yaml", &yaml, &http, &store, &MemorySecrets::new(), options)?;

    let run = runner.fire(TriggerInput::Poll).await?;
    let c = run.info.counts;
    assert_eq!((c.records_in, c.records_out, c.failed), (100, 97, 3), "{c:?}");
    assert_eq!(c.outcomes_omitted, 87, "97 done, 10 kept");
    let (_, outcomes) = store.get_run(run.run_id)?;
    assert_eq!(outcomes.len(), 13, "{outcomes:?}");
    let failed = outcomes.iter().filter(|o| o.status == RecordStatus::DeadLettered).count();
    assert_eq!(failed, 3, "every failure is kept");
    assert_eq!(sink.booked().len(), 97, "the bound limits the history, not the work");
    Ok(())
}

#[tokio::test]
async fn groups_by_size_and_by_group_value() -> Result<()> {
    let sink = Sink { records: 45, ..Sink::default() };
    let addr = sink_server(sink.clone()).await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let http = http_connector().await?;

    // By size across pages of 10: 45 records → 20 + 20 + 5 (the rest flushed at the end).
    let runner = flow_runner(&flow(addr, "{ size: 20 }", ""), &http, &store)?;
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(run.info.counts.records_out, 45);
    let sizes: Vec<usize> = sink.calls().iter().map(|c| c.2.len()).collect();
    assert_eq!(sizes, vec![20, 20, 5]);
    sink.calls.lock().unwrap().clear();

    // By cost center: every call holds one cost center only.
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let runner = flow_runner(&flow(addr, "{ size: 100, group_by: record.cost_center }", ""), &http, &store)?;
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(run.info.counts.records_out, 45);
    let calls = sink.calls();
    assert_eq!(calls.len(), 3, "one call per cost center");
    for (_, _, ids) in &calls {
        let centers: HashSet<&str> =
            ids.iter().map(|id| cost_center(id[2..].parse::<usize>().unwrap_or(0))).collect();
        assert_eq!(centers.len(), 1, "{ids:?}");
        assert_eq!(ids.len(), 15);
    }
    Ok(())
}

#[tokio::test]
async fn a_group_waits_at_most_max_wait() -> Result<()> {
    // Pages arrive 400 ms apart; groups of up to 1000 wait at most 100 ms, so each page's
    // records leave on their own instead of waiting for the end of the input.
    let sink = Sink { records: 30, slow_page_ms: 400, ..Sink::default() };
    let addr = sink_server(sink.clone()).await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let http = http_connector().await?;
    let runner = flow_runner(&flow(addr, "{ size: 1000, max_wait: 100ms }", ""), &http, &store)?;
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(run.info.counts.records_out, 30);
    let sizes: Vec<usize> = sink.calls().iter().map(|c| c.2.len()).collect();
    assert_eq!(sizes, vec![10, 10, 10], "flushed by time, page by page");

    // A manual run's single record is flushed as soon as the input ends.
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let runner = flow_runner(&manual_flow(addr), &http, &store)?;
    let run = runner
        .fire(TriggerInput::Manual { input: json!({"id": "M-1", "cost_center": "CB0101", "hours": 2}) })
        .await?;
    assert_eq!(run.info.counts.records_out, 1);
    assert_eq!(sink.calls().len(), 4);
    Ok(())
}

fn manual_flow(addr: SocketAddr) -> String {
    format!(
        r#"
flow: bulk-manual
connections:
  erp:
    connector: http
    config: {{ base_url: "http://{addr}" }}
trigger: {{ manual: {{}} }}
steps:
  - id: group
    batch: {{ size: 1000, max_wait: 200ms }}
  - id: book
    action:
      connection: erp
      operation: request
      input:
        method: "'POST'"
        url: "'/bulk'"
        json: {{ items: record.items }}
        item_results: {{ path: "'results'" }}
"#
    )
}

#[tokio::test]
async fn rate_limit_spaces_the_calls_at_the_sink() -> Result<()> {
    // 30 records, groups of 2 → 15 bulk calls, 8 at a time, limited to 20/s with no burst.
    let sink = Sink { records: 30, ..Sink::default() };
    let addr = sink_server(sink.clone()).await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let http = http_connector().await?;
    let yaml = flow(addr, "{ size: 2 }", "    rate_limit: { per_second: 20, burst: 1 }")
        .replace("concurrency: 4", "concurrency: 8");
    let runner = flow_runner(&yaml, &http, &store)?;
    let run = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(run.info.counts.records_out, 30);
    let mut at: Vec<Instant> = sink.calls().iter().map(|c| c.0).collect();
    at.sort();
    assert_eq!(at.len(), 15);
    // 15 calls at 20/s with no burst span at least 14 intervals of 50 ms (minus jitter). A
    // 500 ms window holds at most 11 when the calls leave on time; allow 3 more for a busy
    // machine that wakes several waiters late (without the limit all 15 land at once).
    let span = at[14] - at[0];
    assert!(span.as_millis() >= 600, "15 calls in {span:?}");
    for (i, t) in at.iter().enumerate() {
        let in_window =
            at[i..].iter().take_while(|u| **u - *t < std::time::Duration::from_millis(500)).count();
        assert!(in_window <= 14, "{in_window} calls within 500 ms");
    }
    Ok(())
}
