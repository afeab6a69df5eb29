//! The installed set: `$QIAO_HOME/connectors/<id>/<version>/`, versions side by side.
//!
//! Each version folder holds `connector.wasm`, `qiao-connector.yaml`, `README.md`, the
//! publisher's signature `package.minisig` and `install.json`, the receipt saying where it
//! came from. A folder appears whole (one rename from the staging area) and disappears whole
//! (renamed away, then deleted).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::manifest::Capabilities;
use crate::package::WASM_FILE;
use crate::{Error, Result};

/// The installed set's folder in `$QIAO_HOME`.
pub const CONNECTORS_DIR: &str = "connectors";
/// The staging folder in `$QIAO_HOME` (same file system, so the final move is a rename).
pub const STAGING_DIR: &str = ".staging";
/// The receipt's file name.
pub const RECEIPT_FILE: &str = "install.json";
/// The publisher signature's file name in a version folder.
pub const SIGNATURE_FILE: &str = "package.minisig";

/// Where an installed version came from and what was approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Connector id.
    pub id: String,
    /// Version.
    pub version: String,
    /// sha256 of `connector.wasm`.
    pub sha256: String,
    /// sha256 of the package file.
    pub package_sha256: String,
    /// Publisher id.
    pub publisher: String,
    /// Key id of the publisher signature.
    pub key_id: String,
    /// The directory's configured name.
    pub directory: String,
    /// The index serial it was installed from.
    pub directory_serial: u64,
    /// WIT version of the component.
    pub wit: String,
    /// The capabilities the admin approved.
    pub capabilities: Capabilities,
    /// When.
    pub installed: Timestamp,
}

/// One installed version.
#[derive(Debug, Clone)]
pub struct InstalledVersion {
    /// Connector id.
    pub id: String,
    /// Version.
    pub version: Version,
    /// Its folder.
    pub dir: PathBuf,
    /// The receipt; `None` for a component copied in by hand.
    pub receipt: Option<Receipt>,
}

impl InstalledVersion {
    /// The component file.
    pub fn wasm(&self) -> PathBuf {
        self.dir.join(WASM_FILE)
    }
}

/// The folder of one version.
pub fn version_dir(home: &Path, id: &str, version: &Version) -> PathBuf {
    home.join(CONNECTORS_DIR).join(id).join(version.to_string())
}

/// Every installed version, sorted by id then version. Folders that are not
/// `<id>/<semver>/connector.wasm` are ignored.
pub fn list(home: &Path) -> Result<Vec<InstalledVersion>> {
    let root = home.join(CONNECTORS_DIR);
    let mut out = Vec::new();
    let ids = match std::fs::read_dir(&root) {
        Ok(ids) => ids,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("read {}", root.display()), e)),
    };
    for id_entry in ids.flatten() {
        let id = id_entry.file_name().to_string_lossy().into_owned();
        if crate::check_id("connector id", &id).is_err() || !id_entry.path().is_dir() {
            continue;
        }
        let Ok(versions) = std::fs::read_dir(id_entry.path()) else { continue };
        for v_entry in versions.flatten() {
            let Ok(version) = Version::parse(&v_entry.file_name().to_string_lossy()) else { continue };
            let dir = v_entry.path();
            if !dir.join(WASM_FILE).is_file() {
                continue;
            }
            let receipt =
                std::fs::read(dir.join(RECEIPT_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
            out.push(InstalledVersion { id: id.clone(), version, dir, receipt });
        }
    }
    out.sort_by(|a, b| (&a.id, &a.version).cmp(&(&b.id, &b.version)));
    Ok(out)
}

/// The installed versions of one connector, oldest first.
pub fn versions_of(home: &Path, id: &str) -> Result<Vec<InstalledVersion>> {
    Ok(list(home)?.into_iter().filter(|v| v.id == id).collect())
}

/// Removes one version: renamed out of the installed set first, so it disappears whole.
pub fn remove(home: &Path, id: &str, version: &Version) -> Result<()> {
    crate::check_id("connector id", id)?;
    let dir = version_dir(home, id, version);
    if !dir.is_dir() {
        return Err(Error::NotFound(format!("{id} {version} is not installed")));
    }
    let staging = home.join(STAGING_DIR);
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(format!("create {}", staging.display()), e))?;
    let trash = tempfile::Builder::new()
        .prefix(&format!("remove-{id}-{version}-"))
        .tempdir_in(&staging)
        .map_err(|e| Error::io(format!("create a folder in {}", staging.display()), e))?;
    let moved = trash.path().join("v");
    std::fs::rename(&dir, &moved)
        .map_err(|e| Error::io(format!("move {} out of the installed set", dir.display()), e))?;
    drop(trash);
    // Leave no empty `<id>/` behind.
    let _ = std::fs::remove_dir(home.join(CONNECTORS_DIR).join(id));
    Ok(())
}
