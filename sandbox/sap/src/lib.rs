//! A protocol-faithful fake of SAP S/4HANA's OData APIs (v2 via SAP Gateway, v4 via RAP),
//! for tests, the demo and benchmarks.
//!
//! Served services (v2 under `/sap/opu/odata/sap/<SERVICE>/`, v4 under
//! `/sap/opu/odata4/sap/<binding>/srvd_a2x/sap/<definition>/<version>/`, same entity sets and
//! data in both): `API_ENTERPRISE_PROJECT_SRV;v=0002` (`A_EnterpriseProject`,
//! `A_EnterpriseProjectElement`), `API_COSTCENTER_SRV` (`A_CostCenter`),
//! `API_PURCHASEREQ_PROCESS_SRV` (`A_PurchaseRequisitionHeader`, `A_PurchaseRequisitionItem`)
//! and the read-only `API_MATERIAL_STOCK_SRV` (`A_MatlStkInAcctMod`).
//!
//! Modelled: Basic and OAuth client-credentials authentication (401 with an HTML body);
//! `sap-client`; v2 Atom/XML unless JSON is asked for; v2 verbose JSON (`d.results`,
//! `__metadata`, `__count`, `__next`, `/Date(ms)/`, decimals as strings) and v4 JSON
//! (`@odata.context`, `value`, `@odata.count`, `@odata.nextLink`); `$filter`, `$select`,
//! `$orderby`, `$top`, `$skip`, `$expand`, inline counts and server-driven paging with
//! `$skiptoken`; keys incl. composite ones; the CSRF handshake bound to the session cookie;
//! ETags with 428/412; creates with deep insert, updates, deletes and their validations; and
//! `$batch` with atomic changesets. Faults: the kit's generic ones plus `invalidate_csrf`,
//! `expire_tokens` (sessions, CSRF and bearer tokens) and `partial` (fails the named
//! changesets of the next `$batch`).
//!
//! Depends on the sandbox kit only; nothing in the runtime depends on it.

mod answer;
mod batch;
mod encode;
mod gateway;
mod model;
mod odata;
mod query;
mod seed;
mod store;
mod write;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use qiao_sandbox_kit::{Ctx, System, Tokens};
use serde_json::{Map, Value, json};

pub use answer::codes;
pub use seed::{FIRST_PR, PR_COUNT, WBS_COUNT};

/// The communication user (Basic authentication).
pub const USER: &str = "QIAO_COMM_USER";
/// Its password.
pub const PASSWORD: &str = "Welcome1!S4hana";
/// The SAP client (`sap-client`) the fake serves; requests naming another one are refused.
pub const CLIENT: &str = "100";
/// OAuth 2.0 client id (client-credentials grant at [`TOKEN_PATH`]).
pub const OAUTH_CLIENT_ID: &str = "QIAO_OAUTH_CLIENT";
/// OAuth 2.0 client secret.
pub const OAUTH_CLIENT_SECRET: &str = "s4-oauth-secret-2024";
/// The OAuth token endpoint.
pub const TOKEN_PATH: &str = "/sap/bc/sec/oauth2/token";
/// The session cookie set by a CSRF fetch (`SAP_SESSIONID_<SID>_<client>`).
pub const SESSION_COOKIE: &str = "SAP_SESSIONID_S4H_100";
/// Root of the v2 services.
pub const V2_ROOT: &str = "/sap/opu/odata/sap/";
/// Root of the v4 services.
pub const V4_ROOT: &str = "/sap/opu/odata4/sap/";
/// Server page size unless changed with [`SapFake::set_page_size`].
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The user named in lock errors.
pub(crate) const LOCKING_USER: &str = "CB9980000003";

/// v4 service paths below [`V4_ROOT`], by v2 service name.
pub const V4_SERVICES: &[(&str, &str)] = &[
    ("API_ENTERPRISE_PROJECT_SRV", "api_enterpriseproject/srvd_a2x/sap/enterpriseproject/0002"),
    ("API_COSTCENTER_SRV", "api_costcenter/srvd_a2x/sap/costcenter/0001"),
    ("API_PURCHASEREQ_PROCESS_SRV", "api_purchaserequisition_2/srvd_a2x/sap/purchaserequisition/0001"),
    ("API_MATERIAL_STOCK_SRV", "api_materialstock/srvd_a2x/sap/materialstock/0001"),
];

/// The SAP S/4HANA fake.
pub struct SapFake {
    ctx: Ctx,
    data: Mutex<store::Data>,
    sessions: Tokens,
    csrf: Tokens,
    bearer: Tokens,
    page_size: AtomicUsize,
    csrf_rejections: AtomicU64,
    batches: AtomicU64,
}

impl SapFake {
    /// A fake with the seeded data, on `ctx`.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(SapFake {
            sessions: Tokens::new("", ctx.clock.clone(), ctx.faults.clone()),
            csrf: Tokens::csrf("", ctx.clock.clone(), ctx.faults.clone()),
            bearer: Tokens::new("eyJ", ctx.clock.clone(), ctx.faults.clone()),
            data: Mutex::new(store::Data::seeded()),
            page_size: AtomicUsize::new(DEFAULT_PAGE_SIZE),
            csrf_rejections: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            ctx,
        })
    }

    fn lock(&self) -> MutexGuard<'_, store::Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the server page size (entities per response before `__next`/`@odata.nextLink`).
    pub fn set_page_size(&self, n: usize) {
        self.page_size.store(n.max(1), Ordering::Relaxed);
    }

    fn page_size(&self) -> usize {
        self.page_size.load(Ordering::Relaxed)
    }

    pub(crate) fn count_csrf_rejection(&self) {
        self.csrf_rejections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Every write so far, in order: `{"op": "create"|"update"|"delete", "entity_set", "key"
    /// (v2 key predicate), "fields" (as written, v4 value format), "version", "at_ms"}`.
    pub fn writes(&self) -> Vec<Value> {
        self.lock().writes.clone()
    }

    /// The entities of `entity_set` whose `field` equals `value`, in v4 JSON with
    /// `@odata.etag`.
    pub fn find(&self, entity_set: &str, field: &str, value: &str) -> Vec<Value> {
        let Some(set) = model::SERVICES.iter().find_map(|s| s.set(entity_set)) else {
            return Vec::new();
        };
        let shape = encode::Shape { v4: true, select: &[], root: "", namespace: "" };
        self.lock()
            .rows(entity_set)
            .iter()
            .filter(|e| e.fields.get(field).and_then(Value::as_str) == Some(value))
            .map(|e| encode::entity_json(set, e, &shape, &[]))
            .collect()
    }

    /// How many entities `entity_set` holds.
    pub fn count(&self, entity_set: &str) -> usize {
        self.lock().rows(entity_set).len()
    }

    /// Changes string fields of the entities of `entity_set` whose `field` equals `value`, as
    /// a user in the SAP GUI would: the change time (and ETag) moves to now. Returns how many
    /// entities changed. Not recorded in [`SapFake::writes`] (it is not an API write).
    pub fn change(&self, entity_set: &str, field: &str, value: &str, changes: &[(&str, &str)]) -> usize {
        let Some(set) = model::SERVICES.iter().find_map(|s| s.set(entity_set)) else {
            return 0;
        };
        let now = self.ctx.clock.now_ms();
        let mut data = self.lock();
        let Some(rows) = data.sets.get_mut(entity_set) else {
            return 0;
        };
        let mut n = 0;
        for e in rows.iter_mut().filter(|e| e.fields.get(field).and_then(Value::as_str) == Some(value)) {
            for (k, v) in changes {
                e.fields.insert((*k).into(), json!(v));
            }
            e.changed_ms = now.max(e.changed_ms + 1);
            if let Some(f) = set.changed {
                e.fields.insert(f.into(), json!(e.changed_ms));
            }
            n += 1;
        }
        n
    }

    /// `403 x-csrf-token: Required` answers so far.
    pub fn csrf_rejections(&self) -> u64 {
        self.csrf_rejections.load(Ordering::Relaxed)
    }

    /// CSRF tokens issued so far.
    pub fn csrf_tokens_issued(&self) -> usize {
        self.csrf.issued_count()
    }

    /// OAuth access tokens issued so far.
    pub fn oauth_tokens_issued(&self) -> usize {
        self.bearer.issued_count()
    }

    /// `$batch` requests answered so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

async fn handle(State(fake): State<Arc<SapFake>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 32 << 20).await.unwrap_or_default();
    if parts.uri.path() == TOKEN_PATH && parts.method == axum::http::Method::POST {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect();
        return fake.oauth_token(&headers, &body).into_response();
    }
    fake.serve(&parts, &body).into_response()
}

impl System for SapFake {
    fn name(&self) -> &'static str {
        "sap"
    }

    fn routes(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// SAP API Management (Apigee-based) in front of S/4HANA: 429 with `Retry-After`.
    fn throttled(&self) -> Response {
        answer::Answer::json(
            429,
            &json!({"fault": {"faultstring": "Rate limit quota violation. Quota limit exceeded. Identifier : _default",
                "detail": {"errorcode": "policies.ratelimit.QuotaViolation"}}}),
        )
        .with("retry-after", "2")
        .into_response()
    }

    /// The v2 Gateway error body with `status` (503 also carries `Retry-After`).
    fn server_error(&self, status: StatusCode) -> Response {
        let message = match status.as_u16() {
            503 => "Service unavailable: the ABAP application server is overloaded",
            502 | 504 => "Error while calling the backend system",
            _ => "An exception was raised in the backend",
        };
        let ctx = answer::ErrorContext { v4: false, json: true, service: None };
        let mut a = answer::error(status.as_u16(), codes::TECHNICAL, message, "", ctx);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            a = a.with("retry-after", "1");
        }
        a.into_response()
    }

    fn snapshot(&self) -> Value {
        let data = self.lock();
        let counts: Map<String, Value> =
            data.sets.iter().map(|(k, v)| ((*k).to_string(), json!(v.len()))).collect();
        json!({
            "writes": data.writes,
            "counts": counts,
            "csrf_rejections": self.csrf_rejections(),
            "batches": self.batches(),
        })
    }

    fn credentials(&self) -> Vec<(&'static str, String)> {
        vec![
            ("user", USER.into()),
            ("password", PASSWORD.into()),
            ("sap-client", CLIENT.into()),
            ("oauth client_id", OAUTH_CLIENT_ID.into()),
            ("oauth client_secret", OAUTH_CLIENT_SECRET.into()),
        ]
    }
}

#[cfg(test)]
mod tests;
