//! Maintaining a directory: a folder that any static HTTP server (or a plain file path) can
//! serve.
//!
//! ```text
//! DIR/index.json              the signed index clients read
//! DIR/index.json.minisig      its signature by the directory key
//! DIR/index.draft.json        the working copy that `add` and `yank` edit
//! DIR/packages/ID-VERSION.qpkg (+ .minisig)
//! ```
//!
//! `add` and `yank` change only the draft; `build` bumps the serial, sets the expiry, and
//! writes the index and its signature. Clients never see an unsigned state: until the next
//! build they keep getting the previous signed index. The directory's secret key never lives
//! in the served folder.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::index::{self, ConnectorEntry, Index, VersionEntry};
use crate::keys::{self, SigningKey};
use crate::package::{self, SIGNATURE_EXTENSION};
use crate::{Error, Result};

/// The draft index's file name.
pub const DRAFT_FILE: &str = "index.draft.json";
/// The packages folder.
pub const PACKAGES_DIR: &str = "packages";

/// A directory being maintained.
#[derive(Debug)]
pub struct Directory {
    root: PathBuf,
    /// The working copy of the index.
    pub draft: Index,
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new version.
    New,
    /// The same package was already there.
    Unchanged,
}

impl Directory {
    /// Creates a directory in `root` (which may exist but must not hold an index yet).
    pub fn init(root: &Path, name: &str) -> Result<Directory> {
        crate::check_id("directory name", name)?;
        if root.join(DRAFT_FILE).exists() || root.join(index::INDEX_FILE).exists() {
            return Err(Error::Invalid(format!("{} already holds a directory", root.display())));
        }
        let packages = root.join(PACKAGES_DIR);
        std::fs::create_dir_all(&packages)
            .map_err(|e| Error::io(format!("create {}", packages.display()), e))?;
        let dir = Directory { root: root.to_path_buf(), draft: Index::new(name) };
        dir.save()?;
        Ok(dir)
    }

    /// Opens a directory created by [`Directory::init`].
    pub fn open(root: &Path) -> Result<Directory> {
        let path = root.join(DRAFT_FILE);
        if !path.is_file() {
            return Err(Error::Invalid(format!(
                "{} is not a directory (no {DRAFT_FILE}); create one with `qiao directory init`",
                root.display()
            )));
        }
        let draft = Index::parse(&crate::read(&path)?)?;
        Ok(Directory { root: root.to_path_buf(), draft })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the draft.
    pub fn save(&self) -> Result<()> {
        crate::write_atomic(&self.root.join(DRAFT_FILE), &self.draft.to_json()?)
    }

    /// Registers a publisher key (idempotent).
    pub fn add_publisher_key(&mut self, publisher: &str, public_key: &str) -> Result<()> {
        crate::check_id("publisher id", publisher)?;
        keys::public_key_id(public_key)?;
        let entry = self.draft.publishers.entry(publisher.to_string()).or_default();
        if !entry.keys.iter().any(|k| k == public_key) {
            entry.keys.push(public_key.to_string());
        }
        Ok(())
    }

    /// Adds a signed package: checks the package, that its component names the WIT version
    /// its manifest claims, and that the signature is by one of its publisher's keys; copies
    /// the package and signature into `packages/`; records the version in the draft. A
    /// version already present with other bytes is refused (versions are immutable).
    pub fn add(
        &mut self,
        package_bytes: &[u8],
        signature: &str,
    ) -> Result<(crate::manifest::Manifest, Added)> {
        let pkg = package::read(package_bytes)?;
        let m = &pkg.manifest;
        let component_wit = crate::wit::component_version(&pkg.wasm)?;
        if component_wit.to_string() != m.wit {
            return Err(Error::Mismatch {
                id: m.id.clone(),
                version: m.version.clone(),
                message: format!("the manifest says WIT {} but the component uses {component_wit}", m.wit),
            });
        }
        let sha256 = crate::sha256_hex(package_bytes);
        let key_id = keys::signature_key_id(signature)?;
        let publisher = self.draft.publishers.get(&m.publisher).ok_or_else(|| {
            Error::Invalid(format!(
                "publisher {:?} is not registered in this directory; add its public key with --publisher-key",
                m.publisher
            ))
        })?;
        let key =
            publisher.keys.iter().find(|k| keys::public_key_id(k).is_ok_and(|id| id == key_id)).ok_or_else(
                || Error::UnknownKey {
                    id: m.id.clone(),
                    version: m.version.clone(),
                    publisher: m.publisher.clone(),
                    key_id: key_id.clone(),
                },
            )?;
        package::verify_signature(&m.id, &m.version, package_bytes, signature, key)?;
        if let Some(existing) = self.draft.connectors.get(&m.id) {
            if existing.publisher != m.publisher {
                return Err(Error::Invalid(format!(
                    "connector {} belongs to publisher {:?}, not {:?}",
                    m.id, existing.publisher, m.publisher
                )));
            }
            if let Some(v) = existing.versions.get(&m.version) {
                if v.sha256 == sha256 {
                    return Ok((pkg.manifest.clone(), Added::Unchanged));
                }
                return Err(Error::Invalid(format!(
                    "{} {} is already published with other content; publish a new version",
                    m.id, m.version
                )));
            }
        }
        let file = package::file_name(&m.id, &m.version);
        let packages = self.root.join(PACKAGES_DIR);
        std::fs::create_dir_all(&packages)
            .map_err(|e| Error::io(format!("create {}", packages.display()), e))?;
        crate::write_atomic(&packages.join(&file), package_bytes)?;
        crate::write_atomic(&packages.join(format!("{file}.{SIGNATURE_EXTENSION}")), signature.as_bytes())?;
        let entry = VersionEntry {
            url: format!("{PACKAGES_DIR}/{file}"),
            size: package_bytes.len() as u64,
            sha256,
            signature: signature.to_string(),
            wit: m.wit.clone(),
            runtime: m.runtime.clone(),
            capabilities: m.capabilities.clone(),
            yanked: false,
            yank_reason: None,
            published: Timestamp::now(),
        };
        let connector = self.draft.connectors.entry(m.id.clone()).or_insert_with(|| ConnectorEntry {
            publisher: m.publisher.clone(),
            title: String::new(),
            description: String::new(),
            versions: Default::default(),
        });
        connector.versions.insert(m.version.clone(), entry);
        let newest = connector.versions.keys().filter_map(|v| semver::Version::parse(v).ok()).max();
        if newest.is_some_and(|n| n.to_string() == m.version) {
            connector.title = m.title.clone();
            connector.description = m.description.clone();
        }
        Ok((pkg.manifest, Added::New))
    }

    /// Yanks (or with `yanked: false`, restores) a version.
    pub fn yank(&mut self, id: &str, version: &str, yanked: bool, reason: Option<String>) -> Result<()> {
        let entry = self
            .draft
            .connectors
            .get_mut(id)
            .and_then(|c| c.versions.get_mut(version))
            .ok_or_else(|| Error::NotFound(format!("{id} {version} is not in this directory")))?;
        entry.yanked = yanked;
        entry.yank_reason = if yanked { reason } else { None };
        Ok(())
    }

    /// Signs the draft: bumps the serial, sets the expiry, writes `index.json` and its
    /// signature, and saves the draft. Returns the new serial.
    pub fn build(&mut self, key: &SigningKey, expires: Timestamp) -> Result<u64> {
        self.draft.serial += 1;
        self.draft.expires = expires;
        self.draft.validate()?;
        let bytes = self.draft.to_json()?;
        let signature = key.sign(&bytes, &index::signature_comment(&self.draft.name, self.draft.serial))?;
        self.save()?;
        // Signature first: a client that reads the new signature with the old index fails
        // verification and retries, rather than trusting a mismatched pair.
        crate::write_atomic(&self.root.join(index::SIGNATURE_FILE), signature.as_bytes())?;
        crate::write_atomic(&self.root.join(index::INDEX_FILE), &bytes)?;
        Ok(self.draft.serial)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn init_refuses_an_existing_directory_and_yank_needs_a_version() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = Directory::init(tmp.path(), "lab").unwrap();
        assert!(Directory::init(tmp.path(), "lab").is_err());
        let err = dir.yank("jira", "0.1.0", true, None).unwrap_err().to_string();
        assert_eq!(err, "jira 0.1.0 is not in this directory");
        let key = keys::generate(&tmp.path().join("dir"), keys::Password::None, false).unwrap();
        let signer = SigningKey::load(&key.secret_path, keys::Password::None).unwrap();
        assert_eq!(dir.build(&signer, Timestamp::now()).unwrap(), 1);
        assert_eq!(Directory::open(tmp.path()).unwrap().draft.serial, 1);
        let index = crate::read(&tmp.path().join(index::INDEX_FILE)).unwrap();
        let sig = std::fs::read_to_string(tmp.path().join(index::SIGNATURE_FILE)).unwrap();
        assert_eq!(keys::verify(&key.public_key, &index, &sig).unwrap(), "qiao-index name=lab serial=1");
    }
}
