//! What the connector says about itself: operations and their JSON Schemas.
//!
//! The schemas live in `schemas/*.json` beside this crate, where they read as documentation,
//! and are embedded as text: parsing them at `describe` time keeps the component far smaller
//! than building them with `json!`.

use qiao_sdk::{Info, Operation, OperationKind, Value, json};

/// The connector id.
pub const ID: &str = "http";
/// The connector version.
pub const VERSION: &str = "0.1.0";
/// The action name.
pub const REQUEST: &str = "request";
/// The trigger name.
pub const POLL_JSON: &str = "poll-json";

const CONFIG_SCHEMA: &str = include_str!("../schemas/config.json");
const REQUEST_INPUT_SCHEMA: &str = include_str!("../schemas/request.input.json");
const REQUEST_OUTPUT_SCHEMA: &str = include_str!("../schemas/request.output.json");
const POLL_PARAMS_SCHEMA: &str = include_str!("../schemas/poll-json.params.json");

pub(crate) fn info() -> Info {
    Info {
        id: ID.into(),
        version: VERSION.into(),
        title: "HTTP".into(),
        description: "Calls any HTTP API: one request per action, or a paged JSON list as a trigger \
                      with an optional since-watermark."
            .into(),
        config_schema: schema(CONFIG_SCHEMA),
        operations: vec![
            Operation {
                name: REQUEST.into(),
                kind: OperationKind::Action,
                description: "Sends one HTTP request and returns its status, headers and body.".into(),
                params_schema: None,
                input_schema: Some(schema(REQUEST_INPUT_SCHEMA)),
                output_schema: Some(schema(REQUEST_OUTPUT_SCHEMA)),
            },
            Operation {
                name: POLL_JSON.into(),
                kind: OperationKind::Trigger,
                description: "Fetches a JSON list page by page and emits each element as a record.".into(),
                params_schema: Some(schema(POLL_PARAMS_SCHEMA)),
                input_schema: None,
                output_schema: Some(json!({
                    "description": "One element of the records array, as the API returned it."
                })),
            },
        ],
        hosts: vec!["{config.base_url}".into()],
        webhook: false,
    }
}

/// An embedded schema; the tests prove each one parses, so the fallback (accept anything) is
/// never used.
fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_as_objects() {
        for text in [CONFIG_SCHEMA, REQUEST_INPUT_SCHEMA, REQUEST_OUTPUT_SCHEMA, POLL_PARAMS_SCHEMA] {
            let parsed: Result<Value, _> = serde_json::from_str(text);
            assert!(parsed.is_ok_and(|v| v.is_object()), "{text}");
        }
    }

    #[test]
    fn info_passes_the_contract_checks() {
        let info = info();
        assert_eq!(info.check(), Ok(()));
        assert_eq!(info.hosts, ["{config.base_url}"]);
        assert!(info.operation(REQUEST).is_some_and(|op| op.kind == OperationKind::Action));
        assert!(info.operation(POLL_JSON).is_some_and(|op| op.kind == OperationKind::Trigger));
        let idempotency = &info.config_schema["properties"]["idempotency_header"]["default"];
        assert_eq!(idempotency, crate::config::DEFAULT_IDEMPOTENCY_HEADER);
    }

    #[test]
    fn secrets_are_marked() {
        let schema = schema(CONFIG_SCHEMA);
        let variants = schema["properties"]["auth"]["oneOf"].as_array().cloned().unwrap_or_default();
        let secret = |i: usize, field: &str| variants[i]["properties"][field]["x-secret"] == json!(true);
        assert!(secret(0, "token"));
        assert!(secret(1, "password"));
        assert!(!secret(1, "username"));
        assert!(secret(2, "value"));
        assert_eq!(info().secret_fields(), ["auth"]);
    }
}
