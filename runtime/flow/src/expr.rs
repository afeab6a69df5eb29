//! Flow expressions: MiniJinja expressions compiled once at load and evaluated per record.
//!
//! An [`ExprEnv`] is built per flow: strict undefined values (a missing field is an error, not
//! an empty string), a fuel budget per evaluation, the flow's lookup tables, and the functions
//! and filters of [`crate::library`] plus Python-style string methods (`.startswith()`). An
//! [`Expr`] owns its compiled form together with the environment (`self_cell`), so plans can
//! hold expressions without lifetimes. Evaluation reads an [`EvalContext`] (`record`, `steps`,
//! `flow`, and `error` in `on_failure`) and yields `serde_json::Value`; every failure is an
//! [`EvalError`] naming the expression, its path in the flow and the values it read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use self_cell::self_cell;

use crate::library::{self, Clock, ValueTables, cut, show};
use crate::native::{self, Fallback, NativeTables, Node, Scope};

/// Default fuel per evaluation: enough for any mapping expression, too little for a runaway
/// loop (`range(100000) | sum` runs out).
pub const DEFAULT_FUEL: u64 = 50_000;

/// Lookup tables: table name → key → scalar.
pub type Tables = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// Settings of an expression environment.
#[derive(Clone)]
pub struct ExprOptions {
    /// Fuel per evaluation (MiniJinja instructions and allocations).
    pub fuel: u64,
    /// The clock behind `now()`.
    pub clock: Clock,
}

impl Default for ExprOptions {
    fn default() -> Self {
        ExprOptions { fuel: DEFAULT_FUEL, clock: Arc::new(jiff::Timestamp::now) }
    }
}

impl fmt::Debug for ExprOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExprOptions").field("fuel", &self.fuel).finish_non_exhaustive()
    }
}

/// The expression environment of one flow.
#[derive(Clone)]
pub struct ExprEnv {
    env: Arc<Environment<'static>>,
    tables: Arc<BTreeSet<String>>,
    native_tables: Arc<NativeTables>,
    globals: Arc<BTreeSet<String>>,
}

impl fmt::Debug for ExprEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExprEnv").field("tables", &self.tables).finish_non_exhaustive()
    }
}

/// Why an expression did not compile. `offset` is a byte offset into the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// What is wrong.
    pub message: String,
    /// Where in the expression, when known.
    pub offset: Option<usize>,
}

impl ExprEnv {
    /// An environment with these tables and default options.
    pub fn new(tables: &Tables) -> Self {
        Self::with_options(tables, ExprOptions::default())
    }

    /// An environment with these tables and options.
    pub fn with_options(tables: &Tables, options: ExprOptions) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(options.fuel));
        // `debug()` would dump the whole context; `namespace()` is for templates.
        env.remove_global("debug");
        env.remove_global("namespace");
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        let value_tables: ValueTables = tables
            .iter()
            .map(|(name, entries)| {
                (name.clone(), entries.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
            })
            .collect();
        env.add_function("lookup", library::lookup(Arc::new(value_tables)));
        env.add_function("now", library::now(options.clock));
        env.add_filter("date", library::date);
        env.add_filter("default", library::default);
        env.add_filter("d", library::default);
        env.add_filter("truncate", library::truncate);
        env.add_filter("fields", library::fields);
        env.add_filter("number", library::number);
        env.add_filter("startswith", library::startswith);
        env.add_filter("endswith", library::endswith);
        let globals = env.globals().map(|(name, _)| name.to_string()).collect();
        ExprEnv {
            env: Arc::new(env),
            tables: Arc::new(tables.keys().cloned().collect()),
            native_tables: Arc::new(tables.iter().map(|(k, v)| (k.clone(), Arc::new(v.clone()))).collect()),
            globals: Arc::new(globals),
        }
    }

    /// Compiles `source`; `path` names it in evaluation errors (`steps[0].map.hours`). Fails
    /// on syntax errors, unknown filters and tests, and `lookup` of an unknown table.
    pub fn compile(&self, source: &str, path: &str) -> Result<Expr, Vec<CompileError>> {
        let compiled =
            Compiled::try_new(self.env.clone(), |env| env.compile_expression_owned(source.to_string()))
                .map_err(|e| {
                    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
                    vec![CompileError {
                        message: format!("invalid expression {:?}: {}{detail}", cut(source, 100), e.kind()),
                        offset: e.range().map(|r| r.start),
                    }]
                })?;
        let mut errors = Vec::new();
        let mut state = self.env.empty_state();
        let scan = scan(source);
        for (name, offset) in &scan.filters {
            if !state.perform_test("filter", &[Value::from(name.as_str())]).unwrap_or(false) {
                errors.push(CompileError {
                    message: format!("unknown filter {name:?}"),
                    offset: Some(*offset),
                });
            }
        }
        for (name, offset) in &scan.tests {
            if !state.perform_test("test", &[Value::from(name.as_str())]).unwrap_or(false) {
                errors
                    .push(CompileError { message: format!("unknown test {name:?}"), offset: Some(*offset) });
            }
        }
        for (name, offset) in &scan.tables {
            if !self.tables.contains(name) {
                let names: Vec<&str> = self.tables.iter().map(String::as_str).collect();
                errors.push(CompileError {
                    message: format!(
                        "unknown table {name:?} in lookup (tables: {})",
                        crate::catalog::list_or_none(&names)
                    ),
                    offset: Some(*offset),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut variables: Vec<String> = compiled
            .borrow_dependent()
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !self.globals.contains(v.split('.').next().unwrap_or_default()))
            .collect();
        variables.sort();
        let native = native::lower(source, &self.native_tables);
        Ok(Expr(Arc::new(Inner {
            source: source.to_string(),
            path: path.to_string(),
            variables,
            compiled,
            native,
        })))
    }
}

type CompiledExpr<'a> = minijinja::Expression<'a, 'static>;

self_cell!(
    struct Compiled {
        owner: Arc<Environment<'static>>,
        #[covariant]
        dependent: CompiledExpr,
    }
);

struct Inner {
    source: String,
    path: String,
    variables: Vec<String>,
    compiled: Compiled,
    /// The native form, when the expression has one (`native.rs`).
    native: Option<Node>,
}

/// A compiled expression. Cheap to clone.
#[derive(Clone)]
pub struct Expr(Arc<Inner>);

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.0.source).finish()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.0.source == other.0.source && self.0.path == other.0.path
    }
}

impl Expr {
    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// Where it is in the flow (`steps[0].map.hours`).
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// The variables it reads, dotted as far as static (`record.issue.project`), sorted;
    /// globals such as `lookup` excluded.
    pub fn variables(&self) -> &[String] {
        &self.0.variables
    }

    /// Whether the expression has a native form (evaluated without MiniJinja when it can).
    pub fn is_native(&self) -> bool {
        self.0.native.is_some()
    }

    /// Evaluates to JSON. Undefined results (missing fields) are errors.
    pub fn eval(&self, ctx: &EvalContext) -> Result<serde_json::Value, EvalError> {
        if let Some(v) = self.native(ctx, |v| v.into_json()) {
            return Ok(v);
        }
        self.eval_minijinja(ctx)
    }

    /// [`Expr::eval`] on MiniJinja only (the reference the native path is tested against).
    pub fn eval_minijinja(&self, ctx: &EvalContext) -> Result<serde_json::Value, EvalError> {
        let v = self.raw(ctx)?;
        to_json(&v).map_err(|(kind, message)| self.error(ctx, kind, message))
    }

    /// The native result, when the expression has a native form and it did not give up.
    fn native<T>(
        &self,
        ctx: &EvalContext,
        finish: impl FnOnce(native::V<'_>) -> Result<T, Fallback>,
    ) -> Option<T> {
        let node = self.0.native.as_ref()?;
        let scope =
            Scope { flow: &ctx.flow, record: &ctx.record, steps: &ctx.steps, error: ctx.error.as_ref() };
        node.eval(&scope).and_then(finish).ok()
    }

    /// Evaluates as a condition (`filter`, `when`): the truth of the result; undefined is an
    /// error.
    pub fn is_true(&self, ctx: &EvalContext) -> Result<bool, EvalError> {
        if let Some(b) = self.native(ctx, |v| v.truth()) {
            return Ok(b);
        }
        self.is_true_minijinja(ctx)
    }

    /// [`Expr::is_true`] on MiniJinja only.
    pub fn is_true_minijinja(&self, ctx: &EvalContext) -> Result<bool, EvalError> {
        let v = self.raw(ctx)?;
        if v.is_undefined() {
            return Err(self.error(ctx, EvalErrorKind::Undefined, undefined_message()));
        }
        Ok(v.is_true())
    }

    /// Evaluates to a list (`foreach`); anything else is an error.
    pub fn eval_list(&self, ctx: &EvalContext) -> Result<Vec<serde_json::Value>, EvalError> {
        match self.eval(ctx)? {
            serde_json::Value::Array(items) => Ok(items),
            other => Err(self.error(
                ctx,
                EvalErrorKind::Invalid,
                format!("expected a list, got {}", cut(&other.to_string(), 100)),
            )),
        }
    }

    fn raw(&self, ctx: &EvalContext) -> Result<Value, EvalError> {
        self.0.compiled.borrow_dependent().eval(ctx.root().clone()).map_err(|e| {
            let kind = match e.kind() {
                ErrorKind::UndefinedError => EvalErrorKind::Undefined,
                ErrorKind::OutOfFuel => EvalErrorKind::OutOfFuel,
                _ => EvalErrorKind::Invalid,
            };
            let message = match (kind, e.detail()) {
                (EvalErrorKind::OutOfFuel, _) => {
                    "ran out of fuel: the expression does too much work for one record".to_string()
                }
                (EvalErrorKind::Undefined, None) => undefined_message(),
                (_, Some(d)) => format!("{}: {d}", e.kind()),
                (_, None) => e.kind().to_string(),
            };
            self.error(ctx, kind, message)
        })
    }

    fn error(&self, ctx: &EvalContext, mut kind: EvalErrorKind, mut message: String) -> EvalError {
        let values: Vec<(String, String)> =
            self.0.variables.iter().map(|var| (var.clone(), ctx.show_path(var))).collect();
        // `undefined + 1` fails as an invalid operation; name the real cause.
        if kind == EvalErrorKind::Invalid && values.iter().any(|(_, v)| v == MISSING) {
            kind = EvalErrorKind::Undefined;
            message = format!("{message}; {}", undefined_message());
        }
        EvalError {
            path: self.0.path.clone(),
            expr: cut(&self.0.source, 200),
            kind,
            message: cut(&message, 300),
            values,
        }
    }
}

/// How an absent variable is shown in [`EvalError::values`].
const MISSING: &str = "<missing>";

fn undefined_message() -> String {
    "undefined value (a missing field?); use `| default(...)` for optional fields".to_string()
}

/// What kind of evaluation failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// A missing field or other undefined value was used.
    Undefined,
    /// The expression exceeded its fuel budget.
    OutOfFuel,
    /// A wrong type, null arithmetic, a bad date, a missing table entry, ...
    Invalid,
}

/// An expression failed for one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: expression {expr:?} failed: {message}{}", show_values(values))]
pub struct EvalError {
    /// Where in the flow (`steps[0].map.labor_cost`).
    pub path: String,
    /// The expression (cut to 200 characters).
    pub expr: String,
    /// The kind of failure.
    pub kind: EvalErrorKind,
    /// What went wrong.
    pub message: String,
    /// The variables the expression reads and their values (each cut to ~100 characters),
    /// `<missing>` for absent ones.
    pub values: Vec<(String, String)>,
}

fn show_values(values: &[(String, String)]) -> String {
    if values.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!(" ({})", parts.join(", "))
}

/// What expressions can read: `record`, `steps.<id>.output`, `flow.id`, and `error` in
/// `on_failure`. Holds JSON; the MiniJinja form is built only when an expression needs it
/// (one without a native form, or whose native evaluation gave up).
#[derive(Debug, Clone)]
pub struct EvalContext {
    flow: String,
    record: serde_json::Value,
    steps: BTreeMap<String, serde_json::Value>,
    error: Option<serde_json::Value>,
    root: OnceLock<Value>,
}

impl EvalContext {
    /// A context for `record` in flow `flow_id`.
    pub fn new(flow_id: &str, record: &serde_json::Value) -> Self {
        Self::with_record(flow_id, record.clone())
    }

    /// A context owning `record`.
    pub fn with_record(flow_id: &str, record: serde_json::Value) -> Self {
        EvalContext {
            flow: flow_id.to_string(),
            record,
            steps: BTreeMap::new(),
            error: None,
            root: OnceLock::new(),
        }
    }

    /// The record.
    pub fn record(&self) -> &serde_json::Value {
        &self.record
    }

    /// The record, consuming the context.
    pub fn into_record(self) -> serde_json::Value {
        self.record
    }

    /// Takes the record out, leaving `null`.
    pub fn take_record(&mut self) -> serde_json::Value {
        self.root = OnceLock::new();
        std::mem::take(&mut self.record)
    }

    /// Replaces the record (after a `map` step or for a `foreach` item).
    pub fn set_record(&mut self, record: &serde_json::Value) {
        self.replace_record(record.clone());
    }

    /// Replaces the record, taking it.
    pub fn replace_record(&mut self, record: serde_json::Value) {
        self.record = record;
        self.root = OnceLock::new();
    }

    /// Records an action step's output as `steps.<step>.output`.
    pub fn set_step_output(&mut self, step: &str, output: &serde_json::Value) {
        self.steps.insert(step.to_string(), output.clone());
        self.root = OnceLock::new();
    }

    /// Sets `error` (for `on_failure`).
    pub fn set_error(&mut self, error: &serde_json::Value) {
        self.error = Some(error.clone());
        self.root = OnceLock::new();
    }

    /// The MiniJinja root value, built on first use.
    fn root(&self) -> &Value {
        self.root.get_or_init(|| {
            let steps = Value::from_pairs(
                self.steps.iter().map(|(k, v)| (k.clone(), Value::from_pairs([("output", from_json(v))]))),
            );
            let mut root = vec![
                ("flow", Value::from_pairs([("id", Value::from(self.flow.as_str()))])),
                ("record", from_json(&self.record)),
                ("steps", steps),
            ];
            if let Some(e) = &self.error {
                root.push(("error", from_json(e)));
            }
            Value::from_pairs(root)
        })
    }

    /// The value at a dotted path, shown for error messages.
    fn show_path(&self, path: &str) -> String {
        let mut v = self.root().clone();
        for part in path.split('.') {
            v = match v.get_attr(part) {
                Ok(next) if !next.is_undefined() => next,
                _ => return MISSING.into(),
            };
        }
        show(&v)
    }
}

/// Converts JSON to a MiniJinja value (integers stay integers, floats floats).
pub(crate) fn from_json(v: &serde_json::Value) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// Converts a MiniJinja value to JSON, keeping integers and floats apart.
pub(crate) fn to_json(v: &Value) -> Result<serde_json::Value, (EvalErrorKind, String)> {
    use serde_json::Value as J;
    let invalid = |m: String| (EvalErrorKind::Invalid, m);
    Ok(match v.kind() {
        ValueKind::Undefined => return Err((EvalErrorKind::Undefined, undefined_message())),
        ValueKind::None => J::Null,
        ValueKind::Bool => J::Bool(v.is_true()),
        ValueKind::Number if v.is_integer() => {
            if let Some(i) = v.as_i64() {
                J::from(i)
            } else {
                u64::try_from(v.clone())
                    .map(J::from)
                    .map_err(|_| invalid(format!("integer {v} does not fit in 64 bits")))?
            }
        }
        ValueKind::Number => {
            let f = f64::try_from(v.clone()).map_err(|_| invalid(format!("{v} is not a number")))?;
            serde_json::Number::from_f64(f)
                .map(J::Number)
                .ok_or_else(|| invalid(format!("{f} is not a finite number")))?
        }
        ValueKind::String => J::String(v.as_str().unwrap_or_default().to_string()),
        ValueKind::Bytes => J::String(String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = v.try_iter().map_err(|e| invalid(e.to_string()))?;
            J::Array(items.map(|item| to_json(&item)).collect::<Result<_, _>>()?)
        }
        ValueKind::Map => {
            let keys = v.try_iter().map_err(|e| invalid(e.to_string()))?;
            let mut map = serde_json::Map::new();
            for k in keys {
                let item = v.get_item(&k).map_err(|e| invalid(e.to_string()))?;
                let key = k.as_str().map_or_else(|| k.to_string(), str::to_string);
                map.insert(key, to_json(&item)?);
            }
            J::Object(map)
        }
        _ => {
            return Err(invalid(format!(
                "{} is not a value (a function called without ()?)",
                cut(&v.to_string(), 100)
            )));
        }
    })
}

/// Names an expression uses that can be checked before running: filters (`| name`), tests
/// (`is name`), and tables of `lookup('name', ...)`, each with its byte offset.
#[derive(Debug, Default, PartialEq)]
struct Scan {
    filters: Vec<(String, usize)>,
    tests: Vec<(String, usize)>,
    tables: Vec<(String, usize)>,
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Str(String),
    Punct(char),
}

fn tokens(source: &str) -> Vec<(Token<'_>, usize)> {
    let mut out = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '\'' || c == '"' {
            let mut text = String::new();
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                match (escaped, d) {
                    (false, '\\') => escaped = true,
                    (false, d) if d == c => break,
                    (_, d) => {
                        escaped = false;
                        text.push(d);
                    }
                }
            }
            out.push((Token::Str(text), i));
        } else if c.is_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            out.push((Token::Ident(&source[i..end]), i));
        } else if c.is_ascii_digit() {
            while chars.peek().is_some_and(|&(_, d)| d.is_ascii_alphanumeric() || d == '.' || d == '_') {
                chars.next();
            }
        } else {
            out.push((Token::Punct(c), i));
        }
    }
    out
}

fn scan(source: &str) -> Scan {
    let toks = tokens(source);
    let mut scan = Scan::default();
    for (n, (tok, _)) in toks.iter().enumerate() {
        match tok {
            Token::Punct('|') => {
                if let Some((Token::Ident(name), at)) = toks.get(n + 1) {
                    scan.filters.push((name.to_string(), *at));
                }
            }
            Token::Ident("is") => {
                let mut k = n + 1;
                if matches!(toks.get(k), Some((Token::Ident("not"), _))) {
                    k += 1;
                }
                if let Some((Token::Ident(name), at)) = toks.get(k) {
                    scan.tests.push((name.to_string(), *at));
                }
            }
            Token::Ident("lookup") => {
                let prev_dot = n > 0 && matches!(toks.get(n - 1), Some((Token::Punct('.'), _)));
                if let (false, Some((Token::Punct('('), _)), Some((Token::Str(table), at))) =
                    (prev_dot, toks.get(n + 1), toks.get(n + 2))
                {
                    scan.tables.push((table.clone(), *at));
                }
            }
            _ => {}
        }
    }
    scan
}

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
