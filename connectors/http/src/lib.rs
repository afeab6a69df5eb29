//! The generic HTTP connector (`http`): any request as the action `request`, any paged JSON
//! list as the trigger `poll-json`.
//!
//! Built on `qiao-sdk` only; it compiles to a `wasm32-wasip2` component and natively, where
//! its unit tests run against `qiao_sdk::testing::MockHost`. `README.md` beside this crate
//! documents the operations, config, error mapping and cursor semantics.

mod action;
mod config;
mod cursor;
mod describe;
mod headers;
mod link_header;
mod poll;
mod urls;
mod values;

use qiao_sdk::{ActionOutput, Batch, Connector, Info, InvokeRequest, PollRequest, Result, Value};

pub use config::DEFAULT_IDEMPOTENCY_HEADER;
pub use describe::{ID, POLL_JSON, REQUEST, VERSION};

/// The generic HTTP connector.
pub struct HttpConnector;

impl Connector for HttpConnector {
    fn describe() -> Info {
        describe::info()
    }

    fn validate_config(config: &Value) -> Result<()> {
        config::Config::load(config).map(|_| ())
    }

    fn poll(req: PollRequest<'_>) -> Result<Batch> {
        match req.op {
            POLL_JSON => poll::run(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        match req.op {
            REQUEST => action::run(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }
}

qiao_sdk::export_connector!(HttpConnector);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::{Error, json};

    #[test]
    fn dispatches_by_operation() {
        let v = json!({});
        let e = HttpConnector::invoke(InvokeRequest {
            op: "poll-json",
            config: &v,
            input: &v,
            idempotency_key: "",
        })
        .unwrap_err();
        assert_eq!(e, Error::permanent("unknown operation \"poll-json\""));
        let e = HttpConnector::poll(PollRequest { op: "request", config: &v, params: &v, cursor: None })
            .unwrap_err();
        assert_eq!(e, Error::permanent("unknown operation \"request\""));
        assert!(HttpConnector::validate_config(&json!({"base_url": "https://x.test"})).is_ok());
        assert!(HttpConnector::validate_config(&json!({"base_url": "x.test"})).is_err());
    }
}
