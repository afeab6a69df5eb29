//! System query options: `$filter` (parsed, type-checked against the entity type, evaluated),
//! `$orderby`, and key predicates. Literal syntax follows the version: v2 wants
//! `datetime'…'`, `datetimeoffset'…'` and `guid'…'`; v4 wants bare dates, timestamps and UUIDs.

use std::cmp::Ordering;

use serde_json::{Value, json};

use crate::encode::parse_iso;
use crate::model::{Edm, Entity, EntitySet};

/// A literal value in a filter or key predicate.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number (`12.5M`, `10L`, `7`).
    Num(f64),
    /// `'text'`.
    Str(String),
    /// A date or timestamp, epoch milliseconds.
    Date(i64),
    /// A GUID, lower-case.
    Guid(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Lit(Lit),
    Open,
    Close,
    Comma,
    Eq,
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

fn tokenize(text: &str, v4: bool) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let quoted = |i: &mut usize| -> Result<String, String> {
        // chars[*i] is the opening quote.
        let mut s = String::new();
        *i += 1;
        loop {
            match chars.get(*i) {
                None => return Err("unterminated string literal".into()),
                Some('\'') if chars.get(*i + 1) == Some(&'\'') => {
                    s.push('\'');
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(*c);
                    *i += 1;
                }
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '=' => {
                out.push(Token::Eq);
                i += 1;
            }
            '\'' => out.push(Token::Lit(Lit::Str(quoted(&mut i)?))),
            _ if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                let ahead: String = chars[i..chars.len().min(i + 36)].iter().collect();
                if is_uuid(&ahead) {
                    if !v4 {
                        return Err(format!("invalid literal {ahead:?}: use guid'…' in OData V2"));
                    }
                    out.push(Token::Lit(Lit::Guid(ahead.to_ascii_lowercase())));
                    i += 36;
                    continue;
                }
                let numeric = c.is_ascii_digit() || c == '-';
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '_'
                        || chars[i] == '/'
                        || chars[i] == '.'
                        || (numeric && matches!(chars[i], '-' | ':' | '+')))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if numeric {
                    out.push(Token::Lit(number_or_date(&word, v4)?));
                    continue;
                }
                if chars.get(i) == Some(&'\'') {
                    let inner = quoted(&mut i)?;
                    let lit = match (word.as_str(), v4) {
                        ("datetime" | "datetimeoffset", false) => Lit::Date(
                            parse_iso(&inner).ok_or_else(|| format!("invalid {word} literal '{inner}'"))?,
                        ),
                        ("guid", false) if is_uuid(&inner) => Lit::Guid(inner.to_ascii_lowercase()),
                        _ => return Err(format!("invalid literal {word}'{inner}'")),
                    };
                    out.push(Token::Lit(lit));
                    continue;
                }
                out.push(match word.as_str() {
                    "true" => Token::Lit(Lit::Bool(true)),
                    "false" => Token::Lit(Lit::Bool(false)),
                    "null" => Token::Lit(Lit::Null),
                    _ => Token::Ident(word),
                });
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

fn number_or_date(word: &str, v4: bool) -> Result<Lit, String> {
    let looks_like_date = word.len() >= 10 && word.as_bytes().get(4) == Some(&b'-');
    if looks_like_date {
        if !v4 {
            return Err(format!(
                "invalid literal {word:?}: use datetime'…' or datetimeoffset'…' in OData V2"
            ));
        }
        return parse_iso(word).map(Lit::Date).ok_or_else(|| format!("invalid date literal {word:?}"));
    }
    let digits = word.trim_end_matches(['M', 'm', 'L', 'l', 'd', 'D', 'f', 'F']);
    digits.parse::<f64>().map(Lit::Num).map_err(|_| format!("invalid number literal {word:?}"))
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A property.
    Field(String),
    /// A literal.
    Lit(Lit),
    /// A function call (`tolower(Name)`).
    Call(String, Vec<Operand>),
}

/// A parsed `$filter`.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `not a`.
    Not(Box<Filter>),
    /// `x op y`.
    Cmp(Operand, Op, Operand),
    /// A boolean function (`startswith(Name,'A')`).
    Call(String, Vec<Operand>),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Filter, String> {
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err("missing ')'".into());
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Ident(w)) => match w.as_str() {
                "eq" => Some(Op::Eq),
                "ne" => Some(Op::Ne),
                "gt" => Some(Op::Gt),
                "ge" => Some(Op::Ge),
                "lt" => Some(Op::Lt),
                "le" => Some(Op::Le),
                _ => None,
            },
            _ => None,
        };
        match (op, left) {
            (Some(op), left) => {
                self.at += 1;
                Ok(Filter::Cmp(left, op, self.operand()?))
            }
            (None, Operand::Call(name, args)) => Ok(Filter::Call(name, args)),
            (None, other) => Err(format!("expected a comparison after {other:?}")),
        }
    }
    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Lit(l)) => Ok(Operand::Lit(l)),
            Some(Token::Ident(name)) => {
                if self.peek() != Some(&Token::Open) {
                    return Ok(Operand::Field(name));
                }
                self.at += 1;
                let mut args = Vec::new();
                loop {
                    args.push(self.operand()?);
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::Close) => break,
                        _ => return Err(format!("malformed call of {name}")),
                    }
                }
                Ok(Operand::Call(name, args))
            }
            other => Err(format!("unexpected token {other:?}")),
        }
    }
}

const V2_FUNCTIONS: &[(&str, usize)] =
    &[("substringof", 2), ("startswith", 2), ("endswith", 2), ("tolower", 1), ("toupper", 1)];
const V4_FUNCTIONS: &[(&str, usize)] =
    &[("contains", 2), ("startswith", 2), ("endswith", 2), ("tolower", 1), ("toupper", 1)];

/// Parses and type-checks `$filter` text against `set`.
pub fn parse_filter(text: &str, set: &EntitySet, v4: bool) -> Result<Filter, String> {
    let mut p = Parser { tokens: tokenize(text, v4)?, at: 0 };
    let f = p.or()?;
    if p.at != p.tokens.len() {
        return Err(format!("unexpected text after position {}", p.at));
    }
    check(&f, set, v4)?;
    Ok(f)
}

fn check(f: &Filter, set: &EntitySet, v4: bool) -> Result<(), String> {
    match f {
        Filter::Or(a, b) | Filter::And(a, b) => {
            check(a, set, v4)?;
            check(b, set, v4)
        }
        Filter::Not(a) => check(a, set, v4),
        Filter::Call(name, args) => {
            check_operand(&Operand::Call(name.clone(), args.clone()), set, v4).map(|_| ())
        }
        Filter::Cmp(a, _, b) => {
            let (ta, tb) = (check_operand(a, set, v4)?, check_operand(b, set, v4)?);
            let ok = match (ta, tb) {
                (Kind::Null, _) | (_, Kind::Null) => true,
                (x, y) => x == y,
            };
            if ok {
                Ok(())
            } else {
                Err(format!("incompatible operand types in comparison ({ta:?} vs {tb:?})"))
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Null,
    Bool,
    Num,
    Str,
    Date,
    Guid,
}

fn check_operand(o: &Operand, set: &EntitySet, v4: bool) -> Result<Kind, String> {
    match o {
        Operand::Lit(l) => Ok(match l {
            Lit::Null => Kind::Null,
            Lit::Bool(_) => Kind::Bool,
            Lit::Num(_) => Kind::Num,
            Lit::Str(_) => Kind::Str,
            Lit::Date(_) => Kind::Date,
            Lit::Guid(_) => Kind::Guid,
        }),
        Operand::Field(name) => match set.prop(name) {
            None => Err(format!("Property '{name}' not found in type '{}'", set.type_name())),
            Some(Edm::Str) => Ok(Kind::Str),
            Some(Edm::Guid) => Ok(Kind::Guid),
            Some(Edm::Decimal) => Ok(Kind::Num),
            Some(Edm::Bool) => Ok(Kind::Bool),
            Some(Edm::Date | Edm::DateTimeOffset) => Ok(Kind::Date),
        },
        Operand::Call(name, args) => {
            let known = if v4 { V4_FUNCTIONS } else { V2_FUNCTIONS };
            let Some((_, arity)) = known.iter().find(|(n, _)| n == name) else {
                return Err(format!("unknown function '{name}'"));
            };
            if args.len() != *arity {
                return Err(format!("function '{name}' takes {arity} arguments"));
            }
            for a in args {
                if check_operand(a, set, v4)? != Kind::Str {
                    return Err(format!("function '{name}' takes strings"));
                }
            }
            Ok(if name.starts_with("to") { Kind::Str } else { Kind::Bool })
        }
    }
}

fn resolve(o: &Operand, set: &EntitySet, e: &Entity) -> Lit {
    match o {
        Operand::Lit(l) => l.clone(),
        Operand::Field(name) => {
            let v = e.fields.get(name).unwrap_or(&Value::Null);
            internal_to_lit(v, set.prop(name).unwrap_or(Edm::Str))
        }
        Operand::Call(name, args) => {
            let s: Vec<String> = args
                .iter()
                .map(|a| match resolve(a, set, e) {
                    Lit::Str(s) => s,
                    _ => String::new(),
                })
                .collect();
            match (name.as_str(), s.as_slice()) {
                ("substringof", [needle, hay]) | ("contains", [hay, needle]) => {
                    Lit::Bool(hay.contains(needle.as_str()))
                }
                ("startswith", [hay, p]) => Lit::Bool(hay.starts_with(p.as_str())),
                ("endswith", [hay, p]) => Lit::Bool(hay.ends_with(p.as_str())),
                ("tolower", [s]) => Lit::Str(s.to_lowercase()),
                ("toupper", [s]) => Lit::Str(s.to_uppercase()),
                _ => Lit::Null,
            }
        }
    }
}

/// The internal value of a property as a literal.
pub fn internal_to_lit(v: &Value, edm: Edm) -> Lit {
    match (edm, v) {
        (_, Value::Null) => Lit::Null,
        (Edm::Date | Edm::DateTimeOffset, Value::Number(n)) => Lit::Date(n.as_i64().unwrap_or(0)),
        (Edm::Decimal, Value::String(s)) => s.parse().map_or(Lit::Null, Lit::Num),
        (Edm::Guid, Value::String(s)) => Lit::Guid(s.to_ascii_lowercase()),
        (_, Value::String(s)) => Lit::Str(s.clone()),
        (_, Value::Bool(b)) => Lit::Bool(*b),
        (_, Value::Number(n)) => Lit::Num(n.as_f64().unwrap_or(0.0)),
        _ => Lit::Null,
    }
}

/// Orders two literals of one kind; `null` sorts first.
pub fn compare(a: &Lit, b: &Lit) -> Option<Ordering> {
    match (a, b) {
        (Lit::Null, Lit::Null) => Some(Ordering::Equal),
        (Lit::Null, _) => Some(Ordering::Less),
        (_, Lit::Null) => Some(Ordering::Greater),
        (Lit::Num(x), Lit::Num(y)) => x.partial_cmp(y),
        (Lit::Str(x), Lit::Str(y)) | (Lit::Guid(x), Lit::Guid(y)) => Some(x.cmp(y)),
        (Lit::Date(x), Lit::Date(y)) => Some(x.cmp(y)),
        (Lit::Bool(x), Lit::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Whether `e` passes `f`.
pub fn matches(f: &Filter, set: &EntitySet, e: &Entity) -> bool {
    match f {
        Filter::Or(a, b) => matches(a, set, e) || matches(b, set, e),
        Filter::And(a, b) => matches(a, set, e) && matches(b, set, e),
        Filter::Not(a) => !matches(a, set, e),
        Filter::Call(name, args) => {
            resolve(&Operand::Call(name.clone(), args.clone()), set, e) == Lit::Bool(true)
        }
        Filter::Cmp(a, op, b) => {
            let (x, y) = (resolve(a, set, e), resolve(b, set, e));
            let null = x == Lit::Null || y == Lit::Null;
            let ord = compare(&x, &y);
            match op {
                Op::Eq => ord == Some(Ordering::Equal),
                Op::Ne => ord != Some(Ordering::Equal),
                _ if null => false,
                Op::Gt => ord == Some(Ordering::Greater),
                Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                Op::Lt => ord == Some(Ordering::Less),
                Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            }
        }
    }
}

/// Parses `$orderby` (`LastChangeDateTime asc,ProjectElementUUID desc`): (property, descending).
pub fn parse_orderby(text: &str, set: &EntitySet) -> Result<Vec<(String, bool)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| {
            let mut words = part.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let desc = match words.next() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(format!("invalid sort order '{other}'")),
            };
            if set.prop(&name).is_none() {
                return Err(format!("Property '{name}' not found in type '{}'", set.type_name()));
            }
            Ok((name, desc))
        })
        .collect()
}

/// Sorts `rows` by `order` (stable; keys decide ties in the order they were stored).
pub fn sort(rows: &mut [&Entity], order: &[(String, bool)], set: &EntitySet) {
    rows.sort_by(|a, b| {
        for (name, desc) in order {
            let edm = set.prop(name).unwrap_or(Edm::Str);
            let x = internal_to_lit(a.fields.get(name).unwrap_or(&Value::Null), edm);
            let y = internal_to_lit(b.fields.get(name).unwrap_or(&Value::Null), edm);
            let ord = compare(&x, &y).unwrap_or(Ordering::Equal);
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

/// Parses a key predicate's inside (`'10000012'`, `guid'…'`,
/// `ControllingArea='A000',CostCenter='10101101',ValidityEndDate=datetime'9999-12-31T00:00:00'`)
/// into the key's internal values, in key order.
pub fn parse_key(text: &str, set: &EntitySet, v4: bool) -> Result<Vec<Value>, String> {
    let tokens = tokenize(text, v4)?;
    let mut named: Vec<(Option<String>, Lit)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Ident(n)), Some(Token::Eq), Some(Token::Lit(l))) => {
                named.push((Some(n.clone()), l.clone()));
                i += 3;
            }
            (Some(Token::Lit(l)), _, _) => {
                named.push((None, l.clone()));
                i += 1;
            }
            _ => return Err(format!("malformed key predicate ({text})")),
        }
        match tokens.get(i) {
            None => {}
            Some(Token::Comma) => i += 1,
            Some(_) => return Err(format!("malformed key predicate ({text})")),
        }
    }
    if named.len() != set.keys.len() || (named.len() > 1 && named.iter().any(|(n, _)| n.is_none())) {
        return Err(format!("key predicate ({text}) does not match the key of {}", set.type_name()));
    }
    set.keys
        .iter()
        .map(|k| {
            let lit = if named.len() == 1 && named[0].0.is_none() {
                &named[0].1
            } else {
                &named
                    .iter()
                    .find(|(n, _)| n.as_deref() == Some(*k))
                    .ok_or_else(|| format!("key property '{k}' missing in ({text})"))?
                    .1
            };
            let edm = set.prop(k).unwrap_or(Edm::Str);
            match (edm, lit) {
                (Edm::Str, Lit::Str(s)) => Ok(json!(s)),
                (Edm::Guid, Lit::Guid(g)) => Ok(json!(g)),
                (Edm::Date | Edm::DateTimeOffset, Lit::Date(ms)) => Ok(json!(ms)),
                _ => Err(format!("invalid value for key property '{k}' in ({text})")),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{COST_CENTER, ENTERPRISE_PROJECT};
    use serde_json::Map;

    fn wbs() -> &'static EntitySet {
        &ENTERPRISE_PROJECT.sets[1]
    }

    fn entity(desc: &str, changed: i64) -> Entity {
        let mut fields = Map::new();
        fields.insert("ProjectElementDescription".into(), json!(desc));
        fields.insert("ProjectElement".into(), json!("P-100001.1"));
        fields.insert("LastChangeDateTime".into(), json!(changed));
        fields.insert("WBSElementIsBillingElement".into(), json!(true));
        Entity { fields, changed_ms: changed }
    }

    #[test]
    fn v2_filters_with_datetimeoffset_and_strings() {
        let f = parse_filter(
            "LastChangeDateTime gt datetimeoffset'2024-05-01T00:00:00Z' and (startswith(ProjectElement,'P-1') or ProjectElementDescription eq 'x')",
            wbs(),
            false,
        )
        .unwrap();
        assert!(matches(&f, wbs(), &entity("需求分析", 1_714_552_212_453)));
        assert!(!matches(&f, wbs(), &entity("需求分析", 1_714_521_600_000)));
        let f = parse_filter(
            "substringof('分析',ProjectElementDescription) and WBSElementIsBillingElement eq true",
            wbs(),
            false,
        )
        .unwrap();
        assert!(matches(&f, wbs(), &entity("需求分析", 0)));
        assert!(!matches(&f, wbs(), &entity("上线", 0)));
        let f = parse_filter("not (ProjectElementDescription ne 'it''s')", wbs(), false).unwrap();
        assert!(matches(&f, wbs(), &entity("it's", 0)));
    }

    #[test]
    fn literal_syntax_follows_the_version() {
        assert!(parse_filter("LastChangeDateTime ge 2024-05-01T00:00:00Z", wbs(), false).is_err());
        assert!(
            parse_filter("LastChangeDateTime ge datetimeoffset'2024-05-01T00:00:00Z'", wbs(), true).is_err()
        );
        let f = parse_filter("LastChangeDateTime ge 2024-05-01T00:00:00.001Z", wbs(), true).unwrap();
        assert!(matches(&f, wbs(), &entity("a", 1_714_521_600_001)));
        assert!(!matches(&f, wbs(), &entity("a", 1_714_521_600_000)));
        assert!(parse_filter("contains(ProjectElementDescription,'a')", wbs(), false).is_err());
        assert!(parse_filter("NoSuchField eq 'a'", wbs(), false).unwrap_err().contains("NoSuchField"));
        assert!(parse_filter("LastChangeDateTime eq 'x'", wbs(), false).is_err());
        let guid = "fa163e9c-1d2e-1eda-b0b0-000000000001";
        assert!(parse_filter(&format!("ProjectUUID eq guid'{guid}'"), wbs(), false).is_ok());
        assert!(parse_filter(&format!("ProjectUUID eq {guid}"), wbs(), true).is_ok());
        assert!(parse_filter(&format!("ProjectUUID eq {guid}"), wbs(), false).is_err());
    }

    #[test]
    fn composite_keys_parse_in_both_versions() {
        let cc = &COST_CENTER.sets[0];
        let k = parse_key(
            "ControllingArea='A000',CostCenter='10101101',ValidityEndDate=datetime'9999-12-31T00:00:00'",
            cc,
            false,
        )
        .unwrap();
        assert_eq!(k, vec![json!("A000"), json!("10101101"), json!(253_402_214_400_000_i64)]);
        let k4 =
            parse_key("ValidityEndDate=9999-12-31,ControllingArea='A000',CostCenter='10101101'", cc, true)
                .unwrap();
        assert_eq!(k, k4);
        assert!(parse_key("'A000'", cc, false).is_err());
        let guid = "FA163E9C-1D2E-1EDA-B0B0-000000000001";
        let k = parse_key(&format!("guid'{guid}'"), wbs(), false).unwrap();
        assert_eq!(k, vec![json!(guid.to_ascii_lowercase())]);
        assert!(parse_key(&format!("ProjectElementUUID={guid}"), wbs(), true).is_ok());
    }

    #[test]
    fn orderby_sorts_by_several_properties() {
        let (a, b, c) = (entity("b", 2), entity("a", 2), entity("c", 1));
        let mut rows = vec![&a, &b, &c];
        let order = parse_orderby("LastChangeDateTime asc, ProjectElementDescription desc", wbs()).unwrap();
        sort(&mut rows, &order, wbs());
        let names: Vec<_> = rows.iter().map(|e| e.fields["ProjectElementDescription"].clone()).collect();
        assert_eq!(names, vec![json!("c"), json!("b"), json!("a")]);
        assert!(parse_orderby("Nope asc", wbs()).is_err());
    }
}
