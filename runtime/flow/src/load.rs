//! Loading: YAML text → [`FlowSpec`] → checked [`FlowPlan`], or every problem found.
//!
//! Structural errors (YAML syntax, unknown fields, wrong types) come from serde-saphyr, which
//! stops at the first. Everything after that — ids, references, connectors, operations,
//! schemas, cron, time zones, durations, secrets, expressions — is checked here, collecting
//! all problems. Each problem is reported by path; [`SourceMap`] turns the path into a line,
//! column and span. The checks live in `load_connections`, `load_trigger` and `load_steps`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_saphyr::MessageFormatter;

use crate::catalog::ConnectorCatalog;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::duration::Duration;
use crate::expr::{ExprEnv, ExprOptions, Tables};
use crate::ids::FlowId;
use crate::plan::{ConnectionPlan, FlowPlan};
use crate::secrets::SecretSource;
use crate::source_map::{Pos, SourceMap, key_path};
use crate::spec::{Data, FlowSpec};

/// Loads and checks a flow file with default expression options. `file_name` only names the
/// file in diagnostics.
pub fn load(
    file_name: &str,
    source: &str,
    catalog: &dyn ConnectorCatalog,
    secrets: &dyn SecretSource,
) -> Result<FlowPlan, Diagnostics> {
    load_with_options(file_name, source, catalog, secrets, ExprOptions::default())
}

/// Like [`load`], with expression options (fuel, clock).
pub fn load_with_options(
    file_name: &str,
    source: &str,
    catalog: &dyn ConnectorCatalog,
    secrets: &dyn SecretSource,
    options: ExprOptions,
) -> Result<FlowPlan, Diagnostics> {
    let mut loader = Loader { file: file_name, source, map: SourceMap::build(source), diags: Vec::new() };
    let spec = match parse(source) {
        Ok(spec) => spec,
        Err(e) => {
            loader.serde_error(&e);
            return Err(loader.finish());
        }
    };
    let plan = loader.plan(&spec, catalog, secrets, options);
    match plan {
        Some(plan) if loader.diags.is_empty() => Ok(plan),
        _ => Err(loader.finish()),
    }
}

/// Parses the YAML into the spec types, with budgets sized for flow files.
pub fn parse(source: &str) -> Result<FlowSpec, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_documents: 1,
            max_depth: 48,
            max_nodes: 100_000,
        },
    };
    serde_saphyr::from_str_with_options(source, options)
}

/// Which roots an expression may read, and which steps came before it.
pub(crate) struct Scope<'a> {
    /// `error` is readable (in `on_failure`).
    pub(crate) error: bool,
    /// Steps before this point: (id, is an action).
    pub(crate) before: &'a [(String, bool)],
    /// All steps: (id, is an action).
    pub(crate) all: &'a [(String, bool)],
    /// The step the expression belongs to, if any.
    pub(crate) current: Option<&'a str>,
}

pub(crate) struct Loader<'a> {
    pub(crate) file: &'a str,
    pub(crate) source: &'a str,
    pub(crate) map: SourceMap,
    pub(crate) diags: Vec<Diagnostic>,
}

impl Loader<'_> {
    fn finish(self) -> Diagnostics {
        let mut d = Diagnostics(self.diags);
        d.sort();
        d
    }

    fn push(&mut self, path: &str, pos: Option<Pos>, message: String) {
        let pos = pos.unwrap_or(Pos { line: 1, col: 1, offset: 0, len: 0 });
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            path: path.to_string(),
            message,
            span: Some((pos.offset, pos.len.max(1))),
        });
    }

    /// A problem with the value at `path`.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.map.value(path);
        self.push(path, pos, message.into());
    }

    /// A problem with the key that introduces `path` (a name, a duplicate).
    pub(crate) fn key_error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.map.key(path);
        self.push(path, pos, message.into());
    }

    /// A problem inside the expression at `path`, at byte `offset` of the expression when the
    /// scalar is written on one line as the expression itself (plain or quoted).
    pub(crate) fn expr_error(&mut self, path: &str, expr: &str, offset: Option<usize>, message: String) {
        let mut pos = self.map.value(path);
        if let (Some(p), Some(off), true) = (pos.as_mut(), offset, self.map.contains(path)) {
            let raw = self.source.get(p.offset..).unwrap_or_default();
            let delta = if raw.starts_with(expr) {
                Some(0)
            } else if raw.starts_with(['"', '\'']) && raw.get(1..).is_some_and(|r| r.starts_with(expr)) {
                Some(1)
            } else {
                None
            };
            if let (Some(delta), Some(before)) = (delta, expr.get(..off))
                && !before.contains('\n')
            {
                p.col += delta + before.chars().count();
                p.offset += delta + off;
                p.len = expr[off..].chars().next().map_or(1, char::len_utf8);
            }
        }
        self.push(path, pos, message);
    }

    fn serde_error(&mut self, e: &serde_saphyr::Error) {
        let raw: String = serde_saphyr::UserMessageFormatter
            .format_message(e.without_snippet())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let (line, col) = e.location().map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
        let offset = e
            .location()
            .and_then(|l| l.span().byte_offset())
            .map_or_else(|| self.offset_of(line, col), |b| b as usize);
        let here = Pos { line, col, offset, len: 1 };
        if !self.map.syntax_error && !self.map.contains("") {
            let start = Some(Pos { line: 1, col: 1, offset: 0, len: 0 });
            return self.push(
                "",
                start,
                "the file is empty: a flow needs at least `flow:` and `trigger:`".into(),
            );
        }
        if self.map.syntax_error {
            return self.push("", Some(here), format!("invalid YAML: {raw}"));
        }
        let at = self.map.path_at(line, col).unwrap_or_default().to_string();
        if let Some(field) = raw.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
            // Reported at the end of the mapping that lacks the field: name the mapping.
            let mapping = if self.map.value(&at).is_some_and(|p| (p.line, p.col) == (line, col)) {
                at.clone()
            } else {
                crate::source_map::parent(&at).to_string()
            };
            let pos = self.map.key(&mapping);
            return self.push(&mapping, pos, format!("missing required field {field:?}"));
        }
        let text = self.scalar_at(offset);
        let got = if text.is_empty() { String::new() } else { format!(", got {text:?}") };
        let message = match raw.as_str() {
            "invalid u8" | "invalid u16" | "invalid u32" | "invalid u64" | "invalid usize" => {
                format!("expected a whole number >= 0{got}")
            }
            "invalid i8" | "invalid i16" | "invalid i32" | "invalid i64" => {
                format!("expected a whole number{got}")
            }
            "invalid f32" | "invalid f64" => format!("expected a number{got}"),
            "expected sequence start" => format!("expected a list{got}"),
            "expected mapping start" => format!("expected a mapping{got}"),
            _ => raw,
        };
        self.push(&at, Some(here), message);
    }

    /// The plain scalar text starting at byte `offset` (to the end of the line or a flow
    /// delimiter), for messages.
    fn scalar_at(&self, offset: usize) -> String {
        let rest = self.source.get(offset..).unwrap_or_default();
        let end = rest.find(['\n', ',', '}', ']', '#']).unwrap_or(rest.len());
        crate::library::cut(rest[..end].trim(), 60)
    }

    fn offset_of(&self, line: usize, col: usize) -> usize {
        let start: usize = self.source.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
        let rest = self.source.get(start..).unwrap_or_default();
        start + rest.char_indices().nth(col.saturating_sub(1)).map_or(rest.len(), |(i, _)| i)
    }

    fn plan(
        &mut self,
        spec: &FlowSpec,
        catalog: &dyn ConnectorCatalog,
        secrets: &dyn SecretSource,
        options: ExprOptions,
    ) -> Option<FlowPlan> {
        let id = FlowId::new(spec.flow.as_str()).map_err(|e| self.error("flow", e)).ok();
        let tables = self.tables(spec);
        let exprs = ExprEnv::with_options(&tables, options);
        let connections = self.connections(spec, catalog, secrets);
        let trigger = self.trigger(&spec.trigger, &connections, secrets);
        let steps_info: Vec<(String, bool)> =
            spec.steps.iter().map(|s| (s.id.clone(), s.action.is_some())).collect();
        let key = spec.key.as_ref().and_then(|k| {
            let scope = Scope { error: false, before: &[], all: &steps_info, current: None };
            self.expr(&exprs, k, "key", &scope)
        });
        let concurrency = spec.concurrency.unwrap_or(1);
        if concurrency == 0 {
            self.error("concurrency", "concurrency must be at least 1");
        }
        let steps = self.steps(spec, &exprs, &connections, &steps_info);
        let on_failure = spec.on_failure.as_ref().and_then(|a| {
            let scope = Scope { error: true, before: &steps_info, all: &steps_info, current: None };
            self.action(a, "on_failure", &exprs, &connections, &scope)
        });
        let mut connections: Vec<ConnectionPlan> = connections.into_values().flatten().collect();
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        Some(FlowPlan {
            id: id?,
            description: spec.description.clone(),
            file: self.file.to_string(),
            connections,
            trigger: trigger?,
            key,
            tables: Arc::new(tables),
            concurrency,
            steps: steps?,
            on_failure,
            exprs,
        })
    }

    fn tables(&mut self, spec: &FlowSpec) -> Tables {
        let mut tables = Tables::new();
        for (name, table) in &spec.tables {
            let path = key_path("tables", name);
            if name.trim().is_empty() {
                self.key_error(&path, "table name must not be empty");
            }
            let mut entries = BTreeMap::new();
            for (k, v) in &table.0 {
                if matches!(v, Data::List(_) | Data::Map(_)) {
                    let what = v.type_name();
                    self.error(&key_path(&path, k), format!("table values must be scalars, got a {what}"));
                }
                entries.insert(k.clone(), v.to_json());
            }
            tables.insert(name.clone(), entries);
        }
        tables
    }

    pub(crate) fn duration(&mut self, text: &str, path: &str) -> Option<Duration> {
        text.parse::<Duration>().map_err(|e| self.error(path, e)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StaticCatalog;
    use crate::secrets::MemorySecrets;
    use qiao_contract::{ConnectorInfo, Operation, OperationKind};
    use serde_json::json;

    fn catalog() -> StaticCatalog {
        StaticCatalog::new(vec![ConnectorInfo {
            id: "erp".into(),
            version: "1.2.0".into(),
            title: "ERP".into(),
            description: String::new(),
            config_schema: json!({"type": "object", "properties": {
                "region": {"enum": ["cn", "eu"]},
                "token": {"type": "string", "x-secret": true}
            }}),
            operations: vec![Operation {
                name: "save".into(),
                kind: OperationKind::Action,
                description: String::new(),
                params_schema: None,
                input_schema: None,
                output_schema: None,
            }],
            hosts: vec![],
            webhook: false,
        }])
    }

    fn problems(source: &str) -> String {
        let secrets =
            MemorySecrets::new().with_secret("region", "top-secret-region").with_secret("tok", "t0k");
        match load("f.yaml", source, &catalog(), &secrets) {
            Ok(_) => String::new(),
            Err(d) => d.to_string(),
        }
    }

    #[test]
    fn secrets_never_appear_in_diagnostics() {
        let out = problems(
            "flow: a\nconnections:\n  erp: { connector: erp, config: { region: \"${secret.region}\", token: \"${secret.tok}\" } }\ntrigger: { manual: {} }\n",
        );
        assert_eq!(out, "f.yaml:3:44: connections.erp.config.region: *** is not one of \"cn\", \"eu\"\n");
    }

    #[test]
    fn literal_credentials_are_refused() {
        let out = problems(
            "flow: a\nconnections:\n  erp: { connector: erp, config: { token: abc } }\ntrigger: { manual: {} }\n",
        );
        assert!(out.contains("config field \"token\" of connector \"erp\" is a credential"), "{out}");
        assert!(!out.contains("abc"), "{out}");
    }

    #[test]
    fn structural_errors_have_paths() {
        assert_eq!(
            problems("flw: a\ntrigger: { manual: {} }\n"),
            "f.yaml:1:1: flw: unknown field `flw`, expected one of flow, description, connections, trigger, key, tables, concurrency, steps, on_failure\n"
        );
        assert_eq!(
            problems("# nothing\n"),
            "f.yaml:1:1: the file is empty: a flow needs at least `flow:` and `trigger:`\n"
        );
        assert_eq!(problems("flow: a\n"), "f.yaml:1:1: missing required field \"trigger\"\n");
        assert_eq!(
            problems("flow: a\ntrigger: { manual: {} }\nsteps: {}\n"),
            "f.yaml:3:8: steps: expected a list, got \"{\"\n"
        );
        assert!(problems("flow: a\ntrigger: [\n").starts_with("f.yaml:"));
    }

    #[test]
    fn good_flow_loads() {
        let secrets = MemorySecrets::new().with_secret("tok", "t0k");
        let plan = load(
            "f.yaml",
            "flow: a\nconnections:\n  erp: { connector: erp@^1, config: { region: cn, token: \"${secret.tok}\" } }\ntrigger: { manual: {} }\nsteps:\n  - id: save\n    action: { connection: erp, operation: save }\n",
            &catalog(),
            &secrets,
        );
        let plan = plan.unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(plan.connections[0].connector.version, "1.2.0");
        assert_eq!(plan.connections[0].config.redacted(), json!({"region": "cn", "token": "***"}));
        assert_eq!(plan.steps[0].retry, crate::plan::RetryPolicy::default());
    }
}
