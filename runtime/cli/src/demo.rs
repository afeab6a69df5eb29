//! `qiao demo`: the sandbox systems started in-process, the first-party connectors loaded,
//! every example flow of `flows/` run once against them, and what moved where printed —
//! records in and out per flow, a few records as the target system received them, and the
//! dead letters with their reasons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use qiao_engine::{FlowRunner, RunnerOptions, StoreKv};
use qiao_flow::MemorySecrets;
use qiao_host::{ConnectorPolicy, RuntimeConfig};
use qiao_sandbox::{Sandbox, SandboxOptions};
use qiao_store::{RunCounts, Store};
use serde_json::{Value, json};

use crate::catalog::{Catalog, ConnectorDirs};

/// Arguments of `qiao demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The example flows.
    #[arg(long, default_value = "flows")]
    flows: PathBuf,
    #[command(flatten)]
    connectors: ConnectorDirs,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// What one example flow did.
struct FlowOutcome {
    file: String,
    flow: String,
    status: String,
    counts: RunCounts,
    /// Writes each system received (method + path → count).
    writes: BTreeMap<String, BTreeMap<String, usize>>,
    /// A few records as the target systems stored them.
    samples: Vec<(String, Value)>,
    dead_letters: Vec<Value>,
}

pub async fn run(args: DemoArgs, state: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.flows)
        .with_context(|| format!("failed to read the example flows in {}", args.flows.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no flows in {}", args.flows.display());
    }
    let sandbox = Sandbox::start(SandboxOptions::default()).await?;
    if !args.json {
        println!("sandbox systems (fakes of the real protocols, on loopback):");
        for (name, url, _) in sandbox.systems() {
            println!("  {name:<9} {url}");
        }
        println!();
    }

    // A fresh state for every demo, so each flow starts from the beginning of its source.
    let demo_state = state.join("demo");
    if demo_state.exists() {
        std::fs::remove_dir_all(&demo_state)
            .with_context(|| format!("failed to clear {}", demo_state.display()))?;
    }
    std::fs::create_dir_all(&demo_state)?;
    let store = Store::open(&demo_state)?;
    let config = RuntimeConfig {
        cache_dir: Some(state.join("cache")),
        kv: Arc::new(StoreKv(store.clone())),
        ..Default::default()
    };
    let policy = ConnectorPolicy { allow_private: true, ..Default::default() };
    let catalog = Catalog::discover_with(&args.connectors, state, config, policy).await?;
    let mut secrets = MemorySecrets::new();
    for (k, v) in sandbox.env() {
        secrets = secrets.with_env(&k, &v);
    }
    for (k, v) in sandbox.secrets() {
        secrets = secrets.with_secret(&k, &v);
    }

    // Fakes keep what they received, tokens included: never print those.
    let secret_values: Vec<String> = sandbox.secrets().into_iter().map(|(_, v)| v).collect();
    let mut outcomes = Vec::new();
    for path in &files {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {file}"))?;
        let plan = qiao_flow::load(&file, &text, &catalog, &secrets)
            .map_err(|d| anyhow::anyhow!("{file} is invalid:\n{d}"))?;
        let flow = plan.id.to_string();
        let before = Snapshots::take(&sandbox);
        let runner = FlowRunner::new(
            plan,
            |info| catalog.connector(&info.id, &info.version),
            store.clone(),
            RunnerOptions::default(),
        )?;
        let runs = runner.run(true).await?;
        let after = Snapshots::take(&sandbox);
        let mut counts = RunCounts::default();
        let mut status = String::from("no run");
        for r in &runs {
            let c = r.info.counts;
            counts.records_in += c.records_in;
            counts.records_out += c.records_out;
            counts.filtered += c.filtered;
            counts.failed += c.failed;
            status = crate::history::status_name(&r.info.status);
        }
        let dead_letters = store
            .list_dead_letters(Some(&flow))?
            .into_iter()
            .map(|(id, d)| json!({"id": id, "record": d.state.key, "step": d.step, "class": d.class, "error": d.error}))
            .collect();
        outcomes.push(FlowOutcome {
            file: path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
            flow,
            status,
            counts,
            writes: before.writes_until(&after),
            samples: before
                .new_records(&after, 2)
                .into_iter()
                .map(|(system, record)| (system, redact(record, &secret_values)))
                .collect(),
            dead_letters,
        });
    }
    if args.json {
        let out: Vec<Value> = outcomes
            .iter()
            .map(|o| {
                json!({
                    "file": o.file, "flow": o.flow, "status": o.status,
                    "records_in": o.counts.records_in, "records_out": o.counts.records_out,
                    "filtered": o.counts.filtered, "failed": o.counts.failed,
                    "writes": o.writes, "samples": o.samples.iter().map(|(s, v)| json!({"system": s, "record": v})).collect::<Vec<_>>(),
                    "dead_letters": o.dead_letters,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_outcomes(&outcomes, &demo_state);
    }
    Ok(())
}

fn print_outcomes(outcomes: &[FlowOutcome], demo_state: &Path) {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(["flow", "status", "in", "out", "filtered", "failed", "writes"]);
    for o in outcomes {
        let writes: Vec<String> = o
            .writes
            .iter()
            .map(|(system, calls)| format!("{system}: {}", calls.values().sum::<usize>()))
            .collect();
        table.add_row([
            o.flow.clone(),
            o.status.clone(),
            o.counts.records_in.to_string(),
            o.counts.records_out.to_string(),
            o.counts.filtered.to_string(),
            o.counts.failed.to_string(),
            writes.join(", "),
        ]);
    }
    println!("{table}\n");
    for o in outcomes {
        println!("── {} ({})", o.flow, o.file);
        for (system, calls) in &o.writes {
            for (call, n) in calls {
                println!("   {system} ← {call} ×{n}");
            }
        }
        for (system, record) in &o.samples {
            let mut text = record.to_string();
            if text.chars().count() > 300 {
                text = text.chars().take(300).collect::<String>() + "…";
            }
            println!("   {system} received: {text}");
        }
        for d in &o.dead_letters {
            println!(
                "   dead letter {} at step {}: {}: {}",
                d["record"].as_str().unwrap_or_default(),
                d["step"].as_str().unwrap_or_default(),
                d["class"].as_str().unwrap_or_default(),
                d["error"].as_str().unwrap_or_default()
            );
        }
        println!();
    }
    let state = demo_state.display();
    println!("inspect with `qiao --state {state} runs list` and `qiao --state {state} dlq list`");
}

/// `value` with every string that contains one of `secrets` replaced by `***`.
fn redact(value: Value, secrets: &[String]) -> Value {
    match value {
        Value::String(s) if secrets.iter().any(|x| s.contains(x.as_str())) => Value::String("***".into()),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| redact(v, secrets)).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, redact(v, secrets))).collect()),
        other => other,
    }
}

/// Every fake's snapshot and journal length at one moment.
struct Snapshots {
    systems: Vec<(&'static str, Value, Vec<qiao_sandbox_kit::JournalEntry>)>,
}

impl Snapshots {
    fn take(sandbox: &Sandbox) -> Snapshots {
        use qiao_sandbox_kit::System;
        Snapshots {
            systems: vec![
                ("jira", sandbox.jira.fake.snapshot(), sandbox.jira.ctx.journal.entries()),
                ("dingtalk", sandbox.dingtalk.fake.snapshot(), sandbox.dingtalk.ctx.journal.entries()),
                ("sap", sandbox.sap.fake.snapshot(), sandbox.sap.ctx.journal.entries()),
                ("kingdee", sandbox.kingdee.fake.snapshot(), sandbox.kingdee.ctx.journal.entries()),
                ("yonyou", sandbox.yonyou.fake.snapshot(), sandbox.yonyou.ctx.journal.entries()),
            ],
        }
    }

    /// Successful writes (POST/PUT/PATCH/DELETE answered 2xx) each system received since.
    fn writes_until(&self, later: &Snapshots) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut out = BTreeMap::new();
        for ((name, _, before), (_, _, after)) in self.systems.iter().zip(&later.systems) {
            let mut calls: BTreeMap<String, usize> = BTreeMap::new();
            for e in after.iter().skip(before.len()) {
                let write = matches!(e.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE" | "MERGE");
                let is_read = e.path.contains("/search")
                    || e.path.contains("token")
                    || e.path.contains("Token")
                    || e.path.contains("Login")
                    || e.path.ends_with("/list")
                    || e.path.contains("ExecuteBillQuery")
                    || e.path.contains("instanceIds/query")
                    || e.path.ends_with("/worklog/list");
                if write && !is_read && (200..300).contains(&e.status) {
                    *calls.entry(format!("{} {}", e.method, e.path)).or_default() += 1;
                }
            }
            if !calls.is_empty() {
                out.insert(name.to_string(), calls);
            }
        }
        out
    }

    /// Up to `n` records per system that appeared in a list of its snapshot since.
    fn new_records(&self, later: &Snapshots, n: usize) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for ((name, before, _), (_, after, _)) in self.systems.iter().zip(&later.systems) {
            let Some(after) = after.as_object() else { continue };
            for (key, list) in after {
                let Some(items) = list.as_array() else { continue };
                let old = before.get(key).and_then(Value::as_array).map_or(0, Vec::len);
                for item in items.iter().skip(old).take(n) {
                    out.push((format!("{name} {key}"), item.clone()));
                }
            }
        }
        out
    }
}
