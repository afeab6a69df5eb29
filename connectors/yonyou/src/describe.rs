//! What the connector says about itself. The schemas live in `schemas/*.json` beside this
//! crate and are embedded as text.

use qiao_sdk::{Info, Operation, OperationKind, Value, json};

/// The connector id.
pub const ID: &str = "yonyou";
/// The connector version.
pub const VERSION: &str = "0.1.0";
/// The trigger.
pub const LIST: &str = "list";
/// The save action.
pub const SAVE: &str = "save";
/// The generic call action.
pub const CALL: &str = "call";

const CONFIG_SCHEMA: &str = include_str!("../schemas/config.json");
const LIST_PARAMS_SCHEMA: &str = include_str!("../schemas/list.params.json");
const SAVE_INPUT_SCHEMA: &str = include_str!("../schemas/save.input.json");
const CALL_INPUT_SCHEMA: &str = include_str!("../schemas/call.input.json");

pub(crate) fn info() -> Info {
    Info {
        id: ID.into(),
        version: VERSION.into(),
        title: "Yonyou YonBIP".into(),
        description: "Yonyou YonBIP / YonSuite open API (self-built app): paged lists as a trigger, \
                      document saves with per-item batch outcomes, and any API call."
            .into(),
        config_schema: schema(CONFIG_SCHEMA),
        operations: vec![
            Operation {
                name: LIST.into(),
                kind: OperationKind::Trigger,
                description: "Reads any paged list API page by page, optionally only rows changed since the last round.".into(),
                params_schema: Some(schema(LIST_PARAMS_SCHEMA)),
                input_schema: None,
                output_schema: Some(json!({"description": "One row of recordList, as the API returned it."})),
            },
            Operation {
                name: SAVE.into(),
                kind: OperationKind::Action,
                description: "Saves one document, or a list through the batch save API with one outcome per item.".into(),
                params_schema: None,
                input_schema: Some(schema(SAVE_INPUT_SCHEMA)),
                output_schema: Some(json!({"description": "The saved document's data; for a list {count, successCount, failCount, messages}."})),
            },
            Operation {
                name: CALL.into(),
                kind: OperationKind::Action,
                description: "Calls any API under the gateway with the access token and returns its data.".into(),
                params_schema: None,
                input_schema: Some(schema(CALL_INPUT_SCHEMA)),
                output_schema: Some(json!({"description": "The answer's data."})),
            },
        ],
        hosts: vec!["{config.base_url}".into(), "{config.token_url}".into()],
        webhook: false,
    }
}

/// An embedded schema; the tests prove each parses, so the fallback is never used.
fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_passes_the_contract_checks() {
        for text in [CONFIG_SCHEMA, LIST_PARAMS_SCHEMA, SAVE_INPUT_SCHEMA, CALL_INPUT_SCHEMA] {
            assert!(serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()), "{text}");
        }
        let info = info();
        assert_eq!(info.check(), Ok(()));
        assert_eq!(info.secret_fields(), ["app_secret"]);
        assert!(info.operation(LIST).is_some_and(|op| op.kind == OperationKind::Trigger));
        assert!(info.operation(SAVE).is_some_and(|op| op.kind == OperationKind::Action));
        assert!(info.operation(CALL).is_some_and(|op| op.kind == OperationKind::Action));
    }
}
