//! Static values: connection config and trigger params, with `${env.NAME}` and
//! `${secret.NAME}` resolved at load time.
//!
//! Unlike templates, static values are not expressions: a string is a string, except for
//! `${env.NAME}` / `${secret.NAME}` references inside it (`$${` writes a literal `${`). A
//! string that received a secret becomes [`StaticValue::Secret`], so the resolved config can be
//! logged or debug-printed without leaking it.

use crate::secrets::{Secret, SecretSource};
use crate::source_map::{index_path, key_path};
use crate::spec::Data;

/// A resolved static value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StaticValue {
    /// `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string without secret material.
    String(String),
    /// A string that contains secret material; prints as `***`.
    Secret(Secret),
    /// A list.
    List(Vec<StaticValue>),
    /// A mapping, in file order.
    Map(Vec<(String, StaticValue)>),
}

impl StaticValue {
    /// The value as JSON with secrets in clear text, for the connector that needs them.
    pub fn expose(&self) -> serde_json::Value {
        self.to_json(false)
    }

    /// The value as JSON with every secret replaced by `"***"`, for logs and listings.
    pub fn redacted(&self) -> serde_json::Value {
        self.to_json(true)
    }

    fn to_json(&self, redact: bool) -> serde_json::Value {
        use serde_json::Value;
        match self {
            StaticValue::Null => Value::Null,
            StaticValue::Bool(b) => Value::Bool(*b),
            StaticValue::Number(n) => Value::Number(n.clone()),
            StaticValue::String(s) => Value::String(s.clone()),
            StaticValue::Secret(s) => Value::String(if redact { "***".into() } else { s.expose().clone() }),
            StaticValue::List(items) => Value::Array(items.iter().map(|v| v.to_json(redact)).collect()),
            StaticValue::Map(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json(redact))).collect())
            }
        }
    }

    /// The entry `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&StaticValue> {
        match self {
            StaticValue::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Paths (relative, `a.b[1]`) of every secret inside.
    pub(crate) fn secret_paths(&self, base: &str, out: &mut Vec<String>) {
        match self {
            StaticValue::Secret(_) => out.push(base.to_string()),
            StaticValue::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    v.secret_paths(&index_path(base, i), out);
                }
            }
            StaticValue::Map(entries) => {
                for (k, v) in entries {
                    v.secret_paths(&key_path(base, k), out);
                }
            }
            _ => {}
        }
    }
}

/// Whether `s` contains a `${...}` reference.
pub(crate) fn has_reference(s: &str) -> bool {
    s.replace("$${", "").contains("${")
}

/// Resolves every reference in `data`. Problems are pushed as (path, message); the returned
/// value is complete either way (unresolvable references become empty text).
pub(crate) fn resolve(
    data: &Data,
    path: &str,
    secrets: &dyn SecretSource,
    problems: &mut Vec<(String, String)>,
) -> StaticValue {
    match data {
        Data::Null => StaticValue::Null,
        Data::Bool(b) => StaticValue::Bool(*b),
        Data::Number(n) => StaticValue::Number(n.clone()),
        Data::String(s) => {
            let (text, secret, errors) = interpolate(s, secrets);
            problems.extend(errors.into_iter().map(|m| (path.to_string(), m)));
            if secret { StaticValue::Secret(Secret::new(text)) } else { StaticValue::String(text) }
        }
        Data::List(items) => StaticValue::List(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| resolve(v, &index_path(path, i), secrets, problems))
                .collect(),
        ),
        Data::Map(entries) => StaticValue::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), resolve(v, &key_path(path, k), secrets, problems)))
                .collect(),
        ),
    }
}

/// Expands the references of one string: (text, whether a secret went in, problems).
fn interpolate(s: &str, secrets: &dyn SecretSource) -> (String, bool, Vec<String>) {
    let mut out = String::with_capacity(s.len());
    let mut secret = false;
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            errors.push(format!("unclosed reference in {s:?}: write ${{env.NAME}} or ${{secret.NAME}} (or $${{ for a literal ${{)"));
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let body = &body_start[..end];
        rest = &body_start[end + 1..];
        let (kind, name) = body.split_once('.').unwrap_or(("", body));
        let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        match kind {
            "env" if valid_name => match secrets.env(name) {
                Some(v) => out.push_str(&v),
                None => errors.push(format!("environment variable {name:?} is not set")),
            },
            "secret" if valid_name => match secrets.secret(name) {
                Some(v) => {
                    secret = true;
                    out.push_str(v.expose());
                }
                None => errors.push(match secrets.missing_secret_hint(name) {
                    Some(hint) => format!("secret {name:?} is not defined ({hint})"),
                    None => format!("secret {name:?} is not defined"),
                }),
            },
            _ => errors.push(format!(
                "invalid reference \"${{{body}}}\": write ${{env.NAME}} or ${{secret.NAME}} (or $${{ for a literal ${{)"
            )),
        }
    }
    out.push_str(rest);
    (out, secret, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemorySecrets;

    fn source() -> MemorySecrets {
        MemorySecrets::new().with_env("JIRA_URL", "https://jira.example").with_secret("tok", "s3cr3t")
    }

    #[test]
    fn interpolates_env_and_secrets() {
        let (text, secret, errors) = interpolate("${env.JIRA_URL}/rest", &source());
        assert_eq!((text.as_str(), secret, errors.len()), ("https://jira.example/rest", false, 0));
        let (text, secret, _) = interpolate("Bearer ${secret.tok}", &source());
        assert_eq!((text.as_str(), secret), ("Bearer s3cr3t", true));
        let (text, _, errors) = interpolate("cost $5 and $${env.X} literal", &source());
        assert_eq!((text.as_str(), errors.len()), ("cost $5 and ${env.X} literal", 0));
    }

    #[test]
    fn reports_every_missing_reference() {
        let (_, _, errors) = interpolate("${env.NOPE}:${secret.missing}:${foo}:${env.", &source());
        assert_eq!(
            errors,
            vec![
                "environment variable \"NOPE\" is not set".to_string(),
                "secret \"missing\" is not defined".to_string(),
                "invalid reference \"${foo}\": write ${env.NAME} or ${secret.NAME} (or $${ for a literal ${)".to_string(),
                "unclosed reference in \"${env.NOPE}:${secret.missing}:${foo}:${env.\": write ${env.NAME} or ${secret.NAME} (or $${ for a literal ${)".to_string(),
            ]
        );
    }

    #[test]
    fn resolved_secrets_are_redacted() {
        let data = Data::Map(vec![
            ("url".into(), Data::String("${env.JIRA_URL}".into())),
            ("token".into(), Data::String("${secret.tok}".into())),
            ("list".into(), Data::List(vec![Data::Number(1.into()), Data::String("${secret.tok}".into())])),
        ]);
        let mut problems = Vec::new();
        let v = resolve(&data, "config", &source(), &mut problems);
        assert!(problems.is_empty());
        assert_eq!(v.expose()["token"], "s3cr3t");
        assert_eq!(v.redacted()["token"], "***");
        assert!(!format!("{v:?}").contains("s3cr3t"));
        let mut paths = Vec::new();
        v.secret_paths("", &mut paths);
        assert_eq!(paths, vec!["token".to_string(), "list[1]".to_string()]);
        assert!(has_reference("a${env.X}") && !has_reference("a$${env.X}") && !has_reference("$5"));
    }
}
