//! Flow files end to end: the example flows load and map realistic records, every bad flow
//! in `tests/bad/` gives exactly the diagnostics in its `.txt`, and the checked-in JSON
//! Schema matches the spec types.
//!
//! Regenerate the expected files after an intended change with
//! `QIAO_BLESS=1 cargo test -p qiao-flow --test flows`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use qiao_flow::{EvalContext, FlowPlan, StaticValue, StepKind, TriggerPlan, load};
use serde_json::json;

fn bless() -> bool {
    std::env::var_os("QIAO_BLESS").is_some_and(|v| v == "1")
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_dir() -> PathBuf {
    crate_dir().join("../..")
}

fn load_file(path: &Path, name: &str) -> Result<FlowPlan, qiao_flow::Diagnostics> {
    let source = std::fs::read_to_string(path).unwrap();
    load(name, &source, &common::catalog(), &common::secrets())
}

fn load_str(source: &str) -> Result<FlowPlan, qiao_flow::Diagnostics> {
    load("inline.yaml", source, &common::catalog(), &common::secrets())
}

/// Compares `actual` with the file, or rewrites the file when blessing.
fn golden(expected_file: &Path, actual: &str) -> Result<(), String> {
    if bless() {
        std::fs::write(expected_file, actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_file).unwrap_or_default();
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs (run with QIAO_BLESS=1 to accept):\n--- expected\n{expected}--- actual\n{actual}",
            expected_file.display()
        ))
    }
}

#[test]
fn bad_flows_match_their_diagnostics() {
    let dir = crate_dir().join("tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "the bad corpus shrank: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let name = format!("bad/{}", file.file_name().unwrap().to_string_lossy());
        let actual = match load_file(file, &name) {
            Ok(_) => format!("{name}: loaded without problems\n"),
            Err(d) => {
                assert!(!d.is_empty());
                d.to_string()
            }
        };
        if let Err(e) = golden(&file.with_extension("txt"), &actual) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fancy_rendering_points_into_the_file() {
    let file = crate_dir().join("tests/bad/several-errors.yaml");
    let source = std::fs::read_to_string(&file).unwrap();
    let d = load("bad/several-errors.yaml", &source, &common::catalog(), &common::secrets()).unwrap_err();
    let fancy = d.render_fancy(&source);
    assert!(fancy.contains(&format!("has {} problems", d.len())), "{fancy}");
    for diag in d.iter() {
        let start: String = diag.message.chars().take(40).collect();
        assert!(fancy.contains(&start), "missing {start:?} in\n{fancy}");
        assert!(fancy.contains(&format!("bad/several-errors.yaml:{}:{}", diag.line, diag.col)), "{fancy}");
    }
}

#[test]
fn example_flows_load() {
    // Flows written against the test catalog's connector descriptions (the runnable examples
    // in `flows/` are loaded against the real connectors by the e2e tests).
    let dir = repo_dir().join("runtime/flow/tests/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
            if let Err(d) = load_file(&path, &name) {
                panic!("{name} does not load:\n{d}");
            }
            n += 1;
        }
    }
    assert!(n >= 2, "expected the example flows in {}", dir.display());
}

#[test]
fn jira_example_maps_a_worklog() {
    let plan =
        load_file(&repo_dir().join("runtime/flow/tests/examples/jira-worklogs-to-kingdee.yaml"), "jira.yaml")
            .unwrap();
    assert_eq!(plan.id.as_str(), "jira-worklogs-to-kingdee");
    let kingdee = plan.connections.iter().find(|c| c.id.as_str() == "kingdee").unwrap();
    assert_eq!(kingdee.connector.version, "0.1.0");
    assert_eq!(kingdee.config.expose()["app_secret"], "k3-s3cr3t");
    assert!(matches!(kingdee.config.get("app_secret"), Some(StaticValue::Secret(_))));
    let jira = plan.connections.iter().find(|c| c.id.as_str() == "jira").unwrap();
    assert_eq!(jira.connector.version, "0.1.3", "jira@^0.1 must not pick 0.2.0");
    let debug = format!("{plan:?}");
    for secret in ["k3-s3cr3t", "jira-s3cr3t"] {
        assert!(!debug.contains(secret), "secret {secret} leaked into Debug");
    }
    let TriggerPlan::Poll { every, params, operation, .. } = &plan.trigger else {
        panic!("not a poll trigger")
    };
    assert_eq!((every.to_string().as_str(), operation.as_str()), ("5m", "worklogs-updated"));
    assert_eq!(params.expose(), json!({"project": "PM"}));

    let worklog = json!({
        "id": "10301",
        "issue": {"key": "PM-12", "project": "PM", "status": "进行中"},
        "author": {"displayName": "张三"},
        "started": "2024-03-05T09:30:00.000+0800",
        "timeSpentSeconds": 5400,
        "comment": "联调 😀",
    });
    let mut ctx = EvalContext::new(plan.id.as_str(), &worklog);
    let StepKind::Map(map) = &plan.steps[0].kind else { panic!("step 0 is not a map") };
    let record = map.eval(&ctx).unwrap();
    assert_eq!(
        record,
        json!({
            "cost_center": "CC-1001", "hours": 1.5, "labor_cost": 180.0, "status": "In Progress",
            "work_date": "2024-03-05", "employee": "张三", "memo": "联调 😀 [PM-12]", "source_id": "10301",
            "currency": "CNY"
        })
    );
    ctx.set_record(&record);
    let StepKind::Filter(filter) = &plan.steps[1].kind else { panic!("step 1 is not a filter") };
    assert_eq!(filter.is_true(&ctx), Ok(true));
    let StepKind::Action(book) = &plan.steps[2].kind else { panic!("step 2 is not an action") };
    assert_eq!(book.input.eval(&ctx).unwrap(), json!({"form_id": "PRJ_LaborCost", "model": record}));
    assert_eq!(plan.steps[2].retry.attempts, 5);
    let source_ctx = EvalContext::new(plan.id.as_str(), &worklog);
    assert_eq!(plan.key.as_ref().map(|k| k.eval(&source_ctx).unwrap()), Some(json!("10301")));

    // A worklog without timeSpentSeconds fails that record with a clear error.
    let mut broken = worklog.clone();
    broken["timeSpentSeconds"] = json!(null);
    let err = map.eval(&EvalContext::new(plan.id.as_str(), &broken)).unwrap_err();
    assert_eq!(err.path, "steps[0].map.hours");
    assert!(err.to_string().contains("(record.timeSpentSeconds = null)"), "{err}");
}

#[test]
fn http_example_maps_an_order() {
    let plan =
        load_file(&repo_dir().join("runtime/flow/tests/examples/http-orders-to-erp.yaml"), "http.yaml")
            .unwrap();
    assert_eq!(plan.concurrency, 4);
    let order = json!({
        "order_no": "SO-2024-0001",
        "buyer": {"name": " 李四 "},
        "channel": "JD",
        "paid_at": "2024-03-04T18:00:00Z",
        "lines": [{"sku": "A-1", "amount": 19.9}, {"sku": "B-2", "amount": 100}],
    });
    let StepKind::Map(map) = &plan.steps[0].kind else { panic!("step 0 is not a map") };
    let record = map.eval(&EvalContext::new(plan.id.as_str(), &order)).unwrap();
    assert_eq!(record["customer"], "李四");
    assert_eq!(record["channel"], "京东");
    assert_eq!(record["total"], 119.9);
    assert_eq!(record["paid_on"], "2024-03-05");
    assert_eq!(record["source"], json!({"system": "shop", "flow": "http-orders-to-erp"}));
    let unpaid =
        json!({"order_no": "SO-2", "buyer": {"name": "x"}, "channel": "??", "paid_at": null, "lines": []});
    let record = map.eval(&EvalContext::new(plan.id.as_str(), &unpaid)).unwrap();
    assert_eq!(
        (record["paid"].clone(), record["paid_on"].clone(), record["channel"].clone()),
        (json!(false), json!(null), json!("其他"))
    );
}

#[test]
fn webhook_delivery_id_header_is_case_insensitive() {
    let plan = load_str(
        "flow: callbacks\n\
         trigger:\n  webhook: { path: /approvals, secret: \"${secret.hook_secret}\", delivery_id: X-Request-Id }\n",
    )
    .unwrap();
    let TriggerPlan::Webhook { delivery_id, .. } = &plan.trigger else { panic!("not a webhook") };
    assert_eq!(delivery_id.as_deref(), Some("x-request-id"));
}

#[test]
fn other_triggers_and_foreach_load() {
    let plan = load_str(
        "flow: approvals\n\
         connections:\n  ding: { connector: dingtalk, config: { app_key: k, app_secret: \"${secret.hook_secret}\" } }\n\
         trigger:\n  webhook: { path: /dingtalk/approvals, secret: \"${secret.hook_secret}\", connection: ding }\n\
         steps:\n\
         \x20 - id: items\n    foreach: record.items\n\
         \x20 - id: alert\n    when: record.qty > record.stock\n    action: { connection: ding, operation: send-robot-message }\n",
    )
    .unwrap();
    let TriggerPlan::Webhook { path, secret, connection, delivery_id } = &plan.trigger else {
        panic!("not a webhook")
    };
    assert_eq!(path, "/dingtalk/approvals");
    assert_eq!(delivery_id, &None, "the default delivery-id headers");
    assert_eq!(secret.as_ref().map(|s| s.expose().as_str()), Some("hook-s3cr3t"));
    assert_eq!(connection.as_ref().map(|c| c.as_str()), Some("ding"));
    assert_eq!(plan.steps[0].kind.name(), "foreach");
    let StepKind::Action(a) = &plan.steps[1].kind else { panic!("not an action") };
    let ctx = EvalContext::new("approvals", &json!({"sku": "M-1", "qty": 3, "stock": 1}));
    assert_eq!(
        a.input.eval(&ctx).unwrap(),
        json!({"sku": "M-1", "qty": 3, "stock": 1}),
        "input defaults to the record"
    );

    let plan =
        load_str("flow: nightly\ntrigger: { schedule: { cron: '30 2 * * 1-5', timezone: Asia/Shanghai } }\n")
            .unwrap();
    let TriggerPlan::Schedule { timezone_name, pattern, .. } = &plan.trigger else {
        panic!("not a schedule")
    };
    assert_eq!((timezone_name.as_str(), pattern.as_str()), ("Asia/Shanghai", "30 2 * * 1-5"));
    let plan = load_str("flow: by-hand\ntrigger: { manual: {} }\nsteps: []\n").unwrap();
    assert!(matches!(plan.trigger, TriggerPlan::Manual));
}

#[test]
fn json_schema_is_up_to_date() {
    let file = repo_dir().join("flows/schema/flow.schema.json");
    let actual = serde_json::to_string_pretty(&qiao_flow::flow_json_schema()).unwrap() + "\n";
    if let Err(e) = golden(&file, &actual) {
        panic!("the flow JSON Schema changed; {e}");
    }
}

#[test]
fn json_schema_describes_the_format() {
    let schema = qiao_flow::flow_json_schema();
    assert_eq!(schema["additionalProperties"], json!(false));
    let required: Vec<&str> =
        schema["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(required, ["flow", "trigger"]);
    let trigger = &schema["$defs"]["TriggerSpec"];
    assert_eq!((trigger["minProperties"].clone(), trigger["maxProperties"].clone()), (json!(1), json!(1)));
    assert!(schema["$defs"]["StepSpec"]["oneOf"].is_array());
}
