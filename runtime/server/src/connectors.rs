//! The connectors the server's flows may use: loaded at start by the caller, and changed
//! while serving by installs and removals through the admin API (`install.rs`).
//!
//! [`LoadedConnectors`] is shared: every clone sees the same set, so flows loaded after an
//! install resolve against it. [`ConnectorLoader`] is how the server loads a component it
//! installed: the caller's runtime, and the caller's policy for that file (the admin's
//! policy narrowed to what was approved at install).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use qiao_contract::ConnectorInfo;
use qiao_directory::lock::{Candidate, LockFile};
use qiao_flow::{ConnectorCatalog, StaticCatalog};
use qiao_host::{Connector, ConnectorPolicy, LoadError, Runtime};
use semver::VersionReq;

/// A connector loaded from a file.
#[derive(Debug, Clone)]
pub struct InstalledConnector {
    /// The component file, when known.
    pub path: Option<PathBuf>,
    /// The loaded connector.
    pub connector: Connector,
}

type PolicyFn = dyn Fn(&Path) -> ConnectorPolicy + Send + Sync;

/// Loads connector components for the server: the runtime the other connectors run in, and
/// the policy each component file gets.
#[derive(Clone)]
pub struct ConnectorLoader {
    runtime: Runtime,
    policy: Arc<PolicyFn>,
}

impl fmt::Debug for ConnectorLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorLoader").finish_non_exhaustive()
    }
}

impl ConnectorLoader {
    /// Loads through `runtime`; `policy` says what the component at a path may do.
    pub fn new(runtime: Runtime, policy: impl Fn(&Path) -> ConnectorPolicy + Send + Sync + 'static) -> Self {
        ConnectorLoader { runtime, policy: Arc::new(policy) }
    }

    /// Loads a component to run, with its policy.
    pub async fn load(&self, path: &Path) -> Result<Connector, LoadError> {
        self.runtime.load_file(path, (self.policy)(path)).await
    }

    /// Loads a component only to read what it says about itself (precompiling it into the
    /// compile cache on the way).
    pub async fn describe(&self, path: &Path) -> Result<ConnectorInfo, LoadError> {
        Ok(self.runtime.load_file(path, ConnectorPolicy::default()).await?.info().clone())
    }
}

struct Set {
    installed: Vec<InstalledConnector>,
    catalog: StaticCatalog,
}

impl Set {
    fn new(installed: Vec<InstalledConnector>) -> Self {
        let catalog = StaticCatalog::new(installed.iter().map(|c| c.connector.info().clone()).collect());
        Set { installed, catalog }
    }
}

/// The loaded connectors, and the catalog flows resolve `connector:` references against.
/// Cheap to clone; clones share the set.
#[derive(Clone)]
pub struct LoadedConnectors {
    set: Arc<RwLock<Set>>,
    loader: ConnectorLoader,
}

impl fmt::Debug for LoadedConnectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self
            .installed()
            .iter()
            .map(|c| format!("{}@{}", c.connector.info().id, c.connector.info().version))
            .collect();
        f.debug_struct("LoadedConnectors").field("installed", &ids).finish_non_exhaustive()
    }
}

impl LoadedConnectors {
    /// Connectors loaded by the caller (one per id and version), and the loader for the ones
    /// installed while serving.
    pub fn new(loader: ConnectorLoader, installed: Vec<InstalledConnector>) -> Self {
        LoadedConnectors { set: Arc::new(RwLock::new(Set::new(installed))), loader }
    }

    /// Every loaded connector.
    pub fn installed(&self) -> Vec<InstalledConnector> {
        self.set.read().map(|s| s.installed.clone()).unwrap_or_default()
    }

    /// The connector with this id and version.
    pub fn connector(&self, info: &ConnectorInfo) -> Option<Connector> {
        self.find(&info.id, &info.version).map(|c| c.connector)
    }

    /// The loaded connector with this id and version.
    pub(crate) fn find(&self, id: &str, version: &str) -> Option<InstalledConnector> {
        let set = self.set.read().ok()?;
        set.installed
            .iter()
            .find(|c| c.connector.info().id == id && c.connector.info().version == version)
            .cloned()
    }

    /// How the server loads what it installs.
    pub(crate) fn loader(&self) -> &ConnectorLoader {
        &self.loader
    }

    /// Adds a connector, replacing one with the same id and version.
    pub(crate) fn add(&self, added: InstalledConnector) {
        self.change(|list| {
            let info = added.connector.info();
            list.retain(|c| {
                !(c.connector.info().id == info.id && c.connector.info().version == info.version)
            });
            list.push(added);
        });
    }

    /// Removes the connector with this id and version.
    pub(crate) fn remove(&self, id: &str, version: &str) {
        self.change(|list| {
            list.retain(|c| !(c.connector.info().id == id && c.connector.info().version == version))
        });
    }

    fn change(&self, f: impl FnOnce(&mut Vec<InstalledConnector>)) {
        if let Ok(mut set) = self.set.write() {
            let mut list = std::mem::take(&mut set.installed);
            f(&mut list);
            *set = Set::new(list);
        }
    }
}

/// The loaded connectors narrowed to what a lock file pins (`qiao.lock` next to the flows or
/// above them): each connector resolves to exactly the pinned version and component, as
/// `qiao run` resolves them.
pub(crate) struct Pinned<'a> {
    pub connectors: &'a LoadedConnectors,
    /// The lock file's path, named in errors.
    pub path: &'a Path,
    pub lock: &'a LockFile,
}

impl ConnectorCatalog for Pinned<'_> {
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<ConnectorInfo, String> {
        let find = |version: &str| {
            let found = self.connectors.find(name, version)?;
            Some(Candidate {
                value: found.connector.info().clone(),
                sha256: found.connector.sha256().to_string(),
                location: found.path.map_or_else(|| "the server".to_string(), |p| p.display().to_string()),
            })
        };
        let searched = || {
            let versions: Vec<String> = self
                .connectors
                .installed()
                .iter()
                .filter(|c| c.connector.info().id == name)
                .map(|c| c.connector.info().version.clone())
                .collect();
            if versions.is_empty() {
                format!("the server has no version of {name} loaded")
            } else {
                format!("the server has {name} {} loaded", versions.join(", "))
            }
        };
        self.lock.resolve(self.path, name, req, find, searched)
    }
}

impl ConnectorCatalog for LoadedConnectors {
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<ConnectorInfo, String> {
        match self.set.read() {
            Ok(set) => set.catalog.resolve(name, req),
            Err(_) => Err("the connector set is unavailable (lock poisoned)".into()),
        }
    }
}
