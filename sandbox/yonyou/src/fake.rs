//! [`YonyouFake`]: the routes, the token handshake and the business APIs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use qiao_sandbox_kit::{Ctx, System, TokenCheck, Tokens};
use serde_json::{Value, json};

use crate::data;
use crate::envelope::{self, code};
use crate::query::ListQuery;
use crate::sign;
use crate::vouchers::{Ledger, Rejection, Saved, validate};

/// The demo self-built app's key.
pub const APP_KEY: &str = "8d3f1c0a6b2e4f5a9c7d1e2f3a4b5c6d";
/// The demo self-built app's secret.
pub const APP_SECRET: &str = "5e0c2b7a9f1d4e3c8b6a0f2e1d3c5b7a9e8f0d1c";
/// The demo tenant.
pub const TENANT_ID: &str = "qiaodemo01";
/// Where the business APIs live on the fake (also served at the root, like `api.diwork.com`).
pub const GATEWAY_PREFIX: &str = "/iuap-api-gateway";
/// Where the token API lives on the fake (also served at the root).
pub const AUTH_PREFIX: &str = "/iuap-api-auth";
/// Lifetime of an access token, in seconds.
pub const TOKEN_TTL_SECS: i64 = 7200;
/// Allowed difference between a token request's `timestamp` and the fake's clock.
pub const TIMESTAMP_SKEW_MS: i64 = 5 * 60 * 1000;

/// The legacy token path.
pub const TOKEN_PATH: &str = "/open-auth/selfAppAuth/getAccessToken";
/// The token path documented since 2023-07 (longer tokens that need URL encoding).
pub const TOKEN_PATH_V1: &str = "/open-auth/selfAppAuth/base/v1/getAccessToken";

/// Business API paths.
pub mod paths {
    /// Projects, paged.
    pub const PROJECT_LIST: &str = "/yonbip/digitalModel/project/list";
    /// One project by `id`.
    pub const PROJECT_DETAIL: &str = "/yonbip/digitalModel/project/detail";
    /// Staff, paged.
    pub const STAFF_LIST: &str = "/yonbip/digitalModel/staff/list";
    /// Materials, paged.
    pub const MATERIAL_LIST: &str = "/yonbip/digitalModel/product/listproductbycondition";
    /// Departments: `data` is an array.
    pub const DEPT_TREE: &str = "/yonbip/digitalModel/orgunit/querytree";
    /// Payment applications (付款申请单), paged: the expense side of the budget flow.
    pub const PAYMENT_APPLY_LIST: &str = "/yonbip/EFI/paymentApply/list";
    /// Account books: the legacy `{success, data}` answer.
    pub const ACCBOOK: &str = "/yonbip/fi/fipub/basedoc/querybd/accbook";
    /// One voucher.
    pub const VOUCHER_ADD: &str = "/yonbip/fi/ficloud/openapi/voucher/addVoucher";
    /// Many vouchers in one call, with partial failure (assumed path).
    pub const VOUCHER_BATCH_ADD: &str = "/yonbip/fi/ficloud/openapi/voucher/batchAddVoucher";
    /// Vouchers, paged with `pager`.
    pub const VOUCHER_QUERY: &str = "/yonbip/fi/ficloud/openapi/voucher/queryVouchers";
}

#[derive(Debug, Default)]
struct State_ {
    payment_applies: Vec<Value>,
    ledger: Ledger,
    revoked: HashSet<String>,
    batch_calls: usize,
}

/// The Yonyou YonBIP open-API fake.
#[derive(Debug)]
pub struct YonyouFake {
    ctx: Ctx,
    tokens: Tokens,
    tokens_v1: Tokens,
    departments: Vec<Value>,
    staff: Vec<Value>,
    projects: Vec<Value>,
    materials: Vec<Value>,
    state: Mutex<State_>,
}

type Q = Query<HashMap<String, String>>;
type S = State<Arc<YonyouFake>>;

impl YonyouFake {
    /// A fake seeded from `qiao_sandbox_kit::seed`.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        let tokens = Tokens::new("", ctx.clock.clone(), ctx.faults.clone());
        // v1 tokens carry `+`, `/` and `=`: a client that does not URL-encode them fails.
        let tokens_v1 = Tokens::new("bip+v1/", ctx.clock.clone(), ctx.faults.clone());
        let state = State_ { payment_applies: data::payment_applies(), ..State_::default() };
        Arc::new(YonyouFake {
            ctx,
            tokens,
            tokens_v1,
            departments: data::departments(),
            staff: data::staff(),
            projects: data::projects(),
            materials: data::materials(),
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `yyyy-MM-dd HH:mm:ss` in China time, from the sandbox clock.
    pub fn now_stamp(&self) -> String {
        jiff::Timestamp::from_millisecond(self.ctx.clock.now_ms())
            .map(|t| {
                t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// Every voucher saved so far, oldest first.
    pub fn vouchers(&self) -> Vec<Value> {
        self.state().ledger.vouchers().to_vec()
    }

    /// How many saves were answered from an earlier `resubmitCheckKey` (deduplicated).
    pub fn replayed_saves(&self) -> usize {
        self.state().ledger.replayed()
    }

    /// How many batch save calls were answered.
    pub fn batch_calls(&self) -> usize {
        self.state().batch_calls
    }

    /// How many access tokens were issued (both token paths).
    pub fn tokens_issued(&self) -> usize {
        self.tokens.issued_count() + self.tokens_v1.issued_count()
    }

    /// The payment applications as they are now.
    pub fn payment_applies(&self) -> Vec<Value> {
        self.state().payment_applies.clone()
    }

    /// Marks the payment application with `code` as changed now (new `pubts`, amount + 100)
    /// so a changed-since query finds it again. Returns whether it exists.
    pub fn touch_payment_apply(&self, code: &str) -> bool {
        let stamp = self.now_stamp();
        let mut state = self.state();
        let Some(row) = state.payment_applies.iter_mut().find(|r| r["code"] == code) else {
            return false;
        };
        row["pubts"] = json!(stamp);
        row["oriSum"] = json!(row["oriSum"].as_f64().unwrap_or(0.0) + 100.0);
        true
    }

    /// Withdraws the app's grant for the API at `path`: calls answer `310037`.
    pub fn revoke_api(&self, path: &str) {
        self.state().revoked.insert(path.to_string());
    }

    /// Checks the `access_token` and the app's grant for `path`.
    fn rejection(&self, q: &HashMap<String, String>, path: &str) -> Option<Response> {
        let token = q.get("access_token").map(String::as_str).unwrap_or_default();
        let check = match self.tokens.check(token) {
            TokenCheck::Unknown => self.tokens_v1.check(token),
            other => other,
        };
        if !matches!(check, TokenCheck::Valid(_)) {
            return Some(envelope::token_invalid());
        }
        if self.state().revoked.contains(path) {
            return Some(envelope::error(code::API_NOT_AUTHORIZED, format!("应用未授权访问该API：{path}")));
        }
        None
    }

    fn access_token(&self, q: &HashMap<String, String>, v1: bool) -> Response {
        let (Some(app_key), Some(timestamp), Some(signature)) =
            (q.get("appKey"), q.get("timestamp"), q.get("signature"))
        else {
            return envelope::error(
                code::SIGNATURE_INVALID,
                "缺少参数：appKey、timestamp、signature均为必填",
            );
        };
        if app_key != APP_KEY {
            return envelope::error(code::APP_UNKNOWN, format!("应用不存在或已停用：appKey[{app_key}]"));
        }
        let Ok(ts) = timestamp.parse::<i64>() else {
            return envelope::error(code::TIMESTAMP_INVALID, "timestamp格式错误，应为毫秒时间戳");
        };
        if (ts - self.ctx.clock.now_ms()).abs() > TIMESTAMP_SKEW_MS {
            return envelope::error(code::TIMESTAMP_INVALID, "timestamp已过期，请校准服务器时间");
        }
        let expected = sign::sign(app_key, APP_SECRET, timestamp);
        if self.ctx.faults.take_bad_signature() || !sign::same(signature, &expected) {
            return envelope::error(code::SIGNATURE_INVALID, "签名校验失败，请检查appSecret及签名算法");
        }
        let tokens = if v1 { &self.tokens_v1 } else { &self.tokens };
        let token = tokens.issue(TOKEN_TTL_SECS, json!({"appKey": app_key, "tenantId": TENANT_ID}));
        envelope::auth_ok(json!({"access_token": token, "expire": TOKEN_TTL_SECS}))
    }

    fn project_codes(&self) -> Vec<String> {
        self.projects.iter().filter_map(|p| p["code"].as_str().map(str::to_string)).collect()
    }

    fn save_one(&self, doc: &Value) -> Result<Saved, Rejection> {
        validate(doc, &self.project_codes())?;
        let stamp = self.now_stamp();
        self.state().ledger.save(doc, &stamp)
    }

    fn batch_save(&self, body: &Value) -> Response {
        let Some(items) = body["data"].as_array().filter(|a| !a.is_empty()) else {
            return envelope::error(code::LOGIC_ERROR, "参数data必须是非空数组");
        };
        let forced: Vec<usize> = self.ctx.faults.take_partial().unwrap_or_default();
        let (mut messages, mut infos) = (Vec::new(), Vec::new());
        for (i, doc) in items.iter().enumerate() {
            let outcome = if forced.contains(&i) {
                Err(Rejection {
                    code: code::LOGIC_ERROR,
                    message: "单据保存异常：凭证号生成失败（沙箱注入）".into(),
                })
            } else {
                self.save_one(doc)
            };
            match outcome {
                Ok(saved) => infos.push(saved.voucher().clone()),
                Err(r) => {
                    let key = doc["resubmitCheckKey"].as_str().filter(|k| !k.is_empty());
                    let tag = key.map(|k| format!("[{k}]")).unwrap_or_default();
                    messages.push(json!(format!("第{}条{tag}：{}", i + 1, r.message)));
                }
            }
        }
        self.state().batch_calls += 1;
        envelope::ok(json!({
            "count": items.len(), "sucessCount": infos.len(), "failCount": messages.len(),
            "messages": messages, "infos": infos,
        }))
    }
}

/// Parses a JSON request body; the error is the message of a `999` answer.
fn json_body(body: &str) -> Result<Value, String> {
    serde_json::from_str(body).map_err(|e| format!("请求体不是合法的JSON：{e}"))
}

fn list_of(rows: &[Value], body: &str) -> Response {
    let body = match json_body(body) {
        Ok(b) => b,
        Err(m) => return envelope::error(code::LOGIC_ERROR, m),
    };
    match ListQuery::parse(&body) {
        Ok(q) => envelope::ok(q.answer(rows)),
        Err(m) => envelope::error(code::LOGIC_ERROR, m),
    }
}

macro_rules! guard {
    ($fake:expr, $q:expr, $path:expr) => {
        if let Some(r) = $fake.rejection(&$q, $path) {
            return r;
        }
    };
}

async fn token(State(f): S, Query(q): Q) -> Response {
    f.access_token(&q, false)
}

async fn token_v1(State(f): S, Query(q): Q) -> Response {
    f.access_token(&q, true)
}

async fn gateway_address(headers: HeaderMap, Query(q): Q) -> Response {
    if q.get("tenantId").map(String::as_str) != Some(TENANT_ID) {
        return envelope::error(code::TENANT_UNKNOWN, "租户不存在");
    }
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    envelope::auth_ok(json!({
        "gatewayUrl": format!("http://{host}{GATEWAY_PREFIX}"),
        "tokenUrl": format!("http://{host}{AUTH_PREFIX}"),
    }))
}

async fn project_list(State(f): S, Query(q): Q, body: String) -> Response {
    guard!(f, q, paths::PROJECT_LIST);
    list_of(&f.projects, &body)
}

async fn project_detail(State(f): S, Query(q): Q) -> Response {
    guard!(f, q, paths::PROJECT_DETAIL);
    let id = q.get("id").map(String::as_str).unwrap_or_default();
    match f.projects.iter().find(|p| p["id"].as_u64().is_some_and(|n| id.parse() == Ok(n))) {
        Some(p) => envelope::ok(p.clone()),
        None => envelope::error(code::LOGIC_ERROR, format!("项目不存在：id[{id}]")),
    }
}

async fn staff_list(State(f): S, Query(q): Q, body: String) -> Response {
    guard!(f, q, paths::STAFF_LIST);
    list_of(&f.staff, &body)
}

async fn material_list(State(f): S, Query(q): Q, body: String) -> Response {
    guard!(f, q, paths::MATERIAL_LIST);
    list_of(&f.materials, &body)
}

async fn dept_tree(State(f): S, Query(q): Q) -> Response {
    guard!(f, q, paths::DEPT_TREE);
    envelope::ok(Value::Array(f.departments.clone()))
}

async fn payment_apply_list(State(f): S, Query(q): Q, body: String) -> Response {
    guard!(f, q, paths::PAYMENT_APPLY_LIST);
    let rows = f.payment_applies();
    list_of(&rows, &body)
}

async fn accbook(State(f): S, Query(q): Q) -> Response {
    guard!(f, q, paths::ACCBOOK);
    axum::response::IntoResponse::into_response(axum::Json(
        json!({"success": true, "message": null, "data": data::accbooks()}),
    ))
}

async fn voucher_add(State(f): S, Query(q): Q, body: String) -> Response {
    guard!(f, q, paths::VOUCHER_ADD);
    let doc = match json_body(&body) {
        Ok(b) => b,
        Err(m) => return envelope::error(code::LOGIC_ERROR, m),
    };
    match f.save_one(&doc) {
        Ok(saved) => envelope::ok(saved.voucher().clone()),
        Err(r) => envelope::error(r.code, r.message),
    }
}

async fn voucher_batch_add(State(f): S, Query(q): Q, body: String) -> Response {
    guard!(f, q, paths::VOUCHER_BATCH_ADD);
    match json_body(&body) {
        Ok(b) => f.batch_save(&b),
        Err(m) => envelope::error(code::LOGIC_ERROR, m),
    }
}

async fn voucher_query(State(f): S, Query(q): Q, body: String) -> Response {
    guard!(f, q, paths::VOUCHER_QUERY);
    let parsed = match json_body(&body) {
        Ok(b) => b,
        Err(m) => return envelope::error(code::LOGIC_ERROR, m),
    };
    if parsed["accbookCode"].as_str().is_some_and(|b| b != data::ACCBOOK_CODE) {
        return envelope::error(code::LOGIC_ERROR, "账簿编码不存在");
    }
    let (start, end) = (parsed["periodStart"].as_str(), parsed["periodEnd"].as_str());
    let rows: Vec<Value> = f
        .state()
        .ledger
        .listed()
        .into_iter()
        .filter(|v| {
            let period = v["header"]["period"].as_str().unwrap_or_default();
            start.is_none_or(|s| period >= s) && end.is_none_or(|e| period <= e)
        })
        .collect();
    match ListQuery::parse(&parsed) {
        Ok(q) => envelope::ok(q.answer(&rows)),
        Err(m) => envelope::error(code::LOGIC_ERROR, m),
    }
}

impl System for YonyouFake {
    fn name(&self) -> &'static str {
        "yonyou"
    }

    fn routes(self: Arc<Self>) -> Router {
        let auth = Router::new()
            .route(TOKEN_PATH, get(token))
            .route(TOKEN_PATH_V1, get(token_v1))
            .route("/open-auth/dataCenter/getGatewayAddress", get(gateway_address))
            .with_state(self.clone());
        let gateway = Router::new()
            .route(paths::PROJECT_LIST, post(project_list))
            .route(paths::PROJECT_DETAIL, get(project_detail))
            .route(paths::STAFF_LIST, post(staff_list))
            .route(paths::MATERIAL_LIST, post(material_list))
            .route(paths::DEPT_TREE, post(dept_tree).get(dept_tree))
            .route(paths::PAYMENT_APPLY_LIST, post(payment_apply_list))
            .route(paths::ACCBOOK, post(accbook))
            .route(paths::VOUCHER_ADD, post(voucher_add))
            .route(paths::VOUCHER_BATCH_ADD, post(voucher_batch_add))
            .route(paths::VOUCHER_QUERY, post(voucher_query))
            .with_state(self);
        Router::new()
            .nest(AUTH_PREFIX, auth.clone())
            .nest(GATEWAY_PREFIX, gateway.clone())
            .merge(auth)
            .merge(gateway)
    }

    fn throttled(&self) -> Response {
        envelope::throttled()
    }

    fn server_error(&self, status: StatusCode) -> Response {
        envelope::server_error(status)
    }

    fn snapshot(&self) -> Value {
        let state = self.state();
        json!({
            "vouchers": state.ledger.vouchers(),
            "replayed_saves": state.ledger.replayed(),
            "batch_calls": state.batch_calls,
            "tokens_issued": self.tokens_issued(),
            "revoked_apis": state.revoked.iter().collect::<Vec<_>>(),
        })
    }

    fn credentials(&self) -> Vec<(&'static str, String)> {
        vec![
            ("app_key", APP_KEY.into()),
            ("app_secret", APP_SECRET.into()),
            ("tenant_id", TENANT_ID.into()),
            ("base_url (gateway)", format!("<fake url>{GATEWAY_PREFIX}")),
            ("token_url", format!("<fake url>{AUTH_PREFIX}")),
        ]
    }
}
