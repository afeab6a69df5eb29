//! The response and its checks.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::status::{parse_retry_after, reason_phrase, status_class};
use crate::{Error, ErrorClass, Result, clock, error_of_class};

/// How much of a body a status error quotes.
const STATUS_SNIPPET_CHARS: usize = 300;
/// How much of a body a JSON parse error quotes.
const PARSE_SNIPPET_CHARS: usize = 200;

/// An HTTP response of any status.
///
/// Natively, build one for [`crate::testing::MockHost`] with [`Response::new`] and the
/// `with_*` methods.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers as received, in order; names are case-insensitive.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// `GET https://host/path` of the request, for messages; empty when built by hand.
    pub(crate) request_line: String,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new(), request_line: String::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a text body.
    pub fn with_text(self, text: impl Into<String>) -> Self {
        self.with_body(text.into().into_bytes())
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn with_json<T: Serialize + ?Sized>(self, body: &T) -> Self {
        // A `Value` or derived struct serializes; if it does not, the body stays empty.
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.with_header("content-type", "application/json").with_body(bytes)
    }

    /// `GET https://host/path`: the method and URL (without query string) of the request
    /// that produced this response; empty for a response built by hand.
    pub fn request_line(&self) -> &str {
        &self.request_line
    }

    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order, compared case-insensitively.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text; invalid UTF-8 is replaced with `U+FFFD`.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON `T`. A body that is not JSON is a `transient` error quoting its
    /// first 200 characters (proxies answer with HTML pages while a service restarts); JSON of
    /// the wrong shape is a `permanent` error naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            if e.inner().is_data() {
                Error::permanent(format!(
                    "{} returned unexpected JSON at {:?}: {}",
                    self.subject(),
                    e.path().to_string(),
                    e.inner()
                ))
            } else {
                self.not_json(e.inner())
            }
        })?;
        de.end().map_err(|e| self.not_json(&e))?;
        Ok(value)
    }

    fn not_json(&self, e: &serde_json::Error) -> Error {
        Error::transient(format!(
            "{} returned a body that is not JSON ({e}): {:?}",
            self.subject(),
            snippet(&self.body, PARSE_SNIPPET_CHARS)
        ))
    }

    /// How long the server asked to wait, from `Retry-After` in seconds or as an HTTP date
    /// (relative to [`clock::now_ms`]; a date in the past is 0).
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after").and_then(|v| parse_retry_after(v, clock::now_ms()))
    }

    /// `Ok(self)` for 1xx, 2xx and 3xx; otherwise the error for the status (see
    /// [`super::classify_status`]), its message naming the method, the URL without query
    /// string, the status and the start of the body (up to 300 characters), e.g.
    /// `GET https://api.example.com/items returned 404 Not Found: {"error":"no such list"}`.
    pub fn error_for_status(self) -> Result<Self> {
        let Some(class) = status_class(self.status) else {
            return Ok(self);
        };
        let retry_after = if class == ErrorClass::RateLimited { self.retry_after_ms() } else { None };
        let mut message = format!("{} returned {}", self.subject(), self.status);
        let reason = reason_phrase(self.status);
        if !reason.is_empty() {
            message.push(' ');
            message.push_str(reason);
        }
        let body = snippet(&self.body, STATUS_SNIPPET_CHARS);
        if !body.is_empty() {
            message.push_str(": ");
            message.push_str(&body);
        }
        Err(error_of_class(class, message, retry_after))
    }

    fn subject(&self) -> &str {
        if self.request_line.is_empty() { "the server" } else { &self.request_line }
    }
}

/// The body as trimmed lossy text, cut to `max` characters with `…` appended when cut.
fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::{Value, json};

    fn from(status: u16, body: &str) -> Response {
        let mut r = Response::new(status).with_text(body);
        r.request_line = "GET https://api.test/items".into();
        r
    }

    #[test]
    fn headers_are_case_insensitive() {
        let r = Response::new(200).with_header("Link", "<a>").with_header("link", "<b>");
        assert_eq!(r.header("LINK"), Some("<a>"));
        assert_eq!(r.header_all("link").collect::<Vec<_>>(), ["<a>", "<b>"]);
        assert_eq!(r.header("missing"), None);
        assert!(r.is_success());
        assert!(!Response::new(302).is_success());
    }

    #[test]
    fn error_for_status_names_request_status_and_body() {
        let e = from(404, r#"{"error":"no such list"}"#).error_for_status().unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert_eq!(
            e.message(),
            r#"GET https://api.test/items returned 404 Not Found: {"error":"no such list"}"#
        );
        let e = from(500, "").error_for_status().unwrap_err();
        assert_eq!(e, Error::transient("GET https://api.test/items returned 500 Internal Server Error"));
        assert!(from(204, "").error_for_status().is_ok());
        assert!(from(304, "").error_for_status().is_ok());

        let long = "x".repeat(1000);
        let e = from(400, &long).error_for_status().unwrap_err();
        let quoted = e.message().split(": ").nth(1).unwrap();
        assert_eq!(quoted.chars().count(), 301);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn rate_limited_carries_retry_after_seconds() {
        let r = from(429, "slow down").with_header("Retry-After", "7");
        assert_eq!(r.retry_after_ms(), Some(7000));
        let e = r.error_for_status().unwrap_err();
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.retry_after_ms(), Some(7000));
        let e = from(429, "").error_for_status().unwrap_err();
        assert_eq!(e.retry_after_ms(), None);
    }

    #[test]
    fn json_errors_are_classified() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Page {
            items: Vec<u32>,
        }
        let r = from(200, r#"{"items": [1, 2]}"#);
        assert_eq!(r.json::<Page>().unwrap().items, vec![1, 2]);
        assert_eq!(r.json::<Value>().unwrap(), json!({"items": [1, 2]}));

        let e = from(200, "<html>Bad gateway</html>").json::<Value>().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(
            e.message().starts_with("GET https://api.test/items returned a body that is not JSON"),
            "{e}"
        );
        assert!(e.message().ends_with("\"<html>Bad gateway</html>\""), "{e}");

        let e = from(200, &format!("{{\"a\": \"{}", "y".repeat(500))).json::<Value>().unwrap_err();
        assert!(e.message().contains(&format!("{}…", "y".repeat(193))), "{e}");

        let e = from(200, r#"{"items": [1, "x"]}"#).json::<Page>().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message().contains("at \"items[1]\""), "{e}");

        let e = from(200, r#"{"items": []} trailing"#).json::<Page>().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient);
    }
}
