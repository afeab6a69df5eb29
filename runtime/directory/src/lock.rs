//! Lock files: what a flow set resolved to.
//!
//! `qiao.lock` sits next to the flows it pins (JSON):
//!
//! ```json
//! { "version": 1, "connectors": { "jira": { "version": "0.2.1", "sha256": "…", "requests": ["^0.2"] } } }
//! ```
//!
//! Flows in that folder then resolve `connector: jira@^0.2` to exactly the pinned version
//! and component. Every lock file written is registered in `$QIAO_HOME/locks.json`, so removing
//! a pinned version can be refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A lock file's name.
pub const LOCK_FILE: &str = "qiao.lock";
/// The registry of lock files in `$QIAO_HOME`.
pub const REGISTRY_FILE: &str = "locks.json";
/// The lock file format version.
pub const LOCK_VERSION: u32 = 1;

/// A lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// Format version.
    pub version: u32,
    /// Pins by connector id.
    pub connectors: BTreeMap<String, Pin>,
}

impl Default for LockFile {
    fn default() -> Self {
        LockFile { version: LOCK_VERSION, connectors: BTreeMap::new() }
    }
}

/// One connector pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The version.
    pub version: String,
    /// sha256 of its component.
    pub sha256: String,
    /// The requests of the flows that resolved to it (`^0.2`, `*`).
    #[serde(default)]
    pub requests: Vec<String>,
}

impl LockFile {
    /// Reads a lock file; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<LockFile>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        let lock: LockFile = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("invalid lock file {}: {e}", path.display())))?;
        if lock.version != LOCK_VERSION {
            return Err(Error::Invalid(format!(
                "lock file {} has version {}, this qiao reads version {LOCK_VERSION}",
                path.display(),
                lock.version
            )));
        }
        Ok(Some(lock))
    }

    /// Writes the lock file and registers it in `home`.
    pub fn save(&self, path: &Path, home: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        bytes.push(b'\n');
        crate::write_atomic(path, &bytes)?;
        register(home, path)
    }
}

/// The lock file for flows in `dir`.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
}

/// The lock file that pins the flows in `dir`: `qiao.lock` in `dir` or in the nearest folder
/// above it that has one, with its path.
pub fn find(dir: &Path) -> Result<Option<(PathBuf, LockFile)>> {
    let abs = std::path::absolute(dir).map_err(|e| Error::io(format!("resolve {}", dir.display()), e))?;
    for dir in abs.ancestors() {
        let path = lock_path(dir);
        if let Some(lock) = LockFile::load(&path)? {
            return Ok(Some((path, lock)));
        }
    }
    Ok(None)
}

/// A loaded component of a pinned version, as [`LockFile::resolve`] checks it.
pub struct Candidate<T> {
    /// What resolving yields.
    pub value: T,
    /// The component's sha256 (hex).
    pub sha256: String,
    /// Where it was loaded from, for messages.
    pub location: String,
}

impl LockFile {
    /// Resolves connector `name`, requested as `req`, to exactly what this lock (read from
    /// `path`) pins: the pinned version must satisfy `req`, be loaded (`find(version)`), and
    /// be the pinned component (same sha256). `searched` says where connectors were looked for,
    /// when the version is missing. Errors name the lock file and how to fix it.
    pub fn resolve<T>(
        &self,
        path: &Path,
        name: &str,
        req: Option<&semver::VersionReq>,
        find: impl FnOnce(&str) -> Option<Candidate<T>>,
        searched: impl FnOnce() -> String,
    ) -> std::result::Result<T, String> {
        let lock = path.display();
        let relock = "run `qiao connector lock` on the flow folder";
        let Some(pin) = self.connectors.get(name) else {
            return Err(format!("connector \"{name}\" is not pinned in {lock}; {relock}"));
        };
        let version = semver::Version::parse(&pin.version)
            .map_err(|e| format!("{lock}: {name} {}: {e}", pin.version))?;
        if let Some(req) = req
            && !req.matches(&version)
        {
            return Err(format!("{lock} pins {name} {version}, which does not satisfy {req}; {relock}"));
        }
        let Some(found) = find(&pin.version) else {
            return Err(format!("{lock} pins {name} {version}, which is not installed; {}", searched()));
        };
        if found.sha256 != pin.sha256 {
            return Err(format!(
                "{name} {version} in {} is not the component pinned in {lock} (sha256 {} instead of {})",
                found.location, found.sha256, pin.sha256
            ));
        }
        Ok(found.value)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    locks: Vec<PathBuf>,
}

fn read_registry(home: &Path) -> Result<Registry> {
    let path = home.join(REGISTRY_FILE);
    match std::fs::read(&path) {
        Ok(b) => {
            serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("invalid {}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Registers a lock file (by absolute path).
pub fn register(home: &Path, lock: &Path) -> Result<()> {
    let abs = std::path::absolute(lock).map_err(|e| Error::io(format!("resolve {}", lock.display()), e))?;
    let mut registry = read_registry(home)?;
    if !registry.locks.contains(&abs) {
        registry.locks.push(abs);
        registry.locks.sort();
        std::fs::create_dir_all(home).map_err(|e| Error::io(format!("create {}", home.display()), e))?;
        let bytes = serde_json::to_vec_pretty(&registry).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::write_atomic(&home.join(REGISTRY_FILE), &bytes)?;
    }
    Ok(())
}

/// The registered lock files that still exist, with their contents.
pub fn registered(home: &Path) -> Result<Vec<(PathBuf, LockFile)>> {
    let mut out = Vec::new();
    for path in read_registry(home)?.locks {
        if let Some(lock) = LockFile::load(&path)? {
            out.push((path, lock));
        }
    }
    Ok(out)
}

/// The registered lock files that pin `id` at `version`.
pub fn pinned_by(home: &Path, id: &str, version: &str) -> Result<Vec<PathBuf>> {
    Ok(registered(home)?
        .into_iter()
        .filter(|(_, lock)| lock.connectors.get(id).is_some_and(|p| p.version == version))
        .map(|(path, _)| path)
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn registered_locks_report_their_pins() {
        let home = tempfile::tempdir().unwrap();
        let flows = tempfile::tempdir().unwrap();
        let mut lock = LockFile::default();
        lock.connectors.insert(
            "jira".into(),
            Pin { version: "0.2.1".into(), sha256: "ab".into(), requests: vec!["^0.2".into()] },
        );
        let path = lock_path(flows.path());
        lock.save(&path, home.path()).unwrap();
        lock.save(&path, home.path()).unwrap();
        assert_eq!(LockFile::load(&path).unwrap(), Some(lock));
        assert_eq!(pinned_by(home.path(), "jira", "0.2.1").unwrap(), [std::path::absolute(&path).unwrap()]);
        assert!(pinned_by(home.path(), "jira", "0.2.0").unwrap().is_empty());
        std::fs::remove_file(&path).unwrap();
        assert!(pinned_by(home.path(), "jira", "0.2.1").unwrap().is_empty(), "deleted locks pin nothing");
    }
}
