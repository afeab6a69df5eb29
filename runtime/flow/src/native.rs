//! Native evaluation of the expression shapes flows use most: paths into the record and step
//! outputs, literals, arithmetic, comparisons, `and`/`or`/`not`, `x if c else y`, `lookup()`
//! and a few filters (`default`, `upper`, `lower`, `trim`, `length`, `round`, `abs`,
//! `number`), computed straight on `serde_json::Value` without converting the record to
//! MiniJinja values.
//!
//! The expression is parsed with MiniJinja's own parser (so both paths read the same syntax
//! tree) and lowered to a [`Node`] tree when every part of it is in the supported set;
//! otherwise the expression has no native form and always runs on MiniJinja. At run time the
//! native path only ever produces a value MiniJinja would produce too: whenever it meets
//! anything it does not model exactly — a missing field, a type mix, an overflow, a division
//! by zero — it gives up ([`Fallback`]) and the caller evaluates the expression with
//! MiniJinja, which yields the value or the error message. `native_tests.rs` checks both
//! paths agree on a corpus of expressions and records.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::machinery::ast;
use serde_json::Value as J;

use crate::library::{DATE_FORMAT, DateInput, read_date};

/// Lookup tables as native values: table → key → value.
pub(crate) type NativeTables = BTreeMap<String, Arc<BTreeMap<String, J>>>;

/// The native path gave up; evaluate with MiniJinja.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fallback;

type R<T> = Result<T, Fallback>;

/// What a native expression reads.
pub(crate) struct Scope<'a> {
    pub flow: &'a str,
    pub record: &'a J,
    pub steps: &'a BTreeMap<String, J>,
    pub error: Option<&'a J>,
}

/// A value during evaluation: borrowed from the scope, computed, or undefined (a missing
/// field, which only `default` may absorb).
#[derive(Debug, Clone)]
pub(crate) enum V<'a> {
    Undef,
    Val(Cow<'a, J>),
}

impl<'a> V<'a> {
    fn json(&self) -> R<&J> {
        match self {
            V::Undef => Err(Fallback),
            V::Val(v) => Ok(v),
        }
    }

    pub(crate) fn into_json(self) -> R<J> {
        match self {
            V::Undef => Err(Fallback),
            V::Val(v) => Ok(v.into_owned()),
        }
    }

    /// Truth as MiniJinja sees it; undefined is an error under strict undefined.
    pub(crate) fn truth(&self) -> R<bool> {
        Ok(match self.json()? {
            J::Null => false,
            J::Bool(b) => *b,
            J::Number(n) => match num(n)? {
                Num::I(i) => i != 0,
                Num::F(f) => f != 0.0,
            },
            J::String(s) => !s.is_empty(),
            J::Array(a) => !a.is_empty(),
            J::Object(o) => !o.is_empty(),
        })
    }
}

fn owned<'a>(v: J) -> V<'a> {
    V::Val(Cow::Owned(v))
}

#[derive(Debug, Clone, Copy)]
enum Num {
    I(i128),
    F(f64),
}

fn num(n: &serde_json::Number) -> R<Num> {
    if let Some(i) = n.as_i64() {
        Ok(Num::I(i128::from(i)))
    } else if let Some(u) = n.as_u64() {
        Ok(Num::I(i128::from(u)))
    } else {
        n.as_f64().map(Num::F).ok_or(Fallback)
    }
}

fn number_of(v: &J) -> R<Num> {
    match v {
        J::Number(n) => num(n),
        _ => Err(Fallback),
    }
}

/// An integer result as JSON: it must fit in i64 or u64 (as in `expr::to_json`).
fn int_json(i: i128) -> R<J> {
    if let Ok(v) = i64::try_from(i) {
        Ok(J::from(v))
    } else if let Ok(v) = u64::try_from(i) {
        Ok(J::from(v))
    } else {
        Err(Fallback)
    }
}

fn float_json(f: f64) -> R<J> {
    serde_json::Number::from_f64(f).map(J::Number).ok_or(Fallback)
}

/// Integers exactly representable as f64, where mixed int/float comparisons agree.
const EXACT: i128 = 1 << 53;

fn as_f64(n: Num) -> R<f64> {
    match n {
        Num::F(f) => Ok(f),
        Num::I(i) if (-EXACT..=EXACT).contains(&i) => Ok(i as f64),
        Num::I(_) => Err(Fallback),
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    NotIn,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter {
    Default,
    Upper,
    Lower,
    Trim,
    Length,
    Round,
    Abs,
    Number,
}

/// A natively evaluable expression.
#[derive(Debug)]
pub(crate) enum Node {
    Const(J),
    Record,
    StepOutput(String),
    FlowId,
    Error,
    Attr(Box<Node>, String),
    Item(Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Concat(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Compare(Box<Node>, Vec<(Cmp, Node)>),
    If(Box<Node>, Box<Node>, Option<Box<Node>>),
    Filter(Filter, Box<Node>, Vec<Node>),
    Date { value: Box<Node>, format: Option<Box<Node>>, tz: jiff::tz::TimeZone },
    Lookup { entries: Arc<BTreeMap<String, J>>, key: Box<Node>, default: Option<Box<Node>> },
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// Lowers `source` to a native tree, or `None` when some part of it is not supported.
pub(crate) fn lower(source: &str, tables: &NativeTables) -> Option<Node> {
    let parsed = minijinja::machinery::parse_expr(source).ok()?;
    Lower { tables }.expr(&parsed)
}

struct Lower<'t> {
    tables: &'t NativeTables,
}

impl Lower<'_> {
    fn expr(&self, e: &ast::Expr<'_>) -> Option<Node> {
        Some(match e {
            ast::Expr::Var(v) => match v.id {
                "record" => Node::Record,
                "error" => Node::Error,
                _ => return None,
            },
            ast::Expr::Const(c) => Node::Const(crate::expr::to_json(&c.value).ok()?),
            ast::Expr::GetAttr(a) => match (&a.expr, a.name) {
                // `flow.id`, `steps.<id>.output`: the only shapes of these roots.
                (ast::Expr::Var(v), "id") if v.id == "flow" => Node::FlowId,
                (ast::Expr::GetAttr(inner), "output") => match &inner.expr {
                    ast::Expr::Var(v) if v.id == "steps" => Node::StepOutput(inner.name.to_string()),
                    _ => Node::Attr(Box::new(self.expr(&a.expr)?), a.name.to_string()),
                },
                _ => Node::Attr(Box::new(self.expr(&a.expr)?), a.name.to_string()),
            },
            ast::Expr::GetItem(i) => {
                Node::Item(Box::new(self.expr(&i.expr)?), Box::new(self.expr(&i.subscript_expr)?))
            }
            ast::Expr::BinOp(b) => {
                let (l, r) = (Box::new(self.expr(&b.left)?), Box::new(self.expr(&b.right)?));
                use ast::BinOpKind as K;
                match b.op {
                    K::Add => Node::Arith(Arith::Add, l, r),
                    K::Sub => Node::Arith(Arith::Sub, l, r),
                    K::Mul => Node::Arith(Arith::Mul, l, r),
                    K::Div => Node::Arith(Arith::Div, l, r),
                    K::FloorDiv => Node::Arith(Arith::FloorDiv, l, r),
                    K::Rem => Node::Arith(Arith::Rem, l, r),
                    K::Concat => Node::Concat(l, r),
                    K::ScAnd => Node::And(l, r),
                    K::ScOr => Node::Or(l, r),
                    K::Eq => Node::Compare(l, vec![(Cmp::Eq, *r)]),
                    K::Ne => Node::Compare(l, vec![(Cmp::Ne, *r)]),
                    K::Lt => Node::Compare(l, vec![(Cmp::Lt, *r)]),
                    K::Lte => Node::Compare(l, vec![(Cmp::Lte, *r)]),
                    K::Gt => Node::Compare(l, vec![(Cmp::Gt, *r)]),
                    K::Gte => Node::Compare(l, vec![(Cmp::Gte, *r)]),
                    K::In => Node::Compare(l, vec![(Cmp::In, *r)]),
                    K::Pow => return None,
                }
            }
            ast::Expr::Compare(c) => {
                use ast::CompareOpKind as K;
                let ops = c
                    .ops
                    .iter()
                    .map(|op| {
                        let kind = match op.op {
                            K::Eq => Cmp::Eq,
                            K::Ne => Cmp::Ne,
                            K::Lt => Cmp::Lt,
                            K::Lte => Cmp::Lte,
                            K::Gt => Cmp::Gt,
                            K::Gte => Cmp::Gte,
                            K::In => Cmp::In,
                            K::NotIn => Cmp::NotIn,
                        };
                        Some((kind, self.expr(&op.expr)?))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Node::Compare(Box::new(self.expr(&c.expr)?), ops)
            }
            ast::Expr::UnaryOp(u) => {
                let inner = Box::new(self.expr(&u.expr)?);
                match u.op {
                    ast::UnaryOpKind::Not => Node::Not(inner),
                    ast::UnaryOpKind::Neg => Node::Neg(inner),
                }
            }
            ast::Expr::IfExpr(i) => Node::If(
                Box::new(self.expr(&i.test_expr)?),
                Box::new(self.expr(&i.true_expr)?),
                match &i.false_expr {
                    Some(f) => Some(Box::new(self.expr(f)?)),
                    None => None,
                },
            ),
            ast::Expr::Filter(f) if f.name == "date" => {
                let (format, tz) = match f.args.as_slice() {
                    [] => (None, None),
                    [ast::CallArg::Pos(format)] => (Some(format), None),
                    [ast::CallArg::Kwarg("tz", tz)] => (None, Some(tz)),
                    [ast::CallArg::Pos(format), ast::CallArg::Kwarg("tz", tz)] => (Some(format), Some(tz)),
                    _ => return None,
                };
                let tz = match tz {
                    None => jiff::tz::TimeZone::UTC,
                    Some(ast::Expr::Const(c)) => jiff::tz::TimeZone::get(c.value.as_str()?).ok()?,
                    Some(_) => return None,
                };
                Node::Date {
                    value: Box::new(self.expr(f.expr.as_ref()?)?),
                    format: match format {
                        Some(f) => Some(Box::new(self.expr(f)?)),
                        None => None,
                    },
                    tz,
                }
            }
            ast::Expr::Filter(f) => {
                let (filter, max_args) = match f.name {
                    "default" | "d" => (Filter::Default, 2),
                    "upper" => (Filter::Upper, 0),
                    "lower" => (Filter::Lower, 0),
                    "trim" => (Filter::Trim, 0),
                    "length" => (Filter::Length, 0),
                    "round" => (Filter::Round, 1),
                    "abs" => (Filter::Abs, 0),
                    "number" => (Filter::Number, 0),
                    _ => return None,
                };
                if f.args.len() > max_args {
                    return None;
                }
                let args = f
                    .args
                    .iter()
                    .map(|a| match a {
                        ast::CallArg::Pos(e) => self.expr(e),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Node::Filter(filter, Box::new(self.expr(f.expr.as_ref()?)?), args)
            }
            ast::Expr::Call(c) => self.call(c)?,
            ast::Expr::List(l) => Node::List(l.items.iter().map(|i| self.expr(i)).collect::<Option<_>>()?),
            ast::Expr::Map(m) => Node::Map(
                m.keys
                    .iter()
                    .zip(&m.values)
                    .map(|(k, v)| match k {
                        ast::Expr::Const(c) => Some((c.value.as_str()?.to_string(), self.expr(v)?)),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            ast::Expr::Slice(_) | ast::Expr::Test(_) | ast::Expr::Tuple(_) => return None,
        })
    }

    /// `lookup('table', key)` and `lookup('table', key, default=...)`.
    fn call(&self, c: &ast::Call<'_>) -> Option<Node> {
        let ast::Expr::Var(f) = &c.expr else { return None };
        if f.id != "lookup" {
            return None;
        }
        let (table, key, default) = match c.args.as_slice() {
            [ast::CallArg::Pos(t), ast::CallArg::Pos(k)] => (t, k, None),
            [ast::CallArg::Pos(t), ast::CallArg::Pos(k), ast::CallArg::Kwarg("default", d)] => {
                (t, k, Some(d))
            }
            _ => return None,
        };
        let ast::Expr::Const(table) = table else { return None };
        let entries = self.tables.get(table.value.as_str()?)?;
        Some(Node::Lookup {
            entries: entries.clone(),
            key: Box::new(self.expr(key)?),
            default: match default {
                Some(d) => Some(Box::new(self.expr(d)?)),
                None => None,
            },
        })
    }
}

impl Node {
    pub(crate) fn eval<'a>(&'a self, s: &Scope<'a>) -> R<V<'a>> {
        Ok(match self {
            Node::Const(v) => V::Val(Cow::Borrowed(v)),
            Node::Record => V::Val(Cow::Borrowed(s.record)),
            Node::FlowId => owned(J::String(s.flow.to_string())),
            Node::Error => V::Val(Cow::Borrowed(s.error.ok_or(Fallback)?)),
            Node::StepOutput(id) => V::Val(Cow::Borrowed(s.steps.get(id).ok_or(Fallback)?)),
            Node::Attr(base, name) => attr(base.eval(s)?, name)?,
            Node::Item(base, sub) => {
                let base = base.eval(s)?;
                let sub = sub.eval(s)?;
                match sub.json()? {
                    J::String(name) => attr(base, name)?,
                    J::Number(n) => match num(n)? {
                        Num::I(i) if i >= 0 => index(base, i as usize)?,
                        _ => return Err(Fallback),
                    },
                    _ => return Err(Fallback),
                }
            }
            Node::Arith(op, l, r) => owned(arith(*op, l.eval(s)?.json()?, r.eval(s)?.json()?)?),
            Node::Concat(l, r) => {
                let mut out = display(l.eval(s)?.json()?)?.into_owned();
                out.push_str(&display(r.eval(s)?.json()?)?);
                owned(J::String(out))
            }
            Node::And(l, r) => {
                let l = l.eval(s)?;
                if l.truth()? { r.eval(s)? } else { l }
            }
            Node::Or(l, r) => {
                let l = l.eval(s)?;
                if l.truth()? { l } else { r.eval(s)? }
            }
            Node::Not(e) => owned(J::Bool(!e.eval(s)?.truth()?)),
            Node::Neg(e) => owned(match number_of(e.eval(s)?.json()?)? {
                Num::I(i) => int_json(i.checked_neg().ok_or(Fallback)?)?,
                Num::F(f) => float_json(-f)?,
            }),
            Node::Compare(first, ops) => {
                let mut left = first.eval(s)?;
                for (op, right) in ops {
                    let right = right.eval(s)?;
                    if !compare(*op, left.json()?, right.json()?)? {
                        return Ok(owned(J::Bool(false)));
                    }
                    left = right;
                }
                owned(J::Bool(true))
            }
            Node::If(test, yes, no) => {
                if test.eval(s)?.truth()? {
                    yes.eval(s)?
                } else {
                    match no {
                        Some(no) => no.eval(s)?,
                        None => V::Undef,
                    }
                }
            }
            Node::Filter(f, value, args) => filter(*f, value.eval(s)?, args, s)?,
            Node::Date { value, format, tz } => {
                let value = value.eval(s)?;
                let input = match value.json()? {
                    J::Number(n) => DateInput::Number(as_f64(num(n)?)?),
                    J::String(text) => DateInput::Text(text),
                    _ => return Err(Fallback),
                };
                let zoned = read_date(input, tz).map_err(|_| Fallback)?;
                let format = match format {
                    Some(f) => f.eval(s)?,
                    None => V::Undef,
                };
                let format = match &format {
                    V::Undef => DATE_FORMAT,
                    V::Val(v) => v.as_str().ok_or(Fallback)?,
                };
                owned(J::String(jiff::fmt::strtime::format(format, &zoned).map_err(|_| Fallback)?))
            }
            Node::Lookup { entries, key, default } => {
                let key = key.eval(s)?;
                let found = match key.json()? {
                    J::Null => None,
                    J::String(k) => entries.get(k.as_str()),
                    J::Number(n) => match num(n)? {
                        Num::I(i) => entries.get(i.to_string().as_str()),
                        Num::F(_) => return Err(Fallback),
                    },
                    _ => return Err(Fallback),
                };
                match (found, default) {
                    (Some(v), _) => V::Val(Cow::Borrowed(v)),
                    (None, Some(d)) => d.eval(s)?,
                    (None, None) => return Err(Fallback),
                }
            }
            Node::List(items) => {
                owned(J::Array(items.iter().map(|i| i.eval(s)?.into_json()).collect::<R<_>>()?))
            }
            Node::Map(entries) => owned(J::Object(
                entries.iter().map(|(k, v)| Ok((k.clone(), v.eval(s)?.into_json()?))).collect::<R<_>>()?,
            )),
        })
    }
}

/// `base.name`: a field of an object (undefined when absent); anything else gives up.
fn attr<'a>(base: V<'a>, name: &str) -> R<V<'a>> {
    let V::Val(base) = base else { return Err(Fallback) };
    match base {
        Cow::Borrowed(J::Object(o)) => Ok(o.get(name).map_or(V::Undef, |v| V::Val(Cow::Borrowed(v)))),
        Cow::Owned(J::Object(mut o)) => Ok(o.remove(name).map_or(V::Undef, owned)),
        _ => Err(Fallback),
    }
}

/// `base[i]` of a list.
fn index(base: V<'_>, i: usize) -> R<V<'_>> {
    let V::Val(base) = base else { return Err(Fallback) };
    match base {
        Cow::Borrowed(J::Array(a)) => Ok(a.get(i).map_or(V::Undef, |v| V::Val(Cow::Borrowed(v)))),
        Cow::Owned(J::Array(mut a)) if i < a.len() => Ok(owned(a.swap_remove(i))),
        Cow::Owned(J::Array(_)) => Ok(V::Undef),
        _ => Err(Fallback),
    }
}

fn arith(op: Arith, l: &J, r: &J) -> R<J> {
    if let (Arith::Add, J::String(a), J::String(b)) = (op, l, r) {
        return Ok(J::String(format!("{a}{b}")));
    }
    let (a, b) = (number_of(l)?, number_of(r)?);
    if let Arith::Div = op {
        let (a, b) = (to_f64_lossy(a), to_f64_lossy(b));
        return if b == 0.0 { Err(Fallback) } else { float_json(a / b) };
    }
    match (a, b) {
        (Num::I(a), Num::I(b)) => int_json(
            match op {
                Arith::Add => a.checked_add(b),
                Arith::Sub => a.checked_sub(b),
                Arith::Mul => a.checked_mul(b),
                Arith::FloorDiv => div_rem_floor(a, b).map(|(q, _)| q),
                Arith::Rem => div_rem_floor(a, b).map(|(_, r)| r),
                Arith::Div => None,
            }
            .ok_or(Fallback)?,
        ),
        (a, b) => {
            let (a, b) = (to_f64_lossy(a), to_f64_lossy(b));
            float_json(match op {
                Arith::Add => a + b,
                Arith::Sub => a - b,
                Arith::Mul => a * b,
                // Float floor division and remainder round in subtle ways: MiniJinja's.
                Arith::FloorDiv | Arith::Rem | Arith::Div => return Err(Fallback),
            })
        }
    }
}

fn to_f64_lossy(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }
}

/// Python's floor division and remainder (the remainder takes the divisor's sign).
fn div_rem_floor(a: i128, b: i128) -> Option<(i128, i128)> {
    let mut q = a.checked_div(b)?;
    let mut r = a.checked_rem(b)?;
    if r != 0 && (r < 0) != (b < 0) {
        q = q.checked_sub(1)?;
        r = r.checked_add(b)?;
    }
    Some((q, r))
}

/// Text of a value for `~`: strings and integers only (floats, booleans and none print in
/// MiniJinja's own way).
fn display(v: &J) -> R<Cow<'_, str>> {
    match v {
        J::String(s) => Ok(Cow::Borrowed(s)),
        J::Number(n) => match num(n)? {
            Num::I(i) => Ok(Cow::Owned(i.to_string())),
            Num::F(_) => Err(Fallback),
        },
        _ => Err(Fallback),
    }
}

fn compare(op: Cmp, l: &J, r: &J) -> R<bool> {
    Ok(match op {
        Cmp::Eq => equal(l, r)?,
        Cmp::Ne => !equal(l, r)?,
        Cmp::Lt => order(l, r)? == Ordering::Less,
        Cmp::Lte => order(l, r)? != Ordering::Greater,
        Cmp::Gt => order(l, r)? == Ordering::Greater,
        Cmp::Gte => order(l, r)? != Ordering::Less,
        Cmp::In => contains(r, l)?,
        Cmp::NotIn => !contains(r, l)?,
    })
}

/// Equality of scalars; containers and mixed kinds give up.
fn equal(l: &J, r: &J) -> R<bool> {
    match (l, r) {
        (J::Null, J::Null) => Ok(true),
        (J::String(a), J::String(b)) => Ok(a == b),
        (J::Bool(a), J::Bool(b)) => Ok(a == b),
        (J::Number(a), J::Number(b)) => match (num(a)?, num(b)?) {
            (Num::I(a), Num::I(b)) => Ok(a == b),
            (a, b) => Ok(as_f64(a)? == as_f64(b)?),
        },
        // A string or number against none (an optional field): never equal in MiniJinja.
        (J::Null, J::String(_) | J::Number(_)) | (J::String(_) | J::Number(_), J::Null) => Ok(false),
        (J::String(_), J::Number(_)) | (J::Number(_), J::String(_)) => Ok(false),
        _ => Err(Fallback),
    }
}

fn order(l: &J, r: &J) -> R<Ordering> {
    match (l, r) {
        (J::String(a), J::String(b)) => Ok(a.cmp(b)),
        (J::Number(a), J::Number(b)) => match (num(a)?, num(b)?) {
            (Num::I(a), Num::I(b)) => Ok(a.cmp(&b)),
            (a, b) => as_f64(a)?.partial_cmp(&as_f64(b)?).ok_or(Fallback),
        },
        _ => Err(Fallback),
    }
}

/// `needle in haystack`: a substring, a list member, an object key.
fn contains(haystack: &J, needle: &J) -> R<bool> {
    match (haystack, needle) {
        (J::String(h), J::String(n)) => Ok(h.contains(n.as_str())),
        (J::Object(o), J::String(k)) => Ok(o.contains_key(k)),
        (J::Array(items), n) => {
            for item in items {
                if equal(item, n)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        _ => Err(Fallback),
    }
}

fn filter<'a>(f: Filter, value: V<'a>, args: &'a [Node], s: &Scope<'a>) -> R<V<'a>> {
    Ok(match f {
        Filter::Default => {
            let lax = match args.get(1) {
                Some(b) => b.eval(s)?.truth()?,
                None => false,
            };
            let replace = match &value {
                V::Undef => true,
                V::Val(v) => v.is_null() || (lax && !value.truth()?),
            };
            if !replace {
                return Ok(value);
            }
            match args.first() {
                Some(other) => other.eval(s)?,
                None => owned(J::String(String::new())),
            }
        }
        Filter::Upper => owned(J::String(string(&value)?.to_uppercase())),
        Filter::Lower => owned(J::String(string(&value)?.to_lowercase())),
        Filter::Trim => owned(J::String(string(&value)?.trim().to_string())),
        Filter::Length => owned(J::from(match value.json()? {
            J::String(s) => s.chars().count(),
            J::Array(a) => a.len(),
            J::Object(o) => o.len(),
            _ => return Err(Fallback),
        })),
        Filter::Round => {
            let precision = match args.first() {
                Some(p) => match number_of(p.eval(s)?.json()?)? {
                    Num::I(p) if (0..=30).contains(&p) => p as usize,
                    _ => return Err(Fallback),
                },
                None => 0,
            };
            match number_of(value.json()?)? {
                Num::I(_) => value,
                // MiniJinja rounds through formatting (round-half-even on the decimal text).
                Num::F(f) => {
                    owned(float_json(format!("{f:.precision$}").parse::<f64>().map_err(|_| Fallback)?)?)
                }
            }
        }
        Filter::Abs => owned(match number_of(value.json()?)? {
            Num::I(i) => int_json(i.checked_abs().ok_or(Fallback)?)?,
            Num::F(f) => float_json(f.abs())?,
        }),
        Filter::Number => match value.json()? {
            J::Number(_) => value,
            J::String(text) => {
                let text = text.trim().replace(',', "");
                if let Ok(i) = text.parse::<i64>() {
                    owned(J::from(i))
                } else {
                    match text.parse::<f64>() {
                        Ok(f) if f.is_finite() && !text.is_empty() => owned(float_json(f)?),
                        _ => return Err(Fallback),
                    }
                }
            }
            _ => return Err(Fallback),
        },
    })
}

fn string<'v>(v: &'v V<'_>) -> R<&'v str> {
    match v.json()? {
        J::String(s) => Ok(s),
        _ => Err(Fallback),
    }
}
