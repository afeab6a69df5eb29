//! The `qiao` binary end to end: `validate`, `schema`, `connector list`, exit codes.
//!
//! Runs the built binary against components from `cargo xtask build-connectors`
//! (`target/connectors`, `$CARGO_TARGET_DIR/connectors`, or `QIAO_CONNECTORS_DIR`), each
//! invocation with its own state directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tempfile::TempDir;

/// The workspace root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The built components: `QIAO_CONNECTORS_DIR`, else `$CARGO_TARGET_DIR/connectors`, else
/// `target/connectors`.
fn built_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QIAO_CONNECTORS_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| repo().join(d))
        .unwrap_or_else(|| repo().join("target"))
        .join("connectors")
}

/// The built component `name.wasm`; fails the test when it is missing.
fn wasm(name: &str) -> PathBuf {
    let path = built_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build-connectors` first (or `cargo xtask test`)",
        path.display()
    );
    path
}

/// A connectors directory holding exactly the test guests `misbehave` and `malformed`.
fn guests_dir(tmp: &TempDir) -> PathBuf {
    let dir = tmp.path().join("guests");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["misbehave", "malformed"] {
        std::fs::copy(wasm(name), dir.join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

/// `qiao` with `QIAO_HOME` in `tmp/state`, working directory `tmp`, logging at `error`, and no
/// other inherited `QIAO_*` settings.
fn qiao(tmp: &TempDir) -> Command {
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qiao"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QIAO_") {
            cmd.env_remove(&key);
        }
    }
    // Warnings about skipped components are printed, not logged; keep stderr to those.
    cmd.env("QIAO_HOME", &state).env("QIAO_LOG", "error").current_dir(tmp.path());
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().unwrap();
    let code = status.code().unwrap_or(-1);
    (code, String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

fn write(tmp: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = tmp.path().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// A flow using only the `misbehave` guest: poll its trigger, map, filter, call an action.
const GOOD_FLOW: &str = "\
flow: count-and-echo
connections:
  mb:
    connector: misbehave@^0.1
    config: { allowed: example.test }
trigger:
  poll: { connection: mb, operation: count-up, every: 1m, params: { start: 1 } }
steps:
  - id: double
    map: { n: record.n * 2, label: \"'第' ~ record.n\" }
  - id: positive
    filter: record.n > 0
  - id: echo
    action: { connection: mb, operation: echo, input: { value: record.n } }
";

/// A flow needing a connector that is not there, and an operation `misbehave` lacks.
const BAD_FLOW: &str = "\
flow: needs-jira
connections:
  jira:
    connector: jira@^0.1
  mb:
    connector: misbehave
trigger: { manual: {} }
steps:
  - id: call
    action: { connection: mb, operation: teleport }
";

#[test]
fn validate_accepts_a_flow_using_the_test_guest() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    write(&tmp, "good.yaml", GOOD_FLOW);
    let (code, out, err) = run(qiao(&tmp).args(["validate", "good.yaml", "--connectors"]).arg(&dir));
    assert_eq!(
        (code, out.as_str()),
        (0, "ok  good.yaml  (count-and-echo: poll, 3 steps)\n"),
        "stderr:\n{err}"
    );
    assert_eq!(err, "");
}

#[test]
fn validate_reports_every_problem_with_its_location() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    write(&tmp, "bad.yaml", BAD_FLOW);
    let (code, out, err) = run(qiao(&tmp).args(["validate", "bad.yaml", "--connectors"]).arg(&dir));
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out, "");
    // miette snippets: the header, each message, its location and the source line.
    assert!(err.contains("flow file \"bad.yaml\" has 2 problems"), "{err}");
    assert!(err.contains("[bad.yaml:4:16]"), "{err}");
    assert!(err.contains("connector \"jira\" is not installed (installed: malformed, misbehave)"), "{err}");
    assert!(err.contains("connector: jira@^0.1"), "{err}");
    assert!(err.contains("[bad.yaml:10:42]"), "{err}");
    assert!(
        err.contains("connector \"misbehave\" has no operation \"teleport\"; its actions are: "),
        "{err}"
    );
    assert!(err.contains("operation: teleport }"), "{err}");
    assert!(err.trim_end().ends_with("error: 1 of 1 flow file is invalid"), "{err}");
}

#[test]
fn validate_json_has_one_entry_per_file() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    write(&tmp, "good.yaml", GOOD_FLOW);
    write(&tmp, "bad.yaml", BAD_FLOW);
    write(&tmp, "broken.yaml", "flow: [unclosed\n");
    let (code, out, err) = run(qiao(&tmp)
        .args(["validate", "--json", "good.yaml", "bad.yaml", "broken.yaml", "missing.yaml", "--connectors"])
        .arg(&dir));
    assert_eq!(code, 1, "stderr:\n{err}");
    let results: Value = serde_json::from_str(&out).unwrap();
    let searched = format!("searched {}", dir.display());
    assert_eq!(
        results[0],
        json!({"file": "good.yaml", "ok": true, "flow": "count-and-echo", "diagnostics": []})
    );
    assert_eq!(
        results[1],
        json!({"file": "bad.yaml", "ok": false, "flow": "needs-jira", "diagnostics": [
            {"file": "bad.yaml", "line": 4, "col": 16, "path": "connections.jira.connector",
             "message": format!("connector \"jira\" is not installed (installed: malformed, misbehave); {searched}")},
            {"file": "bad.yaml", "line": 10, "col": 42, "path": "steps[0].action.operation",
             "message": "connector \"misbehave\" has no operation \"teleport\"; its actions are: echo, kv-count, log, clock, fetch, spin, alloc, trap, forbidden"},
        ]})
    );
    assert_eq!(
        (&results[2]["file"], &results[2]["ok"], &results[2]["flow"]),
        (&json!("broken.yaml"), &json!(false), &Value::Null)
    );
    let d = &results[2]["diagnostics"][0];
    assert_eq!((&d["line"], &d["col"]), (&json!(1), &json!(7)), "{d}");
    assert!(d["message"].as_str().unwrap().starts_with("invalid YAML"), "{d}");
    let missing = &results[3];
    assert_eq!((&missing["file"], &missing["ok"]), (&json!("missing.yaml"), &json!(false)));
    let message = missing["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("failed to read flow file missing.yaml: "), "{message}");
    assert_eq!(results.as_array().map(Vec::len), Some(4));
    assert_eq!(err.trim_end(), "error: 3 of 4 flow files are invalid");
}

#[test]
fn validate_walks_directories_but_not_schema() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    write(&tmp, "flows/a.yaml", GOOD_FLOW);
    write(
        &tmp,
        "flows/nested/b.yml",
        "flow: by-hand\ntrigger: { manual: {} }\nsteps:\n  - id: only\n    filter: 'true'\n",
    );
    write(&tmp, "flows/schema/not-a-flow.yaml", "type: object\n");
    write(&tmp, "flows/README.md", "# flows\n");
    let (code, out, err) = run(qiao(&tmp).args(["validate", "flows", "--connectors"]).arg(&dir));
    assert_eq!(code, 0, "stderr:\n{err}");
    assert_eq!(
        out,
        "ok  flows/a.yaml  (count-and-echo: poll, 3 steps)\nok  flows/nested/b.yml  (by-hand: manual, 1 step)\n"
    );
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let (code, _, err) = run(qiao(&tmp).args(["validate", "empty", "--connectors"]).arg(&dir));
    assert_eq!(code, 1);
    assert!(err.contains("error: no flow files (*.yaml, *.yml) in directory empty"), "{err}");
}

#[test]
fn validate_reads_secrets_from_the_state_directory_and_environment() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    let flow = "flow: secret-config\nconnections:\n  mb:\n    connector: misbehave\n    config: { allowed: \"${env.MB_HOST}\", token: \"${secret.mb_token}\" }\ntrigger: { manual: {} }\n";
    write(&tmp, "s.yaml", flow);
    let (code, out, _) = run(qiao(&tmp)
        .args(["validate", "--json", "s.yaml", "--connectors"])
        .arg(&dir)
        .env_remove("MB_HOST"));
    assert_eq!(code, 1);
    let results: Value = serde_json::from_str(&out).unwrap();
    let messages: Vec<&str> = results[0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0], "environment variable \"MB_HOST\" is not set");
    assert!(messages[1].starts_with("secret \"mb_token\" is not defined"), "{messages:?}");
    assert!(messages[1].contains("QIAO_SECRET_MB_TOKEN"), "the hint names the variable: {messages:?}");

    let (code, out, err) = run(qiao(&tmp)
        .args(["validate", "s.yaml", "--connectors"])
        .arg(&dir)
        .env("MB_HOST", "example.test")
        .env("QIAO_SECRET_MB_TOKEN", "t0ken-value"));
    assert_eq!((code, out.as_str()), (0, "ok  s.yaml  (secret-config: manual, 0 steps)\n"), "{err}");
}

/// The flow-format examples of `runtime/flow/tests/examples`, with the environment and
/// secrets they name, against a folder holding only the HTTP connector and the test guests:
/// the jira/kingdee flow must fail on exactly its two uninstalled connectors; the HTTP one
/// loads against the real HTTP connector's `describe()`.
#[test]
fn validate_reports_uninstalled_connectors_where_they_are_named() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    std::fs::copy(wasm("http"), dir.join("http.wasm")).unwrap();
    let flows = repo().join("runtime/flow/tests/examples");
    let mut cmd = qiao(&tmp);
    cmd.args(["validate", "--json", "--connectors"]).arg(&dir).arg(&flows);
    for (k, v) in [
        ("JIRA_URL", "https://jira.example.test"),
        ("JIRA_EMAIL", "bot@example.test"),
        ("K3_URL", "https://k3.example.test/k3cloud"),
        ("K3_ACCT", "62c4f4b9a1b2c3"),
        ("K3_APP_ID", "300001_abc"),
        ("SHOP_URL", "https://shop.example.test"),
        ("ERP_URL", "https://erp.example.test"),
        ("QIAO_SECRET_JIRA_TOKEN", "jira-s3cr3t"),
        ("QIAO_SECRET_K3_SECRET", "k3-s3cr3t"),
        ("QIAO_SECRET_SHOP_TOKEN", "shop-s3cr3t"),
    ] {
        cmd.env(k, v);
    }
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 1, "stderr:\n{err}");
    let results: Value = serde_json::from_str(&out).unwrap();
    let by_name = |name: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    let http = by_name("http-orders-to-erp.yaml");
    assert_eq!((&http["ok"], &http["flow"]), (&json!(true), &json!("http-orders-to-erp")), "{http:#}");

    let jira = by_name("jira-worklogs-to-kingdee.yaml");
    let source = std::fs::read_to_string(flows.join("jira-worklogs-to-kingdee.yaml")).unwrap();
    let line_of = |text: &str| source.lines().position(|l| l.contains(text)).unwrap() + 1;
    let located: Vec<(u64, u64, &str)> = jira["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["line"].as_u64().unwrap(), d["col"].as_u64().unwrap(), d["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        located,
        [
            (line_of("connector: jira@^0.1") as u64, 16, "connections.jira.connector"),
            (line_of("connector: kingdee") as u64, 16, "connections.kingdee.connector")
        ],
        "{jira:#}"
    );
    for d in jira["diagnostics"].as_array().unwrap() {
        let message = d["message"].as_str().unwrap();
        assert!(message.contains("is not installed (installed: http, malformed, misbehave)"), "{message}");
    }
    assert_eq!(results.as_array().map(Vec::len), Some(2), "schema/ is not walked");
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"), "a secret leaked");
}

#[test]
fn schema_matches_the_committed_file() {
    let tmp = TempDir::new().unwrap();
    let (code, out, err) = run(qiao(&tmp).arg("schema"));
    assert_eq!(code, 0, "{err}");
    let committed = std::fs::read_to_string(repo().join("flows/schema/flow.schema.json")).unwrap();
    assert!(
        out.trim_end() == committed.trim_end(),
        "`qiao schema` differs from flows/schema/flow.schema.json; if the flow format changed on \
         purpose, run `cargo run -p qiao -- schema > flows/schema/flow.schema.json`"
    );
    let schema: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schema["required"], json!(["flow", "trigger"]));
}

#[test]
fn connector_list_json_names_each_connector() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    let (code, out, err) = run(qiao(&tmp).args(["connector", "list", "--json", "--connectors"]).arg(&dir));
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["malformed", "misbehave"]);
    let mb = &list[1];
    assert_eq!((&mb["version"], &mb["triggers"], &mb["actions"]), (&json!("0.1.0"), &json!(1), &json!(9)));
    assert_eq!(mb["source"], json!(dir.join("misbehave.wasm").display().to_string()));
    assert_eq!(mb["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(mb["operations"][9], json!({"name": "count-up", "kind": "trigger"}));
}

#[test]
fn connector_list_table() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    let (code, out, err) = run(qiao(&tmp).args(["connector", "list", "--connectors"]).arg(&dir));
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.contains("misbehave")).unwrap_or_default();
    for cell in ["0.1.0", "1 trigger / 9 actions", "misbehave.wasm"] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?} in\n{out}");
    }
    assert!(out.lines().next().is_some_and(|l| l.starts_with('┌')), "{out}");
}

#[test]
fn installed_connectors_are_found_without_flags() {
    let tmp = TempDir::new().unwrap();
    let installed = tmp.path().join("state/connectors/misbehave/0.1.0");
    std::fs::create_dir_all(&installed).unwrap();
    std::fs::copy(wasm("misbehave"), installed.join("connector.wasm")).unwrap();
    let (code, out, err) = run(qiao(&tmp).args(["connector", "list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    assert_eq!(list[0]["id"], "misbehave");
    assert!(list[0]["source"].as_str().unwrap().ends_with("state/connectors/misbehave/0.1.0/connector.wasm"));
}

#[test]
fn the_source_tree_build_output_is_found_from_inside_the_workspace() {
    let tmp = TempDir::new().unwrap();
    let workspace = tmp.path().join("ws");
    let built = workspace.join("target/connectors");
    std::fs::create_dir_all(workspace.join("crates/a")).unwrap();
    std::fs::create_dir_all(&built).unwrap();
    std::fs::write(workspace.join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
    std::fs::copy(wasm("misbehave"), built.join("misbehave.wasm")).unwrap();
    let (code, out, err) = run(qiao(&tmp)
        .args(["connector", "list", "--json"])
        .current_dir(workspace.join("crates/a"))
        .env_remove("CARGO_TARGET_DIR"));
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    assert!(Path::new(list[0]["source"].as_str().unwrap()).ends_with("ws/target/connectors/misbehave.wasm"));
}

#[test]
fn a_broken_component_is_skipped_with_a_warning() {
    let tmp = TempDir::new().unwrap();
    let dir = guests_dir(&tmp);
    std::fs::write(dir.join("garbage.wasm"), b"\0asm not really").unwrap();
    write(&tmp, "good.yaml", GOOD_FLOW);
    let (code, out, err) = run(qiao(&tmp).args(["validate", "good.yaml", "--connectors"]).arg(&dir));
    assert_eq!((code, out.as_str()), (0, "ok  good.yaml  (count-and-echo: poll, 3 steps)\n"), "{err}");
    let garbage = dir.join("garbage.wasm").display().to_string();
    assert!(
        err.starts_with(&format!("warning: skipping connector {garbage}: failed to compile connector")),
        "{err}"
    );

    // `connector list` lists the others, then fails.
    let (code, out, err) = run(qiao(&tmp).args(["connector", "list", "--json", "--connectors"]).arg(&dir));
    assert_eq!(code, 1, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap().as_array().map(Vec::len), Some(2));
    assert!(err.contains(&format!("warning: skipping connector {garbage}")), "{err}");
    assert!(err.contains("error: 1 connector component failed to load"), "{err}");
}

#[test]
fn a_missing_connectors_directory_is_an_error() {
    let tmp = TempDir::new().unwrap();
    let (code, _, err) = run(qiao(&tmp).args(["connector", "list", "--connectors", "nowhere"]));
    assert_eq!(code, 1);
    assert_eq!(err, "error: connectors directory nowhere does not exist or is not a directory\n");
}

#[test]
fn bad_usage_exits_2() {
    let tmp = TempDir::new().unwrap();
    for args in [
        &["validate"][..],
        &["frobnicate"],
        &["validate", "--bogus", "x.yaml"],
        &["schema", "extra"],
        &["connector", "list", "--connectors"],
    ] {
        let (code, out, err) = run(qiao(&tmp).args(args));
        assert_eq!(code, 2, "qiao {args:?}: {out}{err}");
        assert!(err.starts_with("error: "), "qiao {args:?}: {err}");
    }
}

/// `qiao demo`: the sandbox in-process, the first-party connectors, every flow of `flows/`
/// run once. Each flow must move records into its target system, and the malformed material
/// requests must be dead-lettered with their reasons and reported.
#[test]
fn demo_moves_records_through_every_example_flow() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("first-party");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["http", "jira", "dingtalk", "sap", "kingdee", "yonyou"] {
        std::fs::copy(wasm(name), dir.join(format!("{name}.wasm"))).unwrap();
    }
    let mut cmd = qiao(&tmp);
    cmd.args(["demo", "--json", "--flows"]).arg(repo().join("flows")).arg("--connectors").arg(&dir);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "stderr:\n{err}");
    let flows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = flows.iter().map(|f| f["flow"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 8, "{names:?}");
    let flow = |name: &str| flows.iter().find(|f| f["flow"] == name).unwrap_or_else(|| panic!("{name} ran"));
    let writes = |f: &Value, system: &str| -> u64 {
        f["writes"][system].as_object().map_or(0, |calls| calls.values().map(|n| n.as_u64().unwrap()).sum())
    };
    for f in &flows {
        assert!(f["records_in"].as_u64().unwrap() > 0, "{f:#}");
        assert!(f["records_out"].as_u64().unwrap() > 0, "{f:#}");
        assert!(f["writes"].as_object().is_some_and(|w| !w.is_empty()), "{f:#}");
    }

    // One DingTalk message or Jira issue per record that went through.
    for (name, system) in [
        ("jira-done-to-dingtalk", "dingtalk"),
        ("yonyou-over-budget-alert", "dingtalk"),
        ("dingtalk-approval-to-jira", "jira"),
    ] {
        let f = flow(name);
        assert_eq!(writes(f, system), f["records_out"].as_u64().unwrap(), "{f:#}");
        assert_eq!(f["failed"], 0, "{f:#}");
    }
    // Worklogs in bulk: every one booked, one BatchSave per group of ≤ 50 of a cost center.
    let wl = flow("jira-worklogs-to-kingdee");
    assert_eq!(wl["records_in"], wl["records_out"], "{wl:#}");
    let batches = writes(wl, "kingdee");
    assert!(batches >= 4 && batches <= wl["records_out"].as_u64().unwrap() / 50 + 4, "{wl:#}");
    // One robot summary per project.
    assert_eq!(writes(flow("jira-worklogs-weekly-summary"), "dingtalk"), 4);
    // Each Jira issue carrying a WBS element updates that element once.
    assert_eq!(writes(flow("jira-progress-to-sap"), "sap"), 8);

    // The four material requests people typed wrongly are dead letters in both material
    // flows, each with its reason; the Kingdee flow reports each on the robot.
    for name in ["dingtalk-material-to-kingdee", "dingtalk-material-to-sap"] {
        let f = flow(name);
        assert_eq!(f["failed"], 4, "{f:#}");
        let reasons: Vec<&str> =
            f["dead_letters"].as_array().unwrap().iter().map(|d| d["error"].as_str().unwrap()).collect();
        for bad in [
            "\"若干\" is not a number",
            "\"两箱\" is not a number",
            "\"2026-02-30\" as a date",
            "no entry \"PRJ-X\"",
        ] {
            assert!(reasons.iter().any(|r| r.contains(bad)), "{name}: {bad} not among {reasons:#?}");
        }
    }
    assert_eq!(writes(flow("dingtalk-material-to-kingdee"), "dingtalk"), 4, "one alert per dead letter");
    assert!(writes(flow("dingtalk-material-to-sap"), "sap") >= 1, "a requisition for the short stock");
    // The robot's access token is in what the DingTalk fake received; the demo redacts it.
    let robot_token = "5f1c0d9e8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";
    assert!(!out.contains(robot_token), "a sandbox secret leaked into the demo output");
    assert!(out.contains("\"***\""), "the redaction shows");
}

/// Answers every HTTP request on a loopback port with `200 {}`, from a thread of its own;
/// returns its address and each request's method and target as received (a request sent
/// through a proxy names the whole URL).
fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app =
                axum::Router::new().fallback(move |method: axum::http::Method, uri: axum::http::Uri| {
                    log.lock().unwrap().push(format!("{method} {uri}"));
                    async { axum::Json(json!({})) }
                });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap().to_string(), seen)
}

/// Connector requests go direct even when the environment names a proxy: through a proxy the
/// target's name is resolved by the proxy, past the check that keeps connectors without
/// private network access off the internal network.
#[test]
fn connector_requests_ignore_proxy_variables() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("connectors");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(wasm("http"), dir.join("http.wasm")).unwrap();
    let (target, to_target) = recording_server();
    let (proxy, to_proxy) = recording_server();
    write(
        &tmp,
        "post.yaml",
        &format!(
            "flow: post\nconnections:\n  api: {{ connector: http, config: {{ base_url: \"http://{target}\" }} }}\n\
             trigger: {{ manual: {{}} }}\nsteps:\n  - id: send\n    action: {{ connection: api, operation: request, \
             input: {{ method: \"'POST'\", url: \"'/orders'\", json: record }} }}\n"
        ),
    );
    let proxy_url = format!("http://{proxy}");
    let mut cmd = qiao(&tmp);
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env(var, &proxy_url);
    }
    for var in ["NO_PROXY", "no_proxy"] {
        cmd.env_remove(var);
    }
    let (code, out, err) = run(cmd
        .args(["run", "post.yaml", "--input", r#"{"id": 1}"#, "--json", "--allow-private", "--connectors"])
        .arg(&dir));
    assert_eq!(code, 0, "{out}\n{err}");
    let runs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs[0]["run"]["status"], "succeeded", "{out}");
    assert_eq!(*to_target.lock().unwrap(), ["POST /orders"]);
    assert!(to_proxy.lock().unwrap().is_empty(), "went through the proxy: {:?}", to_proxy.lock().unwrap());
}
