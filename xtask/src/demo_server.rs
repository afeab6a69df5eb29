//! The demo's loopback systems: a project-management API serving worklogs (paged, with an
//! `updated_since` filter) and an ERP that books labor cost, deduplicating on the
//! idempotency key and printing what it booked.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Erp {
    booked: Arc<Mutex<HashSet<String>>>,
}

fn worklogs_data() -> Vec<Value> {
    let people = ["张三", "李四", "王五", "赵六"];
    let projects = ["PM", "OPS", "RD", "PM", "OPS", "PM", "RD", "PM", "FIN", "OPS", "PM", "RD"];
    let statuses = ["进行中", "已完成", "未开始"];
    (0..12)
        .map(|i| {
            json!({
                "id": format!("WL-{}", 1001 + i),
                "author": people[i % people.len()],
                "project": projects[i],
                "status": statuses[i % statuses.len()],
                "seconds": if i == 6 { 0 } else { 1800 * (i + 1) },
                "started": format!("2026-11-{:02}T01:30:00Z", 10 + i),
                "updated": format!("2026-11-24T08:{:02}:00Z", i * 3),
            })
        })
        .collect()
}

async fn worklogs(Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let size: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(5).max(1);
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let items: Vec<Value> = worklogs_data()
        .into_iter()
        .filter(|w| w["updated"].as_str().unwrap_or_default() >= since.as_str())
        .skip((page - 1) * size)
        .take(size)
        .collect();
    axum::Json(json!({"code": 0, "data": {"items": items}}))
}

async fn book(
    State(erp): State<Erp>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> impl IntoResponse {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let fresh = erp.booked.lock().map(|mut b| b.insert(key.clone())).unwrap_or(false);
    if fresh {
        println!(
            "  [demo ERP] booked {} {}: {} h, ¥{}, {} on {} ({})",
            body["source_id"].as_str().unwrap_or("?"),
            body["employee"].as_str().unwrap_or("?"),
            body["hours"],
            body["labor_cost"],
            body["cost_center"].as_str().unwrap_or("?"),
            body["work_date"].as_str().unwrap_or("?"),
            body["status"].as_str().unwrap_or("?"),
        );
    } else {
        println!("  [demo ERP] duplicate {key} ignored");
    }
    (StatusCode::CREATED, axum::Json(json!({"voucher": format!("V-{key}")})))
}

/// Starts both systems on one loopback port.
pub async fn start() -> Result<SocketAddr> {
    let router = axum::Router::new()
        .route("/pm/worklogs", get(worklogs))
        .route("/erp/labor-cost", post(book))
        .with_state(Erp::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("demo server stopped: {e}");
        }
    });
    Ok(addr)
}
