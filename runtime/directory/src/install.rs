//! Installing a connector version: resolve, download, verify, stage, commit.
//!
//! [`choose`] picks a version from verified indexes; [`stage`] downloads the package into a
//! fresh folder under `$QIAO_HOME/.staging/` and runs every check that needs no Wasm runtime,
//! in this order: size (a truncated or padded download), sha256 against the signed index,
//! the publisher's key (listed for that publisher in the index) and signature (over these
//! bytes, naming this id, version and digest), the package's manifest against the index, the
//! WIT version the component names against the manifest and this runtime, and the runtime
//! range. The caller then shows [`Staged::capabilities`] for approval, precompiles the
//! component through the host and passes its `describe()` to [`Staged::check_description`]
//! (a manifest may not request hosts the component does not declare), and finally
//! [`Staged::commit`] moves the version into the installed set with one rename. Dropping a
//! [`Staged`] at any earlier point deletes the staging folder: a failed install leaves the
//! installed set exactly as it was.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use qiao_contract::ConnectorInfo;
use semver::{Version, VersionReq};

use crate::fetch::{FetchError, Fetcher, Location, Progress};
use crate::index::VersionEntry;
use crate::installed::{self, RECEIPT_FILE, Receipt, SIGNATURE_FILE, STAGING_DIR};
use crate::manifest::{Capabilities, MANIFEST_FILE, Manifest};
use crate::package::{self, README_FILE, WASM_FILE};
use crate::remote::VerifiedIndex;
use crate::{Error, Result, keys, wit};

/// `id` or `id@<semver requirement>` (`jira@^0.2`, `jira@=0.2.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Connector id.
    pub id: String,
    /// Version requirement (`*` when none was given).
    pub req: VersionReq,
}

impl std::str::FromStr for Request {
    type Err = Error;
    fn from_str(text: &str) -> Result<Request> {
        let (id, req) = match text.split_once('@') {
            Some((id, req)) => {
                let req = VersionReq::parse(req)
                    .map_err(|e| Error::Invalid(format!("invalid version requirement in {text:?}: {e}")))?;
                (id, req)
            }
            None => (text, VersionReq::STAR),
        };
        crate::check_id("connector id", id)?;
        Ok(Request { id: id.to_string(), req })
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.req == VersionReq::STAR {
            write!(f, "{}", self.id)
        } else {
            write!(f, "{}@{}", self.id, self.req)
        }
    }
}

/// A version chosen from a directory.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The directory's configured name.
    pub directory: String,
    /// Where the directory is.
    pub location: Location,
    /// The index serial.
    pub serial: u64,
    /// Connector id.
    pub id: String,
    /// Version.
    pub version: Version,
    /// The index entry.
    pub entry: VersionEntry,
    /// Publisher id.
    pub publisher: String,
    /// The publisher's keys, per the index.
    pub publisher_keys: Vec<String>,
}

/// Whether a version runs here, per its index entry: `Err` says why not.
fn runs_here(id: &str, version: &Version, entry: &VersionEntry) -> Result<()> {
    let host = wit::host_version();
    let wit_version = crate::parse_version("WIT version", &entry.wit)?;
    if !wit::compatible(&wit_version, &host) {
        return Err(Error::Wit {
            id: id.into(),
            version: version.to_string(),
            wit: entry.wit.clone(),
            host: host.to_string(),
        });
    }
    check_runtime(id, &version.to_string(), &entry.runtime)
}

fn check_runtime(id: &str, version: &str, range: &str) -> Result<()> {
    let req = VersionReq::parse(range)
        .map_err(|e| Error::Invalid(format!("{id} {version}: runtime range {range:?} is invalid: {e}")))?;
    let runtime = crate::runtime_version();
    if !req.matches(&runtime) {
        return Err(Error::Runtime {
            id: id.into(),
            version: version.into(),
            range: range.into(),
            runtime: runtime.to_string(),
        });
    }
    Ok(())
}

/// The directory that owns `id`: the first, in configured order, that lists it. Later
/// directories cannot shadow a connector (no dependency confusion).
fn owner<'a>(indexes: &'a [VerifiedIndex], id: &str) -> Option<&'a VerifiedIndex> {
    indexes.iter().find(|v| v.index.connectors.contains_key(id))
}

fn candidate(v: &VerifiedIndex, id: &str, version: Version, entry: &VersionEntry) -> Result<Candidate> {
    let connector =
        v.index.connectors.get(id).ok_or_else(|| {
            Error::NotFound(format!("connector {id} is not in directory {:?}", v.directory))
        })?;
    let keys = v.index.publishers.get(&connector.publisher).map(|p| p.keys.clone()).unwrap_or_default();
    Ok(Candidate {
        directory: v.directory.clone(),
        location: v.location.clone(),
        serial: v.index.serial,
        id: id.to_string(),
        version,
        entry: entry.clone(),
        publisher: connector.publisher.clone(),
        publisher_keys: keys,
    })
}

/// The newest version matching the request that is not yanked and runs here. When nothing
/// qualifies, the error names why the best match does not (yanked, WIT, runtime range).
pub fn choose(indexes: &[VerifiedIndex], request: &Request) -> Result<Candidate> {
    let Some(v) = owner(indexes, &request.id) else {
        let names: Vec<&str> = indexes.iter().map(|v| v.directory.as_str()).collect();
        return Err(Error::NotFound(format!(
            "connector {} is not in any configured directory (searched {})",
            request.id,
            names.join(", ")
        )));
    };
    let versions = v.index.versions(&request.id);
    let matching: Vec<&(Version, &VersionEntry)> =
        versions.iter().filter(|(ver, _)| request.req.matches(ver)).collect();
    let mut first_problem = None;
    for (version, entry) in &matching {
        if entry.yanked {
            first_problem.get_or_insert(Error::Yanked {
                id: request.id.clone(),
                version: version.to_string(),
                reason: entry.yank_reason.clone(),
            });
            continue;
        }
        match runs_here(&request.id, version, entry) {
            Ok(()) => return candidate(v, &request.id, version.clone(), entry),
            Err(e) => {
                first_problem.get_or_insert(e);
            }
        }
    }
    if let Some(problem) = first_problem {
        return Err(problem);
    }
    let available: Vec<String> = versions.iter().map(|(v, _)| v.to_string()).collect();
    Err(Error::NotFound(format!(
        "no version of {} matches {} in directory {:?} (available: {})",
        request.id,
        request.req,
        v.directory,
        available.join(", ")
    )))
}

/// A package downloaded and verified, waiting in the staging area.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::TempDir,
    /// What was chosen.
    pub candidate: Candidate,
    /// The verified manifest.
    pub manifest: Manifest,
    receipt: Receipt,
}

/// Downloads and verifies a candidate into `$QIAO_HOME/.staging/` (see the module docs).
pub async fn stage(
    home: &Path,
    candidate: Candidate,
    fetcher: &Fetcher,
    progress: Progress<'_>,
) -> Result<Staged> {
    let id = candidate.id.clone();
    let version = candidate.version.to_string();
    let entry = &candidate.entry;

    let target = installed::version_dir(home, &id, &candidate.version);
    if target.exists() {
        return Err(Error::Invalid(format!("{id} {version} is already installed in {}", target.display())));
    }
    let location = candidate.location.join(&entry.url)?;
    // One byte more than announced, so a longer answer is detected as such.
    let bytes =
        fetcher.get(&location, entry.size.saturating_add(1), progress).await.map_err(|e| match e {
            FetchError::Unreachable(message) => Error::Unreachable {
                directory: candidate.directory.clone(),
                url: location.to_string(),
                message,
            },
            FetchError::Bad(message) if message.contains("is larger than") => Error::Size {
                id: id.clone(),
                version: version.clone(),
                expected: entry.size,
                got: entry.size + 1,
            },
            FetchError::Bad(message) => Error::Unreachable {
                directory: candidate.directory.clone(),
                url: location.to_string(),
                message,
            },
        })?;
    if bytes.len() as u64 != entry.size {
        return Err(Error::Size { id, version, expected: entry.size, got: bytes.len() as u64 });
    }
    let sha256 = crate::sha256_hex(&bytes);
    if !sha256.eq_ignore_ascii_case(&entry.sha256) {
        return Err(Error::Digest { id, version, expected: entry.sha256.clone(), got: sha256 });
    }
    let key_id = keys::signature_key_id(&entry.signature).map_err(|e| Error::Signature {
        id: id.clone(),
        version: version.clone(),
        message: e.to_string(),
    })?;
    let key = candidate
        .publisher_keys
        .iter()
        .find(|k| keys::public_key_id(k).is_ok_and(|k| k == key_id))
        .ok_or_else(|| Error::UnknownKey {
            id: id.clone(),
            version: version.clone(),
            publisher: candidate.publisher.clone(),
            key_id: key_id.clone(),
        })?;
    package::verify_signature(&id, &version, &bytes, &entry.signature, key)?;

    let pkg = package::read(&bytes)?;
    let m = &pkg.manifest;
    let mismatch = |message: String| Error::Mismatch { id: id.clone(), version: version.clone(), message };
    if m.id != id || m.version != version {
        return Err(mismatch(format!("the package holds {} {}", m.id, m.version)));
    }
    if m.publisher != candidate.publisher {
        return Err(mismatch(format!(
            "the package names publisher {:?}, the index {:?}",
            m.publisher, candidate.publisher
        )));
    }
    if m.capabilities != entry.capabilities || m.wit != entry.wit || m.runtime != entry.runtime {
        return Err(mismatch(
            "the package's manifest and the index disagree on capabilities, WIT version or runtime range"
                .into(),
        ));
    }
    let component_wit = wit::component_version(&pkg.wasm).map_err(|e| mismatch(e.to_string()))?;
    let host = wit::host_version();
    if !wit::compatible(&component_wit, &host) {
        return Err(Error::Wit { id, version, wit: component_wit.to_string(), host: host.to_string() });
    }
    if component_wit.to_string() != m.wit {
        return Err(mismatch(format!(
            "the manifest says WIT {} but the component uses {component_wit}",
            m.wit
        )));
    }
    check_runtime(&id, &version, &m.runtime)?;

    let staging = home.join(STAGING_DIR);
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(format!("create {}", staging.display()), e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!("install-{id}-{version}-"))
        .tempdir_in(&staging)
        .map_err(|e| Error::io(format!("create a folder in {}", staging.display()), e))?;
    let dir = tmp.path().join("v");
    std::fs::create_dir(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let write = |name: &str, data: &[u8]| crate::write_atomic(&dir.join(name), data);
    write(WASM_FILE, &pkg.wasm)?;
    write(MANIFEST_FILE, pkg.manifest_text.as_bytes())?;
    write(README_FILE, pkg.readme.as_bytes())?;
    write(SIGNATURE_FILE, entry.signature.as_bytes())?;
    let receipt = Receipt {
        id: id.clone(),
        version: version.clone(),
        sha256: crate::sha256_hex(&pkg.wasm),
        package_sha256: sha256,
        publisher: candidate.publisher.clone(),
        key_id,
        directory: candidate.directory.clone(),
        directory_serial: candidate.serial,
        wit: m.wit.clone(),
        capabilities: m.capabilities.clone(),
        installed: Timestamp::now(),
    };
    Ok(Staged { tmp, manifest: pkg.manifest, candidate, receipt })
}

impl Staged {
    fn dir(&self) -> PathBuf {
        self.tmp.path().join("v")
    }

    /// The staged component, to precompile and describe.
    pub fn wasm_path(&self) -> PathBuf {
        self.dir().join(WASM_FILE)
    }

    /// sha256 of the staged component.
    pub fn wasm_sha256(&self) -> &str {
        &self.receipt.sha256
    }

    /// What the connector asks the admin for.
    pub fn capabilities(&self) -> &Capabilities {
        &self.manifest.capabilities
    }

    /// Checks the component's own description against the manifest (ids, operations, config
    /// schema; no host it does not declare).
    pub fn check_description(&self, info: &ConnectorInfo) -> Result<()> {
        self.manifest.check_against(info)
    }

    /// Moves the version into the installed set with one rename and returns its folder.
    pub fn commit(self, home: &Path) -> Result<PathBuf> {
        let receipt = serde_json::to_vec_pretty(&self.receipt).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::write_atomic(&self.dir().join(RECEIPT_FILE), &receipt)?;
        let target = installed::version_dir(home, &self.candidate.id, &self.candidate.version);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
        if target.exists() {
            return Err(Error::Invalid(format!(
                "{} appeared while installing; nothing changed",
                target.display()
            )));
        }
        std::fs::rename(self.dir(), &target)
            .map_err(|e| Error::io(format!("move the staged version to {}", target.display()), e))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::index::{ConnectorEntry, Index, Publisher};

    fn entry(yanked: bool, wit: &str) -> VersionEntry {
        VersionEntry {
            url: "packages/x.qpkg".into(),
            size: 1,
            sha256: "0".repeat(64),
            signature: String::new(),
            wit: wit.into(),
            runtime: crate::manifest::default_runtime_range(),
            capabilities: Capabilities::default(),
            yanked,
            yank_reason: yanked.then(|| "broken paging".to_string()),
            published: Timestamp::UNIX_EPOCH,
        }
    }

    fn indexes(versions: &[(&str, VersionEntry)]) -> Vec<VerifiedIndex> {
        let mut index = Index::new("lab");
        index.publishers.insert("acme".into(), Publisher::default());
        index.connectors.insert(
            "jira".into(),
            ConnectorEntry {
                publisher: "acme".into(),
                title: String::new(),
                description: String::new(),
                versions: versions.iter().map(|(v, e)| (v.to_string(), e.clone())).collect(),
            },
        );
        vec![VerifiedIndex { directory: "lab".into(), location: Location::Path("/x".into()), index }]
    }

    #[test]
    fn chooses_the_newest_usable_version() {
        let idx = indexes(&[
            ("0.1.0", entry(false, "0.1.0")),
            ("0.1.1", entry(true, "0.1.0")),
            ("0.2.0", entry(false, "0.1.0")),
        ]);
        let pick = |r: &str| {
            choose(&idx, &r.parse().unwrap()).map(|c| c.version.to_string()).map_err(|e| e.to_string())
        };
        assert_eq!(pick("jira@^0.1"), Ok("0.1.0".into()), "yanked 0.1.1 is skipped");
        assert_eq!(pick("jira"), Ok("0.2.0".into()));
        assert_eq!(pick("jira@=0.1.1"), Err("jira 0.1.1 is yanked: broken paging".into()));
        let err = pick("jira@^0.3").unwrap_err();
        assert!(
            err.contains("no version of jira matches ^0.3") && err.contains("available: 0.2.0, 0.1.1, 0.1.0"),
            "{err}"
        );
        assert!(pick("dingtalk").unwrap_err().contains("not in any configured directory"));
    }

    #[test]
    fn refuses_incompatible_wit_from_the_index() {
        let idx = indexes(&[("0.3.0", entry(false, "0.9.0"))]);
        let err = choose(&idx, &"jira".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("incompatible WIT version"), "{err}");
    }

    #[test]
    fn parses_requests() {
        let r: Request = "jira@^0.2".parse().unwrap();
        assert_eq!((r.id.as_str(), r.req.to_string()), ("jira", "^0.2".to_string()));
        assert_eq!("jira".parse::<Request>().unwrap().to_string(), "jira");
        assert!("Jira".parse::<Request>().is_err());
        assert!("jira@latest".parse::<Request>().is_err());
    }
}
