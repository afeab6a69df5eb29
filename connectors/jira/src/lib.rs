//! The Jira Cloud connector (`jira`): REST v3 with an API token.
//!
//! Triggers `issues-updated` (enhanced JQL search with a minute-precision overlap and exact
//! de-duplication) and `worklogs-updated` (`/worklog/updated` + `/worklog/list`); actions
//! `create-issue`, `transition-issue`, `add-comment` and `add-worklog`, each made safe to retry
//! although Jira has no idempotency keys; and `verify-webhook` for signed admin webhooks.
//!
//! Built on `qiao-sdk` only; it compiles to a `wasm32-wasip2` component and natively, where
//! its unit tests run against `qiao_sdk::testing::MockHost`. `README.md` beside this crate
//! documents operations, config, error mapping and assumptions.

mod adf;
mod api;
mod comment;
mod config;
mod create;
mod describe;
mod idempotency;
mod issues;
mod log_work;
mod search;
mod time;
mod transition;
mod webhook;
mod worklogs;

use qiao_sdk::{
    ActionOutput, Batch, Connector, Info, InvokeRequest, PollRequest, Result, Value, WebhookRequest,
    WebhookResult,
};

pub use describe::{
    ADD_COMMENT, ADD_WORKLOG, CREATE_ISSUE, ID, ISSUES_UPDATED, TRANSITION_ISSUE, VERSION, WORKLOGS_UPDATED,
};

/// The Jira Cloud connector.
pub struct JiraConnector;

impl Connector for JiraConnector {
    fn describe() -> Info {
        describe::info()
    }

    fn validate_config(config: &Value) -> Result<()> {
        config::Config::load(config).map(|_| ())
    }

    fn poll(req: PollRequest<'_>) -> Result<Batch> {
        match req.op {
            ISSUES_UPDATED => issues::poll(req),
            WORKLOGS_UPDATED => worklogs::poll(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        match req.op {
            CREATE_ISSUE => create::invoke(req),
            TRANSITION_ISSUE => transition::invoke(req),
            ADD_COMMENT => comment::invoke(req),
            ADD_WORKLOG => log_work::invoke(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn verify_webhook(req: WebhookRequest<'_>) -> Result<WebhookResult> {
        webhook::verify(req)
    }
}

qiao_sdk::export_connector!(JiraConnector);

#[cfg(test)]
mod tests;
