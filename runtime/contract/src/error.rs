//! The classified connector error (WIT `types.error`).

use serde::{Deserialize, Serialize};

/// The class of a connector error; it decides the engine's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The connection config is wrong. Not retried.
    Config,
    /// Credentials refused. Retried once after a token refresh.
    Unauthorized,
    /// Throttled. Retried with backoff, honouring retry-after.
    RateLimited,
    /// The input was refused. Not retried.
    InvalidInput,
    /// May go away by itself. Retried with backoff.
    Transient,
    /// Will not go away by retrying. Not retried.
    Permanent,
}

impl ErrorClass {
    /// The class name as written in WIT, logs and the admin API (`rate-limited`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Config => "config",
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::InvalidInput => "invalid-input",
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }

    /// Whether the engine retries errors of this class with backoff.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::RateLimited | ErrorClass::Transient)
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified error returned by a connector (WIT `types.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "kebab-case")]
pub enum ConnectorError {
    /// The connection config is wrong.
    #[error("config error: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The remote system refused the credentials.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// What the remote system said.
        message: String,
    },
    /// The remote system throttled the call.
    #[error("rate limited: {message}{}", retry_after_suffix(*retry_after_ms))]
    RateLimited {
        /// What the remote system said.
        message: String,
        /// How long to wait, when known.
        retry_after_ms: Option<u64>,
    },
    /// The input was refused as invalid.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// Why.
        message: String,
    },
    /// A failure that may go away by itself.
    #[error("transient error: {message}")]
    Transient {
        /// What happened.
        message: String,
    },
    /// A failure that will not go away by retrying.
    #[error("permanent error: {message}")]
    Permanent {
        /// What happened.
        message: String,
    },
}

fn retry_after_suffix(ms: Option<u64>) -> String {
    ms.map(|ms| format!(" (retry after {ms} ms)")).unwrap_or_default()
}

impl ConnectorError {
    /// A `config` error.
    pub fn config(message: impl Into<String>) -> Self {
        ConnectorError::Config { message: message.into() }
    }
    /// An `unauthorized` error.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ConnectorError::Unauthorized { message: message.into() }
    }
    /// A `rate-limited` error.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        ConnectorError::RateLimited { message: message.into(), retry_after_ms }
    }
    /// An `invalid-input` error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        ConnectorError::InvalidInput { message: message.into() }
    }
    /// A `transient` error.
    pub fn transient(message: impl Into<String>) -> Self {
        ConnectorError::Transient { message: message.into() }
    }
    /// A `permanent` error.
    pub fn permanent(message: impl Into<String>) -> Self {
        ConnectorError::Permanent { message: message.into() }
    }

    /// The error's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectorError::Config { .. } => ErrorClass::Config,
            ConnectorError::Unauthorized { .. } => ErrorClass::Unauthorized,
            ConnectorError::RateLimited { .. } => ErrorClass::RateLimited,
            ConnectorError::InvalidInput { .. } => ErrorClass::InvalidInput,
            ConnectorError::Transient { .. } => ErrorClass::Transient,
            ConnectorError::Permanent { .. } => ErrorClass::Permanent,
        }
    }

    /// The message, without the class.
    pub fn message(&self) -> &str {
        match self {
            ConnectorError::Config { message }
            | ConnectorError::Unauthorized { message }
            | ConnectorError::RateLimited { message, .. }
            | ConnectorError::InvalidInput { message }
            | ConnectorError::Transient { message }
            | ConnectorError::Permanent { message } => message,
        }
    }

    /// The wait the remote system asked for, for `rate-limited` errors.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ConnectorError::RateLimited { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_class_and_retry_after() {
        let e = ConnectorError::rate_limited("too many requests", Some(1500));
        assert_eq!(e.to_string(), "rate limited: too many requests (retry after 1500 ms)");
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert!(e.class().is_retryable());
        assert!(!ConnectorError::invalid_input("x").class().is_retryable());
    }

    #[test]
    fn serializes_with_class_tag() -> Result<(), serde_json::Error> {
        let json = serde_json::to_value(ConnectorError::transient("reset"))?;
        assert_eq!(json, serde_json::json!({"class": "transient", "message": "reset"}));
        let back: ConnectorError = serde_json::from_value(json)?;
        assert_eq!(back, ConnectorError::transient("reset"));
        Ok(())
    }
}
