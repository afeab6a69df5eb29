//! Flow expression benchmarks (`cargo bench -p qiao-flow --bench map_filter`): the per-record
//! work of a realistic `map` + `filter` pair on one thread, over Jira-worklog-like records of
//! about 1 KiB with Chinese text (the DESIGN.md §5 mapping: cost-center lookup, hours,
//! labor cost, status lookup with a default, date formatting in a time zone, source id).
//!
//! - `map_filter/records`: `EvalContext::with_record` + map + `replace_record` + filter per
//!   record, the engine's path (records owned, cloned outside the timing).
//!   Budget (DESIGN.md §12): ≥ 200k records/s on one core.
//! - `map/records`: `EvalContext::new` + map only; `map/prepared-context`: the map against
//!   one prepared context (evaluation without conversion); `map/one-expression`: the same
//!   mapping written as one MiniJinja dict expression (one evaluation instead of eight).
//! - `context/records`: `EvalContext::new` alone (the JSON → MiniJinja conversion).
//! - `fields/<name>`: each map expression alone, to see where the time goes.
//! - `compile/*`: compiling one expression, building an expression environment, and loading
//!   the whole flow file.
//!
//! At the end, map + filter is timed over 50 passes and printed in records/s next to the
//! budget (criterion reports the same as `thrpt`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use qiao_flow::{EvalContext, ExprEnv, FlowPlan, MemorySecrets, StaticCatalog, StepKind, Tables, Template};
use serde_json::{Value, json};

const FLOW: &str = r#"
flow: worklogs-to-cost
trigger: { manual: {} }
tables:
  cost_center: { PM: CC-1001, OPS: CC-2002, FIN: CC-3003 }
  status: { 进行中: In Progress, 已完成: Done, 待办: To Do }
  rate: { PM: 120, OPS: 95.5 }
steps:
  - id: to-cost
    map:
      cost_center: lookup('cost_center', record.issue.project)
      hours: record.timeSpentSeconds / 3600
      labor_cost: (record.timeSpentSeconds / 3600 * lookup('rate', record.issue.project, default=120)) | round(2)
      status: lookup('status', record.issue.status, default='Unknown')
      work_date: record.started | date('%Y-%m-%d', tz='Asia/Shanghai')
      employee: record.author.displayName | default('unknown') | trim
      source_id: record.id
      currency: "'CNY'"
  - id: billable
    filter: record.hours > 0
"#;

/// The map of `FLOW` written as one expression.
const ONE_EXPRESSION: &str = "{
    'cost_center': lookup('cost_center', record.issue.project),
    'hours': record.timeSpentSeconds / 3600,
    'labor_cost': (record.timeSpentSeconds / 3600 * lookup('rate', record.issue.project, default=120)) | round(2),
    'status': lookup('status', record.issue.status, default='Unknown'),
    'work_date': record.started | date('%Y-%m-%d', tz='Asia/Shanghai'),
    'employee': record.author.displayName | default('unknown') | trim,
    'source_id': record.id,
    'currency': 'CNY',
}";

const PROJECTS: [&str; 3] = ["PM", "OPS", "FIN"];
const STATUSES: [&str; 4] = ["进行中", "已完成", "待办", "阻塞"];
const NAMES: [&str; 5] = ["张三", "李四", "王五", "赵六", "Ana Souza"];

/// A Jira worklog of about 1 KiB; every tenth has no time spent (filtered out).
fn worklog(i: usize) -> Value {
    let project = PROJECTS[i % PROJECTS.len()];
    json!({
        "id": format!("{}", 10_000 + i),
        "issueId": format!("{}", 20_000 + i / 7),
        "self": format!("https://acme.atlassian.net/rest/api/3/issue/{}/worklog/{}", 20_000 + i / 7, 10_000 + i),
        "author": {
            "accountId": "5b10a2844c20165700ede21g",
            "displayName": NAMES[i % NAMES.len()],
            "emailAddress": "zhang.san@example.com",
            "timeZone": "Asia/Shanghai"
        },
        "comment": "完成接口联调，修复金蝶凭证字段映射问题；与财务确认成本中心映射规则，补充单元测试与回归测试用例。明天继续处理汇率换算和跨月工时拆分。",
        "visibility": {"type": "group", "value": "项目管理部", "identifier": "276f955c-63d7-42c8-9520-92d01dca0625"},
        "created": "2026-11-24T18:02:11.000+0800",
        "updated": "2026-11-24T18:02:11.000+0800",
        "started": format!("2026-11-{:02}T09:30:00.000+0800", 1 + i % 28),
        "timeSpentSeconds": if i % 10 == 9 { 0 } else { 900 * (1 + i % 16) },
        "issue": {
            "key": format!("{project}-{}", 100 + i % 400),
            "project": project,
            "status": STATUSES[i % STATUSES.len()],
            "summary": "ERP 集成：人工成本入账（金蝶 K/3 Cloud 项目成本单）",
            "labels": ["财务", "集成", "billable"]
        },
        "properties": [{"key": "billable", "value": true}, {"key": "costCenter", "value": "CC-1001"}]
    })
}

fn records(n: usize) -> Vec<Value> {
    let recs: Vec<Value> = (0..n).map(worklog).collect();
    let len = recs[0].to_string().len();
    assert!((950..1150).contains(&len), "record is {len} bytes");
    recs
}

fn load_plan() -> FlowPlan {
    qiao_flow::load("bench.yaml", FLOW, &StaticCatalog::default(), &MemorySecrets::new())
        .unwrap_or_else(|d| panic!("{d}"))
}

fn steps(plan: &FlowPlan) -> (&Template, &qiao_flow::Expr) {
    let StepKind::Map(map) = &plan.steps[0].kind else { panic!("step 0 is not a map") };
    let StepKind::Filter(filter) = &plan.steps[1].kind else { panic!("step 1 is not a filter") };
    (map, filter)
}

/// Map + filter over `recs`, as the engine runs them (`record::run_pure`): the context takes
/// each record, the map's result replaces it; returns how many records passed.
fn map_filter(plan: &FlowPlan, recs: Vec<Value>) -> usize {
    let (map, filter) = steps(plan);
    let mut kept = 0;
    for r in recs {
        let mut ctx = EvalContext::with_record(plan.id.as_str(), r);
        let mapped = map.eval(&ctx).unwrap();
        ctx.replace_record(mapped);
        if filter.is_true(&ctx).unwrap() {
            kept += 1;
        }
    }
    kept
}

fn bench(c: &mut Criterion) {
    let plan = load_plan();
    let recs = records(1024);
    let n = recs.len() as u64;
    let (map, _) = steps(&plan);
    assert_eq!(map_filter(&plan, recs.clone()), recs.iter().filter(|r| r["timeSpentSeconds"] != 0).count());
    let first = map.eval(&EvalContext::new(plan.id.as_str(), &recs[0])).unwrap();
    assert_eq!(first["work_date"], "2026-11-01");
    assert_eq!(first["status"], "In Progress");

    let mut g = c.benchmark_group("map_filter");
    g.throughput(Throughput::Elements(n));
    // The records are cloned outside the timing (the engine owns the records it polled); their
    // drop is timed.
    g.bench_function("records", |b| {
        b.iter_batched(|| recs.clone(), |r| black_box(map_filter(&plan, r)), BatchSize::LargeInput)
    });
    g.finish();

    let mut g = c.benchmark_group("map");
    g.throughput(Throughput::Elements(n));
    g.bench_function("records", |b| {
        b.iter(|| {
            for r in &recs {
                black_box(map.eval(&EvalContext::new(plan.id.as_str(), r)).unwrap());
            }
        })
    });

    // Evaluation alone: one prepared context, no conversion per record.
    let ctx0 = EvalContext::new(plan.id.as_str(), &recs[0]);
    g.bench_function("prepared-context", |b| {
        b.iter(|| {
            for _ in &recs {
                black_box(map.eval(black_box(&ctx0)).unwrap());
            }
        })
    });

    // The same mapping as one MiniJinja dict expression: one evaluation per record instead of
    // eight, to show the fixed cost of an evaluation.
    let one = plan.exprs.compile(ONE_EXPRESSION, "bench").unwrap();
    assert_eq!(one.eval(&EvalContext::new(plan.id.as_str(), &recs[0])).unwrap(), first);
    g.bench_function("one-expression", |b| {
        b.iter(|| {
            for r in &recs {
                black_box(one.eval(&EvalContext::new(plan.id.as_str(), r)).unwrap());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("context");
    g.throughput(Throughput::Elements(n));
    g.bench_function("records", |b| {
        b.iter(|| {
            for r in &recs {
                black_box(EvalContext::new(plan.id.as_str(), r));
            }
        })
    });
    g.finish();

    // Each field of the map alone, against a prepared context.
    let ctx = EvalContext::new(plan.id.as_str(), &recs[0]);
    let Template::Map(fields) = map else { panic!("the map is not a mapping") };
    let mut g = c.benchmark_group("fields");
    g.throughput(Throughput::Elements(1));
    for (name, t) in fields {
        g.bench_function(name.as_str(), |b| b.iter(|| black_box(t.eval(black_box(&ctx)).unwrap())));
    }
    g.finish();

    let mut g = c.benchmark_group("compile");
    let env = ExprEnv::new(&Tables::new());
    let labor_cost = "(record.timeSpentSeconds / 3600 * 120) | round(2)";
    g.bench_function("expression", |b| b.iter(|| env.compile(black_box(labor_cost), "bench").unwrap()));
    g.bench_function("env", |b| b.iter(|| black_box(ExprEnv::new(&Tables::new()))));
    g.bench_function("flow-file", |b| b.iter(|| black_box(load_plan())));
    g.finish();
}

/// Prints map + filter records/s over a fixed number of passes, next to the budget.
fn summary() {
    let plan = load_plan();
    let recs = records(1024);
    map_filter(&plan, recs.clone());
    let passes = 50;
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..passes {
        let input = recs.clone();
        let start = Instant::now();
        black_box(map_filter(&plan, black_box(input)));
        spent += start.elapsed();
    }
    let per_second = (passes * recs.len()) as f64 / spent.as_secs_f64();
    println!("map_filter: {per_second:.0} records/s on one thread (budget: 200000)");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
