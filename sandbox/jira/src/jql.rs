//! The JQL subset the fake understands: clauses combined with `AND`, `OR`, `NOT` and
//! parentheses, then an optional `ORDER BY` (updated, created, key, id; key breaks ties).
//!
//! Clauses: `project = KEY`, `project in (A, B)`, `status = "进行中"`, `status in (...)`,
//! `key`/`issuekey`/`id` `=`/`in`, `labels = x`, `issuetype = 任务`, `assignee = accountId`,
//! and `updated`/`created` compared with `>=`, `>`, `<=`, `<`, `=` against a JQL date (minute
//! precision, site time zone, or a relative period like `-15m`). `!=` and `not in` work on the
//! text fields. Anything else (`~`, functions, other fields) is refused with a 400 whose
//! `errorMessages` says so, like Jira refuses JQL it cannot parse; so is a query without any
//! restriction ("unbounded").

use std::cmp::Ordering;

use qiao_sandbox_kit::seed::{JIRA_STATUSES, PROJECTS};

use crate::model::{ISSUE_TYPES, Issue};
use crate::time::parse_jql_date;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

fn tokenize(jql: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = jql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(format!(
                                "Error in the JQL Query: The quoted string {c}{s} has not been completed."
                            ));
                        }
                        Some('\\') => s.extend(chars.next()),
                        Some(q) if q == c => break,
                        Some(other) => s.push(other),
                    }
                }
                out.push(Token::Quoted(s));
            }
            '=' => {
                chars.next();
                out.push(Token::Op("="));
            }
            '!' | '>' | '<' => {
                chars.next();
                let eq = chars.peek() == Some(&'=');
                if eq {
                    chars.next();
                }
                out.push(Token::Op(match (c, eq) {
                    ('!', true) => "!=",
                    ('>', true) => ">=",
                    ('>', false) => ">",
                    ('<', true) => "<=",
                    ('<', false) => "<",
                    _ => {
                        return Err(format!(
                            "Error in the JQL Query: The character '{c}' is a reserved JQL character."
                        ));
                    }
                }));
            }
            c if c.is_alphanumeric() || "_-.:/*".contains(c) => {
                let mut s = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || "_-.:/*".contains(d) {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(s));
            }
            other => {
                return Err(format!(
                    "Error in the JQL Query: The character '{other}' is a reserved JQL character. You must enclose it in a string or use the escape '\\u{:04x}' instead.",
                    other as u32
                ));
            }
        }
    }
    Ok(out)
}

/// A field a clause can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Project,
    Status,
    Key,
    Id,
    Labels,
    IssueType,
    Assignee,
    Updated,
    Created,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name.to_ascii_lowercase().as_str() {
            "project" => Field::Project,
            "status" => Field::Status,
            "key" | "issuekey" | "issue" => Field::Key,
            "id" => Field::Id,
            "labels" | "label" => Field::Labels,
            "issuetype" | "type" => Field::IssueType,
            "assignee" => Field::Assignee,
            "updated" | "updateddate" => Field::Updated,
            "created" | "createddate" => Field::Created,
            _ => return None,
        })
    }

    fn is_date(self) -> bool {
        matches!(self, Field::Updated | Field::Created)
    }

    fn name(self) -> &'static str {
        match self {
            Field::Project => "project",
            Field::Status => "status",
            Field::Key => "key",
            Field::Id => "id",
            Field::Labels => "labels",
            Field::IssueType => "issuetype",
            Field::Assignee => "assignee",
            Field::Updated => "updated",
            Field::Created => "created",
        }
    }
}

#[derive(Debug, Clone)]
enum Clause {
    /// A date comparison: `updated >= <ms>`.
    Date { field: Field, op: &'static str, ms: i64 },
    /// A text membership: `field in (values)`, negated for `!=` / `not in`.
    Text { field: Field, values: Vec<String>, negated: bool },
}

/// A sort key of `ORDER BY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Updated,
    Created,
    Key,
    Id,
}

/// A condition: clauses combined with `AND`, `OR`, `NOT` and parentheses.
#[derive(Debug, Clone)]
enum Expr {
    Clause(Clause),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    fn matches(&self, issue: &Issue) -> bool {
        match self {
            Expr::Clause(c) => c.matches(issue),
            Expr::And(all) => all.iter().all(|e| e.matches(issue)),
            Expr::Or(any) => any.iter().any(|e| e.matches(issue)),
            Expr::Not(e) => !e.matches(issue),
        }
    }
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    condition: Expr,
    order: Vec<(SortKey, bool)>,
}

/// Parses `jql`, resolving relative dates against `now_ms`. The error is the text for Jira's
/// `errorMessages`.
pub fn parse(jql: &str, now_ms: i64) -> Result<Query, String> {
    let tokens = tokenize(jql)?;
    let mut p = Parser { tokens, at: 0, now_ms };
    let is_order = |p: &Parser| p.peek_word().is_some_and(|w| w.eq_ignore_ascii_case("order"));
    if p.tokens.is_empty() || is_order(&p) {
        return Err(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
                .into(),
        );
    }
    let condition = p.or_expr(0)?;
    let mut order = Vec::new();
    if is_order(&p) {
        p.at += 1;
        p.expect_word("by")?;
        order = p.order_by()?;
    }
    if p.at < p.tokens.len() {
        return Err(format!(
            "Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{}'.",
            p.describe_next()
        ));
    }
    Ok(Query { condition, order })
}

/// How deep parentheses may nest.
const MAX_DEPTH: usize = 32;

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    now_ms: i64,
}

impl Parser {
    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => Some(w),
            Some(Token::Quoted(_)) | Some(Token::Op(_)) | Some(Token::Comma) | Some(Token::Close) => Some(""),
            Some(Token::Open) => Some("("),
            None => None,
        }
    }

    fn describe_next(&self) -> String {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => w.clone(),
            Some(Token::Op(o)) => (*o).to_string(),
            Some(Token::Open) => "(".into(),
            Some(Token::Close) => ")".into(),
            Some(Token::Comma) => ",".into(),
            None => "end of query".into(),
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect_word(&mut self, word: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => Ok(()),
            _ => {
                self.at -= 1;
                Err(format!("Error in the JQL Query: Expecting '{word}' but got '{}'.", self.describe_next()))
            }
        }
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => Ok(w),
            _ => {
                self.at -= 1;
                Err(format!("Error in the JQL Query: Expecting a value but got '{}'.", self.describe_next()))
            }
        }
    }

    fn list(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Some(Token::Open) {
            self.at -= 1;
            return Err(format!("Error in the JQL Query: Expecting '(' but got '{}'.", self.describe_next()));
        }
        let mut values = vec![self.value()?];
        loop {
            match self.next() {
                Some(Token::Comma) => values.push(self.value()?),
                Some(Token::Close) => return Ok(values),
                _ => {
                    self.at -= 1;
                    return Err(format!(
                        "Error in the JQL Query: Expecting ')' or ',' but got '{}'.",
                        self.describe_next()
                    ));
                }
            }
        }
    }

    fn keyword(&self, word: &str) -> bool {
        self.peek_word().is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    fn or_expr(&mut self, depth: usize) -> Result<Expr, String> {
        let mut any = vec![self.and_expr(depth)?];
        while self.keyword("or") {
            self.at += 1;
            any.push(self.and_expr(depth)?);
        }
        Ok(if any.len() == 1 { any.remove(0) } else { Expr::Or(any) })
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, String> {
        let mut all = vec![self.unary(depth)?];
        while self.keyword("and") {
            self.at += 1;
            all.push(self.unary(depth)?);
        }
        Ok(if all.len() == 1 { all.remove(0) } else { Expr::And(all) })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_DEPTH {
            return Err("Error in the JQL Query: the query nests parentheses too deeply.".into());
        }
        if self.keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or_expr(depth + 1)?;
            if self.next() != Some(Token::Close) {
                self.at -= 1;
                return Err(format!(
                    "Error in the JQL Query: Expecting ')' but got '{}'.",
                    self.describe_next()
                ));
            }
            return Ok(inner);
        }
        self.clause().map(Expr::Clause)
    }

    fn clause(&mut self) -> Result<Clause, String> {
        let name = match self.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => w,
            _ => {
                self.at -= 1;
                return Err(format!(
                    "Error in the JQL Query: Expecting a field name but got '{}'.",
                    self.describe_next()
                ));
            }
        };
        let field = Field::parse(&name).ok_or_else(|| {
            format!("Field '{name}' does not exist or you do not have permission to view it.")
        })?;
        let (op, negated) = match self.next() {
            Some(Token::Op(op)) => (op, op == "!="),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => ("in", false),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("not") => {
                self.expect_word("in")?;
                ("in", true)
            }
            _ => {
                self.at -= 1;
                return Err(format!(
                    "Error in the JQL Query: Expecting operator but got '{}'. The valid operators are '=', '!=', '<', '>', '<=', '>=', 'in' and 'not in'.",
                    self.describe_next()
                ));
            }
        };
        if field.is_date() {
            if op == "in" || op == "!=" {
                return Err(format!(
                    "The operator '{op}' is not supported by the '{}' field in the qiao Jira sandbox.",
                    field.name()
                ));
            }
            let value = self.value()?;
            let ms = parse_jql_date(&value, self.now_ms).ok_or_else(|| {
                format!(
                    "Date value '{value}' for field '{}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.",
                    field.name()
                )
            })?;
            return Ok(Clause::Date { field, op, ms });
        }
        if matches!(op, ">" | ">=" | "<" | "<=") {
            return Err(format!("The operator '{op}' is not supported by the '{}' field.", field.name()));
        }
        let values = if op == "in" { self.list()? } else { vec![self.value()?] };
        for v in &values {
            check_value(field, v)?;
        }
        Ok(Clause::Text { field, values, negated })
    }

    fn order_by(&mut self) -> Result<Vec<(SortKey, bool)>, String> {
        let mut keys = Vec::new();
        loop {
            let name = self.value()?;
            let key = match name.to_ascii_lowercase().as_str() {
                "updated" | "updateddate" => SortKey::Updated,
                "created" | "createddate" => SortKey::Created,
                "key" | "issuekey" => SortKey::Key,
                "id" => SortKey::Id,
                _ => return Err(format!("Not able to sort using field '{name}'.")),
            };
            let mut desc = false;
            if let Some(w) = self.peek_word() {
                if w.eq_ignore_ascii_case("asc") {
                    self.at += 1;
                } else if w.eq_ignore_ascii_case("desc") {
                    desc = true;
                    self.at += 1;
                }
            }
            keys.push((key, desc));
            if self.tokens.get(self.at) == Some(&Token::Comma) {
                self.at += 1;
            } else {
                return Ok(keys);
            }
        }
    }
}

/// Refuses values Jira would not know, with Jira's message.
fn check_value(field: Field, v: &str) -> Result<(), String> {
    let known = match field {
        Field::Project => PROJECTS
            .iter()
            .enumerate()
            .any(|(i, p)| p.jira_key.eq_ignore_ascii_case(v) || (10000 + i).to_string() == v),
        Field::Status => JIRA_STATUSES.iter().any(|(id, name, _)| *name == v || *id == v),
        Field::IssueType => ISSUE_TYPES.iter().any(|(id, name)| *name == v || *id == v),
        _ => true,
    };
    if known {
        Ok(())
    } else {
        Err(format!("The value '{v}' does not exist for the field '{}'.", field.name()))
    }
}

impl Clause {
    fn matches(&self, issue: &Issue) -> bool {
        match self {
            Clause::Date { field, op, ms } => {
                let at = if *field == Field::Updated { issue.updated_ms } else { issue.created_ms };
                match *op {
                    ">=" => at >= *ms,
                    ">" => at > *ms,
                    "<=" => at <= *ms,
                    "<" => at < *ms,
                    // `updated = "2024-05-02 09:14"` holds for the whole minute.
                    _ => at >= *ms && at < ms + 60_000,
                }
            }
            Clause::Text { field, values, negated } => {
                values.iter().any(|v| text_matches(*field, v, issue)) != *negated
            }
        }
    }
}

impl Query {
    /// Whether `issue` satisfies the condition.
    pub fn matches(&self, issue: &Issue) -> bool {
        self.condition.matches(issue)
    }

    /// Sorts `issues` by the `ORDER BY` keys, then by key ascending.
    pub fn sort(&self, issues: &mut [&Issue]) {
        issues.sort_by(|a, b| {
            for (key, desc) in &self.order {
                let o = compare(*key, a, b);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            compare(SortKey::Key, a, b)
        });
    }
}

fn compare(key: SortKey, a: &Issue, b: &Issue) -> Ordering {
    match key {
        SortKey::Updated => a.updated_ms.cmp(&b.updated_ms),
        SortKey::Created => a.created_ms.cmp(&b.created_ms),
        SortKey::Id => a.id.cmp(&b.id),
        SortKey::Key => (a.project_key(), a.number).cmp(&(b.project_key(), b.number)),
    }
}

fn text_matches(field: Field, v: &str, issue: &Issue) -> bool {
    match field {
        Field::Project => {
            issue.project_key().eq_ignore_ascii_case(v) || (10000 + issue.project).to_string() == v
        }
        Field::Status => issue.status_name() == v || JIRA_STATUSES[issue.status].0 == v,
        Field::Key => issue.key().eq_ignore_ascii_case(v) || issue.id.to_string() == v,
        Field::Id => issue.id.to_string() == v || issue.key().eq_ignore_ascii_case(v),
        Field::Labels => issue.labels.iter().any(|l| l == v),
        Field::IssueType => ISSUE_TYPES[issue.issue_type].1 == v || ISSUE_TYPES[issue.issue_type].0 == v,
        Field::Assignee => match issue.assignee {
            Some(u) => u.json()["accountId"] == v,
            None => v.eq_ignore_ascii_case("empty") || v.eq_ignore_ascii_case("null"),
        },
        Field::Updated | Field::Created => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::User;
    use std::collections::BTreeMap;

    fn issue(project: usize, number: u32, status: usize, updated_ms: i64) -> Issue {
        Issue {
            id: 10_000 + u64::from(number),
            project,
            number,
            issue_type: 0,
            summary: "x".into(),
            description: None,
            status,
            assignee: Some(User::Person(1)),
            reporter: User::Person(0),
            labels: vec!["qiao-1".into()],
            custom: Default::default(),
            estimate_seconds: 0,
            created_ms: 0,
            updated_ms,
            comments: vec![],
            properties: BTreeMap::new(),
        }
    }

    // 2024-05-02 09:14 +0800
    const MINUTE: i64 = 1_714_612_440_000;

    #[test]
    fn filters_by_project_status_and_minute() {
        let q = parse(r#"project = ERP AND updated >= "2024-05-02 09:14" AND status = "进行中" ORDER BY updated ASC, key ASC"#, 0).unwrap();
        assert!(q.matches(&issue(0, 1, 1, MINUTE)));
        assert!(!q.matches(&issue(0, 1, 1, MINUTE - 1)));
        assert!(!q.matches(&issue(1, 1, 1, MINUTE)));
        assert!(!q.matches(&issue(0, 1, 0, MINUTE)));
        let q = parse("project in (ERP, MES) and labels = qiao-1 and id in (10001, 10002)", 0).unwrap();
        assert!(q.matches(&issue(1, 2, 0, 0)));
        assert!(!q.matches(&issue(2, 2, 0, 0)));
        assert!(!q.matches(&issue(1, 3, 0, 0)));
    }

    #[test]
    fn combines_with_or_not_and_parentheses() {
        let q =
            parse(r#"project = ERP AND (status = "完成" OR status = 待办) AND NOT labels = x"#, 0).unwrap();
        assert!(q.matches(&issue(0, 1, 3, 0)));
        assert!(q.matches(&issue(0, 1, 0, 0)));
        assert!(!q.matches(&issue(0, 1, 1, 0)));
        assert!(!q.matches(&issue(1, 1, 3, 0)));
        let q = parse("project = MES OR project = CRM", 0).unwrap();
        assert!(q.matches(&issue(2, 1, 0, 0)) && !q.matches(&issue(0, 1, 0, 0)));
    }

    #[test]
    fn sorts_by_updated_then_key() {
        let q = parse("project = ERP ORDER BY updated ASC", 0).unwrap();
        let (a, b, c) = (issue(0, 10, 0, 5), issue(0, 9, 0, 5), issue(0, 1, 0, 7));
        let mut v = vec![&c, &a, &b];
        q.sort(&mut v);
        let keys: Vec<String> = v.iter().map(|i| i.key()).collect();
        assert_eq!(keys, ["ERP-9", "ERP-10", "ERP-1"]);
    }

    #[test]
    fn refuses_what_it_does_not_know_with_jira_messages() {
        let cases = [
            ("order by created DESC", "Unbounded JQL queries are not allowed here"),
            ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
            ("foo = 1", "Field 'foo' does not exist"),
            ("project = ERP AND (status = 完成", "Expecting ')'"),
            (r#"updated >= "yesterday""#, "Date value 'yesterday' for field 'updated' is invalid"),
            (r#"summary ~ "x""#, "reserved JQL character"),
            ("project = ERP project = MES", "Expecting either 'OR' or 'AND'"),
            ("project = \"ERP", "has not been completed"),
            ("project = ERP ORDER BY summary", "Not able to sort"),
        ];
        for (jql, want) in cases {
            let e = parse(jql, 0).unwrap_err();
            assert!(e.contains(want), "{jql}: {e}");
        }
    }
}
