//! What a connector says about itself (WIT `handler.describe`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::check_kebab_case;

/// The JSON Schema keyword that marks a config field as a credential (`"x-secret": true`).
pub const SECRET_KEYWORD: &str = "x-secret";

/// Whether an operation produces records or acts on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperationKind {
    /// Called through `poll`.
    Trigger,
    /// Called through `invoke`.
    Action,
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OperationKind::Trigger => "trigger",
            OperationKind::Action => "action",
        })
    }
}

/// One operation of a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Kebab-case name, unique within the connector.
    pub name: String,
    /// Trigger or action.
    pub kind: OperationKind,
    /// One line for humans.
    pub description: String,
    /// JSON Schema of a trigger's static params.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<Value>,
    /// JSON Schema of an action's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// JSON Schema of a trigger's records or an action's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

/// The connector's self-description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorInfo {
    /// Kebab-case connector id.
    pub id: String,
    /// Semantic version.
    pub version: String,
    /// Human title.
    pub title: String,
    /// A paragraph for humans.
    pub description: String,
    /// JSON Schema of a connection config; secret fields carry `"x-secret": true`.
    pub config_schema: Value,
    /// The operations, in the connector's order.
    pub operations: Vec<Operation>,
    /// Outbound host patterns the connector needs (`host:port`, `*.example.com`,
    /// `{config.base_url}`).
    pub hosts: Vec<String>,
    /// Whether `verify-webhook` is implemented.
    pub webhook: bool,
}

/// One thing wrong with a connector's self-description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InfoProblem {
    /// Where (`operations[2].name`).
    pub path: String,
    /// What.
    pub message: String,
}

impl ConnectorInfo {
    /// Finds an operation by name.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.name == name)
    }

    /// The names of config fields marked secret at the top level of the config schema.
    pub fn secret_fields(&self) -> Vec<&str> {
        let Some(props) = self.config_schema.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        props
            .iter()
            .filter(|(_, schema)| schema.get(SECRET_KEYWORD).and_then(Value::as_bool) == Some(true))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Dotted paths of every config field marked secret, nested ones included: it follows
    /// `properties`, and the branches of `oneOf`/`anyOf`/`allOf` (so `auth.token` is found in
    /// `{"auth": {"oneOf": [{"properties": {"token": {"x-secret": true}}}]}}`).
    pub fn secret_paths(&self) -> Vec<String> {
        fn walk(schema: &Value, prefix: &str, out: &mut Vec<String>, depth: usize) {
            if depth > 16 {
                return;
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                    if sub.get(SECRET_KEYWORD).and_then(Value::as_bool) == Some(true) && !out.contains(&path)
                    {
                        out.push(path.clone());
                    }
                    walk(sub, &path, out, depth + 1);
                }
            }
            for key in ["oneOf", "anyOf", "allOf"] {
                for branch in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                    walk(branch, prefix, out, depth + 1);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.config_schema, "", &mut out, 0);
        out
    }

    /// Checks the rules the WIT documents: kebab-case id and operation names, unique
    /// operations, a `MAJOR.MINOR.PATCH` version, and schemas that are JSON objects. Returns
    /// every problem found.
    pub fn check(&self) -> Result<(), Vec<InfoProblem>> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| problems.push(InfoProblem { path, message });
        if let Err(e) = check_kebab_case(&self.id) {
            problem("id".into(), e.0);
        }
        if !is_semver(&self.version) {
            problem("version".into(), format!("{:?} is not a MAJOR.MINOR.PATCH version", self.version));
        }
        if !self.config_schema.is_object() {
            problem("config-schema".into(), "must be a JSON Schema object".into());
        }
        for (i, op) in self.operations.iter().enumerate() {
            if let Err(e) = check_kebab_case(&op.name) {
                problem(format!("operations[{i}].name"), e.0);
            }
            if self.operations[..i].iter().any(|o| o.name == op.name) {
                problem(format!("operations[{i}].name"), format!("duplicate operation {:?}", op.name));
            }
            for (field, schema) in [
                ("params-schema", &op.params_schema),
                ("input-schema", &op.input_schema),
                ("output-schema", &op.output_schema),
            ] {
                if schema.as_ref().is_some_and(|s| !s.is_object() && !s.is_boolean()) {
                    problem(format!("operations[{i}].{field}"), "must be a JSON Schema object".into());
                }
            }
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if host.trim().is_empty() {
                problem(format!("hosts[{i}]"), "must not be empty".into());
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info() -> ConnectorInfo {
        ConnectorInfo {
            id: "jira".into(),
            version: "0.1.0".into(),
            title: "Jira".into(),
            description: String::new(),
            config_schema: json!({"type": "object", "properties": {
                "email": {"type": "string"},
                "api_token": {"type": "string", "x-secret": true}
            }}),
            operations: vec![Operation {
                name: "issues-updated".into(),
                kind: OperationKind::Trigger,
                description: String::new(),
                params_schema: Some(json!({"type": "object"})),
                input_schema: None,
                output_schema: None,
            }],
            hosts: vec!["{config.base_url}".into()],
            webhook: false,
        }
    }

    #[test]
    fn good_info_passes_and_lists_secrets() {
        let info = info();
        assert_eq!(info.check(), Ok(()));
        assert_eq!(info.secret_fields(), vec!["api_token"]);
        assert_eq!(info.secret_paths(), vec!["api_token".to_string()]);
        assert!(info.operation("issues-updated").is_some());
    }

    #[test]
    fn secret_paths_follow_nested_properties_and_branches() {
        let mut info = info();
        info.config_schema = json!({"type": "object", "properties": {
            "base_url": {"type": "string"},
            "auth": {"x-secret": true, "oneOf": [
                {"properties": {"type": {"const": "bearer"}, "token": {"type": "string", "x-secret": true}}},
                {"properties": {"type": {"const": "basic"}, "username": {}, "password": {"x-secret": true}}}
            ]}
        }});
        assert_eq!(info.secret_paths(), ["auth", "auth.token", "auth.password"]);
    }

    #[test]
    fn reports_every_problem() {
        let mut info = info();
        info.id = "Jira_Cloud".into();
        info.version = "1.0".into();
        info.operations.push(info.operations[0].clone());
        info.operations[0].params_schema = Some(json!("not a schema"));
        let problems = info.check().err().unwrap_or_default();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["id", "version", "operations[0].params-schema", "operations[1].name"]);
    }
}
