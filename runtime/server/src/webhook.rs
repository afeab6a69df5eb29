//! Webhook intake: `POST /hooks/<flow><path>`.
//!
//! Order of checks: flow and path exist (404), the flow is running (503 + `Retry-After`
//! while disabled, starting or reloading), the body is within the size limit (413), the
//! shared-secret signature matches (401), the connector's `verify-webhook` accepts and
//! decodes it (401/400), the body is JSON when no connector decodes it (400 with the
//! parser's reason), the intake has room (429 + `Retry-After`), then the delivery is stored
//! durably — deduplicated on its delivery id — and only then answered: `202` with a JSON
//! receipt, or the connector's own reply (DingTalk's encrypted `success`).
//!
//! Shared-secret signature: `X-Hub-Signature-256` or `X-Hub-Signature` =
//! `sha256=<hex HMAC-SHA256(secret, raw body)>` (GitHub, Jira Cloud). Delivery id: the header
//! the trigger names in `delivery_id`, else the first of `X-Delivery-Id`,
//! `X-Atlassian-Webhook-Identifier`, `X-GitHub-Delivery`, `Idempotency-Key`. The request's query string reaches the connector as the header
//! `x-qiao-query` (DingTalk signs its query parameters). Bodies, headers and secrets are
//! never logged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use metrics::Counter;
use qiao_contract::ErrorClass;
use qiao_engine::{Delivered, IntakeError, JsonBody};
use qiao_flow::TriggerPlan;
use serde_json::json;
use sha2::Sha256;

use crate::app::AppState;
use crate::error::ApiError;
use crate::flows::Target;

/// Headers that carry a delivery id, in order of preference.
pub const DELIVERY_HEADERS: &[&str] =
    &["x-delivery-id", "x-atlassian-webhook-identifier", "x-github-delivery", "idempotency-key"];

/// The header the query string is passed in to `verify-webhook`.
pub const QUERY_HEADER: &str = "x-qiao-query";

const MAX_DELIVERY_ID: usize = 200;

pub(crate) async fn hook_root(
    state: State<Arc<AppState>>,
    Path(flow): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, flow, String::new(), uri, headers, body).await
}

pub(crate) async fn hook_path(
    state: State<Arc<AppState>>,
    Path((flow, rest)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, flow, rest, uri, headers, body).await
}

async fn handle(
    State(app): State<Arc<AppState>>,
    flow: String,
    rest: String,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let target = app.flows.webhook(&flow);
    // Requests for unknown flows share one label, so a scanner cannot grow the metrics.
    let known = !matches!(target, Target::Missing);
    let response = match intake(&app, target, &flow, &rest, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    app.webhook_meters.count(if known { &flow } else { "-" }, response.status());
    response
}

/// `qiao_webhook_requests_total{flow,status}` handles, registered on first use and kept, so
/// a request increments a counter instead of building two label strings and looking the
/// metric up. Bounded: `flow` is a loaded flow or `-`, and there are few statuses.
#[derive(Default)]
pub(crate) struct RequestMeters(RwLock<HashMap<String, HashMap<u16, Counter>>>);

impl RequestMeters {
    fn count(&self, flow: &str, status: StatusCode) {
        let code = status.as_u16();
        let known = self.0.read().ok().and_then(|m| m.get(flow)?.get(&code).cloned());
        let counter = known.unwrap_or_else(|| {
            let counter = metrics::counter!("qiao_webhook_requests_total", "flow" => flow.to_string(),
                "status" => code.to_string());
            if let Ok(mut m) = self.0.write() {
                m.entry(flow.to_string()).or_default().insert(code, counter.clone());
            }
            counter
        });
        counter.increment(1);
    }
}

fn unavailable(retry: u64, message: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).retry_after(retry)
}

async fn intake(
    app: &AppState,
    target: Target,
    flow: &str,
    rest: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let retry = app.limits.retry_after_secs;
    let intake = match target {
        Target::Missing => return Err(ApiError::not_found(format!("no webhook flow {flow:?}"))),
        Target::Disabled => return Err(unavailable(retry, "the flow is disabled")),
        Target::Unavailable => return Err(unavailable(retry, "the flow is starting, reloading or stopping")),
        // Why it failed is for operators (the admin API), not for the sender.
        Target::Failed => return Err(unavailable(retry, "the flow has failed and is restarting")),
        Target::Ready(intake) => intake,
    };
    let TriggerPlan::Webhook { path, secret, delivery_id: delivery_header, .. } =
        &intake.runner().plan().trigger
    else {
        return Err(ApiError::not_found(format!("no webhook flow {flow:?}")));
    };
    if path.trim_matches('/') != rest.trim_matches('/') {
        return Err(ApiError::not_found(format!("flow {flow:?} has no webhook at this path")));
    }
    // A place in the intake first: under overload the refusal costs no signature check and
    // no parse (the sender learns nothing but "retry later").
    let permit = intake.try_reserve().map_err(|e| match e {
        IntakeError::Full => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "intake-full",
            "the flow's intake is full; retry later",
        )
        .retry_after(retry),
        IntakeError::Closed => unavailable(retry, "the flow is stopping"),
    })?;
    let body = body.map_err(|e| ApiError::new(e.status(), "bad-body", e.body_text()))?;
    if let Some(secret) = secret {
        check_signature(secret.expose(), headers, &body)?;
    }
    let delivery = delivery_id(headers, delivery_header.as_deref())?;
    let (records, reply) =
        match intake.runner().verify_webhook(|| connector_headers(headers, uri), &body).await {
            Some(Ok(result)) => (Some(result.records), result.reply),
            Some(Err(e)) => {
                let (status, code) = match e.class() {
                    ErrorClass::Unauthorized => (StatusCode::UNAUTHORIZED, "bad-signature"),
                    ErrorClass::InvalidInput | ErrorClass::Permanent => (StatusCode::BAD_REQUEST, "bad-body"),
                    ErrorClass::Transient | ErrorClass::RateLimited => {
                        return Err(unavailable(retry, "the connector could not verify the delivery now"));
                    }
                    ErrorClass::Config => (StatusCode::INTERNAL_SERVER_ERROR, "connector-config"),
                };
                tracing::warn!(flow, class = %e.class(), "webhook delivery refused by the connector");
                return Err(ApiError::new(status, code, format!("delivery refused: {}", e.class())));
            }
            // No connector decodes it: the JSON body is the record.
            None => (None, None),
        };
    let delivered = match records {
        Some(records) if records.is_empty() => None,
        Some(records) => {
            let n = records.len();
            Some((n, permit.deliver(delivery.as_deref(), records).await))
        }
        None => {
            if body.is_empty() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad-body",
                    "the body is empty; a JSON body is expected",
                ));
            }
            // Checked, not parsed into a tree: the text goes to the store as it is.
            let json = JsonBody::parse(&body).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "bad-body", format!("the body is not JSON: {e}"))
            })?;
            Some((1, permit.deliver_json(delivery.as_deref(), json).await))
        }
    };
    let receipt = match delivered {
        None => json!({"accepted": true, "records": 0}),
        Some((n, Ok(Delivered::Accepted { batch }))) => {
            json!({"accepted": true, "records": n, "batch": batch})
        }
        Some((_, Ok(Delivered::Duplicate))) => json!({"accepted": true, "duplicate": true}),
        Some((_, Err(e))) => {
            tracing::error!(flow, error = %e, "webhook delivery could not be stored");
            return Err(unavailable(retry, "the delivery could not be stored"));
        }
    };
    if let Some(reply) = reply {
        let mut response =
            (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK), reply.body).into_response();
        for (k, v) in reply.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                response.headers_mut().insert(k, v);
            }
        }
        return Ok(response);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(receipt)).into_response())
}

/// Checks `sha256=<hex>` in `X-Hub-Signature-256` or `X-Hub-Signature` (constant time).
fn check_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "bad-signature", m);
    let header = headers
        .get("x-hub-signature-256")
        .or_else(|| headers.get("x-hub-signature"))
        .ok_or_else(|| bad("missing signature header X-Hub-Signature-256 (sha256=<hex HMAC>)"))?;
    let hex_sig = header
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .ok_or_else(|| bad("the signature must be sha256=<hex>"))?;
    let sig = hex::decode(hex_sig).map_err(|_| bad("the signature is not hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| bad("unusable secret"))?;
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| bad("the signature does not match the body"))
}

/// The delivery id: from the flow's own header when its trigger names one (`delivery_id`;
/// the default headers are then ignored), else from the first default header present.
fn delivery_id(headers: &HeaderMap, custom: Option<&str>) -> Result<Option<String>, ApiError> {
    let custom = custom.map(|name| [name]);
    let names: &[&str] = match &custom {
        Some(one) => one,
        None => DELIVERY_HEADERS,
    };
    for name in names {
        if let Some(v) = headers.get(*name) {
            let v = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= MAX_DELIVERY_ID)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "header {name} must be 1-{MAX_DELIVERY_ID} visible characters"
                    ))
                })?;
            return Ok(Some(v.to_string()));
        }
    }
    Ok(None)
}

/// The request's headers for `verify-webhook` (lower-case names), plus its query string.
fn connector_headers(headers: &HeaderMap, uri: &Uri) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str() != QUERY_HEADER)
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect();
    if let Some(q) = uri.query() {
        out.push((QUERY_HEADER.to_string(), q.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let body = b"{\"a\":1}";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap_or_else(|_| unreachable!());
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature", HeaderValue::from_str(&good).unwrap_or_else(|_| unreachable!()));
        assert!(check_signature("s3cret", &h, body).is_ok());
        assert!(check_signature("other", &h, body).is_err());
        assert!(check_signature("s3cret", &h, b"{}").is_err());
        assert!(check_signature("s3cret", &HeaderMap::new(), body).is_err());
    }

    #[test]
    fn delivery_ids_come_from_known_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(delivery_id(&h, None).ok().flatten(), None);
        h.insert("x-atlassian-webhook-identifier", HeaderValue::from_static("abc"));
        assert_eq!(delivery_id(&h, None).ok().flatten().as_deref(), Some("abc"));
        h.insert("x-delivery-id", HeaderValue::from_static("  "));
        assert!(delivery_id(&h, None).is_err());
    }

    #[test]
    fn a_flow_header_replaces_the_known_ones() {
        let mut h = HeaderMap::new();
        h.insert("x-delivery-id", HeaderValue::from_static("default-1"));
        assert_eq!(delivery_id(&h, Some("x-request-id")).ok().flatten(), None, "defaults are ignored");
        let mixed_case = HeaderName::from_bytes(b"X-Request-Id").unwrap_or_else(|_| unreachable!());
        h.insert(mixed_case, HeaderValue::from_static("req-7"));
        assert_eq!(delivery_id(&h, Some("x-request-id")).ok().flatten().as_deref(), Some("req-7"));
        h.insert("x-request-id", HeaderValue::from_static(""));
        assert!(delivery_id(&h, Some("x-request-id")).is_err(), "an empty id is refused");
    }
}
