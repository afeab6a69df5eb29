//! What `describe()` reports: config schema, operations and their schemas, granted hosts.

use qiao_sdk::{Info, Operation, OperationKind, Value, json};

fn form_id() -> Value {
    json!({"type": "string", "description": "FormId, e.g. PRJ_LaborCost, PUR_Requisition"})
}

fn save_input() -> Value {
    json!({
        "type": "object",
        "required": ["form_id", "model"],
        "additionalProperties": false,
        "properties": {
            "form_id": form_id(),
            "model": {"type": "object", "description": "The bill (Save's Model): base data as {\"FNumber\": ...}, entries as arrays"},
            "options": {"type": "object", "description": "Other Save options merged into data (NeedUpDateFields, IsVerifyBaseDataField, ...)"},
            "dedup_field": {"type": "string", "default": "FNote", "description": "Field carrying the idempotency marker qiao:<key>; \"\" turns duplicate protection off"}
        }
    })
}

fn operate_input() -> Value {
    json!({
        "type": "object",
        "required": ["form_id"],
        "additionalProperties": false,
        "properties": {
            "form_id": form_id(),
            "numbers": {"type": "array", "items": {"type": "string"}},
            "ids": {"type": "array", "items": {"type": ["integer", "string"]}}
        }
    })
}

fn bill() -> Value {
    json!({"type": "object", "properties": {"Id": {}, "Number": {"type": "string"}}})
}

fn action(name: &str, description: &str, input: Value, output: Value) -> Operation {
    Operation {
        name: name.into(),
        kind: OperationKind::Action,
        description: description.into(),
        params_schema: None,
        input_schema: Some(input),
        output_schema: Some(output),
    }
}

/// The connector's description.
pub fn info() -> Info {
    Info {
        id: "kingdee".into(),
        version: "0.1.0".into(),
        title: "Kingdee K/3 Cloud (金蝶云星空)".into(),
        description: "Bills in Kingdee K/3 Cloud over its WebAPI: query with a changed-since cursor, save (with duplicate protection), batch-save, submit, audit, view, delete.".into(),
        config_schema: json!({
            "type": "object",
            "required": ["base_url", "acct_id", "user_name"],
            "additionalProperties": false,
            "properties": {
                "base_url": {"type": "string", "description": "K/3 Cloud site, e.g. https://erp.example.com/k3cloud (/k3cloud is added when missing)"},
                "acct_id": {"type": "string", "description": "Data center (账套) id"},
                "user_name": {"type": "string", "description": "Integration user"},
                "app_id": {"type": "string", "description": "Third-party app id (auth sign / app-secret)"},
                "app_secret": {"type": "string", "x-secret": true, "description": "App secret (auth sign / app-secret)"},
                "password": {"type": "string", "x-secret": true, "description": "User password (auth password only)"},
                "lcid": {"type": "integer", "default": 2052, "description": "2052 zh-CN, 1033 en-US, 3076 zh-TW"},
                "auth": {"type": "string", "enum": ["sign", "app-secret", "password"], "default": "sign",
                         "description": "LoginBySign, LoginByAppSecret or ValidateUser"},
                "timeout_ms": {"type": "integer", "minimum": 1}
            }
        }),
        operations: vec![
            Operation {
                name: "bill-query".into(),
                kind: OperationKind::Trigger,
                description: "Rows of ExecuteBillQuery as named records, paged; with modified_field, only rows changed since the last poll.".into(),
                params_schema: Some(json!({
                    "type": "object",
                    "required": ["form_id", "field_keys"],
                    "additionalProperties": false,
                    "properties": {
                        "form_id": form_id(),
                        "field_keys": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "filter": {"type": "string", "description": "FilterString, e.g. FDocumentStatus='C'"},
                        "order": {"type": "string", "default": "FID ASC", "description": "OrderString when modified_field is not set"},
                        "modified_field": {"type": "string", "description": "e.g. FModifyDate: changed-since cursor"},
                        "page_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 500}
                    }
                })),
                input_schema: None,
                output_schema: Some(json!({"type": "object", "description": "field key → value"})),
            },
            action("save", "Saves one bill (Save); a retry finds a bill already saved under the same idempotency key instead of saving twice.", save_input(),
                   json!({"type": "object", "properties": {"Id": {}, "Number": {"type": "string"}, "deduplicated": {"type": "boolean"}}})),
            action("batch-save", "Saves several bills in one BatchSave; one outcome per model, in order.",
                   json!({"type": "object", "required": ["form_id", "models"], "additionalProperties": false, "properties": {
                       "form_id": form_id(), "models": {"type": "array", "items": {"type": "object"}, "minItems": 1},
                       "options": {"type": "object"}, "dedup_field": {"type": "string", "default": "FNote"}}}),
                   json!({"type": "object", "properties": {"saved": {"type": "integer"}, "failed": {"type": "integer"}, "results": {"type": "array"}}})),
            action("submit", "Submits bills by numbers or ids.", operate_input(), json!({"type": "object", "properties": {"items": {"type": "array", "items": bill()}}})),
            action("audit", "Audits bills by numbers or ids.", operate_input(), json!({"type": "object", "properties": {"items": {"type": "array", "items": bill()}}})),
            action("delete", "Deletes bills by numbers or ids.", operate_input(), json!({"type": "object", "properties": {"items": {"type": "array", "items": bill()}}})),
            action("view", "Reads one bill by number or id.",
                   json!({"type": "object", "required": ["form_id"], "additionalProperties": false, "properties": {
                       "form_id": form_id(), "number": {"type": "string"}, "id": {"type": ["integer", "string"]}}}),
                   json!({"type": "object"})),
            action("save-submit-audit", "Save, then Submit, then Audit; stops at the first failing stage and names it.", save_input(),
                   json!({"type": "object", "properties": {"Id": {}, "Number": {"type": "string"}, "FDocumentStatus": {"type": "string"}}})),
        ],
        hosts: vec!["{config.base_url}".into()],
        webhook: false,
    }
}
