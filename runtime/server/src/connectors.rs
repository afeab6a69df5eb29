//! The connectors the server's flows may use: loaded once at start by the caller.

use std::path::PathBuf;

use qiao_contract::ConnectorInfo;
use qiao_flow::{ConnectorCatalog, StaticCatalog};
use qiao_host::Connector;
use semver::VersionReq;

/// A connector loaded from a file.
#[derive(Debug, Clone)]
pub struct InstalledConnector {
    /// The component file, when known.
    pub path: Option<PathBuf>,
    /// The loaded connector.
    pub connector: Connector,
}

/// The loaded connectors, and the catalog flows resolve `connector:` references against.
#[derive(Debug, Clone)]
pub struct LoadedConnectors {
    installed: Vec<InstalledConnector>,
    catalog: StaticCatalog,
}

impl LoadedConnectors {
    /// Wraps connectors loaded by the caller (one per id and version).
    pub fn new(installed: Vec<InstalledConnector>) -> Self {
        let catalog = StaticCatalog::new(installed.iter().map(|c| c.connector.info().clone()).collect());
        LoadedConnectors { installed, catalog }
    }

    /// Every loaded connector.
    pub fn installed(&self) -> &[InstalledConnector] {
        &self.installed
    }

    /// The connector with this id and version.
    pub fn connector(&self, info: &ConnectorInfo) -> Option<Connector> {
        self.installed
            .iter()
            .find(|c| c.connector.info().id == info.id && c.connector.info().version == info.version)
            .map(|c| c.connector.clone())
    }
}

impl ConnectorCatalog for LoadedConnectors {
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<ConnectorInfo, String> {
        self.catalog.resolve(name, req)
    }
}
