//! The crash test: `qiao run` is killed with SIGKILL at random points while it books worklogs
//! into a loopback ERP, then restarted until a run completes. The ERP must end with every
//! worklog exactly once when the action passes the idempotency key (the ERP deduplicates on
//! it), and at least once when it does not. Nothing may be lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};

const RECORDS: usize = 120;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn http_wasm() -> PathBuf {
    let dir = std::env::var_os("QIAO_CONNECTORS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| repo().join(d))
            .unwrap_or_else(|| repo().join("target"))
            .join("connectors")
    });
    let path = dir.join("http.wasm");
    assert!(path.is_file(), "{} is missing: run `cargo xtask build-connectors` first", path.display());
    path
}

#[derive(Clone, Default)]
struct Erp {
    /// Every booking request: (idempotency key, source id).
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

/// Worklogs WL-1..WL-120, one minute apart; `updated_since` filters `>=`, paged by 20.
async fn worklogs(Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let all: Vec<Value> = (1..=RECORDS)
        .map(|i| {
            json!({"id": format!("WL-{i}"), "seconds": 3600,
                   "updated_at": format!("2026-11-25T{:02}:{:02}:00Z", i / 60, i % 60)})
        })
        .filter(|r| r["updated_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    axum::Json(json!({"items": all.into_iter().skip((page - 1) * 20).take(20).collect::<Vec<_>>()}))
}

async fn book(
    State(erp): State<Erp>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    // Slow enough that kills land in the middle of batches.
    tokio::time::sleep(Duration::from_millis(fastrand::u64(5..25))).await;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let source = body["source_id"].as_str().unwrap_or_default().to_string();
    erp.requests.lock().unwrap().push((key, source));
    axum::Json(json!({"ok": true}))
}

/// The bulk endpoint: one request per group, one result per item; every item is recorded
/// with the group's idempotency key.
async fn book_bulk(
    State(erp): State<Erp>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(5..25))).await;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let mut requests = erp.requests.lock().unwrap();
    for item in &items {
        requests.push((key.clone(), item["source_id"].as_str().unwrap_or_default().to_string()));
    }
    axum::Json(json!({"results": vec![json!({"ok": true}); items.len()]}))
}

async fn erp() -> (SocketAddr, Erp) {
    let erp = Erp::default();
    let router = axum::Router::new()
        .route("/worklogs", get(worklogs))
        .route("/book", post(book))
        .route("/bulk", post(book_bulk))
        .with_state(erp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, erp)
}

fn flow(addr: SocketAddr, idempotency_header: &str) -> String {
    format!(
        r#"
flow: crash-test
connections:
  src: {{ connector: http, config: {{ base_url: "http://{addr}" }} }}
  erp: {{ connector: http, config: {{ base_url: "http://{addr}", idempotency_header: "{idempotency_header}" }} }}
trigger:
  poll:
    connection: src
    operation: poll-json
    every: 1h
    params:
      url: /worklogs
      records_path: items
      id_field: id
      pagination: {{ type: page, param: page, size_param: per_page, size: 20 }}
      since: {{ field: updated_at, param: updated_since }}
concurrency: 4
steps:
  - id: to-cost
    map: {{ source_id: record.id, hours: record.seconds / 3600 }}
  - id: book
    action: {{ connection: erp, operation: request, input: {{ method: "'POST'", url: "'/book'", json: record }} }}
    retry: {{ attempts: 5, backoff: 10ms, max_backoff: 100ms }}
"#
    )
}

/// The same source grouped by 7 (groups span pages of 20) and booked in bulk.
fn batch_flow(addr: SocketAddr) -> String {
    flow(addr, "Idempotency-Key").replace(
        r#"  - id: book
    action: { connection: erp, operation: request, input: { method: "'POST'", url: "'/book'", json: record } }"#,
        r#"  - id: group
    batch: { size: 7 }
  - id: book
    action:
      connection: erp
      operation: request
      input: { method: "'POST'", url: "'/bulk'", json: { items: record.items }, item_results: { path: "'results'" } }"#,
    )
}

/// Runs `qiao run --once` repeatedly, killing it with SIGKILL after a random number of further
/// bookings reached the ERP (so every kill lands mid-batch, between a call and its
/// checkpoint, or between batches), then lets one run finish. Returns how many runs were
/// killed.
async fn run_with_kills(dir: &Path, flow_file: &Path, connectors: &Path, seed: u64, erp: &Erp) -> usize {
    let mut rng = fastrand::Rng::with_seed(seed);
    let qiao = env!("CARGO_BIN_EXE_qiao");
    let (dir, flow_file, connectors) = (dir.to_path_buf(), flow_file.to_path_buf(), connectors.to_path_buf());
    let command = move || {
        let mut c = Command::new(qiao);
        c.arg("--state")
            .arg(dir.join("state"))
            .arg("run")
            .arg(&flow_file)
            .arg("--once")
            .arg("--allow-private")
            .arg("--connectors")
            .arg(&connectors)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut killed = 0;
    for _ in 0..5 {
        let mut child = command().spawn().expect("spawn qiao");
        let seen = erp.requests.lock().unwrap().len();
        let kill_after = seen + rng.usize(1..30);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "qiao run exited with {status} before it was killed");
                break;
            }
            let booked = erp.requests.lock().unwrap().len();
            if booked >= kill_after || started.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let final_run = tokio::task::spawn_blocking(move || {
        let mut c = command();
        c.stderr(Stdio::piped());
        c.output().expect("run qiao")
    })
    .await
    .unwrap();
    assert!(final_run.status.success(), "final run failed: {}", String::from_utf8_lossy(&final_run.stderr));
    killed
}

fn connectors_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("connectors");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(http_wasm(), dir.join("http.wasm")).unwrap();
    dir
}

fn check_state(dir: &Path) {
    let store = qiao_store::Store::open(&dir.join("state")).unwrap();
    assert!(store.pending_batches("crash-test").unwrap().is_empty(), "nothing left in flight");
    assert!(store.list_dead_letters(None).unwrap().is_empty(), "no dead letters");
    assert!(store.cursor("crash-test").unwrap().is_some(), "cursor committed");
}

/// Runs the flow with `idempotency_header` under kills; returns the ERP's requests, the
/// seed and the kill count, after checking the final state.
async fn crash_run(idempotency_header: &str) -> (Vec<(String, String)>, u64, usize) {
    crash_run_flow(|addr| flow(addr, idempotency_header)).await
}

async fn crash_run_flow(flow: impl Fn(SocketAddr) -> String) -> (Vec<(String, String)>, u64, usize) {
    let seed = std::env::var("QIAO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash test seed {seed} (set QIAO_CRASH_SEED to repeat)");
    let tmp = tempfile::tempdir().unwrap();
    let (addr, erp) = erp().await;
    let flow_file = tmp.path().join("crash.yaml");
    std::fs::write(&flow_file, flow(addr)).unwrap();
    let killed = run_with_kills(tmp.path(), &flow_file, &connectors_dir(tmp.path()), seed, &erp).await;
    check_state(tmp.path());
    let requests = erp.requests.lock().unwrap().clone();
    println!("{killed} kills, {} requests for {RECORDS} worklogs", requests.len());
    (requests, seed, killed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_and_books_once_with_idempotency_keys() {
    let (requests, seed, killed) = crash_run("Idempotency-Key").await;
    let mut by_key: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (key, source) in &requests {
        by_key.entry(key.as_str()).or_default().insert(source.as_str());
    }
    // The ERP keeps one booking per idempotency key: exactly the 120 worklogs.
    let expected: HashSet<String> = (1..=RECORDS).map(|i| format!("crash-test:WL-{i}:book")).collect();
    let booked: HashSet<String> = by_key.keys().map(|k| k.to_string()).collect();
    assert_eq!(booked, expected, "seed {seed}, {killed} kills");
    assert!(by_key.values().all(|s| s.len() == 1), "one key never covers two worklogs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_without_idempotency_keys() {
    let (requests, seed, killed) = crash_run("").await;
    assert!(requests.iter().all(|(key, _)| key.is_empty()), "no idempotency header sent");
    let seen: HashSet<String> = requests.iter().map(|(_, s)| s.clone()).collect();
    let expected: HashSet<String> = (1..=RECORDS).map(|i| format!("WL-{i}")).collect();
    assert_eq!(seen, expected, "at least once: seed {seed}, {killed} kills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_bulk_writes_loses_nothing_and_resends_only_unacknowledged_groups() {
    let (requests, seed, killed) = crash_run_flow(batch_flow).await;
    let mut sends: HashMap<&str, usize> = HashMap::new();
    for (_, source) in &requests {
        *sends.entry(source.as_str()).or_default() += 1;
    }
    let expected: HashSet<String> = (1..=RECORDS).map(|i| format!("WL-{i}")).collect();
    let seen: HashSet<String> = sends.keys().map(|s| s.to_string()).collect();
    assert_eq!(seen, expected, "nothing lost: seed {seed}, {killed} kills");
    // An item is sent again only when a kill landed between its group's answer and the
    // group's checkpoint: at most the groups in flight (concurrency 4, 7 items each) per kill.
    let resent: usize = sends.values().map(|n| n - 1).sum();
    assert!(resent <= killed * 4 * 7, "{resent} items re-sent after {killed} kills (seed {seed})");
    if killed == 0 {
        assert_eq!(resent, 0, "without a kill nothing is sent twice");
    }
}
