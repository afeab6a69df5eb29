//! A trusted directory as a client sees it: fetch `index.json` and its signature, verify them
//! against the configured key, refuse an expired index and one older than the last seen.
//!
//! The highest serial seen (and the digest of that index) is kept per directory in
//! `$QIAO_HOME/directories/<name>.json`. An index with a lower serial is a rollback; one with
//! the same serial but other content is refused too (a serial must name one index).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::DirectoryConfig;
use crate::fetch::{FetchError, Fetcher, Location};
use crate::index::{self, Index};
use crate::{Error, Result, keys};

/// The folder of rollback records in `$QIAO_HOME`.
pub const SEEN_DIR: &str = "directories";

/// A directory's index, verified.
#[derive(Debug, Clone)]
pub struct VerifiedIndex {
    /// The directory's configured name.
    pub directory: String,
    /// Where it is.
    pub location: Location,
    /// The index.
    pub index: Index,
}

/// What was last seen from a directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    serial: u64,
    sha256: String,
    at: Timestamp,
}

fn seen_path(home: &Path, directory: &str) -> PathBuf {
    home.join(SEEN_DIR).join(format!("{directory}.json"))
}

/// Fetches and verifies a directory's index, then records its serial.
pub async fn fetch_index(home: &Path, config: &DirectoryConfig, fetcher: &Fetcher) -> Result<VerifiedIndex> {
    let location = Location::parse(&config.url)?;
    let index_loc = location.join(index::INDEX_FILE)?;
    let sig_loc = location.join(index::SIGNATURE_FILE)?;
    let fetch_err = |loc: &Location, e: FetchError| match e {
        FetchError::Unreachable(message) => {
            Error::Unreachable { directory: config.name.clone(), url: loc.to_string(), message }
        }
        FetchError::Bad(message) => {
            Error::Unreachable { directory: config.name.clone(), url: loc.to_string(), message }
        }
    };
    let bytes = fetcher
        .get(&index_loc, index::MAX_INDEX_BYTES, &mut |_, _| {})
        .await
        .map_err(|e| fetch_err(&index_loc, e))?;
    let signature = fetcher.get(&sig_loc, 4096, &mut |_, _| {}).await.map_err(|e| fetch_err(&sig_loc, e))?;
    let signature = String::from_utf8(signature).map_err(|_| Error::IndexSignature {
        directory: config.name.clone(),
        message: "the signature file is not text".into(),
    })?;
    let index = verify_index(&config.name, &config.key, &bytes, &signature, Timestamp::now())?;
    check_serial(home, &config.name, index.serial, &crate::sha256_hex(&bytes))?;
    Ok(VerifiedIndex { directory: config.name.clone(), location, index })
}

/// Verifies index bytes and signature against the trusted key and checks the expiry.
pub fn verify_index(
    directory: &str,
    key: &str,
    bytes: &[u8],
    signature: &str,
    now: Timestamp,
) -> Result<Index> {
    let sig_err = |message: String| Error::IndexSignature { directory: directory.into(), message };
    let comment = keys::verify(key, bytes, signature).map_err(sig_err)?;
    let index = Index::parse(bytes)?;
    if comment != index::signature_comment(&index.name, index.serial) {
        return Err(sig_err(format!(
            "the signature's trusted comment {comment:?} does not name this index (serial {})",
            index.serial
        )));
    }
    if index.expires <= now {
        return Err(Error::IndexExpired { directory: directory.into(), expires: index.expires.to_string() });
    }
    Ok(index)
}

/// Refuses a serial below the one seen last (or the same serial with other content), and
/// records a newer one.
pub fn check_serial(home: &Path, directory: &str, serial: u64, sha256: &str) -> Result<()> {
    let path = seen_path(home, directory);
    let seen: Option<Seen> = match std::fs::read(&path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("corrupt rollback record {}: {e}", path.display())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    if let Some(seen) = &seen {
        if serial < seen.serial {
            return Err(Error::Rollback { directory: directory.into(), serial, seen: seen.serial });
        }
        if serial == seen.serial {
            if seen.sha256 != sha256 {
                return Err(Error::IndexSignature {
                    directory: directory.into(),
                    message: format!("serial {serial} was seen before with other content"),
                });
            }
            return Ok(());
        }
    }
    let record = Seen { serial, sha256: sha256.to_string(), at: Timestamp::now() };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
    }
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::write_atomic(&path, &bytes)
}

/// Fetches every configured directory's index; the first failure stops.
pub async fn fetch_all(
    home: &Path,
    dirs: &[DirectoryConfig],
    fetcher: &Fetcher,
) -> Result<Vec<VerifiedIndex>> {
    let mut out = Vec::new();
    for d in dirs {
        out.push(fetch_index(home, d, fetcher).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serials_only_move_forward() {
        let home = tempfile::tempdir().unwrap();
        check_serial(home.path(), "lab", 3, "aa").unwrap();
        check_serial(home.path(), "lab", 3, "aa").unwrap();
        let err = check_serial(home.path(), "lab", 2, "bb").unwrap_err().to_string();
        assert!(err.contains("has serial 2, lower than serial 3 seen before"), "{err}");
        assert!(check_serial(home.path(), "lab", 3, "cc").is_err(), "same serial, other content");
        check_serial(home.path(), "lab", 4, "dd").unwrap();
        assert!(check_serial(home.path(), "other", 1, "ee").is_ok(), "per directory");
    }
}
