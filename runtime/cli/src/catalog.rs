//! Finding connector components for the commands that check flows against them.
//!
//! Search order, unless `--connectors DIR` is given (then only those directories, in order):
//!
//! 1. `$STATE/connectors/` — the installed set, laid out `<id>/<version>/connector.wasm`;
//! 2. the source tree's build output: `target/connectors/` of the nearest directory above the
//!    current one whose `Cargo.toml` has a `[workspace]` table (`$CARGO_TARGET_DIR/connectors/`
//!    when that is set, as `cargo xtask build-connectors` writes there).
//!
//! In each directory, every `*.wasm` file and every `<id>/<version>/connector.wasm` is loaded
//! through one [`Runtime`] (compile cache in `$STATE/cache`), all at once. A component that
//! fails to load is skipped with a warning naming the file; when two directories hold the same
//! id and version, the first in search order wins.
//!
//! A flow next to a lock file (`qiao.lock`, written by `qiao connector lock`) resolves through
//! [`Locked`]: each connector to exactly the pinned version and component.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use qiao_contract::ConnectorInfo;
use qiao_directory::lock::LockFile;
use qiao_flow::{ConnectorCatalog, StaticCatalog};
use qiao_host::{Connector, ConnectorPolicy, Runtime, RuntimeConfig};
use semver::VersionReq;

/// The file name of a component in the installed layout.
pub const INSTALLED_FILE: &str = "connector.wasm";

/// Where to look for connectors (`--connectors DIR`, repeatable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectorDirs {
    /// Load connectors from DIR (`*.wasm` and `<id>/<version>/connector.wasm`); repeatable.
    /// Default: $STATE/connectors, then target/connectors of the enclosing cargo workspace.
    #[arg(long = "connectors", value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

impl ConnectorDirs {
    /// The directories to search, in order: the given ones (each must exist), else the
    /// defaults that exist.
    pub fn search_path(&self, state: &Path) -> Result<Vec<PathBuf>> {
        if !self.dirs.is_empty() {
            for dir in &self.dirs {
                if !dir.is_dir() {
                    bail!("connectors directory {} does not exist or is not a directory", dir.display());
                }
            }
            return Ok(self.dirs.clone());
        }
        let mut dirs = vec![state.join("connectors")];
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        if let Some(root) = workspace_root(&cwd) {
            dirs.push(build_output(&root));
        }
        dirs.retain(|d| d.is_dir());
        Ok(dirs)
    }
}

/// The nearest directory at or above `start` whose `Cargo.toml` has a `[workspace]` table.
pub fn workspace_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| is_workspace_manifest(&dir.join("Cargo.toml"))).map(Path::to_path_buf)
}

fn is_workspace_manifest(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
}

/// Where `cargo xtask build-connectors` puts components for the workspace at `root`.
fn build_output(root: &Path) -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("connectors")
}

/// The component files in `dir`: `*.wasm`, then `<id>/<version>/connector.wasm`, each sorted.
fn components_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut flat = Vec::new();
    let mut installed = Vec::new();
    for entry in read_dir_sorted(dir)? {
        if entry.is_dir() {
            for version in read_dir_sorted(&entry)? {
                let file = version.join(INSTALLED_FILE);
                if file.is_file() {
                    installed.push(file);
                }
            }
        } else if entry.extension().is_some_and(|e| e == "wasm") {
            flat.push(entry);
        }
    }
    flat.extend(installed);
    Ok(flat)
}

/// The component files of every directory, in search order.
fn components_in_all(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for dir in dirs {
        files.extend(components_in(dir)?);
    }
    Ok(files)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read connectors directory {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    Ok(paths)
}

/// A connector found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    /// The component file.
    pub path: PathBuf,
    /// The loaded, described connector.
    pub connector: Connector,
}

impl Found {
    /// What the connector says about itself.
    pub fn info(&self) -> &ConnectorInfo {
        self.connector.info()
    }
}

/// The connectors found, and where they were looked for.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Loaded connectors, sorted by id then version (one per id and version).
    pub connectors: Vec<Found>,
    /// Components that failed to load, with the error (already warned about).
    pub failed: Vec<(PathBuf, String)>,
    /// The directories searched, in order.
    pub searched: Vec<PathBuf>,
    lookup: StaticCatalog,
}

impl Catalog {
    /// Searches `dirs` (see the module docs) and loads every component found, concurrently,
    /// with the default runtime and policy (enough to describe and validate).
    pub async fn discover(dirs: &ConnectorDirs, state: &Path) -> Result<Catalog> {
        let cache = state.join("cache");
        let config = RuntimeConfig { cache_dir: Some(cache), ..Default::default() };
        Self::discover_with(dirs, state, config, ConnectorPolicy::default()).await
    }

    /// [`Catalog::discover`] with a runtime configuration (state store kv, limits) and an
    /// admin policy applied to every connector, for commands that run flows.
    pub async fn discover_with(
        dirs: &ConnectorDirs,
        state: &Path,
        config: RuntimeConfig,
        policy: ConnectorPolicy,
    ) -> Result<Catalog> {
        let searched = dirs.search_path(state)?;
        let files = components_in_all(&searched)?;
        if files.is_empty() {
            return Ok(Catalog { searched, ..Default::default() });
        }
        let cache = config.cache_dir.clone().unwrap_or_default();
        let runtime = Runtime::new(config)
            .with_context(|| format!("failed to start the connector runtime (cache {})", cache.display()))?;
        Self::load_all(searched, files, &runtime, &policy).await
    }

    /// [`Catalog::discover_with`] through a runtime the caller keeps (`qiao serve` loads the
    /// connectors it installs later through the same one).
    pub async fn discover_in(
        dirs: &ConnectorDirs,
        state: &Path,
        runtime: &Runtime,
        policy: &ConnectorPolicy,
    ) -> Result<Catalog> {
        let searched = dirs.search_path(state)?;
        let files = components_in_all(&searched)?;
        Self::load_all(searched, files, runtime, policy).await
    }

    async fn load_all(
        searched: Vec<PathBuf>,
        files: Vec<PathBuf>,
        runtime: &Runtime,
        policy: &ConnectorPolicy,
    ) -> Result<Catalog> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, path) in files.iter().cloned().enumerate() {
            let runtime = runtime.clone();
            let policy = approved_policy(&path, policy);
            tasks.spawn(async move {
                let loaded = runtime.load_file(&path, policy).await;
                (index, loaded)
            });
        }
        let mut results: Vec<Option<Result<Connector, String>>> = vec![None; files.len()];
        while let Some(joined) = tasks.join_next().await {
            let (index, loaded) = joined.context("a connector load task failed")?;
            results[index] = Some(loaded.map_err(|e| e.to_string()));
        }

        let mut connectors: Vec<Found> = Vec::new();
        let mut failed = Vec::new();
        for (path, result) in files.into_iter().zip(results) {
            let connector = match result {
                Some(Ok(c)) => c,
                Some(Err(error)) => {
                    eprintln!("warning: skipping connector {}: {error}", path.display());
                    failed.push((path, error));
                    continue;
                }
                None => continue,
            };
            let info = connector.info();
            if let Some(first) =
                connectors.iter().find(|f| f.info().id == info.id && f.info().version == info.version)
            {
                if first.connector.sha256() != connector.sha256() {
                    eprintln!(
                        "warning: connector {} {} in {} differs from the one in {}, which is used",
                        info.id,
                        info.version,
                        path.display(),
                        first.path.display()
                    );
                }
                continue;
            }
            connectors.push(Found { path, connector });
        }
        connectors.sort_by(|a, b| {
            let key = |f: &Found| (f.info().id.clone(), semver::Version::parse(&f.info().version).ok());
            key(a).cmp(&key(b))
        });
        let lookup = StaticCatalog::new(connectors.iter().map(|f| f.info().clone()).collect());
        Ok(Catalog { connectors, failed, searched, lookup })
    }

    /// The loaded connector with this id and version.
    pub fn connector(&self, id: &str, version: &str) -> Option<Connector> {
        self.connectors
            .iter()
            .find(|f| f.info().id == id && f.info().version == version)
            .map(|f| f.connector.clone())
    }

    fn searched_text(&self) -> String {
        if self.searched.is_empty() {
            return "no connectors directory found; pass --connectors DIR".into();
        }
        let dirs: Vec<String> = self.searched.iter().map(|d| d.display().to_string()).collect();
        format!("searched {}", dirs.join(", "))
    }
}

impl ConnectorCatalog for Catalog {
    /// Resolves through the loaded connectors; a failure also says where connectors were
    /// looked for.
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<ConnectorInfo, String> {
        self.lookup.resolve(name, req).map_err(|e| format!("{e}; {}", self.searched_text()))
    }
}

/// The admin's policy narrowed to what was approved when the connector was installed from a
/// directory (its `install.json` next to the component): only the approved hosts, private
/// addresses only when both approved and allowed, the requested memory unless the admin set
/// a limit. Components without a receipt get the policy as it is.
pub fn approved_policy(component: &Path, policy: &ConnectorPolicy) -> ConnectorPolicy {
    let Some(dir) = component.parent() else { return policy.clone() };
    let receipt_path = dir.join(qiao_directory::installed::RECEIPT_FILE);
    let Ok(bytes) = std::fs::read(&receipt_path) else { return policy.clone() };
    let receipt: qiao_directory::installed::Receipt = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warning: ignoring unreadable install receipt {}: {e}", receipt_path.display());
            return policy.clone();
        }
    };
    let approved = &receipt.capabilities;
    let mut narrowed = policy.clone();
    narrowed.allow_private = policy.allow_private && approved.private_network;
    if narrowed.hosts.is_none() {
        narrowed.hosts = Some(approved.hosts.clone());
    }
    if narrowed.limits.memory_bytes.is_none() {
        narrowed.limits.memory_bytes = approved.memory_mib.map(|mib| mib << 20);
    }
    narrowed
}

/// The lock file that governs `flow`: `qiao.lock` in its folder or the nearest folder above.
pub fn flow_lock(flow: &Path) -> Result<Option<(PathBuf, LockFile)>> {
    let abs = std::path::absolute(flow).with_context(|| format!("failed to resolve {}", flow.display()))?;
    match abs.parent() {
        Some(dir) => Ok(qiao_directory::lock::find(dir)?),
        None => Ok(None),
    }
}

/// A catalog narrowed to what a lock file pins.
pub struct Locked<'a> {
    catalog: &'a Catalog,
    path: PathBuf,
    lock: LockFile,
}

impl<'a> Locked<'a> {
    /// Resolves through `catalog`, pinned by the lock file at `path`.
    pub fn new(catalog: &'a Catalog, path: PathBuf, lock: LockFile) -> Self {
        Locked { catalog, path, lock }
    }
}

impl ConnectorCatalog for Locked<'_> {
    /// The pinned version, when it fits the request and the loaded component is the pinned one.
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<ConnectorInfo, String> {
        let find = |version: &str| {
            let found = self
                .catalog
                .connectors
                .iter()
                .find(|f| f.info().id == name && f.info().version == version)?;
            Some(qiao_directory::lock::Candidate {
                value: found.info().clone(),
                sha256: found.connector.sha256().to_string(),
                location: found.path.display().to_string(),
            })
        };
        self.lock.resolve(&self.path, name, req, find, || self.catalog.searched_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_workspace_root() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("repo");
        let member = root.join("crates/a/src");
        std::fs::create_dir_all(&member)?;
        std::fs::write(root.join("Cargo.toml"), "[workspace]\nmembers = [\"crates/a\"]\n")?;
        std::fs::write(root.join("crates/a/Cargo.toml"), "[package]\nname = \"a\"\n")?;
        assert_eq!(workspace_root(&member), Some(root.clone()));
        assert_eq!(workspace_root(&root), Some(root));
        assert_eq!(workspace_root(dir.path()), None);
        Ok(())
    }

    #[test]
    fn lists_flat_and_installed_components() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("jira/0.1.0"))?;
        std::fs::create_dir_all(d.join("jira/0.2.0"))?;
        std::fs::create_dir_all(d.join("empty/0.1.0"))?;
        std::fs::write(d.join("jira/0.1.0/connector.wasm"), b"")?;
        std::fs::write(d.join("jira/0.2.0/connector.wasm"), b"")?;
        std::fs::write(d.join("http.wasm"), b"")?;
        std::fs::write(d.join("a.wasm"), b"")?;
        std::fs::write(d.join("notes.txt"), b"")?;
        let found: Vec<String> =
            components_in(d)?.iter().map(|p| p.strip_prefix(d).unwrap_or(p).display().to_string()).collect();
        assert_eq!(found, ["a.wasm", "http.wasm", "jira/0.1.0/connector.wasm", "jira/0.2.0/connector.wasm"]);
        Ok(())
    }

    #[test]
    fn installed_connectors_get_only_what_was_approved() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let wasm = dir.path().join("connector.wasm");
        let admin = ConnectorPolicy { allow_private: true, ..Default::default() };
        assert_eq!(approved_policy(&wasm, &admin), admin, "no receipt: the admin's policy");
        let receipt = serde_json::json!({
            "id": "jira", "version": "0.1.0", "sha256": "a", "package_sha256": "b", "publisher": "acme",
            "key_id": "K", "directory": "lab", "directory_serial": 3, "wit": "0.1.0",
            "capabilities": {"hosts": ["{config.base_url}"], "private_network": false, "memory_mib": 128},
            "installed": "2026-11-25T10:00:00Z"
        });
        std::fs::write(dir.path().join("install.json"), receipt.to_string())?;
        let narrowed = approved_policy(&wasm, &admin);
        assert!(!narrowed.allow_private, "private network was not approved");
        assert_eq!(narrowed.hosts, Some(vec!["{config.base_url}".to_string()]));
        assert_eq!(narrowed.limits.memory_bytes, Some(128 << 20));
        Ok(())
    }

    #[test]
    fn given_directories_must_exist() {
        let dirs = ConnectorDirs { dirs: vec![PathBuf::from("/nonexistent/qiao-connectors")] };
        let err = dirs.search_path(Path::new("/tmp")).map(|_| ()).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("connectors directory /nonexistent/qiao-connectors does not exist or is not a directory")
        );
    }
}
