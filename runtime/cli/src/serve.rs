//! `qiao serve`: run every flow of a folder behind the HTTP server (`qiao-server`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use qiao_engine::StoreKv;
use qiao_host::{ConnectorPolicy, Runtime, RuntimeConfig};
use qiao_server::{ConnectorLoader, InstalledConnector, Limits, LoadedConnectors, ServeConfig};
use qiao_store::Store;

use crate::catalog::{Catalog, ConnectorDirs, approved_policy};

/// Arguments of `qiao serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The folder of flow files (`*.yaml`, `*.yml`). Every valid flow runs; invalid ones are
    /// reported and skipped.
    #[arg(long)]
    flows: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    connectors: ConnectorDirs,
    /// Let connectors reach private and loopback addresses (on-premise systems, the sandbox).
    #[arg(long)]
    allow_private: bool,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Deliveries a webhook flow may hold before answering 429.
    #[arg(long, default_value_t = 1024)]
    intake_capacity: usize,
    /// Seconds a stopping flow may drain before the rest is kept for the next start.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// Seconds between checks of the flows folder for changes (0: no watching; reload with
    /// SIGHUP or `POST /api/v1/reload`).
    #[arg(long, default_value_t = 2)]
    reload_every: u64,
    /// Seconds a failed flow waits before it restarts; the wait doubles with each failure in
    /// a row, up to 60 s.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=60))]
    restart_backoff: u64,
}

pub async fn run(args: ServeArgs, state: &Path) -> Result<()> {
    if !args.flows.is_dir() {
        anyhow::bail!("flows folder {} does not exist or is not a directory", args.flows.display());
    }
    let store =
        Store::open(state).with_context(|| format!("failed to open the state in {}", state.display()))?;
    let config = RuntimeConfig {
        cache_dir: Some(state.join("cache")),
        kv: Arc::new(StoreKv(store.clone())),
        ..Default::default()
    };
    let policy = ConnectorPolicy { allow_private: args.allow_private, ..Default::default() };
    let runtime = Runtime::new(config).with_context(|| {
        format!("failed to start the connector runtime (cache {})", state.join("cache").display())
    })?;
    let catalog = Catalog::discover_in(&args.connectors, state, &runtime, &policy).await?;
    // Connectors installed through the admin API load through the same runtime, with the
    // admin's policy narrowed to what was approved at install (like the ones found now).
    let loader = ConnectorLoader::new(runtime, move |path| approved_policy(path, &policy));
    let connectors = LoadedConnectors::new(
        loader,
        catalog
            .connectors
            .iter()
            .map(|f| InstalledConnector { path: Some(f.path.clone()), connector: f.connector.clone() })
            .collect(),
    );
    let limits = Limits {
        max_body_bytes: args.max_body,
        intake_capacity: args.intake_capacity.max(1),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        reload_every: (args.reload_every > 0).then(|| Duration::from_secs(args.reload_every)),
        restart_backoff: Duration::from_secs(args.restart_backoff),
        ..Default::default()
    };
    let serve_config =
        ServeConfig { flows_dir: args.flows, listen: args.listen, state_dir: state.to_path_buf(), limits };
    let server = qiao_server::start(serve_config, store, connectors).await?;
    for (file, problems) in &server.invalid {
        eprintln!("warning: skipping flow {file}:\n{problems}");
    }
    eprintln!("qiao serve: listening on http://{}", server.addr);
    let stop = server.stop_token();
    wait_for_stop(server.addr).await;
    eprintln!("stopping: draining flows; unfinished records stay in the state store for the next start");
    stop.cancel();
    server.wait().await;
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C; SIGHUP asks the server to reload its flows.
async fn wait_for_stop(addr: SocketAddr) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    // The folder watcher picks changes up; SIGHUP only makes it immediate.
                    tracing::info!(%addr, "SIGHUP: flows reload at the next check");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = addr;
        let _ = tokio::signal::ctrl_c().await;
    }
}
