//! Loading steps and actions (ids, kinds, retries) and the expressions in them (compiled,
//! with the variables they read checked against what exists at that point).

use std::collections::BTreeMap;

use qiao_contract::OperationKind;

use crate::expr::{CompileError, Expr, ExprEnv};
use crate::ids::StepId;
use crate::load::{Loader, Scope};
use crate::plan::{
    ActionPlan, BatchPlan, ConnectionPlan, MAX_BATCH_SIZE, OnError, RetryPolicy, StepKind, StepPlan,
};
use crate::source_map::{index_path, key_path};
use crate::spec::{ActionSpec, BatchSpec, Data, FlowSpec, OnErrorSpec};
use crate::template::Template;

impl Loader<'_> {
    pub(crate) fn steps(
        &mut self,
        spec: &FlowSpec,
        env: &ExprEnv,
        connections: &BTreeMap<String, Option<ConnectionPlan>>,
        steps_info: &[(String, bool)],
    ) -> Option<Vec<StepPlan>> {
        let mut plans = Vec::new();
        let mut complete = true;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        // The `batch` step, once seen: steps after it work on groups and only see the outputs
        // of steps after it.
        let mut batch_at: Option<usize> = None;
        for (i, s) in spec.steps.iter().enumerate() {
            let path = index_path("steps", i);
            let id_path = format!("{path}.id");
            let id = StepId::new(s.id.as_str()).map_err(|e| self.error(&id_path, e)).ok();
            if let Some(first) = seen.get(s.id.as_str()) {
                self.error(&id_path, format!("duplicate step id {:?} (first used by steps[{first}])", s.id));
            } else {
                seen.insert(&s.id, i);
            }
            let visible = batch_at.map_or(0, |b| b + 1);
            let scope = Scope {
                error: false,
                before: &steps_info[visible..i],
                all: steps_info,
                current: Some(&s.id),
            };
            // None: the expression did not compile; Some(None): no `when`.
            let when = match &s.when {
                None => Some(None),
                Some(w) => self.expr(env, w, &format!("{path}.when"), &scope).map(Some),
            };
            let kinds: Vec<&str> = [
                ("map", s.map.is_some()),
                ("filter", s.filter.is_some()),
                ("action", s.action.is_some()),
                ("foreach", s.foreach.is_some()),
                ("batch", s.batch.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
            let kind = if kinds.len() != 1 {
                let found = if kinds.is_empty() { "none".to_string() } else { kinds.join(" and ") };
                self.error(
                    &path,
                    format!(
                        "a step must have exactly one of map, filter, action, foreach, batch; found {found}"
                    ),
                );
                None
            } else if let Some(b) = &s.batch {
                let plan = self.batch(b, s, &path, env, &scope, batch_at);
                batch_at.get_or_insert(i);
                plan.map(StepKind::Batch)
            } else if let Some(m) = &s.map {
                self.template(env, m, &format!("{path}.map"), &scope).map(StepKind::Map)
            } else if let Some(f) = &s.filter {
                self.expr(env, f, &format!("{path}.filter"), &scope).map(StepKind::Filter)
            } else if let Some(a) = &s.action {
                self.action(a, &format!("{path}.action"), env, connections, &scope).map(StepKind::Action)
            } else if let Some(f) = &s.foreach {
                if let Some(b) = batch_at {
                    self.key_error(
                        &format!("{path}.foreach"),
                        format!("foreach cannot follow the batch step steps[{b}]: a group is one record; split records before grouping them"),
                    );
                }
                self.expr(env, f, &format!("{path}.foreach"), &scope).map(StepKind::Foreach)
            } else {
                None
            };
            let retry = self.retry(s, &path);
            let on_error = match s.on_error {
                None | Some(OnErrorSpec::DeadLetter) => OnError::DeadLetter,
                Some(OnErrorSpec::Skip) => OnError::Skip,
                Some(OnErrorSpec::Fail) => OnError::Fail,
            };
            match (id, kind, when, retry) {
                (Some(id), Some(kind), Some(when), Some(retry)) => {
                    plans.push(StepPlan { id, when, kind, retry, on_error })
                }
                _ => complete = false,
            }
        }
        complete.then_some(plans)
    }

    fn batch(
        &mut self,
        b: &BatchSpec,
        s: &crate::spec::StepSpec,
        path: &str,
        env: &ExprEnv,
        scope: &Scope<'_>,
        earlier: Option<usize>,
    ) -> Option<BatchPlan> {
        let batch_path = format!("{path}.batch");
        let mut ok = true;
        if let Some(first) = earlier {
            self.key_error(
                &batch_path,
                format!("a flow has at most one batch step; steps[{first}] is already one"),
            );
            ok = false;
        }
        if s.when.is_some() {
            self.key_error(&format!("{path}.when"), "a batch step cannot have `when`: it groups every record that reaches it; put a filter before it");
            ok = false;
        }
        if b.size.is_none() && b.max_wait.is_none() {
            self.error(&batch_path, "a batch step needs `size`, `max_wait` or both");
            ok = false;
        }
        let size = b.size.unwrap_or(MAX_BATCH_SIZE);
        if size == 0 || size > MAX_BATCH_SIZE {
            self.error(
                &format!("{batch_path}.size"),
                format!("size must be between 1 and {MAX_BATCH_SIZE}; found {size}"),
            );
            ok = false;
        }
        let max_wait = match &b.max_wait {
            Some(w) => match self.duration(w, &format!("{batch_path}.max_wait")) {
                Some(d) => Some(d),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let group_by = match &b.group_by {
            Some(g) => match self.expr(env, g, &format!("{batch_path}.group_by"), scope) {
                Some(e) => Some(e),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        ok.then_some(BatchPlan { size, max_wait, group_by })
    }

    fn retry(&mut self, s: &crate::spec::StepSpec, path: &str) -> Option<RetryPolicy> {
        let Some(r) = &s.retry else { return Some(RetryPolicy::default()) };
        let retry_path = format!("{path}.retry");
        if s.action.is_none() {
            self.key_error(&retry_path, "retry only applies to action steps");
        }
        let default = RetryPolicy::default();
        let attempts = r.attempts.unwrap_or(default.attempts);
        if attempts == 0 {
            self.error(
                &format!("{retry_path}.attempts"),
                "attempts must be at least 1 (the first try counts)",
            );
        }
        let backoff = match &r.backoff {
            Some(b) => self.duration(b, &format!("{retry_path}.backoff")),
            None => Some(default.backoff),
        };
        let max_backoff = match &r.max_backoff {
            Some(b) => self.duration(b, &format!("{retry_path}.max_backoff")),
            None => Some(default.max_backoff.max(backoff.unwrap_or_default())),
        };
        if let (Some(b), Some(m)) = (backoff, max_backoff)
            && m < b
        {
            self.error(
                &format!("{retry_path}.max_backoff"),
                format!("max_backoff {m} is shorter than backoff {b}"),
            );
        }
        Some(RetryPolicy { attempts, backoff: backoff?, max_backoff: max_backoff? })
            .filter(|p| p.attempts > 0)
    }

    pub(crate) fn action(
        &mut self,
        a: &ActionSpec,
        path: &str,
        env: &ExprEnv,
        connections: &BTreeMap<String, Option<ConnectionPlan>>,
        scope: &Scope<'_>,
    ) -> Option<ActionPlan> {
        let conn = self.connection(connections, &a.connection, &format!("{path}.connection"));
        let op_ok = conn.is_some_and(|c| {
            self.operation(c, &a.operation, OperationKind::Action, &format!("{path}.operation"))
        });
        let input_path = format!("{path}.input");
        let input = match &a.input {
            Some(data) => self.template(env, data, &input_path, scope),
            None => self.template(env, &Data::String("record".into()), &input_path, scope),
        };
        if !op_ok {
            return None;
        }
        Some(ActionPlan { connection: conn?.id.clone(), operation: a.operation.clone(), input: input? })
    }

    /// Compiles the expression at `path` and checks the variables it reads.
    pub(crate) fn expr(
        &mut self,
        env: &ExprEnv,
        source: &str,
        path: &str,
        scope: &Scope<'_>,
    ) -> Option<Expr> {
        match env.compile(source, path) {
            Ok(e) => {
                self.check_variables(&e, path, scope);
                Some(e)
            }
            Err(errors) => {
                self.compile_errors(path, source, errors);
                None
            }
        }
    }

    pub(crate) fn compile_errors(&mut self, path: &str, source: &str, errors: Vec<CompileError>) {
        for e in errors {
            self.expr_error(path, source, e.offset, e.message);
        }
    }

    /// Compiles a template and checks the variables of each of its expressions.
    pub(crate) fn template(
        &mut self,
        env: &ExprEnv,
        data: &Data,
        path: &str,
        scope: &Scope<'_>,
    ) -> Option<Template> {
        let mut errors = Vec::new();
        let t = Template::compile(data, path, env, &mut errors);
        let ok = errors.is_empty();
        for (p, e) in errors {
            let source = expr_source_at(data, path, &p).unwrap_or_default();
            self.expr_error(&p, &source, e.offset, e.message);
        }
        for e in t.exprs() {
            self.check_variables(e, e.path(), scope);
        }
        ok.then_some(t)
    }

    fn check_variables(&mut self, e: &Expr, path: &str, scope: &Scope<'_>) {
        let mut reported = Vec::new();
        for var in e.variables() {
            let mut parts = var.split('.');
            let root = parts.next().unwrap_or_default();
            let second = parts.next();
            let third = parts.next();
            let problem = match (root, second) {
                ("record", _) => None,
                ("flow", None | Some("id")) => None,
                ("flow", Some(other)) => Some(format!("flow has no field {other:?} (only flow.id)")),
                ("error", _) if scope.error => None,
                ("error", _) => Some("error is only available in on_failure".to_string()),
                ("steps", None) => None,
                ("steps", Some(step)) => {
                    let before = scope.before.iter().find(|(id, _)| id == step);
                    match (before, scope.all.iter().any(|(id, _)| id == step)) {
                        (Some((_, true)), _) if matches!(third, None | Some("output")) => None,
                        (Some((_, true)), _) => Some(format!(
                            "steps.{step} has no field {:?} (only output)",
                            third.unwrap_or_default()
                        )),
                        (Some((_, false)), _) => {
                            Some(format!("step {step:?} is not an action step, so it has no output"))
                        }
                        (None, true) if scope.current == Some(step) => {
                            Some(format!("step {step:?} cannot read its own output"))
                        }
                        (None, true) => Some(format!("step {step:?} does not run before this point")),
                        (None, false) => Some(format!("unknown step {step:?} in {var:?}")),
                    }
                }
                (other, _) => Some(format!(
                    "unknown variable {other:?}: expressions can read record, steps, flow{}",
                    if scope.error { ", error" } else { "" }
                )),
            };
            if let Some(message) = problem
                && !reported.contains(&message)
            {
                let offset = e.source().find(var.as_str()).or_else(|| e.source().find(root));
                self.expr_error(path, e.source(), offset, message.clone());
                reported.push(message);
            }
        }
    }
}

/// The expression string of the template node at `target` (a path below `base`).
fn expr_source_at(data: &Data, base: &str, target: &str) -> Option<String> {
    if base == target {
        return match data {
            Data::String(s) => Some(s.clone()),
            _ => None,
        };
    }
    match data {
        Data::List(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, d)| expr_source_at(d, &crate::source_map::index_path(base, i), target)),
        Data::Map(entries) => entries.iter().find_map(|(k, d)| expr_source_at(d, &key_path(base, k), target)),
        _ => None,
    }
}
