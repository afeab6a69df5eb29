//! `ExecuteBillQuery` over the fake's bills: field keys (header fields, `<Entry>_<Field>` entry
//! fields, `Field.FNumber` base-data sub-fields), a usable subset of the SQL-like
//! `FilterString`, `OrderString`, and `StartRow`/`Limit`/`TopRowCount` paging.
//!
//! Filter subset: `field op literal` with `=`, `<>`, `!=`, `>`, `>=`, `<`, `<=`, `like` (`%`
//! wildcards), `in (a, b)`; `and`, `or`, `not`-free parentheses. Literals are quoted strings
//! (`''` escapes a quote) or numbers. Text compares case-insensitively (SQL Server's default
//! collation); date texts compare after normalising `2024-05-01 00:00:00` / `2024-05-01` to
//! `2024-05-01T00:00:00`.

use std::cmp::Ordering;

use serde_json::Value;

use crate::body::get_ci;

/// The largest `Limit` the server accepts.
pub const MAX_LIMIT: u64 = 10_000;

/// A parsed `ExecuteBillQuery` request.
#[derive(Debug, Clone, PartialEq)]
pub struct BillQuery {
    /// Field keys in answer order.
    pub fields: Vec<String>,
    /// The filter, if any.
    pub filter: Option<Expr>,
    /// Sort keys: (field, descending).
    pub order: Vec<(String, bool)>,
    /// 0-based offset.
    pub start_row: u64,
    /// Page size; 0 means no limit.
    pub limit: u64,
    /// Total cap; 0 means none.
    pub top: u64,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// `field op literal`.
    Cmp(String, Op, Value),
    /// `field like 'pattern'`.
    Like(String, String),
    /// `field in (literals)`.
    In(String, Vec<Value>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl BillQuery {
    /// Reads the `data` of an `ExecuteBillQuery` call; the error is the server's message.
    pub fn from_data(data: &Value) -> Result<BillQuery, String> {
        let text = |k: &str| get_ci(data, k).and_then(Value::as_str).unwrap_or_default().trim().to_string();
        let number = |k: &str| {
            get_ci(data, k).and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        };
        let fields: Vec<String> = text("FieldKeys")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if fields.is_empty() {
            return Err("FieldKeys不能为空".into());
        }
        let filter_text = text("FilterString");
        let filter = if filter_text.is_empty() { None } else { Some(parse_filter(&filter_text)?) };
        let mut order = Vec::new();
        for part in text("OrderString").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut words = part.split_whitespace();
            let field = words.next().unwrap_or_default().to_string();
            let desc = match words.next().map(str::to_ascii_uppercase).as_deref() {
                None | Some("ASC") => false,
                Some("DESC") => true,
                Some(other) => return Err(format!("OrderString中的排序方式“{other}”无效")),
            };
            order.push((field, desc));
        }
        let limit = number("Limit").unwrap_or(0);
        if limit > MAX_LIMIT {
            return Err(format!("Limit不能超过{MAX_LIMIT}"));
        }
        Ok(BillQuery {
            fields,
            filter,
            order,
            start_row: number("StartRow").unwrap_or(0),
            limit,
            top: number("TopRowCount").unwrap_or(0),
        })
    }

    /// Every field key the query touches (answer, filter, order).
    pub fn touched(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        keys.extend(self.order.iter().map(|(f, _)| f.as_str()));
        if let Some(f) = &self.filter {
            f.fields(&mut keys);
        }
        keys
    }
}

impl Expr {
    fn fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Expr::Cmp(f, _, _) | Expr::Like(f, _) | Expr::In(f, _) => out.push(f),
        }
    }

    /// Whether the row matches; `lookup` resolves a field key on the row.
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(lookup) && b.eval(lookup),
            Expr::Or(a, b) => a.eval(lookup) || b.eval(lookup),
            Expr::Cmp(field, op, lit) => {
                let v = lookup(field);
                match compare_sql(&v, lit) {
                    None => false,
                    Some(ord) => match op {
                        Op::Eq => ord == Ordering::Equal,
                        Op::Ne => ord != Ordering::Equal,
                        Op::Gt => ord == Ordering::Greater,
                        Op::Ge => ord != Ordering::Less,
                        Op::Lt => ord == Ordering::Less,
                        Op::Le => ord != Ordering::Greater,
                    },
                }
            }
            Expr::Like(field, pattern) => match lookup(field) {
                Value::String(s) => like(&s.to_lowercase(), &pattern.to_lowercase()),
                Value::Number(n) => like(&n.to_string(), pattern),
                _ => false,
            },
            Expr::In(field, list) => {
                let v = lookup(field);
                list.iter().any(|lit| compare_sql(&v, lit) == Some(Ordering::Equal))
            }
        }
    }
}

/// SQL-ish comparison of a row value with a literal: `None` when the row value is null.
fn compare_sql(v: &Value, lit: &Value) -> Option<Ordering> {
    if v.is_null() {
        return None;
    }
    let as_f64 = |x: &Value| x.as_f64().or_else(|| x.as_str().and_then(|s| s.trim().parse::<f64>().ok()));
    if (v.is_number() || lit.is_number() || v.is_boolean())
        && let (Some(a), Some(b)) = (as_f64(v).or_else(|| v.as_bool().map(f64::from)), as_f64(lit))
    {
        return a.partial_cmp(&b);
    }
    let a = normalize_text(&text_of(v));
    let b = normalize_text(&text_of(lit));
    Some(a.cmp(&b))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lowercases text and writes dates as `YYYY-MM-DDTHH:MM:SS`.
fn normalize_text(s: &str) -> String {
    let b = s.as_bytes();
    let is_date = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[8..10].iter().all(u8::is_ascii_digit);
    if !is_date {
        return s.to_lowercase();
    }
    if b.len() == 10 {
        return format!("{s}T00:00:00");
    }
    let mut out = s.to_string();
    if b[10] == b' ' {
        out.replace_range(10..11, "T");
    }
    out
}

/// SQL `LIKE` with `%` (any run) and `_` (any one character).
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Classic wildcard matching with backtracking on the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

/// Orders two cell values for `OrderString`: nulls first, numbers numerically, text by
/// normalised text.
pub fn order_values(a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => compare_sql(a, b).unwrap_or(Ordering::Equal),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Op),
    Open,
    Close,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("过滤条件中的字符串没有结束引号".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(text));
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1;
            }
            '<' | '>' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('>')) | ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => return Err(format!("过滤条件中有无法识别的符号“{c}”")),
                };
                out.push(Tok::Op(op));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse::<f64>().map_err(|_| format!("过滤条件中的数字“{text}”无效"))?;
                out.push(Tok::Num(n));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("过滤条件中有无法识别的符号“{other}”")),
        }
    }
    Ok(out)
}

/// Parses a `FilterString`; the error is the server's message.
pub fn parse_filter(s: &str) -> Result<Expr, String> {
    let toks = tokenize(s)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("过滤条件“{s}”有语法错误"));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn keyword(&mut self, word: &str) -> bool {
        if let Some(Tok::Ident(w)) = self.peek()
            && w.eq_ignore_ascii_case(word)
        {
            self.pos += 1;
            return true;
        }
        false
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.atom()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn literal(&mut self) -> Result<Value, String> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Num(n)) => Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
            _ => Err("过滤条件中缺少比较值".into()),
        }
    }

    fn atom(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let e = self.or()?;
            if self.peek() != Some(&Tok::Close) {
                return Err("过滤条件中的括号不匹配".into());
            }
            self.pos += 1;
            return Ok(e);
        }
        let Some(Tok::Ident(field)) = self.peek().cloned() else {
            return Err("过滤条件中缺少字段名".into());
        };
        self.pos += 1;
        if self.keyword("like") {
            return match self.literal()? {
                Value::String(p) => Ok(Expr::Like(field, p)),
                _ => Err("like 需要字符串".into()),
            };
        }
        if self.keyword("in") {
            if self.peek() != Some(&Tok::Open) {
                return Err("in 需要括号".into());
            }
            self.pos += 1;
            let mut list = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                list.push(self.literal()?);
            }
            if self.peek() != Some(&Tok::Close) {
                return Err("过滤条件中的括号不匹配".into());
            }
            self.pos += 1;
            return Ok(Expr::In(field, list));
        }
        let Some(Tok::Op(op)) = self.peek().cloned() else {
            return Err(format!("过滤条件中字段“{field}”后缺少比较符"));
        };
        self.pos += 1;
        Ok(Expr::Cmp(field, op, self.literal()?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(key: &str) -> Value {
        let r = json!({"FDocumentStatus": "C", "FModifyDate": "2024-05-02T10:00:00", "FID": 100012,
                       "FBillNo": "RGCB000012", "FNote": "qiao:flow:WL-1:book"});
        get_ci(&r, key).cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn filters_compare_text_dates_and_numbers() {
        let cases = [
            ("FDocumentStatus='C'", true),
            ("fdocumentstatus = 'c'", true),
            ("FDocumentStatus='C' and FModifyDate>='2024-05-01 00:00:00'", true),
            ("FModifyDate>='2024-05-03'", false),
            ("FModifyDate<='2024-05-02 10:00:00' and FID>=100012", true),
            ("FID>100012 or FBillNo='RGCB000012'", true),
            ("(FID>100012 or FBillNo<>'RGCB000012') and FDocumentStatus='C'", false),
            ("FNote like '%WL-1:%'", true),
            ("FNote like 'WL-1%'", false),
            ("FDocumentStatus in ('A', 'B')", false),
            ("FMissing='x'", false),
        ];
        for (f, want) in cases {
            let e = parse_filter(f).unwrap();
            assert_eq!(e.eval(&row), want, "{f}");
        }
    }

    #[test]
    fn bad_filters_and_limits_are_refused() {
        assert!(parse_filter("FID >").is_err());
        assert!(parse_filter("FBillNo='open").is_err());
        assert!(parse_filter("(FID=1").is_err());
        let e = BillQuery::from_data(&json!({"FieldKeys": "FID", "Limit": 10001})).unwrap_err();
        assert!(e.contains("10000"), "{e}");
        assert!(BillQuery::from_data(&json!({"FieldKeys": ""})).is_err());
        let q =
            BillQuery::from_data(&json!({"FieldKeys": "FID, FBillNo", "OrderString": "FModifyDate DESC,FID",
                                             "StartRow": "20", "Limit": 10}))
            .unwrap();
        assert_eq!(q.fields, ["FID", "FBillNo"]);
        assert_eq!(q.order, [("FModifyDate".to_string(), true), ("FID".to_string(), false)]);
        assert_eq!((q.start_row, q.limit), (20, 10));
    }

    #[test]
    fn like_wildcards() {
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("qiao:k#3 x", "%qiao:k#%"));
    }
}
