//! Starting and stopping the server: the router, background tasks, graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use qiao_store::Store;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::now_ms;
use crate::config::{Limits, ServeConfig};
use crate::connectors::LoadedConnectors;
use crate::error::ApiError;
use crate::flows::Flows;
use crate::install::Installs;
use crate::{api, auth, metrics as m, webhook};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The flows could not be loaded: the folder, its lock file or the state store failed.
    #[error("{0}")]
    Flows(String),
}

pub(crate) struct AppState {
    pub store: Store,
    pub flows: Flows,
    pub connectors: LoadedConnectors,
    pub limits: Limits,
    pub ready: AtomicBool,
    /// `$QIAO_HOME`: trusted directories, the installed set, the staging folder.
    pub state_dir: PathBuf,
    pub installs: Installs,
    pub webhook_meters: webhook::RequestMeters,
}

/// A started server.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Flows that failed to load at start: file → problems.
    pub invalid: Vec<(String, String)>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// A token that stops the server gracefully when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops gracefully (see [`start`]) and waits until it has.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server has stopped (after its stop token is cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts serving: loads every flow of the folder (invalid ones are reported and skipped),
/// starts them, and listens. Cancelling the stop token stops gracefully: readiness goes
/// down, the listener stops accepting and in-flight requests finish, webhook intakes close
/// and drain, and whatever is unfinished at the drain timeout stays in the store for the
/// next start.
pub async fn start(
    config: ServeConfig,
    store: Store,
    connectors: LoadedConnectors,
) -> Result<RunningServer, ServerError> {
    let _ = m::handle();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::Listen { addr: config.listen, message: e.to_string() })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Listen { addr: config.listen, message: e.to_string() })?;
    let flows = Flows::new(
        config.flows_dir.clone(),
        config.state_dir.clone(),
        store.clone(),
        connectors.clone(),
        config.limits.clone(),
    );
    let app = Arc::new(AppState {
        store,
        flows,
        connectors,
        limits: config.limits.clone(),
        ready: AtomicBool::new(false),
        state_dir: config.state_dir.clone(),
        installs: Installs::default(),
        webhook_meters: Default::default(),
    });
    let report = app.flows.reload().await.map_err(|e| ServerError::Flows(e.to_string()))?;
    for (file, problems) in &report.invalid {
        tracing::warn!(file = %file, problems = %problems, "flow skipped");
    }
    tracing::info!(%addr, flows = report.started.len(), invalid = report.invalid.len(), "serving");
    app.ready.store(true, Ordering::Relaxed);

    let stop = CancellationToken::new();
    let router = router(app.clone());
    let background = spawn_background(app.clone(), stop.clone());
    let task = {
        let stop = stop.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let http_stopped = CancellationToken::new();
            let serve = axum::serve(listener, router).with_graceful_shutdown({
                let stop = stop.clone();
                let app = app.clone();
                async move {
                    stop.cancelled().await;
                    app.ready.store(false, Ordering::Relaxed);
                    tracing::info!("stopping: no new connections; draining flows");
                }
            });
            let drain = async {
                stop.cancelled().await;
                app.flows.shutdown().await;
                http_stopped.cancel();
            };
            let serve = async {
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "http server failed");
                }
            };
            // Flows drain while in-flight requests finish; requests still open when the flows
            // are done are cut off (their deliveries were either stored or not answered).
            tokio::join!(drain, async {
                tokio::select! {
                    _ = serve => {}
                    _ = async {
                        http_stopped.cancelled().await;
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    } => {}
                }
            });
            background.abort();
            tracing::info!("stopped");
        })
    };
    Ok(RunningServer { addr, invalid: report.invalid.into_iter().collect(), stop, task })
}

fn spawn_background(app: Arc<AppState>, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let reload_every = app.limits.reload_every;
        let mut reload = tokio::time::interval(reload_every.unwrap_or(std::time::Duration::from_secs(3600)));
        let mut prune = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = reload.tick(), if reload_every.is_some() => {
                    match app.flows.reload().await {
                        Ok(r) if !(r.started.is_empty() && r.reloaded.is_empty() && r.stopped.is_empty()) => {
                            tracing::info!(started = ?r.started, reloaded = ?r.reloaded, stopped = ?r.stopped, invalid = r.invalid.len(), "flows reloaded");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "flow reload failed"),
                    }
                }
                _ = prune.tick() => {
                    let before = now_ms().saturating_sub(app.limits.delivery_retention.as_millis() as u64);
                    if let Err(e) = app.store.prune_deliveries(before).await {
                        tracing::warn!(error = %e, "pruning webhook delivery ids failed");
                    }
                }
            }
        }
    })
}

fn router(app: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/flows", get(api::list_flows))
        .route("/api/v1/flows/{flow}", get(api::get_flow))
        .route("/api/v1/flows/{flow}/enable", post(api::enable_flow))
        .route("/api/v1/flows/{flow}/disable", post(api::disable_flow))
        .route("/api/v1/flows/{flow}/run", post(api::run_flow))
        .route("/api/v1/reload", post(api::reload))
        .route("/api/v1/runs", get(api::list_runs))
        .route("/api/v1/runs/{id}", get(api::get_run))
        .route("/api/v1/dead-letters", get(api::list_dead_letters))
        .route("/api/v1/dead-letters/{id}", get(api::get_dead_letter).merge(delete(api::drop_dead_letter)))
        .route("/api/v1/dead-letters/{id}/replay", post(api::replay_dead_letter))
        .route("/api/v1/connectors", get(api::list_connectors).merge(post(api::install_connector)))
        .route("/api/v1/connectors/{id}", delete(api::remove_connector))
        .route("/api/v1/tokens", get(api::list_tokens).merge(post(api::create_token_route)))
        .route("/api/v1/tokens/{id}", delete(api::revoke_token))
        .route("/api/v1/audit", get(api::list_audit))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::authorize));
    let hooks = Router::new()
        .route("/hooks/{flow}", post(webhook::hook_root))
        .route("/hooks/{flow}/{*rest}", post(webhook::hook_path));
    Router::new()
        .merge(api)
        .merge(hooks)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(m::render))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(app.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(app.clone(), timeout))
        .with_state(app)
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    if app.ready.load(Ordering::Relaxed) {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "starting or stopping")
            .retry_after(app.limits.retry_after_secs)
            .into_response()
    }
}

/// Bounds every request's time, body read included.
async fn timeout(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(app.limits.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long")
            .retry_after(app.limits.retry_after_secs)
            .into_response(),
    }
}
