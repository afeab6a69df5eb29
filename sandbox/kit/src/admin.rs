//! The admin endpoint every fake serves under `/_sandbox`: arm faults, read the journal and
//! the system's state, move the clock.
//!
//! - `POST /_sandbox/faults` with a [`FaultPlan`] arms faults; `DELETE /_sandbox/faults` clears.
//! - `GET /_sandbox/journal` lists answered requests; `DELETE` forgets them.
//! - `GET /_sandbox/state` is the system's snapshot (what was written to it).
//! - `GET /_sandbox/credentials` are the demo credentials.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Ctx, FaultPlan, System};

/// Where the admin routes live on every fake.
pub const ADMIN_PREFIX: &str = "/_sandbox";

type AdminState = (Arc<dyn System>, Ctx);

/// The admin routes for `system`.
pub fn admin_routes(system: Arc<dyn System>, ctx: Ctx) -> Router {
    Router::new()
        .route("/faults", get(faults_help).post(arm).delete(clear))
        .route("/journal", get(journal).delete(clear_journal))
        .route("/state", get(state))
        .route("/credentials", get(credentials))
        .with_state((system, ctx))
}

async fn faults_help() -> Json<Value> {
    Json(json!({
        "post": "a fault plan",
        "example": {"throttle": 2, "fail": {"count": 1, "status": 503}, "slow": {"count": 1, "ms": 2000},
                    "reset": 1, "expire_tokens": true, "invalidate_csrf": true, "bad_signature": 1,
                    "partial": {"count": 1, "items": [0, 2]}, "advance_clock_ms": 7200000}
    }))
}

async fn arm(State((_, ctx)): State<AdminState>, body: String) -> (StatusCode, Json<Value>) {
    match serde_json::from_str::<FaultPlan>(&body) {
        Ok(plan) => {
            ctx.faults.arm(&plan);
            if plan.advance_clock_ms != 0 {
                ctx.clock.advance_ms(plan.advance_clock_ms);
            }
            (StatusCode::OK, Json(json!({"armed": plan})))
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": format!("bad fault plan: {e}")}))),
    }
}

async fn clear(State((_, ctx)): State<AdminState>) -> StatusCode {
    ctx.faults.clear();
    StatusCode::NO_CONTENT
}

async fn journal(State((_, ctx)): State<AdminState>) -> Json<Value> {
    Json(json!(ctx.journal.entries()))
}

async fn clear_journal(State((_, ctx)): State<AdminState>) -> StatusCode {
    ctx.journal.clear();
    StatusCode::NO_CONTENT
}

async fn state(State((system, _)): State<AdminState>) -> Json<Value> {
    Json(system.snapshot())
}

async fn credentials(State((system, _)): State<AdminState>) -> Json<Value> {
    let map: serde_json::Map<String, Value> =
        system.credentials().into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect();
    Json(Value::Object(map))
}
