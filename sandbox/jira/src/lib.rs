//! A protocol-faithful fake of Jira Cloud REST v3, for tests, the demo and benchmarks.
//!
//! It serves what the `jira` connector uses, as Jira Cloud does: Basic auth with an e-mail and an API
//! token; the enhanced search `GET`/`POST /rest/api/3/search/jql` with a JQL subset and opaque
//! `nextPageToken` paging (the removed `/rest/api/3/search` answers 410); issues (get, create
//! with field validation, transitions, comments in ADF); worklogs (add, list per issue,
//! `/worklog/updated` + `/worklog/list`); Jira's error bodies; the 429 answer with
//! `Retry-After` and `X-RateLimit-*` headers; and signed outgoing webhooks.
//!
//! The site and its API user live in [`SITE_TIME_ZONE`] (Asia/Shanghai, `+0800` all year):
//! JQL dates are read there with minute precision, datetimes are written with that offset.
//! Data is seeded from `qiao_sandbox_kit::seed` (projects ERP/MES/CRM/OPS, the shared people)
//! around the sandbox clock. Every write moves the issue's `updated` and is recorded for
//! [`qiao_sandbox_kit::System::snapshot`], duplicates included. It depends on the sandbox kit
//! only, never on the runtime.

mod api;
mod errors;
mod fake;
mod jql;
mod model;
mod seed;
mod time;
mod webhook;

pub use errors::{ISSUE_NOT_FOUND, SEARCH_REMOVED, UNAUTHORIZED_BODY};
pub use fake::{JiraFake, WORKLOG_PAGE_SIZE, WORKLOG_SETTLE_MS};
pub use model::{API_USER_ACCOUNT_ID, API_USER_NAME};
pub use seed::{FIRST_ISSUE_ID, FIRST_WORKLOG_ID, ISSUES_PER_PROJECT, WBS_FIELD, WORKLOGS};
pub use time::{SITE_TIME_ZONE, format_jira, format_jql_minute, parse_jira};
pub use webhook::{Delivery, sign};

/// The demo account's e-mail (Basic auth user name).
pub const DEMO_EMAIL: &str = "qiao.bot@qiao-demo.cn";
/// The demo account's API token (Basic auth password).
pub const DEMO_API_TOKEN: &str = "ATATT3xFfGF0qiaoDemoToken2024";

#[cfg(test)]
mod tests;
