//! Shared helpers: where the built components are, a runtime with test-sized limits, and a
//! loopback HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use qiao_engine::{FlowRunner, RunnerOptions};
use qiao_flow::{SecretSource, StaticCatalog};
use qiao_host::{Connector, ConnectorPolicy, Runtime, RuntimeConfig};
use qiao_store::Store;

/// `target/connectors`, or `QIAO_CONNECTORS_DIR`.
pub fn connectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QIAO_CONNECTORS_DIR") {
        return PathBuf::from(dir);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("connectors")
}

/// The built component `name.wasm`.
pub fn wasm(name: &str) -> Result<PathBuf> {
    let path = connectors_dir().join(format!("{name}.wasm"));
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo xtask build-connectors` first (or `cargo xtask test`)",
            path.display()
        );
    }
    Ok(path)
}

/// A runtime sharing one compile cache across the test binary.
pub fn runtime_with(config: RuntimeConfig) -> Result<Runtime> {
    let cache = connectors_dir().join("../e2e-compile-cache");
    Ok(Runtime::new(RuntimeConfig { cache_dir: Some(cache), max_instances: 256, ..config })?)
}

pub fn runtime() -> Result<Runtime> {
    runtime_with(RuntimeConfig::default())
}

/// Loads `name.wasm` with `policy`.
pub async fn load(rt: &Runtime, name: &str, policy: ConnectorPolicy) -> Result<Connector> {
    let path = wasm(name)?;
    rt.load_file(&path, policy).await.with_context(|| format!("loading {name}"))
}

/// A policy granting loopback access.
pub fn loopback_policy() -> ConnectorPolicy {
    ConnectorPolicy { allow_private: true, ..Default::default() }
}

/// Serves `router` on an ephemeral loopback port until the test ends.
pub async fn serve(router: axum::Router) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

/// The flow `yaml` (named `file` in diagnostics) loaded against `connector` alone, with
/// `secrets`, bound to `store`.
pub fn flow_runner(
    file: &str,
    yaml: &str,
    connector: &Connector,
    store: &Store,
    secrets: &dyn SecretSource,
) -> Result<FlowRunner> {
    flow_runner_with(file, yaml, connector, store, secrets, RunnerOptions::default())
}

/// [`flow_runner`] with runner `options`.
pub fn flow_runner_with(
    file: &str,
    yaml: &str,
    connector: &Connector,
    store: &Store,
    secrets: &dyn SecretSource,
    options: RunnerOptions,
) -> Result<FlowRunner> {
    let catalog = StaticCatalog::new(vec![connector.info().clone()]);
    let plan = qiao_flow::load(file, yaml, &catalog, secrets)
        .map_err(|d| anyhow::anyhow!("flow does not load:\n{d}"))?;
    let c = connector.clone();
    Ok(FlowRunner::new(plan, move |_| Some(c.clone()), store.clone(), options)?)
}
