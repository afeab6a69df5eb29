//! End-to-end engine throughput (`cargo bench -p qiao-engine --bench pipeline`): a poll flow
//! reads N worklog-like records (~300 bytes each) in pages from a loopback source through the
//! HTTP connector (Wasm), maps them, and POSTs each to a loopback sink through the HTTP
//! connector again, with durable checkpoints in a redb store on disk. A third variant groups
//! the mapped records with a `batch` step (100 per group) and POSTs each group to a bulk sink
//! in one call with per-item outcomes. Source, sink, engine and store share the machine's two
//! cores. Prints records/s and peak memory.
//!
//! Needs `target/connectors/http.wasm` (`cargo xtask build-connectors`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use qiao_engine::{FlowRunner, RunnerOptions, TriggerInput};
use qiao_flow::{MemorySecrets, StaticCatalog};
use qiao_host::{ConnectorPolicy, Runtime, RuntimeConfig};
use qiao_store::Store;
use serde_json::{Value, json};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(String::from))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn source(State(n): State<usize>, Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(100);
    let items: Vec<Value> = ((page - 1) * size..(page * size).min(n))
        .map(|i| {
            json!({"id": format!("WL-{i}"), "issue": {"key": format!("PM-{}", i % 500), "project": if i % 2 == 0 { "PM" } else { "OPS" }},
                   "author": "张三", "timeSpentSeconds": 1800 + i % 7200, "started": "2026-11-24T09:30:00.000+0800",
                   "comment": "完成接口联调，修复金蝶凭证字段映射问题"})
        })
        .collect();
    axum::Json(json!({"items": items}))
}

async fn sink(State(count): State<Arc<AtomicUsize>>, _body: String) -> &'static str {
    count.fetch_add(1, Ordering::Relaxed);
    "{}"
}

async fn bulk_sink(State(count): State<Arc<AtomicUsize>>, body: String) -> axum::Json<Value> {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let n = body["items"].as_array().map_or(0, Vec::len);
    count.fetch_add(n, Ordering::Relaxed);
    axum::Json(json!({"results": vec![json!({"ok": true}); n]}))
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Map,
    Action,
    Batch,
}

fn flow(base: &str, mode: Mode, concurrency: u32, page: usize) -> String {
    let action = match mode {
        Mode::Map => "",
        Mode::Action => {
            r#"
  - id: book
    action: { connection: erp, operation: request, input: { method: "'POST'", url: "'/sink'", json: record } }"#
        }
        Mode::Batch => {
            r#"
  - id: group
    batch: { size: 100 }
  - id: book
    action:
      connection: erp
      operation: request
      input: { method: "'POST'", url: "'/bulk'", json: { items: record.items }, item_results: { path: "'results'" } }"#
        }
    };
    format!(
        r#"
flow: bench
connections:
  src: {{ connector: http, config: {{ base_url: "{base}" }} }}
  erp: {{ connector: http, config: {{ base_url: "{base}" }} }}
trigger:
  poll:
    connection: src
    operation: poll-json
    every: 1h
    params: {{ url: /source, records_path: items, id_field: id, pagination: {{ type: page, param: page, size_param: per_page, size: {page} }} }}
tables:
  cost_center: {{ PM: CC-1001, OPS: CC-2002 }}
concurrency: {concurrency}
steps:
  - id: to-cost
    map:
      source_id: record.id
      cost_center: lookup('cost_center', record.issue.project)
      hours: record.timeSpentSeconds / 3600
      labor_cost: record.timeSpentSeconds / 3600 * 120
      employee: record.author{action}
"#
    )
}

fn main() {
    let n: usize = std::env::var("QIAO_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let wasm = std::env::var_os("QIAO_CONNECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/connectors"))
        .join("http.wasm");
    if !wasm.is_file() {
        eprintln!("{} is missing: run `cargo xtask build-connectors` first", wasm.display());
        std::process::exit(1);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let count = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new()
            .route("/source", get(source).with_state(n))
            .route("/sink", post(sink).with_state(count.clone()))
            .route("/bulk", post(bulk_sink).with_state(count.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let http = runtime
            .load_file(&wasm, ConnectorPolicy { allow_private: true, ..Default::default() })
            .await
            .unwrap();
        let baseline = rss_kib("VmRSS:");
        let variants = [
            ("poll → map (durable)", Mode::Map, 64, 200),
            ("poll → map → action (durable)", Mode::Action, 64, 200),
            ("poll → map → batch(100) → bulk action (durable)", Mode::Batch, 8, 100),
        ];
        // `QIAO_BENCH_ONLY=map|action|batch` runs one variant (for profiling).
        let only = std::env::var("QIAO_BENCH_ONLY").ok();
        for (label, mode, concurrency, page) in variants {
            let name = match mode {
                Mode::Map => "map",
                Mode::Action => "action",
                Mode::Batch => "batch",
            };
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let catalog = StaticCatalog::new(vec![http.info().clone()]);
            let plan = qiao_flow::load("bench.yaml", &flow(&base, mode, concurrency, page), &catalog, &MemorySecrets::new())
                .unwrap_or_else(|d| panic!("{d}"));
            let c = http.clone();
            let runner = FlowRunner::new(plan, move |_| Some(c.clone()), store, RunnerOptions::default()).unwrap();
            count.store(0, Ordering::Relaxed);
            let started = Instant::now();
            let run = runner.fire(TriggerInput::Poll).await.unwrap();
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(run.info.counts.records_out as usize, n, "{:?}", run.info);
            if mode != Mode::Map {
                assert_eq!(count.load(Ordering::Relaxed), n, "every record reached the sink once");
            }
            println!(
                "{label}: {n} records in {secs:.2} s = {:.0} records/s (concurrency {concurrency}, pages of {page})",
                n as f64 / secs
            );
        }
        let peak = rss_kib("VmHWM:");
        // In flight at most: concurrency records being processed plus `pages_ahead` (2) pages
        // of 200 waiting, plus the page being polled.
        let in_flight = 64 + 3 * 200;
        println!(
            "memory: baseline RSS {baseline} KiB, peak RSS {peak} KiB, ≈{:.1} KiB per in-flight record (upper bound, {in_flight} in flight)",
            peak.saturating_sub(baseline) as f64 / in_flight as f64
        );
    });
}
