//! The paged list query every `…/list` API takes: `pageIndex`/`pageSize` (top level, or nested
//! in `page` / `pager`), `simpleVOs` conditions, `queryOrders`, and plain `field: value`
//! equality filters; answered as `{pageIndex, pageSize, recordCount, pageCount, beginPageIndex,
//! endPageIndex, recordList}`.

use std::cmp::Ordering;

use serde_json::{Value, json};

/// Largest page the fake serves.
pub const MAX_PAGE_SIZE: usize = 500;
/// Page size when the request gives none.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// Body keys that are not field filters.
const RESERVED: &[&str] = &[
    "pageIndex",
    "pageSize",
    "page",
    "pager",
    "isSum",
    "simpleVOs",
    "queryOrders",
    "accbookCode",
    "periodStart",
    "periodEnd",
];

/// One `simpleVOs` condition.
#[derive(Debug, Clone)]
struct Condition {
    field: String,
    op: String,
    value1: Value,
    value2: Value,
}

/// A parsed list query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// 1-based page.
    pub page_index: usize,
    /// Rows per page.
    pub page_size: usize,
    conditions: Vec<Condition>,
    orders: Vec<(String, bool)>,
    equals: Vec<(String, Value)>,
}

impl ListQuery {
    /// Parses a request body; the error is the message of a `999` answer.
    pub fn parse(body: &Value) -> Result<Self, String> {
        let paging =
            ["page", "pager"].iter().find_map(|k| body.get(*k).filter(|v| v.is_object())).unwrap_or(body);
        let number = |name: &str, default: usize| -> Result<usize, String> {
            match paging.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .map(|n| n as usize)
                    .ok_or_else(|| format!("参数{name}格式错误：{v}")),
            }
        };
        let page_index = number("pageIndex", 1)?;
        let page_size = number("pageSize", DEFAULT_PAGE_SIZE)?;
        if page_index == 0 {
            return Err("pageIndex必须从1开始".into());
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(format!("pageSize必须在1到{MAX_PAGE_SIZE}之间"));
        }
        let mut conditions = Vec::new();
        for vo in body.get("simpleVOs").and_then(Value::as_array).into_iter().flatten() {
            let field = vo["field"].as_str().unwrap_or_default().to_string();
            let op = vo["op"].as_str().unwrap_or("eq").to_string();
            if field.is_empty() {
                return Err("simpleVOs条件缺少field".into());
            }
            if !["eq", "neq", "lt", "gt", "elt", "egt", "between", "in", "nin", "like"].contains(&op.as_str())
            {
                return Err(format!("不支持的查询操作符[{op}]"));
            }
            conditions.push(Condition {
                field,
                op,
                value1: vo["value1"].clone(),
                value2: vo["value2"].clone(),
            });
        }
        let orders = body
            .get("queryOrders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| Some((o["field"].as_str()?.to_string(), o["order"].as_str() != Some("desc"))))
            .collect();
        let equals = body
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| !RESERVED.contains(&k.as_str()) && !v.is_object() && !v.is_array())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(ListQuery { page_index, page_size, conditions, orders, equals })
    }

    /// Whether `row` passes every condition. Equality filters on fields the rows do not have
    /// are ignored, as the real list APIs ignore unknown body keys.
    fn matches(&self, row: &Value) -> bool {
        self.conditions.iter().all(|c| c.matches(field(row, &c.field)))
            && self.equals.iter().all(|(k, v)| match field(row, k) {
                Value::Null => true,
                actual => compare(actual, v) == Some(Ordering::Equal),
            })
    }

    /// Filters, sorts (by `queryOrders`, then `id`) and pages `rows` into the `data` object.
    pub fn answer(&self, rows: &[Value]) -> Value {
        let mut hits: Vec<&Value> = rows.iter().filter(|r| self.matches(r)).collect();
        hits.sort_by(|a, b| {
            for (f, asc) in &self.orders {
                let o = compare(field(a, f), field(b, f)).unwrap_or(Ordering::Equal);
                if o != Ordering::Equal {
                    return if *asc { o } else { o.reverse() };
                }
            }
            compare(&a["id"], &b["id"]).unwrap_or(Ordering::Equal)
        });
        let record_count = hits.len();
        let page_count = record_count.div_ceil(self.page_size);
        let page: Vec<Value> = hits
            .into_iter()
            .skip((self.page_index - 1) * self.page_size)
            .take(self.page_size)
            .cloned()
            .collect();
        json!({
            "pageIndex": self.page_index, "pageSize": self.page_size,
            "recordCount": record_count, "pageCount": page_count,
            "beginPageIndex": 1, "endPageIndex": page_count.max(1),
            "recordList": page,
        })
    }
}

/// A dotted field of a row (`header.period`), `Null` when absent.
fn field<'a>(row: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(row, |v, part| v.get(part).unwrap_or(&Value::Null))
}

impl Condition {
    fn matches(&self, actual: &Value) -> bool {
        let cmp = |v: &Value| compare(actual, v);
        let list = || self.value1.as_array().cloned().unwrap_or_else(|| vec![self.value1.clone()]);
        match self.op.as_str() {
            "eq" => cmp(&self.value1) == Some(Ordering::Equal),
            "neq" => cmp(&self.value1) != Some(Ordering::Equal),
            "lt" => cmp(&self.value1) == Some(Ordering::Less),
            "gt" => cmp(&self.value1) == Some(Ordering::Greater),
            "elt" => matches!(cmp(&self.value1), Some(Ordering::Less | Ordering::Equal)),
            "egt" => matches!(cmp(&self.value1), Some(Ordering::Greater | Ordering::Equal)),
            "between" => {
                matches!(cmp(&self.value1), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(&self.value2), Some(Ordering::Less | Ordering::Equal))
            }
            "in" => list().iter().any(|v| cmp(v) == Some(Ordering::Equal)),
            "nin" => !list().iter().any(|v| cmp(v) == Some(Ordering::Equal)),
            "like" => {
                let needle = text(&self.value1).trim_matches('%').to_string();
                text(actual).contains(&needle)
            }
            _ => false,
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Numbers compare numerically (also against numeric strings), everything else as text;
/// `None` when `actual` is missing.
fn compare(actual: &Value, expected: &Value) -> Option<Ordering> {
    if actual.is_null() {
        return None;
    }
    let num = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()));
    if (actual.is_number() || expected.is_number())
        && let (Some(a), Some(b)) = (num(actual), num(expected))
    {
        // Ids are 19-digit integers: compare them exactly.
        if let (Some(a), Some(b)) = (actual.as_u64(), expected.as_u64()) {
            return Some(a.cmp(&b));
        }
        return a.partial_cmp(&b);
    }
    Some(text(actual).cmp(&text(expected)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rows() -> Vec<Value> {
        (1..=45u64)
            .map(|i| json!({"id": 2_172_161_512_886_528_000u64 + i, "dept_code": if i % 2 == 0 { "D0101" } else { "D0201" },
                           "oriSum": i * 100, "pubts": format!("2024-05-01 10:{:02}:00", i)}))
            .collect()
    }

    #[test]
    fn pages_cover_every_row_once() {
        let mut seen = Vec::new();
        for page in 1..=3 {
            let q = ListQuery::parse(&json!({"pageIndex": page, "pageSize": 20})).unwrap();
            let data = q.answer(&rows());
            assert_eq!(data["recordCount"], 45);
            assert_eq!(data["pageCount"], 3);
            seen.extend(data["recordList"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()));
        }
        let all: Vec<u64> = rows().iter().map(|r| r["id"].as_u64().unwrap()).collect();
        assert_eq!(seen, all);
    }

    #[test]
    fn conditions_equality_orders_and_nested_paging() {
        let body = json!({"pager": {"pageIndex": 1, "pageSize": 5}, "dept_code": "D0101",
                          "simpleVOs": [{"field": "pubts", "op": "egt", "value1": "2024-05-01 10:30:00"},
                                        {"field": "oriSum", "op": "between", "value1": 3000, "value2": "4000"}],
                          "queryOrders": [{"field": "oriSum", "order": "desc"}]});
        let data = ListQuery::parse(&body).unwrap().answer(&rows());
        let sums: Vec<u64> =
            data["recordList"].as_array().unwrap().iter().map(|r| r["oriSum"].as_u64().unwrap()).collect();
        assert_eq!(sums, [4000, 3800, 3600, 3400, 3200]);
        assert_eq!(data["recordCount"], 6);
        assert_eq!(data["pageCount"], 2);
        let unknown_field = json!({"nonexistent": 1, "pageSize": 50});
        assert_eq!(ListQuery::parse(&unknown_field).unwrap().answer(&rows())["recordCount"], 45);
    }

    #[test]
    fn bad_queries_are_refused() {
        assert!(ListQuery::parse(&json!({"pageIndex": 0})).is_err());
        assert!(ListQuery::parse(&json!({"pageSize": 501})).is_err());
        let e = ListQuery::parse(&json!({"simpleVOs": [{"field": "a", "op": "regex", "value1": 1}]}))
            .unwrap_err();
        assert!(e.contains("regex"), "{e}");
    }

    #[test]
    fn empty_result_has_no_pages() {
        let q = ListQuery::parse(&json!({"dept_code": "D9999"})).unwrap();
        let data = q.answer(&rows());
        assert_eq!((data["recordCount"].as_u64(), data["pageCount"].as_u64()), (Some(0), Some(0)));
    }
}
