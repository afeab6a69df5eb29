//! The generic HTTP connector, built to Wasm, through the host against a loopback server:
//! real requests, pagination, cursors and error classification.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use qiao_contract::{ConnectorError, ErrorClass};
use qiao_host::{CallError, Connection, ConnectorPolicy};
use serde_json::{Value, json};

use crate::common::{load, loopback_policy, runtime, serve};

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Seen {
    fn push(&self, v: Value) {
        self.requests.lock().unwrap().push(v);
    }
    fn all(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// 5 items, updated_at 2026-01-0{1..5}; `page`/`per_page` paging; `updated_since` filters `>=`.
async fn items(State(seen): State<Seen>, Query(q): Query<HashMap<String, String>>) -> Json {
    seen.push(json!({"path": "/items", "query": q}));
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(100);
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let all: Vec<Value> = (1..=5)
        .map(|i| json!({"id": i, "name": format!("项目-{i}"), "updated_at": format!("2026-01-0{i}T00:00:00Z")}))
        .filter(|r| r["updated_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    let chunk: Vec<Value> = all.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    axum::Json(json!({"data": {"items": chunk}}))
}

type Json = axum::Json<Value>;

/// Cursor-style paging: `next` holds a relative link until the last page.
async fn linked(Query(q): Query<HashMap<String, String>>) -> Json {
    let page: usize = q.get("p").and_then(|p| p.parse().ok()).unwrap_or(0);
    let next = if page < 2 { json!(format!("/linked?p={}", page + 1)) } else { Value::Null };
    axum::Json(json!({"results": [{"key": format!("L{page}")}], "next": next}))
}

async fn orders(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    seen.push(json!({
        "path": "/orders", "query": q, "body": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        "authorization": h("authorization"), "idempotency": h("idempotency-key"), "tenant": h("x-tenant"),
        "content_type": h("content-type"),
    }));
    (StatusCode::CREATED, [("x-order", "SO-1")], axum::Json(json!({"id": 42, "状态": "已创建"})))
        .into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, axum::Json(json!({"errorMessages": ["simulated"], "errors": {}}))).into_response();
    if code == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert("retry-after", "3".parse().unwrap());
    }
    resp
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "late"
}

async fn server() -> Result<(SocketAddr, Seen)> {
    let seen = Seen::default();
    let router = axum::Router::new()
        .route("/items", get(items))
        .route("/linked", get(linked))
        .route("/orders/{region}", post(orders))
        .route("/status/{code}", get(status).post(status))
        .route("/slow", get(slow))
        .route("/html", get(|| async { "<html>maintenance</html>" }))
        .with_state(seen.clone());
    Ok((serve(router).await?, seen))
}

/// A listener that accepts connections and drops them without answering.
async fn resetting_server() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    Ok(addr)
}

async fn connect(config: Value) -> Result<Connection> {
    let rt = runtime()?;
    let c = load(&rt, "http", loopback_policy()).await?;
    Ok(c.connect("http-test", &config)?)
}

fn connector_error(e: CallError) -> ConnectorError {
    match e {
        CallError::Connector(e) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

#[tokio::test]
async fn request_sends_method_url_query_headers_body_and_idempotency_key() -> Result<()> {
    let (addr, seen) = server().await?;
    let conn = connect(json!({
        "base_url": format!("http://{addr}"),
        "headers": {"X-Tenant": "acme"},
        "auth": {"type": "bearer", "token": "s3cret"}
    }))
    .await?;
    let out = conn
        .invoke(
            "request",
            &json!({"method": "POST", "url": "/orders/{region}", "vars": {"region": "华东"},
                    "query": {"dry": false, "tag": ["a b", "c&d"]}, "json": {"sku": "A-1", "qty": 2}}),
            "flow/rec-1/book",
        )
        .await?;
    assert_eq!(out.output["status"], 201);
    assert_eq!(out.output["body"], json!({"id": 42, "状态": "已创建"}));
    assert_eq!(out.output["headers"]["x-order"], "SO-1");
    let req = &seen.all()[0];
    assert_eq!(req["body"], json!({"sku": "A-1", "qty": 2}));
    assert_eq!(req["authorization"], "Bearer s3cret");
    assert_eq!(req["idempotency"], "flow/rec-1/book");
    assert_eq!(req["tenant"], "acme");
    assert_eq!(req["content_type"], "application/json");
    assert_eq!(req["query"]["dry"], "false");
    Ok(())
}

#[tokio::test]
async fn request_errors_are_classified() -> Result<()> {
    let (addr, _) = server().await?;
    let conn = connect(json!({"base_url": format!("http://{addr}"), "timeout_ms": 300})).await?;
    let cases: &[(&str, ErrorClass)] = &[
        ("/status/400", ErrorClass::InvalidInput),
        ("/status/401", ErrorClass::Unauthorized),
        ("/status/403", ErrorClass::Permanent),
        ("/status/404", ErrorClass::InvalidInput),
        ("/status/422", ErrorClass::InvalidInput),
        ("/status/429", ErrorClass::RateLimited),
        ("/status/500", ErrorClass::Transient),
        ("/status/503", ErrorClass::Transient),
        ("/status/501", ErrorClass::Permanent),
        ("/slow", ErrorClass::Transient),
        ("/html", ErrorClass::Transient),
    ];
    for (path, class) in cases {
        let err = connector_error(conn.invoke("request", &json!({"url": path}), "k").await.unwrap_err());
        assert_eq!(err.class(), *class, "{path}: {err}");
        if *path == "/status/429" {
            assert_eq!(err.retry_after_ms(), Some(3000), "{err}");
        }
        if let Some(code) = path.strip_prefix("/status/") {
            assert!(err.message().contains(code), "message names the status: {err}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn connection_reset_is_transient() -> Result<()> {
    let addr = resetting_server().await?;
    let conn = connect(json!({"base_url": format!("http://{addr}")})).await?;
    let err = connector_error(conn.invoke("request", &json!({"url": "/x"}), "k").await.unwrap_err());
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    Ok(())
}

#[tokio::test]
async fn request_to_a_host_outside_base_url_is_denied() -> Result<()> {
    let (addr, _) = server().await?;
    let (other, _) = server().await?;
    let conn = connect(json!({"base_url": format!("http://{addr}")})).await?;
    let err =
        conn.invoke("request", &json!({"url": format!("http://{other}/status/200")}), "k").await.unwrap_err();
    assert!(matches!(err, CallError::HostDenied { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn poll_pages_and_advances_since_only_after_the_last_page() -> Result<()> {
    let (addr, seen) = server().await?;
    let conn = connect(json!({"base_url": format!("http://{addr}")})).await?;
    let params = json!({
        "url": "/items", "records_path": "data.items", "id_field": "id",
        "pagination": {"type": "page", "param": "page", "size_param": "per_page", "size": 2},
        "since": {"field": "updated_at", "param": "updated_since", "initial": "2026-01-02T00:00:00Z"}
    });
    let mut cursor: Option<String> = None;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let batch = conn.poll("poll-json", &params, cursor.as_deref()).await?;
        pages += 1;
        ids.extend(batch.records.iter().map(|r| r.id.clone().unwrap_or_default()));
        cursor = batch.next_cursor.or(cursor);
        if !batch.more {
            break;
        }
        let c: Value = serde_json::from_str(cursor.as_deref().unwrap_or("{}"))?;
        assert_eq!(c["since"], "2026-01-02T00:00:00Z", "watermark holds while paging: {c}");
    }
    assert_eq!(ids, ["2", "3", "4", "5"]);
    // Four records in pages of two: the third page comes back empty and ends the round.
    assert_eq!(pages, 3);
    let c: Value = serde_json::from_str(cursor.as_deref().unwrap_or("{}"))?;
    assert_eq!(c["since"], "2026-01-05T00:00:00Z");
    // The next round asks only for what changed since the watermark.
    let next = conn.poll("poll-json", &params, cursor.as_deref()).await?;
    assert_eq!(next.records.len(), 1);
    let queries: Vec<Value> = seen.all().into_iter().map(|r| r["query"].clone()).collect();
    assert_eq!(queries[0]["updated_since"], "2026-01-02T00:00:00Z");
    assert_eq!(queries[1]["page"], "2");
    assert_eq!(queries[2]["page"], "3");
    assert_eq!(queries[3]["updated_since"], "2026-01-05T00:00:00Z");
    assert_eq!(queries[3]["page"], "1");
    Ok(())
}

#[tokio::test]
async fn poll_follows_next_links() -> Result<()> {
    let (addr, _) = server().await?;
    let conn = connect(json!({"base_url": format!("http://{addr}")})).await?;
    let params = json!({"url": "/linked", "records_path": "results", "id_field": "key",
                        "pagination": {"type": "next-link", "path": "next"}});
    let mut cursor = None;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let batch = conn.poll("poll-json", &params, cursor.as_deref()).await?;
        ids.extend(batch.records.into_iter().filter_map(|r| r.id));
        cursor = batch.next_cursor;
        if !batch.more {
            break;
        }
    }
    assert_eq!(ids, ["L0", "L1", "L2"]);
    Ok(())
}

#[tokio::test]
async fn bad_config_is_a_config_error() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "http", ConnectorPolicy::default()).await?;
    let err = c.validate_config(&json!({"base_url": "ftp://x"})).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(err.to_string().contains("base_url"), "{err}");
    let err = c.validate_config(&json!({"auth": {"type": "bearer"}})).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(err.to_string().contains("auth") && err.to_string().contains("token"), "{err}");
    c.validate_config(
        &json!({"base_url": "https://erp.example.com/api", "auth": {"type": "bearer", "token": "t"}}),
    )
    .await?;
    Ok(())
}
