//! The flows of the served folder and their tasks.
//!
//! Every `*.yaml`/`*.yml` file is loaded against the loaded connectors, pinned by the
//! folder's `qiao.lock` when it has one (read at each reload; a changed lock re-resolves every
//! flow); a file that does not load is reported (`invalid`) and skipped, the others run.
//! Changes go through one async lock, so a reload, an enable/disable and the shutdown never
//! interleave:
//!
//! - **start**: a webhook flow opens its intake and spawns its consumer; other flows spawn
//!   `FlowRunner::serve`. A disabled flow (kept in the store) is not started.
//! - **stop** (reload, disable, shutdown): every flow drains. A webhook flow's intake is
//!   closed first, so new deliveries get 503 and the consumer finishes what was accepted; a
//!   poll or schedule flow starts no new run and finishes the run in flight, and a manual
//!   flow finishes the runs started through the API. Whatever has not finished after the
//!   drain timeout is cancelled; nothing accepted is lost, its records stay pending in the
//!   store and resume when the flow next starts.
//! - **reload**: changed files are loaded; a file that no longer loads keeps its running
//!   version (and is reported); a changed flow's old version is stopped before the new one
//!   starts, so the two never process the same records; removed files stop their flows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use qiao_directory::lock::LockFile;
use qiao_engine::{FlowRunner, Intake, TriggerInput};
use qiao_flow::{FileSecrets, FlowPlan, TriggerPlan};
use qiao_store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::now_ms;
use crate::config::Limits;
use crate::connectors::{LoadedConnectors, Pinned};
use crate::error::ApiError;

mod tasks;

/// Where a flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FlowState {
    /// Its task is running.
    Running,
    /// An operator disabled it.
    Disabled,
    /// Stopped (shutting down, reloading, or it failed to start).
    Stopped,
    /// Its task failed (a store error, a step with `on_error: fail`, a panic); it restarts by
    /// itself after a backoff, and `error` says why it failed.
    Failed,
}

struct Entry {
    file: PathBuf,
    text: String,
    plan: FlowPlan,
    runner: Option<FlowRunner>,
    intake: Option<Intake>,
    state: FlowState,
    error: Option<String>,
    /// Times its task failed since the file was loaded (see `tasks.rs`, supervision).
    failures: u32,
    /// Why it failed last.
    last_failure: Option<String>,
    wake: Arc<Notify>,
    resume: Arc<Notify>,
    /// Cancelled to drain the flow's `serve` task (a fresh token per start).
    drain: CancellationToken,
    /// Runs started through the API ("run now" of a manual flow), drained with the flow.
    runs: TaskTracker,
}

impl Entry {
    fn new(file: PathBuf, text: String, plan: FlowPlan) -> Self {
        Entry {
            file,
            text,
            plan,
            runner: None,
            intake: None,
            state: FlowState::Stopped,
            error: None,
            failures: 0,
            last_failure: None,
            wake: Arc::new(Notify::new()),
            resume: Arc::new(Notify::new()),
            drain: CancellationToken::new(),
            runs: TaskTracker::new(),
        }
    }
}

/// A flow as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FlowView {
    pub id: String,
    pub file: String,
    pub description: Option<String>,
    pub trigger: &'static str,
    pub state: FlowState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times the flow's task failed (and restarted) since its file was loaded.
    #[serde(skip_serializing_if = "is_zero")]
    pub failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a webhook request finds for its flow.
pub(crate) enum Target {
    /// No such flow (or not a webhook flow).
    Missing,
    /// Disabled by an operator.
    Disabled,
    /// Starting, reloading or stopping.
    Unavailable,
    /// Failed; restarting after a backoff.
    Failed,
    /// Taking deliveries.
    Ready(Intake),
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    /// The lock file beside or above the flows folder does not read. Serving unpinned would
    /// not be safe, so the running flows stay as they are until it is mended.
    #[error("{0}")]
    Lock(String),
    /// The flows folder, the state store or the flow table failed.
    #[error("{0}")]
    Failed(String),
}

/// What a reload did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ReloadReport {
    pub started: Vec<String>,
    pub reloaded: Vec<String>,
    pub stopped: Vec<String>,
    pub unchanged: Vec<String>,
    pub invalid: BTreeMap<String, String>,
}

pub(crate) fn trigger_kind(plan: &FlowPlan) -> &'static str {
    match plan.trigger {
        TriggerPlan::Manual => "manual",
        TriggerPlan::Schedule { .. } => "schedule",
        TriggerPlan::Poll { .. } => "poll",
        TriggerPlan::Webhook { .. } => "webhook",
    }
}

/// The hook path of a webhook flow: `/hooks/<flow><path>`.
pub(crate) fn hook_path(plan: &FlowPlan) -> Option<String> {
    match &plan.trigger {
        TriggerPlan::Webhook { path, .. } => {
            Some(format!("/hooks/{}{}", plan.id, path.trim_end_matches('/')))
        }
        _ => None,
    }
}

/// (connector id, version) of every connection of a plan.
type ConnectorsUsed = Vec<(String, String)>;

fn connectors_of(plan: &FlowPlan) -> ConnectorsUsed {
    plan.connections.iter().map(|c| (c.connector.id.clone(), c.connector.version.clone())).collect()
}

/// The served flows.
pub(crate) struct Flows {
    dir: PathBuf,
    state_dir: PathBuf,
    store: Store,
    connectors: LoadedConnectors,
    limits: Limits,
    /// Shared with each flow's supervising task, which marks the flow failed and running again.
    table: Arc<RwLock<BTreeMap<String, Entry>>>,
    invalid: RwLock<BTreeMap<String, String>>,
    /// Serializes changes; holds each running flow's task.
    tasks: tokio::sync::Mutex<HashMap<String, JoinHandle<()>>>,
    /// The lock file (`qiao.lock`) the last reload resolved connectors with, if any.
    lock: std::sync::Mutex<Option<(PathBuf, LockFile)>>,
}

impl Flows {
    pub fn new(
        dir: PathBuf,
        state_dir: PathBuf,
        store: Store,
        connectors: LoadedConnectors,
        limits: Limits,
    ) -> Self {
        Flows {
            dir,
            state_dir,
            store,
            connectors,
            limits,
            table: Arc::new(RwLock::new(BTreeMap::new())),
            invalid: RwLock::new(BTreeMap::new()),
            tasks: tokio::sync::Mutex::new(HashMap::new()),
            lock: std::sync::Mutex::new(None),
        }
    }

    // ----- reading --------------------------------------------------------------------------

    fn view(id: &str, e: &Entry) -> FlowView {
        FlowView {
            id: id.to_string(),
            file: e.file.display().to_string(),
            description: e.plan.description.clone(),
            trigger: trigger_kind(&e.plan),
            state: e.state,
            hook: hook_path(&e.plan),
            queue_depth: e.intake.as_ref().map(Intake::depth),
            queue_capacity: e.intake.as_ref().map(Intake::capacity),
            error: e.error.clone(),
            failures: e.failures,
            last_failure: e.last_failure.clone(),
        }
    }

    /// Every flow, by id.
    pub fn list(&self) -> Vec<FlowView> {
        match self.table.read() {
            Ok(t) => t.iter().map(|(id, e)| Self::view(id, e)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// One flow.
    pub fn get(&self, id: &str) -> Option<FlowView> {
        self.table.read().ok()?.get(id).map(|e| Self::view(id, e))
    }

    /// Files that failed to load, with their problems.
    pub fn invalid(&self) -> BTreeMap<String, String> {
        self.invalid.read().map(|i| i.clone()).unwrap_or_default()
    }

    /// What a webhook delivery for `flow` finds.
    pub fn webhook(&self, flow: &str) -> Target {
        let Ok(table) = self.table.read() else { return Target::Unavailable };
        let Some(e) = table.get(flow) else { return Target::Missing };
        if !matches!(e.plan.trigger, TriggerPlan::Webhook { .. }) {
            return Target::Missing;
        }
        match (&e.intake, e.state) {
            (Some(intake), FlowState::Running) => Target::Ready(intake.clone()),
            (_, FlowState::Disabled) => Target::Disabled,
            (_, FlowState::Failed) => Target::Failed,
            _ => Target::Unavailable,
        }
    }

    /// The flows (running, disabled or stopped) that use connector `id` at `version`.
    pub fn users_of(&self, id: &str, version: &str) -> Vec<FlowView> {
        match self.table.read() {
            Ok(t) => t
                .iter()
                .filter(|(_, e)| connectors_of(&e.plan).iter().any(|(c, v)| c == id && v == version))
                .map(|(flow, e)| Self::view(flow, e))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Runs `remove` unless a loaded flow uses one of `versions` of connector `id` (409
    /// naming the flows). Holds the change lock throughout, so no reload can start a flow on
    /// a version while it is being removed.
    pub async fn remove_unused<T>(
        &self,
        id: &str,
        versions: &[String],
        remove: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let _changes = self.tasks.lock().await;
        let mut users = Vec::new();
        for version in versions {
            for flow in self.users_of(id, version) {
                let state =
                    serde_json::to_value(flow.state).ok().and_then(|v| v.as_str().map(str::to_string));
                users.push(format!("{} ({id} {version}, {})", flow.id, state.unwrap_or_default()));
            }
        }
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "connector {id} is used by flow{} {}; remove or change those flows first",
                if users.len() == 1 { "" } else { "s" },
                users.join(", ")
            )));
        }
        remove.await
    }

    /// (flow, queue depth) of every running webhook flow.
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        match self.table.read() {
            Ok(t) => {
                t.iter().filter_map(|(id, e)| e.intake.as_ref().map(|i| (id.clone(), i.depth()))).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    // ----- changing -------------------------------------------------------------------------

    /// Loads a flow file, its connectors pinned by `lock` when the folder has one.
    fn load(&self, file: &Path, text: &str, lock: Option<&(PathBuf, LockFile)>) -> Result<FlowPlan, String> {
        let secrets = FileSecrets::open(&self.state_dir).map_err(|e| e.to_string())?;
        let name = file.display().to_string();
        let loaded = match lock {
            Some((path, lock)) => {
                let pinned = Pinned { connectors: &self.connectors, path, lock };
                qiao_flow::load(&name, text, &pinned, &secrets)
            }
            None => qiao_flow::load(&name, text, &self.connectors, &secrets),
        };
        loaded.map_err(|d| d.to_string())
    }

    fn flow_files(&self) -> Result<Vec<PathBuf>, String> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot read flows folder {}: {e}", self.dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Loads the folder again and applies the differences (see the module docs).
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        self.reload_refreshing(None).await
    }

    /// [`Self::reload`], also re-resolving the unchanged flows that use connector `refresh`
    /// (after it was installed): those that now resolve to another version restart on it.
    pub async fn reload_refreshing(&self, refresh: Option<&str>) -> Result<ReloadReport, ReloadError> {
        let mut tasks = self.tasks.lock().await;
        let files = self.flow_files().map_err(ReloadError::Failed)?;
        // A lock file that does not read stops the reload: running unpinned is not safe.
        let lock = qiao_directory::lock::find(&self.dir).map_err(|e| ReloadError::Lock(e.to_string()))?;
        // A changed lock file re-resolves every flow; those whose connectors change restart.
        let relock = self.lock.lock().map(|applied| *applied != lock).unwrap_or(true);
        let disabled = self.store.disabled_flows().map_err(|e| ReloadError::Failed(e.to_string()))?;
        let mut report = ReloadReport::default();
        let current: Vec<(String, PathBuf, String, ConnectorsUsed)> = match self.table.read() {
            Ok(t) => t
                .iter()
                .map(|(id, e)| (id.clone(), e.file.clone(), e.text.clone(), connectors_of(&e.plan)))
                .collect(),
            Err(_) => return Err(ReloadError::Failed("flow table poisoned".into())),
        };
        let mut keep: BTreeSet<String> = BTreeSet::new();
        let mut changed: Vec<(String, PathBuf, String, FlowPlan)> = Vec::new();
        for file in files {
            let shown = file.display().to_string();
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    report.invalid.insert(shown, format!("cannot read: {e}"));
                    continue;
                }
            };
            let existing = current.iter().find(|(_, f, ..)| f == &file);
            let same_text = existing.is_some_and(|(_, _, old, _)| old == &text);
            let stale = relock
                || existing.is_some_and(|(.., used)| used.iter().any(|(c, _)| Some(c.as_str()) == refresh));
            if let Some((id, ..)) = existing
                && same_text
                && !stale
            {
                keep.insert(id.clone());
                report.unchanged.push(id.clone());
                continue;
            }
            let plan = match self.load(&file, &text, lock.as_ref()) {
                Ok(p) => p,
                Err(problems) => {
                    tracing::warn!(file = %shown, problems = %problems, "flow file does not load; skipped");
                    let note = match existing {
                        Some((id, ..)) => {
                            keep.insert(id.clone());
                            format!("{problems}\n(the previous version of flow {id:?} keeps running)")
                        }
                        None => problems,
                    };
                    report.invalid.insert(shown, note);
                    continue;
                }
            };
            if let Some((id, .., used)) = existing
                && same_text
                && &connectors_of(&plan) == used
            {
                // Re-resolved to the same connectors: nothing to restart.
                keep.insert(id.clone());
                report.unchanged.push(id.clone());
                continue;
            }
            let id = plan.id.to_string();
            if keep.contains(&id) || changed.iter().any(|(i, ..)| i == &id) {
                report.invalid.insert(shown, format!("flow id {id:?} is already used by another file"));
                continue;
            }
            keep.insert(id.clone());
            changed.push((id, file, text, plan));
        }
        // Stop flows whose file is gone (or now holds another flow).
        for (id, ..) in &current {
            if !keep.contains(id) {
                self.stop(id, &mut tasks).await;
                if let Ok(mut t) = self.table.write() {
                    t.remove(id);
                }
                tracing::info!(flow = %id, "flow removed");
                report.stopped.push(id.clone());
            }
        }
        for (id, file, text, plan) in changed {
            let existed = current.iter().any(|(i, ..)| i == &id);
            if existed {
                self.stop(&id, &mut tasks).await;
            }
            if let Ok(mut t) = self.table.write() {
                t.insert(id.clone(), Entry::new(file, text, plan));
            }
            if disabled.contains(&id) {
                self.mark(&id, FlowState::Disabled, None);
            } else {
                self.start(&id, &mut tasks).await;
            }
            if existed {
                tracing::info!(flow = %id, "flow reloaded");
                report.reloaded.push(id);
            } else {
                tracing::info!(flow = %id, "flow started");
                report.started.push(id);
            }
        }
        if let Ok(mut i) = self.invalid.write() {
            *i = report.invalid.clone();
        }
        if let Ok(mut applied) = self.lock.lock() {
            *applied = lock;
        }
        Ok(report)
    }

    /// Enables or disables a flow; kept in the store across restarts.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<FlowView, ApiError> {
        let mut tasks = self.tasks.lock().await;
        if self.get(id).is_none() {
            return Err(ApiError::not_found(format!("flow {id:?} not found")));
        }
        self.store.set_flow_disabled(id, !enabled, now_ms()).await?;
        let running = self.get(id).is_some_and(|v| v.state == FlowState::Running);
        // Enabling a failed flow restarts it now rather than after its backoff.
        if enabled && !running {
            self.start(id, &mut tasks).await;
        } else if !enabled {
            self.stop(id, &mut tasks).await;
            self.mark(id, FlowState::Disabled, None);
        }
        self.get(id).ok_or_else(|| ApiError::not_found(format!("flow {id:?} not found")))
    }

    /// Runs a flow now (see the `runFlow` route).
    pub async fn run_now(&self, id: &str, body: Option<Value>) -> Result<Value, ApiError> {
        let (plan_kind, intake, wake) = {
            let t = self.table.read().map_err(|_| ApiError::internal("flow table poisoned"))?;
            let Some(e) = t.get(id) else {
                return Err(ApiError::not_found(format!("flow {id:?} not found")));
            };
            if e.state != FlowState::Running {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "flow-not-running",
                    format!("flow {id:?} is {:?}", e.state).to_lowercase(),
                ));
            }
            if let (TriggerPlan::Manual, Some(runner)) = (&e.plan.trigger, &e.runner) {
                // Spawned under the table lock and tracked: a stop (which takes the lock
                // first) drains this run like a poll run, and no run starts after it.
                let (runner, flow) = (runner.clone(), id.to_string());
                let input = body.unwrap_or_else(|| json!({}));
                e.runs.spawn(async move {
                    if let Err(e) = runner.fire(TriggerInput::Manual { input }).await {
                        tracing::error!(flow, error = %e, "manual run failed");
                    }
                });
                return Ok(json!({"flow": id, "started": true}));
            }
            (trigger_kind(&e.plan), e.intake.clone(), e.wake.clone())
        };
        match plan_kind {
            "webhook" => {
                let Some(intake) = intake else {
                    return Err(ApiError::internal("webhook flow without intake"));
                };
                let permit = intake.try_reserve().map_err(|e| {
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "intake-full", e.to_string())
                        .retry_after(self.limits.retry_after_secs)
                })?;
                let record = qiao_engine::webhook_record(None, body.unwrap_or_else(|| json!({})));
                match permit.deliver(None, vec![record]).await? {
                    qiao_engine::Delivered::Accepted { batch } => {
                        Ok(json!({"flow": id, "accepted": true, "batch": batch}))
                    }
                    qiao_engine::Delivered::Duplicate => {
                        Ok(json!({"flow": id, "accepted": true, "duplicate": true}))
                    }
                }
            }
            "manual" => Err(ApiError::internal("manual flow without runner")),
            _ => {
                wake.notify_one();
                Ok(json!({"flow": id, "triggered": true}))
            }
        }
    }

    /// Tells a flow that a replayed dead letter is pending as `batch`.
    pub async fn replayed(&self, flow: &str, batch: u64) -> Result<bool, ApiError> {
        let (intake, resume) = {
            let t = self.table.read().map_err(|_| ApiError::internal("flow table poisoned"))?;
            match t.get(flow) {
                Some(e) if e.state == FlowState::Running => (e.intake.clone(), Some(e.resume.clone())),
                _ => (None, None),
            }
        };
        match (intake, resume) {
            (Some(intake), _) => Ok(intake.requeue(batch, std::time::Duration::from_secs(5)).await?),
            (None, Some(resume)) => {
                resume.notify_one();
                Ok(true)
            }
            (None, None) => Ok(false),
        }
    }
}
