//! The functions and filters flow expressions may use beyond MiniJinja's built-ins:
//! `lookup(table, key, default=...)`, `now()`, `date(format, tz=...)`, a `default` that also
//! replaces `none`, `truncate`, `startswith` and `endswith`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use minijinja::value::{Kwargs, Rest};
use minijinja::{Error, ErrorKind, Value};

/// Lookup tables as MiniJinja values: table → key → value.
pub(crate) type ValueTables = BTreeMap<String, BTreeMap<String, Value>>;

/// A clock for `now()`.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// JSON text of a value for messages, cut to 100 characters.
pub(crate) fn show(v: &Value) -> String {
    let s = match crate::expr::to_json(v) {
        Ok(json) => json.to_string(),
        Err(_) if v.is_undefined() => "undefined".to_string(),
        Err(_) => v.to_string(),
    };
    cut(&s, 100)
}

/// `s` cut to `n` characters, with `…` when cut.
pub(crate) fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `lookup(table, key, default=...)`.
pub(crate) fn lookup(
    tables: Arc<ValueTables>,
) -> impl Fn(String, Value, Kwargs) -> Result<Value, Error> + Send + Sync + 'static {
    move |table: String, key: Value, kwargs: Kwargs| {
        let default: Option<Value> = if kwargs.has("default") { Some(kwargs.get("default")?) } else { None };
        kwargs.assert_all_used()?;
        let Some(entries) = tables.get(&table) else {
            let names: Vec<&str> = tables.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "unknown table {table:?} (tables: {})",
                crate::catalog::list_or_none(&names)
            )));
        };
        if key.is_undefined() {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                format!("lookup key for table {table:?} is undefined"),
            ));
        }
        let found = if key.is_none() {
            None
        } else {
            let k = key.as_str().map_or_else(|| key.to_string(), str::to_string);
            entries.get(&k).cloned()
        };
        match (found, default) {
            (Some(v), _) => Ok(v),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(invalid(format!(
                "no entry {} in table {table:?} (add it to the table or pass default=...)",
                show(&key)
            ))),
        }
    }
}

/// `now()`: the current time as an RFC 3339 string in UTC.
pub(crate) fn now(clock: Clock) -> impl Fn() -> Value + Send + Sync + 'static {
    move || Value::from(clock().to_string())
}

/// `value | default(other='', boolean=false)`: `other` when the value is undefined or none
/// (or, with `boolean`, false-like).
pub(crate) fn default(value: &Value, args: Rest<Value>) -> Result<Value, Error> {
    if args.len() > 2 {
        return Err(Error::from(ErrorKind::TooManyArguments));
    }
    let other = args.first().cloned().unwrap_or_else(|| Value::from(""));
    let lax = args.get(1).is_some_and(Value::is_true);
    if value.is_undefined() || value.is_none() || (lax && !value.is_true()) {
        Ok(other)
    } else {
        Ok(value.clone())
    }
}

/// `s | truncate(length=255, end='...')`: at most `length` characters, `end` included.
pub(crate) fn truncate(
    s: &str,
    length: Option<usize>,
    end: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let length = match length {
        Some(n) => n,
        None => kwargs.get::<Option<usize>>("length")?.unwrap_or(255),
    };
    let end = match end {
        Some(e) => Some(e),
        None => kwargs.get::<Option<String>>("end")?,
    };
    kwargs.assert_all_used()?;
    Ok(truncate_chars(s, length, end))
}

fn truncate_chars(s: &str, length: usize, end: Option<String>) -> String {
    if s.chars().count() <= length {
        return s.to_string();
    }
    let end = end.unwrap_or_else(|| "...".into());
    let keep = length.saturating_sub(end.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(&end);
    out
}

/// `list | fields(key='name', value='value')`: a list of `{name, value}` entries (DingTalk
/// form values, SAP and Kingdee key-value lists) as one object `{name: value}`; later entries
/// win. An entry without the key is an error naming it.
pub(crate) fn fields(list: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key: String = kwargs.get::<Option<String>>("key")?.unwrap_or_else(|| "name".into());
    let value_key: String = kwargs.get::<Option<String>>("value")?.unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    let mut out = BTreeMap::new();
    let items = list.try_iter().map_err(|_| invalid(format!("fields needs a list, got {}", show(list))))?;
    for (i, entry) in items.enumerate() {
        let name = entry.get_attr(&key)?;
        if name.is_undefined() || name.is_none() {
            return Err(invalid(format!("fields: entry {i} has no {key:?}: {}", show(&entry))));
        }
        let name = name.as_str().map_or_else(|| name.to_string(), str::to_string);
        let v = entry.get_attr(&value_key)?;
        out.insert(name, if v.is_undefined() { Value::from(()) } else { v });
    }
    Ok(Value::from(out))
}

/// `value | number`: a number, from a number or a numeric string (`"12"`, `" 3.5 "`,
/// `"1,200.50"`); anything else (null, empty, `"两箱"`) is an error naming the value, so a
/// malformed amount fails its record instead of booking zero.
pub(crate) fn number(value: &Value) -> Result<Value, Error> {
    if value.is_number() {
        return Ok(value.clone());
    }
    let fail = || invalid(format!("{} is not a number", show(value)));
    let text = value.as_str().ok_or_else(fail)?.trim().replace(',', "");
    if text.is_empty() {
        return Err(fail());
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Value::from(f)),
        _ => Err(fail()),
    }
}

/// `s | startswith(prefix)`.
pub(crate) fn startswith(s: &str, prefix: &str) -> bool {
    s.starts_with(prefix)
}

/// `s | endswith(suffix)`.
pub(crate) fn endswith(s: &str, suffix: &str) -> bool {
    s.ends_with(suffix)
}

/// `value | date(format='%Y-%m-%dT%H:%M:%S%:z', tz='UTC')`.
///
/// Reads RFC 3339 / ISO 8601 timestamps (`2024-03-05T09:30:00Z`, `...+08:00`, `...+0800`),
/// local date-times without offset (`2024-03-05T09:30:00`, `2024-03-05 09:30:00`, read in
/// `tz`), dates (`2024-03-05`), and Unix time numbers (seconds, or milliseconds when larger
/// than 10^11). Writes with a strftime format, in time zone `tz` (IANA name).
pub(crate) fn date(value: &Value, format: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let tz_name: Option<String> = kwargs.get("tz")?;
    kwargs.assert_all_used()?;
    let tz = match &tz_name {
        Some(name) => TimeZone::get(name).map_err(|_| invalid(format!("unknown time zone {name:?}")))?,
        None => TimeZone::UTC,
    };
    let format = format.as_deref().unwrap_or(DATE_FORMAT);
    if value.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "date of an undefined value"));
    }
    let zoned = parse_date(value, &tz)?;
    jiff::fmt::strtime::format(format, &zoned)
        .map(Value::from)
        .map_err(|e| invalid(format!("cannot format date with {format:?}: {e}")))
}

fn parse_date(value: &Value, tz: &TimeZone) -> Result<jiff::Zoned, Error> {
    let fail = |why: &str| invalid(format!("cannot read {} as a date: {why}", show(value)));
    let input = if value.is_number() {
        DateInput::Number(f64::try_from(value.clone()).map_err(|_| fail("not a number"))?)
    } else {
        DateInput::Text(value.as_str().ok_or_else(|| fail("expected a string or a number"))?)
    };
    read_date(input, tz).map_err(|why| fail(&why))
}

/// What `date` reads.
pub(crate) enum DateInput<'a> {
    /// Unix seconds, or milliseconds when larger than 10^11.
    Number(f64),
    /// A timestamp, a local date-time or a date.
    Text(&'a str),
}

/// Reads a date for `date` (also used by the native evaluator); the error says why not.
pub(crate) fn read_date(input: DateInput<'_>, tz: &TimeZone) -> Result<jiff::Zoned, String> {
    let s = match input {
        DateInput::Number(n) => {
            if !n.is_finite() {
                return Err("not a finite number".into());
            }
            let ts = if n.abs() >= 1e11 {
                Timestamp::from_millisecond(n as i64)
            } else {
                Timestamp::from_second(n.trunc() as i64)
            };
            return ts.map(|ts| ts.to_zoned(tz.clone())).map_err(|e| e.to_string());
        }
        DateInput::Text(s) => s.trim(),
    };
    if let Ok(ts) = Timestamp::from_str(s) {
        return Ok(ts.to_zoned(tz.clone()));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(ts) = jiff::fmt::strtime::parse(f, s).and_then(|t| t.to_timestamp()) {
            return Ok(ts.to_zoned(tz.clone()));
        }
    }
    let local = DateTime::from_str(s)
        .ok()
        .or_else(|| jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S%.f", s).and_then(|t| t.to_datetime()).ok())
        .or_else(|| Date::from_str(s).ok().map(|d| d.to_datetime(jiff::civil::Time::midnight())));
    match local {
        Some(dt) => dt.to_zoned(tz.clone()).map_err(|e| e.to_string()),
        None => Err("expected e.g. 2024-03-05, 2024-03-05T09:30:00+08:00 or Unix seconds".into()),
    }
}

/// The default format of `date`.
pub(crate) const DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%:z";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_numbers() {
        let list = Value::from(minijinja::value::Serde(
            serde_json::json!([{"name": "数量", "value": "12"}, {"name": "项目", "value": "MES"}]),
        ));
        let obj = fields(&list, Kwargs::from_iter(std::iter::empty::<(&str, Value)>())).unwrap();
        assert_eq!(obj.get_attr("项目").unwrap().as_str(), Some("MES"));
        assert_eq!(number(&obj.get_attr("数量").unwrap()).unwrap(), Value::from(12));
        assert_eq!(number(&Value::from("1,200.50")).unwrap(), Value::from(1200.5));
        let err = number(&Value::from("两箱")).unwrap_err();
        assert!(err.to_string().contains("\"两箱\" is not a number"), "{err}");
        assert!(number(&Value::from(())).is_err());
        assert!(number(&Value::from(" ")).is_err());
    }

    #[test]
    fn truncates_by_characters() {
        assert_eq!(truncate_chars("进行中的任务", 4, Some("…".into())), "进行中…");
        assert_eq!(truncate_chars("short", 255, None), "short");
        assert_eq!(truncate_chars("abcdefgh", 5, None), "ab...");
    }

    #[test]
    fn cuts_long_values() {
        assert_eq!(cut("😀😀😀", 2), "😀😀…");
        assert_eq!(show(&Value::from("a\"b")), "\"a\\\"b\"");
        assert_eq!(show(&Value::from(())), "null");
        assert_eq!(show(&Value::UNDEFINED), "undefined");
    }
}
