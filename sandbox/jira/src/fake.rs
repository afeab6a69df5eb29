//! [`JiraFake`]: the state, the kit's [`System`] answers and the inspection helpers tests use.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use qiao_sandbox_kit::seed::PROJECTS;
use qiao_sandbox_kit::{Ctx, System};
use serde_json::{Value, json};

use crate::errors::body;
use crate::model::{Issue, Worklog};
use crate::time::{SITE_TIME_ZONE, format_jira, format_reset};
use crate::{DEMO_API_TOKEN, DEMO_EMAIL, seed};

/// Page size of `GET /rest/api/3/worklog/updated` on Jira Cloud.
pub const WORKLOG_PAGE_SIZE: usize = 1000;

/// How long a worklog update stays out of `/worklog/updated`: Jira does not list worklogs
/// updated during the minute before the request.
pub const WORKLOG_SETTLE_MS: i64 = 60_000;

/// What the API wrote, kept for tests to assert on (including duplicates).
#[derive(Default, Debug)]
pub(crate) struct Writes {
    pub created_issues: Vec<Value>,
    pub comments: Vec<Value>,
    pub worklogs: Vec<Value>,
    pub transitions: Vec<Value>,
    pub webhooks: Vec<Value>,
}

/// The mutable state.
#[derive(Debug)]
pub(crate) struct State {
    pub issues: Vec<Issue>,
    pub worklogs: Vec<Worklog>,
    pub next_issue_id: u64,
    pub next_worklog_id: u64,
    pub next_comment_id: u64,
    pub writes: Writes,
}

impl State {
    pub fn issue(&self, key_or_id: &str) -> Option<&Issue> {
        self.issues.iter().find(|i| i.key().eq_ignore_ascii_case(key_or_id) || i.id.to_string() == key_or_id)
    }

    pub fn issue_mut(&mut self, key_or_id: &str) -> Option<&mut Issue> {
        self.issues
            .iter_mut()
            .find(|i| i.key().eq_ignore_ascii_case(key_or_id) || i.id.to_string() == key_or_id)
    }

    pub fn worklogs_of(&self, issue_id: u64) -> Vec<&Worklog> {
        self.worklogs.iter().filter(|w| w.issue_id == issue_id).collect()
    }

    pub fn next_number(&self, project: usize) -> u32 {
        self.issues.iter().filter(|i| i.project == project).map(|i| i.number).max().unwrap_or(0) + 1
    }
}

/// A fake Jira Cloud site (REST v3) behind Basic auth with [`DEMO_EMAIL`] and [`DEMO_API_TOKEN`],
/// its site and API user in [`SITE_TIME_ZONE`].
pub struct JiraFake {
    pub(crate) ctx: Ctx,
    state: Mutex<State>,
    worklog_page_size: AtomicUsize,
    retry_after_secs: AtomicU64,
    worklog_settle_ms: AtomicI64,
    webhook_seq: AtomicU64,
}

impl JiraFake {
    /// A fake seeded around the sandbox clock's current time.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        let (issues, worklogs) = seed::generate(ctx.clock.now_ms());
        let state = State {
            next_issue_id: issues.iter().map(|i| i.id).max().unwrap_or(seed::FIRST_ISSUE_ID) + 1,
            next_worklog_id: worklogs.iter().map(|w| w.id).max().unwrap_or(seed::FIRST_WORKLOG_ID) + 1,
            next_comment_id: 50_001,
            issues,
            worklogs,
            writes: Writes::default(),
        };
        Arc::new(JiraFake {
            ctx,
            state: Mutex::new(state),
            worklog_page_size: AtomicUsize::new(WORKLOG_PAGE_SIZE),
            retry_after_secs: AtomicU64::new(1),
            worklog_settle_ms: AtomicI64::new(WORKLOG_SETTLE_MS),
            webhook_seq: AtomicU64::new(0),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.ctx.clock.now_ms()
    }

    /// The sandbox context (clock, faults, journal).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Sets the page size of `/rest/api/3/worklog/updated` (1000 on Jira Cloud), so tests page.
    pub fn set_worklog_page_size(&self, size: usize) {
        self.worklog_page_size.store(size.max(1), Ordering::Relaxed);
    }

    pub(crate) fn worklog_page_size(&self) -> usize {
        self.worklog_page_size.load(Ordering::Relaxed)
    }

    /// Sets how long worklog updates stay out of `/worklog/updated` (60 s on Jira Cloud).
    pub fn set_worklog_settle_ms(&self, ms: i64) {
        self.worklog_settle_ms.store(ms.max(0), Ordering::Relaxed);
    }

    pub(crate) fn worklog_settle_ms(&self) -> i64 {
        self.worklog_settle_ms.load(Ordering::Relaxed)
    }

    /// Sets the `Retry-After` seconds of the throttle answer (1 unless set; Jira may send 0).
    pub fn set_retry_after_secs(&self, secs: u64) {
        self.retry_after_secs.store(secs, Ordering::Relaxed);
    }

    pub(crate) fn next_webhook_seq(&self) -> u64 {
        self.webhook_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// How many issues the site holds.
    pub fn issue_count(&self) -> usize {
        self.state().issues.len()
    }

    /// How many worklogs the site holds.
    pub fn worklog_count(&self) -> usize {
        self.state().worklogs.len()
    }

    /// Every issue key with its `updated` time in milliseconds, in key order.
    pub fn issue_updates(&self) -> Vec<(String, i64)> {
        self.state().issues.iter().map(|i| (i.key(), i.updated_ms)).collect()
    }

    /// Every worklog id with its update time in milliseconds.
    pub fn worklog_updates(&self) -> Vec<(u64, i64)> {
        self.state().worklogs.iter().map(|w| (w.id, w.updated_ms)).collect()
    }

    /// The issue `key` as `GET /rest/api/3/issue/{key}` renders it (all fields).
    pub fn issue(&self, key: &str) -> Option<Value> {
        let s = self.state();
        let issue = s.issue(key)?;
        let worklogs = s.worklogs_of(issue.id);
        Some(issue.json("http://jira.sandbox", &worklogs, &crate::model::FieldSelection::All(vec![])))
    }

    /// The status name of issue `key`.
    pub fn status_of(&self, key: &str) -> Option<String> {
        self.state().issue(key).map(|i| i.status_name().to_string())
    }

    /// Marks issue `key` as updated now (as if someone edited it in the browser), setting its
    /// summary when given. Returns the new `updated` in milliseconds.
    pub fn touch_issue(&self, key: &str, summary: Option<&str>) -> Option<i64> {
        let now = self.now_ms();
        let mut s = self.state();
        let issue = s.issue_mut(key)?;
        if let Some(summary) = summary {
            issue.summary = summary.to_string();
        }
        issue.updated_ms = now;
        Some(now)
    }

    /// Sets `updated` of issue `key` to exactly `ms` (tests building same-minute collisions).
    pub fn set_issue_updated(&self, key: &str, ms: i64) -> bool {
        let mut s = self.state();
        s.issue_mut(key).map(|i| i.updated_ms = ms).is_some()
    }

    /// Issues created through the API, in order: `{key, id, project, summary, labels, created}`.
    pub fn created_issues(&self) -> Vec<Value> {
        self.state().writes.created_issues.clone()
    }

    /// Comments added through the API, in order: `{id, issue, text, properties}`.
    pub fn added_comments(&self) -> Vec<Value> {
        self.state().writes.comments.clone()
    }

    /// Worklogs added through the API, in order: `{id, issue, timeSpentSeconds, started, text}`.
    pub fn added_worklogs(&self) -> Vec<Value> {
        self.state().writes.worklogs.clone()
    }

    /// Transitions made through the API, in order: `{issue, from, to, at}`.
    pub fn transitions(&self) -> Vec<Value> {
        self.state().writes.transitions.clone()
    }

    /// Webhook deliveries made by [`JiraFake::push_webhook`]: `{identifier, url, event, signed, status}`.
    pub fn webhook_deliveries(&self) -> Vec<Value> {
        self.state().writes.webhooks.clone()
    }
}

impl System for JiraFake {
    fn name(&self) -> &'static str {
        "jira"
    }

    fn routes(self: Arc<Self>) -> Router {
        crate::api::router(self)
    }

    fn throttled(&self) -> Response {
        let secs = self.retry_after_secs.load(Ordering::Relaxed);
        let reset = format_reset(self.now_ms() + (secs.max(1) as i64) * 1000 + 60_000);
        let mut resp = body(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"errorMessages": ["The request has been rate-limited. Retry after the time in the Retry-After header."], "errors": {}}),
        );
        let h = resp.headers_mut();
        let pairs = [
            ("retry-after", secs.to_string()),
            ("x-ratelimit-limit", "350".to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", reset),
            ("x-ratelimit-nearlimit", "true".to_string()),
            ("ratelimit-reason", "jira-burst-based".to_string()),
        ];
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "Service Unavailable: Jira is temporarily unavailable. Please try again later."
            }
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
                "The request could not be completed. Please try again."
            }
            _ => "Internal server error",
        };
        let mut resp = body(status, &json!({"errorMessages": [message], "errors": {}}));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }

    fn snapshot(&self) -> Value {
        let s = self.state();
        let per_project: serde_json::Map<String, Value> = PROJECTS
            .iter()
            .enumerate()
            .map(|(p, proj)| {
                (proj.jira_key.to_string(), json!(s.issues.iter().filter(|i| i.project == p).count()))
            })
            .collect();
        json!({
            "site_time_zone": SITE_TIME_ZONE,
            "now": format_jira(self.now_ms()),
            "issues": s.issues.len(),
            "issues_per_project": per_project,
            "worklogs": s.worklogs.len(),
            "created_issues": s.writes.created_issues,
            "comments": s.writes.comments,
            "worklogs_added": s.writes.worklogs,
            "transitions": s.writes.transitions,
            "webhooks": s.writes.webhooks,
        })
    }

    fn credentials(&self) -> Vec<(&'static str, String)> {
        vec![
            ("email", DEMO_EMAIL.to_string()),
            ("api_token", DEMO_API_TOKEN.to_string()),
            ("time_zone", SITE_TIME_ZONE.to_string()),
        ]
    }
}
