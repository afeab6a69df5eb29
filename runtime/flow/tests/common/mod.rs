//! A fake connector catalog and secrets for the flow tests (the real connectors are built
//! separately; these descriptions follow what they are expected to say about themselves).

use qiao_contract::{ConnectorInfo, Operation, OperationKind};
use qiao_flow::{MemorySecrets, StaticCatalog};
use serde_json::{Value, json};

fn op(name: &str, kind: OperationKind, params: Option<Value>) -> Operation {
    Operation {
        name: name.into(),
        kind,
        description: format!("{name} (fake)"),
        params_schema: params,
        input_schema: Some(json!({"type": "object"})),
        output_schema: None,
    }
}

fn connector(
    id: &str,
    version: &str,
    config: Value,
    operations: Vec<Operation>,
    webhook: bool,
) -> ConnectorInfo {
    ConnectorInfo {
        id: id.into(),
        version: version.into(),
        title: id.into(),
        description: format!("fake {id} connector"),
        config_schema: config,
        operations,
        hosts: vec!["{config.base_url}".into()],
        webhook,
    }
}

/// jira (0.1.0 and 0.2.0), kingdee, http and dingtalk.
pub fn catalog() -> StaticCatalog {
    use OperationKind::{Action, Trigger};
    let jira_config = json!({
        "type": "object",
        "properties": {
            "base_url": {"type": "string"},
            "email": {"type": "string"},
            "api_token": {"type": "string", "x-secret": true}
        },
        "required": ["base_url", "email", "api_token"],
        "additionalProperties": false
    });
    let jira_ops = vec![
        op(
            "worklogs-updated",
            Trigger,
            Some(json!({
                "type": "object",
                "properties": {
                    "project": {"type": "string", "minLength": 1},
                    "since_days": {"type": "integer", "minimum": 1}
                },
                "required": ["project"],
                "additionalProperties": false
            })),
        ),
        op(
            "issues-updated",
            Trigger,
            Some(json!({"type": "object", "properties": {"jql": {"type": "string"}}})),
        ),
        op("create-issue", Action, None),
        op("add-comment", Action, None),
    ];
    let kingdee_config = json!({
        "type": "object",
        "properties": {
            "base_url": {"type": "string"},
            "acct_id": {"type": "string"},
            "app_id": {"type": "string"},
            "app_secret": {"type": "string", "x-secret": true},
            "user": {"type": "string"},
            "lcid": {"type": "integer", "enum": [2052, 1033]}
        },
        "required": ["base_url", "acct_id", "app_id", "app_secret", "user"],
        "additionalProperties": false
    });
    // Mirrors connectors/http/src/describe.rs (config, poll-json params).
    let scalar = json!({"type": ["string", "number", "boolean", "null"]});
    let http_config = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "base_url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]+[^?#\\s]*$"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "auth": {
                "x-secret": true,
                "oneOf": [
                    {"type": "object", "additionalProperties": false, "required": ["type", "token"],
                     "properties": {"type": {"const": "bearer"}, "token": {"type": "string", "minLength": 1, "x-secret": true}}},
                    {"type": "object", "additionalProperties": false, "required": ["type", "username", "password"],
                     "properties": {"type": {"const": "basic"}, "username": {"type": "string", "minLength": 1},
                                    "password": {"type": "string", "x-secret": true}}}
                ]
            },
            "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64},
            "idempotency_header": {"type": "string"}
        }
    });
    let poll_json = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "minLength": 1},
            "query": {"type": "object", "additionalProperties": {"anyOf": [scalar, {"type": "array", "items": scalar}]}},
            "headers": {"type": "object", "additionalProperties": scalar},
            "records_path": {"type": "string"},
            "id_field": {"type": "string"},
            "pagination": {"oneOf": [
                {"type": "object", "additionalProperties": false, "required": ["type"], "properties": {"type": {"const": "none"}}},
                {"type": "object", "additionalProperties": false, "required": ["type"], "properties": {
                    "type": {"const": "page"}, "param": {"type": "string", "minLength": 1},
                    "start": {"type": "integer", "minimum": 0}, "size_param": {"type": "string", "minLength": 1},
                    "size": {"type": "integer", "minimum": 1}}},
                {"type": "object", "additionalProperties": false, "required": ["type", "path"], "properties": {
                    "type": {"const": "next-link"}, "path": {"type": "string", "minLength": 1}}}
            ]},
            "since": {"type": "object", "additionalProperties": false, "required": ["field", "param"], "properties": {
                "field": {"type": "string", "minLength": 1}, "param": {"type": "string", "minLength": 1},
                "initial": {"type": ["string", "number"]}}}
        }
    });
    StaticCatalog::new(vec![
        connector("jira", "0.1.3", jira_config.clone(), jira_ops.clone(), true),
        connector("jira", "0.2.0", jira_config, jira_ops, true),
        connector(
            "kingdee",
            "0.1.0",
            kingdee_config,
            vec![
                op("save", Action, None),
                op("batch-save", Action, None),
                op("bills-updated", Trigger, Some(json!({"type": "object", "required": ["form_id"]}))),
            ],
            false,
        ),
        connector(
            "http",
            "0.1.0",
            http_config,
            vec![op("poll-json", Trigger, Some(poll_json)), op("request", Action, None)],
            false,
        ),
        connector(
            "dingtalk",
            "0.1.0",
            json!({"type": "object", "properties": {"app_key": {"type": "string"}, "app_secret": {"type": "string", "x-secret": true}}}),
            vec![op("approval-events", Trigger, None), op("send-robot-message", Action, None)],
            true,
        ),
    ])
}

/// The environment and secrets the example flows use.
pub fn secrets() -> MemorySecrets {
    MemorySecrets::new()
        .with_env("JIRA_URL", "https://jira.example.test")
        .with_env("JIRA_EMAIL", "bot@example.test")
        .with_env("K3_URL", "https://k3.example.test/k3cloud")
        .with_env("K3_ACCT", "62c4f4b9a1b2c3")
        .with_env("K3_APP_ID", "300001_abc")
        .with_env("SHOP_URL", "https://shop.example.test")
        .with_env("ERP_URL", "https://erp.example.test")
        .with_secret("jira_token", "jira-s3cr3t")
        .with_secret("k3_secret", "k3-s3cr3t")
        .with_secret("shop_token", "shop-s3cr3t")
        .with_secret("hook_secret", "hook-s3cr3t")
}
