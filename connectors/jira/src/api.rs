//! Calls to the Jira REST API: Basic auth, timeouts, and Jira's errors mapped to error classes.

use qiao_sdk::http::{Request, Response};
use qiao_sdk::{Error, Result, Value, clock};

use crate::config::{Config, DEFAULT_TIMEOUT_MS};

/// Shortest wait after a 429: Jira may send `Retry-After: 0`, which still means "slow down".
pub const MIN_RETRY_AFTER_MS: u64 = 1_000;

/// A configured Jira site.
pub struct Jira<'a> {
    config: &'a Config,
}

impl<'a> Jira<'a> {
    /// The site of `config`.
    pub fn new(config: &'a Config) -> Self {
        Jira { config }
    }

    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, format!("{}{path}", self.config.base()))
            .basic(&self.config.email, &self.config.api_token)
            .header("accept", "application/json")
            .timeout_ms(self.config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    /// `GET <site><path>`.
    pub fn get(&self, path: &str) -> Request {
        self.request("GET", path)
    }

    /// `POST <site><path>` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Request {
        self.request("POST", path).json(body)
    }

    /// Sends `req`; a non-2xx answer becomes a classified error.
    pub fn send(&self, req: Request) -> Result<Response> {
        let resp = req.send()?;
        if resp.is_success() { Ok(resp) } else { Err(classify(&resp)) }
    }

    /// Sends `req` and parses the JSON answer.
    pub fn json(&self, req: Request) -> Result<Value> {
        let resp = self.send(req)?;
        if resp.body.is_empty() { Ok(Value::Null) } else { resp.json() }
    }
}

/// Jira's messages in an error body: `errorMessages` and `field: message` pairs of `errors`,
/// joined with `; `. `None` when the body is not Jira's JSON error shape.
pub fn jira_messages(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let mut parts: Vec<String> = v
        .get("errorMessages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if let Some(errors) = v.get("errors").and_then(Value::as_object) {
        parts.extend(
            errors
                .iter()
                .map(|(k, m)| format!("{k}: {}", m.as_str().map_or_else(|| m.to_string(), str::to_owned))),
        );
    }
    if v.get("errorMessages").is_none() && v.get("errors").is_none() {
        return None;
    }
    Some(parts.join("; "))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How long a 429 asks to wait: `Retry-After` (at least [`MIN_RETRY_AFTER_MS`]), else the
/// `X-RateLimit-Reset` time, else unknown.
pub fn retry_after_ms(resp: &Response) -> Option<u64> {
    if let Some(ms) = resp.retry_after_ms() {
        return Some(ms.max(MIN_RETRY_AFTER_MS));
    }
    let reset = resp.header("x-ratelimit-reset")?;
    let at = crate::time::parse_datetime(reset, 0)?;
    let wait = at - clock::now_ms() as i64;
    Some((wait.max(0) as u64).max(MIN_RETRY_AFTER_MS))
}

/// The error class and message of a non-2xx answer.
pub fn classify(resp: &Response) -> Error {
    let what = format!("{} returned {}", resp.request_line(), resp.status);
    let detail = jira_messages(&resp.body).unwrap_or_else(|| snippet(&resp.body));
    let msg = if detail.is_empty() { what.clone() } else { format!("{what}: {detail}") };
    match resp.status {
        401 => Error::unauthorized(format!(
            "{what}: Jira refused the e-mail and API token (Basic auth has no token refresh: check `email` and \
             `api_token`, and that the token was not revoked){}",
            if detail.is_empty() { String::new() } else { format!(": {detail}") }
        )),
        403 => Error::permanent(format!("{msg} (the account lacks a permission for this)")),
        410 => Error::config(format!(
            "{msg} (this API was removed from Jira Cloud, e.g. the legacy search (CHANGE-2046); the connector must use /rest/api/3/search/jql)"
        )),
        429 => Error::rate_limited(msg, retry_after_ms(resp)),
        500..=599 => Error::transient(msg),
        400..=499 => Error::invalid_input(msg),
        _ => Error::permanent(msg),
    }
}

/// Percent-encodes one path segment (an issue key or id).
pub fn segment(s: &str) -> String {
    qiao_sdk::encode::url_component(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::testing::MockHost;
    use qiao_sdk::{ErrorClass, json};

    fn config() -> Config {
        Config::load(&json!({"base_url": "https://acme.atlassian.net", "email": "bot@acme.cn", "api_token": "s3cr3t-91", "timeout_ms": 500})).unwrap()
    }

    fn answer(status: u16, body: &str, headers: &[(&str, &str)]) -> Error {
        let body = body.to_string();
        let headers: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let _host = MockHost::new()
            .now_ms(1_714_612_440_000)
            .http(move |_| {
                let mut r = Response::new(status).with_text(body.clone());
                for (k, v) in &headers {
                    r = r.with_header(k.clone(), v.clone());
                }
                Ok(r)
            })
            .install();
        let c = config();
        let jira = Jira::new(&c);
        jira.json(jira.get("/rest/api/3/issue/ERP-1")).unwrap_err()
    }

    #[test]
    fn maps_jira_statuses_to_classes() {
        let e = answer(
            400,
            r#"{"errorMessages":["bad jql"],"errors":{"summary":"You must specify a summary of the issue."}}"#,
            &[],
        );
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(
            e.message().ends_with("returned 400: bad jql; summary: You must specify a summary of the issue."),
            "{e}"
        );
        let e = answer(401, "Client must be authenticated to access this resource.", &[]);
        assert_eq!(e.class(), ErrorClass::Unauthorized);
        assert!(!e.message().contains("s3cr3t-91"), "the token never appears: {e}");
        assert_eq!(answer(403, "{}", &[]).class(), ErrorClass::Permanent);
        assert_eq!(
            answer(404, r#"{"errorMessages":["Issue does not exist"],"errors":{}}"#, &[]).class(),
            ErrorClass::InvalidInput
        );
        assert_eq!(
            answer(410, r#"{"errorMessages":["removed"],"errors":{}}"#, &[]).class(),
            ErrorClass::Config
        );
        assert_eq!(answer(503, "<html>down</html>", &[]).class(), ErrorClass::Transient);
        assert_eq!(
            answer(500, r#"{"errorMessages":["Internal server error"],"errors":{}}"#, &[]).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn throttling_carries_the_wait() {
        let e = answer(429, r#"{"errorMessages":["rate-limited"],"errors":{}}"#, &[("Retry-After", "7")]);
        assert_eq!((e.class(), e.retry_after_ms()), (ErrorClass::RateLimited, Some(7000)));
        let e = answer(429, "", &[("Retry-After", "0")]);
        assert_eq!(e.retry_after_ms(), Some(MIN_RETRY_AFTER_MS));
        // 2024-05-02T01:15Z is 60 s after the mock clock.
        let e = answer(429, "<html>slow down</html>", &[("X-RateLimit-Reset", "2024-05-02T01:15Z")]);
        assert_eq!(e.retry_after_ms(), Some(60_000));
        assert_eq!(answer(429, "", &[]).retry_after_ms(), None);
    }

    #[test]
    fn sends_basic_auth_and_timeout() {
        let host = MockHost::new().http(|_| Ok(Response::new(200).with_json(&json!({"ok": true})))).install();
        let c = config();
        let jira = Jira::new(&c);
        assert_eq!(jira.json(jira.get("/rest/api/3/myself")).unwrap(), json!({"ok": true}));
        let sent = &host.requests()[0];
        assert_eq!(sent.header_value("authorization"), Some("Basic Ym90QGFjbWUuY246czNjcjN0LTkx"));
        assert_eq!(sent.timeout(), Some(500));
    }
}
