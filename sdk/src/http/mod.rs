//! Outbound HTTP through the host.
//!
//! Build a [`Request`], [`Request::send`] it, then usually [`Response::error_for_status`] and
//! [`Response::json`]:
//!
//! ```no_run
//! # fn run() -> qiao_sdk::Result<()> {
//! use qiao_sdk::http::Request;
//!
//! let issues: qiao_sdk::Value = Request::get("https://api.example.com/issues")
//!     .query("state", "open")
//!     .bearer("token")
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! # Ok(()) }
//! ```
//!
//! The host checks the URL against the hosts granted to the connection, applies timeouts and a
//! response size limit, and does not follow redirects. Natively, requests go to the handler of
//! the installed [`crate::testing::MockHost`].

mod request;
mod response;
mod status;

pub use request::Request;
pub use response::Response;
pub use status::{classify_status, parse_retry_after, reason_phrase, status_class};

use crate::Error;

/// A failure below HTTP: the request never produced a response (WIT `http-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The request could not be built (bad method, bad URL, bad header value).
    InvalidRequest(String),
    /// No answer in time.
    Timeout(String),
    /// The connection could not be made or was reset.
    Connect(String),
    /// The response body exceeded the host's limit.
    TooLarge(String),
    /// Anything else the HTTP stack reported (TLS, protocol violations).
    Protocol(String),
}

impl HttpError {
    /// The kind as written in WIT (`invalid-request`, `timeout`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::InvalidRequest(_) => "invalid-request",
            HttpError::Timeout(_) => "timeout",
            HttpError::Connect(_) => "connect",
            HttpError::TooLarge(_) => "too-large",
            HttpError::Protocol(_) => "protocol",
        }
    }

    /// What the host said.
    pub fn message(&self) -> &str {
        match self {
            HttpError::InvalidRequest(m)
            | HttpError::Timeout(m)
            | HttpError::Connect(m)
            | HttpError::TooLarge(m)
            | HttpError::Protocol(m) => m,
        }
    }

    /// The classified error for a failed request, `request` being `"GET https://host/path"`:
    /// timeout, connect and protocol failures are `transient`, an invalid request is
    /// `invalid-input`, a too-large response is `permanent`.
    pub fn into_error(self, request: &str) -> Error {
        let message = format!("{request} failed: {}: {}", self.kind(), self.message());
        match self {
            HttpError::Timeout(_) | HttpError::Connect(_) | HttpError::Protocol(_) => {
                Error::transient(message)
            }
            HttpError::InvalidRequest(_) => Error::invalid_input(message),
            HttpError::TooLarge(_) => Error::permanent(message),
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn transport_errors_are_classified() {
        let cases = [
            (HttpError::Timeout("t".into()), ErrorClass::Transient),
            (HttpError::Connect("c".into()), ErrorClass::Transient),
            (HttpError::Protocol("p".into()), ErrorClass::Transient),
            (HttpError::InvalidRequest("i".into()), ErrorClass::InvalidInput),
            (HttpError::TooLarge("l".into()), ErrorClass::Permanent),
        ];
        for (e, class) in cases {
            assert_eq!(e.clone().into_error("GET https://x/y").class(), class, "{e}");
        }
        let e = HttpError::Connect("connection refused".into()).into_error("GET https://x/y");
        assert_eq!(e.message(), "GET https://x/y failed: connect: connection refused");
    }
}
