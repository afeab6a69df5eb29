//! The `poll-json` cursor and the `since` watermark.
//!
//! The cursor is JSON text, `{"since": …, "max_seen": …, "next": {"page": 3}}`, every field
//! optional: `since` is the value sent in the since parameter during the current round,
//! `max_seen` the largest since-field value seen on the pages of this round so far, `next`
//! the page to fetch next (`{"page": n}`, `{"offset": n}`, `{"url": "…"}` or
//! `{"token": "…"}`). Between rounds it is `{"since": …}` only.

use std::cmp::Ordering;

use qiao_sdk::{Error, Result, Value};
use serde::{Deserialize, Serialize};

/// The decoded cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<PageState>,
}

/// Where the next page of the current round starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PageState {
    /// Page number to request.
    Page(u64),
    /// Offset to request.
    Offset(u64),
    /// A full URL from a next link or a `Link` header.
    Url(String),
    /// A continuation token.
    Token(String),
}

impl Cursor {
    /// Decodes the host's cursor; `None` or blank text is the first poll. Anything that is not
    /// a cursor object is a `config` error.
    pub fn parse(text: Option<&str>) -> Result<Cursor> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Cursor::default());
        };
        let malformed = |why: String| {
            let shown: String = text.chars().take(100).collect();
            Error::config(format!("malformed poll-json cursor {shown:?}: {why}"))
        };
        match serde_json::from_str::<Value>(text).map_err(|e| malformed(e.to_string()))? {
            object @ Value::Object(_) => serde_json::from_value(object).map_err(|e| malformed(e.to_string())),
            _ => Err(malformed("not a JSON object".into())),
        }
    }

    /// The cursor as JSON text.
    pub fn to_text(&self) -> String {
        // A struct of options, strings and `Value`s always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Raises `max` to `candidate` when `candidate` is later (see [`is_later`]) or `max` is
/// unset. Only strings and numbers count.
pub(crate) fn track_max(max: &mut Option<Value>, candidate: &Value) {
    if !(candidate.is_string() || candidate.is_number()) {
        return;
    }
    match max {
        Some(current) if !is_later(candidate, current) => {}
        _ => *max = Some(candidate.clone()),
    }
}

/// The later of two optional watermarks; `a` wins ties and type mismatches.
pub(crate) fn later_of(a: Option<Value>, b: Option<Value>) -> Option<Value> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if is_later(&b, &a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Whether `a` sorts after `b`: strings as strings (ISO 8601 timestamps in one format sort
/// correctly), numbers numerically. Values of different types never compare as later.
pub(crate) fn is_later(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a > b,
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b) == Ordering::Greater,
        _ => false,
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a.cmp(&b);
    }
    let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    #[test]
    fn round_trips_and_rejects_garbage() {
        let c = Cursor { since: Some(json!("2024-01-01")), max_seen: None, next: Some(PageState::Page(3)) };
        assert_eq!(c.to_text(), r#"{"since":"2024-01-01","next":{"page":3}}"#);
        assert_eq!(Cursor::parse(Some(&c.to_text())).unwrap(), c);
        assert_eq!(Cursor::parse(None).unwrap(), Cursor::default());
        assert_eq!(Cursor::parse(Some("  ")).unwrap(), Cursor::default());
        assert_eq!(Cursor::default().to_text(), "{}");
        for bad in ["not json", "[1]", r#"{"next": {"page": "x"}}"#, r#"{"next": {"bogus": 1}}"#] {
            let e = Cursor::parse(Some(bad)).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Config, "{bad}");
            assert!(e.message().starts_with("malformed poll-json cursor"), "{e}");
        }
    }

    #[test]
    fn watermarks_compare_by_type() {
        assert!(is_later(&json!("2024-02-01T00:00:00Z"), &json!("2024-01-31T23:59:59Z")));
        assert!(is_later(&json!(10), &json!(9)));
        assert!(is_later(&json!(10.5), &json!(10)));
        assert!(!is_later(&json!(9), &json!(10)));
        assert!(!is_later(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(is_later(&json!(u64::MAX), &json!(-1)));
        assert!(!is_later(&json!("9"), &json!(1)));

        let mut max = None;
        for v in [json!(3), json!(null), json!(7), json!("x"), json!(5)] {
            track_max(&mut max, &v);
        }
        assert_eq!(max, Some(json!(7)));

        assert_eq!(later_of(Some(json!("b")), Some(json!("a"))), Some(json!("b")));
        assert_eq!(later_of(Some(json!("a")), Some(json!("b"))), Some(json!("b")));
        assert_eq!(later_of(None, Some(json!(1))), Some(json!(1)));
        assert_eq!(later_of(Some(json!("a")), Some(json!(1))), Some(json!("a")));
    }
}
