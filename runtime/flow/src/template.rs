//! Templates: the data rule of DESIGN §5 applied to a YAML value. A string is an expression,
//! any other scalar is itself, mappings and lists are walked. Subtrees without expressions are
//! folded into literals at load.

use crate::expr::{CompileError, EvalContext, EvalError, Expr, ExprEnv};
use crate::source_map::{index_path, key_path};
use crate::spec::Data;

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A constant.
    Literal(serde_json::Value),
    /// An expression.
    Expr(Expr),
    /// A list of templates.
    List(Vec<Template>),
    /// A mapping of templates, in file order.
    Map(Vec<(String, Template)>),
}

impl Template {
    /// Compiles `data` found at `path`; compile problems are pushed as (path, error).
    pub(crate) fn compile(
        data: &Data,
        path: &str,
        env: &ExprEnv,
        errors: &mut Vec<(String, CompileError)>,
    ) -> Template {
        match data {
            Data::String(s) => match env.compile(s, path) {
                Ok(e) => Template::Expr(e),
                Err(es) => {
                    errors.extend(es.into_iter().map(|e| (path.to_string(), e)));
                    Template::Literal(serde_json::Value::Null)
                }
            },
            Data::List(items) => {
                let items: Vec<Template> = items
                    .iter()
                    .enumerate()
                    .map(|(i, d)| Template::compile(d, &index_path(path, i), env, errors))
                    .collect();
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(data.to_json())
                } else {
                    Template::List(items)
                }
            }
            Data::Map(entries) => {
                let entries: Vec<(String, Template)> = entries
                    .iter()
                    .map(|(k, d)| (k.clone(), Template::compile(d, &key_path(path, k), env, errors)))
                    .collect();
                if entries.iter().all(|(_, t)| matches!(t, Template::Literal(_))) {
                    Template::Literal(data.to_json())
                } else {
                    Template::Map(entries)
                }
            }
            scalar => Template::Literal(scalar.to_json()),
        }
    }

    /// Evaluates every expression for one record.
    pub fn eval(&self, ctx: &EvalContext) -> Result<serde_json::Value, EvalError> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Expr(e) => e.eval(ctx)?,
            Template::List(items) => {
                serde_json::Value::Array(items.iter().map(|t| t.eval(ctx)).collect::<Result<_, _>>()?)
            }
            Template::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.eval(ctx)?)))
                    .collect::<Result<_, EvalError>>()?,
            ),
        })
    }

    /// Every expression inside, in file order.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        match self {
            Template::Literal(_) => {}
            Template::Expr(e) => out.push(e),
            Template::List(items) => items.iter().for_each(|t| t.collect(out)),
            Template::Map(entries) => entries.iter().for_each(|(_, t)| t.collect(out)),
        }
    }
}
