//! Connector packages, signatures, directories and installs: qiao's trust boundary.
//!
//! A publisher packs a connector component into `ID-VERSION.qpkg` ([`package`]: a tar.gz of
//! the manifest `qiao-connector.yaml`, `connector.wasm` and a README) and signs it with a
//! minisign key ([`keys`]). A directory ([`directory`]) is a static folder any HTTP server can
//! host: `index.json` ([`index`]) lists publishers with their keys and every connector version
//! with its url, size, sha256, publisher signature, WIT version, runtime range, capabilities and
//! yanked flag, carries a serial number and an expiry, and is signed by the directory key.
//!
//! An admin trusts directories by key in `$QIAO_HOME/config.yaml` ([`config`]). Installing
//! ([`install`]) fetches and verifies the index (signature, expiry, no rollback below the
//! serial seen last), resolves a semver request, downloads the package into a staging folder
//! under `$QIAO_HOME`, checks size, digest, publisher key and signature, the manifest against
//! the index, the component's WIT version and the runtime range, and only then moves the
//! version into `$QIAO_HOME/connectors/<id>/<version>/` with one rename. Lock files
//! ([`lock`]) pin what a flow set resolved to, so removing a pinned version is refused.
//!
//! The crate has no Wasm runtime: checks that need the component's `describe()` take a
//! [`qiao_contract::ConnectorInfo`] the caller obtained from the host (the CLI precompiles
//! through `qiao-host`). It must not depend on wasmtime, the engine or the flow crates.

pub mod config;
pub mod directory;
mod error;
pub mod fetch;
pub mod index;
pub mod install;
pub mod installed;
pub mod keys;
pub mod lock;
pub mod manifest;
pub mod package;
pub mod remote;
pub mod wit;

pub use error::Error;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The version of this runtime, checked against a package's runtime range.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The runtime version as a [`semver::Version`].
pub fn runtime_version() -> semver::Version {
    // The package version is checked by cargo to be semver.
    semver::Version::parse(RUNTIME_VERSION).unwrap_or_else(|_| semver::Version::new(0, 0, 0))
}

/// Checks a connector or publisher id (kebab-case), so it is safe as a path component.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    qiao_contract::check_kebab_case(id).map_err(|e| Error::Invalid(format!("{what} {}", e.0)))
}

/// Parses a version; the canonical text is safe as a path component.
pub fn parse_version(what: &str, text: &str) -> Result<semver::Version> {
    semver::Version::parse(text)
        .map_err(|e| Error::Invalid(format!("{what} {text:?} is not a semantic version: {e}")))
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes `bytes` to `path` atomically: a reader sees the old file or the whole new one.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io(format!("create a temporary file in {}", dir.display()), e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    // Temporary files are created 0600; published files are meant to be read (and served).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let readable = std::fs::Permissions::from_mode(0o644);
        tmp.as_file()
            .set_permissions(readable)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(format!("write {}", path.display()), e.error))?;
    Ok(())
}

/// Reads a file, naming it in the error.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("read {}", path.display()), e))
}
