//! Fake of Kingdee K/3 Cloud (金蝶云星空) WebAPI for tests, the demo and benchmarks.
//!
//! Serves `POST /k3cloud/<ServiceFullName>.common.kdsvc` the way `../shared/specs/kingdee.md`
//! describes it: session logins (`LoginBySign`, `LoginByAppSecret`, `ValidateUser`) issuing the
//! `kdservice-sessionid` cookie, the stateless header-signature mode (`X-Kd-Signature`,
//! `X-Api-Signature`), and the DynamicFormService calls `Save`, `BatchSave`, `Submit`, `Audit`,
//! `Delete`, `View` and `ExecuteBillQuery` over seeded base data and bills, with K/3's envelopes
//! (`Result.ResponseStatus`, `MsgCode`, `[[...]]`-wrapped query errors).
//!
//! Built on `qiao-sandbox-kit` (clock, faults, journal, tokens, seed data); it must not depend
//! on the qiao runtime.

mod body;
mod forms;
mod query;
mod service;
mod sign;
mod store;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use qiao_sandbox_kit::{Ctx, System, Tokens};
use serde_json::{Value, json};

pub use forms::{
    COST_CENTER, EMPLOYEE, LABOR_COST, MATERIAL, REQUISITION, SEEDED_LABOR_COST, SEEDED_REQUISITIONS,
};
pub use query::MAX_LIMIT;
pub use sign::{api_secret, api_string_to_sign, app_data, kd_hmac, kd_signature, login_sign};

/// The demo data center (账套) id.
pub const ACCT_ID: &str = "62f0a1b2c3d4e5";
/// The demo integration user.
pub const USER_NAME: &str = "demo";
/// The demo third-party app id (`<clientId>_<32-char code>`).
pub const APP_ID: &str = "123456_abcdEFGHijklMNOPqrstUVWXyz012345";
/// The demo app secret.
pub const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";
/// The demo user's password (for `ValidateUser`).
pub const PASSWORD: &str = "Kd@2052demo";
/// The demo organisation number (header-signature mode).
pub const ORG_NUM: &str = "100";
/// How long a session lives, in seconds (K/3 sessions die on idle; 20 minutes, IIS's default
/// session timeout, is assumed).
pub const SESSION_TTL_SECS: i64 = 20 * 60;
/// How far a `LoginBySign` timestamp may be from the real clock, in seconds.
pub const SIGN_TOLERANCE_SECS: i64 = 15 * 60;
/// The path prefix of every service.
pub const PATH_PREFIX: &str = "/k3cloud/";

/// The fake K/3 Cloud server.
pub struct KingdeeFake {
    ctx: Ctx,
    sessions: Tokens,
    store: Mutex<store::Store>,
    lost_replies: AtomicU32,
}

impl KingdeeFake {
    /// A seeded fake on `ctx`.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        let sessions = Tokens::new("", ctx.clock.clone(), ctx.faults.clone());
        Arc::new(KingdeeFake {
            ctx,
            sessions,
            store: Mutex::new(store::Store::seeded()),
            lost_replies: AtomicU32::new(0),
        })
    }

    fn store(&self) -> MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rows of `form_id` now (bills with their entries, or base data).
    pub fn bills(&self, form_id: &str) -> Vec<Value> {
        self.store().rows(form_id).to_vec()
    }

    /// Every bill created through `Save`/`BatchSave` since start, in order:
    /// `{"FormId", "Id", "Number"}`. A caller that saved twice shows up twice.
    pub fn created(&self) -> Vec<Value> {
        self.store().created.clone()
    }

    /// How many sessions were issued (successful logins).
    pub fn logins(&self) -> usize {
        self.sessions.issued_count()
    }

    /// A fake-specific fault: the next `n` `Save`/`BatchSave` calls are committed and then
    /// answered with a gateway timeout (HTTP 504), as when a proxy gives up on a slow save.
    pub fn lose_save_replies(&self, n: u32) {
        self.lost_replies.fetch_add(n, Ordering::SeqCst);
    }

    fn take_lost_reply(&self) -> bool {
        self.lost_replies.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    /// The current time as K/3 writes it (`2025-05-01T10:00:00`, China time).
    fn now_text(&self) -> String {
        let ts =
            jiff::Timestamp::from_millisecond(self.ctx.clock.now_ms()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        ts.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

impl System for KingdeeFake {
    fn name(&self) -> &'static str {
        "kingdee"
    }

    fn routes(self: Arc<Self>) -> Router {
        Router::new().fallback(service::dispatch).with_state(self)
    }

    /// K/3 answers a call over its limit with HTTP 200 and `MsgCode` 14.
    fn throttled(&self) -> Response {
        service::json_response(
            StatusCode::OK,
            &service::failure(14, None, "接口调用次数超过限制，请稍后再试"),
            &[],
        )
    }

    /// A gateway page (IIS / the load balancer in front of K/3), not JSON.
    fn server_error(&self, status: StatusCode) -> Response {
        let page = format!(
            "<html><head><title>{} - 服务器错误</title></head><body><h1>{}</h1><p>The service is unavailable.</p></body></html>",
            status.as_u16(),
            status.as_u16()
        );
        Response::builder()
            .status(status)
            .header("content-type", "text/html; charset=utf-8")
            .body(Body::from(page))
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Value {
        let store = self.store();
        let bills: serde_json::Map<String, Value> = store
            .all()
            .iter()
            .filter(|(form, _)| forms::form(form).is_some_and(|f| f.bill.is_some()))
            .map(|(form, rows)| ((*form).to_string(), Value::Array(rows.clone())))
            .collect();
        json!({"bills": bills, "created": store.created, "logins": self.sessions.issued_count()})
    }

    fn credentials(&self) -> Vec<(&'static str, String)> {
        vec![
            ("acct_id", ACCT_ID.into()),
            ("user_name", USER_NAME.into()),
            ("app_id", APP_ID.into()),
            ("app_secret", APP_SECRET.into()),
            ("password", PASSWORD.into()),
            ("lcid", "2052".into()),
        ]
    }
}
