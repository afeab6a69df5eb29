//! Action `request`: one HTTP request built from the step's input.

use qiao_sdk::http::{Request, Response};
use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, json};
use serde::Deserialize;
use serde_json::Map;

use crate::config::Config;
use crate::urls::fill_placeholders;
use crate::values::{header_pairs, query_pairs};

/// The methods the action sends.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// Methods that never carry the idempotency key (they are safe to repeat).
const SAFE_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    vars: Map<String, Value>,
    #[serde(default)]
    query: Map<String, Value>,
    #[serde(default)]
    headers: Map<String, Value>,
    /// Accepted here and read from the input in place (see [`run`]): the body is serialized
    /// from it, not from a copy of what may be the whole record.
    #[serde(default, rename = "json")]
    _json: serde::de::IgnoredAny,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    expect: Expect,
    #[serde(default)]
    item_results: Option<ItemResults>,
}

/// Where a bulk request's answer holds one result per item sent, and how a failed one looks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemResults {
    /// Dotted path in the JSON body to the list of results ("" for the body itself).
    #[serde(default)]
    path: String,
    /// A result whose field of this name is present and not null failed; its value is the
    /// message.
    #[serde(default = "default_error_field")]
    error_field: String,
    /// Optional field holding an HTTP-style status per result: 429 → rate-limited,
    /// 5xx → transient, anything else → invalid-input.
    #[serde(default)]
    status_field: Option<String>,
}

fn default_error_field() -> String {
    "error".into()
}

fn default_method() -> String {
    "GET".into()
}

/// How the response body is returned.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    /// Parsed JSON when the body is not empty.
    #[default]
    Json,
    /// Text.
    Text,
}

/// Runs the `request` action.
pub(crate) fn run(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: Input = req.input()?;
    let json = req.input.get("json").filter(|v| !v.is_null());
    let request = build(&config, &input, json, req.idempotency_key)?;
    let response = request.send()?.error_for_status()?;
    let output = output(response, input.expect)?;
    let items = match &input.item_results {
        Some(spec) => Some(item_outcomes(&output["body"], spec)?),
        None => None,
    };
    Ok(ActionOutput { output, items })
}

/// One outcome per result in the answer of a bulk request.
fn item_outcomes(body: &Value, spec: &ItemResults) -> Result<Vec<Result<Value, Error>>> {
    let list = crate::values::lookup(body, &spec.path).and_then(Value::as_array).ok_or_else(|| {
        Error::permanent(format!("item_results.path {:?} is not a list in the response", spec.path))
    })?;
    Ok(list
        .iter()
        .map(|entry| match entry.get(&spec.error_field).filter(|v| !v.is_null()) {
            None => Ok(entry.clone()),
            Some(message) => {
                let message = match message {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let status = spec.status_field.as_ref().and_then(|f| entry.get(f)).and_then(Value::as_u64);
                Err(match status {
                    Some(429) => Error::rate_limited(message, None),
                    Some(s) if s >= 500 => Error::transient(message),
                    _ => Error::invalid_input(message),
                })
            }
        })
        .collect())
}

fn build(config: &Config, input: &Input, json: Option<&Value>, idempotency_key: &str) -> Result<Request> {
    let method = input.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(Error::invalid_input(format!(
            "method {:?} is not one of {}",
            input.method,
            METHODS.join(", ")
        )));
    }
    if json.is_some() && input.text.is_some() {
        return Err(Error::invalid_input("input has both json and text: send one body"));
    }
    let url = fill_placeholders(&input.url, &input.vars).map_err(Error::invalid_input)?;
    let url = config.resolve_url(&url).map_err(Error::invalid_input)?;
    let query = query_pairs(&input.query, "query").map_err(Error::invalid_input)?;

    let mut headers = config.headers();
    for (name, value) in header_pairs(&input.headers, "headers").map_err(Error::invalid_input)? {
        headers.set(&name, &value);
    }
    let body = match (json, &input.text) {
        (Some(value), _) => {
            headers.set_default("content-type", "application/json");
            Some(serde_json::to_vec(value).map_err(|e| Error::invalid_input(format!("json body: {e}")))?)
        }
        (None, Some(text)) => {
            headers.set_default("content-type", "text/plain; charset=utf-8");
            Some(text.clone().into_bytes())
        }
        (None, None) => None,
    };
    if input.expect == Expect::Json {
        headers.set_default("accept", "application/json");
    }
    if let Some(name) = config.idempotency_header()
        && !idempotency_key.is_empty()
        && !SAFE_METHODS.contains(&method.as_str())
    {
        headers.set_default(name, idempotency_key);
    }

    let mut request = Request::new(method, url).query_pairs(query);
    for (name, value) in headers.into_vec() {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    if let Some(ms) = config.timeout_ms {
        request = request.timeout_ms(ms);
    }
    Ok(request)
}

/// `{status, headers, body}`: header names lowercased, repeats joined with `", "`.
fn output(response: Response, expect: Expect) -> Result<Value> {
    let mut headers = Map::new();
    for (name, value) in &response.headers {
        let name = name.to_ascii_lowercase();
        match headers.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                headers.insert(name, Value::String(value.clone()));
            }
        }
    }
    let body = if expect == Expect::Json && !response.body.is_empty() {
        response.json::<Value>()?
    } else {
        Value::String(response.text())
    };
    Ok(json!({"status": response.status, "headers": headers, "body": body}))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::http::HttpError;
    use qiao_sdk::testing::MockHost;
    use qiao_sdk::{ErrorClass, InvokeRequest};

    fn invoke(config: Value, input: Value) -> Result<Value> {
        run(InvokeRequest { op: "request", config: &config, input: &input, idempotency_key: "run-1/step-2" })
            .map(|out| out.output)
    }

    fn echo() -> MockHost {
        MockHost::new().http(|req| {
            Ok(Response::new(200)
                .with_header("Set-Cookie", "a=1")
                .with_header("set-cookie", "b=2")
                .with_json(&json!({"method": req.method(), "url": req.url()})))
        })
    }

    #[test]
    fn get_with_templated_url_and_query() {
        let host = echo().install();
        let out = invoke(
            json!({"base_url": "https://api.test/v1/", "headers": {"X-Tenant": "acme"}, "timeout_ms": 2500}),
            json!({
                "url": "/users/{user}/files/{name}",
                "vars": {"user": 42, "name": "年度 report/1.pdf"},
                "query": {"q": "a&b=c", "tag": ["x y", "z"]},
                "headers": {"X-Trace": "t1"}
            }),
        )
        .unwrap();
        let url = "https://api.test/v1/users/42/files/%E5%B9%B4%E5%BA%A6%20report%2F1.pdf?q=a%26b%3Dc&tag=x%20y&tag=z";
        assert_eq!(out["status"], 200);
        assert_eq!(out["body"], json!({"method": "GET", "url": url}));
        assert_eq!(out["headers"]["set-cookie"], "a=1, b=2");
        assert_eq!(out["headers"]["content-type"], "application/json");

        let sent = &host.requests()[0];
        assert_eq!(sent.header_value("x-tenant"), Some("acme"));
        assert_eq!(sent.header_value("x-trace"), Some("t1"));
        assert_eq!(sent.header_value("accept"), Some("application/json"));
        assert_eq!(sent.header_value("idempotency-key"), None, "GET carries no idempotency key");
        assert_eq!(sent.timeout(), Some(2500));
        assert_eq!(sent.body_bytes(), None);
    }

    #[test]
    fn post_json_sends_idempotency_key_and_auth() {
        let host = echo().install();
        invoke(
            json!({"base_url": "https://api.test", "auth": {"type": "bearer", "token": "s3cret"}}),
            json!({"method": "post", "url": "orders", "json": {"sku": "A-1", "qty": 2}}),
        )
        .unwrap();
        let sent = &host.requests()[0];
        assert_eq!(sent.method(), "POST");
        assert_eq!(sent.url(), "https://api.test/orders");
        assert_eq!(sent.header_value("authorization"), Some("Bearer s3cret"));
        assert_eq!(sent.header_value("idempotency-key"), Some("run-1/step-2"));
        assert_eq!(sent.header_value("content-type"), Some("application/json"));
        assert_eq!(sent.body_json(), Some(json!({"sku": "A-1", "qty": 2})));
    }

    #[test]
    fn idempotency_header_is_configurable() {
        let host = echo().install();
        let config = json!({"base_url": "https://api.test", "idempotency_header": "X-Request-Id"});
        invoke(config, json!({"method": "DELETE", "url": "/a"})).unwrap();
        invoke(
            json!({"base_url": "https://api.test", "idempotency_header": ""}),
            json!({"method": "PUT", "url": "/a"}),
        )
        .unwrap();
        invoke(
            json!({"base_url": "https://api.test"}),
            json!({"method": "PATCH", "url": "/a", "headers": {"idempotency-key": "mine"}}),
        )
        .unwrap();
        let sent = host.requests();
        assert_eq!(sent[0].header_value("x-request-id"), Some("run-1/step-2"));
        assert_eq!(sent[0].header_value("idempotency-key"), None);
        assert_eq!(sent[1].header_value("idempotency-key"), None);
        assert_eq!(sent[2].header_value("idempotency-key"), Some("mine"));
        assert_eq!(
            sent[2].headers().iter().filter(|(k, _)| k.eq_ignore_ascii_case("idempotency-key")).count(),
            1
        );
    }

    #[test]
    fn text_bodies_and_text_responses() {
        let host = MockHost::new()
            .http(|req| {
                Ok(Response::new(201).with_text(format!("got {}", req.body_text().unwrap_or_default())))
            })
            .install();
        let out = invoke(
            json!({"auth": {"type": "basic", "username": "u", "password": "p"}}),
            json!({"method": "POST", "url": "https://abs.test/x", "text": "héllo", "expect": "text"}),
        )
        .unwrap();
        assert_eq!(out, json!({"status": 201, "headers": {}, "body": "got héllo"}));
        let sent = &host.requests()[0];
        assert_eq!(sent.header_value("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(sent.header_value("authorization"), Some("Basic dTpw"));
        assert_eq!(sent.header_value("accept"), None);

        // `json: null` is no body, so it may stand next to `text`.
        invoke(json!({}), json!({"method": "POST", "url": "https://abs.test/x", "json": null, "text": "t", "expect": "text"}))
            .unwrap();
        assert_eq!(host.requests()[1].body_text().as_deref(), Some("t"));
    }

    #[test]
    fn empty_body_is_an_empty_string_and_input_content_type_wins() {
        let host = MockHost::new().http(|_| Ok(Response::new(204))).install();
        let out = invoke(
            json!({"base_url": "https://api.test", "auth": {"type": "header", "name": "X-Api-Key", "value": "k"}}),
            json!({"method": "PUT", "url": "/a", "json": [1], "headers": {"Content-Type": "application/merge-patch+json"}}),
        )
        .unwrap();
        assert_eq!(out["body"], "");
        let sent = &host.requests()[0];
        assert_eq!(sent.header_value("content-type"), Some("application/merge-patch+json"));
        assert_eq!(sent.header_value("x-api-key"), Some("k"));
    }

    #[test]
    fn invalid_inputs() {
        let _host = echo().install();
        let config = json!({"base_url": "https://api.test"});
        let cases = [
            (json!({"url": "/u/{id}"}), "url placeholder {id} has no value in vars"),
            (json!({"url": "/a", "json": {}, "text": "x"}), "input has both json and text: send one body"),
            (
                json!({"url": "/a", "method": "TRACE"}),
                "method \"TRACE\" is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
            ),
            (
                json!({"url": "/a", "query": {"q": {"x": 1}}}),
                "query.q must be a string, number, boolean or an array of them, got an object",
            ),
            (
                json!({"url": "/a", "expect": "xml"}),
                "input.expect: unknown variant `xml`, expected `json` or `text`",
            ),
            (json!({"method": "GET"}), "input: missing field `url`"),
        ];
        for (input, message) in cases {
            let e = invoke(config.clone(), input).unwrap_err();
            assert_eq!((e.class(), e.message()), (ErrorClass::InvalidInput, message));
        }
        let e = invoke(json!({}), json!({"url": "/a"})).unwrap_err();
        assert_eq!(e, Error::invalid_input("url \"/a\" is relative and the connection has no base_url"));
        let e = invoke(json!({"base_url": "api.test"}), json!({"url": "/a"})).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
    }

    #[test]
    fn status_errors_are_classified() {
        let _host = MockHost::new()
            .http(|req| {
                Ok(match req.url_without_query() {
                    "https://api.test/401" => Response::new(401).with_text("bad token"),
                    "https://api.test/429" => Response::new(429).with_header("Retry-After", "3"),
                    "https://api.test/500" => Response::new(500).with_json(&json!({"error": "boom"})),
                    "https://api.test/html" => Response::new(200).with_text("<html>oops</html>"),
                    _ => Response::new(404).with_json(&json!({"error": "not found"})),
                })
            })
            .install();
        let config = json!({"base_url": "https://api.test"});
        let call =
            |path: &str| invoke(config.clone(), json!({"url": path, "query": {"secret": "q"}})).unwrap_err();

        let e = call("/401");
        assert_eq!(e, Error::unauthorized("GET https://api.test/401 returned 401 Unauthorized: bad token"));
        let e = call("/429");
        assert_eq!(
            e,
            Error::rate_limited("GET https://api.test/429 returned 429 Too Many Requests", Some(3000))
        );
        let e = call("/500");
        assert_eq!(
            e,
            Error::transient(
                r#"GET https://api.test/500 returned 500 Internal Server Error: {"error":"boom"}"#
            )
        );
        let e = call("/missing");
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert_eq!(
            e.message(),
            r#"GET https://api.test/missing returned 404 Not Found: {"error":"not found"}"#
        );
        let e = call("/html");
        assert_eq!(e.class(), ErrorClass::Transient);
    }

    #[test]
    fn transport_errors_are_classified() {
        let _host = MockHost::new().http(|_| Err(HttpError::Connect("connection refused".into()))).install();
        let e = invoke(json!({}), json!({"url": "http://127.0.0.1:9/x"})).unwrap_err();
        assert_eq!(e, Error::transient("GET http://127.0.0.1:9/x failed: connect: connection refused"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod bulk_tests {
    use super::*;
    use qiao_sdk::testing::MockHost;
    use qiao_sdk::{ErrorClass, InvokeRequest};

    #[test]
    fn item_results_become_per_item_outcomes() {
        let _host = MockHost::new()
            .http(|req| {
                let sent = req.body_json().unwrap();
                assert_eq!(sent.as_array().unwrap().len(), 4);
                Ok(Response::new(200).with_json(&json!({"data": {"results": [
                    {"id": "V-1"},
                    {"error": "cost center CB9999 does not exist", "status": 422},
                    {"error": "busy", "status": 503},
                    {"error": {"code": 429}, "status": 429},
                ]}})))
            })
            .install();
        let out = run(InvokeRequest {
            op: "request",
            config: &json!({"base_url": "https://erp.test"}),
            input: &json!({"method": "POST", "url": "/bulk", "json": [1, 2, 3, 4],
                "item_results": {"path": "data.results", "status_field": "status"}}),
            idempotency_key: "k",
        })
        .unwrap();
        let items = out.items.unwrap();
        assert_eq!(items[0], Ok(json!({"id": "V-1"})));
        let classes: Vec<_> = items[1..].iter().map(|r| r.as_ref().unwrap_err().class()).collect();
        assert_eq!(classes, vec![ErrorClass::InvalidInput, ErrorClass::Transient, ErrorClass::RateLimited]);
        assert_eq!(items[1].as_ref().unwrap_err().message(), "cost center CB9999 does not exist");
    }

    #[test]
    fn item_results_path_must_be_a_list() {
        let _host =
            MockHost::new().http(|_| Ok(Response::new(200).with_json(&json!({"ok": true})))).install();
        let err = run(InvokeRequest {
            op: "request",
            config: &json!({"base_url": "https://erp.test"}),
            input: &json!({"method": "POST", "url": "/bulk", "json": [], "item_results": {"path": "results"}}),
            idempotency_key: "k",
        })
        .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
    }
}
