//! The trait a connector implements, and what each call receives.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ActionOutput, Batch, Error, ErrorClass, Info, Result, WebhookResult};

/// A connector. The host makes a fresh instance for every call, so the methods are static:
/// anything that must survive between calls goes through [`crate::kv`].
///
/// Only [`Connector::describe`] is required. An operation the connector does not have must
/// answer [`unknown_operation`]; the defaults do that for every name.
pub trait Connector {
    /// The connector's self-description. Must not call any host import.
    fn describe() -> Info;

    /// Checks a connection config without side effects (no network calls). The default
    /// accepts every config; a typical implementation is `parse_config::<MyConfig>(config)`
    /// followed by checks of the values.
    fn validate_config(config: &Value) -> Result<()> {
        let _ = config;
        Ok(())
    }

    /// Runs trigger operation `req.op` and returns one page of records.
    fn poll(req: PollRequest<'_>) -> Result<Batch> {
        Err(unknown_operation(req.op))
    }

    /// Runs action operation `req.op` on one input.
    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        Err(unknown_operation(req.op))
    }

    /// Verifies and decodes a webhook delivery. Only called when `describe()` says
    /// `webhook: true`.
    fn verify_webhook(req: WebhookRequest<'_>) -> Result<WebhookResult> {
        let _ = req;
        Err(Error::permanent("this connector does not accept webhooks"))
    }
}

/// A call to a trigger operation.
#[derive(Debug, Clone, Copy)]
pub struct PollRequest<'a> {
    /// The operation name.
    pub op: &'a str,
    /// The connection config.
    pub config: &'a Value,
    /// The flow's static params for this trigger.
    pub params: &'a Value,
    /// The cursor returned with the previous batch and committed by the host; `None` on the
    /// first poll.
    pub cursor: Option<&'a str>,
}

impl PollRequest<'_> {
    /// The connection config as `T`; a mismatch is a `config` error naming the field.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        parse_config(self.config)
    }

    /// The params as `T`; a mismatch is a `config` error naming the field (params are static
    /// flow configuration).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T> {
        parse_params(self.params)
    }
}

/// A call to an action operation.
#[derive(Debug, Clone, Copy)]
pub struct InvokeRequest<'a> {
    /// The operation name.
    pub op: &'a str,
    /// The connection config.
    pub config: &'a Value,
    /// The input of this step.
    pub input: &'a Value,
    /// Stable across retries of the same record and step; pass it to systems that deduplicate
    /// on it.
    pub idempotency_key: &'a str,
}

impl InvokeRequest<'_> {
    /// The connection config as `T`; a mismatch is a `config` error naming the field.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        parse_config(self.config)
    }

    /// The input as `T`; a mismatch is an `invalid-input` error naming the field.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T> {
        parse_input(self.input)
    }
}

/// A webhook delivery.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The connection config.
    pub config: &'a Value,
    /// The request headers as received, in order.
    pub headers: &'a [(String, String)],
    /// The raw request body (verify signatures over these bytes).
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    /// The connection config as `T`; a mismatch is a `config` error naming the field.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        parse_config(self.config)
    }

    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON `T`; a mismatch is an `invalid-input` error naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let mut de = serde_json::Deserializer::from_slice(self.body);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| Error::invalid_input(describe_failure("body", &e)))
    }
}

/// Deserializes a connection config; a mismatch is a `config` error naming the field, such as
/// ``config.auth: missing field `token` `` or
/// ``config.retries[1]: invalid type: string "two", expected u32``.
pub fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T> {
    from_value(config, "config").map_err(Error::config)
}

/// Deserializes a trigger's params; a mismatch is a `config` error naming the field.
pub fn parse_params<T: DeserializeOwned>(params: &Value) -> Result<T> {
    from_value(params, "params").map_err(Error::config)
}

/// Deserializes an action's input; a mismatch is an `invalid-input` error naming the field.
pub fn parse_input<T: DeserializeOwned>(input: &Value) -> Result<T> {
    from_value(input, "input").map_err(Error::invalid_input)
}

/// The error for an operation name the connector does not have: a `permanent` error
/// `unknown operation "x"`.
pub fn unknown_operation(op: &str) -> Error {
    Error::permanent(format!("unknown operation {op:?}"))
}

/// An error of `class` with `message`; `retry_after_ms` is kept for `rate-limited` only. For
/// mapping a vendor's error codes or [`crate::http::status_class`] to an error with a better
/// message.
pub fn error_of_class(class: ErrorClass, message: impl Into<String>, retry_after_ms: Option<u64>) -> Error {
    let message = message.into();
    match class {
        ErrorClass::Config => Error::config(message),
        ErrorClass::Unauthorized => Error::unauthorized(message),
        ErrorClass::RateLimited => Error::rate_limited(message, retry_after_ms),
        ErrorClass::InvalidInput => Error::invalid_input(message),
        ErrorClass::Transient => Error::transient(message),
        ErrorClass::Permanent => Error::permanent(message),
    }
}

fn from_value<T: DeserializeOwned>(value: &Value, what: &str) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| describe_failure(what, &e))
}

fn describe_failure<E: std::fmt::Display>(what: &str, e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." { format!("{what}: {}", e.inner()) } else { format!("{what}.{path}: {}", e.inner()) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Config {
        base_url: String,
        auth: Auth,
        #[serde(default)]
        retries: Vec<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Auth {
        token: String,
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = parse_config::<Config>(&json!({"base_url": "x", "auth": {"token": 5}})).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        assert_eq!(e.message(), "config.auth.token: invalid type: integer `5`, expected a string");

        let e = parse_config::<Config>(&json!({"base_url": "x", "auth": {}})).unwrap_err();
        assert_eq!(e.message(), "config.auth: missing field `token`");

        let e = parse_config::<Config>(&json!({"auth": {"token": "t"}})).unwrap_err();
        assert_eq!(e.message(), "config: missing field `base_url`");

        let e =
            parse_config::<Config>(&json!({"base_url": "x", "auth": {"token": "t"}, "retries": [1, "two"]}))
                .unwrap_err();
        assert_eq!(e.message(), "config.retries[1]: invalid type: string \"two\", expected u32");
    }

    #[test]
    fn params_are_config_errors_and_input_is_invalid_input() {
        let params = json!({"base_url": 1});
        let req = PollRequest { op: "x", config: &Value::Null, params: &params, cursor: None };
        let e = req.params::<Config>().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        assert!(e.message().starts_with("params.base_url: "), "{e}");

        let input = json!({"auth": {"token": []}, "base_url": "x"});
        let req = InvokeRequest { op: "x", config: &Value::Null, input: &input, idempotency_key: "k" };
        let e = req.input::<Config>().unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.message().starts_with("input.auth.token: "), "{e}");
    }

    #[test]
    fn webhook_helpers() {
        let headers = vec![("X-Signature".to_string(), "abc".to_string())];
        let req = WebhookRequest { config: &Value::Null, headers: &headers, body: b"{\"token\": 1}" };
        assert_eq!(req.header("x-signature"), Some("abc"));
        assert_eq!(req.header("missing"), None);
        let e = req.json::<Auth>().unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.message().starts_with("body.token: "), "{e}");
    }

    struct Bare;
    impl Connector for Bare {
        fn describe() -> Info {
            Info {
                id: "bare".into(),
                version: "0.1.0".into(),
                title: "Bare".into(),
                description: String::new(),
                config_schema: json!({"type": "object"}),
                operations: vec![],
                hosts: vec![],
                webhook: false,
            }
        }
    }

    #[test]
    fn defaults_refuse_unknown_operations_and_webhooks() {
        let v = Value::Null;
        let e = Bare::poll(PollRequest { op: "nope", config: &v, params: &v, cursor: None }).unwrap_err();
        assert_eq!(e, Error::permanent("unknown operation \"nope\""));
        let e =
            Bare::invoke(InvokeRequest { op: "x", config: &v, input: &v, idempotency_key: "" }).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = Bare::verify_webhook(WebhookRequest { config: &v, headers: &[], body: &[] }).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(Bare::validate_config(&v).is_ok());
    }
}
