//! `qiao run <flow>`: load a flow, bind its connectors, and run it with durable state.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use qiao_engine::{FlowRunner, RunnerOptions, StoreKv, TriggerInput};
use qiao_flow::{ConnectorCatalog, FileSecrets, TriggerPlan};
use qiao_host::{ConnectorPolicy, RuntimeConfig};
use qiao_store::{RunStatus, Store};
use serde_json::json;

use crate::catalog::{Catalog, ConnectorDirs, Locked};
use crate::history::runs_table;

/// Arguments of `qiao run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The flow file.
    flow: PathBuf,
    /// Finish what is in flight, fire the trigger once, and exit. Without it, poll flows poll
    /// every interval and schedule flows wait for each cron time until Ctrl-C.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    connectors: ConnectorDirs,
    /// Let connectors reach private and loopback addresses (on-premise systems, the sandbox
    /// fakes). Off by default: a connector reaches only public addresses of granted hosts.
    #[arg(long)]
    allow_private: bool,
    /// The record for a manual trigger: JSON text, or `@path` to read it from a file.
    #[arg(long)]
    input: Option<String>,
    /// Print the run summaries as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: RunArgs, state: &Path) -> Result<()> {
    let file = args.flow.display().to_string();
    let text = std::fs::read_to_string(&args.flow).with_context(|| format!("failed to read flow {file}"))?;
    let store =
        Store::open(state).with_context(|| format!("failed to open the state in {}", state.display()))?;
    let config = RuntimeConfig {
        cache_dir: Some(state.join("cache")),
        kv: Arc::new(StoreKv(store.clone())),
        ..Default::default()
    };
    let policy = ConnectorPolicy { allow_private: args.allow_private, ..Default::default() };
    let catalog = Catalog::discover_with(&args.connectors, state, config, policy).await?;
    let secrets = FileSecrets::open(state)?;
    let locked = crate::catalog::flow_lock(&args.flow)?.map(|(path, lock)| Locked::new(&catalog, path, lock));
    let resolver: &dyn ConnectorCatalog = match &locked {
        Some(locked) => locked,
        None => &catalog,
    };
    let plan = match qiao_flow::load(&file, &text, resolver, &secrets) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            if std::io::stderr().is_terminal() {
                eprintln!("{:?}", diagnostics.report(&text));
            } else {
                eprintln!("{}", diagnostics.render_fancy(&text));
            }
            bail!("flow {file} is invalid ({} problems)", diagnostics.0.len());
        }
    };
    let manual = matches!(plan.trigger, TriggerPlan::Manual);
    let runner = FlowRunner::new(
        plan,
        |info| catalog.connector(&info.id, &info.version),
        store,
        RunnerOptions::default(),
    )?;

    let token = runner.shutdown_token();
    tokio::spawn(async move {
        if shutdown_signal().await {
            eprintln!("stopping: unfinished records stay in the state store and resume on the next start");
            token.cancel();
        }
    });

    let summaries = match (&args.input, manual) {
        (Some(input), true) => {
            let input = crate::connector::json_arg("--input", input)?;
            let mut runs: Vec<_> = runner.resume().await?.into_iter().collect();
            runs.push(runner.fire(TriggerInput::Manual { input }).await?);
            runs
        }
        (Some(_), false) => bail!("--input is only for flows with a manual trigger"),
        (None, _) => runner.run(args.once).await?,
    };
    if args.json {
        let v: Vec<_> = summaries.iter().map(|s| json!({"id": s.run_id, "run": s.info})).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !summaries.is_empty() {
        let rows: Vec<_> = summaries.iter().map(|s| (s.run_id, s.info.clone())).collect();
        println!("{}", runs_table(&rows));
        let failed: u64 = summaries.iter().map(|s| s.info.counts.failed).sum();
        if failed > 0 {
            println!("{failed} record(s) failed: see `qiao dlq list` and `qiao runs show <run>`");
        }
    }
    if let Some(s) = summaries.iter().find(|s| s.info.status == RunStatus::Failed) {
        bail!("run {} failed: {}", s.run_id, s.info.error.as_deref().unwrap_or("see `qiao runs show`"));
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM; false if no signal handler could be installed.
async fn shutdown_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else { return false };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
