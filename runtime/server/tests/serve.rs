//! `qiao serve` in-process: webhook intake (signatures, dedupe by the default or the flow's
//! own delivery-id header, backpressure, bad bodies), the admin API's role matrix and OpenAPI
//! document, metrics, reload without loss, poll flows drained (not cancelled) on reload, and
//! connectors installed from a signed directory served over loopback and removed. The flows
//! call the real HTTP connector (Wasm) against a loopback sink.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use hmac::{Hmac, Mac};
use qiao_engine::StoreKv;
use qiao_host::{ConnectorPolicy, Runtime, RuntimeConfig};
use qiao_server::{
    ConnectorLoader, InstalledConnector, Limits, LoadedConnectors, ROUTES, Role, RunningServer, ServeConfig,
};
use qiao_store::Store;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "hook-s3cret";

fn http_wasm() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("QIAO_CONNECTORS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| root.join(d))
            .unwrap_or_else(|| root.join("target"))
            .join("connectors")
    });
    let path = dir.join("http.wasm");
    assert!(path.is_file(), "{} is missing: build the http connector first", path.display());
    path
}

/// The loopback sink: every POST's body, optionally slow; and `GET /items`, a list for poll
/// flows that is handed out once (later polls find it empty).
#[derive(Clone, Default)]
struct Sink {
    got: Arc<Mutex<Vec<Value>>>,
    items: Arc<Mutex<Vec<Value>>>,
    delay_ms: u64,
}

async fn sink_post(State(sink): State<Sink>, axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    if sink.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sink.delay_ms)).await;
    }
    sink.got.lock().unwrap().push(body);
    axum::Json(json!({"ok": true}))
}

async fn sink_items(State(sink): State<Sink>) -> axum::Json<Value> {
    let items = std::mem::take(&mut *sink.items.lock().unwrap());
    axum::Json(json!({"items": items}))
}

async fn start_sink(delay_ms: u64) -> (SocketAddr, Sink) {
    let sink = Sink { delay_ms, ..Default::default() };
    let router = axum::Router::new()
        .route("/sink", post(sink_post))
        .route("/items", axum::routing::get(sink_items))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, sink)
}

fn webhook_flow(sink: SocketAddr, version: u32, concurrency: u32) -> String {
    format!(
        r#"
flow: orders
connections:
  sink: {{ connector: http, config: {{ base_url: "http://{sink}" }} }}
trigger:
  webhook: {{ path: /events, secret: "${{secret.hook_secret}}" }}
concurrency: {concurrency}
steps:
  - id: shape
    map: {{ id: record.id, v: {version} }}
  - id: send
    action: {{ connection: sink, operation: request, input: {{ method: "'POST'", url: "'/sink'", json: record }} }}
    retry: {{ attempts: 3, backoff: 10ms }}
"#
    )
}

struct Harness {
    dir: tempfile::TempDir,
    state: PathBuf,
    flows: PathBuf,
    store: Store,
    runtime: Runtime,
    server: RunningServer,
    base: String,
    client: reqwest::Client,
    sink: Sink,
    sink_addr: SocketAddr,
}

/// The usual setup: the webhook flow `orders` (version 1), a broken file, the http connector
/// loaded at start.
async fn harness(limits: Limits, sink_delay_ms: u64, concurrency: u32) -> Harness {
    harness_with(limits, sink_delay_ms, true, |sink| {
        vec![
            ("orders.yaml", webhook_flow(sink, 1, concurrency)),
            ("broken.yaml", "flow: broken\ntrigger: {}\n".to_string()),
        ]
    })
    .await
}

/// A server over the flow files `flows` returns for the sink's address; with the http
/// connector loaded at start when `preload`.
async fn harness_with(
    limits: Limits,
    sink_delay_ms: u64,
    preload: bool,
    flow_files: impl FnOnce(SocketAddr) -> Vec<(&'static str, String)>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&flows).unwrap();
    let secrets = state.join("secrets.yaml");
    std::fs::write(&secrets, format!("hook_secret: {SECRET}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (sink_addr, sink) = start_sink(sink_delay_ms).await;
    for (name, text) in flow_files(sink_addr) {
        std::fs::write(flows.join(name), text).unwrap();
    }
    let store = Store::open(&state).unwrap();
    let (runtime, connectors) = load_connectors(&store, &state, preload).await;
    let config = ServeConfig {
        flows_dir: flows.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: state.clone(),
        limits,
    };
    let server = qiao_server::start(config, store.clone(), connectors).await.unwrap();
    let base = format!("http://{}", server.addr);
    Harness {
        dir,
        state,
        flows,
        store,
        runtime,
        server,
        base,
        client: reqwest::Client::new(),
        sink,
        sink_addr,
    }
}

async fn load_connectors(store: &Store, state: &Path, preload: bool) -> (Runtime, LoadedConnectors) {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(state.join("cache")),
        kv: Arc::new(StoreKv(store.clone())),
        max_instances: 256,
        ..Default::default()
    })
    .unwrap();
    let policy = ConnectorPolicy { allow_private: true, ..Default::default() };
    let mut installed = Vec::new();
    if preload {
        let path = http_wasm();
        let connector = runtime.load_file(&path, policy.clone()).await.unwrap();
        installed.push(InstalledConnector { path: Some(path), connector });
    }
    let loader = ConnectorLoader::new(runtime.clone(), move |_| policy.clone());
    (runtime, LoadedConnectors::new(loader, installed))
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Harness {
    async fn hook(&self, body: &Value, delivery: Option<&str>) -> reqwest::Response {
        let headers: Vec<(&str, &str)> = delivery.map(|d| ("x-delivery-id", d)).into_iter().collect();
        self.hook_to("/hooks/orders/events", body, &headers).await
    }

    /// A signed delivery to `path` with extra headers.
    async fn hook_to(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).unwrap();
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(&bytes));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(bytes).send().await.unwrap()
    }

    fn sink_ids(&self) -> Vec<String> {
        self.sink
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn wait_sink(&self, n: usize) {
        for _ in 0..1000 {
            if self.sink.got.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sink got {} of {n}", self.sink.got.lock().unwrap().len());
    }

    async fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(serde_json::to_vec(&b).unwrap());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn quick_limits() -> Limits {
    Limits { reload_every: None, drain_timeout: Duration::from_secs(10), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signature_failure_is_refused_and_nothing_stored() {
    let h = harness(quick_limits(), 0, 4).await;
    let body = serde_json::to_vec(&json!({"id": "A-1"})).unwrap();
    let url = format!("{}/hooks/orders/events", h.base);
    let none = h.client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = h
        .client
        .post(&url)
        .header("x-hub-signature-256", "sha256=00ff")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let err: Value = serde_json::from_slice(&wrong.bytes().await.unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "bad-signature");
    let tampered = h
        .client
        .post(&url)
        .header("x-hub-signature-256", sign(b"{\"id\":\"B\"}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401);
    assert!(h.store.pending_batches("orders").unwrap().is_empty(), "nothing stored for refused deliveries");
    let ok = h.hook(&json!({"id": "A-1"}), None).await;
    assert_eq!(ok.status(), 202);
    h.wait_sink(1).await;
    assert_eq!(h.sink_ids(), ["A-1"]);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_bodies_get_400_and_413() {
    let h = harness(Limits { max_body_bytes: 1024, ..quick_limits() }, 0, 4).await;
    let url = format!("{}/hooks/orders/events", h.base);
    let bad = b"{not json".to_vec();
    let resp = h.client.post(&url).header("x-hub-signature-256", sign(&bad)).body(bad).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "bad-body");
    assert!(err["error"]["message"].as_str().unwrap().contains("not JSON"), "{err}");
    // Valid JSON nested past the parser's limit: refused at the door, since the consumer could
    // never decode it from the store.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes();
    let resp =
        h.client.post(&url).header("x-hub-signature-256", sign(&deep)).body(deep).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("recursion limit"), "{err}");
    let big = serde_json::to_vec(&json!({"id": "x".repeat(4096)})).unwrap();
    let resp = h.client.post(&url).header("x-hub-signature-256", sign(&big)).body(big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let resp = h.client.post(format!("{}/hooks/orders/other", h.base)).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // The flow still takes and delivers events.
    assert_eq!(h.hook(&json!({"id": "after"}), None).await.status(), 202);
    h.wait_sink(1).await;
    assert_eq!(h.sink_ids(), ["after"]);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_is_accepted_once() {
    let h = harness(quick_limits(), 0, 4).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        let resp = h.hook(&json!({"id": "DUP-1"}), Some("delivery-1")).await;
        assert_eq!(resp.status(), 202);
        answers.push(serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap());
    }
    // Concurrent redeliveries too.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (client, base) = (h.client.clone(), h.base.clone());
        let bytes = serde_json::to_vec(&json!({"id": "DUP-2"})).unwrap();
        tasks.push(tokio::spawn(async move {
            client
                .post(format!("{base}/hooks/orders/events"))
                .header("x-hub-signature-256", sign(&bytes))
                .header("x-atlassian-webhook-identifier", "delivery-2")
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    h.wait_sink(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = h.sink_ids();
    ids.sort();
    assert_eq!(ids, ["DUP-1", "DUP-2"]);
    assert_eq!(answers[1]["duplicate"], true);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_429_and_loses_nothing_accepted() {
    let limits = Limits { intake_capacity: 4, ..quick_limits() };
    let h = harness(limits, 30, 1).await;
    let mut tasks = Vec::new();
    for i in 0..80 {
        let (client, base) = (h.client.clone(), h.base.clone());
        tasks.push(tokio::spawn(async move {
            let bytes = serde_json::to_vec(&json!({"id": format!("E-{i}")})).unwrap();
            let resp = client
                .post(format!("{base}/hooks/orders/events"))
                .header("x-hub-signature-256", sign(&bytes))
                .body(bytes)
                .send()
                .await
                .unwrap();
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (i, resp.status().as_u16(), retry_after)
        }));
    }
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    for t in tasks {
        let (i, status, retry_after) = t.await.unwrap();
        match status {
            202 => {
                accepted.insert(format!("E-{i}"));
            }
            429 => {
                refused += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "a full intake refuses with 429");
    assert!(!accepted.is_empty());
    h.wait_sink(accepted.len()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got: BTreeSet<String> = h.sink_ids().into_iter().collect();
    assert_eq!(got, accepted, "every accepted event reached the sink, and only those");
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_every_accepted_event() {
    let h = harness(quick_limits(), 2, 4).await;
    let sender = {
        let (client, base) = (h.client.clone(), h.base.clone());
        tokio::spawn(async move {
            let mut accepted = BTreeSet::new();
            for i in 0..300 {
                let bytes = serde_json::to_vec(&json!({"id": format!("R-{i}")})).unwrap();
                let resp = client
                    .post(format!("{base}/hooks/orders/events"))
                    .header("x-hub-signature-256", sign(&bytes))
                    .body(bytes)
                    .send()
                    .await
                    .unwrap();
                match resp.status().as_u16() {
                    202 => {
                        accepted.insert(format!("R-{i}"));
                    }
                    503 | 429 => {}
                    s => panic!("unexpected {s}"),
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            accepted
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(h.flows.join("orders.yaml"), webhook_flow(h.sink_addr, 2, 4)).unwrap();
    let admin = qiao_server::create_token(&h.store, "ops", Role::Operator).await.unwrap().0;
    let (status, report) = h.api("POST", "/api/v1/reload", Some(&admin), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["reloaded"], json!(["orders"]));
    let accepted = sender.await.unwrap();
    h.wait_sink(accepted.len()).await;
    let got = h.sink.got.lock().unwrap().clone();
    let ids: BTreeSet<String> = got.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert!(accepted.is_subset(&ids), "lost: {:?}", accepted.difference(&ids).collect::<Vec<_>>());
    assert!(got.iter().any(|v| v["v"] == 2), "the new version ran after the reload");
    h.server.shutdown().await;
}

/// A concrete path for a route template.
fn concrete(path: &str) -> String {
    path.replace("{flow}", "orders").replace("{id}", "999999")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_every_route_every_role() {
    let h = harness(quick_limits(), 0, 4).await;
    let mut tokens = HashMap::new();
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let (token, _) = qiao_server::create_token(&h.store, role.as_str(), role).await.unwrap();
        tokens.insert(role, token);
    }
    let mut checked = 0;
    let mut passed_writes = 0;
    for route in ROUTES {
        let path = concrete(route.path);
        let body = (route.method == "POST").then(|| json!({}));
        // No token and a bad token.
        for token in [None, Some("qiao_not-a-token")] {
            let (status, err) = h.api(route.method, &path, token, body.clone()).await;
            if route.role.is_some() {
                assert_eq!(status, 401, "{} {path} with {token:?}: {err}", route.method);
                assert_eq!(err["error"]["code"], "unauthorized");
            } else {
                assert!(status != 401 && status != 403, "{} {path} is public", route.method);
            }
            checked += 1;
        }
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            let (status, err) = h.api(route.method, &path, Some(&tokens[&role]), body.clone()).await;
            match route.role {
                Some(needed) if role < needed => {
                    assert_eq!(status, 403, "{} {path} as {role:?}: {err}", route.method);
                    assert_eq!(err["error"]["code"], "forbidden");
                }
                _ => {
                    assert!(
                        status != 401 && status != 403 && status != 405,
                        "{} {path} as {role:?}: {status} {err}",
                        route.method
                    );
                    assert_ne!(err["error"]["message"], "no such route", "{} {path} is routed", route.method);
                    if route.method != "GET" {
                        passed_writes += 1;
                    }
                }
            }
            checked += 1;
        }
        // The flow may have been disabled by the matrix: enable it again for later routes.
        if route.path.ends_with("/disable") {
            let (s, _) =
                h.api("POST", "/api/v1/flows/orders/enable", Some(&tokens[&Role::Admin]), None).await;
            assert_eq!(s, 200);
        }
    }
    assert_eq!(checked, ROUTES.len() * 5);
    // Every state-changing call past authentication is audited (403s included), nothing else.
    let (status, audit) = h.api("GET", "/api/v1/audit?limit=1000", Some(&tokens[&Role::Admin]), None).await;
    assert_eq!(status, 200);
    let entries = audit["audit"].as_array().unwrap();
    let writes_with_token: usize =
        ROUTES.iter().filter(|r| r.method != "GET" && r.role.is_some()).count() * 3;
    // + the re-enable calls.
    assert_eq!(entries.len(), writes_with_token + 1, "audit entries");
    assert!(passed_writes > 0);
    // Tokens never appear in listings.
    let (_, list) = h.api("GET", "/api/v1/tokens", Some(&tokens[&Role::Admin]), None).await;
    let text = list.to_string();
    for t in tokens.values() {
        assert!(!text.contains(t.as_str()));
    }
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_validates_and_covers_every_route() {
    let h = harness(quick_limits(), 0, 4).await;
    let (status, doc) = h.api("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        assert!(path.starts_with('/'));
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            assert!(op["operationId"].is_string());
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty());
            for (code, r) in responses {
                assert!(code.len() == 3 && code.parse::<u16>().is_ok(), "{code}");
                assert!(r["description"].is_string());
                if let Some(reference) =
                    r.pointer("/content/application~1json/schema/$ref").and_then(Value::as_str)
                {
                    let target = reference.trim_start_matches('#').replace("/components/schemas/", "");
                    assert!(doc["components"]["schemas"][&target].is_object(), "dangling {reference}");
                }
            }
            // Every path parameter is declared, and only those.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> = qiao_server::path_params(path).into_iter().collect();
            assert_eq!(declared, in_path, "{method} {path}");
            for s in op["security"].as_array().unwrap() {
                for scheme in s.as_object().unwrap().keys() {
                    assert!(doc["components"]["securitySchemes"][scheme].is_object());
                }
            }
        }
    }
    let routes: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    assert_eq!(documented, routes, "the document lists exactly the routes");
    // And every documented route is served (an unknown path answers the fallback's 404).
    for (method, path) in &documented {
        let (status, body) = h.api(method, &concrete(path), None, None).await;
        assert_ne!(body["error"]["message"], "no such route", "{method} {path}: {status}");
    }
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_invalid_flows_are_reported() {
    let h = harness(quick_limits(), 0, 4).await;
    assert_eq!(h.server.invalid.len(), 1, "broken.yaml is reported");
    assert!(h.server.invalid[0].0.ends_with("broken.yaml"));
    let (s, _) = h.api("GET", "/healthz", None, None).await;
    assert_eq!(s, 200);
    let (s, _) = h.api("GET", "/readyz", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(h.hook(&json!({"id": "M-1"}), None).await.status(), 202);
    h.wait_sink(1).await;
    let text = h.client.get(format!("{}/metrics", h.base)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("qiao_webhook_requests_total{flow=\"orders\",status=\"202\"}"), "{text}");
    assert!(text.contains("qiao_intake_queue_depth{flow=\"orders\"}"), "{text}");
    assert!(text.contains("qiao_dead_letters{flow=\"orders\"} 0"), "{text}");
    // The store's group commits: the accepted delivery's write among them.
    assert!(text.contains("qiao_store_commits_total "), "{text}");
    assert!(text.contains("qiao_store_commit_writes_bucket{le=\"1\"}"), "{text}");
    assert!(text.contains("qiao_store_commit_seconds_count "), "{text}");
    let viewer = qiao_server::create_token(&h.store, "v", Role::Viewer).await.unwrap().0;
    let (s, flows) = h.api("GET", "/api/v1/flows", Some(&viewer), None).await;
    assert_eq!(s, 200);
    assert_eq!(flows["flows"][0]["id"], "orders");
    assert_eq!(flows["flows"][0]["hook"], "/hooks/orders/events");
    assert!(flows["invalid"][0]["file"].as_str().unwrap().ends_with("broken.yaml"));
    assert!(!flows.to_string().contains(SECRET), "secrets never appear in responses");
    h.server.shutdown().await;
}

// ----- the flow's own delivery-id header ------------------------------------------------------

fn receipts_flow(sink: SocketAddr) -> String {
    format!(
        r#"
flow: receipts
connections:
  sink: {{ connector: http, config: {{ base_url: "http://{sink}" }} }}
trigger:
  webhook: {{ path: /in, secret: "${{secret.hook_secret}}", delivery_id: X-Request-Id }}
steps:
  - id: send
    action: {{ connection: sink, operation: request, input: {{ method: "'POST'", url: "'/sink'", json: record }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_can_name_its_delivery_id_header() {
    let h = harness_with(quick_limits(), 0, true, |sink| vec![("receipts.yaml", receipts_flow(sink))]).await;
    let send = |id: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let h = &h;
        async move {
            let resp = h.hook_to("/hooks/receipts/in", &json!({"id": id}), &headers).await;
            assert_eq!(resp.status(), 202, "{id}");
            serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap()
        }
    };
    let first = send("C-1", vec![("X-Request-Id", "req-1")]).await;
    assert_eq!(first["accepted"], true);
    assert!(first.get("duplicate").is_none(), "{first}");
    // The same id again, in another letter case of the header name: a duplicate.
    let again = send("C-1", vec![("x-REQUEST-id", "req-1")]).await;
    assert_eq!(again["duplicate"], true, "{again}");
    // The default headers are ignored when the flow names its own: same X-Delivery-Id,
    // different X-Request-Id → two deliveries.
    let a = send("C-2", vec![("X-Request-Id", "req-2"), ("X-Delivery-Id", "d-1")]).await;
    let b = send("C-3", vec![("X-Request-Id", "req-3"), ("X-Delivery-Id", "d-1")]).await;
    assert!(a.get("duplicate").is_none() && b.get("duplicate").is_none(), "{a} {b}");
    // Without the flow's header, a default one does not dedupe either.
    let c = send("C-4", vec![("Idempotency-Key", "req-1")]).await;
    let d = send("C-4", vec![("Idempotency-Key", "req-1")]).await;
    assert!(c.get("duplicate").is_none() && d.get("duplicate").is_none(), "{c} {d}");
    h.wait_sink(5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ids = h.sink_ids();
    ids.sort();
    assert_eq!(ids, ["C-1", "C-2", "C-3", "C-4", "C-4"]);
    h.server.shutdown().await;
}

fn keyed_flow(sink: SocketAddr, flow: &str, key: &str) -> String {
    format!(
        r#"
flow: {flow}
connections:
  sink: {{ connector: http, config: {{ base_url: "http://{sink}" }} }}
trigger:
  webhook: {{ path: /in, secret: "${{secret.hook_secret}}" }}
{key}
steps:
  - id: send
    action: {{ connection: sink, operation: request, input: {{ method: "'POST'", url: "'/sink'", json: record }} }}
"#
    )
}

/// The record keys of `flow`'s runs so far.
fn outcome_keys(store: &Store, flow: &str) -> BTreeSet<String> {
    let runs = store.list_runs(Some(flow), usize::MAX).unwrap();
    runs.into_iter().flat_map(|(id, _)| store.get_run(id).unwrap().1).map(|o| o.key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_record_keys_come_from_the_key_expression_the_delivery_id_or_the_body() {
    let h = harness_with(quick_limits(), 0, true, |sink| {
        vec![
            ("keyed.yaml", keyed_flow(sink, "keyed", "key: record.ref")),
            ("plain.yaml", keyed_flow(sink, "plain", "")),
        ]
    })
    .await;
    let post = |path: &'static str, body: Value, headers: Vec<(&'static str, &'static str)>| {
        let h = &h;
        async move {
            let resp = h.hook_to(path, &body, &headers).await;
            assert_eq!(resp.status(), 202, "{path} {body}");
        }
    };
    // The key expression wins over the delivery id.
    post("/hooks/keyed/in", json!({"id": "a", "ref": "PO-7"}), vec![("x-delivery-id", "d-1")]).await;
    post("/hooks/plain/in", json!({"id": "b"}), vec![("x-delivery-id", "d-9")]).await;
    let anonymous = json!({"id": "c", "text": "现场验收"});
    post("/hooks/plain/in", anonymous.clone(), vec![]).await;
    h.wait_sink(3).await;
    let body_key = qiao_engine::content_key(&serde_json::to_vec(&anonymous).unwrap());
    let expected_plain: BTreeSet<String> = ["d-9".to_string(), body_key].into();
    for _ in 0..500 {
        if outcome_keys(&h.store, "plain") == expected_plain && !outcome_keys(&h.store, "keyed").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(outcome_keys(&h.store, "keyed"), BTreeSet::from(["PO-7".to_string()]));
    assert_eq!(outcome_keys(&h.store, "plain"), expected_plain);
    let mut ids = h.sink_ids();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"], "each record reached the sink with its body intact");
    h.server.shutdown().await;
}

/// A store failure under a webhook flow (injected: the consumer's first completion commit
/// fails) stops its consumer. The flow is marked failed with the reason, its webhooks answer
/// 503 with `Retry-After`, and after the backoff it restarts by itself, delivering what was
/// accepted before and taking new deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_webhook_flow_restarts_after_its_backoff_and_loses_nothing() {
    let backoff = Duration::from_millis(1500);
    let limits = Limits { restart_backoff: backoff, ..quick_limits() };
    let h = harness_with(limits, 0, true, |sink| {
        vec![("faulty.yaml", webhook_flow(sink, 1, 4).replace("flow: orders", "flow: faulty"))]
    })
    .await;
    let viewer = qiao_server::create_token(&h.store, "v", Role::Viewer).await.unwrap().0;
    let flow = || h.api("GET", "/api/v1/flows/faulty", Some(&viewer), None);
    // Scoped to this flow, so the other tests of this binary are not affected.
    fail::cfg("engine::complete/faulty", "1*return").unwrap();
    assert_eq!(h.hook_to("/hooks/faulty/events", &json!({"id": "F-1"}), &[]).await.status(), 202);
    // The flow's view once its state is `state` (or after 5 s).
    let view_when = |state: &'static str| {
        let flow = &flow;
        async move {
            let mut view = Value::Null;
            for _ in 0..500 {
                view = flow().await.1;
                if view["flow"]["state"] == state {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            view
        }
    };
    let view = view_when("failed").await;
    assert_eq!(view["flow"]["state"], "failed", "{view}");
    assert!(view["flow"]["error"].as_str().unwrap().contains("failpoint engine::complete"), "{view}");
    assert_eq!(view["flow"]["failures"], 1, "{view}");
    let refused = h.hook_to("/hooks/faulty/events", &json!({"id": "F-refused"}), &[]).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let err: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert!(!err.to_string().contains("failpoint"), "the reason is for operators only: {err}");
    let view = view_when("running").await;
    assert_eq!(view["flow"]["state"], "running", "restarted after the backoff: {view}");
    assert!(view["flow"].get("error").is_none(), "{view}");
    assert!(view["flow"]["last_failure"].as_str().unwrap().contains("failpoint"), "{view}");
    assert_eq!(h.hook_to("/hooks/faulty/events", &json!({"id": "F-2"}), &[]).await.status(), 202);
    for _ in 0..500 {
        let ids = h.sink_ids();
        if ids.iter().any(|i| i == "F-1")
            && ids.iter().any(|i| i == "F-2")
            && h.store.pending_batches("faulty").unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ids: BTreeSet<String> = h.sink_ids().into_iter().collect();
    // F-1's action ran before the failed commit, so it ran again after the restart (at least
    // once, with the same idempotency key); the refused delivery was never accepted.
    assert_eq!(ids, BTreeSet::from(["F-1".to_string(), "F-2".to_string()]));
    assert!(h.store.pending_batches("faulty").unwrap().is_empty(), "every accepted delivery completed");
    let runs = h.store.list_runs(Some("faulty"), 10).unwrap();
    assert!(
        runs.iter().any(|(_, r)| r.error.as_deref().is_some_and(|e| e.contains("interrupted"))),
        "the failed consumer's run is closed as interrupted: {runs:?}"
    );
    h.server.shutdown().await;
}

// ----- poll flows drain on reload -------------------------------------------------------------

fn ledger_flow(sink: SocketAddr, version: u32) -> String {
    format!(
        r#"
flow: ledger
connections:
  src: {{ connector: http, config: {{ base_url: "http://{sink}" }} }}
  sink: {{ connector: http, config: {{ base_url: "http://{sink}" }} }}
trigger:
  poll: {{ connection: src, operation: poll-json, every: 1h, params: {{ url: /items, records_path: items, id_field: id }} }}
concurrency: 1
steps:
  - id: shape
    map: {{ id: record.id, v: {version} }}
  - id: send
    action: {{ connection: sink, operation: request, input: {{ method: "'POST'", url: "'/sink'", json: record }} }}
"#
    )
}

/// A poll flow with `n` items waiting at the source and a sink taking `delay_ms` per record;
/// returns once the first record reached the sink (the run is in flight).
async fn ledger_mid_run(limits: Limits, delay_ms: u64, n: usize) -> Harness {
    let h = harness_with(limits, delay_ms, true, |sink| vec![("ledger.yaml", ledger_flow(sink, 1))]).await;
    // The flow polled at start and found nothing yet; fill the source, then run it now.
    *h.sink.items.lock().unwrap() = (0..n).map(|i| json!({"id": format!("L-{i}")})).collect();
    let ops = qiao_server::create_token(&h.store, "ops", Role::Operator).await.unwrap().0;
    let (status, body) = h.api("POST", "/api/v1/flows/ledger/run", Some(&ops), None).await;
    assert_eq!(status, 202, "{body}");
    h.wait_sink(1).await;
    h
}

async fn reload_to_version_2(h: &Harness) {
    std::fs::write(h.flows.join("ledger.yaml"), ledger_flow(h.sink_addr, 2)).unwrap();
    let ops = qiao_server::create_token(&h.store, "reloader", Role::Operator).await.unwrap().0;
    let (status, report) = h.api("POST", "/api/v1/reload", Some(&ops), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["reloaded"], json!(["ledger"]));
}

fn runs_of(store: &Store, flow: &str) -> Vec<qiao_store::RunInfo> {
    store.list_runs(Some(flow), 100).unwrap().into_iter().map(|(_, r)| r).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_lets_a_poll_run_in_flight_finish() {
    let h = ledger_mid_run(quick_limits(), 150, 5).await;
    reload_to_version_2(&h).await;
    // The reload returned after the old version drained: the run finished every record
    // before the new version started.
    let got = h.sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.iter().all(|v| v["v"] == 1), "all sent by the old version: {got:?}");
    assert!(h.store.pending_batches("ledger").unwrap().is_empty(), "nothing left pending");
    let runs = runs_of(&h.store, "ledger");
    let manual_poll = runs.iter().find(|r| r.trigger == "poll" && r.counts.records_in == 5).unwrap();
    assert_eq!(manual_poll.status, qiao_store::RunStatus::Succeeded, "{manual_poll:?}");
    assert_eq!(manual_poll.counts.records_out, 5);
    assert!(!runs.iter().any(|r| r.trigger == "resume"), "nothing to resume: {runs:?}");
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_run_past_the_drain_deadline_resumes_in_the_new_version() {
    let limits = Limits { drain_timeout: Duration::from_millis(300), ..quick_limits() };
    let h = ledger_mid_run(limits, 250, 8).await;
    reload_to_version_2(&h).await;
    let all: BTreeSet<String> = (0..8).map(|i| format!("L-{i}")).collect();
    for _ in 0..1000 {
        let got: BTreeSet<String> = h.sink_ids().into_iter().collect();
        if got == all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = h.sink.got.lock().unwrap().clone();
    let ids: BTreeSet<String> = got.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, all, "every record reached the sink");
    assert!(got.iter().any(|v| v["v"] == 1), "the old version sent some: {got:?}");
    assert!(got.iter().any(|v| v["v"] == 2), "the new version finished the rest: {got:?}");
    // The resume run ends just after its last record reached the sink.
    let resumed = |runs: &[qiao_store::RunInfo]| {
        runs.iter().any(|r| r.trigger == "resume" && r.status == qiao_store::RunStatus::Succeeded)
    };
    for _ in 0..500 {
        if resumed(&runs_of(&h.store, "ledger")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let runs = runs_of(&h.store, "ledger");
    assert!(resumed(&runs), "the rest was resumed: {runs:?}");
    let (cut_id, cut) = h
        .store
        .list_runs(Some("ledger"), 100)
        .unwrap()
        .into_iter()
        .find(|(_, r)| r.trigger == "poll" && r.counts.records_in == 8)
        .unwrap();
    assert!(cut.counts.records_out < 8, "the old version's run was cut at the deadline: {cut:?}");
    // The new version polls at start too (the source still lists the items), so a batch of
    // its own may be in flight; none of the cut run's is left.
    let left: Vec<u64> = h
        .store
        .pending_batches("ledger")
        .unwrap()
        .into_iter()
        .filter(|b| b.meta.run_id == cut_id)
        .map(|b| b.id)
        .collect();
    assert!(left.is_empty(), "batches of the cut run still pending: {left:?}");
    h.server.shutdown().await;
}

// ----- connectors installed and removed through the API ---------------------------------------

/// A signed directory `lab` in `root/site` (directory key and publisher key `acme` made here)
/// offering the http connector, served over loopback; trusted in `state/config.yaml`.
/// Returns the package file.
async fn publish_lab(root: &Path, state: &Path, runtime: &Runtime) -> PathBuf {
    use qiao_directory::directory::Directory;
    use qiao_directory::keys::{self, Password, SigningKey};
    use qiao_directory::manifest::{AuthorCapabilities, AuthorManifest};
    use qiao_directory::package;

    let keys_dir = root.join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let dir_key = keys::generate(&keys_dir.join("dir"), Password::None, false).unwrap();
    let acme = keys::generate(&keys_dir.join("acme"), Password::None, false).unwrap();
    let wasm_path = http_wasm();
    let wasm = std::fs::read(&wasm_path).unwrap();
    let info = runtime.load_file(&wasm_path, ConnectorPolicy::default()).await.unwrap().info().clone();
    let wit = qiao_directory::wit::component_version(&wasm).unwrap();
    let author = AuthorManifest {
        publisher: "acme".into(),
        capabilities: AuthorCapabilities { private_network: true, ..Default::default() },
        ..Default::default()
    };
    let manifest = author.complete(&info, &wit).unwrap();
    let bytes = package::write(&manifest, &wasm, "# http\n").unwrap();
    let publisher = SigningKey::load(&acme.secret_path, Password::None).unwrap();
    let comment =
        package::signature_comment(&manifest.id, &manifest.version, &qiao_directory::sha256_hex(&bytes));
    let signature = publisher.sign(&bytes, &comment).unwrap();
    let site = root.join("site");
    let mut directory = Directory::init(&site, "lab").unwrap();
    directory.add_publisher_key("acme", &acme.public_key).unwrap();
    directory.add(&bytes, &signature).unwrap();
    let signer = SigningKey::load(&dir_key.secret_path, Password::None).unwrap();
    directory.build(&signer, jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).unwrap();
    let addr = serve_folder(site.clone()).await;
    trust(state, &format!("http://{addr}/"), &dir_key.public_key);
    site.join("packages").join(package::file_name(&manifest.id, &manifest.version))
}

fn trust(state: &Path, url: &str, key: &str) {
    let config = format!("directories:\n  - name: lab\n    url: {url}\n    key: {key}\n");
    std::fs::write(state.join("config.yaml"), config).unwrap();
}

/// Serves the files of `root` over loopback HTTP.
async fn serve_folder(root: PathBuf) -> SocketAddr {
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let file = root.join(uri.path().trim_start_matches('/'));
        async move {
            match tokio::fs::read(&file).await {
                Ok(bytes) => (axum::http::StatusCode::OK, bytes),
                Err(_) => (axum::http::StatusCode::NOT_FOUND, b"not found".to_vec()),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Every file under `state/connectors`, and nothing left in staging.
fn installed_files(state: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let staging = state.join(".staging");
    if staging.is_dir() {
        let left: Vec<_> = std::fs::read_dir(&staging).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "left in staging: {left:?}");
    }
    let mut out = BTreeSet::new();
    walk(&state.join("connectors"), state, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_installed_from_a_directory_and_removed() {
    // No connector at start: the flow that needs http does not load.
    let h =
        harness_with(quick_limits(), 0, false, |sink| vec![("orders.yaml", webhook_flow(sink, 1, 2))]).await;
    assert!(h.server.invalid.iter().any(|(f, p)| f.ends_with("orders.yaml") && p.contains("\"http\"")));
    let package = publish_lab(h.dir.path(), &h.state, &h.runtime).await;
    let mut tokens = HashMap::new();
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        tokens.insert(role, qiao_server::create_token(&h.store, role.as_str(), role).await.unwrap().0);
    }
    let admin = tokens[&Role::Admin].clone();
    let install = |body: Value| {
        let (h, admin) = (&h, admin.clone());
        async move { h.api("POST", "/api/v1/connectors", Some(&admin), Some(body)).await }
    };

    for role in [Role::Viewer, Role::Operator] {
        let (status, err) =
            h.api("POST", "/api/v1/connectors", Some(&tokens[&role]), Some(json!({"id": "http"}))).await;
        assert_eq!((status, err["error"]["code"].as_str()), (403, Some("forbidden")), "{role:?}: {err}");
        let (status, _) = h.api("DELETE", "/api/v1/connectors/http", Some(&tokens[&role]), None).await;
        assert_eq!(status, 403, "{role:?}");
    }

    // Unknown connector, bad request.
    let (status, err) = install(json!({"id": "nope", "approve": []})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not-found")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("not in any configured directory"), "{err}");
    let (status, err) = install(json!({"id": "http", "version": "latest"})).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = install(json!({"id": "http", "approve": ["everything"]})).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("\"everything\""), "{err}");

    // Without approval: what it requests, and nothing installed.
    let (status, err) = install(json!({"id": "http"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("approval-required")), "{err}");
    let wanted = err["error"]["capabilities"].clone();
    assert_eq!(wanted, json!(["host:{config.base_url}", "private-network"]));
    let (status, err) = install(json!({"id": "http", "approve": ["host:{config.base_url}"]})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("approval-required")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("private-network"), "{err}");
    assert!(installed_files(&h.state).is_empty());

    // A tampered package: refused with the reason, nothing installed.
    let good = std::fs::read(&package).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&package, &bad).unwrap();
    let (status, err) = install(json!({"id": "http", "approve": wanted})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (502, Some("verification-failed")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("digest mismatch"), "{err}");
    assert!(installed_files(&h.state).is_empty());
    std::fs::write(&package, &good).unwrap();

    // Installed: loaded into the server, the flow that needed it starts.
    let (status, done) = install(json!({"id": "http", "version": "^0.1", "approve": wanted})).await;
    assert_eq!(status, 201, "{done}");
    assert_eq!((done["id"].as_str(), done["directory"].as_str()), (Some("http"), Some("lab")));
    assert_eq!(done["reload"]["started"], json!(["orders"]), "{done}");
    let version = done["version"].as_str().unwrap().to_string();
    let files = installed_files(&h.state);
    assert!(files.contains(&format!("connectors/http/{version}/connector.wasm")), "{files:?}");
    assert!(files.contains(&format!("connectors/http/{version}/install.json")), "{files:?}");
    let (_, list) = h.api("GET", "/api/v1/connectors", Some(&tokens[&Role::Viewer]), None).await;
    assert_eq!(list["connectors"][0]["id"], "http", "{list}");
    assert_eq!(list["connectors"][0]["directory"], "lab", "{list}");
    assert_eq!(h.hook(&json!({"id": "I-1"}), None).await.status(), 202);
    h.wait_sink(1).await;
    assert_eq!(h.sink_ids(), ["I-1"]);
    let (status, again) = install(json!({"id": "http", "approve": wanted})).await;
    assert_eq!((status, again["already_installed"].as_bool()), (200, Some(true)), "{again}");
    // The flows using it were re-resolved to the same version: none restarted.
    assert_eq!(
        (again["reload"]["unchanged"].clone(), again["reload"]["reloaded"].clone()),
        (json!(["orders"]), json!([]))
    );

    // In use: 409 naming the flow; removable once the flow is gone.
    let (status, err) = h.api("DELETE", "/api/v1/connectors/http", Some(&admin), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("conflict")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("orders"), "{err}");
    assert!(!installed_files(&h.state).is_empty(), "still installed");
    std::fs::remove_file(h.flows.join("orders.yaml")).unwrap();
    let (status, _) = h.api("POST", "/api/v1/reload", Some(&admin), None).await;
    assert_eq!(status, 200);
    let (status, err) = h.api("DELETE", "/api/v1/connectors/http?version=9.9.9", Some(&admin), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not-found")), "{err}");
    let (status, removed) =
        h.api("DELETE", &format!("/api/v1/connectors/http?version={version}"), Some(&admin), None).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["removed"], json!([version]));
    assert!(installed_files(&h.state).is_empty());
    let (_, list) = h.api("GET", "/api/v1/connectors", Some(&admin), None).await;
    assert_eq!(list["connectors"], json!([]));

    // The directory down: 503 with the directory's message.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let key = std::fs::read_to_string(h.dir.path().join("keys/dir.pub")).unwrap();
    trust(&h.state, &format!("http://{closed}/"), key.lines().nth(1).unwrap());
    let (status, err) = install(json!({"id": "http", "approve": wanted})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (503, Some("unavailable")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("unreachable"), "{err}");
    assert!(installed_files(&h.state).is_empty());

    // Every call was audited, refusals included.
    let (_, audit) = h.api("GET", "/api/v1/audit?limit=100", Some(&admin), None).await;
    let statuses: Vec<u64> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"].as_str().unwrap().starts_with("/api/v1/connectors"))
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    // 4 refused by role, 8 installs, 3 removals, 1 with the directory down.
    assert_eq!(statuses.len(), 4 + 8 + 3 + 1, "{audit}");
    for s in [403, 404, 400, 409, 502, 201, 200, 503] {
        assert!(statuses.contains(&s), "{s} audited: {statuses:?}");
    }
    h.server.shutdown().await;
}

/// The loaded http connector's version and sha256, as a lock file pins them.
async fn http_pin() -> (String, String) {
    let runtime = Runtime::new(RuntimeConfig { pooling: false, ..Default::default() }).unwrap();
    let connector = runtime.load_file(&http_wasm(), ConnectorPolicy::default()).await.unwrap();
    (connector.info().version.clone(), connector.sha256().to_string())
}

/// `qiao.lock` next to the served flows pins their connectors, as it does for `qiao run`: a
/// loaded component that is not the pinned one does not serve; a corrected lock file takes
/// effect at the next reload although no flow file changed; a lock that leaves a connector
/// out is refused and the running version keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_file_pins_the_connectors_of_served_flows() {
    let (version, sha256) = http_pin().await;
    let lock = |sha: &str| {
        json!({"version": 1, "connectors": {"http": {"version": version, "sha256": sha, "requests": ["*"]}}})
            .to_string()
    };
    let other = "0".repeat(64);
    let h = harness_with(quick_limits(), 0, true, |sink| {
        vec![("orders.yaml", webhook_flow(sink, 1, 2)), ("qiao.lock", lock(&other))]
    })
    .await;
    let problems = |invalid: &Value| {
        invalid
            .as_object()
            .and_then(|m| m.iter().find(|(file, _)| file.ends_with("orders.yaml")))
            .and_then(|(_, p)| p.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let at_start = json!(h.server.invalid.iter().cloned().collect::<BTreeMap<_, _>>());
    let refused = problems(&at_start);
    assert!(
        refused.contains("is not the component pinned in")
            && refused.contains("qiao.lock")
            && refused.contains(&other),
        "{refused}"
    );
    assert_eq!(h.hook(&json!({"id": "early"}), None).await.status(), 404, "an unpinned flow must not serve");

    let admin = qiao_server::create_token(&h.store, "admin", Role::Admin).await.unwrap().0;
    std::fs::write(h.flows.join("qiao.lock"), lock(&sha256)).unwrap();
    let (status, report) = h.api("POST", "/api/v1/reload", Some(&admin), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["started"], json!(["orders"]), "{report}");
    assert_eq!(h.hook(&json!({"id": "a"}), None).await.status(), 202);
    h.wait_sink(1).await;

    std::fs::write(h.flows.join("qiao.lock"), json!({"version": 1, "connectors": {}}).to_string()).unwrap();
    let (status, report) = h.api("POST", "/api/v1/reload", Some(&admin), None).await;
    assert_eq!(status, 200, "{report}");
    let refused = problems(&report["invalid"]);
    assert!(refused.contains("\"http\" is not pinned in") && refused.contains("keeps running"), "{refused}");
    assert_eq!(h.hook(&json!({"id": "b"}), None).await.status(), 202);
    h.wait_sink(2).await;

    // A lock file that does not read is the operator's mistake, not a server failure: 422
    // naming the file, and the running flow is left as it is.
    std::fs::write(h.flows.join("qiao.lock"), "{\"version\": 1, \"connectors\": ").unwrap();
    let (status, answer) = h.api("POST", "/api/v1/reload", Some(&admin), None).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "bad-lock-file", "{answer}");
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("qiao.lock")), "{answer}");
    assert_eq!(h.hook(&json!({"id": "c"}), None).await.status(), 202);
    h.wait_sink(3).await;
    assert_eq!(h.sink_ids(), ["a", "b", "c"]);
}
