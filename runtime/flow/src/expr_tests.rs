//! Tests of expressions, including hostile records.

use super::*;
use serde_json::json;

fn tables() -> Tables {
    let mut t = Tables::new();
    t.insert(
        "cost_center".into(),
        [("PM".to_string(), json!("CC-1001")), ("1".to_string(), json!(1001))].into(),
    );
    t.insert("status".into(), [("进行中".to_string(), json!("In Progress"))].into());
    t
}

fn env() -> ExprEnv {
    let clock: Clock = Arc::new(|| "2024-03-05T01:30:00Z".parse().unwrap_or_default());
    ExprEnv::with_options(&tables(), ExprOptions { fuel: DEFAULT_FUEL, clock })
}

fn eval(source: &str, record: serde_json::Value) -> Result<serde_json::Value, EvalError> {
    let e = env().compile(source, "map.x").unwrap_or_else(|e| panic!("{source}: {e:?}"));
    e.eval(&EvalContext::new("demo", &record))
}

fn ok(source: &str, record: serde_json::Value) -> serde_json::Value {
    eval(source, record).unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn err(source: &str, record: serde_json::Value) -> EvalError {
    match eval(source, record) {
        Ok(v) => panic!("{source} gave {v}"),
        Err(e) => e,
    }
}

#[test]
fn arithmetic_keeps_integers_and_floats() {
    let r = json!({"secs": 7200, "rate": 120, "f": 1.5});
    assert_eq!(ok("record.secs // 3600", r.clone()), json!(2));
    assert!(ok("record.secs // 3600", r.clone()).is_i64());
    assert_eq!(ok("record.secs / 3600", r.clone()), json!(2.0));
    assert!(ok("record.secs / 3600", r.clone()).is_f64());
    assert_eq!(ok("record.secs / 3600 * record.rate", r.clone()), json!(240.0));
    assert_eq!(ok("record.f * 2", r.clone()), json!(3.0));
    assert_eq!(ok("record.secs > 0 and record.f < 2", r.clone()), json!(true));
    assert_eq!(ok("(10 / 3) | round(2)", r.clone()), json!(3.33));
    assert_eq!(ok("'42' | int + 1", r.clone()), json!(43));
    assert_eq!(ok("record.secs | float", r), json!(7200.0));
    assert_eq!(ok("9007199254740993", json!({})), json!(9007199254740993_i64));
    assert_eq!(ok("18446744073709551615", json!({})), json!(u64::MAX));
}

#[test]
fn lookup_tables() {
    let r = json!({"p": "PM", "s": "进行中", "n": 1, "none": null});
    assert_eq!(ok("lookup('cost_center', record.p)", r.clone()), json!("CC-1001"));
    assert_eq!(ok("lookup('cost_center', record.n)", r.clone()), json!(1001));
    assert_eq!(ok("lookup('status', record.s)", r.clone()), json!("In Progress"));
    assert_eq!(ok("lookup('status', 'x', default='Unknown')", r.clone()), json!("Unknown"));
    assert_eq!(ok("lookup('status', record.none, default=none)", r.clone()), json!(null));
    let e = err("lookup('status', 'x')", r.clone());
    assert_eq!(
        e.message,
        "invalid operation: no entry \"x\" in table \"status\" (add it to the table or pass default=...)"
    );
    let e = err("lookup('status', record.missing, default='u')", r.clone());
    assert_eq!(e.kind, EvalErrorKind::Undefined);
    let e = err("lookup(record.p, 'x')", r);
    assert!(e.message.contains("unknown table \"PM\" (tables: cost_center, status)"), "{e}");
}

#[test]
fn strings_chinese_and_emoji() {
    let r = json!({"name": "  张三 😀 ", "list": ["a", "b"]});
    assert_eq!(ok("record.name | trim", r.clone()), json!("张三 😀"));
    assert_eq!(ok("record.name | upper", json!({"name": "abc"})), json!("ABC"));
    assert_eq!(ok("record.name | trim | length", r.clone()), json!(4));
    assert_eq!(ok("record.name | replace('张', '李') | trim", r.clone()), json!("李三 😀"));
    assert_eq!(ok("record.list | join('、')", r.clone()), json!("a、b"));
    assert_eq!(ok("'a,b,c' | split(',') | list", r.clone()), json!(["a", "b", "c"]));
    assert_eq!(ok("'进行中的任务' | truncate(4, end='…')", r.clone()), json!("进行中…"));
    assert_eq!(ok("'PM-12' | startswith('PM-')", r.clone()), json!(true));
    assert_eq!(ok("'PM-12'.startswith('PM')", r.clone()), json!(true));
    assert_eq!(ok("'PM-12' is endingwith('12')", r.clone()), json!(true));
    assert_eq!(ok("'PM-12' | endswith('3')", r.clone()), json!(false));
    assert_eq!(ok("record", r.clone()), r);
    assert_eq!(
        ok("{'名字': record.name, 'n': [1, 2.5, none, true]}", r.clone()),
        json!({"名字": "  张三 😀 ", "n": [1, 2.5, null, true]})
    );
    assert_eq!(ok("flow.id ~ '-' ~ 'x'", r), json!("demo-x"));
}

#[test]
fn defaults_and_missing_fields() {
    let r = json!({"a": null, "nested": {"b": 1}});
    assert_eq!(ok("record.missing | default('n/a')", r.clone()), json!("n/a"));
    assert_eq!(ok("record.a | default('n/a')", r.clone()), json!("n/a"));
    assert_eq!(ok("record.nested.b | default(0)", r.clone()), json!(1));
    let e = err("record.missing", r.clone());
    assert_eq!(e.kind, EvalErrorKind::Undefined);
    assert_eq!(e.path, "map.x");
    assert_eq!(e.values, vec![("record.missing".to_string(), "<missing>".to_string())]);
    let e = err("record.missing.deeper", r.clone());
    assert_eq!(e.kind, EvalErrorKind::Undefined);
    let e = err("record.missing + 1", r.clone());
    assert_eq!(e.kind, EvalErrorKind::Undefined);
    let e = err("[record.nested.b, record.nope]", r);
    assert_eq!(e.kind, EvalErrorKind::Undefined, "{e}");
}

#[test]
fn null_arithmetic_and_wrong_types_fail_with_values() {
    let r = json!({"secs": null, "s": "abc", "n": 5});
    let e = err("record.secs / 3600 * 120", r.clone());
    assert_eq!(e.kind, EvalErrorKind::Invalid);
    assert_eq!(e.values, vec![("record.secs".to_string(), "null".to_string())]);
    let shown = e.to_string();
    assert!(
        shown.starts_with("map.x: expression \"record.secs / 3600 * 120\" failed: invalid operation"),
        "{shown}"
    );
    assert!(shown.ends_with("(record.secs = null)"), "{shown}");
    assert_eq!(err("record.s * 1.5", r.clone()).kind, EvalErrorKind::Invalid);
    assert_eq!(err("record.s | int", r.clone()).kind, EvalErrorKind::Invalid);
    assert_eq!(err("record.n / 0", r.clone()).kind, EvalErrorKind::Invalid);
    assert_eq!(err("record.n.x.y", r.clone()).kind, EvalErrorKind::Undefined);
    assert_eq!(err("lookup", r).kind, EvalErrorKind::Invalid);
}

#[test]
fn dates() {
    let r = json!({
        "jira": "2024-03-05T09:30:00.000+0800",
        "rfc": "2024-03-04T20:15:00Z",
        "day": "2024-03-05",
        "local": "2024-03-05 23:30:00",
        "secs": 1_709_600_000,
        "millis": 1_709_600_000_123_i64,
        "bad": "yesterday",
    });
    assert_eq!(ok("record.jira | date('%Y-%m-%d %H:%M')", r.clone()), json!("2024-03-05 01:30"));
    assert_eq!(
        ok("record.jira | date('%Y-%m-%d %H:%M', tz='Asia/Shanghai')", r.clone()),
        json!("2024-03-05 09:30")
    );
    assert_eq!(ok("record.rfc | date('%Y-%m-%d', tz='Asia/Shanghai')", r.clone()), json!("2024-03-05"));
    assert_eq!(ok("record.day | date('%d/%m/%Y')", r.clone()), json!("05/03/2024"));
    assert_eq!(ok("record.local | date('%H:%M %Z', tz='Asia/Shanghai')", r.clone()), json!("23:30 CST"));
    assert_eq!(ok("record.secs | date", r.clone()), json!("2024-03-05T00:53:20+00:00"));
    assert_eq!(ok("record.millis | date('%s')", r.clone()), json!("1709600000"));
    assert_eq!(ok("now()", r.clone()), json!("2024-03-05T01:30:00Z"));
    assert_eq!(ok("now() | date('%Y年%m月%d日', tz='Asia/Shanghai')", r.clone()), json!("2024年03月05日"));
    let e = err("record.bad | date('%Y')", r.clone());
    assert!(e.message.contains("cannot read \"yesterday\" as a date"), "{e}");
    let e = err("record.day | date('%Y', tz='Mars/Olympus')", r.clone());
    assert!(e.message.contains("unknown time zone \"Mars/Olympus\""), "{e}");
    assert_eq!(err("record.nothing | date('%Y')", r.clone()).kind, EvalErrorKind::Undefined);
    assert_eq!(err("none | date('%Y')", r).kind, EvalErrorKind::Invalid);
}

#[test]
fn fuel_stops_runaway_expressions() {
    for source in
        ["range(100000) | sum", "range(100000) | map('string') | join(',') | length", "'a' * 100000000"]
    {
        let e = err(source, json!({}));
        assert_eq!(e.kind, EvalErrorKind::OutOfFuel, "{source}: {e}");
    }
    // Fuel is per evaluation: the same expression works again afterwards.
    assert_eq!(ok("range(10) | sum", json!({})), json!(45));
}

#[test]
fn hostile_records() {
    let big = "长".repeat(350_000); // ~1 MiB of UTF-8
    let r = json!({"big": big, "deep": [[[[[[[[[[1]]]]]]]]]], "emoji": "👩‍👩‍👧‍👦", "nulls": [null, null]});
    assert_eq!(ok("record.big | length", r.clone()), json!(350_000));
    assert_eq!(ok("record.big", r.clone()).as_str().map(str::len), Some(big_len()));
    assert_eq!(ok("record.deep[0][0][0][0][0][0][0][0][0][0]", r.clone()), json!(1));
    assert_eq!(ok("record.emoji", r.clone()), json!("👩‍👩‍👧‍👦"));
    assert_eq!(ok("record.nulls | length", r.clone()), json!(2));
    let e = err("record.big + 1", r);
    let (_, shown) = &e.values[0];
    assert!(shown.chars().count() <= 101, "value not truncated: {} chars", shown.chars().count());
    assert!(e.to_string().len() < 2_000);
}

fn big_len() -> usize {
    "长".len() * 350_000
}

#[test]
fn conditions_and_lists() {
    let e = env();
    let ctx = EvalContext::new("demo", &json!({"hours": 2, "items": [{"sku": "A"}, {"sku": "B"}], "s": "x"}));
    let f = e.compile("record.hours > 0", "steps[1].filter").unwrap();
    assert_eq!(f.is_true(&ctx), Ok(true));
    let f = e.compile("record.nope > 0", "steps[1].filter").unwrap();
    assert_eq!(f.is_true(&ctx).map_err(|e| e.kind), Err(EvalErrorKind::Undefined));
    let f = e.compile("record.missing", "steps[1].when").unwrap();
    assert_eq!(f.is_true(&ctx).map_err(|e| e.kind), Err(EvalErrorKind::Undefined));
    let l = e.compile("record.items", "steps[2].foreach").unwrap();
    assert_eq!(l.eval_list(&ctx), Ok(vec![json!({"sku": "A"}), json!({"sku": "B"})]));
    let l = e.compile("record.s", "steps[2].foreach").unwrap();
    assert!(l.eval_list(&ctx).is_err_and(|e| e.message == "expected a list, got \"x\""));
}

#[test]
fn steps_output_and_error_context() {
    let e = env();
    let mut ctx = EvalContext::new("demo", &json!({"id": 1}));
    ctx.set_step_output("book", &json!({"number": "LC-001"}));
    ctx.set_error(&json!({"step": "book", "message": "boom"}));
    let x = e.compile("steps.book.output.number ~ ' ' ~ error.message", "on_failure.input").unwrap();
    assert_eq!(x.eval(&ctx), Ok(json!("LC-001 boom")));
    assert_eq!(x.variables(), ["error.message".to_string(), "steps.book.output.number".to_string()]);
    ctx.set_record(&json!({"id": 2}));
    assert_eq!(e.compile("record.id", "k").unwrap().eval(&ctx), Ok(json!(2)));
}

#[test]
fn compile_errors_are_located() {
    let e = env();
    let errs = e.compile("record.x +", "p").err().unwrap_or_default();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.starts_with("invalid expression \"record.x +\": syntax error"), "{:?}", errs[0]);
    assert_eq!(errs[0].offset, Some(9));
    let errs = e.compile("record.x | uppr | lower is strnig", "p").err().unwrap_or_default();
    let msgs: Vec<(&str, Option<usize>)> = errs.iter().map(|e| (e.message.as_str(), e.offset)).collect();
    assert_eq!(msgs, vec![("unknown filter \"uppr\"", Some(11)), ("unknown test \"strnig\"", Some(27))]);
    let errs = e.compile("lookup('cost_centre', record.p) ~ 'a | b'", "p").err().unwrap_or_default();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].message, "unknown table \"cost_centre\" in lookup (tables: cost_center, status)");
    assert_eq!(errs[0].offset, Some(7));
    assert!(e.compile("record.x is not defined and record.y is none", "p").is_ok());
}

#[test]
fn variables_exclude_globals() {
    let e = env().compile("lookup('status', record.issue.status) ~ now() ~ range(2) | string", "p").unwrap();
    assert_eq!(e.variables(), ["record.issue.status".to_string()]);
}

#[test]
fn plans_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expr>();
    assert_send_sync::<ExprEnv>();
    assert_send_sync::<EvalContext>();
}
