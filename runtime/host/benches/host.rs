//! Host benchmarks (`cargo bench -p qiao-host`), against components built by
//! `cargo xtask build-connectors`:
//!
//! - `call/fresh-instance-invoke-1kib`: new store + instance + `invoke` with ~1 KiB of JSON in
//!   and out (the guest parses and re-serialises it). Budget: p50 ≤ 20 µs.
//! - `load/cached`: load of a connector whose compiled code is in the on-disk cache (read,
//!   sha256, deserialize, pre-link, `describe`). Budget: ≤ 5 ms.
//! - `load/first-compile-http`: Cranelift compile of the HTTP connector with no cache.
//!
//! After the criterion groups, the per-call cycle is also timed call by call and its p50/p99
//! printed, since criterion reports means over batches.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use qiao_host::{ConnectorPolicy, Runtime, RuntimeConfig};
use serde_json::{Value, json};

fn wasm(name: &str) -> PathBuf {
    let dir = std::env::var_os("QIAO_CONNECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/connectors"));
    let path = dir.join(format!("{name}.wasm"));
    if !path.is_file() {
        eprintln!("{} is missing: run `cargo xtask build-connectors` first", path.display());
        std::process::exit(1);
    }
    path
}

/// A Jira-worklog-like record of about 1 KiB.
fn record_1kib() -> Value {
    let v = json!({
        "id": "10042",
        "issueId": "20017",
        "author": {"accountId": "5b10a2844c20165700ede21g", "displayName": "张三", "emailAddress": "zhang.san@example.com"},
        "comment": "完成接口联调，修复金蝶凭证字段映射问题；review of the cost-center mapping with finance",
        "started": "2026-11-24T09:30:00.000+0800",
        "timeSpentSeconds": 12600,
        "issue": {"key": "PM-381", "project": "PM", "status": "进行中", "summary": "ERP integration: labor cost booking"},
        "properties": [{"key": "billable", "value": true}, {"key": "costCenter", "value": "CC-1001"}],
        "padding": "x".repeat(420)
    });
    let len = v.to_string().len();
    assert!((900..1200).contains(&len), "record is {len} bytes");
    v
}

fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let runtime =
        Runtime::new(RuntimeConfig { cache_dir: Some(cache.path().into()), ..Default::default() }).unwrap();
    assert!(runtime.is_pooling(), "benchmarks expect the pooling allocator");
    let misbehave = wasm("misbehave");
    let connector = tokio.block_on(runtime.load_file(&misbehave, ConnectorPolicy::default())).unwrap();
    let conn = connector.connect("bench", &json!({})).unwrap();
    let input = record_1kib();

    let mut g = c.benchmark_group("call");
    g.bench_function("fresh-instance-invoke-1kib", |b| {
        b.iter(|| tokio.block_on(conn.invoke("echo", &input, "key")).unwrap())
    });
    // The same cycle with `{}`: what the instance costs without the JSON work.
    let empty = json!({});
    g.bench_function("fresh-instance-invoke-empty", |b| {
        b.iter(|| tokio.block_on(conn.invoke("echo", &empty, "key")).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.bench_function("cached", |b| {
        b.iter(|| {
            let c = tokio.block_on(runtime.load_file(&misbehave, ConnectorPolicy::default())).unwrap();
            assert!(c.was_cached());
            c
        })
    });
    let http = wasm("http");
    let no_cache = Runtime::new(RuntimeConfig::default()).unwrap();
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("first-compile-http", |b| {
        b.iter(|| tokio.block_on(no_cache.load_file(&http, ConnectorPolicy::default())).unwrap())
    });
    g.finish();

    // Call-by-call percentiles of the fresh-instance cycle.
    let mut samples: Vec<Duration> = Vec::with_capacity(20_000);
    for _ in 0..2_000 {
        tokio.block_on(conn.invoke("echo", &input, "key")).unwrap();
    }
    for _ in 0..20_000 {
        let t = Instant::now();
        tokio.block_on(conn.invoke("echo", &input, "key")).unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "call/fresh-instance-invoke-1kib percentiles over {} calls: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
