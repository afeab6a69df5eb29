//! The admin API handlers (`/api/v1/…`). Authorization happens before them (`auth.rs`);
//! each route's role and documentation live in `routes.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qiao_store::{DeadLetter, RunStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{Caller, Role, create_token, now_ms};
use crate::error::ApiError;
use crate::flows::ReloadError;
use crate::install;

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

fn limit(q: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be a positive integer, got {s:?}"))),
    }
}

fn id_param(s: &str, what: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::bad_request(format!("{what} id must be a number, got {s:?}")))
}

fn json_body(body: &Bytes) -> Result<Option<Value>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

pub(crate) async fn openapi() -> Response {
    axum::Json(crate::routes::openapi()).into_response()
}

pub(crate) async fn list_flows(State(app): State<Arc<AppState>>) -> ApiResult {
    let invalid: Vec<Value> = app
        .flows
        .invalid()
        .into_iter()
        .map(|(file, problems)| json!({"file": file, "problems": problems}))
        .collect();
    ok(json!({"flows": app.flows.list(), "invalid": invalid}))
}

pub(crate) async fn get_flow(State(app): State<Arc<AppState>>, Path(flow): Path<String>) -> ApiResult {
    let view = app.flows.get(&flow).ok_or_else(|| ApiError::not_found(format!("flow {flow:?} not found")))?;
    let runs: Vec<Value> = app
        .store
        .list_runs(Some(&flow), 10)?
        .into_iter()
        .map(|(id, run)| json!({"id": id, "run": run}))
        .collect();
    let dead_letters = app.store.list_dead_letters(Some(&flow))?.len();
    ok(json!({"flow": view, "runs": runs, "dead_letters": dead_letters}))
}

/// Runs a change of the flows in a task of its own: a client that gives up (or the request
/// timeout) does not cut a drain or a reload short.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.map_err(|e| ApiError::internal(format!("the task failed: {e}")))?
}

pub(crate) async fn enable_flow(State(app): State<Arc<AppState>>, Path(flow): Path<String>) -> ApiResult {
    let view = detached(async move { app.flows.set_enabled(&flow, true).await }).await?;
    ok(json!({"flow": view}))
}

pub(crate) async fn disable_flow(State(app): State<Arc<AppState>>, Path(flow): Path<String>) -> ApiResult {
    let view = detached(async move { app.flows.set_enabled(&flow, false).await }).await?;
    ok(json!({"flow": view}))
}

pub(crate) async fn run_flow(
    State(app): State<Arc<AppState>>,
    Path(flow): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = json_body(&body)?;
    let answer = app.flows.run_now(&flow, body).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

pub(crate) async fn reload(State(app): State<Arc<AppState>>) -> ApiResult {
    let report = detached(async move {
        app.flows.reload().await.map_err(|e| match e {
            // The operator's file is wrong, not the server: say which and leave the flows be.
            ReloadError::Lock(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-lock-file", m),
            ReloadError::Failed(m) => ApiError::internal(m),
        })
    })
    .await?;
    ok(json!(report))
}

fn parse_status(s: &str) -> Result<RunStatus, ApiError> {
    serde_json::from_value(json!(s)).map_err(|_| {
        ApiError::bad_request(format!(
            "unknown status {s:?}: use running, succeeded, completed-with-failures or failed"
        ))
    })
}

pub(crate) async fn list_runs(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let n = limit(&q, 50, 1000)?;
    let status = q.get("status").map(|s| parse_status(s)).transpose()?;
    let trigger = q.get("trigger");
    let runs: Vec<Value> = app
        .store
        .list_runs(q.get("flow").map(String::as_str), usize::MAX)?
        .into_iter()
        .filter(|(_, r)| status.is_none_or(|s| r.status == s) && trigger.is_none_or(|t| &r.trigger == t))
        .take(n)
        .map(|(id, run)| json!({"id": id, "run": run}))
        .collect();
    ok(json!({"runs": runs}))
}

pub(crate) async fn get_run(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let n = limit(&q, 1000, 100_000)?;
    let (run, records) = app.store.get_run(id_param(&id, "run")?)?;
    let total = records.len();
    let records: Vec<_> = records.into_iter().take(n).collect();
    ok(json!({"id": id_param(&id, "run")?, "run": run, "records_total": total, "records": records}))
}

fn dead_letter_summary(id: u64, dl: &DeadLetter) -> Value {
    json!({"id": id, "flow": dl.flow, "run_id": dl.run_id, "key": dl.state.key, "step": dl.step,
           "class": dl.class, "error": dl.error, "attempts": dl.attempts, "at_ms": dl.at_ms})
}

pub(crate) async fn list_dead_letters(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let n = limit(&q, 100, 10_000)?;
    let list: Vec<Value> = app
        .store
        .list_dead_letters(q.get("flow").map(String::as_str))?
        .iter()
        .take(n)
        .map(|(id, dl)| dead_letter_summary(*id, dl))
        .collect();
    ok(json!({"dead_letters": list}))
}

pub(crate) async fn get_dead_letter(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    let id = id_param(&id, "dead letter")?;
    let dl = app.store.get_dead_letter(id)?;
    let mut v = dead_letter_summary(id, &dl);
    v["record"] = dl.state.data.clone();
    v["next_step"] = json!(dl.state.next_step);
    ok(v)
}

pub(crate) async fn replay_dead_letter(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "dead letter")?;
    let (flow, batch) = app.store.replay_dead_letter(id, now_ms()).await?;
    let queued = app.flows.replayed(&flow, batch).await?;
    ok(json!({"flow": flow, "batch": batch, "queued": queued,
              "note": if queued { "the record runs now" } else { "the record runs when the flow next starts" }}))
}

pub(crate) async fn drop_dead_letter(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    app.store.drop_dead_letter(id_param(&id, "dead letter")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list_connectors(State(app): State<Arc<AppState>>) -> ApiResult {
    // Reads the install receipts: off the async workers.
    let list = tokio::task::spawn_blocking(move || connector_list(&app))
        .await
        .map_err(|e| ApiError::internal(format!("the listing task failed: {e}")))?;
    ok(json!({"connectors": list}))
}

fn connector_list(app: &AppState) -> Vec<Value> {
    let mut list: Vec<Value> = app
        .connectors
        .installed()
        .iter()
        .map(|c| {
            let info = c.connector.info();
            json!({
                "id": info.id, "version": info.version, "title": info.title,
                "file": c.path.as_ref().map(|p| p.display().to_string()),
                "directory": c.path.as_deref().and_then(install::installed_from),
                "sha256": c.connector.sha256(), "webhook": info.webhook,
                "operations": info.operations.iter().map(|o| json!({"name": o.name, "kind": o.kind})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let key = |c: &Value| {
        (
            c["id"].as_str().map(str::to_string),
            c["version"].as_str().and_then(|v| semver::Version::parse(v).ok()),
        )
    };
    list.sort_by_key(key);
    list
}

pub(crate) async fn install_connector(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let req: install::InstallRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"id\": ..., \"version\": ... (optional), \"approve\": [...]}}: {e}"
        ))
    })?;
    let (status, answer) = install::install(app, req).await?;
    tracing::info!(by = %caller.name, id = %answer["id"], version = %answer["version"], "connector install");
    Ok((status, axum::Json(answer)).into_response())
}

pub(crate) async fn remove_connector(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let force = match q.get("force").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("force must be true or false, got {other:?}")));
        }
    };
    let answer = install::remove(app, id, q.get("version").cloned(), force).await?;
    tracing::info!(by = %caller.name, id = %answer["id"], removed = %answer["removed"], "connector removal");
    ok(answer)
}

pub(crate) async fn list_tokens(State(app): State<Arc<AppState>>) -> ApiResult {
    ok(json!({"tokens": app.store.list_tokens()?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
}

pub(crate) async fn create_token_route(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let req: NewToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"name\": ..., \"role\": ...}}: {e}")))?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::bad_request(format!("unknown role {:?}: use viewer, operator or admin", req.role))
    })?;
    let (token, record) = create_token(&app.store, &req.name, role).await?;
    tracing::info!(by = %caller.name, name = %record.name, role = role.as_str(), "token created");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"token": token, "id": record.id, "name": record.name, "role": record.role,
        "note": "the token is shown only now; it is stored hashed"})),
    )
        .into_response())
}

pub(crate) async fn revoke_token(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    app.store.revoke_token(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list_audit(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    ok(json!({"audit": app.store.list_audit(limit(&q, 100, 10_000)?)?}))
}
