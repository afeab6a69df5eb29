//! The native evaluator against MiniJinja: for every expression × record of a corpus, the
//! native path (when it does not give up) yields exactly MiniJinja's value, and the common
//! shapes do have a native form and do not give up on well-formed records.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::expr::{DEFAULT_FUEL, EvalContext, ExprEnv, ExprOptions, Tables};
use crate::library::Clock;
use crate::native::{Scope, lower};

fn env() -> ExprEnv {
    let mut t = Tables::new();
    t.insert(
        "cost_center".into(),
        [
            ("PM".to_string(), json!("CC-1001")),
            ("OPS".to_string(), json!("CC-2002")),
            ("7".to_string(), json!(7.5)),
        ]
        .into(),
    );
    t.insert("rate".into(), [("张三".to_string(), json!(120)), ("李四".to_string(), json!(99.5))].into());
    let clock: Clock = Arc::new(|| "2024-03-05T01:30:00Z".parse().unwrap_or_default());
    ExprEnv::with_options(&t, ExprOptions { fuel: DEFAULT_FUEL, clock })
}

fn records() -> Vec<Value> {
    vec![
        json!({"id": "WL-1", "secs": 7200, "rate": 120, "f": 1.5, "neg": -7, "zero": 0, "project": "PM",
               "author": "张三", "tags": ["a", "b", 3], "nested": {"k": {"v": 2}}, "none": null, "flag": true,
               "text": "  完成接口联调  ", "big": 9007199254740993_i64, "u": 18446744073709551615_u64,
               "amount": "1,200.50", "qty": "两箱", "n": 7, "half": 2.5, "list": [1, 2, 3], "empty": "",
               "obj": {}, "ratio": 0.1,
               "started": "2026-11-24T09:30:00.000+0800", "local": "2026-03-05 23:30:00",
               "day": "2026-02-28", "ms": 1764000000000_i64, "bad_date": "2026-02-30"}),
        json!({"id": 42, "secs": 1800, "rate": 99.5, "f": -0.5, "neg": 7, "zero": 0.0, "project": "OPS",
               "author": "李四", "tags": [], "nested": {"k": {"v": "x"}}, "none": null, "flag": false,
               "text": "", "big": -9223372036854775808_i64, "u": 0, "amount": " 3 ", "qty": "12",
               "n": -3, "half": 3.5, "list": [], "empty": "x", "obj": {"a": 1}, "ratio": 3,
               "started": "2026-11-24T01:30:00Z", "local": "2026-03-05T08:00:00", "day": 1700000000,
               "ms": -5, "bad_date": "tomorrow"}),
        json!({"id": null, "secs": "3600", "project": "XX", "author": null, "tags": "ab", "nested": [1],
               "n": 0, "half": -2.5, "list": [1.0, "1"], "flag": 1, "f": 1e308, "rate": 1e308}),
        json!({}),
    ]
}

const CORPUS: &[&str] = &[
    "record.id",
    "record.secs / 3600",
    "record.secs / 3600 * record.rate",
    "record.secs // 3600",
    "record.neg // 2",
    "record.neg % 3",
    "record.n % -2",
    "record.secs + 1",
    "record.secs - record.rate",
    "record.secs * record.rate",
    "record.f * 2",
    "record.f + record.secs",
    "record.rate * record.rate",
    "record.big + 1",
    "record.u + 1",
    "record.u * 2",
    "-record.neg",
    "-record.f",
    "-record.big",
    "record.secs / record.zero",
    "record.secs // record.zero",
    "record.half // 2",
    "record.f % 2",
    "record.project ~ '-' ~ record.id",
    "record.project ~ record.n",
    "record.project ~ record.f",
    "record.project + record.author",
    "record.project + 1",
    "record['project']",
    "record['nested']['k']['v']",
    "record.nested.k.v",
    "record.tags[0]",
    "record.tags[2]",
    "record.tags[5]",
    "record.tags[-1]",
    "record.list[1]",
    "record.missing",
    "record.missing.deeper",
    "record.missing | default(0)",
    "record.none | default('n/a')",
    "record.empty | default('x', true)",
    "record.empty | d('y')",
    "record.id | default",
    "record.zero | default(5, true)",
    "record.project == 'PM'",
    "record.project != 'PM'",
    "record.secs == 7200",
    "record.secs == 7200.0",
    "record.big == 9007199254740992.0",
    "record.none == none",
    "record.none == 'x'",
    "record.id == 42",
    "record.flag == true",
    "record.secs > 3600",
    "record.secs >= 1800 and record.secs < 7200",
    "1 < record.n < 10",
    "record.f < record.secs",
    "record.project < 'Q'",
    "record.project > 3",
    "'a' in record.tags",
    "3 in record.tags",
    "'PM' in record.project",
    "'k' in record.nested",
    "'z' not in record.tags",
    "record.list == [1, 2, 3]",
    "not record.flag",
    "not record.tags",
    "record.flag and record.project",
    "record.none or record.project",
    "record.empty or 'fallback'",
    "record.missing or 1",
    "'yes' if record.secs > 3600 else 'no'",
    "'yes' if record.flag",
    "record.project if record.project in ['PM', 'OPS'] else none",
    "lookup('cost_center', record.project)",
    "lookup('cost_center', record.project, default='CC-0000')",
    "lookup('cost_center', record.n)",
    "lookup('cost_center', record.none, default=0)",
    "lookup('rate', record.author) * record.secs / 3600",
    "lookup('cost_center', record.missing)",
    "lookup('cost_center', record.f)",
    "record.author | upper",
    "record.project | lower",
    "record.text | trim",
    "record.n | upper",
    "record.tags | length",
    "record.text | length",
    "record.obj | length",
    "record.n | length",
    "record.half | round",
    "record.f | round",
    "(record.secs / 7) | round(2)",
    "record.ratio * 3 | round(1)",
    "record.n | round",
    "record.neg | abs",
    "record.f | abs",
    "record.big | abs",
    "record.amount | number",
    "record.qty | number",
    "record.secs | number",
    "record.none | number",
    "{'a': record.id, 'b': [record.secs, 1]}",
    "[record.project, record.n * 2]",
    "flow.id",
    "flow.id ~ ':' ~ record.id",
    "steps.book.output.id",
    "steps.book.output",
    "steps.missing.output",
    "none",
    "true",
    "42",
    "3.25",
    "'literal'",
    "1 / 3",
    "2 ** 10",
    "record.tags | join(',')",
    "record.project.startswith('P')",
    "record.list[1:]",
    "record.id is defined",
    "record.started | date('%Y-%m-%d', tz='Asia/Shanghai')",
    "record.started | date",
    "record.started | date(tz='America/New_York')",
    "record.local | date('%Y-%m-%d %H:%M', tz='Asia/Shanghai')",
    "record.day | date('%d.%m.%Y')",
    "record.secs | date('%Y')",
    "record.ms | date('%Y-%m-%dT%H:%M:%S%:z', tz='Asia/Shanghai')",
    "record.bad_date | date('%Y-%m-%d')",
    "record.started | date('%Y', tz='Mars/Base')",
    "record.started | date(record.project)",
];

fn scope_eval(source: &str, ctx: &EvalContext, output: &Value) -> Option<Value> {
    let mut steps = std::collections::BTreeMap::new();
    steps.insert("book".to_string(), output.clone());
    let node = lower(source, &env_tables())?;
    let scope = Scope { flow: "demo", record: ctx.record(), steps: &steps, error: None };
    node.eval(&scope).and_then(|v| v.into_json()).ok()
}

fn env_tables() -> crate::native::NativeTables {
    let mut t = crate::native::NativeTables::new();
    t.insert(
        "cost_center".into(),
        Arc::new(
            [
                ("PM".to_string(), json!("CC-1001")),
                ("OPS".to_string(), json!("CC-2002")),
                ("7".to_string(), json!(7.5)),
            ]
            .into(),
        ),
    );
    t.insert(
        "rate".into(),
        Arc::new([("张三".to_string(), json!(120)), ("李四".to_string(), json!(99.5))].into()),
    );
    t
}

/// Every value the native path produces is MiniJinja's value; `Expr::eval` (native first)
/// gives the same result or error as MiniJinja alone.
#[test]
fn native_results_equal_minijinja_results() {
    let env = env();
    let output = json!({"id": "BILL-7", "lines": [1, 2]});
    let mut native_hits = 0;
    for source in CORPUS {
        let expr = env.compile(source, "map.x").unwrap_or_else(|e| panic!("{source}: {e:?}"));
        for record in records() {
            let mut ctx = EvalContext::new("demo", &record);
            ctx.set_step_output("book", &output);
            let reference = expr.eval_minijinja(&ctx);
            if let Some(native) = scope_eval(source, &ctx, &output) {
                native_hits += 1;
                match &reference {
                    Ok(v) => assert_eq!(
                        (&native, native.to_string()),
                        (v, v.to_string()),
                        "{source} on {record}: native differs"
                    ),
                    Err(e) => panic!("{source} on {record}: native gave {native}, MiniJinja failed: {e}"),
                }
            }
            assert_eq!(expr.eval(&ctx), reference, "{source} on {record}");
            let truth = expr.is_true(&ctx);
            assert_eq!(truth, expr.is_true_minijinja(&ctx), "{source} on {record} as a condition");
        }
    }
    assert!(native_hits > 200, "only {native_hits} native results");
}

/// The shapes flows use are native and stay native on well-formed records.
#[test]
fn common_shapes_are_native() {
    let env = env();
    let record = &records()[0];
    let output = json!({"id": "BILL-7"});
    for source in [
        "record.id",
        "record.secs / 3600 * record.rate",
        "lookup('cost_center', record.project)",
        "lookup('cost_center', record.none, default='CC-0')",
        "record.missing | default(0)",
        "record.project == 'PM' and record.secs > 3600",
        "record.project ~ '-' ~ record.id",
        "(record.secs / 7) | round(2)",
        "record.amount | number",
        "steps.book.output.id",
        "'yes' if record.flag else 'no'",
        "{'a': record.id}",
        "record.started | date('%Y-%m-%d', tz='Asia/Shanghai')",
    ] {
        let expr = env.compile(source, "map.x").unwrap_or_else(|e| panic!("{source}: {e:?}"));
        assert!(expr.is_native(), "{source} has no native form");
        let mut ctx = EvalContext::new("demo", record);
        ctx.set_step_output("book", &output);
        assert!(scope_eval(source, &ctx, &output).is_some(), "{source} gave up on {record}");
    }
    for source in ["record.tags | join(',')", "record.project.startswith('P')", "2 ** 10", "now()"] {
        let expr = env.compile(source, "map.x").unwrap_or_else(|e| panic!("{source}: {e:?}"));
        assert!(!expr.is_native(), "{source} should run on MiniJinja");
    }
}
