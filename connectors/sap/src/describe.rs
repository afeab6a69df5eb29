//! What the connector says about itself: operations and their JSON Schemas (embedded from
//! `schemas/`).

use qiao_sdk::{Info, Operation, OperationKind, Value, json};

/// The connector id.
pub const ID: &str = "sap";
/// The connector version.
pub const VERSION: &str = "0.1.0";
/// The trigger.
pub const ENTITIES_CHANGED: &str = "entities-changed";
/// Action: read one entity.
pub const GET: &str = "get";
/// Action: read a filtered list.
pub const QUERY: &str = "query";
/// Action: create (one, or a list through `$batch`).
pub const CREATE: &str = "create";
/// Action: update (one, or a list through `$batch`).
pub const UPDATE: &str = "update";

const CONFIG_SCHEMA: &str = include_str!("../schemas/config.json");
const TRIGGER_PARAMS: &str = include_str!("../schemas/entities-changed.params.json");
const GET_INPUT: &str = include_str!("../schemas/get.input.json");
const QUERY_INPUT: &str = include_str!("../schemas/query.input.json");
const CREATE_INPUT: &str = include_str!("../schemas/create.input.json");
const UPDATE_INPUT: &str = include_str!("../schemas/update.input.json");

fn action(name: &str, description: &str, input: &str, output: Value) -> Operation {
    Operation {
        name: name.into(),
        kind: OperationKind::Action,
        description: description.into(),
        params_schema: None,
        input_schema: Some(schema(input)),
        output_schema: Some(output),
    }
}

pub(crate) fn info() -> Info {
    Info {
        id: ID.into(),
        version: VERSION.into(),
        title: "SAP S/4HANA".into(),
        description: "SAP S/4HANA OData APIs (v2 and v4): changed entities as a trigger; get, query, create and \
                      update (bulk through $batch) with the CSRF handshake and ETags."
            .into(),
        config_schema: schema(CONFIG_SCHEMA),
        operations: vec![
            Operation {
                name: ENTITIES_CHANGED.into(),
                kind: OperationKind::Trigger,
                description: "Entities of one entity set whose change timestamp moved since the last poll, oldest first."
                    .into(),
                params_schema: Some(schema(TRIGGER_PARAMS)),
                input_schema: None,
                output_schema: Some(json!({"type": "object", "description": "The entity, values normalized; its ETag as _etag."})),
            },
            action(GET, "Reads one entity by key.", GET_INPUT, json!({"type": "object"})),
            action(QUERY, "Reads every entity matching a filter, following server paging.", QUERY_INPUT, json!({"type": "array"})),
            action(
                CREATE,
                "Creates an entity (deep insert through navigation properties), or a list of them in one $batch.",
                CREATE_INPUT,
                json!({"type": "object"}),
            ),
            action(
                UPDATE,
                "Changes an entity under its ETag (PATCH, MERGE or PUT), or a list of them in one $batch.",
                UPDATE_INPUT,
                json!({"type": "object", "properties": {"entity_set": {"type": "string"}, "key": {"type": "string"}, "_etag": {}}}),
            ),
        ],
        hosts: vec!["{config.base_url}".into()],
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
    fn schemas_parse_and_info_passes_the_contract_checks() {
        for text in [CONFIG_SCHEMA, TRIGGER_PARAMS, GET_INPUT, QUERY_INPUT, CREATE_INPUT, UPDATE_INPUT] {
            assert!(serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()), "{text}");
        }
        let info = info();
        assert_eq!(info.check(), Ok(()));
        assert_eq!(info.secret_paths(), ["oauth", "oauth.client_secret", "password"]);
        assert!(info.operation(ENTITIES_CHANGED).is_some_and(|o| o.kind == OperationKind::Trigger));
        for op in [GET, QUERY, CREATE, UPDATE] {
            assert!(info.operation(op).is_some_and(|o| o.kind == OperationKind::Action), "{op}");
        }
    }
}
