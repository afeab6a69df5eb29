//! `qiao validate`: check flow files against the connectors found and the state directory's
//! secrets, without running anything.
//!
//! Valid files get one `ok` line on stdout; invalid ones every problem as a miette snippet on
//! stderr (or, with `--json`, one JSON array on stdout). Exits 1 when any file is invalid or
//! unreadable.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use qiao_flow::{ConnectorCatalog, Diagnostic, Diagnostics, FileSecrets, FlowPlan, TriggerPlan};
use serde_json::{Value, json};

use crate::catalog::{Catalog, ConnectorDirs, Locked};

/// Arguments of `qiao validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Flow files, or directories: every `*.yaml` / `*.yml` inside, subdirectories included
    /// except `schema/` and hidden ones.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    connectors: ConnectorDirs,
    /// Print one JSON array of results to stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// What the `ok` line says about a valid flow.
struct Summary {
    flow: String,
    trigger: &'static str,
    steps: usize,
}

impl Summary {
    fn of(plan: &FlowPlan) -> Self {
        Summary {
            flow: plan.id.as_str().to_string(),
            trigger: trigger_kind(&plan.trigger),
            steps: plan.steps.len(),
        }
    }
}

/// The outcome for one flow file.
struct Checked {
    file: String,
    outcome: Outcome,
}

enum Outcome {
    Valid(Summary),
    Invalid {
        source: String,
        diagnostics: Diagnostics,
    },
    /// The path could not be read (or a directory held no flow file).
    Unreadable(String),
}

/// Runs `qiao validate`.
pub async fn run(args: ValidateArgs, state: &Path) -> Result<()> {
    let catalog = Catalog::discover(&args.connectors, state).await?;
    let secrets = FileSecrets::open(state).context("failed to open the secrets of the state directory")?;
    let mut checked = Vec::new();
    for path in &args.paths {
        let files = match flow_files(path) {
            Ok(files) => files,
            Err(e) => {
                let outcome = Outcome::Unreadable(format!("{e:#}"));
                checked.push(Checked { file: path.display().to_string(), outcome });
                continue;
            }
        };
        for path in files {
            let file = path.display().to_string();
            let locked = match crate::catalog::flow_lock(&path) {
                Ok(lock) => lock.map(|(lock_path, lock)| Locked::new(&catalog, lock_path, lock)),
                Err(e) => {
                    checked.push(Checked { file, outcome: Outcome::Unreadable(format!("{e:#}")) });
                    continue;
                }
            };
            let resolver: &dyn ConnectorCatalog = match &locked {
                Some(locked) => locked,
                None => &catalog,
            };
            let outcome = match std::fs::read_to_string(&path) {
                Err(e) => Outcome::Unreadable(format!("failed to read flow file {file}: {e}")),
                Ok(source) => match qiao_flow::load(&file, &source, resolver, &secrets) {
                    Ok(plan) => Outcome::Valid(Summary::of(&plan)),
                    Err(diagnostics) => Outcome::Invalid { source, diagnostics },
                },
            };
            checked.push(Checked { file, outcome });
        }
    }

    if args.json {
        let out: Vec<Value> = checked.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for c in &checked {
            print_human(c);
        }
    }
    let bad = checked.iter().filter(|c| !matches!(c.outcome, Outcome::Valid(_))).count();
    if bad > 0 {
        let total = checked.len();
        bail!("{bad} of {total} flow file{} invalid", if total == 1 { " is" } else { "s are" });
    }
    Ok(())
}

/// `path` itself if it is not a directory, else the flow files below it, sorted.
pub(crate) fn flow_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    collect(path, &mut found)?;
    if found.is_empty() {
        bail!("no flow files (*.yaml, *.yml) in directory {}", path.display());
    }
    Ok(found)
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to read directory {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if p.is_dir() {
            if name != "schema" && !name.starts_with('.') {
                collect(&p, found)?;
            }
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(p);
        }
    }
    Ok(())
}

fn trigger_kind(t: &TriggerPlan) -> &'static str {
    match t {
        TriggerPlan::Manual => "manual",
        TriggerPlan::Schedule { .. } => "schedule",
        TriggerPlan::Poll { .. } => "poll",
        TriggerPlan::Webhook { .. } => "webhook",
    }
}

fn print_human(c: &Checked) {
    match &c.outcome {
        Outcome::Valid(Summary { flow, trigger, steps }) => {
            let s = if *steps == 1 { "" } else { "s" };
            println!("ok  {}  ({flow}: {trigger}, {steps} step{s})", c.file);
        }
        Outcome::Invalid { source, diagnostics } => {
            if std::io::stderr().is_terminal() {
                eprintln!("{:?}", diagnostics.report(source));
            } else {
                eprintln!("{}", diagnostics.render_fancy(source));
            }
        }
        Outcome::Unreadable(message) => eprintln!("error: {message}\n"),
    }
}

fn to_json(c: &Checked) -> Value {
    let diagnostic = |d: &Diagnostic| json!({"file": d.file, "line": d.line, "col": d.col, "path": d.path, "message": d.message});
    match &c.outcome {
        Outcome::Valid(summary) => {
            json!({"file": c.file, "ok": true, "flow": summary.flow, "diagnostics": []})
        }
        Outcome::Invalid { source, diagnostics } => {
            let flow = qiao_flow::parse(source).ok().map(|spec| spec.flow);
            json!({
                "file": c.file,
                "ok": false,
                "flow": flow,
                "diagnostics": diagnostics.iter().map(diagnostic).collect::<Vec<_>>(),
            })
        }
        Outcome::Unreadable(message) => json!({
            "file": c.file,
            "ok": false,
            "flow": null,
            "diagnostics": [{"file": c.file, "line": 0, "col": 0, "path": "", "message": message}],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_yield_flow_files_except_schema() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        for sub in ["schema", "nested", ".hidden"] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        for f in ["b.yml", "a.yaml", "notes.txt", "schema/x.yaml", "nested/c.yaml", ".hidden/d.yaml"] {
            std::fs::write(d.join(f), "")?;
        }
        let found: Vec<String> =
            flow_files(d)?.iter().map(|p| p.strip_prefix(d).unwrap_or(p).display().to_string()).collect();
        assert_eq!(found, ["a.yaml", "b.yml", "nested/c.yaml"]);
        let empty = tempfile::tempdir()?;
        let err = flow_files(empty.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("no flow files (*.yaml, *.yml) in directory "), "{err}");
        Ok(())
    }
}
