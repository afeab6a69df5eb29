//! The request builder.

use serde::Serialize;

use super::Response;
use crate::encode::{base64, url_component, url_decode};
use crate::{Error, Result, sys};

/// An outbound HTTP request. Builder methods consume and return it; [`Request::send`] runs it.
///
/// Its `Debug` output masks the values of `authorization`, `proxy-authorization` and `cookie`
/// headers.
#[derive(Clone)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) timeout_ms: Option<u32>,
    /// A builder step that failed (a body that would not serialize); returned by `send`.
    error: Option<Error>,
}

impl Request {
    /// A request with any method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`, `OPTIONS`)
    /// to an absolute `http://` or `https://` URL, which may already carry a query string.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            error: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Request::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Request::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Request::new("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Request::new("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Request::new("DELETE", url)
    }

    /// Adds a header. Repeats are kept (and sent) in order.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends one query parameter, percent-encoding key and value (a space becomes `%20`).
    /// Works whether or not the URL already has a query string, and keeps a `#fragment` last.
    pub fn query(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        append_query(&mut self.url, key.as_ref(), value.as_ref());
        self
    }

    /// Appends several query parameters, in order, as [`Request::query`] does.
    pub fn query_pairs<I, K, V>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in pairs {
            append_query(&mut self.url, key.as_ref(), value.as_ref());
        }
        self
    }

    /// Adds `authorization: Bearer <token>`.
    pub fn bearer(self, token: impl AsRef<str>) -> Self {
        let value = format!("Bearer {}", token.as_ref());
        self.header("authorization", value)
    }

    /// Adds `authorization: Basic <base64(user:password)>`.
    pub fn basic(self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let value =
            format!("Basic {}", base64(format!("{}:{}", user.as_ref(), password.as_ref()).as_bytes()));
        self.header("authorization", value)
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some(bytes);
                self.header("content-type", "application/json")
            }
            Err(e) => {
                self.error =
                    Some(Error::invalid_input(format!("request body does not serialize to JSON: {e}")));
                self
            }
        }
    }

    /// Sets a raw body; set its `content-type` with [`Request::header`].
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    /// Limits the total time of this request; the host caps it at the connection's limit.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Sends the request through the host. A response of any status is `Ok` (see
    /// [`Response::error_for_status`]); a failure below HTTP is a classified error: timeout,
    /// connect and protocol failures are `transient`, an invalid request is `invalid-input`, a
    /// too-large response is `permanent`.
    pub fn send(self) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let line = format!("{} {}", self.method, self.url_without_query());
        let mut response = sys::http_send(self, &line)?;
        response.request_line = line;
        Ok(response)
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL, query string included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its query string and fragment (what error messages show).
    pub fn url_without_query(&self) -> &str {
        self.url.split(['?', '#']).next().unwrap_or_default()
    }

    /// The decoded query parameters, in order.
    pub fn query_params(&self) -> Vec<(String, String)> {
        let Some((_, rest)) = self.url.split_once('?') else {
            return Vec::new();
        };
        let query = rest.split('#').next().unwrap_or_default();
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (url_decode(k), url_decode(v))
            })
            .collect()
    }

    /// The first decoded value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header named `name`, compared case-insensitively.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body, if one was set.
    pub fn body_bytes(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    /// The body as text (invalid UTF-8 replaced), if one was set.
    pub fn body_text(&self) -> Option<String> {
        self.body.as_deref().map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The body parsed as JSON, if one was set and parses.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        self.body.as_deref().and_then(|b| serde_json::from_slice(b).ok())
    }

    /// The timeout set with [`Request::timeout_ms`].
    pub fn timeout(&self) -> Option<u32> {
        self.timeout_ms
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let masked = ["authorization", "proxy-authorization", "cookie"]
                    .iter()
                    .any(|secret| k.eq_ignore_ascii_case(secret));
                (k.as_str(), if masked { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &self.body.as_ref().map(|b| String::from_utf8_lossy(b)))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

fn append_query(url: &mut String, key: &str, value: &str) {
    let fragment = url.find('#').map(|at| url.split_off(at));
    if !url.contains('?') {
        url.push('?');
    } else if !url.ends_with('?') && !url.ends_with('&') {
        url.push('&');
    }
    url.push_str(&url_component(key));
    url.push('=');
    url.push_str(&url_component(value));
    if let Some(fragment) = fragment {
        url.push_str(&fragment);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_is_encoded_and_appended() {
        let r = Request::get("https://x.test/search").query("q", "hello world").query("city", "北京");
        assert_eq!(r.url(), "https://x.test/search?q=hello%20world&city=%E5%8C%97%E4%BA%AC");

        let r = Request::get("https://x.test/a?fixed=1").query("a&b", "c=d");
        assert_eq!(r.url(), "https://x.test/a?fixed=1&a%26b=c%3Dd");

        let r = Request::get("https://x.test/a?").query("k", "v");
        assert_eq!(r.url(), "https://x.test/a?k=v");

        let r = Request::get("https://x.test/a?x=1&").query("k", "v");
        assert_eq!(r.url(), "https://x.test/a?x=1&k=v");

        let r = Request::get("https://x.test/a#top").query("k", "v");
        assert_eq!(r.url(), "https://x.test/a?k=v#top");

        let r = Request::get("https://x.test/a").query_pairs([("a", "1"), ("a", "2 3")]);
        assert_eq!(r.url(), "https://x.test/a?a=1&a=2%203");
        assert_eq!(r.query_params(), vec![("a".into(), "1".into()), ("a".into(), "2 3".into())]);
        assert_eq!(r.query_param("a").as_deref(), Some("1"));
        assert_eq!(r.url_without_query(), "https://x.test/a");
    }

    #[test]
    fn auth_helpers_set_authorization() {
        let r = Request::get("https://x.test").basic("Aladdin", "open sesame");
        assert_eq!(r.header_value("Authorization"), Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        let r = Request::get("https://x.test").bearer("t0k");
        assert_eq!(r.header_value("authorization"), Some("Bearer t0k"));
        assert!(!format!("{r:?}").contains("t0k"), "{r:?}");
    }

    #[test]
    fn json_body_sets_content_type() {
        let r = Request::post("https://x.test").json(&json!({"a": 1})).timeout_ms(500);
        assert_eq!(r.header_value("content-type"), Some("application/json"));
        assert_eq!(r.body_json(), Some(json!({"a": 1})));
        assert_eq!(r.body_text().as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(r.timeout(), Some(500));
        assert_eq!(r.method(), "POST");
    }

    #[test]
    fn unserializable_body_fails_at_send() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let e = Request::post("https://x.test").json(&map).send().unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::InvalidInput);
    }
}
