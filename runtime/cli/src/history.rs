//! `qiao runs …` and `qiao dlq …`: run history and the dead-letter queue in the state store.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use qiao_store::{DeadLetter, RunInfo, Store};
use serde_json::json;

/// Run history commands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this flow.
        #[arg(long)]
        flow: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run with the outcome of each record.
    Show {
        /// The run id.
        id: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Dead-letter queue commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first.
    List {
        /// Only dead letters of this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter: the record as it stood, the step, the error.
    Show {
        /// The dead letter id.
        id: u64,
    },
    /// Put a dead letter back into its flow; it resumes at the failed step on the flow's next
    /// run (`qiao run <flow> --once`).
    Replay {
        /// The dead letter id.
        id: u64,
    },
    /// Delete a dead letter for good.
    Drop {
        /// The dead letter id.
        id: u64,
    },
}

fn open(state: &Path) -> Result<Store> {
    Store::open(state).with_context(|| format!("failed to open the state in {}", state.display()))
}

/// `2026-11-25 09:30:00Z`-style time for tables.
pub fn time(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn duration(info: &RunInfo) -> String {
    match info.ended_ms {
        Some(end) => format!("{:.1}s", end.saturating_sub(info.started_ms) as f64 / 1000.0),
        None => "-".into(),
    }
}

pub fn status_name<T: serde::Serialize>(s: &T) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// The runs table.
pub fn runs_table(runs: &[(u64, RunInfo)]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "run", "flow", "trigger", "status", "started", "took", "in", "out", "filtered", "failed",
    ]);
    for (id, r) in runs {
        let c = r.counts;
        table.add_row([
            id.to_string(),
            r.flow.clone(),
            r.trigger.clone(),
            status_name(&r.status),
            time(r.started_ms),
            duration(r),
            c.records_in.to_string(),
            c.records_out.to_string(),
            c.filtered.to_string(),
            c.failed.to_string(),
        ]);
    }
    table
}

pub async fn runs(cmd: RunsCommand, state: &Path) -> Result<()> {
    let store = open(state)?;
    match cmd {
        RunsCommand::List { flow, limit, json } => {
            let runs = store.list_runs(flow.as_deref(), limit)?;
            if json {
                let v: Vec<_> = runs.iter().map(|(id, r)| json!({"id": id, "run": r})).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if runs.is_empty() {
                println!("no runs");
            } else {
                println!("{}", runs_table(&runs));
            }
        }
        RunsCommand::Show { id, json } => {
            let (info, outcomes) = store.get_run(id)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"id": id, "run": info, "records": outcomes}))?
                );
                return Ok(());
            }
            println!("{}", runs_table(&[(id, info.clone())]));
            if let Some(e) = &info.error {
                println!("error: {e}");
            }
            let mut table = Table::new();
            table.load_style(UTF8_FULL_CONDENSED).set_header([
                "record",
                "status",
                "step",
                "dead letter",
                "error",
            ]);
            for o in &outcomes {
                table.add_row([
                    o.key.clone(),
                    status_name(&o.status),
                    o.step.clone().unwrap_or_default(),
                    o.dead_letter.map(|d| d.to_string()).unwrap_or_default(),
                    o.error.clone().unwrap_or_default(),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(())
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub async fn dlq(cmd: DlqCommand, state: &Path) -> Result<()> {
    let store = open(state)?;
    match cmd {
        DlqCommand::List { flow, json } => {
            let items = store.list_dead_letters(flow.as_deref())?;
            if json {
                let v: Vec<_> = items.iter().map(|(id, d)| json!({"id": id, "dead_letter": d})).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if items.is_empty() {
                println!("the dead-letter queue is empty");
            } else {
                let mut table = Table::new();
                table
                    .load_style(UTF8_FULL_CONDENSED)
                    .set_header(["id", "flow", "record", "step", "class", "attempts", "at", "error"]);
                for (id, d) in &items {
                    table.add_row([
                        id.to_string(),
                        d.flow.clone(),
                        d.state.key.clone(),
                        d.step.clone(),
                        d.class.clone(),
                        d.attempts.to_string(),
                        time(d.at_ms),
                        short(&d.error, 80),
                    ]);
                }
                println!("{table}");
            }
        }
        DlqCommand::Show { id } => {
            let d: DeadLetter = store.get_dead_letter(id)?;
            println!("{}", serde_json::to_string_pretty(&json!({"id": id, "dead_letter": d}))?);
        }
        DlqCommand::Replay { id } => {
            let now = jiff::Timestamp::now().as_millisecond() as u64;
            let (flow, _) = store.replay_dead_letter(id, now).await?;
            println!(
                "dead letter {id} is back in flow {flow:?}; it resumes at its failed step on the next run"
            );
        }
        DlqCommand::Drop { id } => {
            store.drop_dead_letter(id).await?;
            println!("dead letter {id} dropped");
        }
    }
    Ok(())
}
