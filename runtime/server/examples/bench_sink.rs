//! The loopback sink of the webhook load benchmark (`runtime/server/bench/webhook-load.sh`):
//! counts `POST /sink` requests; `GET /count` answers the count.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::routing::{get, post};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9901".into());
    let count = Arc::new(AtomicU64::new(0));
    let router = axum::Router::new()
        .route(
            "/sink",
            post(|State(c): State<Arc<AtomicU64>>| async move {
                c.fetch_add(1, Ordering::Relaxed);
                axum::Json(serde_json::json!({"ok": true}))
            }),
        )
        .route(
            "/count",
            get(|State(c): State<Arc<AtomicU64>>| async move { c.load(Ordering::Relaxed).to_string() }),
        )
        .with_state(count);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, router).await
}
